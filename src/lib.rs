//! coresip: a thread-per-core SIP proxy and registrar (see DESIGN.md).

#![deny(clippy::undocumented_unsafe_blocks)]

pub mod auth;
pub mod cli;
pub mod config;
pub mod io;
pub mod mesh;
pub mod metrics;
pub mod proxy;
pub mod registrar;
pub mod runtime;
pub mod shard;
pub mod sip;
pub mod txn;
