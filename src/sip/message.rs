//! The message view: one memchr-driven pass over the received bytes finds the start
//! line and every header line. Each header is a name id plus offsets into the buffer;
//! values are decoded only when asked for (DESIGN.md §4). A message with up to
//! [`INLINE_HEADERS`] headers allocates nothing.

use std::cell::OnceCell;

use memchr::memchr;
use smallvec::SmallVec;

use super::error::ParseError;
use super::header::HeaderName;
use super::headers::CSeq;
use super::method::Method;
use super::name_addr::NameAddr;
use super::text::{is_token, parse_u32, trim, CommaList};
use super::uri::Uri;
use super::via::Via;

/// Headers held without allocating.
pub const INLINE_HEADERS: usize = 24;
/// More header lines than this make the message invalid ([`ParseError::TooManyHeaders`]).
pub const MAX_HEADERS: usize = 1024;

/// One header line, as offsets into the message buffer.
///
/// `line_start..line_end` covers the whole line including its CRLF and any folded
/// continuation lines: that is the unit the splicer copies or drops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub name: HeaderName,
    line_start: u32,
    name_end: u32,
    value_start: u32,
    value_end: u32,
    line_end: u32,
}

impl Header {
    /// Offsets of the whole line, CRLF (and folded continuations) included.
    pub fn line_range(&self) -> std::ops::Range<usize> {
        self.line_start as usize..self.line_end as usize
    }

    /// Offsets of the value, without surrounding white space.
    pub fn value_range(&self) -> std::ops::Range<usize> {
        self.value_start as usize..self.value_end as usize
    }

    /// Offsets of the name as received.
    pub fn name_range(&self) -> std::ops::Range<usize> {
        self.line_start as usize..self.name_end as usize
    }
}

/// The first line of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartLine<'a> {
    /// `Method SP Request-URI SP SIP-Version`.
    Request { method: Method<'a>, uri: &'a [u8] },
    /// `SIP-Version SP Status-Code SP Reason-Phrase`.
    Response { code: u16, reason: &'a [u8] },
}

/// A parsed SIP message borrowing its buffer.
#[derive(Debug, Clone)]
pub struct Message<'a> {
    buf: &'a [u8],
    start: StartLine<'a>,
    /// Offset of the start line (leading CRLFs are skipped, RFC 3261 §7.5).
    start_line_start: u32,
    /// Offset just past the start line's line end.
    start_line_end: u32,
    headers: SmallVec<[Header; INLINE_HEADERS]>,
    /// Offset of the first body byte (just past the blank line).
    body_start: u32,
    /// Offset just past the last body byte.
    body_end: u32,
    /// Index (+1) of the first header of each of the first [`FAST`] names; 0 = absent.
    first: [u16; FAST],
    /// The values every layer reads, decoded on first use.
    memo: Memo<'a>,
}

/// The decodings of the headers that the message check, the transaction layer and
/// the proxy core each read (Request-URI, top Via, From, To, Call-ID, CSeq, the first
/// Contact's URI): the first reader
/// decodes, the others get a copy. Each decoder is a pure function of bytes the
/// message never changes, so a remembered answer is the answer.
#[derive(Debug, Clone, Default)]
pub(super) struct Memo<'a> {
    pub(super) uri: OnceCell<Result<Uri<'a>, ParseError>>,
    pub(super) top_via: OnceCell<Option<&'a [u8]>>,
    pub(super) via: OnceCell<Result<Via<'a>, ParseError>>,
    pub(super) from: OnceCell<Result<NameAddr<'a>, ParseError>>,
    pub(super) to: OnceCell<Result<NameAddr<'a>, ParseError>>,
    pub(super) from_uri: OnceCell<Result<Uri<'a>, ParseError>>,
    pub(super) to_uri: OnceCell<Result<Uri<'a>, ParseError>>,
    pub(super) call_id: OnceCell<Result<&'a [u8], ParseError>>,
    pub(super) cseq: OnceCell<Result<CSeq<'a>, ParseError>>,
    /// The first Contact value's URI (`None` for `*`).
    pub(super) contact_uri: OnceCell<Result<Option<Uri<'a>>, ParseError>>,
}

/// The names whose first occurrence is remembered during the scan: the ones a proxy
/// reads from every message (their ids are the first variants of [`HeaderName`]).
const FAST: usize = HeaderName::ContentType as usize + 1;

impl<'a> Message<'a> {
    /// Parses a whole message held in `buf` — a datagram, or one message cut from a
    /// stream by [`super::framing`].
    ///
    /// The body is `Content-Length` bytes when that header is present (bytes past it
    /// are ignored, RFC 3261 §18.3), otherwise the rest of `buf`. A body shorter than
    /// `Content-Length` is [`ParseError::BadContentLength`].
    ///
    /// Only the framing is checked here; decode the headers a caller needs (and see
    /// [`Message::check`] for the RFC 3261 §8.1.1 mandatory set).
    pub fn parse(buf: &'a [u8]) -> Result<Message<'a>, ParseError> {
        Message::scan(buf, &mut Strict)
    }

    /// [`Message::parse`] that leaves out up to [`MAX_BAD_LINES`] header lines that
    /// are not headers (no colon, or a name that is not a token: RFC 3261 §7.3.1,
    /// §25.1), together with their folded continuation lines, instead of failing
    /// with [`ParseError::InvalidHeaderLine`]. Every other error is
    /// [`Message::parse`]'s; one more bad line than the limit is
    /// [`ParseError::InvalidHeaderLine`].
    ///
    /// This is the salvage for answering a malformed request `400` (RFC 3261
    /// §21.4.1): call it only after [`Message::parse`] failed with
    /// [`ParseError::InvalidHeaderLine`]. The result is for building that answer
    /// and nothing else: its header table leaves the bad lines out, but
    /// [`Message::as_bytes`] and [`Message::buf`] still hold them, so splicing it
    /// onward would copy them. [`BadLines`] says which lines were left out and what
    /// each might have been meant as, since a bad line can hide a header the answer
    /// must echo (§8.2.6.2). The work is the same single pass as
    /// [`Message::parse`]: nothing is copied.
    pub fn parse_skipping_bad_lines(buf: &'a [u8]) -> Result<(Message<'a>, BadLines), ParseError> {
        let mut bad = BadLines::default();
        let msg = Message::scan(buf, &mut bad)?;
        Ok((msg, bad))
    }

    /// The one scan behind [`Message::parse`] and [`Message::parse_skipping_bad_lines`]:
    /// `policy` decides what a line that is not a header does. [`Strict`] makes it
    /// the error it always was, so `parse` pays nothing for the salvage.
    fn scan<P: BadLinePolicy>(buf: &'a [u8], policy: &mut P) -> Result<Message<'a>, ParseError> {
        // RFC 3261 §7.5: CRLFs before the start line are ignored.
        let mut pos = 0;
        while pos < buf.len() && (buf[pos] == b'\r' || buf[pos] == b'\n') {
            pos += 1;
        }
        if pos == buf.len() {
            return Err(ParseError::Empty);
        }
        if buf.len() > u32::MAX as usize {
            return Err(ParseError::TooLarge);
        }
        let start_line_start = pos;
        let nl = memchr(b'\n', &buf[pos..]).ok_or(ParseError::Incomplete)? + pos;
        let line = strip_cr(&buf[pos..nl]);
        let start = parse_start_line(line)?;
        pos = nl + 1;
        let start_line_end = pos;

        // The message is built in place and its header table filled where it lies:
        // assembled at the end it was copied twice on the way out (the inline table
        // alone is INLINE_HEADERS × 24 bytes).
        let mut msg = Message {
            buf,
            start,
            start_line_start: start_line_start as u32,
            start_line_end: start_line_end as u32,
            headers: SmallVec::new(),
            body_start: 0,
            body_end: buf.len() as u32,
            first: [0; FAST],
            memo: Memo::default(),
        };
        let headers = &mut msg.headers;
        let first = &mut msg.first;
        let body_start = loop {
            let nl = memchr(b'\n', &buf[pos..]).ok_or(ParseError::Incomplete)? + pos;
            let line = strip_cr(&buf[pos..nl]);
            if line.is_empty() {
                break nl + 1;
            }
            if line[0] == b' ' || line[0] == b'\t' {
                // Folded continuation (RFC 3261 §7.3.1): extends the previous value.
                let Some(prev) = headers.last_mut() else {
                    // Nothing to continue: a line that is not a header.
                    pos = policy.skip(buf, pos, nl + 1)?;
                    continue;
                };
                let content = trim_ws_end(line);
                if !trim(content).is_empty() {
                    if prev.value_start == prev.value_end {
                        // The value began on this continuation line.
                        let lead = content.len() - trim(content).len();
                        prev.value_start = (pos + lead) as u32;
                    }
                    prev.value_end = (pos + content.len()) as u32;
                }
                prev.line_end = (nl + 1) as u32;
                pos = nl + 1;
                continue;
            }
            // header-name = token, HCOLON = *( SP / HTAB ) ":" SWS (RFC 3261 §25.1): one
            // pass, as the name ends at the first non-token byte, which must be the
            // colon or white space before it.
            let name_len = line.iter().take_while(|&&b| is_token(b)).count();
            let after_name = &line[name_len..];
            let colon = name_len + after_name.len() - trim_ws_start(after_name).len();
            if name_len == 0 || line.get(colon) != Some(&b':') {
                pos = policy.skip(buf, pos, nl + 1)?;
                continue;
            }
            let raw_name = &line[..name_len];
            let name = HeaderName::from_token(raw_name);
            let after = &line[colon + 1..];
            let lead = after.len() - trim_ws_start(after).len();
            let value_start = pos + colon + 1 + lead;
            let value_end = pos + trim_ws_end(line).len().max(colon + 1 + lead);
            if headers.len() == MAX_HEADERS {
                return Err(ParseError::TooManyHeaders);
            }
            if let Some(slot) = first.get_mut(name as usize) {
                if *slot == 0 {
                    *slot = headers.len() as u16 + 1;
                }
            }
            headers.push(Header {
                name,
                line_start: pos as u32,
                name_end: (pos + raw_name.len()) as u32,
                value_start: value_start as u32,
                value_end: value_end as u32,
                line_end: (nl + 1) as u32,
            });
            pos = nl + 1;
        };

        msg.body_start = body_start as u32;
        if let Some(cl) = msg.content_length()? {
            let end = body_start
                .checked_add(cl as usize)
                .filter(|&end| end <= buf.len())
                .ok_or(ParseError::BadContentLength)?;
            msg.body_end = end as u32;
        }
        Ok(msg)
    }

    /// The bytes the message was parsed from.
    pub fn buf(&self) -> &'a [u8] {
        self.buf
    }

    /// The message's own bytes: start line to the end of the body.
    pub fn as_bytes(&self) -> &'a [u8] {
        &self.buf[self.start_line_start as usize..self.body_end as usize]
    }

    /// The start line.
    pub fn start_line(&self) -> &StartLine<'a> {
        &self.start
    }

    /// Offsets of the start line, CRLF included.
    pub fn start_line_range(&self) -> std::ops::Range<usize> {
        self.start_line_start as usize..self.start_line_end as usize
    }

    /// True for a request.
    pub fn is_request(&self) -> bool {
        matches!(self.start, StartLine::Request { .. })
    }

    /// The method of a request.
    pub fn method(&self) -> Option<Method<'a>> {
        match self.start {
            StartLine::Request { method, .. } => Some(method),
            StartLine::Response { .. } => None,
        }
    }

    /// The Request-URI of a request, as written.
    pub fn request_uri(&self) -> Option<&'a [u8]> {
        match self.start {
            StartLine::Request { uri, .. } => Some(uri),
            StartLine::Response { .. } => None,
        }
    }

    /// The decoded Request-URI ([`ParseError::InvalidRequestUri`] for a response or
    /// a Request-URI that is not a URI), decoded once per message.
    pub fn uri(&self) -> Result<Uri<'a>, ParseError> {
        *self.memo.uri.get_or_init(|| {
            self.request_uri()
                .ok_or(ParseError::InvalidRequestUri)
                .and_then(|u| Uri::parse(u).map_err(|_| ParseError::InvalidRequestUri))
        })
    }

    /// The status code of a response.
    pub fn status(&self) -> Option<u16> {
        match self.start {
            StartLine::Response { code, .. } => Some(code),
            StartLine::Request { .. } => None,
        }
    }

    /// Every header line in order.
    pub fn headers(&self) -> &[Header] {
        &self.headers
    }

    /// The value of a header line (trimmed; a folded value keeps its inner CRLF SP).
    pub fn value(&self, h: &Header) -> &'a [u8] {
        &self.buf[h.value_range()]
    }

    /// The name of a header line as received.
    pub fn raw_name(&self, h: &Header) -> &'a [u8] {
        &self.buf[h.name_range()]
    }

    /// The first header line called `name`.
    pub fn find(&self, name: HeaderName) -> Option<&Header> {
        match self.first.get(name as usize) {
            Some(&0) => None,
            Some(&i) => self.headers.get(i as usize - 1),
            None => self.headers.iter().find(|h| h.name == name),
        }
    }

    /// The value of the first header line called `name` (the whole line's value,
    /// even for a list header).
    pub fn header(&self, name: HeaderName) -> Option<&'a [u8]> {
        self.find(name).map(|h| self.value(h))
    }

    /// The first header whose name is `name`, compared case-insensitively as written
    /// (for extension headers, [`HeaderName::Other`]).
    pub fn header_raw(&self, name: &[u8]) -> Option<&'a [u8]> {
        let id = HeaderName::from_bytes(name);
        if id != HeaderName::Other {
            return self.header(id);
        }
        self.headers
            .iter()
            .find(|h| h.name == HeaderName::Other && self.raw_name(h).eq_ignore_ascii_case(name))
            .map(|h| self.value(h))
    }

    /// Every header line called `name`.
    pub fn all(&self, name: HeaderName) -> impl Iterator<Item = &Header> + '_ {
        self.headers.iter().filter(move |h| h.name == name)
    }

    /// Every value of `name` across all its lines, a list header split at its commas
    /// (never inside quotes or `<…>`). Each value is a slice of the buffer, so its
    /// offset is [`Message::offset_of`].
    pub fn values(&self, name: HeaderName) -> Values<'a, '_> {
        Values {
            msg: self,
            name,
            idx: 0,
            list: None,
        }
    }

    /// The topmost Via value.
    pub fn top_via(&self) -> Option<&'a [u8]> {
        *self
            .memo
            .top_via
            .get_or_init(|| self.values(HeaderName::Via).next())
    }

    /// The decodings remembered for this message.
    pub(super) fn memo(&self) -> &Memo<'a> {
        &self.memo
    }

    /// The body (empty when there is none).
    pub fn body(&self) -> &'a [u8] {
        &self.buf[self.body_start as usize..self.body_end as usize]
    }

    /// Offset of the first body byte; the blank line ends just before it.
    pub fn body_offset(&self) -> usize {
        self.body_start as usize
    }

    /// Offset of the end of the header section, before the blank line.
    pub fn headers_end(&self) -> usize {
        match self.headers.last() {
            Some(h) => h.line_end as usize,
            None => self.start_line_end as usize,
        }
    }

    /// Offset of `part` in the buffer; `part` must be a slice this message returned.
    pub fn offset_of(&self, part: &[u8]) -> usize {
        let base = self.buf.as_ptr() as usize;
        let p = part.as_ptr() as usize;
        debug_assert!(p >= base && p + part.len() <= base + self.buf.len());
        p.wrapping_sub(base)
    }

    /// `Content-Length`, when present (`l` is its compact form).
    pub fn content_length(&self) -> Result<Option<u32>, ParseError> {
        match self.header(HeaderName::ContentLength) {
            None => Ok(None),
            Some(v) => parse_u32(trim(v))
                .map(Some)
                .ok_or(ParseError::BadContentLength),
        }
    }
}

/// Iterator of [`Message::values`].
#[derive(Debug, Clone)]
pub struct Values<'a, 'm> {
    msg: &'m Message<'a>,
    name: HeaderName,
    idx: usize,
    list: Option<CommaList<'a>>,
}

impl<'a> Iterator for Values<'a, '_> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        loop {
            if let Some(list) = &mut self.list {
                if let Some(v) = list.next() {
                    return Some(v);
                }
                self.list = None;
            }
            let headers = &self.msg.headers;
            let h = loop {
                let h = headers.get(self.idx)?;
                self.idx += 1;
                if h.name == self.name {
                    break h;
                }
            };
            let v = self.msg.value(h);
            if self.name.is_list() {
                self.list = Some(CommaList::new(v));
            } else {
                return Some(v);
            }
        }
    }
}

/// At most this many header lines are left out by
/// [`Message::parse_skipping_bad_lines`]: a typo or two make a broken request worth
/// a `400`; a message with more lines that are not headers is noise, not worth an
/// answer.
pub const MAX_BAD_LINES: usize = 4;

/// A header line that [`Message::parse_skipping_bad_lines`] left out: no colon, or a
/// name that is not a token (RFC 3261 §7.3.1, §25.1), or a continuation line with
/// nothing before it to continue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadLine {
    name: Option<HeaderName>,
    line_start: u32,
    line_end: u32,
}

impl BadLine {
    /// The line at `start..end` of `buf`.
    fn new(buf: &[u8], start: usize, end: usize) -> BadLine {
        BadLine {
            name: leading_name(buf.get(start..end).unwrap_or_default()),
            line_start: start as u32,
            line_end: end as u32,
        }
    }

    /// Offsets of the whole line, line end and any continuation lines included.
    pub fn line_range(&self) -> std::ops::Range<usize> {
        self.line_start as usize..self.line_end as usize
    }

    /// The header name the line's leading token (after any white space) reads as:
    /// `Via SIP/2.0/UDP h` and `v SIP/2.0/UDP h` read as [`HeaderName::Via`],
    /// `Foo bar baz` as [`HeaderName::Other`]. `None` when no token leads the line.
    pub fn name(&self) -> Option<HeaderName> {
        self.name
    }

    /// True when the line may have been meant as a `name` header: its leading token
    /// reads as `name`, or no token leads it to say otherwise.
    pub fn may_be(&self, name: HeaderName) -> bool {
        self.name.map_or(true, |n| n == name)
    }
}

/// The header lines [`Message::parse_skipping_bad_lines`] left out, in message
/// order; at most [`MAX_BAD_LINES`], held without allocating.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BadLines {
    lines: SmallVec<[BadLine; MAX_BAD_LINES]>,
}

impl BadLines {
    /// The lines left out.
    pub fn as_slice(&self) -> &[BadLine] {
        &self.lines
    }

    /// Iterates over the lines left out.
    pub fn iter(&self) -> std::slice::Iter<'_, BadLine> {
        self.lines.iter()
    }

    /// How many lines were left out.
    pub fn len(&self) -> usize {
        self.lines.len()
    }

    /// True when the message had no bad line.
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }
}

/// The header name the leading token of `line` (after any white space) reads as.
/// Kept out of line: with a second copy of the name lookup inlined on the salvage
/// path, the copy in [`Message::parse`] compiled to about 1% more instructions per
/// message (callgrind over `benches/messages`); out of line, none.
#[inline(never)]
fn leading_name(line: &[u8]) -> Option<HeaderName> {
    let s = trim_ws_start(line);
    let n = s.iter().take_while(|&&b| is_token(b)).count();
    s.get(..n)
        .filter(|t| !t.is_empty())
        .map(HeaderName::from_bytes)
}

/// What the header scan does with a line that is not a header.
trait BadLinePolicy {
    /// The line at `start..end` of `buf` (line end included) is not a header:
    /// where the scan goes on, or the error that ends it.
    fn skip(&mut self, buf: &[u8], start: usize, end: usize) -> Result<usize, ParseError>;
}

/// [`Message::parse`]'s policy: a bad line is [`ParseError::InvalidHeaderLine`], so
/// no skipping code is left in the scan.
struct Strict;

impl BadLinePolicy for Strict {
    #[inline(always)]
    fn skip(&mut self, _: &[u8], _: usize, _: usize) -> Result<usize, ParseError> {
        Err(ParseError::InvalidHeaderLine)
    }
}

impl BadLinePolicy for BadLines {
    /// Leaves the line out together with its continuation lines, which belong to
    /// it and not to the header above (RFC 3261 §7.3.1).
    #[cold]
    fn skip(&mut self, buf: &[u8], start: usize, mut end: usize) -> Result<usize, ParseError> {
        if self.lines.len() == MAX_BAD_LINES {
            return Err(ParseError::InvalidHeaderLine);
        }
        while let Some(b' ' | b'\t') = buf.get(end) {
            // Without a line end the scan stops there: Incomplete.
            let Some(lf) = buf.get(end..).and_then(|rest| memchr(b'\n', rest)) else {
                break;
            };
            end += lf + 1;
        }
        self.lines.push(BadLine::new(buf, start, end));
        Ok(end)
    }
}

#[inline]
fn strip_cr(line: &[u8]) -> &[u8] {
    match line {
        [rest @ .., b'\r'] => rest,
        _ => line,
    }
}

#[inline]
fn trim_ws_start(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|&&b| b == b' ' || b == b'\t').count();
    &s[n..]
}

#[inline]
fn trim_ws_end(s: &[u8]) -> &[u8] {
    let n = s
        .iter()
        .rev()
        .take_while(|&&b| b == b' ' || b == b'\t')
        .count();
    &s[..s.len() - n]
}

fn is_sip_version(v: &[u8]) -> bool {
    // RFC 3261 §7.1: the SIP-Version string is case-insensitive.
    v.eq_ignore_ascii_case(b"SIP/2.0")
}

fn looks_like_version(v: &[u8]) -> bool {
    v.len() >= 4 && v[..4].eq_ignore_ascii_case(b"SIP/")
}

fn parse_start_line(line: &[u8]) -> Result<StartLine<'_>, ParseError> {
    if looks_like_version(line) {
        // Status-Line = SIP-Version SP Status-Code SP Reason-Phrase
        let sp = memchr(b' ', line).ok_or(ParseError::InvalidStartLine)?;
        if !is_sip_version(&line[..sp]) {
            return Err(ParseError::BadVersion);
        }
        let rest = &line[sp + 1..];
        let code = rest.get(..3).ok_or(ParseError::InvalidStatusCode)?;
        if !code.iter().all(u8::is_ascii_digit) || !matches!(rest.get(3), None | Some(b' ')) {
            return Err(ParseError::InvalidStatusCode);
        }
        let code = parse_u32(code).ok_or(ParseError::InvalidStatusCode)? as u16;
        if !(100..=699).contains(&code) {
            return Err(ParseError::InvalidStatusCode);
        }
        let reason = rest.get(4..).unwrap_or(&[]);
        if reason.iter().any(|&b| b < 0x20 && b != b'\t') {
            return Err(ParseError::InvalidReasonPhrase);
        }
        return Ok(StartLine::Response { code, reason });
    }
    // Request-Line = Method SP Request-URI SP SIP-Version CRLF, single spaces
    // (RFC 4475 §3.1.2.9 lets extra SP between the elements be rejected).
    let sp1 = memchr(b' ', line).ok_or(ParseError::InvalidStartLine)?;
    let sp2 = memchr::memrchr(b' ', line).ok_or(ParseError::InvalidStartLine)?;
    if sp2 == sp1 {
        return Err(ParseError::InvalidStartLine);
    }
    let method = Method::parse(&line[..sp1]).ok_or(ParseError::InvalidMethod)?;
    let version = &line[sp2 + 1..];
    if !looks_like_version(version) {
        return Err(ParseError::InvalidStartLine);
    }
    if !is_sip_version(version) {
        return Err(ParseError::BadVersion);
    }
    let uri = &line[sp1 + 1..sp2];
    if uri.is_empty() || uri.iter().any(|&b| b <= b' ' || b == 0x7f) {
        return Err(ParseError::InvalidRequestUri);
    }
    Ok(StartLine::Request { method, uri })
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &[u8] = b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n\
Max-Forwards: 70\r\n\
To: Bob <sip:bob@biloxi.example.com>\r\n\
From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:alice@pc33.atlanta.example.com>\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 4\r\n\
\r\n\
v=0\n";

    /// The remembered decodings are each header's own, however often and in
    /// whatever order they are read, and errors are remembered as errors.
    #[test]
    fn remembered_decodings_match_the_decoders() {
        let m = Message::parse(INVITE).unwrap();
        for _ in 0..2 {
            assert_eq!(m.to().unwrap().uri, b"sip:bob@biloxi.example.com");
            assert_eq!(m.from().unwrap().tag(), Some(&b"1928301774"[..]));
            assert_eq!(m.cseq().unwrap().seq, 314159);
            assert_eq!(
                m.call_id(),
                Ok(&b"a84b4c76e66710@pc33.atlanta.example.com"[..])
            );
            assert_eq!(m.via().unwrap().branch(), Some(&b"z9hG4bK776asdhds"[..]));
            assert_eq!(m.vias().count(), 1);
            let Ok(Uri::Sip(u)) = m.uri() else {
                panic!("Request-URI")
            };
            assert_eq!(u.user, Some(&b"bob"[..]));
            let to = m.to_uri().unwrap();
            assert_eq!(to, Uri::parse(m.to().unwrap().uri).unwrap());
            assert_eq!(to.as_sip().and_then(|s| s.user), Some(&b"bob"[..]));
            let from = m.from_uri().unwrap();
            assert_eq!(from.as_sip().and_then(|s| s.user), Some(&b"alice"[..]));
        }
        let bad = b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\r\nTo: <sip:a@b>\r\n\
From: x\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
        let m = Message::parse(bad).unwrap();
        for _ in 0..2 {
            assert_eq!(m.from().err(), Some(ParseError::InvalidFrom));
            assert_eq!(m.from_uri().err(), Some(ParseError::InvalidFrom));
            assert_eq!(m.uri(), Err(ParseError::InvalidRequestUri));
            assert!(m.to().is_ok());
            assert!(m.to_uri().is_ok());
        }
        // A To that is an address but whose URI does not parse; no To at all.
        let bad_uri = b"SIP/2.0 200 OK\r\nTo: <sip:@>\r\n\r\n";
        let m = Message::parse(bad_uri).unwrap();
        assert!(m.to().is_ok());
        assert_eq!(m.to_uri().err(), Some(ParseError::InvalidTo));
        let m = Message::parse(b"SIP/2.0 200 OK\r\n\r\n").unwrap();
        assert_eq!(m.to_uri().err(), Some(ParseError::MissingTo));
        assert_eq!(m.from_uri().err(), Some(ParseError::MissingFrom));
    }

    #[test]
    fn request_line_and_headers() {
        let m = Message::parse(INVITE).unwrap();
        assert_eq!(m.method(), Some(Method::Invite));
        assert_eq!(m.request_uri(), Some(&b"sip:bob@biloxi.example.com"[..]));
        assert_eq!(m.headers().len(), 9);
        assert_eq!(
            m.header(HeaderName::CallId),
            Some(&b"a84b4c76e66710@pc33.atlanta.example.com"[..])
        );
        assert_eq!(m.header(HeaderName::CSeq), Some(&b"314159 INVITE"[..]));
        assert_eq!(m.body(), b"v=0\n");
        assert_eq!(m.content_length(), Ok(Some(4)));
        assert_eq!(m.as_bytes(), INVITE);
    }

    #[test]
    fn response_line() {
        let m = Message::parse(b"SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP h\r\n\r\n").unwrap();
        assert_eq!(m.status(), Some(180));
        assert_eq!(
            m.start_line(),
            &StartLine::Response {
                code: 180,
                reason: b"Ringing"
            }
        );
        let m = Message::parse(b"SIP/2.0 200 \r\n\r\n").unwrap();
        assert_eq!(m.status(), Some(200));
        assert_eq!(
            Message::parse(b"SIP/2.0 99 X\r\n\r\n").unwrap_err(),
            ParseError::InvalidStatusCode
        );
        assert_eq!(
            Message::parse(b"SIP/3.0 200 OK\r\n\r\n").unwrap_err(),
            ParseError::BadVersion
        );
    }

    #[test]
    fn folding_and_compact_and_lists() {
        let msg = b"OPTIONS sip:x SIP/2.0\r\n\
v: SIP/2.0/UDP a;branch=1,\r\n SIP/2.0/TCP b;branch=2\r\n\
Via:SIP/2.0/UDP c\r\n\
Subject:\r\n  folded\r\n\tsubject  \r\n\
l: 0\r\n\r\n";
        let m = Message::parse(msg).unwrap();
        let vias: Vec<&[u8]> = m.values(HeaderName::Via).collect();
        assert_eq!(
            vias,
            vec![
                &b"SIP/2.0/UDP a;branch=1"[..],
                &b"SIP/2.0/TCP b;branch=2"[..],
                &b"SIP/2.0/UDP c"[..]
            ]
        );
        assert_eq!(
            m.header(HeaderName::Subject),
            Some(&b"folded\r\n\tsubject"[..])
        );
        let top = m.top_via().unwrap();
        assert_eq!(&m.buf()[m.offset_of(top)..][..top.len()], top);
    }

    #[test]
    fn framing_errors() {
        assert_eq!(Message::parse(b"\r\n\r\n").unwrap_err(), ParseError::Empty);
        assert_eq!(
            Message::parse(b"OPTIONS sip:x SIP/2.0\r\nTo: a\r\n").unwrap_err(),
            ParseError::Incomplete
        );
        assert_eq!(
            Message::parse(b"OPTIONS sip:x SIP/2.0\r\nTo a\r\n\r\n").unwrap_err(),
            ParseError::InvalidHeaderLine
        );
        assert_eq!(
            Message::parse(b"OPTIONS  sip:x SIP/2.0\r\n\r\n").unwrap_err(),
            ParseError::InvalidRequestUri
        );
        assert_eq!(
            Message::parse(b"OPTIONS sip:x SIP/2.0\r\nl: 10\r\n\r\nabc").unwrap_err(),
            ParseError::BadContentLength
        );
        assert_eq!(
            Message::parse(b"OPTIONS sip:x SIP/2.0\r\nl: x\r\n\r\n").unwrap_err(),
            ParseError::BadContentLength
        );
    }

    #[test]
    fn header_name_is_a_token_then_hcolon() {
        // RFC 3261 §25.1: header-name = token, HCOLON = *( SP / HTAB ) ":" SWS.
        let with = |line: &str| format!("OPTIONS sip:x SIP/2.0\r\n{line}\r\n\r\n").into_bytes();
        for (line, name, value) in [
            ("To: a", "To", "a"),
            ("To:a", "To", "a"),
            ("To \t : a:b", "To", "a:b"),
            ("X-A.b!%*_+`'~: a", "X-A.b!%*_+`'~", "a"),
            ("t:", "t", ""),
        ] {
            let buf = with(line);
            let m = Message::parse(&buf).unwrap_or_else(|e| panic!("{line:?}: {e:?}"));
            let h = &m.headers()[0];
            assert_eq!(m.raw_name(h), name.as_bytes(), "{line:?}");
            assert_eq!(m.value(h), value.as_bytes(), "{line:?}");
        }
        for line in [
            ": a",
            "T o: a",
            "To;x: a",
            "To\x01: a",
            "To",
            "To a",
            "Té: a",
            "To\r: a",
            "To\x0b: a",
        ] {
            let buf = with(line);
            assert_eq!(
                Message::parse(&buf).unwrap_err(),
                ParseError::InvalidHeaderLine,
                "{line:?}"
            );
        }
    }

    /// `INVITE` with `line` (CRLF added) inserted before header line `at`.
    fn with_line_at(at: usize, line: &str) -> Vec<u8> {
        let text = std::str::from_utf8(INVITE).unwrap();
        let mut lines: Vec<&str> = text.split_inclusive("\r\n").collect();
        let inserted = format!("{line}\r\n");
        lines.insert(1 + at, &inserted);
        lines.concat().into_bytes()
    }

    /// The header table as (name, value) pairs, to compare two parses of
    /// different buffers.
    fn table<'m>(m: &Message<'m>) -> Vec<(HeaderName, &'m [u8], &'m [u8])> {
        m.headers()
            .iter()
            .map(|h| (h.name, m.raw_name(h), m.value(h)))
            .collect()
    }

    #[test]
    fn skipping_bad_lines_keeps_every_other_header() {
        let good = Message::parse(INVITE).unwrap();
        let buf = with_line_at(1, "Foo bar baz");
        assert_eq!(
            Message::parse(&buf).unwrap_err(),
            ParseError::InvalidHeaderLine
        );
        let (m, bad) = Message::parse_skipping_bad_lines(&buf).unwrap();
        assert_eq!(table(&m), table(&good));
        assert_eq!(m.body(), b"v=0\n");
        assert_eq!(m.via().unwrap().branch(), Some(&b"z9hG4bK776asdhds"[..]));
        assert_eq!(bad.len(), 1);
        let line = bad.as_slice()[0];
        assert_eq!(&buf[line.line_range()], b"Foo bar baz\r\n");
        assert_eq!(line.name(), Some(HeaderName::Other));
        assert!(!line.may_be(HeaderName::Via));
        // A message without a bad line: the same as parse, nothing skipped.
        let (m, bad) = Message::parse_skipping_bad_lines(INVITE).unwrap();
        assert_eq!(table(&m), table(&good));
        assert!(bad.is_empty());
    }

    #[test]
    fn a_bad_line_takes_its_continuation_lines_with_it() {
        // RFC 3261 §7.3.1: a continuation line extends the line before it, so the
        // lines folded under a bad line are part of it, not of the header above.
        let buf = with_line_at(1, "Foo bar\r\n baz\r\n\tqux");
        let (m, bad) = Message::parse_skipping_bad_lines(&buf).unwrap();
        assert_eq!(
            m.header(HeaderName::Via),
            Some(&b"SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds"[..])
        );
        assert_eq!(m.header(HeaderName::MaxForwards), Some(&b"70"[..]));
        let [line] = bad.as_slice() else {
            panic!("{bad:?}")
        };
        assert_eq!(&buf[line.line_range()], b"Foo bar\r\n baz\r\n\tqux\r\n");
        // A continuation line with nothing before it is a bad line of its own.
        let buf = with_line_at(0, " Via: SIP/2.0/UDP h;branch=z9hG4bKx\r\n more");
        assert_eq!(
            Message::parse(&buf).unwrap_err(),
            ParseError::InvalidHeaderLine
        );
        let (m, bad) = Message::parse_skipping_bad_lines(&buf).unwrap();
        assert_eq!(table(&m), table(&Message::parse(INVITE).unwrap()));
        let [line] = bad.as_slice() else {
            panic!("{bad:?}")
        };
        assert_eq!(line.name(), Some(HeaderName::Via));
        assert_eq!(
            &buf[line.line_range()],
            b" Via: SIP/2.0/UDP h;branch=z9hG4bKx\r\n more\r\n"
        );
    }

    #[test]
    fn a_bad_line_says_what_it_may_have_been() {
        for (line, name) in [
            ("Via SIP/2.0/UDP h;branch=z9hG4bKx", Some(HeaderName::Via)),
            ("v SIP/2.0/UDP h", Some(HeaderName::Via)),
            ("VIA;x: SIP/2.0/UDP h", Some(HeaderName::Via)),
            ("To a", Some(HeaderName::To)),
            ("To\r: a", Some(HeaderName::To)),
            ("Foo bar baz", Some(HeaderName::Other)),
            (": SIP/2.0/UDP h", None),
            ("\x01Via: SIP/2.0/UDP h", None),
            ("é: x", None),
        ] {
            let buf = with_line_at(2, line);
            let (_, bad) = Message::parse_skipping_bad_lines(&buf)
                .unwrap_or_else(|e| panic!("{line:?}: {e:?}"));
            let [bad] = bad.as_slice() else {
                panic!("{line:?}: {bad:?}")
            };
            assert_eq!(bad.name(), name, "{line:?}");
            // No name: it could have been anything, a Via included.
            assert_eq!(
                bad.may_be(HeaderName::Via),
                matches!(name, None | Some(HeaderName::Via)),
                "{line:?}"
            );
        }
    }

    #[test]
    fn bad_lines_skipped_are_bounded() {
        let mut text = String::from_utf8(INVITE.to_vec()).unwrap();
        for i in 0..MAX_BAD_LINES {
            let (m, bad) = Message::parse_skipping_bad_lines(text.as_bytes()).unwrap();
            assert_eq!(bad.len(), i);
            assert_eq!(m.headers().len(), 9);
            text = text.replacen("\r\nTo:", &format!("\r\nbad line {i}\r\nTo:"), 1);
        }
        let (_, bad) = Message::parse_skipping_bad_lines(text.as_bytes()).unwrap();
        assert_eq!(bad.len(), MAX_BAD_LINES);
        let text = text.replacen("\r\nTo:", "\r\none too many\r\nTo:", 1);
        assert_eq!(
            Message::parse_skipping_bad_lines(text.as_bytes()).unwrap_err(),
            ParseError::InvalidHeaderLine
        );
    }

    #[test]
    fn skipping_bad_lines_leaves_other_faults_to_fail() {
        for (buf, err) in [
            (
                &b"OPTIONS sip:x SIP/2.0\r\nTo a\r\n"[..],
                ParseError::Incomplete,
            ),
            (
                b"OPTIONS sip:x SIP/2.0\r\nTo a\r\nl: 10\r\n\r\nabc",
                ParseError::BadContentLength,
            ),
            (
                b"OPTIONS sip:x SIP/3.0\r\nTo a\r\n\r\n",
                ParseError::BadVersion,
            ),
            (
                b"OPTIONS sip:x\r\nTo a\r\n\r\n",
                ParseError::InvalidStartLine,
            ),
        ] {
            assert_eq!(
                Message::parse_skipping_bad_lines(buf).unwrap_err(),
                err,
                "{:?}",
                String::from_utf8_lossy(buf)
            );
        }
        // A bad Content-Length line is skipped like any other: the body is then the
        // rest of the buffer (RFC 3261 §18.3).
        let (m, _) =
            Message::parse_skipping_bad_lines(b"OPTIONS sip:x SIP/2.0\r\nl 2\r\n\r\nabc").unwrap();
        assert_eq!(m.body(), b"abc");
    }

    /// Every RFC 4475 torture message and every parse fuzz seed, with a bad line
    /// inserted at each header position: the salvage finds exactly the message's
    /// own headers and the inserted line, and the two tile the header section.
    #[test]
    fn salvage_of_every_torture_message_and_fuzz_seed() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files = Vec::new();
        for dir in ["tests/rfc4475", "fuzz/seeds/parse"] {
            for e in std::fs::read_dir(root.join(dir)).unwrap() {
                files.push(std::fs::read(e.unwrap().path()).unwrap());
            }
        }
        assert!(files.len() > 40);
        let mut salvaged = 0;
        for buf in &files {
            let Ok(good) = Message::parse(buf) else {
                // A message that does not parse does not parse skipping bad lines
                // either, unless its fault is a bad line.
                if let Err(e) = Message::parse_skipping_bad_lines(buf) {
                    assert_ne!(e, ParseError::InvalidHeaderLine);
                }
                continue;
            };
            let head_start = good.start_line_range().end;
            let lines = good.headers().len();
            for at in 0..=lines {
                let offset = good
                    .headers()
                    .get(at)
                    .map_or(good.headers_end(), |h| h.line_range().start);
                let mut copy = buf[..offset].to_vec();
                copy.extend_from_slice(b"Foo bar baz\r\n");
                copy.extend_from_slice(&buf[offset..]);
                let (m, bad) = Message::parse_skipping_bad_lines(&copy).unwrap();
                assert_eq!(table(&m), table(&good));
                assert_eq!(m.body(), good.body());
                let [line] = bad.as_slice() else {
                    panic!("{bad:?}")
                };
                assert_eq!(line.line_range(), offset..offset + 13);
                // Header lines and the bad line tile the header section.
                let mut ranges: Vec<_> = m.headers().iter().map(|h| h.line_range()).collect();
                ranges.push(line.line_range());
                ranges.sort_by_key(|r| r.start);
                let mut pos = head_start;
                for r in ranges {
                    assert_eq!(r.start, pos);
                    pos = r.end;
                }
                assert!(matches!(&copy[pos..m.body_offset()], b"\r\n" | b"\n"));
                salvaged += 1;
            }
        }
        assert!(salvaged > 400, "{salvaged}");
    }

    #[test]
    fn extra_bytes_after_body_are_ignored() {
        // RFC 3261 §18.3
        let m = Message::parse(b"OPTIONS sip:x SIP/2.0\r\nl: 2\r\n\r\nabcdef").unwrap();
        assert_eq!(m.body(), b"ab");
        assert!(m.as_bytes().ends_with(b"\r\n\r\nab"));
    }

    #[test]
    fn no_allocation_below_inline_limit() {
        let mut msg = b"OPTIONS sip:x SIP/2.0\r\n".to_vec();
        for i in 0..INLINE_HEADERS {
            msg.extend_from_slice(format!("X-H{i}: v\r\n").as_bytes());
        }
        msg.extend_from_slice(b"\r\n");
        let m = Message::parse(&msg).unwrap();
        assert!(!m.headers.spilled());
    }
}
