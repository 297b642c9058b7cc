//! URIs: `sip:`/`sips:` (RFC 3261 §19.1, grammar in §25.1), `tel:` (RFC 3966, the
//! basics a proxy meets), and any other scheme kept opaque (`http:`, `urn:`,
//! `mailto:` in Call-Info, Contact `+sip.instance` and friends).
//!
//! Parsing validates the whole URI once and borrows every component from the input;
//! components keep their `%HH` escapes as written. Only the `*_unescaped` helpers
//! allocate. [`SipUri::same_as`] implements the §19.1.4 comparison without
//! allocating.

use std::borrow::Cow;
use std::fmt;

use memchr::{memchr, memchr2};

use super::error::ParseError;
use super::host::{split_host_port, Host};
use super::params::{Param, Params};
use super::text::{eq_ic, parse_port, parse_u32, percent_decode};

/// A URI as found in a Request-URI, a name-addr, or a header parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uri<'a> {
    /// A `sip:` or `sips:` URI.
    Sip(SipUri<'a>),
    /// A `tel:` URI (RFC 3966).
    Tel(TelUri<'a>),
    /// Any other scheme, kept opaque: a proxy forwards it but never routes on it.
    Other {
        /// The whole URI as written.
        raw: &'a [u8],
        /// The scheme as written (compare case-insensitively).
        scheme: &'a [u8],
        /// Everything after the scheme's `:`.
        opaque: &'a [u8],
    },
}

impl<'a> Uri<'a> {
    /// Parses and validates a URI. The scheme is matched case-insensitively
    /// (RFC 3261 §19.1.1, RFC 3986 §3.1).
    ///
    /// Errors: [`ParseError::InvalidHost`] or [`ParseError::InvalidPort`] when the
    /// host part of a SIP URI is at fault, [`ParseError::InvalidUri`] otherwise.
    pub fn parse(s: &'a [u8]) -> Result<Uri<'a>, ParseError> {
        let (scheme, rest) = split_scheme(s).ok_or(ParseError::InvalidUri)?;
        match KnownScheme::of(scheme) {
            Some(KnownScheme::Sip) => SipUri::parse_parts(s, rest, false).map(Uri::Sip),
            Some(KnownScheme::Sips) => SipUri::parse_parts(s, rest, true).map(Uri::Sip),
            Some(KnownScheme::Tel) => TelUri::parse_parts(s, rest).map(Uri::Tel),
            None => Self::other(s, scheme, rest),
        }
    }

    /// A URI of a scheme this parser keeps opaque.
    fn other(s: &'a [u8], scheme: &'a [u8], rest: &'a [u8]) -> Result<Uri<'a>, ParseError> {
        if !rest.is_empty() && rest.iter().all(|&b| in_class(b, OPAQUE)) {
            Ok(Uri::Other {
                raw: s,
                scheme,
                opaque: rest,
            })
        } else {
            Err(ParseError::InvalidUri)
        }
    }

    /// The URI as written.
    pub fn as_bytes(&self) -> &'a [u8] {
        match self {
            Uri::Sip(u) => u.raw,
            Uri::Tel(u) => u.raw,
            Uri::Other { raw, .. } => raw,
        }
    }

    /// The SIP or SIPS URI, if this is one.
    pub fn as_sip(&self) -> Option<&SipUri<'a>> {
        match self {
            Uri::Sip(u) => Some(u),
            _ => None,
        }
    }

    /// URI equivalence: RFC 3261 §19.1.4 for SIP/SIPS, RFC 3966 §4 for tel, and
    /// for other schemes a case-insensitive scheme plus byte-equal remainder (a
    /// conservative answer: schemes this parser does not know are never "equal
    /// by normalisation").
    pub fn same_as(&self, other: &Uri<'_>) -> bool {
        match (self, other) {
            (Uri::Sip(a), Uri::Sip(b)) => a.same_as(b),
            (Uri::Tel(a), Uri::Tel(b)) => a.same_as(b),
            (
                Uri::Other {
                    scheme: sa,
                    opaque: oa,
                    ..
                },
                Uri::Other {
                    scheme: sb,
                    opaque: ob,
                    ..
                },
            ) => eq_ic(sa, sb) && oa == ob,
            _ => false,
        }
    }
}

impl fmt::Display for Uri<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Every accepted URI is ASCII, so this is exact.
        f.write_str(&String::from_utf8_lossy(self.as_bytes()))
    }
}

/// A `sip:` or `sips:` URI (RFC 3261 §19.1.1):
/// `sip:user:password@host:port;uri-parameters?headers`.
#[derive(Debug, Clone, Copy)]
pub struct SipUri<'a> {
    /// The whole URI as written.
    pub raw: &'a [u8],
    /// `sips:` rather than `sip:`.
    pub secure: bool,
    /// The user part as written (escapes kept). It may itself hold `;` or `?`
    /// (RFC 4475 §3.1.1.9: `sip:user;par=u%40example.net@example.com`).
    pub user: Option<&'a [u8]>,
    /// The password as written, when the userinfo has a `:` (may be empty).
    pub password: Option<&'a [u8]>,
    /// The host.
    pub host: Host<'a>,
    /// The port, when written.
    pub port: Option<u16>,
    /// The uri-parameters (`;transport=tcp;lr`), escapes kept.
    pub params: Params<'a>,
    /// The headers after `?` (`h1=v1&h2=v2`), escapes kept.
    pub headers: Option<&'a [u8]>,
}

/// Two parses of the same text are the same value; everything is derived from it.
impl PartialEq for SipUri<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.raw == other.raw
    }
}

impl Eq for SipUri<'_> {}

impl<'a> SipUri<'a> {
    /// Parses a URI that must be `sip:` or `sips:` ([`ParseError::InvalidUri`] for
    /// any other scheme).
    pub fn parse(s: &'a [u8]) -> Result<SipUri<'a>, ParseError> {
        match Uri::parse(s)? {
            Uri::Sip(u) => Ok(u),
            _ => Err(ParseError::InvalidUri),
        }
    }

    /// `rest` is what follows `sip:` / `sips:` in `raw`.
    fn parse_parts(raw: &'a [u8], rest: &'a [u8], secure: bool) -> Result<SipUri<'a>, ParseError> {
        // userinfo never holds an unescaped `@`, and neither do hostport, params or
        // headers, so the first `@` ends the userinfo — even when the user part
        // contains `;` or `?` (both are user-unreserved, RFC 3261 §25.1).
        let (user, password, hostpart) = match memchr(b'@', rest) {
            Some(at) => {
                let (user, password) = split_userinfo(&rest[..at])?;
                (Some(user), password, &rest[at + 1..])
            }
            None => (None, None, rest),
        };

        let hp_end = memchr2(b';', b'?', hostpart).unwrap_or(hostpart.len());
        let (host_s, port_s) = split_host_port(&hostpart[..hp_end])?;
        let host = Host::parse(host_s)?;
        let port = match port_s {
            Some(p) => Some(parse_port(p).ok_or(ParseError::InvalidPort)?),
            None => None,
        };

        let after = &hostpart[hp_end..];
        // `after` is empty or starts at the `;` or `?` that ended the host part.
        let (params_s, headers) = match after {
            [] => (after, None),
            [b'?', headers @ ..] => (&after[..0], Some(headers)),
            _ => match memchr(b'?', after) {
                Some(q) => (&after[..q], Some(&after[q + 1..])),
                None => (after, None),
            },
        };
        if !valid_uri_params(params_s, SIP_PNAME) {
            return Err(ParseError::InvalidUri);
        }
        if let Some(h) = headers {
            if !valid_uri_headers(h) {
                return Err(ParseError::InvalidUri);
            }
        }
        Ok(SipUri {
            raw,
            secure,
            user,
            password,
            host,
            port,
            params: Params::new(params_s),
            headers,
        })
    }

    /// The `transport` parameter (compare case-insensitively).
    pub fn transport(&self) -> Option<&'a [u8]> {
        self.params.value(b"transport")
    }

    /// True when the URI carries `lr` (a loose router, RFC 3261 §19.1.1).
    pub fn lr(&self) -> bool {
        self.params.contains(b"lr")
    }

    /// The `maddr` parameter as written (a host).
    pub fn maddr(&self) -> Option<&'a [u8]> {
        self.params.value(b"maddr")
    }

    /// The `user` parameter (`phone`, `ip`, …). Not the user part: see
    /// [`SipUri::user`].
    pub fn user_param(&self) -> Option<&'a [u8]> {
        self.params.value(b"user")
    }

    /// The `method` parameter.
    pub fn method_param(&self) -> Option<&'a [u8]> {
        self.params.value(b"method")
    }

    /// The `ttl` parameter: `Ok(None)` when absent, [`ParseError::InvalidParam`]
    /// unless it is `1*3DIGIT` in 0..=255 (RFC 3261 §25.1 `ttl`).
    pub fn ttl(&self) -> Result<Option<u8>, ParseError> {
        match self.params.get(b"ttl") {
            None => Ok(None),
            Some(v) => v
                .filter(|v| v.len() <= 3)
                .and_then(parse_u32)
                .and_then(|n| u8::try_from(n).ok())
                .map(Some)
                .ok_or(ParseError::InvalidParam),
        }
    }

    /// The port, or the scheme's default (5061 for `sips:`, 5060 otherwise) —
    /// for addressing only: §19.1.4 treats an absent port as different from 5060.
    pub fn port_or_default(&self) -> u16 {
        self.port.unwrap_or(if self.secure { 5061 } else { 5060 })
    }

    /// The user part with `%HH` escapes resolved; borrows when there are none.
    pub fn user_unescaped(&self) -> Option<Cow<'a, [u8]>> {
        self.user.map(unescape)
    }

    /// The password with `%HH` escapes resolved; borrows when there are none.
    pub fn password_unescaped(&self) -> Option<Cow<'a, [u8]>> {
        self.password.map(unescape)
    }

    /// True when the user part, escapes resolved, equals `user` exactly (userinfo
    /// comparison is case-sensitive, RFC 3261 §19.1.4). Does not allocate.
    pub fn user_is(&self, user: &[u8]) -> bool {
        self.user.is_some_and(|u| {
            Decoded::new(u, false)
                .map(|c| c as u8)
                .eq(user.iter().copied())
        })
    }

    /// True when this URI addresses `host` at `port` (the default port standing in
    /// for an absent one): the "is this Route / Request-URI me?" test of a proxy.
    /// Hosts compare as in §19.1.4 (no DNS: a name never equals an address).
    pub fn targets(&self, host: &Host<'_>, port: u16) -> bool {
        self.host.same_as(host) && self.port_or_default() == port
    }

    /// URI equivalence per RFC 3261 §19.1.4: scheme, userinfo (case-sensitive),
    /// host, port; uri-parameters present in both must match (case-insensitively),
    /// while `user`, `ttl`, `method`, `maddr` and `transport` must also be present
    /// in both or neither; header components must match as a set. Escapes of
    /// unreserved characters equal the characters themselves.
    pub fn same_as(&self, other: &SipUri<'_>) -> bool {
        self.secure == other.secure
            && opt_component_eq(self.user, other.user, false)
            && opt_component_eq(self.password, other.password, false)
            && self.host.same_as(&other.host)
            && self.port == other.port
            && params_match(&self.params, &other.params, must_be_in_both)
            && params_match(&other.params, &self.params, must_be_in_both)
            && headers_match(self.headers, other.headers)
    }
}

/// A `tel:` URI (RFC 3966 §3): `tel:+1-201-555-0123;ext=1234`.
#[derive(Debug, Clone, Copy)]
pub struct TelUri<'a> {
    /// The whole URI as written.
    pub raw: &'a [u8],
    /// The number with its visual separators (`+1-201-555-0123`, `7042;…`).
    pub number: &'a [u8],
    /// The parameters (`;ext=…;phone-context=…`).
    pub params: Params<'a>,
}

/// Two parses of the same text are the same value; everything is derived from it.
impl PartialEq for TelUri<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.raw == other.raw
    }
}

impl Eq for TelUri<'_> {}

impl<'a> TelUri<'a> {
    /// `rest` is what follows `tel:` in `raw`.
    ///
    /// The `phone-context` that RFC 3966 §5.1.5 requires of a local number is not
    /// enforced: it is the terminating element's business, not a proxy's.
    fn parse_parts(raw: &'a [u8], rest: &'a [u8]) -> Result<TelUri<'a>, ParseError> {
        let end = memchr(b';', rest).unwrap_or(rest.len());
        let number = &rest[..end];
        let valid_number = match number {
            // global-number-digits = "+" *phonedigit DIGIT *phonedigit
            [b'+', digits @ ..] => {
                digits
                    .iter()
                    .all(|&b| b.is_ascii_digit() || is_visual_sep(b))
                    && digits.iter().any(u8::is_ascii_digit)
            }
            // local-number-digits = *phonedigit-hex (HEXDIG / "*" / "#") *phonedigit-hex
            _ => {
                number
                    .iter()
                    .all(|&b| is_local_digit(b) || is_visual_sep(b))
                    && number.iter().any(|&b| is_local_digit(b))
            }
        };
        let params_s = &rest[end..];
        if !valid_number || !valid_uri_params(params_s, TEL_PNAME) {
            return Err(ParseError::InvalidUri);
        }
        Ok(TelUri {
            raw,
            number,
            params: Params::new(params_s),
        })
    }

    /// True for a global number (`+` and a country code).
    pub fn is_global(&self) -> bool {
        self.number.first() == Some(&b'+')
    }

    /// The `phone-context` parameter of a local number.
    pub fn phone_context(&self) -> Option<&'a [u8]> {
        self.params.value(b"phone-context")
    }

    /// Equivalence per RFC 3966 §4: numbers equal once visual separators are
    /// dropped (case-insensitively, for hex digits), and the same set of
    /// parameters with case-insensitively equal values.
    pub fn same_as(&self, other: &TelUri<'_>) -> bool {
        fn digits(n: &[u8]) -> impl Iterator<Item = u8> + '_ {
            n.iter()
                .filter(|&&b| !is_visual_sep(b))
                .map(u8::to_ascii_lowercase)
        }
        digits(self.number).eq(digits(other.number))
            && params_match(&self.params, &other.params, |_| true)
            && params_match(&other.params, &self.params, |_| true)
    }
}

// --- character classes of RFC 3261 §25.1 ------------------------------------------

/// `mark = "-" / "_" / "." / "!" / "~" / "*" / "'" / "(" / ")"`
#[inline]
const fn is_mark(b: u8) -> bool {
    matches!(
        b,
        b'-' | b'_' | b'.' | b'!' | b'~' | b'*' | b'\'' | b'(' | b')'
    )
}

/// `unreserved = alphanum / mark`
#[inline]
const fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || is_mark(b)
}

/// `reserved = ";" / "/" / "?" / ":" / "@" / "&" / "=" / "+" / "$" / ","`
#[inline]
fn is_reserved(b: u8) -> bool {
    matches!(
        b,
        b';' | b'/' | b'?' | b':' | b'@' | b'&' | b'=' | b'+' | b'$' | b','
    )
}

/// `unreserved / user-unreserved` (`& = + $ , ; ? /`)
const fn is_user_unreserved(b: u8) -> bool {
    is_unreserved(b) || matches!(b, b'&' | b'=' | b'+' | b'$' | b',' | b';' | b'?' | b'/')
}

/// `unreserved / "&" / "=" / "+" / "$" / ","`
const fn is_password_char(b: u8) -> bool {
    is_unreserved(b) || matches!(b, b'&' | b'=' | b'+' | b'$' | b',')
}

/// `paramchar` without `escaped`: `param-unreserved / unreserved`, where
/// `param-unreserved = "[" / "]" / "/" / ":" / "&" / "+" / "$"`. RFC 3966 uses the
/// same set for tel parameter values.
const fn is_paramchar(b: u8) -> bool {
    is_unreserved(b) || matches!(b, b'[' | b']' | b'/' | b':' | b'&' | b'+' | b'$')
}

/// `hnv-unreserved / unreserved`, `hnv-unreserved = "[" / "]" / "/" / "?" / ":" /
/// "+" / "$"`.
const fn is_hnv_char(b: u8) -> bool {
    is_unreserved(b) || matches!(b, b'[' | b']' | b'/' | b'?' | b':' | b'+' | b'$')
}

/// RFC 3966 `pname = 1*( alphanum / "-" )`: its characters.
const fn is_tel_pname_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-'
}

/// `scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )`: the characters after the
/// first.
const fn is_scheme_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.')
}

/// Characters admitted in the opaque part of an unknown scheme: visible ASCII but
/// the delimiters that would end the URI inside a header (`<`, `>`, `"`).
const fn is_opaque_char(b: u8) -> bool {
    matches!(b, 0x21..=0x7e) && !matches!(b, b'<' | b'>' | b'"')
}

/// Bits of [`CLASS`], one per character set above.
const USER: u8 = 1 << 0;
const PASSWORD: u8 = 1 << 1;
const PARAM: u8 = 1 << 2;
const HNV: u8 = 1 << 3;
const TEL_PNAME: u8 = 1 << 4;
const SCHEME: u8 = 1 << 5;
const OPAQUE: u8 = 1 << 6;
/// Not a character set: asks [`valid_uri_params`] for SIP `pname = 1*paramchar`
/// (escapes allowed) rather than the tel one.
const SIP_PNAME: u8 = PARAM;

/// The character sets of each byte value, as bits: every URI byte is checked
/// against one of them, and a table load beats a chain of range compares (and,
/// unlike a `fn(u8) -> bool` argument, is never an indirect call per byte).
static CLASS: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut i = 0;
    while i < table.len() {
        let b = i as u8;
        let mut bits = 0;
        if is_user_unreserved(b) {
            bits |= USER;
        }
        if is_password_char(b) {
            bits |= PASSWORD;
        }
        if is_paramchar(b) {
            bits |= PARAM;
        }
        if is_hnv_char(b) {
            bits |= HNV;
        }
        if is_tel_pname_char(b) {
            bits |= TEL_PNAME;
        }
        if is_scheme_char(b) {
            bits |= SCHEME;
        }
        if is_opaque_char(b) {
            bits |= OPAQUE;
        }
        table[i] = bits;
        i += 1;
    }
    table
};

/// True when `b` belongs to one of the sets in `mask`.
#[inline(always)]
fn in_class(b: u8, mask: u8) -> bool {
    CLASS[usize::from(b)] & mask != 0
}

/// RFC 3966 `visual-separator = "-" / "." / "(" / ")"`.
#[inline]
fn is_visual_sep(b: u8) -> bool {
    matches!(b, b'-' | b'.' | b'(' | b')')
}

#[inline]
fn is_local_digit(b: u8) -> bool {
    b.is_ascii_hexdigit() || b == b'*' || b == b'#'
}

/// True when `s` starts with a scheme [`Uri::parse`] decodes (`sip`, `sips`,
/// `tel`) rather than keeping it opaque, read without decoding the rest: for a URI
/// already validated (a proxy's 416 check, RFC 3261 §16.3 step 2).
pub fn has_known_scheme(s: &[u8]) -> bool {
    split_scheme(s).is_some_and(|(scheme, _)| KnownScheme::of(scheme).is_some())
}

/// The schemes [`Uri::parse`] decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KnownScheme {
    Sip,
    Sips,
    Tel,
}

impl KnownScheme {
    /// Compares case-insensitively (RFC 3261 §19.1.1). The names are letters
    /// only, and for a letter `b | 0x20` is its lower case while no other byte
    /// maps onto a lower-case letter: one OR per byte does it.
    #[inline]
    fn of(scheme: &[u8]) -> Option<KnownScheme> {
        match *scheme {
            [a, b, c] => match [a | 0x20, b | 0x20, c | 0x20] {
                [b's', b'i', b'p'] => Some(KnownScheme::Sip),
                [b't', b'e', b'l'] => Some(KnownScheme::Tel),
                _ => None,
            },
            [a, b, c, d] if [a | 0x20, b | 0x20, c | 0x20, d | 0x20] == *b"sips" => {
                Some(KnownScheme::Sips)
            }
            _ => None,
        }
    }
}

/// Splits `scheme:rest`, checking the scheme's characters. The scheme characters
/// do not include `:`, so the scan over them stops at the first `:` of a valid
/// scheme, and anywhere else for an invalid one.
#[inline]
pub(crate) fn split_scheme(s: &[u8]) -> Option<(&[u8], &[u8])> {
    let n = s.iter().take_while(|&&b| in_class(b, SCHEME)).count();
    match s.split_at(n) {
        (scheme @ [first, ..], [b':', rest @ ..]) if first.is_ascii_alphabetic() => {
            Some((scheme, rest))
        }
        _ => None,
    }
}

#[inline]
fn hex(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

/// The length of the longest prefix of `s` whose bytes are in the sets of `mask`
/// or form well-formed `%HH` escapes (`escaped`).
#[inline]
fn escaped_len(s: &[u8], mask: u8) -> usize {
    let mut i = 0;
    while let Some(&b) = s.get(i) {
        if in_class(b, mask) {
            i += 1;
        } else if b == b'%'
            && s.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
            && s.get(i + 2).is_some_and(u8::is_ascii_hexdigit)
        {
            i += 3;
        } else {
            break;
        }
    }
    i
}

/// True when every byte is in the sets of `mask` or starts a well-formed `%HH`
/// (`escaped`); a `%` not followed by two hex digits is rejected.
#[inline]
fn valid_escaped(s: &[u8], mask: u8) -> bool {
    escaped_len(s, mask) == s.len()
}

/// `*( ";" pname [ "=" pvalue ] )`, `pvalue = 1*paramchar`, no white space;
/// `pname` is [`SIP_PNAME`] (`1*paramchar`) or [`TEL_PNAME`] (`1*( alphanum / "-"
/// )`, no escapes).
///
/// One scan: neither `;` nor `=` is a name or value character (nor a hex digit),
/// so a valid name ends exactly at the item's first `=` or at its end, and a
/// valid value at the item's end.
#[inline]
fn valid_uri_params(s: &[u8], pname: u8) -> bool {
    let mut rest = match s.split_first() {
        None => return true,
        Some((b';', body)) => body,
        Some(_) => return false,
    };
    loop {
        let name_len = if pname == SIP_PNAME {
            escaped_len(rest, PARAM)
        } else {
            rest.iter().take_while(|&&b| in_class(b, pname)).count()
        };
        if name_len == 0 {
            return false;
        }
        rest = rest.get(name_len..).unwrap_or_default();
        if let [b'=', value @ ..] = rest {
            let value_len = escaped_len(value, PARAM);
            if value_len == 0 {
                return false;
            }
            rest = value.get(value_len..).unwrap_or_default();
        }
        match rest {
            [] => return true,
            [b';', more @ ..] => rest = more,
            _ => return false,
        }
    }
}

/// `userinfo` without its `@`: `user [ ":" password ]`, both checked.
///
/// `user = 1*( unreserved / escaped / user-unreserved )` has no `:`, so the user is
/// valid exactly when its valid prefix ends at the end of `userinfo` or at its
/// first `:`, the password's separator: one scan finds and checks it.
#[inline]
fn split_userinfo(userinfo: &[u8]) -> Result<(&[u8], Option<&[u8]>), ParseError> {
    let (user, password) = match userinfo.split_at(escaped_len(userinfo, USER)) {
        (user, []) => (user, None),
        (user, [b':', password @ ..]) => (user, Some(password)),
        _ => return Err(ParseError::InvalidUri),
    };
    if user.is_empty() {
        return Err(ParseError::InvalidUri);
    }
    // password = *( unreserved / escaped / "&" / "=" / "+" / "$" / "," )
    if let Some(p) = password {
        if !valid_escaped(p, PASSWORD) {
            return Err(ParseError::InvalidUri);
        }
    }
    Ok((user, password))
}

/// `headers = header *( "&" header )`, `header = hname "=" hvalue`,
/// `hname = 1*( hnv-unreserved / unreserved / escaped )`, `hvalue = *( … )`.
fn valid_uri_headers(s: &[u8]) -> bool {
    s.split(|&b| b == b'&').all(|h| match memchr(b'=', h) {
        Some(eq) => eq > 0 && valid_escaped(&h[..eq], HNV) && valid_escaped(&h[eq + 1..], HNV),
        None => false,
    })
}

/// `%HH` escapes resolved; borrows when there are none. Input is validated, so a
/// failed decode cannot happen; it falls back to the text as written.
fn unescape(s: &[u8]) -> Cow<'_, [u8]> {
    if memchr(b'%', s).is_none() {
        return Cow::Borrowed(s);
    }
    percent_decode(s).map_or(Cow::Borrowed(s), Cow::Owned)
}

// --- §19.1.4 comparison, allocation-free --------------------------------------------

/// The characters of a URI component, normalised for comparison: an escape of a
/// non-reserved character becomes that character, while an escaped reserved
/// character stays distinct from the literal one (RFC 3261 §19.1.4: only
/// characters outside "reserved" are equivalent to their escapes). Escaped
/// characters are tagged with bit 8 in that case, hence `u16`.
struct Decoded<'s> {
    s: &'s [u8],
    fold_case: bool,
}

impl<'s> Decoded<'s> {
    fn new(s: &'s [u8], fold_case: bool) -> Self {
        Decoded { s, fold_case }
    }

    #[inline]
    fn fold_byte(&self, b: u8) -> u8 {
        if self.fold_case {
            b.to_ascii_lowercase()
        } else {
            b
        }
    }
}

impl Iterator for Decoded<'_> {
    type Item = u16;

    fn next(&mut self) -> Option<u16> {
        let (&b, rest) = self.s.split_first()?;
        if b == b'%' {
            if let [h, l, tail @ ..] = rest {
                if let (Some(h), Some(l)) = (hex(*h), hex(*l)) {
                    self.s = tail;
                    let c = self.fold_byte(h << 4 | l);
                    return Some(if is_reserved(c) {
                        0x100 | u16::from(c)
                    } else {
                        u16::from(c)
                    });
                }
            }
        }
        self.s = rest;
        Some(u16::from(self.fold_byte(b)))
    }
}

fn component_eq(a: &[u8], b: &[u8], fold_case: bool) -> bool {
    Decoded::new(a, fold_case).eq(Decoded::new(b, fold_case))
}

fn opt_component_eq(a: Option<&[u8]>, b: Option<&[u8]>, fold_case: bool) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => component_eq(a, b, fold_case),
        _ => false,
    }
}

fn find_param<'p>(params: &Params<'p>, name: &[u8]) -> Option<Param<'p>> {
    params
        .into_iter()
        .find(|p| component_eq(p.name, name, true))
}

/// The half of a parameter comparison seen from `a`: every parameter of `a` that
/// `b` also has must match (case-insensitively), and those for which `required`
/// holds must be in `b` as well. A repeated name (which RFC 3261 §19.1.1 and
/// RFC 3966 §3 forbid, but parsing does not reject) counts by its first
/// occurrence, as in [`Params::get`], so that comparison stays reflexive.
fn params_match(a: &Params<'_>, b: &Params<'_>, required: fn(&[u8]) -> bool) -> bool {
    a.into_iter().all(|p| {
        let Some(p) = find_param(a, p.name) else {
            return false;
        };
        match find_param(b, p.name) {
            Some(q) => opt_component_eq(p.value, q.value, true),
            None => !required(p.name),
        }
    })
}

/// RFC 3261 §19.1.4: `user`, `ttl`, `method` and `maddr` never match when in one
/// URI only; neither does `transport` (a default value is not an absent one).
fn must_be_in_both(name: &[u8]) -> bool {
    [&b"user"[..], b"ttl", b"method", b"maddr", b"transport"]
        .iter()
        .any(|n| component_eq(name, n, true))
}

/// Header components: the same set on both sides, names case-insensitive,
/// values exact (after escape normalisation).
fn headers_match(a: Option<&[u8]>, b: Option<&[u8]>) -> bool {
    let split = |h: &[u8]| -> (usize, usize) {
        let eq = memchr(b'=', h).unwrap_or(h.len());
        (eq, (eq + 1).min(h.len()))
    };
    let contains = |set: &[u8], h: &[u8]| {
        let (he, hv) = split(h);
        set.split(|&c| c == b'&').any(|g| {
            let (ge, gv) = split(g);
            component_eq(&g[..ge], &h[..he], true) && component_eq(&g[gv..], &h[hv..], false)
        })
    };
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => {
            a.split(|&c| c == b'&').count() == b.split(|&c| c == b'&').count()
                && a.split(|&c| c == b'&').all(|h| contains(b, h))
                && b.split(|&c| c == b'&').all(|h| contains(a, h))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv6Addr;

    fn sip(s: &str) -> SipUri<'_> {
        match Uri::parse(s.as_bytes()) {
            Ok(Uri::Sip(u)) => u,
            other => panic!("{s}: {other:?}"),
        }
    }

    fn err(s: &str) -> ParseError {
        Uri::parse(s.as_bytes()).unwrap_err()
    }

    // --- the checks the table-driven scans replaced, kept as their specification ---

    fn valid_escaped_by_fn(s: &[u8], class: fn(u8) -> bool) -> bool {
        let mut i = 0;
        while let Some(&b) = s.get(i) {
            if b == b'%' {
                match (
                    s.get(i + 1).copied().and_then(hex),
                    s.get(i + 2).copied().and_then(hex),
                ) {
                    (Some(_), Some(_)) => i += 3,
                    _ => return false,
                }
            } else if class(b) {
                i += 1;
            } else {
                return false;
            }
        }
        true
    }

    fn is_sip_pname_by_fn(name: &[u8]) -> bool {
        !name.is_empty() && valid_escaped_by_fn(name, is_paramchar)
    }

    fn is_tel_pname_by_fn(name: &[u8]) -> bool {
        !name.is_empty() && name.iter().all(|&b| is_tel_pname_char(b))
    }

    fn valid_uri_params_by_split(s: &[u8], pname: fn(&[u8]) -> bool) -> bool {
        let body = match s.split_first() {
            None => return true,
            Some((b';', body)) => body,
            Some(_) => return false,
        };
        body.split(|&b| b == b';')
            .all(|item| match memchr(b'=', item) {
                Some(eq) => {
                    let value = &item[eq + 1..];
                    pname(&item[..eq])
                        && !value.is_empty()
                        && valid_escaped_by_fn(value, is_paramchar)
                }
                None => pname(item),
            })
    }

    fn split_userinfo_by_colon(userinfo: &[u8]) -> Option<(&[u8], Option<&[u8]>)> {
        let (user, password) = match memchr(b':', userinfo) {
            Some(c) => (&userinfo[..c], Some(&userinfo[c + 1..])),
            None => (userinfo, None),
        };
        let valid = !user.is_empty()
            && valid_escaped_by_fn(user, is_user_unreserved)
            && password.map_or(true, |p| valid_escaped_by_fn(p, is_password_char));
        valid.then_some((user, password))
    }

    fn split_scheme_by_colon(s: &[u8]) -> Option<(&[u8], &[u8])> {
        let colon = memchr(b':', s)?;
        let scheme = &s[..colon];
        let valid = match scheme.split_first() {
            Some((first, rest)) => {
                first.is_ascii_alphabetic() && rest.iter().all(|&b| is_scheme_char(b))
            }
            None => false,
        };
        valid.then(|| (scheme, &s[colon + 1..]))
    }

    #[test]
    fn one_scan_checks_match_the_split_checks() {
        // Separators, a hex digit, a non-hex letter, escapes, and bytes that only
        // some of the sets admit (`-` tel names, `[` params, `@` none, `&` user and
        // password, `?` user, `+` scheme).
        crate::sip::text::for_each_string(b";=%a4z-[@&?:+", 5, |s| {
            let text = String::from_utf8_lossy(s);
            assert_eq!(
                valid_uri_params(s, SIP_PNAME),
                valid_uri_params_by_split(s, is_sip_pname_by_fn),
                "sip {text:?}"
            );
            assert_eq!(
                valid_uri_params(s, TEL_PNAME),
                valid_uri_params_by_split(s, is_tel_pname_by_fn),
                "tel {text:?}"
            );
            assert_eq!(
                split_userinfo(s).ok(),
                split_userinfo_by_colon(s),
                "userinfo {text:?}"
            );
            assert_eq!(split_scheme(s), split_scheme_by_colon(s), "scheme {text:?}");
        });
    }

    #[test]
    fn known_scheme_names_compare_case_insensitively_and_exactly() {
        for (s, k) in [
            (&b"sip"[..], Some(KnownScheme::Sip)),
            (b"SiP", Some(KnownScheme::Sip)),
            (b"SIPS", Some(KnownScheme::Sips)),
            (b"sIpS", Some(KnownScheme::Sips)),
            (b"TEL", Some(KnownScheme::Tel)),
            (b"si", None),
            (b"sipx", None),
            (b"sipss", None),
            (b"s1p", None),
            (b"", None),
        ] {
            assert_eq!(KnownScheme::of(s), k, "{s:?}");
        }
        // Against eq_ic for every byte in every position of each name.
        for name in [&b"sip"[..], b"sips", b"tel"] {
            for i in 0..name.len() {
                for b in 0..=u8::MAX {
                    let mut s = name.to_vec();
                    s[i] = b;
                    assert_eq!(KnownScheme::of(&s).is_some(), eq_ic(&s, name), "{s:?}");
                }
            }
        }
    }

    #[test]
    fn known_schemes_without_decoding() {
        for (uri, known) in [
            (&b"sip:a@b"[..], true),
            (b"SIPS:b", true),
            (b"tel:+1555", true),
            (b"notsip:x@y", false),
            (b"http://x", false),
            (b"nocolon", false),
        ] {
            assert_eq!(has_known_scheme(uri), known, "{uri:?}");
            if let Ok(u) = Uri::parse(uri) {
                assert_eq!(known, !matches!(u, Uri::Other { .. }));
            }
        }
    }

    #[test]
    fn full_sip_uri() {
        let u = sip("sip:alice:secret@atlanta.example.com:5070;transport=TCP;lr;maddr=239.255.255.1;ttl=15;user=phone;method=REGISTER?subject=project%20x&priority=urgent");
        assert!(!u.secure);
        assert_eq!(u.user, Some(&b"alice"[..]));
        assert_eq!(u.password, Some(&b"secret"[..]));
        assert_eq!(u.host, Host::Domain("atlanta.example.com"));
        assert_eq!(u.port, Some(5070));
        assert_eq!(u.transport(), Some(&b"TCP"[..]));
        assert!(u.lr());
        assert_eq!(u.maddr(), Some(&b"239.255.255.1"[..]));
        assert_eq!(u.ttl(), Ok(Some(15)));
        assert_eq!(u.user_param(), Some(&b"phone"[..]));
        assert_eq!(u.method_param(), Some(&b"REGISTER"[..]));
        assert_eq!(u.headers, Some(&b"subject=project%20x&priority=urgent"[..]));
        assert_eq!(u.params.count(), 6);
    }

    #[test]
    fn minimal_and_scheme_case() {
        let u = sip("sip:example.com");
        assert_eq!(u.user, None);
        assert_eq!(u.port, None);
        assert!(u.params.is_empty());
        assert_eq!(u.headers, None);
        assert!(!u.lr());
        assert_eq!(u.ttl(), Ok(None));
        assert_eq!(u.port_or_default(), 5060);
        // RFC 3261 §19.1.4 example: scheme is case-insensitive.
        let u = sip("SIP:ALICE@AtLanTa.CoM;Transport=udp");
        assert_eq!(u.user, Some(&b"ALICE"[..]));
        let u = sip("SiPs:bob@biloxi.example.com");
        assert!(u.secure);
        assert_eq!(u.port_or_default(), 5061);
    }

    #[test]
    fn ip_hosts() {
        let u = sip("sip:[2001:db8::10]");
        assert_eq!(
            u.host,
            Host::V6("2001:db8::10".parse::<Ipv6Addr>().unwrap())
        );
        assert_eq!(u.port, None);
        let u = sip("sip:[2001:db8::10]:5070");
        assert_eq!(u.port, Some(5070));
        let u = sip("sip:bob@[2001:db8::10]:5070;transport=tcp");
        assert_eq!(u.user, Some(&b"bob"[..]));
        assert_eq!(u.transport(), Some(&b"tcp"[..]));
        let u = sip("sip:192.0.2.4:5062;lr");
        assert_eq!(u.host, Host::V4([192, 0, 2, 4].into()));
        assert_eq!(u.port, Some(5062));
        assert!(u.lr());
    }

    #[test]
    fn invalid_hosts_and_ports() {
        assert_eq!(err("sip:user@[2001:db8::10"), ParseError::InvalidHost);
        assert_eq!(err("sip:[2001:db8::10]x"), ParseError::InvalidHost);
        assert_eq!(err("sip:"), ParseError::InvalidHost);
        assert_eq!(err("sip:user@"), ParseError::InvalidHost);
        assert_eq!(err("sip:user@;lr"), ParseError::InvalidHost);
        assert_eq!(err("sip:a b@host"), ParseError::InvalidUri);
        assert_eq!(err("sip:host name"), ParseError::InvalidHost);
        assert_eq!(err("sip:host:65536"), ParseError::InvalidPort);
        assert_eq!(err("sip:host:"), ParseError::InvalidPort);
        assert_eq!(err("sip:host:50a0"), ParseError::InvalidPort);
        assert_eq!(err("sip:host:5060:1"), ParseError::InvalidPort);
        assert_eq!(err("sip:256.1.1.1"), ParseError::InvalidHost);
    }

    #[test]
    fn invalid_uris() {
        assert_eq!(err("sip:%G1@host"), ParseError::InvalidUri);
        assert_eq!(err("sip:%4@host"), ParseError::InvalidUri);
        assert_eq!(err("sip:user%@host"), ParseError::InvalidUri);
        assert_eq!(err("sip:@host"), ParseError::InvalidUri);
        assert_eq!(err("sip::pw@host"), ParseError::InvalidUri);
        assert_eq!(err("sip:a:b:c@host"), ParseError::InvalidUri);
        assert_eq!(err("sip:a\"b@host"), ParseError::InvalidUri);
        assert_eq!(err("sip:a<b@host"), ParseError::InvalidUri);
        // uri-parameters: pname and pvalue are 1*paramchar, escapes well formed.
        assert_eq!(err("sip:host;"), ParseError::InvalidUri);
        assert_eq!(err("sip:host;;lr"), ParseError::InvalidUri);
        assert_eq!(err("sip:host;a="), ParseError::InvalidUri);
        assert_eq!(err("sip:host;=1"), ParseError::InvalidUri);
        assert_eq!(err("sip:host;a=%zz"), ParseError::InvalidUri);
        assert_eq!(err("sip:host;a=b c"), ParseError::InvalidUri);
        // RFC 4475 §3.1.2.8: LWS inside the URI.
        assert_eq!(err("sip:user@example.com; lr"), ParseError::InvalidUri);
        // headers: header = hname "=" hvalue.
        assert_eq!(err("sip:host?"), ParseError::InvalidUri);
        assert_eq!(err("sip:host?a"), ParseError::InvalidUri);
        assert_eq!(err("sip:host?=b"), ParseError::InvalidUri);
        assert_eq!(err("sip:host?a=<b>"), ParseError::InvalidUri);
        // RFC 4475 §3.1.2.7: a bracketed URI is not a URI.
        assert_eq!(err("<sip:user@example.com>"), ParseError::InvalidUri);
        assert_eq!(err("sip"), ParseError::InvalidUri);
        assert_eq!(err(""), ParseError::InvalidUri);
        assert_eq!(err(":x"), ParseError::InvalidUri);
        assert_eq!(err("1sip:x"), ParseError::InvalidUri);
    }

    #[test]
    fn escapes_in_userinfo_and_params() {
        // RFC 4475 §3.1.1.3
        let u = sip("sip:sips%3Auser%40example.com@example.net");
        assert_eq!(u.user, Some(&b"sips%3Auser%40example.com"[..]));
        assert_eq!(u.host, Host::Domain("example.net"));
        assert_eq!(
            u.user_unescaped().as_deref(),
            Some(&b"sips:user@example.com"[..])
        );
        let u = sip("sip:%75se%72@example.com");
        assert!(u.user_is(b"user"));
        assert!(!u.user_is(b"User"));
        assert!(matches!(u.user_unescaped(), Some(Cow::Owned(_))));
        let u = sip("sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31");
        assert!(u.user_is(b"caller"));
        // Raw parameter names are not unescaped by Params; the value stays escaped
        // and is never unescaped twice (value%41, not valueA).
        assert_eq!(u.params.value(b"n%61me"), Some(&b"v%61lue%25%34%31"[..]));
        assert_eq!(
            percent_decode(u.params.value(b"n%61me").unwrap()).as_deref(),
            Some(&b"value%41"[..])
        );
        // RFC 4475 §3.1.1.4: escaped NULs must not shorten the user.
        let u = sip("sip:null-%00-null@example.com");
        assert_eq!(u.user_unescaped().as_deref(), Some(&b"null-\0-null"[..]));
        assert!(sip("sip:%00@host5.example.com").user_is(b"\0"));
        assert!(!sip("sip:%00%00@host5.example.com").user_is(b"\0"));
        // No escapes: borrowed.
        assert!(matches!(
            sip("sip:alice@h").user_unescaped(),
            Some(Cow::Borrowed(b"alice"))
        ));
    }

    #[test]
    fn semicolon_in_user_part() {
        // RFC 4475 §3.1.1.9
        let u = sip("sip:user;par=u%40example.net@example.com");
        assert_eq!(u.user, Some(&b"user;par=u%40example.net"[..]));
        assert_eq!(u.host, Host::Domain("example.com"));
        assert!(u.params.is_empty());
        assert_eq!(
            u.user_unescaped().as_deref(),
            Some(&b"user;par=u@example.net"[..])
        );
    }

    #[test]
    fn wide_range_of_valid_characters() {
        // RFC 4475 §3.1.1.2 Request-URI (its <allOneLine> joined).
        let s = "sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com";
        let u = sip(s);
        assert_eq!(
            u.user,
            Some(&b"1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"[..])
        );
        assert_eq!(
            u.password,
            Some(&b"&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"[..])
        );
        assert_eq!(u.host, Host::Domain("example.com"));
        assert_eq!(u.headers, None);
        // The To URI of the same test.
        let u = sip("sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*@example.com");
        assert_eq!(u.password, None);
    }

    #[test]
    fn headers_component() {
        // RFC 4475 §3.1.2.11: legal in a URI, illegal in a Request-URI (that is
        // the Request-URI check's business, not the URI grammar's).
        let u = sip("sip:user@example.com?Route=%3Csip:example.com%3E");
        assert_eq!(u.headers, Some(&b"Route=%3Csip:example.com%3E"[..]));
        assert!(u.params.is_empty());
        let u = sip("sip:h;lr?a=&b=c");
        assert!(u.lr());
        assert_eq!(u.headers, Some(&b"a=&b=c"[..]));
    }

    #[test]
    fn ttl_values() {
        assert_eq!(sip("sip:h;ttl=255").ttl(), Ok(Some(255)));
        assert_eq!(sip("sip:h;ttl=0").ttl(), Ok(Some(0)));
        assert_eq!(sip("sip:h;ttl=256").ttl(), Err(ParseError::InvalidParam));
        assert_eq!(sip("sip:h;ttl=0001").ttl(), Err(ParseError::InvalidParam));
        assert_eq!(sip("sip:h;ttl").ttl(), Err(ParseError::InvalidParam));
    }

    #[test]
    fn tel_uris() {
        let u = match Uri::parse(b"tel:+1-201-555-0123;ext=1234").unwrap() {
            Uri::Tel(t) => t,
            other => panic!("{other:?}"),
        };
        assert_eq!(u.number, b"+1-201-555-0123");
        assert!(u.is_global());
        assert_eq!(u.params.value(b"ext"), Some(&b"1234"[..]));
        let u = match Uri::parse(b"TEL:7042;phone-context=example.com").unwrap() {
            Uri::Tel(t) => t,
            other => panic!("{other:?}"),
        };
        assert!(!u.is_global());
        assert_eq!(u.phone_context(), Some(&b"example.com"[..]));
        assert!(Uri::parse(b"tel:*67#;phone-context=+1").is_ok());
        for bad in [
            "tel:",
            "tel:+",
            "tel:+1-(x)",
            "tel:+1;",
            "tel:+1;ext=",
            "tel:+1;e_x=1",
            "tel:+1 234",
            "tel:--",
        ] {
            assert_eq!(err(bad), ParseError::InvalidUri, "{bad}");
        }
        // RFC 3966 §4: visual separators do not matter; parameters must.
        let a = Uri::parse(b"tel:+1-201-555-0123").unwrap();
        let b = Uri::parse(b"tel:+1(201)5550123").unwrap();
        let c = Uri::parse(b"tel:+1-201-555-0123;ext=1").unwrap();
        assert!(a.same_as(&b));
        assert!(!a.same_as(&c));
        assert!(c.same_as(&Uri::parse(b"tel:+12015550123;EXT=1").unwrap()));
        assert!(!c.same_as(&Uri::parse(b"tel:+12015550123;ext=2").unwrap()));
        assert!(!Uri::parse(b"tel:+1;ext=1")
            .unwrap()
            .same_as(&Uri::parse(b"tel:+1;ext=1;isub=2").unwrap()));
        // A repeated parameter counts by its first occurrence.
        let d = Uri::parse(b"tel:+1;ext=1;ext=2").unwrap();
        assert!(d.same_as(&d));
        assert!(d.same_as(&Uri::parse(b"tel:+1;ext=1").unwrap()));
    }

    #[test]
    fn other_schemes_stay_opaque() {
        match Uri::parse(b"http://www.example.com/alice/photo.jpg").unwrap() {
            Uri::Other { scheme, opaque, .. } => {
                assert_eq!(scheme, b"http");
                assert_eq!(opaque, b"//www.example.com/alice/photo.jpg");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            Uri::parse(b"mailto:watson@bell-telephone.com"),
            Ok(Uri::Other { .. })
        ));
        let u = Uri::parse(b"urn:uuid:00000000-0000-1000-8000-000A95A0E128").unwrap();
        assert_eq!(
            u.as_bytes(),
            b"urn:uuid:00000000-0000-1000-8000-000A95A0E128"
        );
        assert_eq!(u.as_sip(), None);
        assert_eq!(err("http:"), ParseError::InvalidUri);
        assert_eq!(err("http://a b"), ParseError::InvalidUri);
        assert_eq!(err("http://a>"), ParseError::InvalidUri);
        assert!(SipUri::parse(b"http://x").is_err());
        assert!(SipUri::parse(b"sip:x").is_ok());
    }

    #[test]
    fn display_round_trips() {
        let s = "sips:bob@[2001:db8::1]:5061;transport=tls";
        assert_eq!(Uri::parse(s.as_bytes()).unwrap().to_string(), s);
    }

    fn same(a: &str, b: &str) -> bool {
        let (a, b) = (sip(a), sip(b));
        let fwd = a.same_as(&b);
        assert_eq!(fwd, b.same_as(&a), "same_as must be symmetric: {a:?} {b:?}");
        fwd
    }

    #[test]
    fn equivalent_uris() {
        // RFC 3261 §19.1.4, the equivalent sets.
        assert!(same(
            "sip:%61lice@atlanta.com;transport=TCP",
            "sip:alice@AtLanTa.CoM;Transport=tcp"
        ));
        assert!(same(
            "sip:carol@chicago.com",
            "sip:carol@chicago.com;newparam=5"
        ));
        assert!(same(
            "sip:carol@chicago.com",
            "sip:carol@chicago.com;security=on"
        ));
        assert!(same(
            "sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
            "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com"
        ));
        assert!(same(
            "sip:alice@atlanta.com?subject=project%20x&priority=urgent",
            "sip:alice@atlanta.com?priority=urgent&subject=project%20x"
        ));
        assert!(same("sip:[2001:db8::1]:5060", "sip:[2001:DB8:0::1]:5060"));
    }

    #[test]
    fn non_equivalent_uris() {
        // RFC 3261 §19.1.4, the non-equivalent sets.
        assert!(!same(
            "SIP:ALICE@AtLanTa.CoM;Transport=udp",
            "sip:alice@AtLanTa.CoM;Transport=UDP"
        ));
        assert!(!same("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"));
        assert!(!same(
            "sip:bob@biloxi.com",
            "sip:bob@biloxi.com;transport=udp"
        ));
        assert!(!same(
            "sip:bob@biloxi.com",
            "sip:bob@biloxi.com:6000;transport=tcp"
        ));
        assert!(!same(
            "sip:carol@chicago.com",
            "sip:carol@chicago.com?Subject=next%20meeting"
        ));
        assert!(!same("sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4"));
        assert!(!same(
            "sip:carol@chicago.com;security=on",
            "sip:carol@chicago.com;security=off"
        ));
        // And the other rules.
        assert!(!same("sip:a@h", "sips:a@h"));
        assert!(!same("sip:h", "sip:a@h"));
        assert!(!same("sip:a@h", "sip:a:pw@h"));
        assert!(!same("sip:a@h;maddr=1.2.3.4", "sip:a@h"));
        assert!(!same("sip:a@h;user=phone", "sip:a@h"));
        assert!(!same("sip:a@h;ttl=1", "sip:a@h"));
        assert!(!same("sip:a@h;method=INVITE", "sip:a@h"));
        assert!(!same("sip:a@h?x=1", "sip:a@h?x=1&y=2"));
        assert!(!same("sip:a@h?x=1&x=1", "sip:a@h?x=1&y=2"));
        assert!(!same("sip:a@h?x=A", "sip:a@h?x=a"));
        // An escaped reserved character is not the character itself.
        assert!(!same("sip:a%3Bb@h", "sip:a;b@h"));
        assert!(same("sip:a%3bb@h", "sip:a%3Bb@h"));
        // Parameter names compare with escapes resolved, and the first of a
        // repeated name is the one that counts.
        assert!(!same("sip:a@h;%6Dethod=INVITE", "sip:a@h;method=BYE"));
        assert!(same("sip:a@h;x=1;x=2", "sip:a@h;x=1;x=2"));
        assert!(same("sip:a@h;x=1;x=2", "sip:a@h;x=1"));
    }

    #[test]
    fn targets_me() {
        let me = Host::Domain("proxy.example.com");
        assert!(sip("sip:PROXY.example.com;lr").targets(&me, 5060));
        assert!(sip("sip:proxy.example.com:5080;lr").targets(&me, 5080));
        assert!(!sip("sip:proxy.example.com:5080;lr").targets(&me, 5060));
        assert!(sips_targets());
        assert!(!sip("sip:192.0.2.1").targets(&me, 5060));
        assert!(sip("sip:192.0.2.1").targets(&Host::V4([192, 0, 2, 1].into()), 5060));
    }

    fn sips_targets() -> bool {
        sip("sips:proxy.example.com").targets(&Host::Domain("proxy.example.com"), 5061)
    }
}
