//! Authentication headers (RFC 3261 §22, §25.1 `credentials` / `challenge`; RFC
//! 7616 §3.3–3.4 for the digest parameters, RFC 7235 §2.1 for `token68`).
//!
//! ```text
//! credentials = ("Digest" LWS digest-response) / other-response
//! challenge   = ("Digest" LWS digest-cln *(COMMA digest-cln)) / other-challenge
//! auth-param  = auth-param-name EQUAL ( token / quoted-string )
//! ```
//!
//! [`Credentials`] (Authorization, Proxy-Authorization) and [`Challenge`]
//! (WWW-Authenticate, Proxy-Authenticate) borrow the header value. `parse` checks the
//! whole parameter list once, so iterating it afterwards cannot fail. Each header
//! line carries one credentials / challenge, as in the RFC 3261 grammar.

use super::error::ParseError;
use super::header::HeaderName;
use super::message::Message;
use super::text::{eq_ic, is_lws, is_token, trim, trim_start, unquote, CommaList};

/// More parameters than this in one header make it [`ParseError::InvalidAuth`]. A
/// digest header has at most a dozen; the cap keeps the duplicate check cheap.
pub const MAX_AUTH_PARAMS: usize = 32;

/// One `name=value` auth-param. `value` is as written: a quoted-string keeps its
/// quotes and `\` escapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthParam<'a> {
    pub name: &'a [u8],
    pub value: &'a [u8],
}

impl<'a> AuthParam<'a> {
    /// True when the value is a quoted-string.
    pub fn is_quoted(&self) -> bool {
        self.value.first() == Some(&b'"')
    }

    /// The value without its surrounding quotes; `\` escapes are left in place (use
    /// [`super::text::unescape_quoted`] for the `unq()` of RFC 7616 §3.3 when a
    /// value holds one).
    pub fn unquoted(&self) -> &'a [u8] {
        unquote(self.value)
    }
}

/// Iterates the auth-params of a parsed [`Credentials`] or [`Challenge`].
#[derive(Debug, Clone, Copy)]
pub struct AuthParams<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for AuthParams<'a> {
    type Item = AuthParam<'a>;

    fn next(&mut self) -> Option<AuthParam<'a>> {
        if self.rest.is_empty() {
            return None;
        }
        match next_param(self.rest) {
            Ok((p, rest)) => {
                self.rest = rest;
                Some(p)
            }
            // Unreachable after `parse` validated the list; stop rather than panic.
            Err(_) => {
                self.rest = &[];
                None
            }
        }
    }
}

/// Scans one auth-param at the start of `s` (leading LWS allowed). Returns it and
/// the text after the separating comma (empty at the end of the list).
fn next_param(s: &[u8]) -> Result<(AuthParam<'_>, &[u8]), ParseError> {
    let s = trim_start(s);
    let n = s.iter().take_while(|&&b| is_token(b)).count();
    let (name, rest) = s.split_at(n);
    // EQUAL = SWS "=" SWS
    let rest = match trim_start(rest) {
        [b'=', rest @ ..] => trim_start(rest),
        _ => return Err(ParseError::InvalidAuth),
    };
    if name.is_empty() {
        return Err(ParseError::InvalidAuth);
    }
    let len = if rest.first() == Some(&b'"') {
        quoted_len(rest).ok_or(ParseError::InvalidAuth)?
    } else {
        rest.iter().take_while(|&&b| is_token(b)).count()
    };
    if len == 0 {
        return Err(ParseError::InvalidAuth);
    }
    let (value, rest) = rest.split_at(len);
    let rest = match trim_start(rest) {
        [] => &[][..],
        [b',', rest @ ..] => {
            // COMMA = SWS "," SWS, and another auth-param must follow.
            if trim(rest).is_empty() {
                return Err(ParseError::InvalidAuth);
            }
            rest
        }
        _ => return Err(ParseError::InvalidAuth),
    };
    Ok((AuthParam { name, value }, rest))
}

/// Length of the quoted-string at the start of `s` (which starts with `"`),
/// closing quote included; `None` when unterminated or holding a control byte
/// (RFC 3261 §25.1 `qdtext` / `quoted-pair`; CR/LF only as folding).
fn quoted_len(s: &[u8]) -> Option<usize> {
    let mut i = 1;
    while let Some(&b) = s.get(i) {
        match b {
            b'"' => return Some(i + 1),
            b'\\' => {
                let e = *s.get(i + 1)?;
                if e == b'\r' || e == b'\n' || e == 0x7f {
                    return None;
                }
                i += 2;
            }
            0x7f => return None,
            b if b < 0x20 && !is_lws(b) => return None,
            _ => i += 1,
        }
    }
    None
}

/// `token68 = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`
/// (RFC 7235 §2.1), e.g. the Bearer credentials of RFC 8898.
fn is_token68(s: &[u8]) -> bool {
    let body = s.iter().take_while(|&&b| b != b'=').count();
    body > 0
        && s.iter().take(body).all(|&b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        })
        && s.iter().skip(body).all(|&b| b == b'=')
}

/// The parameters the typed accessors read. Their positions are noted during the
/// one validating pass of `parse`, so an accessor scans one parameter instead of
/// the list up to it: checking a digest response reads a dozen of them, and
/// looking each up from the start cost ~26k instructions per request.
const KNOWN: [&[u8]; 15] = [
    b"realm",
    b"nonce",
    b"opaque",
    b"algorithm",
    b"userhash",
    b"username",
    b"username*",
    b"uri",
    b"response",
    b"cnonce",
    b"qop",
    b"nc",
    b"domain",
    b"stale",
    b"charset",
];

/// `AuthValue::known` entry of a parameter that is not there.
const ABSENT: u32 = u32::MAX;

/// The parts every auth header shares.
#[derive(Debug, Clone, Copy)]
struct AuthValue<'a> {
    scheme: &'a [u8],
    token68: Option<&'a [u8]>,
    params: &'a [u8],
    /// Offset in `params` of each [`KNOWN`] parameter, or [`ABSENT`].
    known: [u32; KNOWN.len()],
}

impl<'a> AuthValue<'a> {
    fn parse(value: &'a [u8]) -> Result<AuthValue<'a>, ParseError> {
        let s = trim(value);
        let n = s.iter().take_while(|&&b| is_token(b)).count();
        let (scheme, rest) = s.split_at(n);
        // auth-scheme LWS …: at least one parameter (or a token68) must follow.
        if scheme.is_empty() || !rest.first().is_some_and(|&b| is_lws(b)) {
            return Err(ParseError::InvalidAuth);
        }
        let rest = trim_start(rest);
        let digest = eq_ic(scheme, b"Digest");
        if !digest && is_token68(rest) {
            return Ok(AuthValue {
                scheme,
                token68: Some(rest),
                params: &[],
                known: [ABSENT; KNOWN.len()],
            });
        }
        let mut names: [&[u8]; MAX_AUTH_PARAMS] = [&[]; MAX_AUTH_PARAMS];
        let mut count = 0;
        let mut known = [ABSENT; KNOWN.len()];
        let mut s = rest;
        while !s.is_empty() {
            let offset = (rest.len() - s.len()) as u32;
            let (p, next) = next_param(s)?;
            if let Some(i) = KNOWN.iter().position(|k| eq_ic(k, p.name)) {
                known[i] = offset;
            }
            let seen = names.get(..count).unwrap_or_default();
            if seen.iter().any(|n| eq_ic(n, p.name)) {
                // RFC 7235 §2.1: each parameter name MUST only occur once.
                return Err(ParseError::InvalidAuth);
            }
            *names.get_mut(count).ok_or(ParseError::InvalidAuth)? = p.name;
            count += 1;
            s = next;
        }
        Ok(AuthValue {
            scheme,
            token68: None,
            params: rest,
            known,
        })
    }

    fn get(&self, name: &[u8]) -> Option<AuthParam<'a>> {
        match KNOWN.iter().position(|k| eq_ic(k, name)) {
            Some(i) => {
                let at = *self.known.get(i)?;
                if at == ABSENT {
                    return None;
                }
                let tail = self.params.get(at as usize..)?;
                next_param(tail).ok().map(|(p, _)| p)
            }
            None => AuthParams { rest: self.params }.find(|p| eq_ic(p.name, name)),
        }
    }

    fn unquoted(&self, name: &[u8]) -> Option<&'a [u8]> {
        self.get(name).map(|p| p.unquoted())
    }

    /// A `true` / `false` flag (case-insensitive; tolerated quoted).
    fn flag(&self, name: &[u8]) -> Option<bool> {
        self.unquoted(name).map(|v| eq_ic(v, b"true"))
    }

    fn is_digest(&self) -> bool {
        eq_ic(self.scheme, b"Digest")
    }
}

/// `nc-value = 8LHEX` (RFC 3261 §25.1; RFC 7616 §3.4).
fn parse_nc(v: &[u8]) -> Option<u32> {
    if v.len() != 8 {
        return None;
    }
    std::str::from_utf8(v)
        .ok()
        .and_then(|t| u32::from_str_radix(t, 16).ok())
}

/// The checks of RFC 7616 §3.4 that make the typed Digest accessors infallible,
/// in one pass over the parameters.
fn digest_credentials_ok(v: &AuthValue<'_>) -> bool {
    let (mut username, mut username_ext) = (false, false);
    for p in (AuthParams { rest: v.params }) {
        if eq_ic(p.name, b"nc") {
            if parse_nc(p.value).is_none() {
                return false;
            }
        } else if eq_ic(p.name, b"userhash") {
            if !is_bool(p.unquoted()) {
                return false;
            }
        } else if eq_ic(p.name, b"username") {
            username = true;
        } else if eq_ic(p.name, b"username*") {
            username_ext = true;
        }
    }
    // Sending both username and username* MUST be treated as an error.
    !(username && username_ext)
}

/// `"true"` / `"false"`, any case.
fn is_bool(v: &[u8]) -> bool {
    eq_ic(v, b"true") || eq_ic(v, b"false")
}

macro_rules! common_accessors {
    () => {
        /// The scheme as written (`Digest`, compared case-insensitively).
        pub fn scheme(&self) -> &'a [u8] {
            self.0.scheme
        }

        /// True for the `Digest` scheme.
        pub fn is_digest(&self) -> bool {
            self.0.is_digest()
        }

        /// The `token68` form (RFC 7235 §2.1) of a non-Digest scheme, if used
        /// instead of auth-params.
        pub fn token68(&self) -> Option<&'a [u8]> {
            self.0.token68
        }

        /// The auth-params in order.
        pub fn params(&self) -> AuthParams<'a> {
            AuthParams {
                rest: self.0.params,
            }
        }

        /// The auth-param called `name` (case-insensitive).
        pub fn param(&self, name: &str) -> Option<AuthParam<'a>> {
            self.0.get(name.as_bytes())
        }

        /// `realm`, unquoted.
        pub fn realm(&self) -> Option<&'a [u8]> {
            self.0.unquoted(b"realm")
        }

        /// `nonce`, unquoted.
        pub fn nonce(&self) -> Option<&'a [u8]> {
            self.0.unquoted(b"nonce")
        }

        /// `opaque`, unquoted.
        pub fn opaque(&self) -> Option<&'a [u8]> {
            self.0.unquoted(b"opaque")
        }

        /// `algorithm` (`MD5` when absent, RFC 7616 §3.3 — left to the caller).
        /// Unquoted, because some clients quote it although they must not.
        pub fn algorithm(&self) -> Option<&'a [u8]> {
            self.0.unquoted(b"algorithm")
        }

        /// `userhash=true` (RFC 7616 §3.4.4); false when absent.
        pub fn userhash(&self) -> bool {
            self.0.flag(b"userhash").unwrap_or(false)
        }
    };
}

/// Authorization / Proxy-Authorization credentials (RFC 3261 §20.7, §20.28).
#[derive(Debug, Clone, Copy)]
pub struct Credentials<'a>(AuthValue<'a>);

impl<'a> Credentials<'a> {
    /// Decodes a credentials value. Beyond the auth-param grammar and unique names,
    /// a Digest value must have an 8-hex-digit `nc`, a boolean `userhash`, and not
    /// both `username` and `username*` (RFC 7616 §3.4).
    pub fn parse(value: &'a [u8]) -> Result<Credentials<'a>, ParseError> {
        let v = AuthValue::parse(value)?;
        if v.is_digest() && !digest_credentials_ok(&v) {
            return Err(ParseError::InvalidAuth);
        }
        Ok(Credentials(v))
    }

    common_accessors!();

    /// `username`, unquoted (the hash when [`Self::userhash`] is set).
    pub fn username(&self) -> Option<&'a [u8]> {
        self.0.unquoted(b"username")
    }

    /// `username*` as written (RFC 7616 §3.4, RFC 5987 ext-value:
    /// `UTF-8''J%C3%A4s%C3%B8n%20Doe`).
    pub fn username_ext(&self) -> Option<&'a [u8]> {
        self.0.get(b"username*").map(|p| p.value)
    }

    /// `uri`, unquoted: the digest-uri that must match the Request-URI.
    pub fn uri(&self) -> Option<&'a [u8]> {
        self.0.unquoted(b"uri")
    }

    /// `response`, unquoted: the hex request-digest.
    pub fn response(&self) -> Option<&'a [u8]> {
        self.0.unquoted(b"response")
    }

    /// `cnonce`, unquoted.
    pub fn cnonce(&self) -> Option<&'a [u8]> {
        self.0.unquoted(b"cnonce")
    }

    /// `qop`: the single token the client applied (`auth`, `auth-int`). Unquoted,
    /// because some clients quote it although they must not.
    pub fn qop(&self) -> Option<&'a [u8]> {
        self.0.unquoted(b"qop")
    }

    /// `nc`, the nonce count (8 hex digits; checked by `parse` for Digest).
    pub fn nc(&self) -> Option<u32> {
        self.0.get(b"nc").and_then(|p| parse_nc(p.value))
    }
}

/// WWW-Authenticate / Proxy-Authenticate challenge (RFC 3261 §20.27, §20.44).
#[derive(Debug, Clone, Copy)]
pub struct Challenge<'a>(AuthValue<'a>);

impl<'a> Challenge<'a> {
    /// Decodes a challenge value (auth-param grammar, unique names).
    pub fn parse(value: &'a [u8]) -> Result<Challenge<'a>, ParseError> {
        AuthValue::parse(value).map(Challenge)
    }

    common_accessors!();

    /// `domain`: the space-separated URIs of the protection space (RFC 7616 §3.3).
    pub fn domain(&self) -> Option<impl Iterator<Item = &'a [u8]> + 'a> {
        self.0
            .unquoted(b"domain")
            .map(|d| d.split(|&b| is_lws(b)).filter(|u| !u.is_empty()))
    }

    /// `stale`: true only for `true` in any case — "anything other than true" is
    /// false (RFC 7616 §3.3).
    pub fn stale(&self) -> bool {
        self.0.flag(b"stale").unwrap_or(false)
    }

    /// The qop-options: the tokens of the quoted, comma-separated `qop` list
    /// (`qop="auth, auth-int"`); `None` when the challenge has no `qop` (RFC 2069
    /// compatibility, RFC 2617 §3.2.1).
    pub fn qop_options(&self) -> Option<CommaList<'a>> {
        self.0.unquoted(b"qop").map(CommaList::new)
    }

    /// True when `qop` lists `option` (case-insensitive).
    pub fn offers_qop(&self, option: &[u8]) -> bool {
        self.qop_options()
            .is_some_and(|mut l| l.any(|o| eq_ic(o, option)))
    }

    /// `charset` (RFC 7616 §3.3: only `UTF-8` is allowed).
    pub fn charset(&self) -> Option<&'a [u8]> {
        self.0.unquoted(b"charset")
    }
}

impl<'a> Message<'a> {
    /// The credentials of every Authorization line, in order.
    pub fn authorizations(&self) -> impl Iterator<Item = Result<Credentials<'a>, ParseError>> + '_ {
        self.values(HeaderName::Authorization)
            .map(Credentials::parse)
    }

    /// The credentials of every Proxy-Authorization line, in order.
    pub fn proxy_authorizations(
        &self,
    ) -> impl Iterator<Item = Result<Credentials<'a>, ParseError>> + '_ {
        self.values(HeaderName::ProxyAuthorization)
            .map(Credentials::parse)
    }

    /// The challenge of every WWW-Authenticate line, in order.
    pub fn www_authenticates(
        &self,
    ) -> impl Iterator<Item = Result<Challenge<'a>, ParseError>> + '_ {
        self.values(HeaderName::WwwAuthenticate)
            .map(Challenge::parse)
    }

    /// The challenge of every Proxy-Authenticate line, in order.
    pub fn proxy_authenticates(
        &self,
    ) -> impl Iterator<Item = Result<Challenge<'a>, ParseError>> + '_ {
        self.values(HeaderName::ProxyAuthenticate)
            .map(Challenge::parse)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(s: &str) -> Credentials<'_> {
        Credentials::parse(s.as_bytes()).unwrap()
    }

    fn chal(s: &str) -> Challenge<'_> {
        Challenge::parse(s.as_bytes()).unwrap()
    }

    fn cred_err(s: &str) -> ParseError {
        Credentials::parse(s.as_bytes()).unwrap_err()
    }

    /// RFC 2617 §3.5, folded the way a SIP message carries it.
    const RFC2617_CHALLENGE: &str = "Digest\r\n        realm=\"testrealm@host.com\",\r\n        \
qop=\"auth,auth-int\",\r\n        nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\",\r\n        \
opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"";

    const RFC2617_CREDENTIALS: &str = "Digest username=\"Mufasa\",\r\n        \
realm=\"testrealm@host.com\",\r\n        nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\",\r\n        \
uri=\"/dir/index.html\",\r\n        qop=auth,\r\n        nc=00000001,\r\n        \
cnonce=\"0a4f113b\",\r\n        response=\"6629fae49393a05397450978507c4ef1\",\r\n        \
opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"";

    #[test]
    fn rfc2617_example_challenge() {
        let c = chal(RFC2617_CHALLENGE);
        assert!(c.is_digest());
        assert_eq!(c.realm(), Some(&b"testrealm@host.com"[..]));
        assert_eq!(c.nonce(), Some(&b"dcd98b7102dd2f0e8b11d0f600bfb0c093"[..]));
        assert_eq!(c.opaque(), Some(&b"5ccc069c403ebaf9f0171e9517f40e41"[..]));
        let qop: Vec<_> = c.qop_options().unwrap().collect();
        assert_eq!(qop, vec![&b"auth"[..], b"auth-int"]);
        assert!(c.offers_qop(b"AUTH-INT"));
        assert!(!c.stale());
        assert_eq!(c.algorithm(), None);
        assert!(c.domain().is_none());
        assert_eq!(c.params().count(), 4);
    }

    #[test]
    fn rfc2617_example_credentials() {
        let c = creds(RFC2617_CREDENTIALS);
        assert_eq!(c.scheme(), b"Digest");
        assert_eq!(c.username(), Some(&b"Mufasa"[..]));
        assert_eq!(c.realm(), Some(&b"testrealm@host.com"[..]));
        assert_eq!(c.nonce(), Some(&b"dcd98b7102dd2f0e8b11d0f600bfb0c093"[..]));
        assert_eq!(c.uri(), Some(&b"/dir/index.html"[..]));
        assert_eq!(c.qop(), Some(&b"auth"[..]));
        assert_eq!(c.nc(), Some(1));
        assert_eq!(c.cnonce(), Some(&b"0a4f113b"[..]));
        assert_eq!(c.response(), Some(&b"6629fae49393a05397450978507c4ef1"[..]));
        assert_eq!(c.opaque(), Some(&b"5ccc069c403ebaf9f0171e9517f40e41"[..]));
        assert!(!c.userhash());
        let p = c.param("USERNAME").unwrap();
        assert!(p.is_quoted());
        assert_eq!(p.value, b"\"Mufasa\"");
        assert!(!c.param("qop").unwrap().is_quoted());
    }

    #[test]
    fn rfc7616_examples() {
        // §3.9.1
        let c = chal(
            "Digest\r\n    realm=\"http-auth@example.org\",\r\n    qop=\"auth, auth-int\",\r\n    \
algorithm=SHA-256,\r\n    nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\",\r\n    \
opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\"",
        );
        assert_eq!(c.algorithm(), Some(&b"SHA-256"[..]));
        assert_eq!(c.qop_options().unwrap().count(), 2);
        assert!(c.offers_qop(b"auth"));
        assert_eq!(
            c.nonce(),
            Some(&b"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"[..])
        );
        let a = creds(
            "Digest username=\"Mufasa\",\r\n    realm=\"http-auth@example.org\",\r\n    \
uri=\"/dir/index.html\",\r\n    algorithm=SHA-256,\r\n    \
nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\",\r\n    nc=00000001,\r\n    \
cnonce=\"f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ\",\r\n    qop=auth,\r\n    \
response=\"753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1\",\r\n    \
opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\"",
        );
        assert_eq!(a.username(), Some(&b"Mufasa"[..]));
        assert_eq!(a.algorithm(), Some(&b"SHA-256"[..]));
        assert_eq!(a.nc(), Some(1));
        assert_eq!(a.response().map(<[u8]>::len), Some(64));
        assert_eq!(
            a.cnonce(),
            Some(&b"f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"[..])
        );

        // §3.9.2: charset and userhash, then username*.
        let c = chal(
            "Digest realm=\"api@example.org\", qop=\"auth\", algorithm=SHA-512-256, \
nonce=\"5TsQWLVdgBdmrQ0XsxbDODV+57QdFR34I9HAbC/RVvkK\", \
opaque=\"HRPCssKJSGjCrkzDg8OhwpzCiGPChXYjwrI2QmXDnsOS\", charset=UTF-8, userhash=true",
        );
        assert_eq!(c.charset(), Some(&b"UTF-8"[..]));
        assert!(c.userhash());
        let a = creds(
            "Digest\r\n    username=\"488869477bf257147b804c45308cd62ac4e25eb717b12b298c79e62dcea254ec\",\r\n    \
realm=\"api@example.org\", uri=\"/doe.json\", algorithm=SHA-512-256, \
nonce=\"5TsQWLVdgBdmrQ0XsxbDODV+57QdFR34I9HAbC/RVvkK\", nc=00000001, \
cnonce=\"NTg6RKcb9boFIAS3KrFK9BGeh+iDa/sm6jUMp2wds69v\", qop=auth, \
response=\"ae66e67d6b427bd3f120414a82e4acff38e8ecd9101d6c861229025f607a79dd\", \
opaque=\"HRPCssKJSGjCrkzDg8OhwpzCiGPChXYjwrI2QmXDnsOS\", userhash=true",
        );
        assert!(a.userhash());
        assert_eq!(a.username().map(<[u8]>::len), Some(64));
        let a = creds(
            "Digest\r\n    username*=UTF-8''J%C3%A4s%C3%B8n%20Doe,\r\n    realm=\"api@example.org\", \
uri=\"/doe.json\", nc=00000001, qop=auth",
        );
        assert_eq!(a.username(), None);
        assert_eq!(a.username_ext(), Some(&b"UTF-8''J%C3%A4s%C3%B8n%20Doe"[..]));
        // RFC 7616 §3.4: username and username* together are an error.
        assert_eq!(
            cred_err("Digest username=\"a\", username*=UTF-8''a"),
            ParseError::InvalidAuth
        );
    }

    #[test]
    fn nonce_count_is_eight_hex_digits() {
        assert_eq!(creds("Digest nc=0000000a").nc(), Some(10));
        assert_eq!(creds("Digest nc=FFFFFFFF").nc(), Some(u32::MAX));
        for bad in ["1", "000000001", "0000000g", "\"00000001\"", "-0000001"] {
            let s = format!("Digest nc={bad}");
            assert_eq!(cred_err(&s), ParseError::InvalidAuth, "{bad}");
        }
    }

    #[test]
    fn challenge_domain_and_stale() {
        let c = chal(
            "Digest realm=\"r\", domain=\"sip:ss1.example.com  sip:ss2.example.com\", \
nonce=\"n\", stale=TRUE, algorithm=MD5",
        );
        let d: Vec<_> = c.domain().unwrap().collect();
        assert_eq!(d, vec![&b"sip:ss1.example.com"[..], b"sip:ss2.example.com"]);
        assert!(c.stale());
        assert!(!chal("Digest stale=false").stale());
        // RFC 7616 §3.3: anything other than true is false.
        assert!(!chal("Digest stale=maybe").stale());
        assert!(c.qop_options().is_none());
        assert!(!c.offers_qop(b"auth"));
    }

    #[test]
    fn scheme_is_case_insensitive_and_lws_is_flexible() {
        let c = creds("dIgEsT   username = \"bob\" ,realm=\"x\"\t,\r\n nc = 00000002");
        assert!(c.is_digest());
        assert_eq!(c.scheme(), b"dIgEsT");
        assert_eq!(c.username(), Some(&b"bob"[..]));
        assert_eq!(c.realm(), Some(&b"x"[..]));
        assert_eq!(c.nc(), Some(2));
    }

    #[test]
    fn quoted_values_keep_escapes_and_commas() {
        let c = creds(r#"Digest username="J\"D, oe", realm="a,b""#);
        assert_eq!(c.username(), Some(&br#"J\"D, oe"#[..]));
        assert_eq!(c.realm(), Some(&b"a,b"[..]));
        assert_eq!(c.params().count(), 2);
        assert_eq!(
            crate::sip::text::unescape_quoted(c.username().unwrap()),
            b"J\"D, oe"
        );
    }

    #[test]
    fn other_schemes() {
        // RFC 8898 Bearer with a token68.
        let c = creds("Bearer mF_9.B5f-4.1JqM==");
        assert!(!c.is_digest());
        assert_eq!(c.token68(), Some(&b"mF_9.B5f-4.1JqM=="[..]));
        assert_eq!(c.params().count(), 0);
        let c = chal("Bearer realm=\"atlanta.example.com\", scope=\"abc\"");
        assert_eq!(c.token68(), None);
        assert_eq!(c.realm(), Some(&b"atlanta.example.com"[..]));
        assert_eq!(c.param("scope").unwrap().unquoted(), b"abc");
        // Digest has no token68 form.
        assert_eq!(cred_err("Digest abc"), ParseError::InvalidAuth);
    }

    #[test]
    fn malformed_auth_values() {
        for bad in [
            "",
            "Digest",
            "Digest ",
            "Digest,realm=\"a\"",
            "\"Digest\" realm=\"a\"",
            "Digest realm",
            "Digest realm=",
            "Digest =\"a\"",
            "Digest realm=\"a\",",
            "Digest realm=\"a\",,nonce=\"b\"",
            "Digest realm=\"a\" nonce=\"b\"",
            "Digest realm=\"unterminated",
            "Digest realm=\"a\"x",
            "Digest realm=a b",
            "Digest realm=sip:host",
            "Digest realm=\"a\", REALM=\"b\"",
            "Digest realm=\"a\u{1}\"",
            "Digest userhash=yes",
            "Basic a=b c",
        ] {
            assert_eq!(
                Credentials::parse(bad.as_bytes()).unwrap_err(),
                ParseError::InvalidAuth,
                "{bad:?}"
            );
        }
        assert_eq!(
            Challenge::parse(b"Digest realm=\"a\", realm=\"a\"").unwrap_err(),
            ParseError::InvalidAuth
        );
    }

    #[test]
    fn remembered_parameters_match_a_scan_of_the_list() {
        let v = br#"Digest USERNAME="bob", Realm="biloxi.com", nonce="dcd98b", uri="sip:bob@biloxi.com", qop=auth, NC=00000001, cnonce="0a4f113b", response="6629fae4", opaque="5ccc069c", algorithm=MD5, x-extra="1""#;
        let c = Credentials::parse(v).unwrap();
        for name in KNOWN.iter().copied().chain([&b"x-extra"[..], b"missing"]) {
            let name = std::str::from_utf8(name).unwrap();
            let scanned = c
                .params()
                .find(|p| p.name.eq_ignore_ascii_case(name.as_bytes()));
            assert_eq!(c.param(name), scanned, "{name}");
        }
        assert_eq!(c.username(), Some(&b"bob"[..]));
        assert_eq!(c.nc(), Some(1));
        assert_eq!(c.realm(), Some(&b"biloxi.com"[..]));
        assert!(!c.userhash());
    }

    #[test]
    fn parameter_count_is_capped() {
        let ok: Vec<String> = (0..MAX_AUTH_PARAMS).map(|i| format!("p{i}=v")).collect();
        let s = format!("Digest {}", ok.join(", "));
        assert_eq!(creds(&s).params().count(), MAX_AUTH_PARAMS);
        let s = format!("{s}, extra=v");
        assert_eq!(cred_err(&s), ParseError::InvalidAuth);
    }

    #[test]
    fn message_auth_iterators() {
        let msg = format!(
            "REGISTER sip:example.com SIP/2.0\r\nAuthorization: {RFC2617_CREDENTIALS}\r\n\
Authorization: Digest username=\"b\", nc=zz\r\n\
Proxy-Authorization: Digest username=\"p\", realm=\"proxy\"\r\n\
Content-Length: 0\r\n\r\n"
        );
        let m = Message::parse(msg.as_bytes()).unwrap();
        let a: Vec<_> = m.authorizations().collect();
        assert_eq!(a.len(), 2);
        assert_eq!(a[0].as_ref().unwrap().username(), Some(&b"Mufasa"[..]));
        assert_eq!(a[1].as_ref().unwrap_err(), &ParseError::InvalidAuth);
        let p: Vec<_> = m.proxy_authorizations().collect();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].as_ref().unwrap().realm(), Some(&b"proxy"[..]));

        let resp = format!(
            "SIP/2.0 401 Unauthorized\r\nWWW-Authenticate: {RFC2617_CHALLENGE}\r\n\
Proxy-Authenticate: Digest realm=\"p\", nonce=\"n\", qop=\"auth\"\r\nContent-Length: 0\r\n\r\n"
        );
        let m = Message::parse(resp.as_bytes()).unwrap();
        let w: Vec<_> = m.www_authenticates().collect();
        assert_eq!(w.len(), 1);
        assert_eq!(
            w[0].as_ref().unwrap().realm(),
            Some(&b"testrealm@host.com"[..])
        );
        let pa = m.proxy_authenticates().next().unwrap().unwrap();
        assert!(pa.offers_qop(b"auth"));
        assert_eq!(m.authorizations().count(), 0);
    }
}
