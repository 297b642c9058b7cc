//! Repaired copies of requests that do not parse, made only to answer them.
//!
//! RFC 4475 §3.1.2 asks an element to answer several unparsable requests with
//! `400` rather than drop them (§3.1.2.2 a Content-Length past the datagram's
//! end, §3.1.2.3 a negative one, §3.1.2.8 LWS inside the Request-URI, §3.1.2.9
//! and §3.1.2.10 extra SP in the request line), and RFC 3261 §21.5.7 a request
//! of another SIP version with `505`. The answer needs the request's Via, From,
//! To, Call-ID and CSeq (§8.2.6.2), so the fault is repaired in a copy just far
//! enough for the parser to read those, and the copy answered. A copy is never
//! forwarded, and these run on the error path only.

use super::text::eq_ic;

/// The request line of `bytes` split into its method and the SIP-Version token,
/// for a request line whose middle does not parse. `None` for a response, or a
/// first line that does not begin with a method token and a space.
fn request_line(bytes: &[u8]) -> Option<(&[u8], usize)> {
    let nl = memchr::memchr(b'\n', bytes)?;
    let line = bytes[..nl].strip_suffix(b"\r").unwrap_or(&bytes[..nl]);
    if line.starts_with(b"SIP/") {
        return None;
    }
    let sp = memchr::memchr(b' ', line)?;
    let method = &line[..sp];
    // RFC 3261 §25.1: Method is a token.
    if method.is_empty() || !method.iter().all(|&b| is_token_char(b)) {
        return None;
    }
    Some((method, line.len()))
}

fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

/// A copy of the request `bytes` with its request line rewritten to
/// `METHOD sip:invalid SIP/2.0`: the Request-URI and the SIP-Version were what
/// did not parse (extra SP, LWS inside the URI, another version), and neither
/// is part of a response. `None` when the first line is no request line.
pub fn with_request_line_repaired(bytes: &[u8]) -> Option<Vec<u8>> {
    let (method, line_len) = request_line(bytes)?;
    let mut copy = Vec::with_capacity(bytes.len() + 24);
    copy.extend_from_slice(method);
    copy.extend_from_slice(b" sip:invalid SIP/2.0");
    copy.extend_from_slice(&bytes[line_len..]);
    Some(copy)
}

/// A copy of the datagram `bytes` without its Content-Length header lines (and
/// their folded continuations): over UDP the body is then the rest of the
/// datagram (RFC 3261 §18.3), which is all the answer needs. `None` when the
/// header section has no end.
pub fn without_content_length(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut copy = Vec::with_capacity(bytes.len());
    let mut rest = bytes;
    let mut skipping = false;
    loop {
        let nl = memchr::memchr(b'\n', rest)?;
        let (line, after) = rest.split_at(nl + 1);
        let text = line.strip_suffix(b"\n").unwrap_or(line);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        if text.is_empty() {
            copy.extend_from_slice(rest);
            return Some(copy);
        }
        let folded = text.first().is_some_and(|&b| b == b' ' || b == b'\t');
        if !folded {
            let name = memchr::memchr(b':', text).map(|c| trim_end(&text[..c]));
            skipping = name.is_some_and(|n| eq_ic(n, b"content-length") || eq_ic(n, b"l"));
        }
        if !skipping {
            copy.extend_from_slice(line);
        }
        rest = after;
    }
}

fn trim_end(s: &[u8]) -> &[u8] {
    let end = s
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(0, |i| i + 1);
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::Message;

    const TAIL: &str = "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n\
To: <sip:b@example.com>\r\nFrom: <sip:a@example.com>;tag=1\r\n\
Call-ID: c\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n";

    #[test]
    fn request_line_is_rebuilt_from_the_method() {
        let bytes = format!("OPTIONS  sip:a@example.com ;lr  SIP/2.0  \r\n{TAIL}\r\n");
        let copy = with_request_line_repaired(bytes.as_bytes()).unwrap();
        let m = Message::parse(&copy).unwrap();
        assert_eq!(m.request_uri(), Some(&b"sip:invalid"[..]));
        assert_eq!(m.call_id().unwrap(), b"c");
    }

    #[test]
    fn responses_and_garbage_are_not_repaired() {
        assert!(with_request_line_repaired(b"SIP/2.0  200 OK\r\n\r\n").is_none());
        assert!(with_request_line_repaired(b"<html> x\r\n\r\n").is_none());
        assert!(with_request_line_repaired(b"no line end").is_none());
    }

    #[test]
    fn content_length_lines_are_left_out() {
        let bytes = format!(
            "OPTIONS sip:a@example.com SIP/2.0\r\n{TAIL}Content-Length : -999\r\n\
             \t  9\r\nl: 5\r\nX: y\r\n\r\nbody"
        );
        let copy = without_content_length(bytes.as_bytes()).unwrap();
        let text = String::from_utf8(copy.clone()).unwrap();
        assert!(!text.contains("-999") && !text.contains("l: 5"), "{text}");
        assert!(text.contains("X: y\r\n\r\nbody"), "{text}");
        let m = Message::parse(&copy).unwrap();
        assert_eq!(m.body(), b"body");
        assert!(without_content_length(b"OPTIONS sip:a SIP/2.0\r\nX: y\r\n").is_none());
    }
}
