pub mod proxy;
pub mod sip;
pub mod txn;
