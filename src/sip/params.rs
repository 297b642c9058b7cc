//! `;name=value` parameter lists: `generic-param` of headers (RFC 3261 §25.1, with
//! LWS allowed around `;` and `=`) and `uri-parameters` of SIP URIs (§19.1.1).

use super::error::ParseError;
use super::text::{count_while, eq_ic, find_unquoted, is_lws, is_token, is_token_str, trim};

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
        let mut items = *self;
        while let Some(item) = items.next_item() {
            item.check()?;
        }
        Ok(())
    }

    /// Splits the next `;`-separated item off the list, empty items included (as
    /// `param: None`): [`Params::validate`] rejects those, iteration skips them.
    ///
    /// One pass does the work of a `;` search, an `=` search and the trims: a
    /// name of token characters and a value of token characters or `:` (nearly
    /// every parameter on the wire) are split while being scanned, and such an
    /// item is known to be valid `generic-param` text once its name and value are
    /// non-empty. Anything else (a quoted string, `<`, other characters) falls back
    /// to [`find_unquoted`], resuming where the scan stopped: no quote or angle has
    /// been seen before that point, so the result is the same as a search from the
    /// start of the item.
    #[inline(always)]
    pub(crate) fn next_item(&mut self) -> Option<Item<'a>> {
        let body = match self.rest {
            [] => return None,
            [b';', body @ ..] => body,
            body => body,
        };
        let p0 = skip(body, 0, is_lws);
        let name_end = skip(body, p0, is_token);
        let p1 = skip(body, name_end, is_lws);
        let name = body.get(p0..name_end).unwrap_or_default();
        let (item, end) = match body.get(p1) {
            None | Some(b';') => (
                Item {
                    param: (!name.is_empty()).then_some(Param { name, value: None }),
                    plain: true,
                    token_value: false,
                },
                p1,
            ),
            Some(b'=') => {
                let v0 = skip(body, p1 + 1, is_lws);
                // Token bytes, then (rarely) more with `:` among them: a value
                // found to be a token needs no second look (a Via branch).
                let v_token = skip_run(body, v0, is_token);
                let v_end = match body.get(v_token) {
                    Some(b':') => skip(body, v_token, is_plain_value),
                    _ => v_token,
                };
                let v1 = skip(body, v_end, is_lws);
                if matches!(body.get(v1), None | Some(b';')) {
                    // An empty value is the empty slice just past the `=`, where
                    // trimming the item leaves it (offsets are taken of values).
                    let value = if v0 == v_end {
                        body.get(p1 + 1..p1 + 1)
                    } else {
                        body.get(v0..v_end)
                    };
                    let value = value.unwrap_or_default();
                    (
                        Item {
                            param: Some(Param {
                                name,
                                value: Some(value),
                            }),
                            plain: true,
                            token_value: v0 < v_end && v_end == v_token,
                        },
                        v1,
                    )
                } else {
                    let end = find_end(body, v_end);
                    let value = trim(body.get(p1 + 1..end).unwrap_or_default());
                    (
                        Item {
                            param: Some(Param {
                                name,
                                value: Some(value),
                            }),
                            plain: false,
                            token_value: false,
                        },
                        end,
                    )
                }
            }
            Some(_) => {
                let end = find_end(body, p1);
                (
                    Item {
                        param: split_param(body.get(..end).unwrap_or_default()),
                        plain: false,
                        token_value: false,
                    },
                    end,
                )
            }
        };
        self.rest = body.get(end..).unwrap_or_default();
        Some(item)
    }
}

/// One item of a parameter list, as split by [`Params::next_item`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Item<'a> {
    /// The parameter; `None` for an empty item (`;;`).
    pub param: Option<Param<'a>>,
    /// The name is all token characters and the value, if any, all token
    /// characters or `:`: valid `generic-param` text once both are non-empty.
    pub plain: bool,
    /// The value is known to be a non-empty token (false: not known).
    pub token_value: bool,
}

impl<'a> Item<'a> {
    /// The parameter, when it is a valid `generic-param`.
    #[inline]
    pub(crate) fn check(&self) -> Result<Param<'a>, ParseError> {
        let p = self.param.ok_or(ParseError::InvalidParam)?;
        let valid = if self.plain {
            !p.name.is_empty() && p.value != Some(b"")
        } else {
            is_token_str(p.name) && p.value.map_or(true, valid_gen_value)
        };
        if valid {
            Ok(p)
        } else {
            Err(ParseError::InvalidParam)
        }
    }
}

/// The index of the first byte at or after `i` that `class` rejects.
#[inline(always)]
fn skip(s: &[u8], mut i: usize, class: impl Fn(u8) -> bool) -> usize {
    while let Some(&b) = s.get(i) {
        if !class(b) {
            break;
        }
        i += 1;
    }
    i
}

/// Like [`skip`], for the longer runs (names, values).
#[inline(always)]
fn skip_run(s: &[u8], i: usize, class: impl Fn(u8) -> bool) -> usize {
    i + count_while(s.get(i..).unwrap_or_default(), class)
}

/// `token` characters and `:`: a value made of these alone is valid `gen-value`.
#[inline(always)]
fn is_plain_value(b: u8) -> bool {
    is_token(b) || b == b':'
}

/// The end of the item that starts `body` (its first `;` outside quotes and
/// angles, or the end), searched from `from`, before which neither occurs.
#[inline]
fn find_end(body: &[u8], from: usize) -> usize {
    let rest = body.get(from..).unwrap_or_default();
    from + find_unquoted(rest, b';').unwrap_or(rest.len())
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

    #[inline]
    fn next(&mut self) -> Option<Param<'a>> {
        loop {
            if let Some(p) = self.next_item()?.param {
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

    /// The iteration the one-pass splitter replaced (a `;` search, then an `=`
    /// search in the trimmed item), kept as its specification.
    fn params_by_search(s: &[u8]) -> Vec<Param<'_>> {
        let mut rest = match find_unquoted(s, b';') {
            Some(i) => &s[i..],
            None => &s[s.len()..],
        };
        let mut out = Vec::new();
        while !rest.is_empty() {
            let body = if rest[0] == b';' { &rest[1..] } else { rest };
            let end = find_unquoted(body, b';').unwrap_or(body.len());
            rest = &body[end..];
            out.extend(split_param(&body[..end]));
        }
        out
    }

    /// The validation the one-pass splitter replaced, kept as its specification.
    fn validate_by_search(s: &[u8]) -> Result<(), ParseError> {
        let mut rest = match find_unquoted(s, b';') {
            Some(i) => &s[i..],
            None => &s[s.len()..],
        };
        while !rest.is_empty() {
            let body = &rest[1..];
            let end = find_unquoted(body, b';').unwrap_or(body.len());
            rest = &body[end..];
            let p = split_param(&body[..end]).ok_or(ParseError::InvalidParam)?;
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

    fn assert_same_as_search(s: &[u8]) {
        let text = String::from_utf8_lossy(s);
        let params = Params::new(s);
        let got: Vec<Param<'_>> = params.collect();
        let want = params_by_search(s);
        assert_eq!(got, want, "{text:?}");
        // The same slices of the input, not just equal bytes.
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g.name.as_ptr(), w.name.as_ptr(), "{text:?}");
            assert_eq!(
                g.value.map(<[u8]>::as_ptr),
                w.value.map(<[u8]>::as_ptr),
                "{text:?}"
            );
        }
        assert_eq!(params.validate(), validate_by_search(s), "{text:?}");
        // What an item claims of its value holds.
        let mut items = params;
        while let Some(item) = items.next_item() {
            if item.token_value {
                let value = item.param.and_then(|p| p.value);
                assert!(value.is_some_and(is_token_str), "{text:?}");
            }
        }
    }

    /// Every string of up to five bytes over an alphabet with each byte class the
    /// splitter treats differently (separators, LWS, quote, escape, angles, token,
    /// `:`, another value byte), and of up to seven over a smaller one.
    #[test]
    fn one_pass_split_matches_search() {
        for (alphabet, max_len) in [(&b";= \"\\<>a:/"[..], 5u32), (b";= \"a[", 7)] {
            crate::sip::text::for_each_string(alphabet, max_len, assert_same_as_search);
        }
        for s in [
            &b" ;branch=z9hG4bK776 ; rport ;received = 10.0.0.1;x=\"a;b\""[..],
            b";tag=1\r\n ;expires = 3600 ; q=0.5;+sip.instance=\"<urn:uuid:1>\"",
            b";received=[2001:db8::1];maddr=h;ttl=1;lr;=;a=;;",
            b"SIP/2.0/UDP h;branch=z9;x=<a;b>;y=\"q\\\";z\";w",
        ] {
            assert_same_as_search(s);
        }
    }
}
