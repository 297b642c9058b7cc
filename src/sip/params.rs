//! `;name=value` parameter lists: `generic-param` of headers (RFC 3261 §25.1, with
//! LWS allowed around `;` and `=`) and `uri-parameters` of SIP URIs (§19.1.1).

use super::error::ParseError;
use super::text::{eq_ic, find_unquoted, is_token, trim};

/// One parameter: a name and, unless it is a flag like `lr` or `rport`, a value.
///
/// Values are returned exactly as written: a quoted-string keeps its quotes (see
/// [`super::text::unquote`]) and URI parameters keep their `%HH` escapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Param<'a> {
    pub name: &'a [u8],
    pub value: Option<&'a [u8]>,
}

/// Iterates a parameter list. The input is what follows the element the parameters
/// belong to, starting at (or before) the first `;`; text before the first `;` is
/// ignored.
#[derive(Debug, Clone, Copy)]
pub struct Params<'a> {
    rest: &'a [u8],
}

impl<'a> Params<'a> {
    /// Parameters in `s` (e.g. `;branch=z9hG4bK1;rport`).
    pub fn new(s: &'a [u8]) -> Self {
        let rest = match find_unquoted(s, b';') {
            Some(i) => &s[i..],
            None => &s[s.len()..],
        };
        Params { rest }
    }

    /// The raw text of the list, from its first `;`.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.rest
    }

    /// True when there are no parameters.
    pub fn is_empty(&self) -> bool {
        trim(self.rest).is_empty()
    }

    /// The parameter named `name` (case-insensitive): `Some(None)` for a flag,
    /// `Some(Some(v))` for a valued one, `None` when absent.
    pub fn get(&self, name: &[u8]) -> Option<Option<&'a [u8]>> {
        self.into_iter()
            .find(|p| eq_ic(p.name, name))
            .map(|p| p.value)
    }

    /// The value of `name`, when present with a value.
    pub fn value(&self, name: &[u8]) -> Option<&'a [u8]> {
        self.get(name).flatten()
    }

    /// True when `name` is present, with or without a value.
    pub fn contains(&self, name: &[u8]) -> bool {
        self.get(name).is_some()
    }

    /// Checks the list against the `generic-param` grammar: every name a token, every
    /// value a token, a quoted-string or a bracketed IPv6 reference.
    pub fn validate(&self) -> Result<(), ParseError> {
        let mut s = self.rest;
        while !s.is_empty() {
            // s starts at a ';'
            let body = &s[1..];
            let end = find_unquoted(body, b';').unwrap_or(body.len());
            let item = &body[..end];
            s = &body[end..];
            let p = split_param(item).ok_or(ParseError::InvalidParam)?;
            if p.name.is_empty() || !p.name.iter().all(|&b| is_token(b)) {
                return Err(ParseError::InvalidParam);
            }
            if let Some(v) = p.value {
                if !valid_gen_value(v) {
                    return Err(ParseError::InvalidParam);
                }
            }
        }
        Ok(())
    }
}

fn valid_gen_value(v: &[u8]) -> bool {
    match v {
        [] => false,
        [b'"', inner @ .., b'"'] => !inner.is_empty() || v.len() == 2,
        [b'[', .., b']'] => true,
        _ => v.iter().all(|&b| is_token(b) || b == b':'),
    }
}

fn split_param(item: &[u8]) -> Option<Param<'_>> {
    let item = trim(item);
    if item.is_empty() {
        return None;
    }
    match find_unquoted(item, b'=') {
        Some(eq) => Some(Param {
            name: trim(&item[..eq]),
            value: Some(trim(&item[eq + 1..])),
        }),
        None => Some(Param {
            name: item,
            value: None,
        }),
    }
}

impl<'a> IntoIterator for &Params<'a> {
    type Item = Param<'a>;
    type IntoIter = Params<'a>;
    fn into_iter(self) -> Params<'a> {
        *self
    }
}

impl<'a> Iterator for Params<'a> {
    type Item = Param<'a>;

    fn next(&mut self) -> Option<Param<'a>> {
        loop {
            let s = self.rest;
            if s.is_empty() {
                return None;
            }
            let body = if s[0] == b';' { &s[1..] } else { s };
            let end = find_unquoted(body, b';').unwrap_or(body.len());
            self.rest = &body[end..];
            if let Some(p) = split_param(&body[..end]) {
                return Some(p);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn via_params() {
        let p = Params::new(b" ;branch=z9hG4bK776 ; rport ;received = 10.0.0.1;x=\"a;b\"");
        assert_eq!(p.value(b"BRANCH"), Some(&b"z9hG4bK776"[..]));
        assert_eq!(p.get(b"rport"), Some(None));
        assert_eq!(p.value(b"received"), Some(&b"10.0.0.1"[..]));
        assert_eq!(p.value(b"x"), Some(&b"\"a;b\""[..]));
        assert_eq!(p.get(b"maddr"), None);
        assert_eq!(p.count(), 4);
        assert!(p.validate().is_ok());
    }

    #[test]
    fn invalid_names() {
        assert_eq!(
            Params::new(b";a b=1").validate(),
            Err(ParseError::InvalidParam)
        );
        assert_eq!(
            Params::new(b";=1").validate(),
            Err(ParseError::InvalidParam)
        );
        assert_eq!(
            Params::new(b";a=").validate(),
            Err(ParseError::InvalidParam)
        );
        assert!(Params::new(b";received=[2001:db8::1]").validate().is_ok());
    }
}
