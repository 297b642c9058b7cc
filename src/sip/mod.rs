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
pub mod salvage;
pub mod text;
pub mod uri;
pub mod validate;
pub mod via;
pub mod writer;

pub use auth::{Challenge, Credentials};
pub use error::ParseError;
pub use framing::{Frame, Framer};
pub use header::HeaderName;
pub use headers::{CSeq, ContentType};
pub use host::{Host, HostPort};
pub use message::{Header, Message, StartLine};
pub use method::Method;
pub use name_addr::{Contact, NameAddr, QValue};
pub use params::{Param, Params};
pub use uri::{SipUri, TelUri, Uri};
pub use via::{Transport, Via};
pub use writer::{
    forward_request, forward_response, forward_response_with, write_ack, write_cancel,
    write_response, RequestEdits, ViaReceived, WriteError,
};
