pub mod auth;
pub mod sip;
