//! Writing messages: forwarding by splicing (DESIGN.md §4) and building the
//! responses a proxy or registrar generates itself (RFC 3261 §8.2.6).
//!
//! A forwarded message is the received bytes with a few edits applied: unchanged
//! byte ranges are copied, our header lines are inserted, a few values are replaced
//! or removed. Nothing is rebuilt from a parsed tree, and the only allocation is
//! growing the caller's reused output buffer.
//!
//! Every function appends to `out` and leaves it untouched when it returns an error.

use std::io::Write as _;
use std::net::IpAddr;
use std::ops::Range;

use memchr::{memchr, memchr2};
use smallvec::SmallVec;
use thiserror::Error;

use super::header::HeaderName;
use super::message::{Header, Message};
use super::params::Params;
use super::text::{eq_ic, find_unquoted, is_token_str, CommaList};

/// Why a message was not written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum WriteError {
    /// A request was needed (forwarding a request, answering one).
    #[error("not a request")]
    NotARequest,
    /// A response was needed.
    #[error("not a response")]
    NotAResponse,
    /// The response has no Via value left to send it to once the top one is
    /// removed: it was meant for this element (RFC 3261 §16.7 step 3).
    #[error("no Via left to forward to")]
    NoVia,
    /// A value given to write would break the message: a line break (header
    /// injection), white space in a Request-URI, a tag or header name that is not a
    /// token.
    #[error("value cannot be written")]
    InvalidValue,
    /// The status code is not in 100..=699.
    #[error("invalid status code")]
    InvalidStatus,
}

/// The edits a proxy applies to a request it forwards (RFC 3261 §16.6). Fields left
/// at their default leave that part of the request as received:
///
/// ```
/// # use coresip::sip::writer::RequestEdits;
/// let rr: &[&[u8]] = &[b"<sip:p.example.com;lr>"];
/// let edits = RequestEdits {
///     via: Some(b"SIP/2.0/UDP p.example.com;branch=z9hG4bK0a1"),
///     record_route: rr,
///     max_forwards: Some(69),
///     ..RequestEdits::default()
/// };
/// # let _ = edits;
/// ```
///
/// Values are given without the header name or line end; the writer adds
/// `Via: `, `Record-Route: ` and CRLF.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestEdits<'e> {
    /// The new Request-URI (§16.6 steps 2 and 6).
    pub request_uri: Option<&'e [u8]>,
    /// Our Via value, written as the topmost Via (§16.6 step 8).
    pub via: Option<&'e [u8]>,
    /// Our Record-Route values, first is topmost; they are written above every
    /// Record-Route value already present (§16.6 step 4). Two values are the
    /// double record-routing of RFC 5658.
    pub record_route: &'e [&'e [u8]],
    /// The Max-Forwards value to send (§16.6 step 3): replaces the value received,
    /// or adds the header when the request had none.
    pub max_forwards: Option<u8>,
    /// How many leading Route values to drop (§16.4: they name this proxy — two
    /// after double record-routing; §16.6 step 6 for a strict-routing next hop whose
    /// URI becomes the Request-URI).
    pub remove_first_routes: u8,
    /// Drop the last Route value (§16.4: the previous hop was a strict router, so
    /// the Request-URI holds our Record-Route URI and the last Route value is the
    /// real Request-URI, which the caller passes as `request_uri`).
    pub remove_last_route: bool,
    /// What the receiving transport records on the topmost Via (§18.2.1, RFC 3581).
    pub via_received: Option<ViaReceived>,
    /// A preloaded Route set, as one header value (`<sip:a;lr>, <sip:b;lr>`), written
    /// above any Route already there: a registered contact's Path (RFC 3327 §5.3).
    pub route_preload: Option<&'e [u8]>,
}

/// The `received` and `rport` parameters a server transport sets on the topmost
/// Via of a request it received (RFC 3261 §18.2.1, RFC 3581 §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ViaReceived {
    /// The packet's source address: written as `;received=`, replacing a value
    /// already there. `None` leaves `received` alone.
    pub received: Option<IpAddr>,
    /// The packet's source port: fills in an `rport` parameter the client put
    /// there (RFC 3581 §4 — only when it asked for it). `None` leaves it alone.
    pub rport: Option<u16>,
}

/// Writes `req` with `edits` applied, for sending to the next hop.
///
/// Placement: our Via line goes right before the first Via line. Our Record-Route
/// lines go right before the first Record-Route line, or when there is none, first
/// after the start line; either way our values are topmost, which is all that
/// matters, since only the order of lines of the same name is significant
/// (RFC 3261 §7.3.1). An added Max-Forwards line also goes first after the start
/// line. Removing the first Route value keeps the rest of a comma list on its line
/// (`Route: <sip:p1;lr>, <sip:p2;lr>` becomes `Route: <sip:p2;lr>`) and drops the
/// line when it held only that value. Content-Length and the body are copied as
/// they are: the body is not touched.
pub fn forward_request(
    req: &Message,
    edits: &RequestEdits,
    out: &mut Vec<u8>,
) -> Result<(), WriteError> {
    let Some(uri) = req.request_uri() else {
        return Err(WriteError::NotARequest);
    };
    if let Some(new_uri) = edits.request_uri {
        // RFC 3261 §25.1: the Request-URI is delimited by SP.
        if new_uri.is_empty() || new_uri.iter().any(|&b| b <= b' ' || b == 0x7f) {
            return Err(WriteError::InvalidValue);
        }
    }
    let values = edits
        .via
        .iter()
        .chain(edits.record_route)
        .chain(edits.route_preload.iter());
    for v in values {
        check_value(v)?;
    }

    let top = req.start_line_range().end;
    // At most one op per field of `edits` (two for `via_received`): never spills.
    let mut ops: SmallVec<[Op; 8]> = SmallVec::new();
    let mut push = |op| ops.push(op);
    // Pushed in the order they are written when they share an offset: insertions
    // before a removal that starts at the same line.
    if let Some(new_uri) = edits.request_uri {
        let at = req.offset_of(uri);
        push(Op::replace(at..at + uri.len(), Piece::Bytes(new_uri)));
    }
    // Record-Route first: when it goes right after the start line, it then stays
    // above our Via instead of splitting the Via lines apart (legal, §7.3.1, but
    // many tools read the Via set as one block).
    if !edits.record_route.is_empty() {
        let at = req
            .find(HeaderName::RecordRoute)
            .map_or(top, |h| h.line_range().start);
        push(Op::insert(at, Piece::RecordRoute(edits.record_route)));
    }
    if let Some(via) = edits.via {
        let at = req
            .find(HeaderName::Via)
            .map_or(top, |h| h.line_range().start);
        push(Op::insert(at, Piece::Via(via)));
    }
    if let Some(mf) = edits.max_forwards {
        match req.find(HeaderName::MaxForwards) {
            Some(h) => push(Op::replace(h.value_range(), Piece::Number(mf))),
            None => push(Op::insert(top, Piece::MaxForwards(mf))),
        }
    }
    // The preloaded Route goes in before the Route removals: when the first Route
    // line is removed whole, both start at that line, and insertions must come
    // first at a shared offset (found by fuzzing: fuzz/regressions/splice/).
    if let Some(route) = edits.route_preload {
        let at = req
            .find(HeaderName::Route)
            .map_or(top, |h| h.line_range().start);
        push(Op::insert(at, Piece::Route(route)));
    }
    if edits.remove_first_routes > 0 || edits.remove_last_route {
        let total = if edits.remove_last_route {
            req.values(HeaderName::Route).count()
        } else {
            0
        };
        let first = usize::from(edits.remove_first_routes);
        let removed = |i: usize| i < first || (edits.remove_last_route && i + 1 == total);
        values_cut(req, HeaderName::Route, removed, &mut |cut| {
            push(Op::replace(cut, Piece::Nothing))
        });
    }
    // The top Via is looked up (a comma split of its line) only when it is to be
    // edited: a tuple pattern would evaluate `top_via()` for every request.
    if let Some((vr, top)) = edits.via_received.and_then(|vr| Some((vr, req.top_via()?))) {
        let params = Params::new(top);
        if let Some(port) = vr.rport {
            if let Some(p) = params.into_iter().find(|p| eq_ic(p.name, b"rport")) {
                let at = req.offset_of(p.name);
                let end = p
                    .value
                    .map_or(at + p.name.len(), |v| req.offset_of(v) + v.len());
                push(Op::replace(at..end, Piece::Rport(port)));
            }
        }
        if let Some(ip) = vr.received {
            match params.into_iter().find(|p| eq_ic(p.name, b"received")) {
                Some(p) => {
                    let at = req.offset_of(p.name);
                    let end = p
                        .value
                        .map_or(at + p.name.len(), |v| req.offset_of(v) + v.len());
                    push(Op::replace(at..end, Piece::Received(ip, false)));
                }
                None => push(Op::insert(
                    req.offset_of(top) + top.len(),
                    Piece::Received(ip, true),
                )),
            }
        }
    }
    // Stable: keeps the push order among ops at one offset.
    ops.sort_by_key(|op| op.range.start);
    splice(req, &ops, out);
    Ok(())
}

/// Writes `resp` without its topmost Via value, for sending to the element that
/// value names (RFC 3261 §16.7 step 3). Only that value goes: when the top Via line
/// is a comma list, the rest of it stays.
///
/// Fails with [`WriteError::NoVia`] when no Via value would remain: such a response
/// answers a request this element sent and is not forwarded.
pub fn forward_response(resp: &Message, out: &mut Vec<u8>) -> Result<(), WriteError> {
    forward_response_with(resp, &[], out)
}

/// [`forward_response`] with `extra_lines` (whole header lines, each ending in CRLF)
/// added at the end of the header section: the WWW-Authenticate and
/// Proxy-Authenticate values a forking proxy collects from every 401 and 407 into the
/// one it forwards (RFC 3261 §16.7 step 7).
pub fn forward_response_with(
    resp: &Message,
    extra_lines: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), WriteError> {
    if resp.is_request() {
        return Err(WriteError::NotAResponse);
    }
    let cut = top_via_cut(resp)?;
    if extra_lines.is_empty() {
        splice(resp, &[Op::replace(cut, Piece::Nothing)], out);
        return Ok(());
    }
    if !extra_lines.ends_with(b"\r\n") {
        return Err(WriteError::InvalidValue);
    }
    let end = resp.headers_end();
    splice(
        resp,
        &[
            Op::replace(cut, Piece::Nothing),
            Op::insert(end, Piece::Bytes(extra_lines)),
        ],
        out,
    );
    Ok(())
}

/// Writes the CANCEL for a request this element sent (RFC 3261 §9.1): the same
/// Request-URI, Call-ID, From, To and CSeq number, only the request's topmost Via
/// value (so the branch matches), its Route header lines, `Max-Forwards: 70`, no
/// body.
pub fn write_cancel(req: &Message, out: &mut Vec<u8>) -> Result<(), WriteError> {
    write_hop_request(req, None, b"CANCEL", out)
}

/// Writes the ACK for a non-2xx final response `resp` to INVITE `req`, which this
/// element sent (RFC 3261 §17.1.1.3): the request's Request-URI, Call-ID, From,
/// CSeq number, topmost Via value and Route lines; the response's To (with its tag).
pub fn write_ack(req: &Message, resp: &Message, out: &mut Vec<u8>) -> Result<(), WriteError> {
    if resp.is_request() {
        return Err(WriteError::NotAResponse);
    }
    write_hop_request(req, Some(resp), b"ACK", out)
}

fn write_hop_request(
    req: &Message,
    resp: Option<&Message>,
    method: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), WriteError> {
    let Some(uri) = req.request_uri() else {
        return Err(WriteError::NotARequest);
    };
    let via = req.top_via().ok_or(WriteError::NoVia)?;
    let cseq = req.cseq().map_err(|_| WriteError::InvalidValue)?;
    let buf = req.buf();
    out.extend_from_slice(method);
    out.push(b' ');
    out.extend_from_slice(uri);
    out.extend_from_slice(b" SIP/2.0\r\n");
    push_line(out, b"Via", via);
    for h in req.all(HeaderName::Route) {
        out.extend_from_slice(&buf[h.line_range()]);
    }
    out.extend_from_slice(b"Max-Forwards: 70\r\n");
    copy_line(req, HeaderName::From, out);
    match resp {
        Some(r) => copy_line(r, HeaderName::To, out),
        None => copy_line(req, HeaderName::To, out),
    }
    copy_line(req, HeaderName::CallId, out);
    out.extend_from_slice(b"CSeq: ");
    push_decimal_u32(out, cseq.seq);
    out.push(b' ');
    out.extend_from_slice(method);
    out.extend_from_slice(b"\r\nContent-Length: 0\r\n\r\n");
    Ok(())
}

/// Writes a response to `req` that this element generates (RFC 3261 §8.2.6):
/// status line; every Via line in order and the From, To, Call-ID and CSeq lines,
/// all copied as received (§8.2.6.2); `extra_headers` as `name: value` lines;
/// `Content-Length: 0` and the blank line.
///
/// When the request's To has no tag, `to_tag` is added to the response's To as
/// `;tag=…` (§8.2.6.2); an existing tag is kept and `to_tag` ignored. A `100 Trying`
/// never gets a tag (§8.2.6.2 exempts it, §17.2.1 says SHOULD NOT: it answers hop
/// by hop, not as a dialog peer), and copies the request's Timestamp (§8.2.6.1).
pub fn write_response(
    req: &Message,
    code: u16,
    reason: &[u8],
    to_tag: Option<&[u8]>,
    extra_headers: &[(&str, &[u8])],
    out: &mut Vec<u8>,
) -> Result<(), WriteError> {
    if !req.is_request() {
        return Err(WriteError::NotARequest);
    }
    if !(100..=699).contains(&code) {
        return Err(WriteError::InvalidStatus);
    }
    check_value(reason)?;
    if to_tag.is_some_and(|t| !is_token_str(t)) {
        return Err(WriteError::InvalidValue);
    }
    for (name, value) in extra_headers {
        if !is_token_str(name.as_bytes()) {
            return Err(WriteError::InvalidValue);
        }
        check_value(value)?;
    }

    let buf = req.buf();
    let to = req.find(HeaderName::To);
    // The tag to add to To, if any.
    let tag = match (to, to_tag) {
        (Some(h), Some(tag)) if code != 100 && !has_tag(req.value(h)) => Some(tag),
        _ => None,
    };
    // Copied as received, in this order; Timestamp only into a 100 (RFC 3261
    // §8.2.6.1; no delay is added: we answer at once).
    let lines = [
        req.find(HeaderName::From),
        to,
        req.find(HeaderName::CallId),
        req.find(HeaderName::CSeq),
        req.find(HeaderName::Timestamp).filter(|_| code == 100),
    ];

    // The exact length, so that the response takes one allocation of its size: a
    // server transaction keeps it for its retransmissions (§17.2.2).
    let line_len = |h: &Header| h.line_range().len();
    let len = STATUS_LINE_FIXED
        + reason.len()
        + req.all(HeaderName::Via).map(line_len).sum::<usize>()
        + lines.iter().flatten().map(|h| line_len(h)).sum::<usize>()
        + tag.map_or(0, |t| TAG_PARAM.len() + t.len())
        + extra_headers
            .iter()
            .map(|(n, v)| n.len() + 2 + v.len() + 2)
            .sum::<usize>()
        + NO_BODY.len();
    out.reserve(len);
    let start = out.len();

    out.extend_from_slice(b"SIP/2.0 ");
    push_decimal(out, code);
    out.push(b' ');
    out.extend_from_slice(reason);
    out.extend_from_slice(b"\r\n");
    for h in req.all(HeaderName::Via) {
        out.extend_from_slice(&buf[h.line_range()]);
    }
    for h in lines.iter().flatten() {
        match tag {
            Some(tag) if h.name == HeaderName::To => {
                // The tag goes right after the value, before its line end.
                let line = h.line_range();
                let value_end = h.value_range().end;
                out.extend_from_slice(&buf[line.start..value_end]);
                out.extend_from_slice(TAG_PARAM);
                out.extend_from_slice(tag);
                out.extend_from_slice(&buf[value_end..line.end]);
            }
            _ => out.extend_from_slice(&buf[h.line_range()]),
        }
    }
    for (name, value) in extra_headers {
        push_line(out, name.as_bytes(), value);
    }
    out.extend_from_slice(NO_BODY);
    debug_assert_eq!(out.len() - start, len, "response length computed exactly");
    Ok(())
}

/// `SIP/2.0 `, a three-digit status code, a space and the CRLF after the reason.
const STATUS_LINE_FIXED: usize = 8 + 3 + 1 + 2;
/// What [`write_response`] adds to a To without a tag, before the tag itself.
const TAG_PARAM: &[u8] = b";tag=";
/// The end of every response this element generates: no body.
const NO_BODY: &[u8] = b"Content-Length: 0\r\n\r\n";

/// What an [`Op`] writes in place of its range.
#[derive(Debug, Clone, Copy, Default)]
enum Piece<'e> {
    #[default]
    Nothing,
    Bytes(&'e [u8]),
    Number(u8),
    Via(&'e [u8]),
    RecordRoute(&'e [&'e [u8]]),
    MaxForwards(u8),
    /// A `Route:` line.
    Route(&'e [u8]),
    /// `rport=PORT`.
    Rport(u16),
    /// `received=IP`, with a leading `;` when appended.
    Received(IpAddr, bool),
}

/// One edit: replace `range` of the source (empty for an insertion) with `piece`.
#[derive(Debug, Clone, Default)]
struct Op<'e> {
    range: Range<usize>,
    piece: Piece<'e>,
}

impl<'e> Op<'e> {
    fn insert(at: usize, piece: Piece<'e>) -> Self {
        Op {
            range: at..at,
            piece,
        }
    }

    fn replace(range: Range<usize>, piece: Piece<'e>) -> Self {
        Op { range, piece }
    }
}

/// Copies the message's bytes (start line to end of body) into `out`, applying
/// `ops`, which are sorted by offset and do not overlap.
fn splice(msg: &Message, ops: &[Op], out: &mut Vec<u8>) {
    let buf = msg.buf();
    let start = msg.start_line_range().start;
    let end = start + msg.as_bytes().len();
    out.reserve(end - start + extra_len(ops));
    let mut cursor = start;
    for op in ops {
        debug_assert!(op.range.start >= cursor && op.range.end <= end);
        if let Some(unchanged) = buf.get(cursor..op.range.start) {
            out.extend_from_slice(unchanged);
        }
        write_piece(out, &op.piece);
        cursor = cursor.max(op.range.end);
    }
    if let Some(rest) = buf.get(cursor..end) {
        out.extend_from_slice(rest);
    }
}

/// Bytes the ops add at most, to size the output once.
fn extra_len(ops: &[Op]) -> usize {
    ops.iter()
        .map(|op| match op.piece {
            Piece::Nothing => 0,
            Piece::Bytes(b) => b.len(),
            Piece::Number(_) => 3,
            Piece::Via(v) => v.len() + 7,
            Piece::RecordRoute(rr) => rr.iter().map(|v| v.len() + 16).sum(),
            Piece::MaxForwards(_) => 19,
            Piece::Route(r) => r.len() + 9,
            Piece::Rport(_) => 11,
            Piece::Received(..) => 49,
        })
        .sum()
}

fn write_piece(out: &mut Vec<u8>, piece: &Piece) {
    match *piece {
        Piece::Nothing => {}
        Piece::Bytes(b) => out.extend_from_slice(b),
        Piece::Number(n) => push_decimal(out, n.into()),
        Piece::Via(v) => push_line(out, b"Via", v),
        Piece::RecordRoute(rr) => {
            for v in rr {
                push_line(out, b"Record-Route", v);
            }
        }
        Piece::MaxForwards(n) => {
            out.extend_from_slice(b"Max-Forwards: ");
            push_decimal(out, n.into());
            out.extend_from_slice(b"\r\n");
        }
        Piece::Route(r) => push_line(out, b"Route", r),
        Piece::Rport(port) => {
            out.extend_from_slice(b"rport=");
            push_decimal(out, port);
        }
        Piece::Received(ip, leading_semicolon) => {
            if leading_semicolon {
                out.push(b';');
            }
            // RFC 3261 §25.1: `received` is a bare IPv4address / IPv6address.
            // Writing into a Vec cannot fail.
            let _ = write!(out, "received={ip}");
        }
    }
}

/// The bytes to drop to remove the topmost Via value: the value up to the next one
/// when its line holds a comma list, otherwise the whole line (lines with no value
/// are passed over). [`WriteError::NoVia`] when no other Via value would remain.
/// One scan finds both, where asking "is there a second value?" first read the top
/// line twice for every forwarded response.
fn top_via_cut(resp: &Message) -> Result<Range<usize>, WriteError> {
    let mut lines = resp.all(HeaderName::Via);
    let (cut, more_on_line) = lines
        .by_ref()
        .find_map(|h: &Header| {
            let mut values = CommaList::new(resp.value(h));
            let first = values.next()?;
            Some(match values.next() {
                Some(second) => (resp.offset_of(first)..resp.offset_of(second), true),
                None => (h.line_range(), false),
            })
        })
        .ok_or(WriteError::NoVia)?;
    if more_on_line || lines.any(|h| CommaList::new(resp.value(h)).next().is_some()) {
        Ok(cut)
    } else {
        Err(WriteError::NoVia)
    }
}

/// Reports, through `cut`, the bytes to drop to remove the values of header `name`
/// whose index (counted across all its lines) satisfies `removed`: a line losing
/// every value goes whole; otherwise each run of removed values goes with the comma
/// that joined it to a kept neighbour, so the line stays a well-formed list.
fn values_cut(
    msg: &Message,
    name: HeaderName,
    removed: impl Fn(usize) -> bool,
    cut: &mut impl FnMut(Range<usize>),
) {
    let mut index = 0;
    for h in msg.all(name) {
        let values: SmallVec<[&[u8]; 8]> = CommaList::new(msg.value(h)).collect();
        let first = index;
        index += values.len();
        let gone = |i: usize| removed(first + i);
        if values.is_empty() || !(0..values.len()).any(gone) {
            continue;
        }
        if (0..values.len()).all(gone) {
            cut(h.line_range());
            continue;
        }
        let start = |v: &[u8]| msg.offset_of(v);
        let end = |v: &[u8]| msg.offset_of(v) + v.len();
        let mut i = 0;
        while i < values.len() {
            if !gone(i) {
                i += 1;
                continue;
            }
            let a = i;
            while i < values.len() && gone(i) {
                i += 1;
            }
            // The run is values[a..i]; some value on the line is kept.
            match values.get(i) {
                Some(next) => cut(start(values[a])..start(next)),
                None => cut(end(values[a - 1])..end(values[i - 1])),
            }
        }
    }
}

/// True when a To (or From) value carries a `tag` parameter. The header parameters
/// follow the `>` of a name-addr; in an addr-spec without brackets every `;`
/// parameter is a header parameter (RFC 3261 §20).
fn has_tag(value: &[u8]) -> bool {
    let params = match find_unquoted(value, b'<') {
        Some(lt) => match value.get(lt..).and_then(|v| memchr(b'>', v)) {
            Some(gt) => value.get(lt + gt + 1..).unwrap_or_default(),
            None => return false,
        },
        None => value,
    };
    Params::new(params).contains(b"tag")
}

/// Copies the first line of header `name`, if any, as received.
fn copy_line(msg: &Message, name: HeaderName, out: &mut Vec<u8>) {
    if let Some(h) = msg.find(name) {
        out.extend_from_slice(&msg.buf()[h.line_range()]);
    }
}

/// Writes `name: value CRLF`.
fn push_line(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Rejects a value that would end its header line early (header injection).
fn check_value(v: &[u8]) -> Result<(), WriteError> {
    match memchr2(b'\r', b'\n', v) {
        Some(_) => Err(WriteError::InvalidValue),
        None => Ok(()),
    }
}

fn push_decimal_u32(out: &mut Vec<u8>, n: u32) {
    out.extend_from_slice(super::text::decimal(n, &mut [0; 10]));
}

fn push_decimal(out: &mut Vec<u8>, n: u16) {
    push_decimal_u32(out, n.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An INVITE through one proxy already: two Vias (one a comma list), a Route set
    /// naming us first, a folded Subject, a body.
    const INVITE: &[u8] = b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP p1.example.com;branch=z9hG4bKp1, SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776\r\n\
Max-Forwards: 70\r\n\
Route: <sip:us.example.com;lr>, <sip:p2.example.com;lr>\r\n\
Record-Route: <sip:p1.example.com;lr>\r\n\
To: Bob <sip:bob@biloxi.example.com>\r\n\
From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\
CSeq: 314159 INVITE\r\n\
Subject: lunch\r\n\tat noon\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 4\r\n\
\r\n\
v=0\n";

    fn forward(msg: &[u8], edits: &RequestEdits) -> Vec<u8> {
        let m = Message::parse(msg).unwrap();
        let mut out = Vec::new();
        forward_request(&m, edits, &mut out).unwrap();
        // Every spliced message parses again.
        Message::parse(&out).unwrap();
        out
    }

    /// `msg` with `from` replaced by `to` exactly once.
    fn edited(msg: &[u8], from: &str, to: &str) -> Vec<u8> {
        let s = std::str::from_utf8(msg).unwrap();
        assert_eq!(s.matches(from).count(), 1, "{from}");
        s.replacen(from, to, 1).into_bytes()
    }

    fn s(b: &[u8]) -> &str {
        std::str::from_utf8(b).unwrap()
    }

    #[test]
    fn no_edits_copies_the_message() {
        let out = forward(INVITE, &RequestEdits::default());
        assert_eq!(out, INVITE);
    }

    #[test]
    fn leading_crlf_and_trailing_bytes_are_not_copied() {
        let mut msg = b"\r\n".to_vec();
        msg.extend_from_slice(INVITE);
        msg.extend_from_slice(b"junk after the body");
        assert_eq!(forward(&msg, &RequestEdits::default()), INVITE);
    }

    #[test]
    fn via_goes_on_top() {
        // RFC 3261 §16.6 step 8: before the existing Via values.
        let via = b"SIP/2.0/TCP us.example.com;branch=z9hG4bKus";
        let out = forward(
            INVITE,
            &RequestEdits {
                via: Some(via),
                ..Default::default()
            },
        );
        let want = edited(
            INVITE,
            "Via: SIP/2.0/UDP p1",
            "Via: SIP/2.0/TCP us.example.com;branch=z9hG4bKus\r\nVia: SIP/2.0/UDP p1",
        );
        assert_eq!(s(&out), s(&want));
        let m = Message::parse(&out).unwrap();
        assert_eq!(m.top_via(), Some(&via[..]));
        assert_eq!(m.values(HeaderName::Via).count(), 3);
    }

    #[test]
    fn record_route_goes_above_existing_values() {
        // RFC 3261 §16.6 step 4: ours is the topmost value.
        let rr: &[&[u8]] = &[b"<sip:us.example.com;lr>", b"<sips:us.example.com;lr>"];
        let out = forward(
            INVITE,
            &RequestEdits {
                record_route: rr,
                ..Default::default()
            },
        );
        let want = edited(
            INVITE,
            "Record-Route: <sip:p1",
            "Record-Route: <sip:us.example.com;lr>\r\n\
             Record-Route: <sips:us.example.com;lr>\r\n\
             Record-Route: <sip:p1",
        );
        assert_eq!(s(&out), s(&want));
        let m = Message::parse(&out).unwrap();
        let values: Vec<&[u8]> = m.values(HeaderName::RecordRoute).collect();
        assert_eq!(values[..2], *rr);
        assert_eq!(values.len(), 3);
    }

    #[test]
    fn record_route_without_existing_goes_after_start_line() {
        let msg = b"OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/UDP a;branch=z9hG4bK1\r\nl: 0\r\n\r\n";
        let rr: &[&[u8]] = &[b"<sip:us;lr>"];
        let out = forward(
            msg,
            &RequestEdits {
                record_route: rr,
                via: Some(b"SIP/2.0/UDP us;branch=z9hG4bK2"),
                ..Default::default()
            },
        );
        // Via is the first header, so both insertions share the offset: the
        // Record-Route goes first, keeping the Via lines together.
        assert_eq!(
            s(&out),
            "OPTIONS sip:x SIP/2.0\r\n\
             Record-Route: <sip:us;lr>\r\n\
             Via: SIP/2.0/UDP us;branch=z9hG4bK2\r\n\
             Via: SIP/2.0/UDP a;branch=z9hG4bK1\r\nl: 0\r\n\r\n"
        );
    }

    #[test]
    fn request_uri_replaced() {
        let out = forward(
            INVITE,
            &RequestEdits {
                request_uri: Some(b"sip:bob@192.0.2.4:5070;transport=tcp"),
                ..Default::default()
            },
        );
        let want = edited(
            INVITE,
            "INVITE sip:bob@biloxi.example.com SIP",
            "INVITE sip:bob@192.0.2.4:5070;transport=tcp SIP",
        );
        assert_eq!(s(&out), s(&want));
    }

    #[test]
    fn max_forwards_replaced_or_added() {
        // RFC 3261 §16.6 step 3.
        let out = forward(
            INVITE,
            &RequestEdits {
                max_forwards: Some(69),
                ..Default::default()
            },
        );
        assert_eq!(
            s(&out),
            s(&edited(INVITE, "Max-Forwards: 70", "Max-Forwards: 69"))
        );
        let msg = b"OPTIONS sip:x SIP/2.0\r\nTo: <sip:x>\r\nl: 0\r\n\r\n";
        let out = forward(
            msg,
            &RequestEdits {
                max_forwards: Some(70),
                ..Default::default()
            },
        );
        assert_eq!(
            s(&out),
            "OPTIONS sip:x SIP/2.0\r\nMax-Forwards: 70\r\nTo: <sip:x>\r\nl: 0\r\n\r\n"
        );
        // A value with odd spacing: only the digits are replaced.
        let msg = b"OPTIONS sip:x SIP/2.0\r\nMax-Forwards :  5  \r\nl: 0\r\n\r\n";
        let out = forward(
            msg,
            &RequestEdits {
                max_forwards: Some(4),
                ..Default::default()
            },
        );
        assert_eq!(
            s(&out),
            "OPTIONS sip:x SIP/2.0\r\nMax-Forwards :  4  \r\nl: 0\r\n\r\n"
        );
    }

    #[test]
    fn last_route_value_removed_for_strict_router() {
        // RFC 3261 §16.4: the last Route value becomes the Request-URI.
        let msg = b"BYE sip:proxy.example.com;lr SIP/2.0\r\nRoute: <sip:p2;lr>\r\nRoute: <sip:p3;lr>, <sip:bob@ua.example.com>\r\nl: 0\r\n\r\n";
        let out = forward(
            msg,
            &RequestEdits {
                request_uri: Some(b"sip:bob@ua.example.com"),
                remove_last_route: true,
                ..Default::default()
            },
        );
        assert_eq!(
            s(&out),
            "BYE sip:bob@ua.example.com SIP/2.0\r\nRoute: <sip:p2;lr>\r\nRoute: <sip:p3;lr>\r\nl: 0\r\n\r\n"
        );
        // A single value: the line goes, and asking for both removals drops it once.
        let msg = b"BYE sip:proxy.example.com SIP/2.0\r\nRoute: <sip:bob@ua>\r\nl: 0\r\n\r\n";
        let out = forward(
            msg,
            &RequestEdits {
                remove_first_routes: 1,
                remove_last_route: true,
                ..Default::default()
            },
        );
        assert_eq!(s(&out), "BYE sip:proxy.example.com SIP/2.0\r\nl: 0\r\n\r\n");
    }

    #[test]
    fn two_leading_routes_removed_after_double_record_route() {
        // Both of our Record-Route values come back as the first two Route values.
        let msg = b"BYE sip:bob@ua SIP/2.0\r\nRoute: <sip:in;lr>\r\nRoute: <sip:out;lr>, <sip:p3;lr>, <sip:p4;lr>\r\nl: 0\r\n\r\n";
        let out = forward(
            msg,
            &RequestEdits {
                remove_first_routes: 2,
                ..Default::default()
            },
        );
        assert_eq!(
            s(&out),
            "BYE sip:bob@ua SIP/2.0\r\nRoute: <sip:p3;lr>, <sip:p4;lr>\r\nl: 0\r\n\r\n"
        );
        // First two and last of one line: only the middle value stays.
        let msg = b"BYE sip:bob@ua SIP/2.0\r\nRoute: <sip:a;lr>,<sip:b;lr>, <sip:c;lr> ,<sip:d>\r\nl: 0\r\n\r\n";
        let out = forward(
            msg,
            &RequestEdits {
                remove_first_routes: 2,
                remove_last_route: true,
                ..Default::default()
            },
        );
        assert_eq!(
            s(&out),
            "BYE sip:bob@ua SIP/2.0\r\nRoute: <sip:c;lr>\r\nl: 0\r\n\r\n"
        );
    }

    const SENT_INVITE: &[u8] = b"INVITE sip:bob@192.0.2.4 SIP/2.0\r\n\
Via: SIP/2.0/UDP proxy.example.com;branch=z9hG4bKc0001aaaa, SIP/2.0/UDP pc33;branch=z9hG4bK776\r\n\
Route: <sip:p2.example.com;lr>\r\n\
Max-Forwards: 69\r\n\
To: Bob <sip:bob@biloxi.example.com>\r\n\
From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710\r\n\
CSeq: 314159 INVITE\r\n\
Content-Length: 0\r\n\r\n";

    #[test]
    fn cancel_copies_the_request_identity() {
        // RFC 3261 §9.1.
        let req = Message::parse(SENT_INVITE).unwrap();
        let mut out = Vec::new();
        write_cancel(&req, &mut out).unwrap();
        assert_eq!(
            s(&out),
            "CANCEL sip:bob@192.0.2.4 SIP/2.0\r\n\
Via: SIP/2.0/UDP proxy.example.com;branch=z9hG4bKc0001aaaa\r\n\
Route: <sip:p2.example.com;lr>\r\n\
Max-Forwards: 70\r\n\
From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
To: Bob <sip:bob@biloxi.example.com>\r\n\
Call-ID: a84b4c76e66710\r\n\
CSeq: 314159 CANCEL\r\n\
Content-Length: 0\r\n\r\n"
        );
    }

    #[test]
    fn ack_for_non_2xx_takes_the_response_to_tag() {
        // RFC 3261 §17.1.1.3.
        let req = Message::parse(SENT_INVITE).unwrap();
        let resp = Message::parse(
            b"SIP/2.0 486 Busy Here\r\nVia: SIP/2.0/UDP proxy.example.com;branch=z9hG4bKc0001aaaa\r\n\
To: Bob <sip:bob@biloxi.example.com>;tag=b0b\r\nCall-ID: a84b4c76e66710\r\nCSeq: 314159 INVITE\r\n\r\n",
        )
        .unwrap();
        let mut out = Vec::new();
        write_ack(&req, &resp, &mut out).unwrap();
        let ack = Message::parse(&out).unwrap();
        assert_eq!(ack.method(), Some(crate::sip::Method::Ack));
        assert_eq!(
            ack.header(HeaderName::To),
            Some(&b"Bob <sip:bob@biloxi.example.com>;tag=b0b"[..])
        );
        assert_eq!(ack.header(HeaderName::CSeq), Some(&b"314159 ACK"[..]));
        assert_eq!(ack.values(HeaderName::Via).count(), 1);
        assert_eq!(
            ack.header(HeaderName::Route),
            Some(&b"<sip:p2.example.com;lr>"[..])
        );
    }

    #[test]
    fn forwarded_response_gets_extra_challenges() {
        // RFC 3261 §16.7 step 7.
        let resp = b"SIP/2.0 401 Unauthorized\r\nVia: SIP/2.0/UDP us;branch=z9hG4bK1\r\n\
Via: SIP/2.0/UDP ua;branch=z9hG4bK2\r\nWWW-Authenticate: Digest realm=\"a\"\r\nContent-Length: 0\r\n\r\n";
        let m = Message::parse(resp).unwrap();
        let mut out = Vec::new();
        forward_response_with(&m, b"WWW-Authenticate: Digest realm=\"b\"\r\n", &mut out).unwrap();
        assert_eq!(
            s(&out),
            "SIP/2.0 401 Unauthorized\r\nVia: SIP/2.0/UDP ua;branch=z9hG4bK2\r\n\
WWW-Authenticate: Digest realm=\"a\"\r\nContent-Length: 0\r\n\
WWW-Authenticate: Digest realm=\"b\"\r\n\r\n"
        );
        assert_eq!(
            forward_response_with(&m, b"X: y", &mut out),
            Err(WriteError::InvalidValue)
        );
    }

    #[test]
    fn preloaded_route_replaces_a_removed_route_line() {
        // Our own Route removed and a contact's Path preloaded at the same line.
        let msg = b"BYE sip:bob@ua.example.com SIP/2.0\r\nRoute: <sip:proxy.example.com;lr>\r\nl: 0\r\n\r\n";
        let out = forward(
            msg,
            &RequestEdits {
                remove_first_routes: 1,
                route_preload: Some(b"<sip:edge.example.test;lr>"),
                ..Default::default()
            },
        );
        assert_eq!(
            s(&out),
            "BYE sip:bob@ua.example.com SIP/2.0\r\nRoute: <sip:edge.example.test;lr>\r\nl: 0\r\n\r\n"
        );
    }

    #[test]
    fn path_is_preloaded_as_route() {
        // RFC 3327 §5.3: requests to a contact registered through a Path carry it
        // as a preloaded Route set.
        let msg = b"INVITE sip:bob@example.test SIP/2.0\r\nVia: SIP/2.0/UDP a;branch=z9hG4bK1\r\nl: 0\r\n\r\n";
        let out = forward(
            msg,
            &RequestEdits {
                request_uri: Some(b"sip:bob@10.0.0.9:5062"),
                route_preload: Some(b"<sip:edge.example.test;lr>"),
                ..Default::default()
            },
        );
        assert_eq!(
            s(&out),
            "INVITE sip:bob@10.0.0.9:5062 SIP/2.0\r\nRoute: <sip:edge.example.test;lr>\r\nVia: SIP/2.0/UDP a;branch=z9hG4bK1\r\nl: 0\r\n\r\n"
        );
    }

    #[test]
    fn via_received_and_rport_filled_in() {
        // RFC 3581 §4: rport without a value gets the source port, and received is
        // added even when it equals the sent-by host.
        let msg = b"OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;rport;branch=z9hG4bK1, SIP/2.0/UDP h;rport\r\nl: 0\r\n\r\n";
        let vr = ViaReceived {
            received: Some("192.0.2.7".parse().unwrap()),
            rport: Some(40123),
        };
        let out = forward(
            msg,
            &RequestEdits {
                via_received: Some(vr),
                ..Default::default()
            },
        );
        assert_eq!(
            s(&out),
            "OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;rport=40123;branch=z9hG4bK1;received=192.0.2.7, SIP/2.0/UDP h;rport\r\nl: 0\r\n\r\n"
        );
        // An existing received is replaced; IPv6 is written bare (§25.1); no rport
        // requested means none is added.
        let msg = b"OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/TCP [2001:db8::1];received=1.2.3.4;branch=z9hG4bK1\r\nl: 0\r\n\r\n";
        let vr = ViaReceived {
            received: Some("2001:db8::9".parse().unwrap()),
            rport: Some(5),
        };
        let out = forward(
            msg,
            &RequestEdits {
                via_received: Some(vr),
                ..Default::default()
            },
        );
        assert_eq!(
            s(&out),
            "OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/TCP [2001:db8::1];received=2001:db8::9;branch=z9hG4bK1\r\nl: 0\r\n\r\n"
        );
    }

    #[test]
    fn first_route_value_removed_from_a_list() {
        let out = forward(
            INVITE,
            &RequestEdits {
                remove_first_routes: 1,
                ..Default::default()
            },
        );
        let want = edited(
            INVITE,
            "Route: <sip:us.example.com;lr>, <sip:p2.example.com;lr>",
            "Route: <sip:p2.example.com;lr>",
        );
        assert_eq!(s(&out), s(&want));
    }

    #[test]
    fn single_route_value_drops_the_line() {
        let msg = b"OPTIONS sip:x SIP/2.0\r\nRoute: <sip:us;lr>\r\nRoute: <sip:p2;lr>,<sip:p3;lr>\r\nl: 0\r\n\r\n";
        let out = forward(
            msg,
            &RequestEdits {
                remove_first_routes: 1,
                ..Default::default()
            },
        );
        assert_eq!(
            s(&out),
            "OPTIONS sip:x SIP/2.0\r\nRoute: <sip:p2;lr>,<sip:p3;lr>\r\nl: 0\r\n\r\n"
        );
        // An empty Route line holds no value: the first value is on the next line.
        let msg = b"OPTIONS sip:x SIP/2.0\r\nRoute: \r\nRoute: <sip:us;lr>\r\nl: 0\r\n\r\n";
        let out = forward(
            msg,
            &RequestEdits {
                remove_first_routes: 1,
                ..Default::default()
            },
        );
        assert_eq!(s(&out), "OPTIONS sip:x SIP/2.0\r\nRoute: \r\nl: 0\r\n\r\n");
        // No Route: nothing to do.
        let msg = b"OPTIONS sip:x SIP/2.0\r\nl: 0\r\n\r\n";
        let out = forward(
            msg,
            &RequestEdits {
                remove_first_routes: 1,
                ..Default::default()
            },
        );
        assert_eq!(out, msg);
    }

    #[test]
    fn folded_route_list() {
        // The fold between the first and second value goes with the first value.
        let msg = b"OPTIONS sip:x SIP/2.0\r\nRoute: <sip:us;lr>,\r\n <sip:p2;lr>\r\nl: 0\r\n\r\n";
        let out = forward(
            msg,
            &RequestEdits {
                remove_first_routes: 1,
                ..Default::default()
            },
        );
        assert_eq!(
            s(&out),
            "OPTIONS sip:x SIP/2.0\r\nRoute: <sip:p2;lr>\r\nl: 0\r\n\r\n"
        );
    }

    #[test]
    fn route_as_first_header_with_insertions_at_the_same_offset() {
        // Max-Forwards and Record-Route are inserted where the dropped Route line
        // starts: they must be written, and the Route line still dropped.
        let msg =
            b"OPTIONS sip:x SIP/2.0\r\nRoute: <sip:us;lr>\r\nVia: SIP/2.0/UDP a\r\nl: 0\r\n\r\n";
        let rr: &[&[u8]] = &[b"<sip:us;lr>"];
        let out = forward(
            msg,
            &RequestEdits {
                record_route: rr,
                max_forwards: Some(70),
                remove_first_routes: 1,
                ..Default::default()
            },
        );
        assert_eq!(
            s(&out),
            "OPTIONS sip:x SIP/2.0\r\nRecord-Route: <sip:us;lr>\r\nMax-Forwards: 70\r\n\
             Via: SIP/2.0/UDP a\r\nl: 0\r\n\r\n"
        );
    }

    #[test]
    fn all_edits_together() {
        let rr: &[&[u8]] = &[b"<sip:us.example.com;lr>"];
        let out = forward(
            INVITE,
            &RequestEdits {
                request_uri: Some(b"sip:bob@192.0.2.4"),
                via: Some(b"SIP/2.0/UDP us.example.com;branch=z9hG4bKus"),
                record_route: rr,
                max_forwards: Some(69),
                remove_first_routes: 1,
                remove_last_route: false,
                route_preload: None,
                via_received: Some(ViaReceived {
                    received: Some("192.0.2.1".parse().unwrap()),
                    rport: None,
                }),
            },
        );
        let want = b"INVITE sip:bob@192.0.2.4 SIP/2.0\r\n\
Via: SIP/2.0/UDP us.example.com;branch=z9hG4bKus\r\n\
Via: SIP/2.0/UDP p1.example.com;branch=z9hG4bKp1;received=192.0.2.1, SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776\r\n\
Max-Forwards: 69\r\n\
Route: <sip:p2.example.com;lr>\r\n\
Record-Route: <sip:us.example.com;lr>\r\n\
Record-Route: <sip:p1.example.com;lr>\r\n\
To: Bob <sip:bob@biloxi.example.com>\r\n\
From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\
CSeq: 314159 INVITE\r\n\
Subject: lunch\r\n\tat noon\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 4\r\n\
\r\n\
v=0\n";
        assert_eq!(s(&out), s(want));
        let m = Message::parse(&out).unwrap();
        assert_eq!(m.body(), b"v=0\n");
        assert_eq!(
            m.header(HeaderName::Subject),
            Some(&b"lunch\r\n\tat noon"[..])
        );
    }

    #[test]
    fn compact_via_is_found() {
        let msg = b"OPTIONS sip:x SIP/2.0\r\nTo: <sip:x>\r\nv: SIP/2.0/UDP a;branch=z9hG4bK1\r\nl: 0\r\n\r\n";
        let out = forward(
            msg,
            &RequestEdits {
                via: Some(b"SIP/2.0/UDP us;branch=z9hG4bK2"),
                ..Default::default()
            },
        );
        assert_eq!(
            s(&out),
            "OPTIONS sip:x SIP/2.0\r\nTo: <sip:x>\r\nVia: SIP/2.0/UDP us;branch=z9hG4bK2\r\n\
             v: SIP/2.0/UDP a;branch=z9hG4bK1\r\nl: 0\r\n\r\n"
        );
    }

    #[test]
    fn output_is_appended_and_untouched_on_error() {
        let m = Message::parse(INVITE).unwrap();
        let mut out = b"kept".to_vec();
        forward_request(&m, &RequestEdits::default(), &mut out).unwrap();
        assert_eq!(&out[..4], b"kept");
        assert_eq!(&out[4..], INVITE);

        let mut out = Vec::new();
        for bad in [
            RequestEdits {
                via: Some(b"SIP/2.0/UDP x\r\nX-Injected: 1"),
                ..Default::default()
            },
            RequestEdits {
                record_route: &[b"<sip:a>\n"],
                ..Default::default()
            },
            RequestEdits {
                request_uri: Some(b"sip:a b"),
                ..Default::default()
            },
            RequestEdits {
                request_uri: Some(b""),
                ..Default::default()
            },
        ] {
            assert_eq!(
                forward_request(&m, &bad, &mut out),
                Err(WriteError::InvalidValue)
            );
        }
        assert!(out.is_empty());
        let resp = Message::parse(b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP a\r\n\r\n").unwrap();
        assert_eq!(
            forward_request(&resp, &RequestEdits::default(), &mut out),
            Err(WriteError::NotARequest)
        );
        assert_eq!(
            forward_response(&m, &mut out),
            Err(WriteError::NotAResponse)
        );
        assert!(out.is_empty());
    }

    // --- forwarding responses ---------------------------------------------------

    fn forward_resp(msg: &[u8]) -> Result<String, WriteError> {
        let m = Message::parse(msg).unwrap();
        let mut out = Vec::new();
        forward_response(&m, &mut out)?;
        Message::parse(&out).unwrap();
        Ok(String::from_utf8(out).unwrap())
    }

    #[test]
    fn response_top_via_line_removed() {
        // RFC 3261 §16.7 step 3.
        let got = forward_resp(
            b"SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP us;branch=z9hG4bK2\r\n\
v: SIP/2.0/UDP a;branch=z9hG4bK1\r\nl: 2\r\n\r\nhi",
        );
        assert_eq!(
            got.as_deref(),
            Ok("SIP/2.0 180 Ringing\r\nv: SIP/2.0/UDP a;branch=z9hG4bK1\r\nl: 2\r\n\r\nhi")
        );
    }

    #[test]
    fn response_top_via_value_removed_from_a_list() {
        let got = forward_resp(
            b"SIP/2.0 200 OK\r\nv: SIP/2.0/UDP us;branch=z9hG4bK2 ,SIP/2.0/UDP a;branch=z9hG4bK1\r\n\
Via: SIP/2.0/UDP b\r\nl: 0\r\n\r\n",
        );
        assert_eq!(
            got.as_deref(),
            Ok("SIP/2.0 200 OK\r\nv: SIP/2.0/UDP a;branch=z9hG4bK1\r\nVia: SIP/2.0/UDP b\r\nl: 0\r\n\r\n")
        );
    }

    #[test]
    fn response_for_us_is_not_forwarded() {
        assert_eq!(
            forward_resp(b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP us;branch=z9hG4bK2\r\nl: 0\r\n\r\n"),
            Err(WriteError::NoVia)
        );
        assert_eq!(
            forward_resp(b"SIP/2.0 200 OK\r\nl: 0\r\n\r\n"),
            Err(WriteError::NoVia)
        );
    }

    // --- generated responses ----------------------------------------------------

    const REGISTER: &[u8] = b"REGISTER sip:registrar.biloxi.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP p1.example.com;branch=z9hG4bKp1\r\n\
v: SIP/2.0/UDP bobspc.biloxi.example.com:5060;branch=z9hG4bKnashds7,\r\n SIP/2.0/UDP c;branch=z9hG4bK3\r\n\
Max-Forwards: 70\r\n\
t: Bob <sip:bob@biloxi.example.com>\r\n\
From: Bob <sip:bob@biloxi.example.com>;tag=456248\r\n\
Call-ID: 843817637684230@998sdasdh09\r\n\
CSeq: 1826 REGISTER\r\n\
Contact: <sip:bob@192.0.2.4>\r\n\
Content-Length: 0\r\n\
\r\n";

    fn respond(
        req: &[u8],
        code: u16,
        reason: &[u8],
        tag: Option<&[u8]>,
        extra: &[(&str, &[u8])],
    ) -> String {
        let m = Message::parse(req).unwrap();
        let mut out = Vec::new();
        write_response(&m, code, reason, tag, extra, &mut out).unwrap();
        Message::parse(&out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn response_copies_the_request_headers() {
        // RFC 3261 §8.2.6.2: Via values in order, From, Call-ID, CSeq equal.
        let got = respond(
            REGISTER,
            200,
            b"OK",
            Some(b"2493k59kd"),
            &[("Contact", b"<sip:bob@192.0.2.4>;expires=3600")],
        );
        assert_eq!(
            got,
            "SIP/2.0 200 OK\r\n\
Via: SIP/2.0/UDP p1.example.com;branch=z9hG4bKp1\r\n\
v: SIP/2.0/UDP bobspc.biloxi.example.com:5060;branch=z9hG4bKnashds7,\r\n SIP/2.0/UDP c;branch=z9hG4bK3\r\n\
From: Bob <sip:bob@biloxi.example.com>;tag=456248\r\n\
t: Bob <sip:bob@biloxi.example.com>;tag=2493k59kd\r\n\
Call-ID: 843817637684230@998sdasdh09\r\n\
CSeq: 1826 REGISTER\r\n\
Contact: <sip:bob@192.0.2.4>;expires=3600\r\n\
Content-Length: 0\r\n\r\n"
        );
        let req = Message::parse(REGISTER).unwrap();
        let resp_bytes = got.into_bytes();
        let resp = Message::parse(&resp_bytes).unwrap();
        assert_eq!(resp.status(), Some(200));
        assert!(resp.values(HeaderName::Via).eq(req.values(HeaderName::Via)));
        for name in [HeaderName::From, HeaderName::CallId, HeaderName::CSeq] {
            assert_eq!(resp.header(name), req.header(name));
        }
        assert_eq!(resp.content_length(), Ok(Some(0)));
    }

    #[test]
    fn existing_to_tag_is_kept() {
        for to in [
            &b"To: <sip:bob@b.example.com>;tag=abc"[..],
            b"To: sip:bob@b.example.com;tag=abc",
            b"To: \"Bob <;tag=no>\" <sip:bob@b.example.com> ; TAG = abc",
        ] {
            let req = [
                &b"BYE sip:bob@b.example.com SIP/2.0\r\n"[..],
                to,
                b"\r\nCall-ID: 1\r\nCSeq: 2 BYE\r\nl: 0\r\n\r\n",
            ]
            .concat();
            let got = respond(&req, 200, b"OK", Some(b"new"), &[]);
            assert!(got.contains(s(to)), "{got}");
            assert!(!got.contains("new"), "{got}");
        }
    }

    #[test]
    fn to_tag_added_when_missing() {
        for (to, want) in [
            // A tag-like text inside the quoted display name is not a tag.
            (
                &b"To: \"a;tag=x\" <sip:b@c>"[..],
                "To: \"a;tag=x\" <sip:b@c>;tag=t1\r\n",
            ),
            // A URI parameter inside <> is not a header parameter.
            (b"To: <sip:b@c;tag=x>", "To: <sip:b@c;tag=x>;tag=t1\r\n"),
            (b"To: sip:b@c  ", "To: sip:b@c;tag=t1  \r\n"),
            (b"To: <sip:b@c>;foo=bar", "To: <sip:b@c>;foo=bar;tag=t1\r\n"),
        ] {
            let req = [
                &b"INVITE sip:b@c SIP/2.0\r\n"[..],
                to,
                b"\r\nCall-ID: 1\r\nCSeq: 2 INVITE\r\nl: 0\r\n\r\n",
            ]
            .concat();
            let got = respond(&req, 486, b"Busy Here", Some(b"t1"), &[]);
            assert!(got.contains(want), "{got}");
        }
    }

    #[test]
    fn trying_never_gets_a_tag() {
        // RFC 3261 §8.2.6.2: 100 Trying is exempt.
        let got = respond(REGISTER, 100, b"Trying", Some(b"t1"), &[]);
        assert!(got.starts_with("SIP/2.0 100 Trying\r\n"));
        assert!(got.contains("t: Bob <sip:bob@biloxi.example.com>\r\n"));
        assert!(!got.contains("t1"));
        // RFC 3261 §8.2.6.1: Timestamp is echoed in a 100 only.
        let req = edited(
            REGISTER,
            "Max-Forwards: 70",
            "Timestamp: 54.2\r\nMax-Forwards: 70",
        );
        let got = respond(&req, 100, b"Trying", None, &[]);
        assert!(got.contains("\r\nTimestamp: 54.2\r\n"), "{got}");
        let got = respond(&req, 180, b"Ringing", None, &[]);
        assert!(!got.contains("Timestamp"), "{got}");
        let got = respond(REGISTER, 408, b"Request Timeout", None, &[]);
        assert!(got.contains("t: Bob <sip:bob@biloxi.example.com>\r\n"));
    }

    #[test]
    fn response_length_is_computed_exactly() {
        // write_response reserves the response's exact length up front (a server
        // transaction keeps it for retransmissions); its debug assertion compares
        // that length with what was written, here for every optional part.
        let with_timestamp = edited(
            REGISTER,
            "Max-Forwards: 70",
            "Timestamp: 54.2\r\nMax-Forwards: 70",
        );
        let contact: &[u8] = b"<sip:bob@192.0.2.4>;expires=3600";
        for (req, code, tag, extra) in [
            (REGISTER, 200, Some(&b"t1"[..]), &[("Contact", contact)][..]),
            (REGISTER, 100, Some(b"t1"), &[]),
            (&with_timestamp[..], 100, None, &[]),
            (&with_timestamp[..], 180, Some(b"t1"), &[]),
            (REGISTER, 408, None, &[("Contact", contact), ("Date", b"x")]),
        ] {
            let m = Message::parse(req).unwrap();
            let mut out = b"earlier bytes".to_vec();
            write_response(&m, code, b"Reason", tag, extra, &mut out).unwrap();
            let mut fresh = Vec::new();
            write_response(&m, code, b"Reason", tag, extra, &mut fresh).unwrap();
            assert_eq!(&out[b"earlier bytes".len()..], &fresh[..]);
        }
    }

    #[test]
    fn response_rejects_bad_input_without_writing() {
        let req = Message::parse(REGISTER).unwrap();
        let resp = Message::parse(b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP a\r\n\r\n").unwrap();
        let mut out = Vec::new();
        assert_eq!(
            write_response(&resp, 200, b"OK", None, &[], &mut out),
            Err(WriteError::NotARequest)
        );
        assert_eq!(
            write_response(&req, 700, b"X", None, &[], &mut out),
            Err(WriteError::InvalidStatus)
        );
        assert_eq!(
            write_response(&req, 99, b"X", None, &[], &mut out),
            Err(WriteError::InvalidStatus)
        );
        assert_eq!(
            write_response(&req, 200, b"OK\r\nX: y", None, &[], &mut out),
            Err(WriteError::InvalidValue)
        );
        assert_eq!(
            write_response(&req, 200, b"OK", Some(b"a b"), &[], &mut out),
            Err(WriteError::InvalidValue)
        );
        assert_eq!(
            write_response(&req, 200, b"OK", None, &[("Bad Name", b"v")], &mut out),
            Err(WriteError::InvalidValue)
        );
        assert_eq!(
            write_response(&req, 200, b"OK", None, &[("Warning", b"a\nb")], &mut out),
            Err(WriteError::InvalidValue)
        );
        assert!(out.is_empty());
    }

    #[test]
    fn decimal_numbers() {
        let mut out = Vec::new();
        for n in [0u16, 7, 70, 255, 699, 65535] {
            out.clear();
            push_decimal(&mut out, n);
            assert_eq!(out, n.to_string().as_bytes());
        }
    }
}
