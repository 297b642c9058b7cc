//! Empty: this package exists for its benchmark, `peers.rs`.
