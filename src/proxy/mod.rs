//! The proxy core, RFC 3261 §16, without I/O: request validation (§16.3), route
//! preprocessing (§16.4), next-hop selection (§16.6 step 7), and the stateful and
//! stateless forwarding logic built on them.

pub mod engine;
pub mod flow;
pub mod identity;
pub mod next_hop;
pub mod resolve;
pub mod response_dest;
pub mod route;
pub mod stateless;
#[cfg(test)]
pub(crate) mod testnet;
pub mod validate;

pub use crate::io::Cidr;
pub use engine::{
    registrar_config, Answer, AuthSetup, Engine, EngineStats, Listener, ProxyConfig, Services,
    Start,
};
pub use identity::Identity;
pub use next_hop::{next_hop, next_hop_of, NextHop};
pub use response_dest::response_dest;
pub use route::{preprocess, RoutePlan};
pub use stateless::{stateless_branch, StatelessBranch};
pub use validate::{validate_request, Reject};
