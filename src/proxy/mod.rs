//! The proxy core, RFC 3261 §16, without I/O: request validation (§16.3), route
//! preprocessing (§16.4), next-hop selection (§16.6 step 7), and the stateful and
//! stateless forwarding logic built on them.

pub(crate) mod engine;
pub(crate) mod flow;
pub(crate) mod identity;
pub(crate) mod next_hop;
pub(crate) mod resolve;
pub(crate) mod response_dest;
pub(crate) mod route;
pub(crate) mod stateless;
#[cfg(test)]
pub(crate) mod testnet;
pub(crate) mod validate;

pub(crate) use crate::io::Cidr;
pub(crate) use engine::{registrar_config, Engine, EngineStats, Listener, ProxyConfig};
pub use engine::{AuthSetup, Services, Start};
pub(crate) use identity::Identity;
pub(crate) use response_dest::response_dest;
