//! Stream framing: cutting SIP messages out of a TCP/TLS byte stream.
//!
//! On a stream the end of a message is known only from `Content-Length`, which
//! MUST be present there (RFC 3261 §18.3). Between messages a peer may send CRLFs:
//! a double CRLF is an RFC 5626 §3.5.1 keep-alive "ping" that wants a single CRLF
//! "pong" back, and stray CRLFs before a start line are ignored (RFC 3261 §7.5).
//!
//! [`Framer`] keeps how far it has already looked, so that feeding it a buffer
//! that grows a few bytes at a time costs time linear in the bytes received, not
//! quadratic.

use memchr::memchr_iter;

use super::error::ParseError;
use super::header::HeaderName;
use super::text::{parse_u32, trim};

/// The single CRLF a server answers a [`Frame::Ping`] with (RFC 5626 §3.5.1).
pub const PONG: &[u8] = b"\r\n";

/// What the front of a stream buffer holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame {
    /// One complete message of this many bytes (header section, blank line and
    /// `Content-Length` body bytes). Parse `&buf[..n]` with
    /// [`Message::parse`](super::message::Message::parse), then drop those bytes.
    Message(usize),
    /// The message (or keep-alive) is not complete yet: read more and call again
    /// with the same buffer extended.
    NeedMore,
    /// A double-CRLF keep-alive ping (RFC 5626 §3.5.1). Drop [`Frame::len`] (4)
    /// bytes and write a single CRLF pong ([`PONG`]) on the same connection.
    Ping,
    /// CRLF (or a stray CR or LF) between messages: a pong answering our own ping,
    /// or padding a peer may send before a start line (RFC 3261 §7.5). Drop this
    /// many bytes; nothing is answered.
    KeepAlive(usize),
}

impl Frame {
    /// How many bytes the caller drops from the front of the buffer (0 for
    /// [`Frame::NeedMore`]).
    pub fn len(&self) -> usize {
        match *self {
            Frame::Message(n) | Frame::KeepAlive(n) => n,
            Frame::Ping => 4,
            Frame::NeedMore => 0,
        }
    }

    /// True for [`Frame::NeedMore`], the only frame that consumes nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Where the framer is within the message at the front of the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Looking for the blank line; every LF before `resume` has been examined.
    Headers { resume: usize },
    /// The header section is known; the message is `total` bytes long.
    Body { total: usize },
}

/// Cuts messages out of one connection's receive buffer.
///
/// Contract: call [`Framer::frame`] with the connection's buffer, whose front is the
/// start of the next unconsumed byte. Until a frame other than [`Frame::NeedMore`]
/// is returned, the buffer may only grow at its end; after one is returned, drop
/// [`Frame::len`] bytes from its front before the next call. The framer then
/// examines each received byte about once, however small the reads are. Call
/// [`Framer::reset`] if the buffer is replaced by something else.
///
/// After an error the stream cannot be resynchronised: close the connection (a
/// request could first be answered `400`/`513` with [`ParseError::reason`]).
#[derive(Debug, Clone)]
pub struct Framer {
    max_len: usize,
    state: State,
}

impl Framer {
    /// A framer that rejects messages larger than `max_len` bytes
    /// ([`ParseError::TooLarge`]).
    pub fn new(max_len: usize) -> Self {
        Framer {
            max_len,
            state: State::Headers { resume: 0 },
        }
    }

    /// The configured maximum message size.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Forgets what was learnt about the current buffer.
    pub fn reset(&mut self) {
        self.state = State::Headers { resume: 0 };
    }

    /// Says what the front of `buf` holds. See the type's contract.
    ///
    /// Errors: no `Content-Length` ([`ParseError::MissingContentLength`], RFC 3261
    /// §18.3), a non-numeric or conflicting one ([`ParseError::BadContentLength`]),
    /// a header section or whole message over `max_len` ([`ParseError::TooLarge`]).
    pub fn frame(&mut self, buf: &[u8]) -> Result<Frame, ParseError> {
        let resume = match self.state {
            State::Body { total } => {
                return Ok(if buf.len() >= total {
                    self.reset();
                    Frame::Message(total)
                } else {
                    Frame::NeedMore
                });
            }
            // A buffer shorter than what was already seen was replaced: start over.
            State::Headers { resume } if resume <= buf.len() => resume,
            State::Headers { .. } => 0,
        };
        if resume == 0 {
            if let Some(frame) = keep_alive(buf) {
                return Ok(frame);
            }
        }
        let Some(header_len) = find_blank_line(buf, resume) else {
            if buf.len() > self.max_len {
                self.reset();
                return Err(ParseError::TooLarge);
            }
            // The last two bytes may be the start of a blank line: look at them again.
            self.state = State::Headers {
                resume: buf.len().saturating_sub(2),
            };
            return Ok(Frame::NeedMore);
        };
        self.reset();
        let body_len = content_length(&buf[..header_len])?;
        let total = header_len
            .checked_add(body_len as usize)
            .filter(|&n| n <= self.max_len)
            .ok_or(ParseError::TooLarge)?;
        if buf.len() >= total {
            Ok(Frame::Message(total))
        } else {
            self.state = State::Body { total };
            Ok(Frame::NeedMore)
        }
    }
}

/// Recognises CRLFs at the front of the buffer; `None` when a start line begins there.
fn keep_alive(buf: &[u8]) -> Option<Frame> {
    match buf {
        [] => Some(Frame::NeedMore),
        [b'\r', b'\n', b'\r', b'\n', ..] => Some(Frame::Ping),
        // A lone CRLF could be the first half of a ping split by the network: a ping
        // must be answered (RFC 5626 §4.4.1 lets the client declare the flow dead
        // otherwise), so wait for the next byte before calling it a plain CRLF.
        [b'\r'] | [b'\r', b'\n'] | [b'\r', b'\n', b'\r'] => Some(Frame::NeedMore),
        [b'\r', b'\n', ..] => Some(Frame::KeepAlive(2)),
        // Tolerated: a bare LF, or a CR not followed by LF.
        [b'\r' | b'\n', ..] => Some(Frame::KeepAlive(1)),
        _ => None,
    }
}

/// Length of the header section including the blank line that ends it (CRLF CRLF,
/// or a bare-LF variant), looking at line ends from `from` on.
///
/// `buf` must not start with a line end (see [`keep_alive`]), so the first empty
/// line found ends the header section.
fn find_blank_line(buf: &[u8], from: usize) -> Option<usize> {
    let tail = buf.get(from..)?;
    for i in memchr_iter(b'\n', tail) {
        let lf = from + i;
        match buf.get(lf + 1..) {
            Some([b'\n', ..]) => return Some(lf + 2),
            Some([b'\r', b'\n', ..]) => return Some(lf + 3),
            _ => {}
        }
    }
    None
}

/// The Content-Length of a complete header section (full or compact name, any case,
/// value possibly folded onto continuation lines).
fn content_length(head: &[u8]) -> Result<u32, ParseError> {
    let long_len = HeaderName::ContentLength.as_str().len();
    let mut found: Option<u32> = None;
    let mut lines = Lines { head, pos: 0 };
    // The start line is not a header.
    lines.next();
    while let Some((at, line)) = lines.next() {
        // A continuation line (RFC 3261 §7.3.1) belongs to the header before it.
        if matches!(line.first(), Some(b' ' | b'\t')) {
            continue;
        }
        let Some(colon) = memchr::memchr(b':', line) else {
            continue;
        };
        let name = trim(&line[..colon]);
        // Cheap length filter before the name lookup: only `l` and `Content-Length`.
        if (name.len() != 1 && name.len() != long_len)
            || HeaderName::from_bytes(name) != HeaderName::ContentLength
        {
            continue;
        }
        let mut end = at + line.len();
        while let Some((cont_at, cont)) = lines.continuation() {
            // Folded: the value runs on; `trim` drops the CRLF SP in between.
            end = cont_at + cont.len();
        }
        let value = head.get(at + colon + 1..end).unwrap_or_default();
        let n = parse_u32(trim(value)).ok_or(ParseError::BadContentLength)?;
        // Two different lengths are a request-smuggling vector: whichever the next
        // hop believes, it would cut the stream elsewhere than we do.
        if found.is_some_and(|prev| prev != n) {
            return Err(ParseError::BadContentLength);
        }
        found = Some(n);
    }
    found.ok_or(ParseError::MissingContentLength)
}

/// Lines of a header section with their offsets, each with its line end; iteration
/// stops at the blank line.
struct Lines<'a> {
    head: &'a [u8],
    pos: usize,
}

impl<'a> Lines<'a> {
    /// The next line if it is a continuation (starts with SP or HTAB).
    fn continuation(&mut self) -> Option<(usize, &'a [u8])> {
        match self.head.get(self.pos) {
            Some(b' ' | b'\t') => self.next(),
            _ => None,
        }
    }
}

impl<'a> Iterator for Lines<'a> {
    type Item = (usize, &'a [u8]);

    fn next(&mut self) -> Option<(usize, &'a [u8])> {
        let rest = self.head.get(self.pos..)?;
        let len = memchr::memchr(b'\n', rest)? + 1;
        let line = &rest[..len];
        if line == b"\n" || line == b"\r\n" {
            self.pos = self.head.len();
            return None;
        }
        let at = self.pos;
        self.pos += len;
        Some((at, line))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::message::Message;

    const MAX: usize = 4096;

    const OPTIONS: &[u8] = b"OPTIONS sip:bob@example.com SIP/2.0\r\n\
Via: SIP/2.0/TCP a.example.com;branch=z9hG4bK1\r\n\
Call-ID: x1\r\n\
Content-Length: 0\r\n\
\r\n";

    const WITH_BODY: &[u8] = b"MESSAGE sip:bob@example.com SIP/2.0\r\n\
Via: SIP/2.0/TCP a.example.com;branch=z9hG4bK2\r\n\
Content-Type: text/plain\r\n\
Content-Length: 5\r\n\
\r\n\
hello";

    fn frame(buf: &[u8]) -> Result<Frame, ParseError> {
        Framer::new(MAX).frame(buf)
    }

    #[test]
    fn one_message_exactly() {
        assert_eq!(frame(OPTIONS), Ok(Frame::Message(OPTIONS.len())));
        assert_eq!(frame(WITH_BODY), Ok(Frame::Message(WITH_BODY.len())));
        let m = Message::parse(WITH_BODY).unwrap();
        assert_eq!(m.body(), b"hello");
    }

    #[test]
    fn two_messages_in_one_buffer() {
        let mut buf = WITH_BODY.to_vec();
        buf.extend_from_slice(OPTIONS);
        let mut f = Framer::new(MAX);
        let first = f.frame(&buf).unwrap();
        assert_eq!(first, Frame::Message(WITH_BODY.len()));
        let rest = &buf[first.len()..];
        assert_eq!(f.frame(rest), Ok(Frame::Message(OPTIONS.len())));
    }

    #[test]
    fn split_at_every_byte() {
        // The same framer is fed a growing prefix, as reads trickle in.
        let mut stream = WITH_BODY.to_vec();
        stream.extend_from_slice(b"\r\n\r\n");
        stream.extend_from_slice(OPTIONS);
        let mut f = Framer::new(MAX);
        let mut got = Vec::new();
        let mut start = 0;
        for end in 0..=stream.len() {
            loop {
                match f.frame(&stream[start..end]).unwrap() {
                    Frame::NeedMore => break,
                    fr => {
                        got.push(fr);
                        start += fr.len();
                    }
                }
            }
        }
        assert_eq!(start, stream.len());
        assert_eq!(
            got,
            vec![
                Frame::Message(WITH_BODY.len()),
                Frame::Ping,
                Frame::Message(OPTIONS.len())
            ]
        );
    }

    #[test]
    fn trickle_resumes_instead_of_rescanning() {
        let mut f = Framer::new(MAX);
        let head_only = &WITH_BODY[..WITH_BODY.len() - 5];
        assert_eq!(f.frame(&head_only[..20]), Ok(Frame::NeedMore));
        assert_eq!(f.state, State::Headers { resume: 18 });
        assert_eq!(f.frame(head_only), Ok(Frame::NeedMore));
        // The header section is done: later calls only compare lengths.
        assert_eq!(
            f.state,
            State::Body {
                total: WITH_BODY.len()
            }
        );
        assert_eq!(f.frame(WITH_BODY), Ok(Frame::Message(WITH_BODY.len())));
        assert_eq!(f.state, State::Headers { resume: 0 });
    }

    #[test]
    fn blank_line_split_across_reads() {
        // The CRLF CRLF arrives one byte at a time after a resume point.
        let mut f = Framer::new(MAX);
        let n = OPTIONS.len();
        for cut in [n - 4, n - 3, n - 2, n - 1] {
            assert_eq!(f.frame(&OPTIONS[..cut]), Ok(Frame::NeedMore), "{cut}");
        }
        assert_eq!(f.frame(OPTIONS), Ok(Frame::Message(n)));
    }

    #[test]
    fn crlf_ping_and_pong() {
        // RFC 5626 §3.5.1: a double CRLF is a ping, answered with a single CRLF.
        assert_eq!(frame(b"\r\n\r\n"), Ok(Frame::Ping));
        assert_eq!(Frame::Ping.len(), 4);
        assert_eq!(PONG, b"\r\n");
        assert_eq!(frame(b"\r\n\r\nOPTIONS"), Ok(Frame::Ping));
        // A lone CRLF before a message: consumed, not answered.
        assert_eq!(frame(b"\r\nOPTIONS"), Ok(Frame::KeepAlive(2)));
        // Not yet known whether this is a ping.
        assert_eq!(frame(b"\r"), Ok(Frame::NeedMore));
        assert_eq!(frame(b"\r\n"), Ok(Frame::NeedMore));
        assert_eq!(frame(b"\r\n\r"), Ok(Frame::NeedMore));
        assert_eq!(frame(b""), Ok(Frame::NeedMore));
        // Tolerated stray line ends.
        assert_eq!(frame(b"\nOPTIONS"), Ok(Frame::KeepAlive(1)));
        assert_eq!(frame(b"\r\n\rX"), Ok(Frame::KeepAlive(2)));
        assert_eq!(frame(b"\rX"), Ok(Frame::KeepAlive(1)));
        assert!(Frame::NeedMore.is_empty());
    }

    #[test]
    fn crlf_between_messages() {
        let mut buf = b"\r\n".to_vec();
        buf.extend_from_slice(OPTIONS);
        let mut f = Framer::new(MAX);
        assert_eq!(f.frame(&buf), Ok(Frame::KeepAlive(2)));
        assert_eq!(f.frame(&buf[2..]), Ok(Frame::Message(OPTIONS.len())));
    }

    #[test]
    fn missing_content_length() {
        // RFC 3261 §18.3: Content-Length MUST be used on streams.
        assert_eq!(
            frame(b"OPTIONS sip:x SIP/2.0\r\nCall-ID: a\r\n\r\n"),
            Err(ParseError::MissingContentLength)
        );
        assert_eq!(
            frame(b"OPTIONS sip:x SIP/2.0\r\n\r\n"),
            Err(ParseError::MissingContentLength)
        );
        // A name that merely starts like it does not count, nor a folded line that
        // looks like one.
        assert_eq!(
            frame(b"OPTIONS sip:x SIP/2.0\r\nContent-Lengthx: 0\r\n\r\n"),
            Err(ParseError::MissingContentLength)
        );
        assert_eq!(
            frame(b"OPTIONS sip:x SIP/2.0\r\nSubject: a\r\n l: 0\r\n\r\n"),
            Err(ParseError::MissingContentLength)
        );
    }

    #[test]
    fn bad_content_length() {
        for head in [
            &b"OPTIONS sip:x SIP/2.0\r\nContent-Length: x\r\n\r\n"[..],
            b"OPTIONS sip:x SIP/2.0\r\nContent-Length: -1\r\n\r\n",
            b"OPTIONS sip:x SIP/2.0\r\nContent-Length:\r\n\r\n",
            b"OPTIONS sip:x SIP/2.0\r\nContent-Length: 99999999999\r\n\r\n",
            // Conflicting duplicates would let two hops cut the stream differently.
            b"OPTIONS sip:x SIP/2.0\r\nl: 0\r\nContent-Length: 3\r\n\r\nabc",
        ] {
            assert_eq!(
                frame(head),
                Err(ParseError::BadContentLength),
                "{}",
                String::from_utf8_lossy(head)
            );
        }
        // Equal duplicates are harmless.
        let dup = b"OPTIONS sip:x SIP/2.0\r\nl: 3\r\nContent-Length: 3\r\n\r\nabc";
        assert_eq!(frame(dup), Ok(Frame::Message(dup.len())));
    }

    #[test]
    fn compact_and_folded_and_any_case() {
        let compact = b"OPTIONS sip:x SIP/2.0\r\nL: 3\r\n\r\nabcNEXT";
        assert_eq!(frame(compact), Ok(Frame::Message(compact.len() - 4)));
        let lower = b"OPTIONS sip:x SIP/2.0\r\ncontent-length : 2\r\n\r\nab";
        assert_eq!(frame(lower), Ok(Frame::Message(lower.len())));
        let folded = b"OPTIONS sip:x SIP/2.0\r\nContent-Length:\r\n  2\r\nTo: a\r\n\r\nab";
        assert_eq!(frame(folded), Ok(Frame::Message(folded.len())));
        let m = Message::parse(folded).unwrap();
        assert_eq!(m.body(), b"ab");
    }

    #[test]
    fn bare_lf_line_ends() {
        let msg = b"OPTIONS sip:x SIP/2.0\nl: 2\n\nabX";
        assert_eq!(frame(msg), Ok(Frame::Message(msg.len() - 1)));
    }

    #[test]
    fn too_large() {
        // The header section never ends within the limit.
        let mut f = Framer::new(64);
        let mut buf = b"OPTIONS sip:x SIP/2.0\r\n".to_vec();
        while buf.len() <= 64 {
            assert_eq!(f.frame(&buf), Ok(Frame::NeedMore));
            buf.extend_from_slice(b"X: y\r\n");
        }
        assert_eq!(f.frame(&buf), Err(ParseError::TooLarge));
        // Headers fit, but the announced body does not.
        let big = b"OPTIONS sip:x SIP/2.0\r\nl: 100\r\n\r\n";
        assert_eq!(Framer::new(64).frame(big), Err(ParseError::TooLarge));
        // Exactly at the limit is fine.
        let exact = b"OPTIONS sip:x SIP/2.0\r\nl: 2\r\n\r\nab";
        assert_eq!(
            Framer::new(exact.len()).frame(exact),
            Ok(Frame::Message(exact.len()))
        );
        assert_eq!(
            Framer::new(exact.len() - 1).frame(exact),
            Err(ParseError::TooLarge)
        );
    }

    #[test]
    fn replaced_buffer_starts_over() {
        let mut f = Framer::new(MAX);
        assert_eq!(f.frame(&OPTIONS[..30]), Ok(Frame::NeedMore));
        // A shorter buffer cannot be the same one grown: scan it from the start.
        assert_eq!(f.frame(b"\r\n\r\n"), Ok(Frame::Ping));
    }
}
