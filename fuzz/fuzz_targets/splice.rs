//! Parse → splice → re-parse: the writer on any message the parser accepts.
//!
//! Input layout: byte 0 and byte 1 choose the edits (bits below), byte 2 the
//! status code and reason of the generated response; the rest is the message.
//!
//! Whenever the input parses and a writer returns `Ok`, its output must parse
//! (DESIGN.md §4, RFC 3261 §16.6) and:
//! - `forward_request`: carry our edits and nothing else changed — our Via on top,
//!   our Record-Route values on top, the Max-Forwards we set, the new Request-URI,
//!   the preloaded Route set on top of the received one without its leading values /
//!   last value, `received` / `rport` on the
//!   received top Via, every other header line byte for byte, the same body;
//! - `forward_response`: the Via values but the first, every other header line as
//!   received, the same body;
//! - `forward_response_with`: the same, plus the extra lines at the end of the
//!   header section (§16.7 step 7);
//! - `write_response`: the status asked for, every Via line, the From, Call-ID and
//!   CSeq lines as received, an empty body;
//! - `write_cancel` / `write_ack` (to the generated response): the Request-URI,
//!   only the top Via value, the Route lines, From, Call-ID as received, the CSeq
//!   number with the new method, the To of the request / response, no body
//!   (§9.1, §17.1.1.3).
#![no_main]

use std::net::IpAddr;

use coresip::sip::error::ParseError;
use coresip::sip::header::HeaderName;
use coresip::sip::message::Message;
use coresip::sip::params::Params;
use coresip::sip::via::Via;
use coresip::sip::writer::{
    forward_request, forward_response, forward_response_with, write_ack, write_cancel,
    write_response, RequestEdits, ViaReceived,
};
use libfuzzer_sys::fuzz_target;

mod common;

const OUR_VIA: &[u8] = b"SIP/2.0/TCP [2001:db8::7]:5060;branch=z9hG4bKcoresip.7;rport";
const OUR_RR: [&[u8]; 2] = [
    b"<sip:[2001:db8::7];transport=tcp;lr>",
    b"<sip:p.example.com;lr;ftag=a7>",
];
const FIXED_URI: &[u8] = b"sip:bob@192.0.2.4:5070;transport=tcp";
const TO_TAG: &[u8] = b"cs-8f2a";
const SOURCE_V4: &str = "192.0.2.77";
const SOURCE_V6: &str = "2001:db8::77";
const SOURCE_PORT: u16 = 40123;

// Bits of byte 0.
const E_VIA: u8 = 1;
const E_RR1: u8 = 2;
const E_RR2: u8 = 4;
const E_MAX_FORWARDS: u8 = 8;
const E_URI: u8 = 16;
/// With `E_REMOVE_SECOND_ROUTE` (byte 1): how many leading Route values to remove,
/// 0..=3 (two after our own double Record-Route, RFC 5658).
const E_REMOVE_FIRST_ROUTE: u8 = 32;
/// The new Request-URI is the message's own first Route or Contact value, as a
/// proxy routing on received data writes it, instead of a fixed one.
const E_URI_FROM_MESSAGE: u8 = 64;
/// The new Request-URI is the last Route value's URI, as for a strict-routing
/// previous hop (§16.4); combined with `E_REMOVE_LAST_ROUTE` that is §16.4 exactly.
const E_URI_FROM_LAST_ROUTE: u8 = 128;

// Bits of byte 1.
const E_REMOVE_LAST_ROUTE: u8 = 1;
const E_RECEIVED_V4: u8 = 2;
const E_RECEIVED_V6: u8 = 4;
const E_RPORT: u8 = 8;
/// Extra headers on the generated response.
const E_EXTRA: u8 = 16;
/// A To-tag for the generated response.
const E_TO_TAG: u8 = 32;
/// Adds 2 to the leading Route values removed (see `E_REMOVE_FIRST_ROUTE`).
const E_REMOVE_SECOND_ROUTE: u8 = 64;
/// A preloaded Route set (a registered contact's Path, RFC 3327 §5.3).
const E_ROUTE_PRELOAD: u8 = 128;
const PRELOAD: &[u8] = b"<sip:edge.example.com;lr>, <sip:[2001:db8::9]:5080;transport=tcp;lr>";
const PRELOAD_VALUES: [&[u8]; 2] = [
    b"<sip:edge.example.com;lr>",
    b"<sip:[2001:db8::9]:5080;transport=tcp;lr>",
];

fuzz_target!(|data: &[u8]| {
    let [flags, flags2, code_sel, msg_bytes @ ..] = data else {
        return;
    };
    let Ok(msg) = Message::parse(msg_bytes) else {
        return;
    };
    let mut out = Vec::new();
    if msg.is_request() {
        splice_request(&msg, *flags, *flags2, &mut out);
        out.clear();
        answer(&msg, *flags2, *code_sel, &mut out);
        if let Ok(resp) = Message::parse(&out) {
            let mut ack = Vec::new();
            hop_request(&msg, Some(&resp), &mut ack);
        }
        out.clear();
        hop_request(&msg, None, &mut out);
    } else {
        splice_response(&msg, &mut out);
        out.clear();
        splice_response_with(&msg, *flags2, &mut out);
    }
});

/// Raw bytes of every header line of `msg` for which `keep` says so, in order.
fn lines<'a>(msg: &Message<'a>, mut keep: impl FnMut(HeaderName, usize) -> bool) -> Vec<&'a [u8]> {
    let buf = msg.buf();
    let mut seen = [0usize; 256];
    msg.headers()
        .iter()
        .filter(|h| {
            let i = &mut seen[h.name as usize];
            *i += 1;
            keep(h.name, *i - 1)
        })
        .map(|h| &buf[h.line_range()])
        .collect()
}

/// Raw bytes of the first line called `name`.
fn first_line<'a>(msg: &Message<'a>, name: HeaderName) -> Option<&'a [u8]> {
    msg.find(name).map(|h| &msg.buf()[h.line_range()])
}

fn reparse<'o>(out: &'o [u8], what: &str) -> Message<'o> {
    match Message::parse(out) {
        Ok(m) => {
            common::check_message(out, &m);
            m
        }
        Err(e) => panic!(
            "{what} wrote a message that does not parse ({e:?}):\n{}",
            String::from_utf8_lossy(out)
        ),
    }
}

/// The URI of a name-addr value (inside `<…>` when there is one).
fn uri_of(v: &[u8]) -> &[u8] {
    match (
        v.iter().position(|&b| b == b'<'),
        v.iter().position(|&b| b == b'>'),
    ) {
        (Some(l), Some(r)) if l < r => &v[l + 1..r],
        _ => v,
    }
}

fn splice_request(msg: &Message, flags: u8, flags2: u8, out: &mut Vec<u8>) {
    let rr: &[&[u8]] = match (flags & E_RR1 != 0, flags & E_RR2 != 0) {
        (_, true) => &OUR_RR,
        (true, false) => &OUR_RR[..1],
        (false, false) => &[],
    };
    let request_uri = if flags & E_URI == 0 {
        None
    } else if flags & E_URI_FROM_LAST_ROUTE != 0 {
        msg.values(HeaderName::Route).last().map(uri_of)
    } else if flags & E_URI_FROM_MESSAGE != 0 {
        msg.values(HeaderName::Route)
            .chain(msg.values(HeaderName::Contact))
            .next()
            .map(uri_of)
    } else {
        Some(FIXED_URI)
    };
    let received: Option<IpAddr> = if flags2 & E_RECEIVED_V6 != 0 {
        SOURCE_V6.parse().ok()
    } else if flags2 & E_RECEIVED_V4 != 0 {
        SOURCE_V4.parse().ok()
    } else {
        None
    };
    let rport = (flags2 & E_RPORT != 0).then_some(SOURCE_PORT);
    let via_received =
        (received.is_some() || rport.is_some()).then_some(ViaReceived { received, rport });
    let max_forwards = (flags & E_MAX_FORWARDS != 0).then_some(69u8);
    let remove_first_routes = u8::from(flags & E_REMOVE_FIRST_ROUTE != 0)
        + 2 * u8::from(flags2 & E_REMOVE_SECOND_ROUTE != 0);
    let remove_last_route = flags2 & E_REMOVE_LAST_ROUTE != 0;
    let mut route_preload = (flags2 & E_ROUTE_PRELOAD != 0).then_some(PRELOAD);
    if route_preload.is_some()
        && skip_known_bugs()
        && first_route_line_removed(msg, remove_first_routes, remove_last_route)
    {
        // Known bug, fuzz/regressions/splice/route-preload-over-removed-line.
        route_preload = None;
    }
    let edits = RequestEdits {
        request_uri,
        via: (flags & E_VIA != 0).then_some(OUR_VIA),
        record_route: rr,
        max_forwards,
        remove_first_routes,
        remove_last_route,
        via_received,
        route_preload,
    };
    if forward_request(msg, &edits, out).is_err() {
        assert!(out.is_empty(), "a failed write left bytes in the output");
        return;
    }
    let fwd = reparse(out, "forward_request");

    // Start line: same method, the Request-URI asked for; untouched without one.
    assert_eq!(fwd.method(), msg.method());
    assert_eq!(fwd.request_uri(), request_uri.or(msg.request_uri()));
    if request_uri.is_none() {
        assert_eq!(
            &out[fwd.start_line_range()],
            &msg.buf()[msg.start_line_range()]
        );
    }

    // Via: ours on top of the received ones; the received top one with
    // `received` / `rport` filled in (RFC 3261 §18.2.1, RFC 3581 §4).
    let ours_via = usize::from(edits.via.is_some());
    let in_vias: Vec<&[u8]> = msg.values(HeaderName::Via).collect();
    let out_vias: Vec<&[u8]> = fwd.values(HeaderName::Via).collect();
    assert_eq!(out_vias.len(), in_vias.len() + ours_via, "Via count");
    if edits.via.is_some() {
        assert_eq!(out_vias[0], OUR_VIA);
    }
    let stamped = via_received.is_some() && !in_vias.is_empty();
    let skip_top = usize::from(stamped);
    assert_eq!(
        out_vias[ours_via + skip_top..],
        in_vias[skip_top..],
        "Via values below the top one changed"
    );
    if stamped {
        let (before, after) = (in_vias[0], out_vias[ours_via]);
        if Via::parse(before).is_ok() {
            let p = Params::new(after);
            if let Some(ip) = received {
                assert_eq!(
                    p.value(b"received"),
                    Some(ip.to_string().as_bytes()),
                    "received not set on the top Via"
                );
            }
            if Params::new(before).contains(b"rport") {
                if let Some(port) = rport {
                    assert_eq!(p.value(b"rport"), Some(port.to_string().as_bytes()));
                }
            } else {
                assert!(!p.contains(b"rport"), "rport added unasked");
            }
            assert!(Via::parse(after).is_ok(), "a valid Via made invalid");
        }
    }

    // Record-Route: ours on top.
    let mut rrs: Vec<&[u8]> = rr.to_vec();
    rrs.extend(msg.values(HeaderName::RecordRoute));
    assert_eq!(fwd.values(HeaderName::RecordRoute).collect::<Vec<_>>(), rrs);

    // Max-Forwards: the one set, or as received.
    match max_forwards {
        Some(_) => assert_eq!(fwd.header(HeaderName::MaxForwards), Some(&b"69"[..])),
        None => assert_eq!(
            fwd.header(HeaderName::MaxForwards),
            msg.header(HeaderName::MaxForwards)
        ),
    }

    // Route: the received set, without its first and / or last value when asked.
    let in_routes: Vec<&[u8]> = msg.values(HeaderName::Route).collect();
    let n = in_routes.len();
    let preloaded: &[&[u8]] = if edits.route_preload.is_some() {
        &PRELOAD_VALUES
    } else {
        &[]
    };
    let routes: Vec<&[u8]> = preloaded
        .iter()
        .copied()
        .chain(
            in_routes
                .iter()
                .copied()
                .enumerate()
                .filter(|&(i, _)| {
                    !(i < usize::from(edits.remove_first_routes)
                        || edits.remove_last_route && i + 1 == n)
                })
                .map(|(_, v)| v),
        )
        .collect();
    assert_eq!(fwd.values(HeaderName::Route).collect::<Vec<_>>(), routes);
    // A Route line is dropped with its last value, never left empty (`Route` needs
    // at least one value, RFC 3261 §20.34).
    if !msg
        .all(HeaderName::Route)
        .any(|g| text_is_blank(msg.value(g)))
    {
        for h in fwd.all(HeaderName::Route) {
            assert!(
                !text_is_blank(fwd.value(h)),
                "forward_request left an empty Route line"
            );
        }
    }

    // Every other line byte for byte, in order. Edited names are left out on both
    // sides; on the output side only our inserted lines are left out.
    let untouched = |name: HeaderName| match name {
        HeaderName::MaxForwards => max_forwards.is_none(),
        HeaderName::Route => {
            edits.remove_first_routes == 0
                && !edits.remove_last_route
                && edits.route_preload.is_none()
        }
        HeaderName::Via => !stamped,
        _ => true,
    };
    let ours_rr = rr.len();
    let before = lines(msg, |n, _| untouched(n));
    let after = lines(&fwd, |n, i| {
        untouched(n)
            && match n {
                HeaderName::Via => i >= ours_via,
                HeaderName::RecordRoute => i >= ours_rr,
                _ => true,
            }
    });
    assert_eq!(
        before, after,
        "forward_request changed lines it should not touch"
    );

    assert_eq!(fwd.body(), msg.body(), "forward_request changed the body");
    assert_eq!(fwd.content_length(), msg.content_length());
}

/// True when `CORESIP_FUZZ_SKIP_KNOWN=1`: inputs that hit a bug already reported
/// (a file under fuzz/regressions/) are steered around it, so that a long run
/// explores the rest instead of stopping at the known crash. Unset, every check
/// is on and the regression files reproduce their crash.
fn skip_known_bugs() -> bool {
    static SKIP: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *SKIP.get_or_init(|| std::env::var_os("CORESIP_FUZZ_SKIP_KNOWN").is_some_and(|v| v == "1"))
}

/// The condition of fuzz/regressions/splice/route-preload-over-removed-line: the
/// first Route line loses all its values, so its removal starts where the
/// preloaded Route line is inserted, and `forward_request` pushes the removal
/// before the insertion — `writer::splice` then sees an op starting before its
/// cursor.
fn first_route_line_removed(msg: &Message, first_n: u8, last: bool) -> bool {
    let Some(h) = msg.find(HeaderName::Route) else {
        return false;
    };
    let total = msg.values(HeaderName::Route).count();
    let on_line = coresip::sip::text::CommaList::new(msg.value(h)).count();
    on_line > 0 && (0..on_line).all(|i| i < usize::from(first_n) || last && i + 1 == total)
}

/// True for a value with no list element (empty, or only commas and white space).
fn text_is_blank(v: &[u8]) -> bool {
    coresip::sip::text::CommaList::new(v).next().is_none()
}

fn splice_response(msg: &Message, out: &mut Vec<u8>) {
    if forward_response(msg, out).is_err() {
        assert!(out.is_empty(), "a failed write left bytes in the output");
        assert!(msg.values(HeaderName::Via).nth(1).is_none());
        return;
    }
    let fwd = reparse(out, "forward_response");
    assert_eq!(fwd.status(), msg.status());
    let vias: Vec<&[u8]> = msg.values(HeaderName::Via).skip(1).collect();
    assert_eq!(fwd.values(HeaderName::Via).collect::<Vec<_>>(), vias);
    let before = lines(msg, |n, _| n != HeaderName::Via);
    let after = lines(&fwd, |n, _| n != HeaderName::Via);
    assert_eq!(
        before, after,
        "forward_response changed lines other than Via"
    );
    assert_eq!(fwd.body(), msg.body(), "forward_response changed the body");
}

/// Extra lines a forking proxy adds to the 401/407 it forwards.
const COLLECTED: &[u8] = b"WWW-Authenticate: Digest realm=\"b.example.com\", nonce=\"n2\"\r\n\
Proxy-Authenticate: Digest realm=\"p.example.com\", nonce=\"n3\", qop=\"auth\"\r\n";

fn splice_response_with(msg: &Message, flags2: u8, out: &mut Vec<u8>) {
    let extra = if flags2 & E_EXTRA != 0 {
        COLLECTED
    } else {
        &[][..]
    };
    if forward_response_with(msg, extra, out).is_err() {
        assert!(out.is_empty(), "a failed write left bytes in the output");
        assert!(msg.values(HeaderName::Via).nth(1).is_none());
        return;
    }
    let fwd = reparse(out, "forward_response_with");
    assert_eq!(fwd.status(), msg.status());
    let vias: Vec<&[u8]> = msg.values(HeaderName::Via).skip(1).collect();
    assert_eq!(fwd.values(HeaderName::Via).collect::<Vec<_>>(), vias);
    // Every line but Via as received, then the extra lines.
    let mut before = lines(msg, |n, _| n != HeaderName::Via);
    let extra_lines: Vec<&[u8]> = extra.split_inclusive(|&b| b == b'\n').collect();
    before.extend(extra_lines);
    let after = lines(&fwd, |n, _| n != HeaderName::Via);
    assert_eq!(before, after, "forward_response_with: lines other than Via");
    assert_eq!(
        fwd.body(),
        msg.body(),
        "forward_response_with changed the body"
    );
}

/// `write_cancel` (no `resp`) or `write_ack` for `req`.
fn hop_request(req: &Message, resp: Option<&Message>, out: &mut Vec<u8>) {
    let (what, method, written) = match resp {
        None => ("write_cancel", &b"CANCEL"[..], write_cancel(req, out)),
        Some(r) => ("write_ack", &b"ACK"[..], write_ack(req, r, out)),
    };
    if written.is_err() {
        assert!(out.is_empty(), "a failed write left bytes in the output");
        assert!(req.top_via().is_none() || req.cseq().is_err());
        return;
    }
    let m = reparse(out, what);
    assert_eq!(m.method().map(|x| x.as_bytes()), Some(method));
    assert_eq!(m.request_uri(), req.request_uri());
    assert_eq!(
        m.values(HeaderName::Via).collect::<Vec<_>>(),
        req.top_via().into_iter().collect::<Vec<_>>(),
        "{what}: Via is not the request's top value"
    );
    assert_eq!(
        lines(&m, |n, _| n == HeaderName::Route),
        lines(req, |n, _| n == HeaderName::Route),
        "{what}: Route lines"
    );
    for name in [HeaderName::From, HeaderName::CallId] {
        assert_eq!(
            first_line(&m, name),
            first_line(req, name),
            "{what}: {name:?}"
        );
    }
    let to = match resp {
        Some(r) => first_line(r, HeaderName::To),
        None => first_line(req, HeaderName::To),
    };
    assert_eq!(first_line(&m, HeaderName::To), to);
    let cseq = m.cseq().expect("the written CSeq decodes");
    assert_eq!(cseq.seq, req.cseq().unwrap().seq);
    assert_eq!(cseq.method.as_bytes(), method);
    assert_eq!(m.max_forwards(), Ok(Some(70)));
    assert!(m.body().is_empty());
}

fn answer(msg: &Message, flags2: u8, code_sel: u8, out: &mut Vec<u8>) {
    // Codes a proxy or registrar sends, and now and then an invalid one.
    let code = match code_sel % 8 {
        0 => 100,
        1 => 200,
        2 => 400,
        3 => 401,
        4 => 483,
        5 => 503,
        6 => 100 + u16::from(code_sel),
        _ => u16::from(code_sel) * 3,
    };
    // A 400 names the faulty element (ParseError::reason).
    let reason = match code_sel % 5 {
        0 => "Bad Request",
        1 => ParseError::InvalidCSeq.reason(),
        2 => ParseError::MissingContentLength.reason(),
        3 => "",
        _ => "Trying",
    };
    let extra: &[(&str, &[u8])] = if flags2 & E_EXTRA != 0 {
        &[
            ("Server", b"coresip"),
            (
                "WWW-Authenticate",
                b"Digest realm=\"example.com\", nonce=\"a1b2\", algorithm=SHA-256, qop=\"auth\"",
            ),
        ]
    } else {
        &[]
    };
    let tag = (flags2 & E_TO_TAG != 0).then_some(TO_TAG);
    if write_response(msg, code, reason.as_bytes(), tag, extra, out).is_err() {
        assert!(out.is_empty(), "a failed write left bytes in the output");
        assert!(
            !(100..=699).contains(&code),
            "write_response refused a valid answer"
        );
        return;
    }
    let resp = reparse(out, "write_response");
    assert_eq!(resp.status(), Some(code));
    assert!(resp.body().is_empty());
    assert_eq!(resp.content_length(), Ok(Some(0)));
    assert_eq!(
        lines(&resp, |n, _| n == HeaderName::Via),
        lines(msg, |n, _| n == HeaderName::Via)
    );
    for name in [HeaderName::From, HeaderName::CallId, HeaderName::CSeq] {
        assert_eq!(
            first_line(&resp, name),
            first_line(msg, name),
            "{name:?} not copied as received"
        );
    }
    assert_eq!(
        resp.find(HeaderName::To).is_some(),
        msg.find(HeaderName::To).is_some()
    );
    assert_eq!(resp.header_raw(b"Server").is_some(), flags2 & E_EXTRA != 0);
}
