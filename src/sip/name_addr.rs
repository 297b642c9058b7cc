//! Addresses: `name-addr` / `addr-spec` with header parameters (RFC 3261 §20.10,
//! §20.20, §20.39, §25.1) for From, To, Contact, Route and Record-Route, and the
//! Contact parameters a registrar reads (`expires`, `q`, RFC 5626 `+sip.instance`
//! and `reg-id`).
//!
//! [`NameAddr::parse`] only splits the value into display name, URI text and
//! parameters (checking their grammar); the URI itself is decoded on demand with
//! [`NameAddr::parse_uri`]. Nothing here allocates except `display_unescaped`.

use std::borrow::Cow;

use memchr::memchr;

use super::error::ParseError;
use super::header::HeaderName;
use super::message::Message;
use super::params::Params;
use super::text::{
    count_while, eq_ic, is_lws, is_token, parse_u32, trim, trim_start, unescape_quoted, unquote,
};
use super::uri::{split_scheme, Uri};

/// A `name-addr` or `addr-spec` followed by header parameters:
/// `"Alice" <sip:alice@atlanta.example.com>;tag=1928301774`.
#[derive(Debug, Clone, Copy)]
pub struct NameAddr<'a> {
    /// The display name as written: a quoted-string with its quotes and `\`
    /// escapes, or a run of tokens separated by LWS. `None` when absent.
    pub display: Option<&'a [u8]>,
    /// The URI text, without the angle brackets.
    pub uri: &'a [u8],
    /// The header parameters after the address (`;tag=…;expires=…`).
    pub params: Params<'a>,
    /// True when the URI was written in `<…>` (name-addr form).
    pub angle: bool,
    /// The first `tag` parameter as [`Params::get`] finds it, kept by the pass
    /// that validates the parameters so that [`NameAddr::tag`] does not search.
    tag: ParamValue<'a>,
}

/// A parameter as [`Params::get`] returns it: `None` when absent, `Some(None)` for
/// a flag, `Some(Some(value))`.
type ParamValue<'a> = Option<Option<&'a [u8]>>;

/// Equal when parsed from the same text (parameters compared as written).
impl PartialEq for NameAddr<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.display == other.display
            && self.uri == other.uri
            && self.params.as_bytes() == other.params.as_bytes()
            && self.angle == other.angle
    }
}

impl Eq for NameAddr<'_> {}

impl<'a> NameAddr<'a> {
    /// Parses `( name-addr / addr-spec ) *( SEMI generic-param )`.
    ///
    /// In the addr-spec form (no `<…>`) the URI ends at the first `;` or white
    /// space, and what follows are header parameters; a URI holding `,`, `;` or `?`
    /// must therefore be bracketed, and one with `,` or `?` is rejected here
    /// (RFC 3261 §20.10, RFC 4475 §3.1.2.13).
    ///
    /// Leniency: no white space is required between a token display name and `<`
    /// (RFC 4475 §3.1.1.6). Strictness: none is allowed inside `<…>` (§25.1
    /// `LAQUOT`/`RAQUOT`, RFC 4475 §3.1.2.14).
    ///
    /// Errors: [`ParseError::InvalidParam`] for a bad parameter list,
    /// [`ParseError::InvalidNameAddr`] for everything else.
    pub fn parse(value: &'a [u8]) -> Result<NameAddr<'a>, ParseError> {
        let s = trim(value);
        match s.first() {
            None => Err(ParseError::InvalidNameAddr),
            Some(b'"') => {
                let end = quoted_string_end(s)?;
                let (display, rest) = s.split_at(end);
                Self::angle_form(Some(display), trim_start(rest))
            }
            Some(_) => {
                // display-name = *(token LWS): scan tokens and white space; a `<`
                // right after them means name-addr, anything else (such as the
                // scheme's `:`) means addr-spec.
                let n = s.iter().take_while(|&&b| is_token(b) || is_lws(b)).count();
                if s.get(n) == Some(&b'<') {
                    let display = trim(&s[..n]);
                    let display = (!display.is_empty()).then_some(display);
                    Self::angle_form(display, &s[n..])
                } else {
                    Self::addr_spec_form(s)
                }
            }
        }
    }

    /// Like [`NameAddr::parse`], but the URI must be in `<…>`: the grammar of
    /// Route, Record-Route and Path (`route-param = name-addr *( SEMI rr-param )`,
    /// RFC 3261 §20.30, §20.34).
    pub fn parse_name_addr(value: &'a [u8]) -> Result<NameAddr<'a>, ParseError> {
        let na = Self::parse(value)?;
        if na.angle {
            Ok(na)
        } else {
            Err(ParseError::InvalidNameAddr)
        }
    }

    /// `s` starts at `<`.
    ///
    /// The URI ends at the first `>`, and `>` is not a URI byte, so one scan over
    /// the URI bytes finds the `>` and checks every byte before it: it must stop
    /// at a `>`, and anywhere else (or at the end) the address is invalid.
    fn angle_form(display: Option<&'a [u8]>, s: &'a [u8]) -> Result<NameAddr<'a>, ParseError> {
        let inner = s.strip_prefix(b"<").ok_or(ParseError::InvalidNameAddr)?;
        let gt = count_while(inner, is_uri_byte);
        let (uri, rest) = inner.split_at(gt);
        let [b'>', rest @ ..] = rest else {
            return Err(ParseError::InvalidNameAddr);
        };
        if !has_scheme(uri) {
            return Err(ParseError::InvalidNameAddr);
        }
        let (params, tag) = header_params(rest)?;
        Ok(NameAddr {
            display,
            uri,
            params,
            angle: true,
            tag,
        })
    }

    /// `s` is a whole trimmed value in addr-spec form.
    fn addr_spec_form(s: &'a [u8]) -> Result<NameAddr<'a>, ParseError> {
        let end = s
            .iter()
            .position(|&b| b == b';' || is_lws(b))
            .unwrap_or(s.len());
        let uri = &s[..end];
        let plain = uri
            .iter()
            .all(|&b| is_uri_byte(b) && !matches!(b, b',' | b'?' | b'<'));
        if !plain || !has_scheme(uri) {
            return Err(ParseError::InvalidNameAddr);
        }
        let (params, tag) = header_params(&s[end..])?;
        Ok(NameAddr {
            display: None,
            uri,
            params,
            angle: false,
            tag,
        })
    }

    /// Decodes the URI.
    pub fn parse_uri(&self) -> Result<Uri<'a>, ParseError> {
        Uri::parse(self.uri)
    }

    /// The `tag` parameter (From / To, RFC 3261 §19.3).
    pub fn tag(&self) -> Option<&'a [u8]> {
        self.tag.flatten()
    }

    /// The display name as text: quotes removed and `\` escapes resolved. Borrows
    /// unless there is an escape to resolve.
    pub fn display_unescaped(&self) -> Option<Cow<'a, [u8]>> {
        self.display.map(|d| {
            if d.first() != Some(&b'"') {
                return Cow::Borrowed(d);
            }
            let inner = unquote(d);
            if memchr(b'\\', inner).is_some() {
                Cow::Owned(unescape_quoted(inner))
            } else {
                Cow::Borrowed(inner)
            }
        })
    }
}

/// Index just past the closing quote of the quoted-string that starts `s`.
///
/// `qdtext = LWS / %x21 / %x23-5B / %x5D-7E / UTF8-NONASCII`,
/// `quoted-pair = "\" (%x00-09 / %x0B-0C / %x0E-7F)` (RFC 3261 §25.1). CR and LF
/// are accepted as the folding they must be in a received value.
fn quoted_string_end(s: &[u8]) -> Result<usize, ParseError> {
    let mut i = 1;
    loop {
        i += count_while(s.get(i..).unwrap_or_default(), is_qdtext);
        match s.get(i) {
            Some(b'"') => return Ok(i + 1),
            Some(b'\\') => match s.get(i + 1) {
                Some(&e) if e <= 0x7f && e != b'\r' && e != b'\n' => i += 2,
                _ => return Err(ParseError::InvalidNameAddr),
            },
            // A control byte; or the end: RFC 4475 §3.1.2.6, an unterminated quote
            // is a 400, not something to guess.
            _ => return Err(ParseError::InvalidNameAddr),
        }
    }
}

/// The bytes a quoted string holds as they are: `qdtext` (RFC 3261 §25.1) with
/// CR and LF as folding, that is everything but `"`, `\` and the other controls.
#[inline(always)]
fn is_qdtext(b: u8) -> bool {
    QDTEXT[usize::from(b)]
}

static QDTEXT: [bool; 256] = {
    let mut table = [false; 256];
    let mut i = 0;
    while i < table.len() {
        let b = i as u8;
        table[i] = match b {
            b'"' | b'\\' => false,
            b'\t' | b'\r' | b'\n' => true,
            0..=0x1f | 0x7f => false,
            _ => true,
        };
        i += 1;
    }
    table
};

/// A cheap shape check of the URI text: a scheme and something after it. The
/// bytes are checked by the caller ([`is_uri_byte`]); the full grammar is
/// [`Uri::parse`]'s job.
#[inline]
fn has_scheme(uri: &[u8]) -> bool {
    split_scheme(uri).is_some_and(|(_, rest)| !rest.is_empty())
}

/// The bytes a URI in a name-addr may hold: visible ASCII but `"`, `<` and `>`
/// (the addr-spec form also excludes `,` and `?`).
#[inline]
fn is_uri_byte(b: u8) -> bool {
    URI_BYTE[usize::from(b)]
}

static URI_BYTE: [bool; 256] = {
    let mut table = [false; 256];
    let mut i = 0;
    while i < table.len() {
        let b = i as u8;
        table[i] = matches!(b, 0x21..=0x7e) && !matches!(b, b'"' | b'<' | b'>');
        i += 1;
    }
    table
};

/// The header parameters after an address: empty, or `;`-led and valid
/// `generic-param`s, LWS allowed around the separators. Also returns the first
/// `tag` parameter, met on the way.
fn header_params(rest: &[u8]) -> Result<(Params<'_>, ParamValue<'_>), ParseError> {
    let rest = trim_start(rest);
    if !rest.is_empty() && rest.first() != Some(&b';') {
        return Err(ParseError::InvalidNameAddr);
    }
    let params = Params::new(rest);
    let mut tag = None;
    let mut items = params;
    while let Some(item) = items.next_item() {
        let p = item.check()?;
        if tag.is_none() && eq_ic(p.name, b"tag") {
            tag = Some(p.value);
        }
    }
    Ok((params, tag))
}

/// A `q` value (RFC 3261 §20.10, §25.1 `qvalue`), held as thousandths: `0.5` is 500.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QValue(u16);

impl QValue {
    /// `q=1`, the highest preference.
    pub const MAX: QValue = QValue(1000);

    /// Parses `( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )`.
    pub fn parse(s: &[u8]) -> Result<QValue, ParseError> {
        let (int, frac) = match s {
            [int] => (*int, &[][..]),
            [int, b'.', frac @ ..] if frac.len() <= 3 => (*int, frac),
            _ => return Err(ParseError::InvalidQValue),
        };
        match int {
            b'0' if frac.iter().all(u8::is_ascii_digit) => {
                // Pad to three decimals: "0.5" is 500 thousandths.
                let mut n = 0u16;
                for i in 0..3 {
                    let d = frac.get(i).map_or(0, |&b| u16::from(b - b'0'));
                    n = n * 10 + d;
                }
                Ok(QValue(n))
            }
            b'1' if frac.iter().all(|&b| b == b'0') => Ok(QValue::MAX),
            _ => Err(ParseError::InvalidQValue),
        }
    }

    /// The value in thousandths (0..=1000).
    pub fn thousandths(self) -> u16 {
        self.0
    }

    /// The value of `n` thousandths; `None` above 1000.
    pub fn from_thousandths(n: u16) -> Option<QValue> {
        (n <= 1000).then_some(QValue(n))
    }
}

/// One Contact value (RFC 3261 §20.10): `*` (only in a REGISTER that removes all
/// bindings) or an address with contact parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contact<'a> {
    /// `Contact: *`.
    Star,
    /// A name-addr or addr-spec.
    Addr(NameAddr<'a>),
}

impl<'a> Contact<'a> {
    /// Parses one Contact value (one element of the comma list).
    ///
    /// Errors: [`ParseError::InvalidContact`] for any fault.
    pub fn parse(value: &'a [u8]) -> Result<Contact<'a>, ParseError> {
        if trim(value) == b"*" {
            return Ok(Contact::Star);
        }
        NameAddr::parse(value)
            .map(Contact::Addr)
            .map_err(|_| ParseError::InvalidContact)
    }

    /// The address, unless this is `*`.
    pub fn addr(&self) -> Option<&NameAddr<'a>> {
        match self {
            Contact::Star => None,
            Contact::Addr(a) => Some(a),
        }
    }

    fn params(&self) -> Option<&Params<'a>> {
        self.addr().map(|a| &a.params)
    }

    /// The `expires` parameter in seconds: `Ok(None)` when absent,
    /// [`ParseError::InvalidExpires`] unless it is `1*DIGIT`. Values past
    /// 2^32-1 are clamped to it (RFC 3261 §10.2.1.1 allows that reading).
    pub fn expires(&self) -> Result<Option<u32>, ParseError> {
        match self.params().and_then(|p| p.get(b"expires")) {
            None => Ok(None),
            Some(v) => v
                .and_then(delta_seconds)
                .map(Some)
                .ok_or(ParseError::InvalidExpires),
        }
    }

    /// The `q` parameter: `Ok(None)` when absent, [`ParseError::InvalidQValue`]
    /// when malformed.
    pub fn q(&self) -> Result<Option<QValue>, ParseError> {
        match self.params().and_then(|p| p.get(b"q")) {
            None => Ok(None),
            Some(v) => v
                .ok_or(ParseError::InvalidQValue)
                .and_then(QValue::parse)
                .map(Some),
        }
    }

    /// The `+sip.instance` value with its quotes removed, e.g.
    /// `<urn:uuid:00000000-0000-1000-8000-000A95A0E128>` (RFC 5626 §4.1).
    pub fn instance(&self) -> Option<&'a [u8]> {
        self.params()
            .and_then(|p| p.value(b"+sip.instance"))
            .map(unquote)
    }

    /// The `reg-id` value: `1*DIGIT` in 1..=2^31-1 (RFC 5626 §4.1, §11.2); `None`
    /// when absent or out of range.
    pub fn reg_id(&self) -> Option<u32> {
        self.params()
            .and_then(|p| p.value(b"reg-id"))
            .and_then(parse_u32)
            .filter(|&n| (1..=i32::MAX as u32).contains(&n))
    }
}

/// `delta-seconds = 1*DIGIT`, saturating at 2^32-1.
fn delta_seconds(s: &[u8]) -> Option<u32> {
    if s.is_empty() {
        return None;
    }
    s.iter().try_fold(0u32, |n, &b| {
        b.is_ascii_digit()
            .then(|| n.saturating_mul(10).saturating_add(u32::from(b - b'0')))
    })
}

/// The address headers of a message.
impl<'a> Message<'a> {
    /// The From header (`f`): [`ParseError::MissingFrom`] when absent,
    /// [`ParseError::InvalidFrom`] when it is not a valid address.
    pub fn from(&self) -> Result<NameAddr<'a>, ParseError> {
        *self.memo().from.get_or_init(|| {
            let v = self
                .header(HeaderName::From)
                .ok_or(ParseError::MissingFrom)?;
            NameAddr::parse(v).map_err(|_| ParseError::InvalidFrom)
        })
    }

    /// The To header (`t`): [`ParseError::MissingTo`] when absent,
    /// [`ParseError::InvalidTo`] when it is not a valid address.
    pub fn to(&self) -> Result<NameAddr<'a>, ParseError> {
        *self.memo().to.get_or_init(|| {
            let v = self.header(HeaderName::To).ok_or(ParseError::MissingTo)?;
            NameAddr::parse(v).map_err(|_| ParseError::InvalidTo)
        })
    }

    /// The URI of the From header, decoded once per message (the check, the
    /// engine and the registrar all read it): the error of [`Message::from`], or
    /// [`ParseError::InvalidFrom`] for a URI that does not parse.
    pub fn from_uri(&self) -> Result<Uri<'a>, ParseError> {
        *self.memo().from_uri.get_or_init(|| {
            self.from()?
                .parse_uri()
                .map_err(|_| ParseError::InvalidFrom)
        })
    }

    /// The URI of the To header, decoded once per message (for a REGISTER, the
    /// AOR: read by ownership, the check and the registrar): the error of
    /// [`Message::to`], or [`ParseError::InvalidTo`] for a URI that does not parse.
    pub fn to_uri(&self) -> Result<Uri<'a>, ParseError> {
        *self
            .memo()
            .to_uri
            .get_or_init(|| self.to()?.parse_uri().map_err(|_| ParseError::InvalidTo))
    }

    /// Every Contact value (`m`), across lines and comma lists, in order.
    pub fn contacts(&self) -> impl Iterator<Item = Result<Contact<'a>, ParseError>> + '_ {
        self.values(HeaderName::Contact).map(Contact::parse)
    }

    /// The URI of every Contact value in order, `None` for `*`; any fault is
    /// [`ParseError::InvalidContact`]. The first value's is decoded once per
    /// message: the check, the NAT test and the registrar each read it, and most
    /// messages carry one Contact.
    pub fn contact_uris(&self) -> impl Iterator<Item = Result<Option<Uri<'a>>, ParseError>> + '_ {
        fn decode(value: &[u8]) -> Result<Option<Uri<'_>>, ParseError> {
            match Contact::parse(value)? {
                Contact::Star => Ok(None),
                Contact::Addr(a) => a
                    .parse_uri()
                    .map(Some)
                    .map_err(|_| ParseError::InvalidContact),
            }
        }
        self.values(HeaderName::Contact)
            .enumerate()
            .map(|(i, v)| match i {
                0 => *self.memo().contact_uri.get_or_init(|| decode(v)),
                _ => decode(v),
            })
    }

    /// Every Route value in order (name-addr form required).
    pub fn routes(&self) -> impl Iterator<Item = Result<NameAddr<'a>, ParseError>> + '_ {
        self.values(HeaderName::Route)
            .map(NameAddr::parse_name_addr)
    }

    /// Every Record-Route value in order (name-addr form required).
    pub fn record_routes(&self) -> impl Iterator<Item = Result<NameAddr<'a>, ParseError>> + '_ {
        self.values(HeaderName::RecordRoute)
            .map(NameAddr::parse_name_addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::host::Host;

    fn na(s: &str) -> NameAddr<'_> {
        NameAddr::parse(s.as_bytes()).unwrap_or_else(|e| panic!("{s}: {e:?}"))
    }

    fn na_err(s: &[u8]) -> ParseError {
        NameAddr::parse(s).unwrap_err()
    }

    #[test]
    fn quoted_display_with_escapes() {
        let a = na(r#""Quoted \"Name\"" <sip:a@b;uparam>;tag=x"#);
        assert_eq!(a.display, Some(&br#""Quoted \"Name\"""#[..]));
        assert_eq!(a.uri, b"sip:a@b;uparam");
        assert!(a.angle);
        assert_eq!(a.tag(), Some(&b"x"[..]));
        assert_eq!(
            a.display_unescaped().as_deref(),
            Some(&br#"Quoted "Name""#[..])
        );
        // The uri-parameter stays in the URI, the tag in the header.
        let u = match a.parse_uri().unwrap() {
            Uri::Sip(u) => u,
            other => panic!("{other:?}"),
        };
        assert!(u.params.contains(b"uparam"));
        assert!(!u.params.contains(b"tag"));
        assert!(!a.params.contains(b"uparam"));
        // Quoted without escapes borrows.
        assert!(matches!(
            na(r#""Bob" <sip:b@h>"#).display_unescaped(),
            Some(Cow::Borrowed(b"Bob"))
        ));
    }

    #[test]
    fn token_display_names() {
        let a = na("Alice  Smith <sip:alice@atlanta.example.com>");
        assert_eq!(a.display, Some(&b"Alice  Smith"[..]));
        assert_eq!(a.display_unescaped().as_deref(), Some(&b"Alice  Smith"[..]));
        // RFC 4475 §3.1.1.2: every non-alphanumeric token character.
        let a = na("token1~` token2'+_ token3*%!.- <sip:mundane@example.com>;fromParam''~+*_!.-%=\"\u{440}\u{430}\";tag=_token~1'+`*%!-.");
        assert_eq!(a.display, Some(&b"token1~` token2'+_ token3*%!.-"[..]));
        assert_eq!(a.uri, b"sip:mundane@example.com");
        assert_eq!(a.tag(), Some(&b"_token~1'+`*%!-."[..]));
        assert_eq!(
            a.params.value(b"fromParam''~+*_!.-%"),
            Some("\"\u{440}\u{430}\"".as_bytes())
        );
        // RFC 4475 §3.1.1.6: no LWS between display name and `<`.
        let a = na("caller<sip:caller@example.com>;tag=323");
        assert_eq!(a.display, Some(&b"caller"[..]));
        assert_eq!(a.tag(), Some(&b"323"[..]));
        let a = na("\"quoted\"<sip:q@example.com>");
        assert_eq!(a.display, Some(&b"\"quoted\""[..]));
    }

    #[test]
    fn bare_angle_and_addr_spec() {
        let a = na("<sip:bob@biloxi.example.com>");
        assert_eq!(a.display, None);
        assert!(a.angle);
        assert!(a.params.is_empty());
        // RFC 3261 §20.10: in addr-spec form, parameters belong to the header.
        let a = na("sip:bob@biloxi.example.com;tag=abc;lr");
        assert!(!a.angle);
        assert_eq!(a.uri, b"sip:bob@biloxi.example.com");
        assert_eq!(a.tag(), Some(&b"abc"[..]));
        assert!(a.params.contains(b"lr"));
        match a.parse_uri().unwrap() {
            Uri::Sip(u) => assert!(u.params.is_empty()),
            other => panic!("{other:?}"),
        }
        // RFC 4475 §3.1.1.1: LWS (folded) around `;` and `=`.
        let a = na("sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n");
        assert_eq!(a.uri, b"sip:vivekg@chair-dnrc.example.com");
        assert_eq!(a.tag(), Some(&b"1918181833n"[..]));
        let a = na(
            "\"J Rosenberg \\\\\\\"\"       <sip:jdrosen@example.com>\r\n  ;\r\n  tag = 98asjd8",
        );
        assert_eq!(a.tag(), Some(&b"98asjd8"[..]));
        assert_eq!(
            a.display_unescaped().as_deref(),
            Some(&b"J Rosenberg \\\""[..])
        );
        // RFC 4475 §3.1.1.3: escapes in an addr-spec user part.
        let a = na("sip:%75se%72@example.com");
        match a.parse_uri().unwrap() {
            Uri::Sip(u) => assert!(u.user_is(b"user")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn special_uris_need_angle_brackets() {
        // RFC 4475 §3.1.1.9: inside brackets the `;` is the user part's.
        let a = na("<sip:user;par=u%40example.net@example.com>;tag=1");
        assert_eq!(a.uri, b"sip:user;par=u%40example.net@example.com");
        // Outside brackets the URI ends at `;`: the rest is header params (and
        // here malformed ones).
        assert_eq!(
            na_err(b"sip:user;par=u%40example.net@example.com"),
            ParseError::InvalidParam
        );
        // RFC 4475 §3.1.2.13: `?` outside brackets.
        assert_eq!(
            na_err(b"sip:user@example.com?Route=%3Csip:sip.example.com%3E"),
            ParseError::InvalidNameAddr
        );
        assert!(NameAddr::parse(b"<sip:user@example.com?Route=%3Csip:sip.example.com%3E>").is_ok());
        assert_eq!(na_err(b"sip:a,b@example.com"), ParseError::InvalidNameAddr);
        assert!(NameAddr::parse(b"<sip:a,b@example.com>").is_ok());
    }

    #[test]
    fn tricky_rfc4475_addresses() {
        // §3.1.1.2: quoted-pairs holding BEL, NUL and DEL, and a `,` and `?` in
        // the bracketed URI.
        let v = b"\"BEL:\\\x07 NUL:\\\x00 DEL:\\\x7F\" <sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*@example.com>";
        let a = NameAddr::parse(v).unwrap();
        assert_eq!(
            a.display_unescaped().as_deref(),
            Some(&b"BEL:\x07 NUL:\x00 DEL:\x7F"[..])
        );
        match a.parse_uri().unwrap() {
            Uri::Sip(u) => assert_eq!(
                u.user,
                Some(&b"1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"[..])
            ),
            other => panic!("{other:?}"),
        }
        // §3.1.1.5: `%` in a quoted display name is not an escape.
        let a = na("\"%Z%45\" <sip:resource@example.com>");
        assert_eq!(a.display_unescaped().as_deref(), Some(&b"%Z%45"[..]));
        // UTF-8 display name.
        let a = na("\"Jos\u{e9} \u{65e5}\u{672c}\" <sip:jose@example.com>");
        assert_eq!(
            a.display_unescaped().as_deref(),
            Some("Jos\u{e9} \u{65e5}\u{672c}".as_bytes())
        );
        // A `,` inside quotes is text.
        let a = na("\"Bell, Alexander\" <sip:a.g.bell@example.com>;tag=433423");
        assert_eq!(
            a.display_unescaped().as_deref(),
            Some(&b"Bell, Alexander"[..])
        );
    }

    #[test]
    fn invalid_addresses() {
        // §3.1.2.6: unterminated quote.
        assert_eq!(
            na_err(b"\"Mr. J. User <sip:j.user@example.com>"),
            ParseError::InvalidNameAddr
        );
        // §3.1.2.14: spaces inside the brackets.
        assert_eq!(
            na_err(b"\"Watson, Thomas\" < sip:t.watson@example.org >"),
            ParseError::InvalidNameAddr
        );
        // §3.1.2.15: an unquoted display name with a `,` is not a token run.
        assert_eq!(
            na_err(b"Bell, Alexander <sip:a.g.bell@example.com>;tag=43"),
            ParseError::InvalidNameAddr
        );
        for bad in [
            &b""[..],
            b"   ",
            b"Alice",
            b"<sip:a@b",
            b"<>",
            b"<sip:>",
            b"<a@b>",
            b"Alice <sip:a@b> trailing",
            b"<sip:a@b><sip:c@d>",
            b"\"x\" sip:a@b",
            b"\"x\\",
            b"\"a\x01b\" <sip:a@b>",
            b"\"a\\\r\" <sip:a@b>",
            b"sip:a@b foo",
            b"sip:",
            b"Alice <sip:a<b@c>",
        ] {
            assert_eq!(
                na_err(bad),
                ParseError::InvalidNameAddr,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn invalid_header_params() {
        assert_eq!(na_err(b"<sip:a@b>;"), ParseError::InvalidParam);
        assert_eq!(na_err(b"<sip:a@b>;tag="), ParseError::InvalidParam);
        assert_eq!(na_err(b"<sip:a@b>;a b=1"), ParseError::InvalidParam);
        assert!(NameAddr::parse(b"<sip:a@b>;tag").is_ok());
    }

    /// The byte-by-byte scan the table-driven `quoted_string_end` replaced.
    fn quoted_string_end_stepwise(s: &[u8]) -> Result<usize, ParseError> {
        let mut i = 1;
        while let Some(&b) = s.get(i) {
            match b {
                b'"' => return Ok(i + 1),
                b'\\' => match s.get(i + 1) {
                    Some(&e) if e <= 0x7f && e != b'\r' && e != b'\n' => i += 2,
                    _ => return Err(ParseError::InvalidNameAddr),
                },
                b'\t' | b'\r' | b'\n' => i += 1,
                0..=0x1f | 0x7f => return Err(ParseError::InvalidNameAddr),
                _ => i += 1,
            }
        }
        Err(ParseError::InvalidNameAddr)
    }

    #[test]
    fn quoted_string_end_matches_stepwise_scan() {
        // After the opening quote, every string of up to six bytes over: quote,
        // escape, plain, tab, CR, LF, another control, DEL, non-ASCII.
        let mut buf = Vec::new();
        crate::sip::text::for_each_string(b"\"\\a\t\r\n\x01\x7f\xc3", 6, |tail| {
            buf.clear();
            buf.push(b'"');
            buf.extend_from_slice(tail);
            assert_eq!(
                quoted_string_end(&buf),
                quoted_string_end_stepwise(&buf),
                "{buf:?}"
            );
        });
    }

    /// `tag()` answers from the validating pass what a search of the parameters
    /// answers: the first `tag`, in any case, and nothing when that one is a flag.
    #[test]
    fn tag_is_the_first_tag_parameter() {
        for (s, tag) in [
            ("<sip:a@b>;tag=1;tag=2", Some(&b"1"[..])),
            ("<sip:a@b>;TAG=x;tag=y", Some(b"x")),
            ("<sip:a@b>;tag;tag=1", None),
            ("<sip:a@b>;x=1 ; Tag = 7", Some(b"7")),
            ("sip:a@b;lr;tag=3", Some(b"3")),
            ("<sip:a@b;tag=uri>", None),
            ("<sip:a@b>;tags=1", None),
        ] {
            let a = na(s);
            assert_eq!(a.tag(), tag, "{s}");
            assert_eq!(a.tag(), a.params.value(b"tag"), "{s}");
        }
    }

    /// The URI bytes a name-addr admits: visible ASCII but `"` and `<` (and `>`,
    /// which ends it); in addr-spec form also not `,` or `?`.
    #[test]
    fn uri_bytes() {
        for b in 0..=u8::MAX {
            let angle = [&b"<sip:a"[..], &[b], b">"].concat();
            let ok = matches!(b, 0x21..=0x7e) && !matches!(b, b'"' | b'<');
            if b == b'>' {
                // Ends the URI early: `<sip:a>` then `>` where parameters belong.
                assert_eq!(na_err(&angle), ParseError::InvalidNameAddr);
                continue;
            }
            assert_eq!(NameAddr::parse(&angle).is_ok(), ok, "{angle:?}");
            let bare = [&b"sip:a"[..], &[b]].concat();
            let ok = ok && !matches!(b, b',' | b'?' | b'>' | b';') || is_lws(b);
            assert_eq!(NameAddr::parse(&bare).is_ok(), ok, "{bare:?}");
        }
        assert_eq!(na_err(b"<sip:a"), ParseError::InvalidNameAddr);
        assert_eq!(na_err(b"<sip:>"), ParseError::InvalidNameAddr);
        assert_eq!(na_err(b"<x>"), ParseError::InvalidNameAddr);
    }

    #[test]
    fn unknown_schemes_in_brackets() {
        let a = na("<http://www.example.com/alice/photo.jpg> ;purpose=icon");
        assert_eq!(a.params.value(b"purpose"), Some(&b"icon"[..]));
        assert!(matches!(a.parse_uri(), Ok(Uri::Other { .. })));
        let a = na("\"Watson\" <mailto:watson@bell-telephone.com>");
        assert!(matches!(
            a.parse_uri(),
            Ok(Uri::Other {
                scheme: b"mailto",
                ..
            })
        ));
        let a = na("<sips:bob@[2001:db8::10]:5070>");
        match a.parse_uri().unwrap() {
            Uri::Sip(u) => {
                assert!(u.secure);
                assert_eq!(u.port, Some(5070));
                assert!(matches!(u.host, Host::V6(_)));
            }
            other => panic!("{other:?}"),
        }
        let a = na("<tel:+1-201-555-0123>;tag=1");
        assert!(matches!(a.parse_uri(), Ok(Uri::Tel(_))));
        // A malformed URI is found when decoded, not when split.
        let a = na("<sip:user@[2001:db8::10>");
        assert_eq!(a.parse_uri(), Err(ParseError::InvalidHost));
    }

    #[test]
    fn qvalues() {
        for (s, q) in [
            ("0", 0),
            ("0.", 0),
            ("0.5", 500),
            ("0.33", 330),
            ("0.001", 1),
            ("0.999", 999),
            ("1", 1000),
            ("1.", 1000),
            ("1.000", 1000),
        ] {
            assert_eq!(
                QValue::parse(s.as_bytes()).map(QValue::thousandths),
                Ok(q),
                "{s}"
            );
        }
        for s in [
            "", "2", "1.001", "0.0001", ".5", "0,5", "01", "1.5", "-0", "0.a",
        ] {
            assert_eq!(
                QValue::parse(s.as_bytes()),
                Err(ParseError::InvalidQValue),
                "{s}"
            );
        }
        assert!(QValue::parse(b"0.7").unwrap() < QValue::MAX);
    }

    #[test]
    fn contact_values() {
        assert_eq!(Contact::parse(b" * "), Ok(Contact::Star));
        let star = Contact::Star;
        assert_eq!(star.expires(), Ok(None));
        assert_eq!(star.q(), Ok(None));
        assert_eq!(star.instance(), None);
        assert_eq!(star.reg_id(), None);
        assert!(star.addr().is_none());

        // RFC 5626 §4.1 style registration.
        let c = Contact::parse(
            b"<sip:line1@192.0.2.2;transport=tcp>; reg-id=1;\r\n q=0.7; expires=3600;\r\n +sip.instance=\"<urn:uuid:00000000-0000-1000-8000-000A95A0E128>\"",
        )
        .unwrap();
        assert_eq!(c.reg_id(), Some(1));
        assert_eq!(c.q().map(|q| q.map(QValue::thousandths)), Ok(Some(700)));
        assert_eq!(c.expires(), Ok(Some(3600)));
        assert_eq!(
            c.instance(),
            Some(&b"<urn:uuid:00000000-0000-1000-8000-000A95A0E128>"[..])
        );
        assert_eq!(c.addr().unwrap().uri, b"sip:line1@192.0.2.2;transport=tcp");

        let c = Contact::parse(b"sip:a@b;expires=0;q=1").unwrap();
        assert_eq!(c.expires(), Ok(Some(0)));
        assert_eq!(c.q(), Ok(Some(QValue::MAX)));
        assert_eq!(c.reg_id(), None);
        // RFC 3261 §10.2.1.1: huge values may be read as 2^32-1.
        let c = Contact::parse(b"<sip:a@b>;expires=99999999999").unwrap();
        assert_eq!(c.expires(), Ok(Some(u32::MAX)));

        for (v, e) in [
            (&b"<sip:a@b>;expires=abc"[..], ParseError::InvalidExpires),
            (b"<sip:a@b>;expires=-1", ParseError::InvalidExpires),
            (b"<sip:a@b>;expires", ParseError::InvalidExpires),
        ] {
            assert_eq!(Contact::parse(v).unwrap().expires(), Err(e));
        }
        assert_eq!(
            Contact::parse(b"<sip:a@b>;q=1.5").unwrap().q(),
            Err(ParseError::InvalidQValue)
        );
        assert_eq!(
            Contact::parse(b"<sip:a@b>;q").unwrap().q(),
            Err(ParseError::InvalidQValue)
        );
        for rid in ["0", "2147483648", "x", "-1"] {
            let v = format!("<sip:a@b>;reg-id={rid}");
            assert_eq!(
                Contact::parse(v.as_bytes()).unwrap().reg_id(),
                None,
                "{rid}"
            );
        }
        assert_eq!(
            Contact::parse(b"<sip:a@b>;reg-id=2147483647")
                .unwrap()
                .reg_id(),
            Some(2147483647)
        );
        assert_eq!(Contact::parse(b"**"), Err(ParseError::InvalidContact));
        assert_eq!(Contact::parse(b"<sip:a@b"), Err(ParseError::InvalidContact));
        assert_eq!(
            Contact::parse(b"<sip:a@b>;;"),
            Err(ParseError::InvalidContact)
        );
    }

    const TORTURE: &[u8] = b"INVITE sip:vivekg@chair-dnrc.example.com;unknownparam SIP/2.0\r\n\
TO :\r\n sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n\r\n\
from   : \"J Rosenberg \\\\\\\"\"       <sip:jdrosen@example.com>\r\n  ;\r\n  tag = 98asjd8\r\n\
Call-ID: wsinv.ndaksdj@192.0.2.1\r\n\
Route:\r\n <sip:services.example.com;lr;unknownwith=value;unknown-no-value>\r\n\
m:\"Quoted string \\\"\\\"\" <sip:jdrosen@example.com> ; newparam =\r\n      newvalue ;\r\n  secondparam ; q = 0.33\r\n\
Record-Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\n\
Record-Route: <sip:p3.example.com;lr>\r\n\
Contact: <sip:a@h1>;expires=60, sip:b@h2;q=0.1\r\n\
Content-Length: 0\r\n\r\n";

    #[test]
    fn message_addresses() {
        // RFC 4475 §3.1.1.1 (wsinv), headers only.
        let m = Message::parse(TORTURE).unwrap();
        let to = m.to().unwrap();
        assert!(!to.angle);
        assert_eq!(to.uri, b"sip:vivekg@chair-dnrc.example.com");
        assert_eq!(to.tag(), Some(&b"1918181833n"[..]));
        let from = m.from().unwrap();
        assert_eq!(from.tag(), Some(&b"98asjd8"[..]));
        assert_eq!(from.uri, b"sip:jdrosen@example.com");

        let routes: Vec<_> = m.routes().collect::<Result<_, _>>().unwrap();
        assert_eq!(routes.len(), 1);
        match routes[0].parse_uri().unwrap() {
            Uri::Sip(u) => {
                assert!(u.lr());
                assert_eq!(u.params.value(b"unknownwith"), Some(&b"value"[..]));
            }
            other => panic!("{other:?}"),
        }
        let rr: Vec<_> = m.record_routes().map(|r| r.unwrap().uri).collect();
        assert_eq!(
            rr,
            vec![
                &b"sip:p1.example.com;lr"[..],
                &b"sip:p2.example.com;lr"[..],
                &b"sip:p3.example.com;lr"[..]
            ]
        );

        let contacts: Vec<_> = m.contacts().collect::<Result<_, _>>().unwrap();
        assert_eq!(contacts.len(), 3);
        assert_eq!(
            contacts[0].q().map(|q| q.map(QValue::thousandths)),
            Ok(Some(330))
        );
        let first = contacts[0].addr().unwrap();
        assert!(first.params.contains(b"secondparam"));
        assert_eq!(first.params.value(b"newparam"), Some(&b"newvalue"[..]));
        assert_eq!(contacts[1].expires(), Ok(Some(60)));
        assert_eq!(contacts[2].addr().unwrap().uri, b"sip:b@h2");
        assert_eq!(
            contacts[2].q().map(|q| q.map(QValue::thousandths)),
            Ok(Some(100))
        );
    }

    #[test]
    fn missing_and_invalid_from_to() {
        let m = Message::parse(b"OPTIONS sip:x SIP/2.0\r\nCall-ID: 1\r\n\r\n").unwrap();
        assert_eq!(m.from(), Err(ParseError::MissingFrom));
        assert_eq!(m.to(), Err(ParseError::MissingTo));
        assert_eq!(m.contacts().count(), 0);
        assert_eq!(m.routes().count(), 0);

        // RFC 4475 §3.1.2.15 (baddn) and §3.1.2.6 (quotbal).
        let m = Message::parse(
            b"OPTIONS sip:x SIP/2.0\r\n\
From:    Bell, Alexander <sip:a.g.bell@example.com>;tag=43\r\n\
To: \"Mr. J. User <sip:j.user@example.com>\r\n\r\n",
        )
        .unwrap();
        assert_eq!(m.from(), Err(ParseError::InvalidFrom));
        assert_eq!(m.to(), Err(ParseError::InvalidTo));

        // Compact forms, and a Route in addr-spec form is not a route-param.
        let m = Message::parse(
            b"OPTIONS sip:x SIP/2.0\r\nf: <sip:a@b>;tag=1\r\nt: sip:c@d\r\n\
Route: sip:p.example.com;lr\r\nm: *\r\n\r\n",
        )
        .unwrap();
        assert_eq!(m.from().unwrap().tag(), Some(&b"1"[..]));
        assert_eq!(m.to().unwrap().tag(), None);
        assert_eq!(m.routes().next(), Some(Err(ParseError::InvalidNameAddr)));
        assert_eq!(m.contacts().next(), Some(Ok(Contact::Star)));
    }

    #[test]
    fn contact_uris_in_order_star_as_none_faults_as_invalid_contact() {
        let m = Message::parse(
            b"REGISTER sip:x SIP/2.0\r\n\
Contact: <sip:a@192.168.1.2:5062>;expires=60, <mailto:x@y>\r\n\
m: <sip:b@h>, <sip:c@[::1\r\n\r\n",
        )
        .unwrap();
        let uris: Vec<_> = m.contact_uris().collect();
        assert_eq!(uris.len(), 4);
        let Ok(Some(Uri::Sip(first))) = uris[0] else {
            panic!("{:?}", uris[0])
        };
        assert_eq!(first.host, Host::V4("192.168.1.2".parse().unwrap()));
        assert!(
            matches!(uris[1], Ok(Some(Uri::Other { .. }))),
            "{:?}",
            uris[1]
        );
        assert!(matches!(uris[2], Ok(Some(Uri::Sip(_)))));
        assert_eq!(uris[3], Err(ParseError::InvalidContact));
        // The first one again comes from the memo, equal to a fresh decoding.
        assert_eq!(m.contact_uris().next(), Some(uris[0]));

        let star = Message::parse(b"REGISTER sip:x SIP/2.0\r\nContact: *\r\n\r\n").unwrap();
        assert_eq!(star.contact_uris().collect::<Vec<_>>(), vec![Ok(None)]);
        let bad = Message::parse(b"REGISTER sip:x SIP/2.0\r\nContact: <sip:@>\r\n\r\n").unwrap();
        assert_eq!(
            bad.contact_uris().next(),
            Some(Err(ParseError::InvalidContact))
        );
        let none = Message::parse(b"REGISTER sip:x SIP/2.0\r\n\r\n").unwrap();
        assert_eq!(none.contact_uris().count(), 0);
    }

    #[test]
    fn contact_list_splits_outside_quotes() {
        // RFC 4475 §3.1.2.15 in a list header: an unquoted `,` splits the value,
        // and "Bell" alone is not an address.
        let m = Message::parse(
            b"REGISTER sip:x SIP/2.0\r\n\
Contact: \"Doe, John\" <sip:j@h;x=1,2>;q=0.5, Bell, Alexander <sip:a@b>\r\n\r\n",
        )
        .unwrap();
        let c: Vec<_> = m.contacts().collect();
        assert_eq!(c.len(), 3);
        assert_eq!(c[0].unwrap().addr().unwrap().uri, b"sip:j@h;x=1,2");
        assert_eq!(c[1], Err(ParseError::InvalidContact));
        // The second half happens to be a valid name-addr on its own.
        assert_eq!(
            c[2].unwrap().addr().unwrap().display,
            Some(&b"Alexander"[..])
        );
    }

    #[test]
    fn never_panics_on_mangled_input() {
        // Every prefix of each sample, and each sample with one byte replaced by a
        // delimiter: decoders must answer Ok or Err, never panic. Bounded: the
        // samples are short and the substitution set is fixed.
        let samples: [&[u8]; 6] = [
            b"\"A \\\"B\\\"\" <sips:u%41:pw@[2001:db8::1]:5061;lr;ttl=9?h=v&i=j>;tag=1;q=0.5",
            b"sip:user;par=u%40example.net@example.com",
            b"tel:+1-201-555-0123;ext=1;phone-context=x",
            b"caller<sip:caller@example.com>;expires=99;reg-id=7",
            b"<urn:uuid:00000000-0000-1000-8000-000A95A0E128>;+sip.instance=\"<x>\"",
            b"sip:a@192.0.2.1:5060;transport=tcp ; tag = x",
        ];
        let subst = [
            b'"', b'\\', b'<', b'>', b'%', b'@', b':', b';', b'?', b'[', b']', b' ', b'\r', 0, 0xff,
        ];
        let exercise = |v: &[u8]| {
            if let Ok(c) = Contact::parse(v) {
                let _ = (c.expires(), c.q(), c.instance(), c.reg_id());
                if let Some(a) = c.addr() {
                    let _ = (a.tag(), a.display_unescaped());
                    if let Ok(Uri::Sip(u)) = a.parse_uri() {
                        let _ = (u.ttl(), u.user_unescaped(), u.password_unescaped());
                        let _ = u.same_as(&u);
                    }
                }
            }
            if let Ok(u) = Uri::parse(v) {
                assert!(u.same_as(&u), "{}", String::from_utf8_lossy(v));
            }
        };
        for s in samples {
            for n in 0..=s.len() {
                exercise(&s[..n]);
            }
            let mut buf = s.to_vec();
            for i in 0..s.len() {
                for &b in &subst {
                    buf[i] = b;
                    exercise(&buf);
                }
                buf[i] = s[i];
            }
        }
    }
}
