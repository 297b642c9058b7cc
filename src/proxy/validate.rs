//! Request validation, RFC 3261 §16.3, and the loop-detection half of the branch
//! parameter (§16.6 step 8).

use std::hash::{BuildHasher, Hasher};

use crate::sip::error::ParseError;
use crate::sip::header::HeaderName;
use crate::sip::method::Method;
use crate::sip::text::trim;
use crate::sip::uri::has_known_scheme;
use crate::sip::via::Via;
use crate::sip::Message;

use super::identity::Identity;

/// Option tags this proxy understands in Proxy-Require (§16.3 step 5). None yet:
/// every listed extension is refused with 420, as the RFC requires.
pub(crate) const PROXY_SUPPORTED: &[&[u8]] = &[];

/// Why a request is answered instead of being processed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reject {
    /// §16.3 step 1: the message is malformed; the error names the element.
    BadRequest(ParseError),
    /// §16.3 step 2: a Request-URI scheme this proxy does not route.
    UnsupportedUriScheme,
    /// §16.3 step 3: Max-Forwards is zero.
    TooManyHops,
    /// §16.3 step 4: the request carries our Via with the same loop hash.
    LoopDetected,
    /// §16.3 step 5: Proxy-Require names an extension we do not support (the
    /// response lists them in Unsupported, see [`unsupported_proxy_require`]).
    BadExtension,
}

impl Reject {
    /// The status code.
    pub(crate) fn code(&self) -> u16 {
        match self {
            Reject::BadRequest(_) => 400,
            Reject::UnsupportedUriScheme => 416,
            Reject::TooManyHops => 483,
            Reject::LoopDetected => 482,
            Reject::BadExtension => 420,
        }
    }

    /// The reason phrase; a malformed request's names the faulty element, the way
    /// Kamailio's sanity module does.
    pub(crate) fn reason(&self) -> &'static str {
        match self {
            Reject::BadRequest(e) => e.reason(),
            Reject::UnsupportedUriScheme => "Unsupported URI Scheme",
            Reject::TooManyHops => "Too Many Hops",
            Reject::LoopDetected => "Loop Detected",
            Reject::BadExtension => "Bad Extension",
        }
    }
}

/// Validates a request per §16.3 steps 1–5. `to_me` says whether the
/// Request-URI addresses this proxy itself, which lets an OPTIONS with
/// Max-Forwards 0 through (step 3: we answer it as its final recipient).
///
/// Step 6 (Proxy-Authorization) is the authenticator's.
pub(crate) fn validate_request(
    msg: &Message<'_>,
    ident: &Identity,
    to_me: bool,
) -> Result<(), Reject> {
    msg.check().map_err(Reject::BadRequest)?;
    // Step 2. `check` has parsed the Request-URI already: its scheme is enough.
    if !has_known_scheme(msg.request_uri().unwrap_or_default()) {
        return Err(Reject::UnsupportedUriScheme);
    }
    // Step 3.
    if msg.max_forwards().map_err(Reject::BadRequest)? == Some(0)
        && !(to_me && msg.method() == Some(Method::Options))
    {
        return Err(Reject::TooManyHops);
    }
    // Step 4.
    if is_loop(msg, ident) {
        return Err(Reject::LoopDetected);
    }
    // Step 5. ACK and CANCEL are exempt (§8.2.2.3: never rejected for extensions).
    if !matches!(msg.method(), Some(Method::Ack | Method::Cancel))
        && unsupported_proxy_require(msg).next().is_some()
    {
        return Err(Reject::BadExtension);
    }
    Ok(())
}

/// The Proxy-Require option tags this proxy does not support, for the 420's
/// Unsupported header (§16.3 step 5, §20.40).
pub(crate) fn unsupported_proxy_require<'m, 'a: 'm>(
    msg: &'m Message<'a>,
) -> impl Iterator<Item = &'a [u8]> + 'm {
    msg.proxy_require()
        .filter_map(Result::ok)
        .filter(|tag| !PROXY_SUPPORTED.iter().any(|s| s.eq_ignore_ascii_case(tag)))
}

/// Separates the unique part of our branch from its loop-detection part.
pub(crate) const LOOP_SEPARATOR: u8 = b'.';

/// The loop-detection part of the branch (§16.6 step 8): a hash of everything that
/// affects how this request is routed — Request-URI as received, To and From tags,
/// Call-ID, CSeq number, Route, Proxy-Require and Proxy-Authorization — as 16
/// lowercase hex digits. The method is left out so that CANCEL and ACK share the
/// INVITE's value.
///
/// Unlike the RFC's example the top Via is left out too: a looping request comes
/// back under a different top Via every time, so including it would never find a
/// loop. A request that returns with all of these unchanged would be routed the same
/// way again: that is a loop, not a spiral (§16.3 step 4).
pub(crate) fn loop_hash(msg: &Message<'_>) -> [u8; 16] {
    loop_hash_of(msg, true)
}

/// The loop-detection part of a branch written by the stateless proxy (§16.11):
/// only the fields a CANCEL (§9.1) and the ACK of a non-2xx (§17.1.1.3) must copy
/// from their INVITE — Request-URI, From tag, Call-ID, CSeq number and Route — so
/// that both get the INVITE's branch and the next hop's INVITE transaction matches
/// them. The To tag (which that ACK adds), Proxy-Require and Proxy-Authorization
/// are left out; they do not change while a request loops back to us.
pub(crate) fn stateless_loop_hash(msg: &Message<'_>) -> [u8; 16] {
    loop_hash_of(msg, false)
}

/// [`loop_hash`] with everything, or [`stateless_loop_hash`]'s fields only.
fn loop_hash_of(msg: &Message<'_>, all: bool) -> [u8; 16] {
    let mut h = ahash::RandomState::with_seeds(
        0x636f_7265_7369_7001,
        0x6c6f_6f70_6861_7368,
        0x2f31_362e_362f_3800,
        0x5246_4333_3236_3100,
    )
    .build_hasher();
    let mut field = |b: &[u8]| {
        h.write_usize(b.len());
        h.write(b);
    };
    field(msg.request_uri().unwrap_or_default());
    if all {
        field(msg.to().ok().and_then(|t| t.tag()).unwrap_or_default());
    }
    field(msg.from().ok().and_then(|f| f.tag()).unwrap_or_default());
    field(msg.call_id().unwrap_or_default());
    field(&msg.cseq().map(|c| c.seq).unwrap_or(0).to_le_bytes());
    let names: &[HeaderName] = if all {
        &[
            HeaderName::Route,
            HeaderName::ProxyRequire,
            HeaderName::ProxyAuthorization,
        ]
    } else {
        &[HeaderName::Route]
    };
    for &name in names {
        for v in msg.values(name) {
            field(trim(v));
        }
    }
    let v = h.finish();
    let mut out = [0u8; 16];
    for (i, b) in out.iter_mut().enumerate() {
        let nibble = (v >> (60 - 4 * i)) & 0xf;
        *b = b"0123456789abcdef"[nibble as usize];
    }
    out
}

/// §16.3 step 4: does the request carry a Via of ours whose loop part equals the
/// loop hash of the request as it is now (as the stateful or the stateless proxy
/// computes it)?
fn is_loop(msg: &Message<'_>, ident: &Identity) -> bool {
    let mut ours = msg
        .vias()
        .filter_map(Result::ok)
        .filter(|via| {
            via.branch()
                .is_some_and(|b| memchr::memchr(LOOP_SEPARATOR, b).is_some())
                && via_is_me(via, ident)
        })
        .peekable();
    if ours.peek().is_none() {
        return false;
    }
    let now = loop_hash(msg);
    let stateless = stateless_loop_hash(msg);
    ours.any(|via| {
        via.branch()
            .and_then(|b| b.rsplit(|&c| c == LOOP_SEPARATOR).next())
            .is_some_and(|part| part == now || part == stateless)
    })
}

fn via_is_me(via: &Via<'_>, ident: &Identity) -> bool {
    ident.is_me_at(
        &via.sent_by.host,
        via.sent_by.port,
        via.transport.default_port(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ident() -> Identity {
        Identity::new(
            &[("192.0.2.10".parse().unwrap(), 5060)],
            &[],
            &["example.test".to_string()],
        )
    }

    fn req(extra: &str, mf: &str, ruri: &str) -> Vec<u8> {
        format!(
            "OPTIONS {ruri} SIP/2.0\r\n{extra}Via: SIP/2.0/UDP 198.51.100.1;branch=z9hG4bK1\r\n\
             Max-Forwards: {mf}\r\nTo: <sip:bob@example.test>\r\n\
             From: <sip:alice@example.test>;tag=a\r\nCall-ID: c1\r\nCSeq: 1 OPTIONS\r\n\
             Content-Length: 0\r\n\r\n"
        )
        .into_bytes()
    }

    #[test]
    fn max_forwards_zero_is_483_unless_options_to_us() {
        // RFC 3261 §16.3 step 3.
        let b = req("", "0", "sip:bob@example.test");
        let m = Message::parse(&b).unwrap();
        assert_eq!(
            validate_request(&m, &ident(), false),
            Err(Reject::TooManyHops)
        );
        assert_eq!(validate_request(&m, &ident(), true), Ok(()));
        let b = req("", "1", "sip:bob@example.test");
        let m = Message::parse(&b).unwrap();
        assert_eq!(validate_request(&m, &ident(), false), Ok(()));
    }

    #[test]
    fn unknown_scheme_is_416() {
        // RFC 3261 §16.3 step 2; RFC 4475 §3.3.2 uses NOTSIP:.
        let b = req("", "70", "notsip:bob@example.test");
        let m = Message::parse(&b).unwrap();
        assert_eq!(
            validate_request(&m, &ident(), false),
            Err(Reject::UnsupportedUriScheme)
        );
        let b = req("", "70", "tel:+15551234");
        let m = Message::parse(&b).unwrap();
        assert_eq!(validate_request(&m, &ident(), false), Ok(()));
    }

    #[test]
    fn proxy_require_unknown_is_420() {
        // RFC 3261 §16.3 step 5.
        let b = req("Proxy-Require: foo, bar\r\n", "70", "sip:bob@example.test");
        let m = Message::parse(&b).unwrap();
        assert_eq!(
            validate_request(&m, &ident(), false),
            Err(Reject::BadExtension)
        );
        let tags: Vec<&[u8]> = unsupported_proxy_require(&m).collect();
        assert_eq!(tags, vec![&b"foo"[..], &b"bar"[..]]);
    }

    #[test]
    fn malformed_is_400_naming_the_element() {
        let b = b"OPTIONS sip:bob@example.test SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\
To: <sip:b@example.test>\r\nFrom: <sip:a@example.test>;tag=1\r\nCall-ID: x\r\nCSeq: x OPTIONS\r\n\r\n";
        let m = Message::parse(b).unwrap();
        let r = validate_request(&m, &ident(), false).unwrap_err();
        assert_eq!(r.code(), 400);
        assert_eq!(r.reason(), "Bad CSeq");
    }

    #[test]
    fn loop_detected_only_when_nothing_changed() {
        // RFC 3261 §16.3 step 4 with the §16.6 step 8 branch computation.
        let b = req("", "70", "sip:bob@example.test");
        let m = Message::parse(&b).unwrap();
        let h = loop_hash(&m);
        let ours = format!(
            "Via: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bKc0000aaaaaaaaaaaaaaaa.{}\r\n",
            std::str::from_utf8(&h).unwrap()
        );
        // The same request comes back through us: a loop.
        let looped = req(&ours, "69", "sip:bob@example.test");
        let m = Message::parse(&looped).unwrap();
        assert_eq!(
            validate_request(&m, &ident(), false),
            Err(Reject::LoopDetected)
        );
        // It comes back with a new Request-URI: a spiral.
        let spiral = req(&ours, "69", "sip:carol@example.test");
        let m = Message::parse(&spiral).unwrap();
        assert_eq!(validate_request(&m, &ident(), false), Ok(()));
        // Somebody else's Via with the same text is not ours.
        let theirs = ours.replace("192.0.2.10", "192.0.2.11");
        let other = req(&theirs, "69", "sip:bob@example.test");
        let m = Message::parse(&other).unwrap();
        assert_eq!(validate_request(&m, &ident(), false), Ok(()));
    }

    #[test]
    fn stateless_loop_part_is_detected_and_ignores_the_to_tag() {
        // §16.11: the stateless branch's loop part leaves the To tag out, so the
        // ACK of a non-2xx (which adds it, §17.1.1.3) gets its INVITE's value.
        let b = req("", "70", "sip:bob@example.test");
        let m = Message::parse(&b).unwrap();
        let tagged = String::from_utf8(b.clone()).unwrap().replace(
            "To: <sip:bob@example.test>",
            "To: <sip:bob@example.test>;tag=9",
        );
        let t = Message::parse(tagged.as_bytes()).unwrap();
        assert_eq!(stateless_loop_hash(&m), stateless_loop_hash(&t));
        assert_ne!(loop_hash(&m), loop_hash(&t));
        assert_ne!(stateless_loop_hash(&m), loop_hash(&m));
        let ours = format!(
            "Via: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bKs0000aaaaaaaaaaaa.{}\r\n",
            std::str::from_utf8(&stateless_loop_hash(&m)).unwrap()
        );
        let looped = req(&ours, "69", "sip:bob@example.test");
        let m = Message::parse(&looped).unwrap();
        assert_eq!(
            validate_request(&m, &ident(), false),
            Err(Reject::LoopDetected)
        );
        let spiral = req(&ours, "69", "sip:carol@example.test");
        let m = Message::parse(&spiral).unwrap();
        assert_eq!(validate_request(&m, &ident(), false), Ok(()));
    }

    #[test]
    fn loop_hash_ignores_method() {
        // CANCEL and ACK share the INVITE's branch (§16.6 step 8).
        let inv = b"INVITE sip:b@example.test SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\
To: <sip:b@example.test>\r\nFrom: <sip:a@example.test>;tag=1\r\nCall-ID: x\r\nCSeq: 7 INVITE\r\n\r\n";
        let can = b"CANCEL sip:b@example.test SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\
To: <sip:b@example.test>\r\nFrom: <sip:a@example.test>;tag=1\r\nCall-ID: x\r\nCSeq: 7 CANCEL\r\n\r\n";
        assert_eq!(
            loop_hash(&Message::parse(inv).unwrap()),
            loop_hash(&Message::parse(can).unwrap())
        );
    }
}
