//! coresip: a thread-per-core SIP proxy and registrar (see DESIGN.md).

pub mod auth;
pub mod proxy;
pub mod sip;
pub mod txn;
