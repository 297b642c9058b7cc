//! Character classes and small byte-slice helpers of the RFC 3261 §25.1 grammar.
//!
//! Header values are kept exactly as received, so a folded value (RFC 3261 §7.3.1)
//! still holds its `CRLF SP` bytes. Every decoder therefore treats CR and LF as
//! linear white space wherever the grammar allows `LWS`/`SWS`; that is what
//! [`is_lws`] and [`trim`] do.

/// `SP`, `HTAB`, and the CR/LF of a folded line.
#[inline]
pub fn is_lws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// RFC 3261 §25.1 `token` characters, one flag per byte value: the header-name scan
/// of every line calls [`is_token`] per byte, and one load beats the range compares.
static TOKEN: [bool; 256] = {
    let mut table = [false; 256];
    let mut i = 0;
    while i < table.len() {
        let b = i as u8;
        table[i] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
            );
        i += 1;
    }
    table
};

/// RFC 3261 §25.1 `token` characters.
#[inline(always)]
pub fn is_token(b: u8) -> bool {
    TOKEN[usize::from(b)]
}

/// True when `s` is a non-empty run of token characters.
#[inline]
pub fn is_token_str(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| is_token(b))
}

/// The number of leading bytes of `s` that `class` admits.
///
/// Four bytes a round, their verdicts combined without branching, then byte by
/// byte from the round that failed: the scans over URIs, tokens and parameter
/// values run through here.
#[inline(always)]
pub fn count_while(s: &[u8], class: impl Fn(u8) -> bool) -> usize {
    let mut n = 0;
    for quad in s.chunks_exact(4) {
        if let [a, b, c, d] = *quad {
            if !(class(a) & class(b) & class(c) & class(d)) {
                break;
            }
        }
        n += 4;
    }
    let tail = s.get(n..).unwrap_or_default();
    n + tail.iter().position(|&b| !class(b)).unwrap_or(tail.len())
}

/// Strips linear white space (including folding CR/LF) from both ends.
#[inline]
pub fn trim(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if is_lws(*first) {
            s = rest;
        } else {
            break;
        }
    }
    while let [rest @ .., last] = s {
        if is_lws(*last) {
            s = rest;
        } else {
            break;
        }
    }
    s
}

/// Strips linear white space from the start.
#[inline]
pub fn trim_start(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|&&b| is_lws(b)).count();
    &s[n..]
}

/// Strips linear white space from the end.
#[inline]
pub fn trim_end(s: &[u8]) -> &[u8] {
    let n = s.iter().rev().take_while(|&&b| is_lws(b)).count();
    &s[..s.len() - n]
}

/// ASCII case-insensitive equality.
///
/// Eight bytes at a time: host names and other long values (a registrar compares
/// the domain of every REGISTER with its own) cost a quarter of the byte-by-byte
/// comparison.
#[inline]
pub fn eq_ic(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let (mut a8, mut b8) = (a.chunks_exact(8), b.chunks_exact(8));
    for (x, y) in (&mut a8).zip(&mut b8) {
        if fold_word(word(x)) != fold_word(word(y)) {
            return false;
        }
    }
    a8.remainder().eq_ignore_ascii_case(b8.remainder())
}

/// Eight bytes as a little-endian word (`chunk` is eight bytes long).
#[inline(always)]
fn word(chunk: &[u8]) -> u64 {
    u64::from_le_bytes(<[u8; 8]>::try_from(chunk).unwrap_or_default())
}

/// Each byte of `x` with `A`..=`Z` lowered, as `u8::to_ascii_lowercase` does.
///
/// Per byte, on its low seven bits `h` (so no carry crosses into the next byte):
/// `h + 0x3f` has bit 7 set iff `h >= b'A'`, `h + 0x25` iff `h > b'Z'`; a byte
/// with bit 7 set itself is not ASCII and stays as it is.
#[inline(always)]
fn fold_word(x: u64) -> u64 {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let h = x & LOW7;
    let ge_a = h + 0x3f3f_3f3f_3f3f_3f3f;
    let gt_z = h + 0x2525_2525_2525_2525;
    let upper = ge_a & !gt_z & !x & HIGH;
    x | (upper >> 2)
}

/// Parses a run of ASCII digits into a `u32`; `None` on empty input, any other byte,
/// or overflow.
#[inline]
pub fn parse_u32(s: &[u8]) -> Option<u32> {
    if s.is_empty() || s.len() > 10 {
        return None;
    }
    let mut n: u64 = 0;
    for &b in s {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n * 10 + u64::from(b - b'0');
    }
    u32::try_from(n).ok()
}

/// Parses a port number (`1*DIGIT`, at most 65535).
#[inline]
pub fn parse_port(s: &[u8]) -> Option<u16> {
    parse_u32(s).and_then(|n| u16::try_from(n).ok())
}

/// Finds `needle` in `s` outside double-quoted strings (which honour `\` escapes)
/// and outside `<…>`. This is how comma lists and parameter lists are split without
/// breaking `"Doe, John" <sip:a@b;x=1>` apart.
///
/// Only `needle`, `"` and `<` can change the outcome outside quotes and angles, so
/// the scan jumps between them with `memchr3` instead of stepping through every
/// byte; a quoted string is skipped to its closing quote (or escape) and `<…>` to
/// its `>` the same way. A `"` inside `<…>` is an ordinary byte, and an unclosed
/// quote or angle hides the rest of `s`.
#[inline]
pub fn find_unquoted(s: &[u8], needle: u8) -> Option<usize> {
    // Parameter lists are split at their leading `;`, and are often empty: answer
    // both without a search.
    match s.first() {
        None => return None,
        Some(&b) if b == needle && needle != b'"' => return Some(0),
        Some(_) => {}
    }
    let mut i = 0;
    loop {
        let rest = s.get(i..)?;
        let at = i + memchr::memchr3(needle, b'"', b'<', rest)?;
        match s.get(at) {
            // A quote first, even when it is the needle: it opens a quoted string.
            Some(b'"') => i = quoted_end(s, at + 1)?,
            // `<` opens an angle, unless it is what we look for.
            Some(b'<') if needle != b'<' => {
                let inner = s.get(at + 1..)?;
                i = at + 2 + memchr::memchr(b'>', inner)?;
            }
            _ => return Some(at),
        }
    }
}

/// Index just past the `"` that closes a quoted string whose body starts at
/// `start`; `\` escapes the byte after it. `None` when the string is unclosed.
#[inline]
fn quoted_end(s: &[u8], mut start: usize) -> Option<usize> {
    loop {
        let rest = s.get(start..)?;
        let at = start + memchr::memchr2(b'"', b'\\', rest)?;
        if s.get(at) == Some(&b'"') {
            return Some(at + 1);
        }
        start = at + 2;
    }
}

/// Removes the surrounding double quotes of a `quoted-string`, leaving `\`
/// escapes in place. Returns the input unchanged when it is not quoted.
#[inline]
pub fn unquote(s: &[u8]) -> &[u8] {
    if s.len() >= 2 && s[0] == b'"' && s[s.len() - 1] == b'"' {
        &s[1..s.len() - 1]
    } else {
        s
    }
}

/// Resolves `\` escapes of a quoted-string body (after [`unquote`]).
pub fn unescape_quoted(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'\\' && i + 1 < s.len() {
            i += 1;
        }
        out.push(s[i]);
        i += 1;
    }
    out
}

/// Resolves `%HH` escapes (RFC 3261 §19.1.2, §25.1 `escaped`). `None` when an escape
/// is truncated or not hexadecimal.
pub fn percent_decode(s: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' {
            let hi = hex_val(*s.get(i + 1)?)?;
            let lo = hex_val(*s.get(i + 2)?)?;
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    Some(out)
}

#[inline]
fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Splits a comma-separated header value into its elements, never on a comma inside
/// a quoted string or `<…>` (RFC 3261 §7.3.1). Elements are trimmed; empty ones are
/// skipped.
#[derive(Debug, Clone)]
pub struct CommaList<'a> {
    rest: &'a [u8],
}

impl<'a> CommaList<'a> {
    /// Iterates the elements of `value`.
    pub fn new(value: &'a [u8]) -> Self {
        CommaList { rest: value }
    }
}

impl<'a> Iterator for CommaList<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        loop {
            if self.rest.is_empty() {
                return None;
            }
            let (item, rest) = match find_unquoted(self.rest, b',') {
                Some(i) => (&self.rest[..i], &self.rest[i + 1..]),
                None => (self.rest, &self.rest[self.rest.len()..]),
            };
            self.rest = rest;
            let item = trim(item);
            if !item.is_empty() {
                return Some(item);
            }
        }
    }
}

/// `n` in decimal without leading zeros: the tail of `buf` that holds it. For the
/// numbers written into every message (CSeq, ports, addresses) without `core::fmt`.
pub fn decimal(n: u32, buf: &mut [u8; 10]) -> &[u8] {
    let mut n = n;
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &buf[i..]
}

/// Calls `f` with every string of up to `max_len` bytes over `alphabet`: the
/// exhaustive comparisons of a fast scanner with its plain specification.
#[cfg(test)]
pub(crate) fn for_each_string(alphabet: &[u8], max_len: u32, mut f: impl FnMut(&[u8])) {
    let mut buf = Vec::new();
    for len in 0..=max_len {
        for mut code in 0..alphabet.len().pow(len) {
            buf.clear();
            for _ in 0..len {
                buf.push(alphabet[code % alphabet.len()]);
                code /= alphabet.len();
            }
            f(&buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eq_ic_is_eq_ignore_ascii_case() {
        // Every pair of byte values, at each position of a word and in the tail.
        let base = *b"Example.Test.Org";
        for pos in [0, 3, 7, 8, 12, 15] {
            for x in 0..=255u8 {
                for y in 0..=255u8 {
                    let (mut a, mut b) = (base, base);
                    a[pos] = x;
                    b[pos] = y;
                    assert_eq!(eq_ic(&a, &b), a.eq_ignore_ascii_case(&b), "{pos} {x} {y}");
                }
            }
        }
        for_each_string(b"aZz@[`{\x80\xc1\xe1", 3, |a| {
            for_each_string(b"AzZ@[`{\x80\xc1\xe1", 3, |b| {
                assert_eq!(eq_ic(a, b), a.eq_ignore_ascii_case(b));
            });
        });
        assert!(eq_ic(b"EXAMPLE.test.ORG.", b"example.TEST.org."));
        assert!(!eq_ic(b"example.test", b"example.tesT."));
    }

    #[test]
    fn decimal_is_display() {
        let mut buf = [0; 10];
        for n in [0, 7, 10, 99, 255, 5060, 65535, 1 << 31, u32::MAX] {
            assert_eq!(decimal(n, &mut buf), n.to_string().as_bytes());
        }
    }

    #[test]
    fn comma_list_respects_quotes_and_angles() {
        let v = b"\"Doe, John\" <sip:a@b;x=1,2>;tag=1 , <sip:c@d>,,sip:e@f";
        let items: Vec<&[u8]> = CommaList::new(v).collect();
        assert_eq!(
            items,
            vec![
                &b"\"Doe, John\" <sip:a@b;x=1,2>;tag=1"[..],
                &b"<sip:c@d>"[..],
                &b"sip:e@f"[..]
            ]
        );
    }

    #[test]
    fn comma_list_escaped_quote() {
        let v = br#""a \" , b" <sip:x@y>, sip:z@w"#;
        assert_eq!(CommaList::new(v).count(), 2);
    }

    /// The byte-at-a-time scan `find_unquoted` replaced, kept as its specification.
    fn find_unquoted_stepwise(s: &[u8], needle: u8) -> Option<usize> {
        let mut i = 0;
        let mut in_angle = false;
        while i < s.len() {
            let b = s[i];
            match b {
                b'"' if !in_angle => {
                    i += 1;
                    while i < s.len() && s[i] != b'"' {
                        if s[i] == b'\\' {
                            i += 1;
                        }
                        i += 1;
                    }
                }
                b'<' if needle != b'<' => in_angle = true,
                b'>' if in_angle => in_angle = false,
                _ if b == needle && !in_angle => return Some(i),
                _ => {}
            }
            i += 1;
        }
        None
    }

    /// Every string of up to six bytes over the alphabet that matters (quotes,
    /// escapes, angles, the needles, an ordinary byte), for every needle a caller
    /// uses and the odd ones (`"`, `>`, `\`).
    #[test]
    fn find_unquoted_matches_stepwise_scan() {
        const ALPHABET: &[u8] = b"\"\\<>,;=a";
        let mut buf = Vec::new();
        for len in 0..=6u32 {
            for mut code in 0..ALPHABET.len().pow(len) {
                buf.clear();
                for _ in 0..len {
                    buf.push(ALPHABET[code % ALPHABET.len()]);
                    code /= ALPHABET.len();
                }
                for needle in [b',', b';', b'=', b'<', b'>', b'"', b'\\', b'a'] {
                    assert_eq!(
                        find_unquoted(&buf, needle),
                        find_unquoted_stepwise(&buf, needle),
                        "{:?} needle {:?}",
                        String::from_utf8_lossy(&buf),
                        needle as char
                    );
                }
            }
        }
    }

    #[test]
    fn find_unquoted_cases() {
        assert_eq!(find_unquoted(b"a;b", b';'), Some(1));
        assert_eq!(find_unquoted(b"\"a;b\";c", b';'), Some(5));
        assert_eq!(find_unquoted(br#""a\";b";c"#, b';'), Some(7));
        assert_eq!(find_unquoted(b"<sip:a;b>;c", b';'), Some(9));
        // A quote inside angles is ordinary; an unclosed quote or angle hides the rest.
        assert_eq!(find_unquoted(b"<\">;x", b';'), Some(3));
        assert_eq!(find_unquoted(b"\"a;b", b';'), None);
        assert_eq!(find_unquoted(b"<a;b", b';'), None);
        assert_eq!(find_unquoted(b"\"a\\", b';'), None);
        // Looking for `<` finds the first one outside quotes.
        assert_eq!(find_unquoted(b"\"<\" <x>", b'<'), Some(4));
    }

    #[test]
    fn count_while_stops_at_the_first_rejected_byte() {
        // Every length up to 13 (three rounds of four and a tail), with the first
        // rejected byte at every position, and none.
        for len in 0..=13 {
            for stop in 0..=len {
                let mut s = vec![b'a'; len];
                if stop < len {
                    s[stop] = b' ';
                    // Rejected bytes after the first must not matter.
                    if stop + 2 < len {
                        s[stop + 2] = b' ';
                    }
                }
                assert_eq!(count_while(&s, is_token), stop, "{s:?}");
            }
        }
    }

    #[test]
    fn folded_value_trims() {
        assert_eq!(trim(b" \r\n\tabc \r\n "), b"abc");
    }

    /// The RFC 3261 §25.1 definition, spelled out: `token = 1*(alphanum / "-" / "." /
    /// "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~" )`.
    fn is_token_by_grammar(b: u8) -> bool {
        b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
    }

    #[test]
    fn token_table_matches_grammar_for_every_byte() {
        for b in 0..=u8::MAX {
            assert_eq!(is_token(b), is_token_by_grammar(b), "byte {b:#04x}");
        }
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_u32(b"4294967295"), Some(u32::MAX));
        assert_eq!(parse_u32(b"4294967296"), None);
        assert_eq!(parse_u32(b""), None);
        assert_eq!(parse_port(b"65536"), None);
        assert_eq!(percent_decode(b"a%20b%2"), None);
        assert_eq!(percent_decode(b"a%20b").as_deref(), Some(&b"a b"[..]));
    }
}
