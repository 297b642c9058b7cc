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

use coresip::sip::auth::{Challenge, Credentials};
use coresip::sip::header::HeaderName;
use coresip::sip::headers::{parse_delta_seconds, CSeq, ContentType, MAX_CSEQ};
use coresip::sip::host::{split_host_port, Host, HostPort};
use coresip::sip::message::{Message, StartLine};
use coresip::sip::method::Method;
use coresip::sip::name_addr::{Contact, NameAddr, QValue};
use coresip::sip::params::Params;
use coresip::sip::text;
use coresip::sip::uri::Uri;
use coresip::sip::via::Via;

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

    check_typed(buf, msg);

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

/// Every typed decoder: the message-level accessors, and each value-level decoder
/// on every header value and every list element (whatever its header's name, so
/// that each decoder sees all the text the fuzzer writes).
fn check_typed(buf: &[u8], msg: &Message) {
    let whole = 0..buf.len();
    if let Some(uri) = msg.request_uri() {
        check_uri(buf, uri);
    }

    // Message-level accessors agree with the value-level decoders.
    if let Ok(c) = msg.cseq() {
        assert!(c.seq <= MAX_CSEQ);
        assert_eq!(Ok(c), CSeq::parse(msg.header(HeaderName::CSeq).unwrap()));
    }
    if let Ok(id) = msg.call_id() {
        assert!(!id.is_empty());
        range_in(buf, id);
    }
    let _ = msg.max_forwards();
    let _ = msg.expires();
    let _ = msg.min_expires();
    let _ = msg.retry_after();
    if let Ok(Some(ct)) = msg.content_type() {
        check_content_type(buf, &ct);
    }
    for tags in [
        msg.require(),
        msg.proxy_require(),
        msg.supported(),
        msg.unsupported(),
    ] {
        let all_ok = tags.clone().all(|t| t.is_ok());
        for t in tags.clone().flatten() {
            range_in(buf, t);
            assert!(text::is_token_str(t));
            if all_ok {
                assert_eq!(tags.clone().contains(t), Ok(true));
            }
        }
        let _ = tags.contains(b"100rel");
    }
    for na in [msg.from(), msg.to()].into_iter().flatten() {
        check_name_addr(buf, &na);
    }
    for c in msg.contacts().flatten() {
        check_contact(buf, &c);
    }
    for na in msg.routes().chain(msg.record_routes()).flatten() {
        assert!(na.angle, "Route / Record-Route accepted without <>");
        check_name_addr(buf, &na);
    }
    if let Ok(v) = msg.via() {
        let top = range_in(buf, msg.top_via().unwrap());
        assert_sub(&top, &range_in(buf, v.protocol), "Via protocol");
        assert_sub(&top, &range_in(buf, v.params.as_bytes()), "Via params");
        check_via(buf, &v);
    }
    for c in msg
        .authorizations()
        .chain(msg.proxy_authorizations())
        .flatten()
    {
        check_credentials(buf, &c);
    }
    for c in msg
        .www_authenticates()
        .chain(msg.proxy_authenticates())
        .flatten()
    {
        check_challenge(buf, &c);
    }
    if let Err(e) = msg.check() {
        let _ = e.reason();
        let _ = e.is_answerable();
    } else {
        // A checked message has what `check` promises (RFC 3261 §8.1.1).
        assert!(msg.via().is_ok());
        assert!(msg.from().is_ok() && msg.to().is_ok());
        assert!(msg.call_id().is_ok() && msg.cseq().is_ok());
        if let (Some(m), Ok(c)) = (msg.method(), msg.cseq()) {
            assert_eq!(m, c.method, "check passed a CSeq method mismatch");
        }
        if msg.is_request() {
            assert!(msg.max_forwards().is_ok());
            assert!(Uri::parse(msg.request_uri().unwrap()).is_ok());
        }
    }

    // Value-level decoders on every value and list element.
    for h in msg.headers() {
        let v = msg.value(h);
        assert_sub(&whole, &range_in(buf, v), "value");
        decode_all(buf, v);
        if text::find_unquoted(v, b',').is_some() {
            for e in text::CommaList::new(v) {
                decode_all(buf, e);
            }
        }
    }
}

/// Every value-level decoder on one text of the buffer.
fn decode_all(buf: &[u8], v: &[u8]) {
    check_uri(buf, v);
    check_uri(buf, text::trim(v));
    if let Ok(na) = NameAddr::parse(v) {
        check_name_addr(buf, &na);
        match NameAddr::parse_name_addr(v) {
            Ok(na2) => assert_eq!(na, na2),
            Err(_) => assert!(!na.angle),
        }
    } else {
        assert!(NameAddr::parse_name_addr(v).is_err());
    }
    if let Ok(c) = Contact::parse(v) {
        check_contact(buf, &c);
    }
    if let Ok(via) = Via::parse(v) {
        check_via(buf, &via);
    }
    if let Ok(c) = CSeq::parse(v) {
        assert!(c.seq <= MAX_CSEQ);
        assert_eq!(Method::parse(c.method.as_bytes()), Some(c.method));
    }
    if let Ok(ct) = ContentType::parse(v) {
        check_content_type(buf, &ct);
    }
    if let Ok(c) = Credentials::parse(v) {
        check_credentials(buf, &c);
    }
    if let Ok(c) = Challenge::parse(v) {
        check_challenge(buf, &c);
    }
    if let Ok(q) = QValue::parse(text::trim(v)) {
        assert!(q.thousandths() <= 1000);
        assert_eq!(QValue::from_thousandths(q.thousandths()), Some(q));
    }
    let _ = parse_delta_seconds(text::trim(v));
}

fn check_content_type(buf: &[u8], ct: &ContentType) {
    assert!(text::is_token_str(ct.mtype) && text::is_token_str(ct.subtype));
    range_in(buf, ct.mtype);
    range_in(buf, ct.subtype);
    assert!(ct.is(
        &String::from_utf8_lossy(ct.mtype),
        &String::from_utf8_lossy(ct.subtype)
    ));
    let _ = ct.is_sdp();
    let _ = ct.param("charset");
    check_param_list(buf, &ct.params);
}

/// A URI decoder run on any text; when it accepts, the parts are consistent.
pub fn check_uri(buf: &[u8], s: &[u8]) {
    let Ok(uri) = Uri::parse(s) else { return };
    assert_eq!(uri.as_bytes(), s);
    let sr = range_in(buf, s);
    assert!(uri.same_as(&uri), "URI not the same as itself: {uri}");
    // Printing is exact, so the printed URI parses to an equal one.
    let printed = uri.to_string();
    let again = Uri::parse(printed.as_bytes()).expect("a printed URI re-parses");
    assert!(again.same_as(&uri) && uri.same_as(&again));
    match uri {
        Uri::Sip(u) => {
            assert_eq!(uri.as_sip().map(|x| x.raw), Some(s));
            for part in [u.user, u.password, u.headers].into_iter().flatten() {
                assert_sub(&sr, &range_in(buf, part), "URI part");
            }
            assert_sub(&sr, &range_in(buf, u.params.as_bytes()), "URI params");
            check_param_list(buf, &u.params);
            if let Host::Domain(d) = u.host {
                assert_sub(&sr, &range_in(buf, d.as_bytes()), "URI host");
            }
            let _ = (
                u.transport(),
                u.lr(),
                u.maddr(),
                u.user_param(),
                u.method_param(),
            );
            if let Ok(Some(ttl)) = u.ttl() {
                let _ = ttl;
            }
            let port = u.port_or_default();
            assert!(u.targets(&u.host, port));
            if let Some(user) = u.user_unescaped() {
                assert!(user.len() <= u.user.unwrap().len());
                assert!(u.user_is(&user), "user_is misses its own unescaped user");
            } else {
                assert!(u.user.is_none() && !u.user_is(b""));
            }
            if let Some(p) = u.password_unescaped() {
                assert!(p.len() <= u.password.unwrap().len());
            }
        }
        Uri::Tel(t) => {
            assert_sub(&sr, &range_in(buf, t.number), "tel number");
            assert!(!t.number.is_empty());
            let _ = (t.is_global(), t.phone_context());
            check_param_list(buf, &t.params);
            assert!(t.same_as(&t));
        }
        Uri::Other {
            raw,
            scheme,
            opaque,
        } => {
            assert_eq!(raw, s);
            assert_sub(&sr, &range_in(buf, scheme), "scheme");
            assert_sub(&sr, &range_in(buf, opaque), "opaque part");
            assert!(uri.as_sip().is_none());
        }
    }
}

/// A parameter list a decoder returned: inside the buffer, lookups consistent.
fn check_param_list(buf: &[u8], params: &Params) {
    let raw = params.as_bytes();
    check_params(buf, raw);
    let _ = params.is_empty();
    let _ = params.validate();
}

fn check_name_addr(buf: &[u8], na: &NameAddr) {
    range_in(buf, na.uri);
    assert!(!na.uri.is_empty());
    if let Some(d) = na.display {
        range_in(buf, d);
    }
    if let Some(d) = na.display_unescaped() {
        assert!(d.len() <= na.display.unwrap().len());
    }
    check_param_list(buf, &na.params);
    // The header parameters are valid generic-params (`parse` validated them).
    assert!(na.params.validate().is_ok());
    if let Some(tag) = na.tag() {
        range_in(buf, tag);
    }
    if let Ok(uri) = na.parse_uri() {
        assert_eq!(uri.as_bytes(), na.uri);
    }
    check_uri(buf, na.uri);
}

fn check_contact(buf: &[u8], c: &Contact) {
    match c.addr() {
        None => assert_eq!(*c, Contact::Star),
        Some(na) => check_name_addr(buf, na),
    }
    let _ = c.expires();
    if let Ok(Some(q)) = c.q() {
        assert!(q.thousandths() <= 1000);
    }
    if let Some(i) = c.instance() {
        range_in(buf, i);
    }
    if let Some(r) = c.reg_id() {
        assert!(r >= 1 && r <= i32::MAX as u32);
    }
}

fn check_via(buf: &[u8], v: &Via) {
    range_in(buf, v.protocol);
    range_in(buf, v.version);
    assert!(text::is_token_str(v.protocol) && text::is_token_str(v.version));
    let t = v.transport.as_bytes();
    assert!(text::is_token_str(t));
    let _ = (
        v.transport.is_reliable(),
        v.transport.default_port(),
        v.transport.to_string(),
    );
    check_host(buf, &v.sent_by.host);
    check_param_list(buf, &v.params);
    assert!(v.params.validate().is_ok(), "Via accepted invalid params");
    let _ = v.is_sip_2_0();
    if let Some(b) = v.branch() {
        assert!(
            text::is_token_str(b),
            "Via accepted a branch that is not a token"
        );
        let _ = v.has_magic_cookie();
    }
    let _ = v.received();
    if let Some(Some(p)) = v.rport() {
        let _ = p;
    }
    if let Some(Ok(h)) = v.maddr() {
        check_host(buf, &h);
    }
    if v.params.contains(b"ttl") {
        assert!(v.ttl().is_some(), "Via accepted a bad ttl");
    }
    assert_eq!(
        v.port_or_default(),
        v.sent_by.port.unwrap_or(v.transport.default_port())
    );
}

fn check_credentials(buf: &[u8], c: &Credentials) {
    range_in(buf, c.scheme());
    assert!(!c.scheme().is_empty());
    let _ = c.is_digest();
    if let Some(t) = c.token68() {
        range_in(buf, t);
    }
    let mut n = 0;
    for p in c.params() {
        n += 1;
        assert!(n <= buf.len());
        range_in(buf, p.name);
        range_in(buf, p.value);
        let _ = (p.is_quoted(), p.unquoted());
        if let Ok(name) = std::str::from_utf8(p.name) {
            assert!(c.param(name).is_some(), "param() misses {name}");
        }
    }
    for x in [
        c.realm(),
        c.nonce(),
        c.opaque(),
        c.algorithm(),
        c.username(),
        c.username_ext(),
        c.uri(),
        c.response(),
        c.cnonce(),
        c.qop(),
    ]
    .into_iter()
    .flatten()
    {
        range_in(buf, x);
    }
    let _ = (c.userhash(), c.nc());
}

fn check_challenge(buf: &[u8], c: &Challenge) {
    range_in(buf, c.scheme());
    let _ = c.is_digest();
    if let Some(t) = c.token68() {
        range_in(buf, t);
    }
    let mut n = 0;
    for p in c.params() {
        n += 1;
        assert!(n <= buf.len());
        range_in(buf, p.name);
        range_in(buf, p.value);
        if let Ok(name) = std::str::from_utf8(p.name) {
            assert!(c.param(name).is_some(), "param() misses {name}");
        }
    }
    for x in [c.realm(), c.nonce(), c.opaque(), c.algorithm(), c.charset()]
        .into_iter()
        .flatten()
    {
        range_in(buf, x);
    }
    if let Some(d) = c.domain() {
        for u in d {
            range_in(buf, u);
        }
    }
    if let Some(q) = c.qop_options() {
        for o in q {
            range_in(buf, o);
        }
    }
    let _ = (c.stale(), c.offers_qop(b"auth"));
}
