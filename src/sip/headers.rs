//! Typed decoders for the single-valued headers a proxy reads on every message
//! (CSeq, Call-ID, Max-Forwards, Expires, Content-Type) and the option-tag lists
//! (Require, Proxy-Require, Supported, Unsupported). RFC 3261 §20, §25.1.
//!
//! Each decoder reads the first header line of its name; rejecting a second CSeq or
//! Call-ID line ([`ParseError::DuplicateHeader`]) is the message validator's job.

use super::error::ParseError;
use super::header::HeaderName;
use super::message::{Message, Values};
use super::method::Method;
use super::params::Params;
use super::text::{eq_ic, is_lws, is_token, is_token_str, trim, trim_start};

/// Largest CSeq sequence number: "MUST be less than 2**31" (RFC 3261 §8.1.1.5).
pub const MAX_CSEQ: u32 = (1 << 31) - 1;

/// `CSeq = "CSeq" HCOLON 1*DIGIT LWS Method` (RFC 3261 §20.16).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CSeq<'a> {
    /// The sequence number, at most [`MAX_CSEQ`].
    pub seq: u32,
    /// The method, compared case-sensitively like the Request-Line's.
    pub method: Method<'a>,
}

impl<'a> CSeq<'a> {
    /// Decodes a CSeq value. Leading zeros are allowed (RFC 4475 §3.1.1.1 sends
    /// `0009`); a number above 2^31 - 1 is [`ParseError::InvalidCSeq`] (RFC 4475
    /// §3.1.2.4 expects a 400 for it).
    pub fn parse(value: &'a [u8]) -> Result<CSeq<'a>, ParseError> {
        let s = trim(value);
        let n = s.iter().take_while(|b| b.is_ascii_digit()).count();
        let (digits, rest) = s.split_at(n);
        if !rest.first().is_some_and(|&b| is_lws(b)) {
            return Err(ParseError::InvalidCSeq);
        }
        let seq = digits_value(digits)
            .filter(|&n| n <= u64::from(MAX_CSEQ))
            .ok_or(ParseError::InvalidCSeq)? as u32;
        let method = Method::parse(trim_start(rest)).ok_or(ParseError::InvalidCSeq)?;
        Ok(CSeq { seq, method })
    }
}

/// `media-type = m-type SLASH m-subtype *(SEMI m-parameter)` (RFC 3261 §20.15).
#[derive(Debug, Clone, Copy)]
pub struct ContentType<'a> {
    /// The type, as written (compare case-insensitively).
    pub mtype: &'a [u8],
    /// The subtype, as written (compare case-insensitively).
    pub subtype: &'a [u8],
    /// The parameters (`charset`, `boundary`, …), values as written.
    pub params: Params<'a>,
}

impl<'a> ContentType<'a> {
    /// Decodes a Content-Type value.
    pub fn parse(value: &'a [u8]) -> Result<ContentType<'a>, ParseError> {
        let s = trim(value);
        let t = s.iter().take_while(|&&b| is_token(b)).count();
        let (mtype, rest) = s.split_at(t);
        // SLASH = SWS "/" SWS
        let rest = match trim_start(rest) {
            [b'/', rest @ ..] => trim_start(rest),
            _ => return Err(ParseError::InvalidContentType),
        };
        let st = rest.iter().take_while(|&&b| is_token(b)).count();
        let (subtype, rest) = rest.split_at(st);
        if mtype.is_empty() || subtype.is_empty() {
            return Err(ParseError::InvalidContentType);
        }
        let rest = trim_start(rest);
        if !(rest.is_empty() || rest.first() == Some(&b';')) {
            return Err(ParseError::InvalidContentType);
        }
        let params = Params::new(rest);
        params
            .validate()
            .map_err(|_| ParseError::InvalidContentType)?;
        Ok(ContentType {
            mtype,
            subtype,
            params,
        })
    }

    /// True when this is `mtype/subtype`, compared case-insensitively (§7.3.1).
    pub fn is(&self, mtype: &str, subtype: &str) -> bool {
        eq_ic(self.mtype, mtype.as_bytes()) && eq_ic(self.subtype, subtype.as_bytes())
    }

    /// True for `application/sdp`.
    pub fn is_sdp(&self) -> bool {
        self.is("application", "sdp")
    }

    /// The value of parameter `name` (case-insensitive), as written.
    pub fn param(&self, name: &str) -> Option<&'a [u8]> {
        self.params.value(name.as_bytes())
    }
}

/// The option tags of one header name across all its lines, each checked to be a
/// token (RFC 3261 §20.32, §25.1 `option-tag`). Yields
/// [`ParseError::InvalidOptionTag`] for an element that is not.
#[derive(Debug, Clone)]
pub struct OptionTags<'a, 'm> {
    values: Values<'a, 'm>,
}

impl<'a> Iterator for OptionTags<'a, '_> {
    type Item = Result<&'a [u8], ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        let v = self.values.next()?;
        Some(if is_token_str(v) {
            Ok(v)
        } else {
            Err(ParseError::InvalidOptionTag)
        })
    }
}

impl OptionTags<'_, '_> {
    /// True when `tag` is listed (tokens compare case-insensitively, RFC 3261
    /// §7.3.1). Every element is checked, so a malformed list is an error even when
    /// the tag is present.
    pub fn contains(self, tag: &[u8]) -> Result<bool, ParseError> {
        let mut found = false;
        for t in self {
            found |= eq_ic(t?, tag);
        }
        Ok(found)
    }
}

impl<'a> Message<'a> {
    /// The decoded CSeq.
    pub fn cseq(&self) -> Result<CSeq<'a>, ParseError> {
        *self.memo().cseq.get_or_init(|| {
            CSeq::parse(
                self.header(HeaderName::CSeq)
                    .ok_or(ParseError::MissingCSeq)?,
            )
        })
    }

    /// The Call-ID, checked against `callid = word [ "@" word ]` (RFC 3261 §25.1).
    /// Call-IDs compare case-sensitively, byte for byte (§20.8).
    pub fn call_id(&self) -> Result<&'a [u8], ParseError> {
        *self.memo().call_id.get_or_init(|| {
            let v = trim(
                self.header(HeaderName::CallId)
                    .ok_or(ParseError::MissingCallId)?,
            );
            if is_call_id(v) {
                Ok(v)
            } else {
                Err(ParseError::InvalidCallId)
            }
        })
    }

    /// Max-Forwards (RFC 3261 §20.22), `None` when absent. A value above 255 is
    /// [`ParseError::InvalidMaxForwards`]; RFC 4475 §3.1.2.4 lets an element treat
    /// it as absent instead, which is the caller's choice.
    pub fn max_forwards(&self) -> Result<Option<u8>, ParseError> {
        match self.header(HeaderName::MaxForwards) {
            None => Ok(None),
            Some(v) => digits_value(trim(v))
                .and_then(|n| u8::try_from(n).ok())
                .map(Some)
                .ok_or(ParseError::InvalidMaxForwards),
        }
    }

    /// The Expires header (RFC 3261 §20.19), `None` when absent. See
    /// [`parse_delta_seconds`] for the handling of overlarge values.
    pub fn expires(&self) -> Result<Option<u32>, ParseError> {
        self.delta_seconds(HeaderName::Expires)
    }

    /// The Min-Expires header (RFC 3261 §20.23), `None` when absent.
    pub fn min_expires(&self) -> Result<Option<u32>, ParseError> {
        self.delta_seconds(HeaderName::MinExpires)
    }

    fn delta_seconds(&self, name: HeaderName) -> Result<Option<u32>, ParseError> {
        match self.header(name) {
            None => Ok(None),
            Some(v) => parse_delta_seconds(trim(v))
                .map(Some)
                .ok_or(ParseError::InvalidExpires),
        }
    }

    /// The delta-seconds of Retry-After (RFC 3261 §20.33), ignoring its comment and
    /// parameters; `None` when absent. Overlarge values saturate like Expires (RFC
    /// 3261 sets no range, RFC 4475 §3.1.2.5). A value that does not start with a
    /// number is [`ParseError::InvalidHeaderValue`].
    pub fn retry_after(&self) -> Result<Option<u32>, ParseError> {
        let Some(v) = self.header(HeaderName::RetryAfter) else {
            return Ok(None);
        };
        let v = trim(v);
        let n = v.iter().take_while(|b| b.is_ascii_digit()).count();
        let (digits, rest) = v.split_at(n);
        // Retry-After = delta-seconds [ comment ] *( SEMI retry-param )
        let tail_ok = match rest.first() {
            None => true,
            Some(&b) => is_lws(b) || b == b'(' || b == b';',
        };
        match parse_delta_seconds(digits) {
            Some(secs) if tail_ok => Ok(Some(secs)),
            _ => Err(ParseError::InvalidHeaderValue),
        }
    }

    /// The Content-Type, `None` when absent.
    pub fn content_type(&self) -> Result<Option<ContentType<'a>>, ParseError> {
        self.header(HeaderName::ContentType)
            .map(ContentType::parse)
            .transpose()
    }

    /// The option tags of every Require line.
    pub fn require(&self) -> OptionTags<'a, '_> {
        self.option_tags(HeaderName::Require)
    }

    /// The option tags of every Proxy-Require line.
    pub fn proxy_require(&self) -> OptionTags<'a, '_> {
        self.option_tags(HeaderName::ProxyRequire)
    }

    /// The option tags of every Supported (`k`) line.
    pub fn supported(&self) -> OptionTags<'a, '_> {
        self.option_tags(HeaderName::Supported)
    }

    /// The option tags of every Unsupported line.
    pub fn unsupported(&self) -> OptionTags<'a, '_> {
        self.option_tags(HeaderName::Unsupported)
    }

    fn option_tags(&self, name: HeaderName) -> OptionTags<'a, '_> {
        OptionTags {
            values: self.values(name),
        }
    }
}

/// `delta-seconds = 1*DIGIT`, as used by Expires, Min-Expires and the Contact
/// `expires` parameter.
///
/// RFC 3261 §20.19 bounds Expires to 0..=2^32-1, and §10.2.1 says implementations
/// MAY treat larger values as 2^32-1; this decoder does so (RFC 4475 §3.1.2.4
/// `Expires: 1` followed by 100 zeros is a number, merely a large one). Anything
/// that is not all digits — a sign, a date, an empty value — is `None`; §10.2.1
/// lets a registrar treat that as 3600.
pub fn parse_delta_seconds(s: &[u8]) -> Option<u32> {
    digits_value(s).map(|n| u32::try_from(n).unwrap_or(u32::MAX))
}

/// The value of `1*DIGIT` of any length, saturating at `u64::MAX` (so that leading
/// zeros never overflow and a huge number stays huge); `None` unless all digits.
fn digits_value(s: &[u8]) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    let mut n: u64 = 0;
    for &b in s {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n.saturating_mul(10).saturating_add(u64::from(b - b'0'));
    }
    Some(n)
}

/// `word` characters of RFC 3261 §25.1, as a table: the Call-ID of every message
/// is checked, and the chain of comparisons cost ~800 instructions per message.
const WORD: [bool; 256] = {
    let extra = b"-.!%*_+`'~()<>:\\\"/[]?{}";
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric();
        b += 1;
    }
    let mut i = 0;
    while i < extra.len() {
        t[extra[i] as usize] = true;
        i += 1;
    }
    t
};

/// True for a `word` character of RFC 3261 §25.1.
#[inline]
fn is_word(b: u8) -> bool {
    WORD[usize::from(b)]
}

/// `callid = word [ "@" word ]`.
fn is_call_id(v: &[u8]) -> bool {
    let mut parts = v.splitn(2, |&b| b == b'@');
    let local = parts.next().unwrap_or_default();
    let host_ok = match parts.next() {
        None => true,
        Some(h) => !h.is_empty() && h.iter().all(|&b| is_word(b)),
    };
    !local.is_empty() && local.iter().all(|&b| is_word(b)) && host_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_table_is_rfc3261_word() {
        // RFC 3261 §25.1: word = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" /
        // "+" / "`" / "'" / "~" / "(" / ")" / "<" / ">" / ":" / "\" / DQUOTE / "/" /
        // "[" / "]" / "?" / "{" / "}")
        for b in 0..=255u8 {
            let spec = b.is_ascii_alphanumeric() || br#"-.!%*_+`'~()<>:\"/[]?{}"#.contains(&b);
            assert_eq!(is_word(b), spec, "{b:#04x}");
        }
    }

    fn msg(headers: &str) -> Vec<u8> {
        format!("OPTIONS sip:x@example.com SIP/2.0\r\n{headers}Content-Length: 0\r\n\r\n")
            .into_bytes()
    }

    fn with<T>(headers: &str, f: impl FnOnce(&Message<'_>) -> T) -> T {
        let buf = msg(headers);
        let m = Message::parse(&buf).unwrap();
        f(&m)
    }

    #[test]
    fn cseq_grammar() {
        assert_eq!(
            CSeq::parse(b"314159 INVITE"),
            Ok(CSeq {
                seq: 314159,
                method: Method::Invite
            })
        );
        let c = CSeq::parse(b"1\t\tNEWMETHOD").unwrap();
        assert_eq!(c.method, Method::Other(b"NEWMETHOD"));
        // Leading zeros and a folded LWS (RFC 4475 §3.1.1.1: "cseq: 0009\r\n  INVITE").
        let c = CSeq::parse(b"0009\r\n  INVITE").unwrap();
        assert_eq!((c.seq, c.method), (9, Method::Invite));
        let c = CSeq::parse(b"000000000000000000000042 ACK").unwrap();
        assert_eq!(c.seq, 42);
        assert_eq!(CSeq::parse(b"0 BYE").unwrap().seq, 0);
        // Methods are case-sensitive: lower case is an extension method.
        assert_eq!(
            CSeq::parse(b"1 invite").unwrap().method,
            Method::Other(b"invite")
        );
    }

    #[test]
    fn cseq_number_bounds() {
        // RFC 3261 §8.1.1.5: less than 2**31.
        assert_eq!(CSeq::parse(b"2147483647 INVITE").unwrap().seq, MAX_CSEQ);
        assert_eq!(
            CSeq::parse(b"2147483648 INVITE"),
            Err(ParseError::InvalidCSeq)
        );
        assert_eq!(
            CSeq::parse(b"4294967296 INVITE"),
            Err(ParseError::InvalidCSeq)
        );
        // RFC 4475 §3.1.2.4 / §3.1.2.5
        assert_eq!(
            CSeq::parse(b"36893488147419103232 REGISTER"),
            Err(ParseError::InvalidCSeq)
        );
        assert_eq!(
            CSeq::parse(b"9292394834772304023312 OPTIONS"),
            Err(ParseError::InvalidCSeq)
        );
    }

    #[test]
    fn cseq_malformed() {
        for bad in [
            &b""[..],
            b"INVITE",
            b"1",
            b"1INVITE",
            b"-1 INVITE",
            b"+1 INVITE",
            b"1.0 INVITE",
            b"x INVITE",
            b" 1 ",
            b"1 IN VITE",
            b"1 INVITE;x",
        ] {
            assert_eq!(
                CSeq::parse(bad),
                Err(ParseError::InvalidCSeq),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn message_cseq() {
        with("CSeq: 8 INVITE\r\n", |m| {
            assert_eq!(m.cseq().unwrap().seq, 8);
        });
        with("cseq: 0009\r\n  INVITE\r\n", |m| {
            assert_eq!(m.cseq().unwrap().seq, 9);
        });
        with("", |m| assert_eq!(m.cseq(), Err(ParseError::MissingCSeq)));
        with("CSeq: 8\r\n", |m| {
            assert_eq!(m.cseq(), Err(ParseError::InvalidCSeq))
        });
    }

    #[test]
    fn call_id_grammar() {
        for good in [
            "a84b4c76e66710@pc33.atlanta.example.com",
            "wsinv.ndaksdj@192.0.2.1",
            "f81d4fae-7dec-11d0-a765-00a0c91e6bf6@[2001:db8::1]",
            "plain-local-id",
            "odd!%*_+`'~()<>:\\\"/[]?{}@x",
        ] {
            let hdr = format!("Call-ID: {good}\r\n");
            with(&hdr, |m| {
                assert_eq!(m.call_id(), Ok(good.as_bytes()), "{good}")
            });
        }
        with("i:  transports.kijh4akdnaqjkwendsasfdj  \r\n", |m| {
            assert_eq!(m.call_id(), Ok(&b"transports.kijh4akdnaqjkwendsasfdj"[..]))
        });
        for bad in ["", "a@b@c", "@b", "a@", "a b", "a,b", "a;b", "caf\u{e9}@x"] {
            let hdr = format!("Call-ID: {bad}\r\n");
            with(&hdr, |m| {
                assert_eq!(m.call_id(), Err(ParseError::InvalidCallId), "{bad}")
            });
        }
        with("", |m| {
            assert_eq!(m.call_id(), Err(ParseError::MissingCallId))
        });
    }

    #[test]
    fn max_forwards() {
        with("Max-Forwards: 70\r\n", |m| {
            assert_eq!(m.max_forwards(), Ok(Some(70)))
        });
        // RFC 4475 §3.1.1.1: leading zeros.
        with("MaX-fOrWaRdS: 0068\r\n", |m| {
            assert_eq!(m.max_forwards(), Ok(Some(68)))
        });
        with("Max-Forwards: 0\r\n", |m| {
            assert_eq!(m.max_forwards(), Ok(Some(0)))
        });
        with("Max-Forwards: 255\r\n", |m| {
            assert_eq!(m.max_forwards(), Ok(Some(255)))
        });
        with("", |m| assert_eq!(m.max_forwards(), Ok(None)));
        // RFC 4475 §3.1.2.4: 300, and absurdly long numbers.
        for bad in [
            "256",
            "300",
            "99999999999999999999999999",
            "-1",
            "7a",
            "",
            "1 2",
        ] {
            let hdr = format!("Max-Forwards: {bad}\r\n");
            with(&hdr, |m| {
                assert_eq!(
                    m.max_forwards(),
                    Err(ParseError::InvalidMaxForwards),
                    "{bad}"
                )
            });
        }
    }

    #[test]
    fn expires_saturates_and_rejects_non_numbers() {
        with("Expires: 3600\r\n", |m| {
            assert_eq!(m.expires(), Ok(Some(3600)))
        });
        with("Expires: 0\r\n", |m| assert_eq!(m.expires(), Ok(Some(0))));
        with("Expires: 4294967295\r\n", |m| {
            assert_eq!(m.expires(), Ok(Some(u32::MAX)))
        });
        // RFC 3261 §10.2.1: larger than 2**32-1 may be treated as 2**32-1.
        with("Expires: 4294967296\r\n", |m| {
            assert_eq!(m.expires(), Ok(Some(u32::MAX)))
        });
        // RFC 4475 §3.1.2.4: "1" followed by 100 zeros.
        let hdr = format!("Expires: 1{}\r\n", "0".repeat(100));
        with(&hdr, |m| assert_eq!(m.expires(), Ok(Some(u32::MAX))));
        with("", |m| assert_eq!(m.expires(), Ok(None)));
        for bad in ["-1", "five", "", "3600 s", "Thu, 01 Dec 1994 16:00:00 GMT"] {
            let hdr = format!("Expires: {bad}\r\n");
            with(&hdr, |m| {
                assert_eq!(m.expires(), Err(ParseError::InvalidExpires), "{bad}")
            });
        }
        assert_eq!(parse_delta_seconds(b"280297596632815"), Some(u32::MAX));
        assert_eq!(parse_delta_seconds(b"007"), Some(7));
    }

    #[test]
    fn min_expires_and_retry_after() {
        with("Min-Expires: 60\r\n", |m| {
            assert_eq!(m.min_expires(), Ok(Some(60)))
        });
        with("Min-Expires: x\r\n", |m| {
            assert_eq!(m.min_expires(), Err(ParseError::InvalidExpires))
        });
        with("Retry-After: 18000;duration=3600\r\n", |m| {
            assert_eq!(m.retry_after(), Ok(Some(18000)))
        });
        with("Retry-After: 120 (I'm in a meeting)\r\n", |m| {
            assert_eq!(m.retry_after(), Ok(Some(120)))
        });
        // RFC 4475 §3.1.2.5
        with("Retry-After: 949302838503028349304023988\r\n", |m| {
            assert_eq!(m.retry_after(), Ok(Some(u32::MAX)))
        });
        with("Retry-After: soon\r\n", |m| {
            assert_eq!(m.retry_after(), Err(ParseError::InvalidHeaderValue))
        });
        with("Retry-After: 12x\r\n", |m| {
            assert_eq!(m.retry_after(), Err(ParseError::InvalidHeaderValue))
        });
        with("", |m| assert_eq!(m.retry_after(), Ok(None)));
    }

    #[test]
    fn content_type() {
        with("Content-Type: application/sdp\r\n", |m| {
            let ct = m.content_type().unwrap().unwrap();
            assert!(ct.is_sdp());
            assert!(ct.is("APPLICATION", "SDP"));
            assert!(!ct.is("application", "pidf+xml"));
            assert!(ct.params.is_empty());
        });
        with(
            "c: multipart/mixed ; boundary=\"unique-boundary-1\";charset = UTF-8\r\n",
            |m| {
                let ct = m.content_type().unwrap().unwrap();
                assert_eq!(ct.mtype, b"multipart");
                assert_eq!(ct.subtype, b"mixed");
                assert_eq!(ct.param("BOUNDARY"), Some(&b"\"unique-boundary-1\""[..]));
                assert_eq!(ct.param("charset"), Some(&b"UTF-8"[..]));
            },
        );
        with("Content-Type: text / plain\r\n", |m| {
            assert!(m.content_type().unwrap().unwrap().is("text", "plain"))
        });
        with("", |m| assert!(m.content_type().unwrap().is_none()));
        for bad in [
            "application",
            "application/",
            "/sdp",
            "application/sdp x",
            "application/sdp;",
            "application/sdp;charset=",
            "app lication/sdp",
            "application/sdp/x",
        ] {
            let hdr = format!("Content-Type: {bad}\r\n");
            with(&hdr, |m| {
                assert_eq!(
                    m.content_type().unwrap_err(),
                    ParseError::InvalidContentType,
                    "{bad}"
                )
            });
        }
    }

    #[test]
    fn option_tags_across_lines() {
        let hdrs = "Require: 100rel , timer\r\nSupported:\r\nk: path,gruu\r\n\
Supported: outbound\r\nProxy-Require: sec-agree\r\nUnsupported: foo\r\n";
        with(hdrs, |m| {
            let req: Vec<_> = m.require().collect::<Result<_, _>>().unwrap();
            assert_eq!(req, vec![&b"100rel"[..], b"timer"]);
            let sup: Vec<_> = m.supported().collect::<Result<_, _>>().unwrap();
            assert_eq!(sup, vec![&b"path"[..], b"gruu", b"outbound"]);
            assert_eq!(m.proxy_require().contains(b"SEC-AGREE"), Ok(true));
            assert_eq!(m.supported().contains(b"timer"), Ok(false));
            assert_eq!(m.unsupported().next(), Some(Ok(&b"foo"[..])));
        });
        with("", |m| assert_eq!(m.require().count(), 0));
        with("Require: 100rel, bad tag, timer\r\n", |m| {
            let r: Vec<_> = m.require().collect();
            assert_eq!(r[1], Err(ParseError::InvalidOptionTag));
            assert_eq!(r.len(), 3);
            assert_eq!(
                m.require().contains(b"100rel"),
                Err(ParseError::InvalidOptionTag)
            );
        });
        with("Supported: \"quoted\"\r\n", |m| {
            assert_eq!(
                m.supported().next(),
                Some(Err(ParseError::InvalidOptionTag))
            )
        });
    }

    /// RFC 4475 §3.1.1.1 (wsinv), byte for byte.
    const WSINV: &[u8] = b"INVITE sip:vivekg@chair-dnrc.example.com;unknownparam SIP/2.0\r\n\
TO :\r\n sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n\r\n\
from   : \"J Rosenberg \\\\\\\"\"       <sip:jdrosen@example.com>\r\n  ;\r\n  tag = 98asjd8\r\n\
MaX-fOrWaRdS: 0068\r\n\
Call-ID: wsinv.ndaksdj@192.0.2.1\r\n\
Content-Length   : 150\r\n\
cseq: 0009\r\n  INVITE\r\n\
Via  : SIP  /   2.0\r\n /UDP\r\n    192.0.2.2;branch=390skdjuw\r\n\
s :\r\n\
NewFangledHeader:   newfangled value\r\n continued newfangled value\r\n\
UnknownHeaderWithUnusualValue: ;;,,;;,;\r\n\
Content-Type: application/sdp\r\n\
Route:\r\n <sip:services.example.com;lr;unknownwith=value;unknown-no-value>\r\n\
v:  SIP  / 2.0  / TCP     spindle.example.com   ;\r\n  branch  =   z9hG4bK9ikj8  ,\r\n \
SIP  /    2.0   / UDP  192.168.255.111   ; branch=\r\n z9hG4bK30239\r\n\
m:\"Quoted string \\\"\\\"\" <sip:jdrosen@example.com> ; newparam =\r\n      newvalue ;\r\n  \
secondparam ; q = 0.33\r\n\
\r\n\
v=0\r\n\
o=mhandley 29739 7272939 IN IP4 192.0.2.3\r\n\
s=-\r\n\
c=IN IP4 192.0.2.4\r\n\
t=0 0\r\n\
m=audio 49217 RTP/AVP 0 12\r\n\
m=video 3227 RTP/AVP 31\r\n\
a=rtpmap:31 LPC\r\n";

    #[test]
    fn rfc4475_wsinv_scalars() {
        let m = Message::parse(WSINV).unwrap();
        assert_eq!(m.body().len(), 150);
        assert_eq!(
            m.cseq(),
            Ok(CSeq {
                seq: 9,
                method: Method::Invite
            })
        );
        assert_eq!(m.max_forwards(), Ok(Some(68)));
        assert_eq!(m.call_id(), Ok(&b"wsinv.ndaksdj@192.0.2.1"[..]));
        assert!(m.content_type().unwrap().unwrap().is_sdp());
        let via = m.via().unwrap();
        assert_eq!(via.branch(), Some(&b"390skdjuw"[..]));
        assert_eq!(m.expires(), Ok(None));
    }

    #[test]
    fn rfc4475_scalar02_overlarge_request_fields() {
        // §3.1.2.4: 400 because of the CSeq; Max-Forwards and Expires are out of
        // range too.
        let buf = format!(
            "REGISTER sip:example.com SIP/2.0\r\n\
Via: SIP/2.0/TCP host129.example.com;branch=z9hG4bK342sdfoi3\r\n\
To: <sip:user@example.com>\r\n\
From: <sip:user@example.com>;tag=239232jh3\r\n\
CSeq: 36893488147419103232 REGISTER\r\n\
Call-ID: scalar02.23o0pd9vanlq3wnrlnewofjas9ui32\r\n\
Max-Forwards: 300\r\n\
Expires: 1{}\r\n\
Contact: <sip:user@host129.example.com>\r\n  ;expires=280297596632815\r\n\
Content-Length: 0\r\n\r\n",
            "0".repeat(100)
        );
        let m = Message::parse(buf.as_bytes()).unwrap();
        assert_eq!(m.cseq(), Err(ParseError::InvalidCSeq));
        assert_eq!(m.max_forwards(), Err(ParseError::InvalidMaxForwards));
        assert_eq!(m.expires(), Ok(Some(u32::MAX)));
        assert!(m.via().unwrap().has_magic_cookie());
    }

    #[test]
    fn rfc4475_scalarlg_overlarge_response_fields() {
        // §3.1.2.5
        let buf = b"SIP/2.0 503 Service Unavailable\r\n\
Via: SIP/2.0/TCP host129.example.com;branch=z9hG4bKzzxdiwo34sw;received=192.0.2.129\r\n\
CSeq: 9292394834772304023312 OPTIONS\r\n\
Call-ID: scalarlg.noase0of0234hn2qofoaf0232aewf2394r\r\n\
Retry-After: 949302838503028349304023988\r\n\
Content-Length: 0\r\n\r\n";
        let m = Message::parse(buf).unwrap();
        assert_eq!(m.cseq(), Err(ParseError::InvalidCSeq));
        assert_eq!(m.retry_after(), Ok(Some(u32::MAX)));
        assert_eq!(
            m.via().unwrap().received(),
            Some(Ok("192.0.2.129".parse().unwrap()))
        );
    }

    #[test]
    fn rfc4475_ncl_negative_and_non_numeric_content_length() {
        // §3.1.2.3: the framing fails before any header is decoded.
        for cl in ["-999", "five"] {
            let buf = format!(
                "INVITE sip:user@example.com SIP/2.0\r\nCSeq: 0 INVITE\r\nContent-Length: {cl}\r\n\r\nv=0\r\n"
            );
            assert_eq!(
                Message::parse(buf.as_bytes()).unwrap_err(),
                ParseError::BadContentLength
            );
        }
    }
}
