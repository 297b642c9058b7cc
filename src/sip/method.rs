//! Request methods. Method names are case-sensitive (RFC 3261 §7.1); any token is a
//! method, the ones the proxy acts on get their own variant.

use std::fmt;

use super::text::is_token_str;

/// A SIP method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method<'a> {
    Invite,
    Ack,
    Bye,
    Cancel,
    Register,
    Options,
    Info,
    Prack,
    Update,
    Subscribe,
    Notify,
    Publish,
    Message,
    Refer,
    /// An extension method, as written.
    Other(&'a [u8]),
}

impl<'a> Method<'a> {
    /// Parses a method token; `None` when `s` is not a token.
    pub fn parse(s: &'a [u8]) -> Option<Method<'a>> {
        Some(match s {
            b"INVITE" => Method::Invite,
            b"ACK" => Method::Ack,
            b"BYE" => Method::Bye,
            b"CANCEL" => Method::Cancel,
            b"REGISTER" => Method::Register,
            b"OPTIONS" => Method::Options,
            b"INFO" => Method::Info,
            b"PRACK" => Method::Prack,
            b"UPDATE" => Method::Update,
            b"SUBSCRIBE" => Method::Subscribe,
            b"NOTIFY" => Method::Notify,
            b"PUBLISH" => Method::Publish,
            b"MESSAGE" => Method::Message,
            b"REFER" => Method::Refer,
            _ if is_token_str(s) => Method::Other(s),
            _ => return None,
        })
    }

    /// The method's text.
    pub fn as_bytes(&self) -> &'a [u8] {
        match *self {
            Method::Invite => b"INVITE",
            Method::Ack => b"ACK",
            Method::Bye => b"BYE",
            Method::Cancel => b"CANCEL",
            Method::Register => b"REGISTER",
            Method::Options => b"OPTIONS",
            Method::Info => b"INFO",
            Method::Prack => b"PRACK",
            Method::Update => b"UPDATE",
            Method::Subscribe => b"SUBSCRIBE",
            Method::Notify => b"NOTIFY",
            Method::Publish => b"PUBLISH",
            Method::Message => b"MESSAGE",
            Method::Refer => b"REFER",
            Method::Other(s) => s,
        }
    }
}

impl fmt::Display for Method<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(self.as_bytes()))
    }
}
