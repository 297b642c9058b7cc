pub mod registrar;
pub mod sip;
