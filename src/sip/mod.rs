//! SIP messages without I/O: a lazy, zero-copy parser in the style of `httparse`,
//! typed decoders for the values a proxy reads, stream framing, and the splicing
//! writer. Everything here borrows from the receive buffer.

pub mod auth;
pub mod error;
pub mod framing;
pub mod header;
pub mod headers;
pub mod host;
pub mod message;
pub mod method;
pub mod name_addr;
pub mod params;
pub mod text;
pub mod uri;
pub mod validate;
pub mod via;
pub mod writer;

pub use error::ParseError;
pub use header::HeaderName;
pub use host::{Host, HostPort};
pub use message::{Header, Message, StartLine};
pub use method::Method;
pub use params::{Param, Params};
