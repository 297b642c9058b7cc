//! Checks shared by the fuzz targets: exercise every accessor and typed decoder of a
//! parsed [`Message`] and assert the invariants a zero-copy view must keep — every
//! slice it hands out lies inside the buffer it was parsed from, header lines tile
//! the header section, the body is what Content-Length says.
//!
//! A failed assertion is a bug in `coresip`, not in the input: every input is legal
//! here, and the parser must either reject it with an error or describe it
//! consistently.

#![allow(dead_code)]

use std::ops::Range;

use coresip::sip::header::HeaderName;
use coresip::sip::host::{split_host_port, Host, HostPort};
use coresip::sip::message::{Message, StartLine};
use coresip::sip::method::Method;
use coresip::sip::params::Params;
use coresip::sip::text;

/// Every [`HeaderName`] variant known when this target was written. Names that
/// occur in the input are exercised too (see [`names_to_check`]), so a variant
/// added later is still covered whenever the fuzzer writes it.
pub const ALL_NAMES: &[HeaderName] = &[
    HeaderName::Via,
    HeaderName::From,
    HeaderName::To,
    HeaderName::CallId,
    HeaderName::CSeq,
    HeaderName::Contact,
    HeaderName::MaxForwards,
    HeaderName::Route,
    HeaderName::RecordRoute,
    HeaderName::ContentLength,
    HeaderName::ContentType,
    HeaderName::ContentEncoding,
    HeaderName::Expires,
    HeaderName::MinExpires,
    HeaderName::Require,
    HeaderName::ProxyRequire,
    HeaderName::Supported,
    HeaderName::Unsupported,
    HeaderName::Allow,
    HeaderName::Accept,
    HeaderName::AcceptEncoding,
    HeaderName::AcceptLanguage,
    HeaderName::Authorization,
    HeaderName::ProxyAuthorization,
    HeaderName::WwwAuthenticate,
    HeaderName::ProxyAuthenticate,
    HeaderName::AuthenticationInfo,
    HeaderName::Path,
    HeaderName::ServiceRoute,
    HeaderName::Event,
    HeaderName::AllowEvents,
    HeaderName::SubscriptionState,
    HeaderName::Subject,
    HeaderName::ReferTo,
    HeaderName::ReferredBy,
    HeaderName::SessionExpires,
    HeaderName::MinSe,
    HeaderName::Identity,
    HeaderName::IdentityInfo,
    HeaderName::AcceptContact,
    HeaderName::RejectContact,
    HeaderName::RequestDisposition,
    HeaderName::Date,
    HeaderName::Timestamp,
    HeaderName::UserAgent,
    HeaderName::Server,
    HeaderName::Organization,
    HeaderName::Priority,
    HeaderName::Warning,
    HeaderName::RetryAfter,
    HeaderName::ReplyTo,
    HeaderName::InReplyTo,
    HeaderName::MimeVersion,
    HeaderName::ErrorInfo,
    HeaderName::AlertInfo,
    HeaderName::CallInfo,
    HeaderName::ContentDisposition,
    HeaderName::ContentLanguage,
    HeaderName::RSeq,
    HeaderName::RAck,
    HeaderName::SipEtag,
    HeaderName::SipIfMatch,
    HeaderName::Other,
];

/// The offsets of `part` in `buf`, asserting that `part` lies inside it. Works on
/// pointers, so an empty slice must still point into (or just past) `buf`.
pub fn range_in(buf: &[u8], part: &[u8]) -> Range<usize> {
    let base = buf.as_ptr() as usize;
    let p = part.as_ptr() as usize;
    assert!(
        p >= base && p + part.len() <= base + buf.len(),
        "slice of {} bytes at {:#x} escapes the buffer {:#x}+{}",
        part.len(),
        p,
        base,
        buf.len()
    );
    p - base..p - base + part.len()
}

/// Asserts that `inner` lies within `outer`.
pub fn assert_sub(outer: &Range<usize>, inner: &Range<usize>, what: &str) {
    assert!(
        outer.start <= inner.start && inner.end <= outer.end && inner.start <= inner.end,
        "{what}: {inner:?} not within {outer:?}"
    );
}

/// The header names worth asking about: every known one plus those in the message.
fn names_to_check(msg: &Message) -> Vec<HeaderName> {
    let mut names: Vec<HeaderName> = ALL_NAMES.to_vec();
    for h in msg.headers() {
        if !names.contains(&h.name) {
            names.push(h.name);
        }
    }
    names
}

/// Exercises every accessor of `msg`, parsed from `buf`, and checks its invariants.
pub fn check_message(buf: &[u8], msg: &Message) {
    assert_eq!(msg.buf().as_ptr(), buf.as_ptr());
    assert_eq!(msg.buf().len(), buf.len());
    let whole = 0..buf.len();

    // --- start line ---------------------------------------------------------------
    let start = msg.start_line_range();
    assert_sub(&whole, &start, "start line");
    assert!(start.start < start.end, "empty start line");
    // Only CRLFs may precede the start line (RFC 3261 §7.5).
    assert!(buf[..start.start].iter().all(|&b| b == b'\r' || b == b'\n'));
    assert_eq!(buf[start.end - 1], b'\n', "start line must end at its LF");
    match *msg.start_line() {
        StartLine::Request { method, uri } => {
            assert!(msg.is_request());
            assert_eq!(msg.method(), Some(method));
            assert_eq!(msg.request_uri(), Some(uri));
            assert_eq!(msg.status(), None);
            assert_sub(&start, &range_in(buf, uri), "Request-URI");
            assert_eq!(msg.offset_of(uri), range_in(buf, uri).start);
            assert!(!uri.is_empty());
            let m = method.as_bytes();
            assert!(text::is_token_str(m), "method is not a token");
            assert_eq!(Method::parse(m), Some(method), "method round trip");
            let _ = method.to_string();
            check_text(uri);
        }
        StartLine::Response { code, reason } => {
            assert!(!msg.is_request());
            assert_eq!(msg.status(), Some(code));
            assert_eq!(msg.method(), None);
            assert_eq!(msg.request_uri(), None);
            assert!((100..=699).contains(&code), "status {code}");
            if !reason.is_empty() {
                assert_sub(&start, &range_in(buf, reason), "reason phrase");
            }
        }
    }

    // --- header lines tile the header section -------------------------------------
    let mut cursor = start.end;
    for h in msg.headers() {
        let line = h.line_range();
        let name = h.name_range();
        let value = h.value_range();
        assert_eq!(line.start, cursor, "header lines are not contiguous");
        assert!(line.start < line.end);
        assert_sub(&whole, &line, "header line");
        assert_sub(&line, &name, "header name");
        assert_sub(&line, &value, "header value");
        assert!(
            name.end <= value.start,
            "value {value:?} before name {name:?}"
        );
        assert_eq!(buf[line.end - 1], b'\n', "header line must end at its LF");
        let raw = msg.raw_name(h);
        assert_eq!(range_in(buf, raw), name);
        assert!(text::is_token_str(raw), "header name is not a token");
        assert_eq!(HeaderName::from_bytes(raw), h.name, "name id round trip");
        let v = msg.value(h);
        assert_eq!(range_in(buf, v), value);
        if let Some(&last) = v.last() {
            assert!(
                last != b' ' && last != b'\t',
                "value not trimmed at its end"
            );
        }
        cursor = line.end;
    }
    assert_eq!(msg.headers_end(), cursor);
    let blank = &buf[cursor..msg.body_offset()];
    assert!(
        blank == b"\r\n" || blank == b"\n",
        "the header section must end with one blank line, got {blank:?}"
    );

    // --- body -----------------------------------------------------------------------
    let body = msg.body();
    let body_range = range_in(buf, body);
    assert_eq!(body_range.start, msg.body_offset());
    assert!(body.len() <= buf.len());
    assert_eq!(msg.offset_of(body), body_range.start);
    match msg.content_length() {
        Ok(Some(n)) => assert_eq!(body.len(), n as usize, "body is not Content-Length"),
        Ok(None) => assert_eq!(body_range.end, buf.len(), "no Content-Length: body to end"),
        Err(e) => panic!("parse accepted a Content-Length that content_length() rejects: {e:?}"),
    }
    let own = msg.as_bytes();
    let own_range = range_in(buf, own);
    assert_eq!(own_range, start.start..body_range.end);

    // --- lookups by name ------------------------------------------------------------
    for name in names_to_check(msg) {
        check_name(buf, msg, name);
    }
    for h in msg.headers() {
        let raw = msg.raw_name(h);
        let got = msg
            .header_raw(raw)
            .expect("header_raw misses a present header");
        range_in(buf, got);
        if h.name == HeaderName::Other {
            let first = msg
                .headers()
                .iter()
                .find(|g| g.name == HeaderName::Other && msg.raw_name(g).eq_ignore_ascii_case(raw))
                .map(|g| msg.value(g));
            assert_eq!(Some(got), first);
        }
    }
    let _ = msg.header_raw(b"X-Not-There");

    // --- typed decoding of every value ------------------------------------------------
    for h in msg.headers() {
        let v = msg.value(h);
        check_text(v);
        check_params(buf, v);
    }
    if let Some(via) = msg.top_via() {
        check_sent_by(buf, via);
    }
    for v in msg.values(HeaderName::Via) {
        check_sent_by(buf, v);
    }

    // --- the message alone parses the same ------------------------------------------
    // `as_bytes` is start line to end of body; cut out, it must parse identically.
    let again = Message::parse(own).expect("the message's own bytes do not re-parse");
    assert_eq!(again.headers().len(), msg.headers().len());
    assert_eq!(again.body(), msg.body());
    assert_eq!(again.start_line_range().len(), start.len());
}

/// `find`, `header`, `all` and `values` for one name agree with a scan of `headers()`.
fn check_name(buf: &[u8], msg: &Message, name: HeaderName) {
    let _ = name.as_str();
    let first = msg.headers().iter().find(|h| h.name == name);
    assert_eq!(
        msg.find(name),
        first,
        "find({name:?}) disagrees with a scan"
    );
    assert_eq!(msg.header(name), first.map(|h| msg.value(h)));

    let lines: Vec<_> = msg.all(name).collect();
    assert!(lines.iter().all(|h| h.name == name));
    assert_eq!(
        lines.len(),
        msg.headers().iter().filter(|h| h.name == name).count()
    );

    let mut expected: Vec<&[u8]> = Vec::new();
    for h in &lines {
        let v = msg.value(h);
        if name.is_list() {
            expected.extend(text::CommaList::new(v));
        } else {
            expected.push(v);
        }
    }
    let values: Vec<&[u8]> = msg.values(name).collect();
    assert_eq!(values, expected, "values({name:?})");
    for v in &values {
        let r = range_in(buf, v);
        assert_eq!(msg.offset_of(v), r.start);
        // A value lies inside the value of one of the lines of that name.
        assert!(
            lines.iter().any(|h| {
                let vr = h.value_range();
                vr.start <= r.start && r.end <= vr.end
            }),
            "value of {name:?} at {r:?} is outside every {name:?} line"
        );
        if name.is_list() {
            assert!(!v.is_empty(), "empty list element");
            assert_eq!(text::trim(v), *v, "list element not trimmed");
        }
    }
    if name == HeaderName::Via {
        assert_eq!(msg.top_via(), values.first().copied());
    }
}

/// The `;name=value` parameters of a value: slices inside it, lookups consistent.
pub fn check_params(buf: &[u8], v: &[u8]) {
    let vr = range_in(buf, v);
    let params = Params::new(v);
    let raw = params.as_bytes();
    assert_sub(&vr, &range_in(buf, raw), "params text");
    let _ = params.is_empty();
    let valid = params.validate();
    let mut count = 0usize;
    for p in &params {
        count += 1;
        assert!(count <= v.len(), "more params than bytes");
        assert_sub(&vr, &range_in(buf, p.name), "param name");
        if let Some(val) = p.value {
            assert_sub(&vr, &range_in(buf, val), "param value");
        }
        // Whatever the iterator yields, `get` finds by name.
        assert!(
            params.contains(p.name),
            "get misses a parameter the iterator yields"
        );
        if valid.is_ok() {
            assert!(!p.name.is_empty() && text::is_token_str(p.name));
        }
    }
    for name in [
        &b"branch"[..],
        b"tag",
        b"rport",
        b"received",
        b"lr",
        b"expires",
        b"q",
    ] {
        if let Some(val) = params.value(name) {
            assert_sub(&vr, &range_in(buf, val), "param value by name");
            check_text(val);
        }
    }
}

/// The sent-by of a Via value (`SIP/2.0/UDP host:port;params`), decoded as a
/// hostport, with whatever protocol text precedes it.
fn check_sent_by(buf: &[u8], via: &[u8]) {
    let end = text::find_unquoted(via, b';').unwrap_or(via.len());
    let head = text::trim(&via[..end]);
    let sent_by = match head.iter().rposition(|&b| text::is_lws(b)) {
        Some(i) => text::trim(&head[i + 1..]),
        None => head,
    };
    check_hostport(buf, sent_by);
}

/// `host[:port]` decoders on any text of the buffer.
pub fn check_hostport(buf: &[u8], s: &[u8]) {
    let sr = range_in(buf, s);
    if let Ok((host, port)) = split_host_port(s) {
        assert_sub(&sr, &range_in(buf, host), "host text");
        if let Some(p) = port {
            assert_sub(&sr, &range_in(buf, p), "port text");
            let _ = text::parse_port(p);
        }
        if let Ok(h) = Host::parse(host) {
            check_host(buf, &h);
        }
    }
    if let Ok(hp) = HostPort::parse(s) {
        check_host(buf, &hp.host);
        // A host that parsed prints back to something that parses to the same host.
        let printed = hp.host.to_string();
        let back = Host::parse(printed.as_bytes()).expect("a printed host re-parses");
        assert!(
            back.same_as(&hp.host),
            "{printed} is not the host it came from"
        );
    }
}

fn check_host(buf: &[u8], h: &Host) {
    if let Host::Domain(d) = h {
        range_in(buf, d.as_bytes());
        assert!(h.ip().is_none());
    } else {
        assert!(h.ip().is_some());
    }
    assert!(h.same_as(h));
}

/// The text helpers on any value: they must not panic and must stay inside it.
pub fn check_text(v: &[u8]) {
    let t = text::trim(v);
    assert_eq!(text::trim(t), t, "trim is not idempotent");
    let _ = text::trim_start(v);
    let _ = text::trim_end(v);
    let _ = text::is_token_str(v);
    let _ = text::parse_u32(t);
    let _ = text::parse_port(t);
    if let Some(i) = text::find_unquoted(v, b',') {
        assert!(i < v.len() && v[i] == b',');
    }
    let u = text::unquote(t);
    assert!(u.len() <= t.len());
    let e = text::unescape_quoted(u);
    assert!(e.len() <= u.len());
    if let Some(d) = text::percent_decode(v) {
        assert!(d.len() <= v.len());
    }
    let _ = text::eq_ic(v, t);
}
