pub mod cli;
pub mod config;
pub mod runtime;
pub mod shard;
pub mod sip;
