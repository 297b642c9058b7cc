//! coresip: a thread-per-core SIP proxy and registrar (see DESIGN.md and
//! `src/README.md`).
//!
//! The public surface is what the binary, the integration tests, the benches and
//! the fuzz targets use: the SIP wire format ([`sip`]), the shared vocabulary
//! ([`io`]), one executor's sans-IO core ([`Shard`]) with what builds it, the
//! runtime's entry point ([`run`]), and the metrics text. Everything else is
//! private to the crate.

#![deny(clippy::undocumented_unsafe_blocks)]
#![warn(unreachable_pub)]

pub mod io;
pub mod sip;

mod auth;
mod cli;
mod config;
mod mesh;
mod metrics;
mod proxy;
mod registrar;
mod runtime;
mod shard;
mod txn;

pub use auth::{digest, AuthConfig, Authenticator, NonceSecret, UserStore};
pub use cli::parse_or_exit;
pub use config::{AuthMode, Config, ForkMode};
pub use mesh::{MeshMsg, Outbox};
pub use metrics::{exposition, render, ShardHealth, ShardMetrics};
pub use proxy::{AuthSetup, Services, Start};
pub use runtime::run;
pub use shard::Shard;

/// The runtime's cross-core channels, for `benches/mesh.rs`: not a stable surface.
#[doc(hidden)]
pub mod internals {
    pub use crate::runtime::mesh::{build, MeshEnds};
}
