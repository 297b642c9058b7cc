pub mod sip;
pub mod txn;
