//! The SIP messages every benchmark parses, as they would arrive on the wire (CRLF
//! line ends, `Content-Length` matching the body). Both the crate's own benchmark and
//! the peer comparison in `benches/peers/` include this file, so all of them parse
//! identical bytes.
//!
//! The dialog is one call set up through a record-routing proxy: Alice's INVITE with
//! an SDP offer, Bob's REGISTER, and the 180 and 200 answers as they come back to the
//! proxy (two Vias: the proxy's own on top, then Alice's with `received`/`rport`).

/// INVITE with an SDP offer: 13 headers, Via with `branch` and `rport`, Record-Route,
/// Contact, Allow, Supported, User-Agent, Content-Type.
pub const INVITE: &[u8] = include_bytes!("invite.sip");
/// REGISTER with a Contact binding and Expires, no body.
pub const REGISTER: &[u8] = include_bytes!("register.sip");
/// 180 Ringing with two Vias and Record-Route, no body.
pub const RINGING_180: &[u8] = include_bytes!("ringing_180.sip");
/// 200 OK to the INVITE with two Vias, Record-Route and an SDP answer.
pub const OK_200: &[u8] = include_bytes!("ok_200.sip");

/// Every message with the name its benchmark ids use.
pub const ALL: [(&str, &[u8]); 4] = [
    ("invite", INVITE),
    ("register", REGISTER),
    ("ringing_180", RINGING_180),
    ("ok_200", OK_200),
];
