//! Header names: case-insensitive lookup of full and compact forms (RFC 3261 §7.3.3,
//! §20) into a one-byte id, so that the rest of the stack compares integers.

use super::text::is_token_str;

macro_rules! header_names {
    ($( $variant:ident => $canon:literal $(, compact $c:literal)? $(, list $list:literal)? ;)*) => {
        /// A known header name, or [`HeaderName::Other`] for an extension header
        /// (kept raw: its text is in the message).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u8)]
        #[non_exhaustive]
        pub enum HeaderName {
            $( $variant, )*
            /// Any header this parser does not know by name.
            Other,
        }

        impl HeaderName {
            /// Every known name, in id order (`KNOWN[h as usize] == h`).
            const KNOWN: &'static [HeaderName] = &[ $( HeaderName::$variant, )* ];

            /// The canonical (long) spelling.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $( HeaderName::$variant => $canon, )*
                    HeaderName::Other => "",
                }
            }

            /// True when the header's grammar is a comma-separated list, so that
            /// one line may carry several values (RFC 3261 §7.3.1).
            pub fn is_list(self) -> bool {
                match self {
                    $( HeaderName::$variant => false $( || $list )?, )*
                    HeaderName::Other => false,
                }
            }

            fn from_compact(c: u8) -> HeaderName {
                match c.to_ascii_lowercase() {
                    $( $( $c => HeaderName::$variant, )? )*
                    _ => HeaderName::Other,
                }
            }

        }
    };
}

header_names! {
    Via => "Via", compact b'v', list true;
    From => "From", compact b'f';
    To => "To", compact b't';
    CallId => "Call-ID", compact b'i';
    CSeq => "CSeq";
    Contact => "Contact", compact b'm', list true;
    MaxForwards => "Max-Forwards";
    Route => "Route", list true;
    RecordRoute => "Record-Route", list true;
    ContentLength => "Content-Length", compact b'l';
    ContentType => "Content-Type", compact b'c';
    ContentEncoding => "Content-Encoding", compact b'e', list true;
    Expires => "Expires";
    MinExpires => "Min-Expires";
    Require => "Require", list true;
    ProxyRequire => "Proxy-Require", list true;
    Supported => "Supported", compact b'k', list true;
    Unsupported => "Unsupported", list true;
    Allow => "Allow", list true;
    Accept => "Accept", list true;
    AcceptEncoding => "Accept-Encoding", list true;
    AcceptLanguage => "Accept-Language", list true;
    Authorization => "Authorization";
    ProxyAuthorization => "Proxy-Authorization";
    WwwAuthenticate => "WWW-Authenticate";
    ProxyAuthenticate => "Proxy-Authenticate";
    AuthenticationInfo => "Authentication-Info";
    Path => "Path", list true;
    ServiceRoute => "Service-Route", list true;
    Event => "Event", compact b'o';
    AllowEvents => "Allow-Events", compact b'u', list true;
    SubscriptionState => "Subscription-State";
    Subject => "Subject", compact b's';
    ReferTo => "Refer-To", compact b'r';
    ReferredBy => "Referred-By", compact b'b';
    SessionExpires => "Session-Expires", compact b'x';
    MinSe => "Min-SE";
    Identity => "Identity", compact b'y';
    IdentityInfo => "Identity-Info", compact b'n';
    AcceptContact => "Accept-Contact", compact b'a', list true;
    RejectContact => "Reject-Contact", compact b'j', list true;
    RequestDisposition => "Request-Disposition", compact b'd', list true;
    Date => "Date";
    Timestamp => "Timestamp";
    UserAgent => "User-Agent";
    Server => "Server";
    Organization => "Organization";
    Priority => "Priority";
    Warning => "Warning", list true;
    RetryAfter => "Retry-After";
    ReplyTo => "Reply-To";
    InReplyTo => "In-Reply-To", list true;
    MimeVersion => "MIME-Version";
    ErrorInfo => "Error-Info", list true;
    AlertInfo => "Alert-Info", list true;
    CallInfo => "Call-Info", list true;
    ContentDisposition => "Content-Disposition";
    ContentLanguage => "Content-Language", list true;
    RSeq => "RSeq";
    RAck => "RAck";
    SipEtag => "SIP-ETag";
    SipIfMatch => "SIP-If-Match";
}

impl HeaderName {
    /// Looks up a header name as received (any case, full or compact form).
    #[inline]
    pub fn from_bytes(name: &[u8]) -> HeaderName {
        // Every known name is a token, so a name with any other byte is unknown; the
        // token check is also what makes the folded compare of `from_token` exact.
        if is_token_str(name) {
            HeaderName::from_token(name)
        } else {
            HeaderName::Other
        }
    }

    /// [`HeaderName::from_bytes`] for a name already known to be a non-empty run of
    /// token bytes (RFC 3261 §25.1), as the message scan has checked every header
    /// name: one hash, one table load and one compare of three words.
    #[inline(always)]
    pub(crate) fn from_token(name: &[u8]) -> HeaderName {
        debug_assert!(is_token_str(name));
        if let [c] = name {
            return HeaderName::from_compact(*c);
        }
        let Some(key) = Key::of(name) else {
            return HeaderName::Other;
        };
        let id = usize::from(LONG_TABLE[key.slot()]);
        match (HeaderName::KNOWN.get(id), LONG_KEYS.get(id)) {
            (Some(&h), Some(known)) if *known == key => h,
            _ => HeaderName::Other,
        }
    }
}

/// Long-form names longer than this are not looked up (none is known): up to this
/// length, three overlapping 8-byte chunks cover a name.
const MAX_LONG: usize = 24;

/// A long-form name (2 to [`MAX_LONG`] bytes) as three overlapping little-endian
/// chunks — at the start, the middle and the end — of 8 bytes (4 or 2 for shorter
/// names), each byte ORed with 0x20. Together the chunks cover every byte, so two
/// names of the same length have equal keys exactly when they are equal after the
/// fold. For token bytes the fold is ASCII case folding and nothing more: the only
/// token bytes that differ in bit 5 alone are upper/lower-case letter pairs (`_`
/// 0x5F would meet DEL, `` ` `` 0x60 `@`, `~` 0x7E `^`, `-` 0x2D CR — none of them a
/// token), hence the token precondition of [`HeaderName::from_token`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Key {
    len: usize,
    words: [u64; 3],
}

/// ORs 0x20 into every byte: ASCII upper case to lower case, for token bytes.
const FOLD: u64 = 0x2020_2020_2020_2020;

/// Multiplier of the slot hash, chosen so that no two known names share a slot of
/// [`LONG_TABLE`]; building the table fails to compile when a new name collides,
/// and then another odd constant has to be picked.
const HASH_MUL: u64 = 0x2e1d_50b2_0ec6_803f;

impl Key {
    /// The key of `name`, or `None` when its length is outside 2..=[`MAX_LONG`].
    /// `const` so that the table of known names is built by the compiler with the
    /// very code that looks names up.
    #[inline(always)]
    const fn of(name: &[u8]) -> Option<Key> {
        // One arm per chunk size, so that each chunk is one load.
        match name.len() {
            2..=3 => Some(Key::with::<2>(name)),
            4..=7 => Some(Key::with::<4>(name)),
            8..=MAX_LONG => Some(Key::with::<8>(name)),
            _ => None,
        }
    }

    /// The key from chunks of `C` bytes; `C <= name.len()`.
    #[inline(always)]
    const fn with<const C: usize>(name: &[u8]) -> Key {
        let len = name.len();
        Key {
            len,
            words: [
                chunk::<C>(name, 0),
                chunk::<C>(name, (len - C) / 2),
                chunk::<C>(name, len - C),
            ],
        }
    }

    /// The slot in [`LONG_TABLE`]: the first and last chunk and the length mixed by
    /// one multiplication, top byte taken.
    #[inline(always)]
    const fn slot(&self) -> usize {
        let mixed = self.words[0] ^ self.words[2].rotate_left(1) ^ self.len as u64;
        (mixed.wrapping_mul(HASH_MUL) >> 56) as usize
    }
}

/// `C` (at most 8) bytes of `s` from `at`, little-endian, zero-extended, folded; 0
/// when `s` is too short (never, for the callers above).
#[inline(always)]
const fn chunk<const C: usize>(s: &[u8], at: usize) -> u64 {
    let Some((_, tail)) = s.split_at_checked(at) else {
        return 0;
    };
    let Some(bytes) = tail.first_chunk::<C>() else {
        return 0;
    };
    let mut word = 0;
    let mut i = 0;
    while i < C {
        word |= (bytes[i] as u64) << (8 * i);
        i += 1;
    }
    word | FOLD
}

/// The key of every known long-form name, by id (compact-only ids have none).
const LONG_KEYS: [Key; HeaderName::KNOWN.len()] = {
    let mut keys = [Key {
        len: 0,
        words: [0; 3],
    }; HeaderName::KNOWN.len()];
    let mut i = 0;
    while i < keys.len() {
        match Key::of(HeaderName::KNOWN[i].as_str().as_bytes()) {
            Some(key) => keys[i] = key,
            None => panic!("a known header name is not 2..=MAX_LONG bytes long"),
        }
        i += 1;
    }
    keys
};

/// Slot → id of the one known long-form name hashing there; `Other` marks a free
/// slot (whose key never matches, as `Other` has none in [`LONG_KEYS`]).
static LONG_TABLE: [u8; 256] = {
    let mut table = [HeaderName::Other as u8; 256];
    let mut i = 0;
    while i < LONG_KEYS.len() {
        let slot = LONG_KEYS[i].slot();
        if table[slot] != HeaderName::Other as u8 {
            panic!("two known header names share a LONG_TABLE slot: change HASH_MUL");
        }
        table[slot] = i as u8;
        i += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::text::is_token;

    #[test]
    fn compact_forms() {
        // RFC 3261 §7.3.3 and the compact forms registered since.
        for (c, h) in [
            ("v", HeaderName::Via),
            ("F", HeaderName::From),
            ("t", HeaderName::To),
            ("i", HeaderName::CallId),
            ("m", HeaderName::Contact),
            ("l", HeaderName::ContentLength),
            ("c", HeaderName::ContentType),
            ("k", HeaderName::Supported),
            ("s", HeaderName::Subject),
            ("e", HeaderName::ContentEncoding),
            ("o", HeaderName::Event),
            ("u", HeaderName::AllowEvents),
            ("r", HeaderName::ReferTo),
            ("b", HeaderName::ReferredBy),
            ("x", HeaderName::SessionExpires),
            ("y", HeaderName::Identity),
            ("q", HeaderName::Other),
        ] {
            assert_eq!(HeaderName::from_bytes(c.as_bytes()), h, "{c}");
        }
    }

    /// The lookup by definition: a compact form, or the canonical spelling compared
    /// ASCII case-insensitively with every known name in turn.
    fn by_definition(name: &[u8]) -> HeaderName {
        if let [c] = name {
            return HeaderName::from_compact(*c);
        }
        HeaderName::KNOWN
            .iter()
            .copied()
            .find(|h| h.as_str().as_bytes().eq_ignore_ascii_case(name))
            .unwrap_or(HeaderName::Other)
    }

    /// Spellings of `name` to look up: canonical, lower, upper, alternating case.
    fn spellings(name: &str) -> Vec<Vec<u8>> {
        let alternating = name
            .bytes()
            .enumerate()
            .map(|(i, b)| {
                if i % 2 == 0 {
                    b.to_ascii_uppercase()
                } else {
                    b.to_ascii_lowercase()
                }
            })
            .collect();
        vec![
            name.as_bytes().to_vec(),
            name.to_ascii_lowercase().into_bytes(),
            name.to_ascii_uppercase().into_bytes(),
            alternating,
        ]
    }

    #[test]
    fn hashed_lookup_agrees_with_definition() {
        let mut checked = 0;
        for &h in HeaderName::KNOWN {
            for name in spellings(h.as_str()) {
                assert_eq!(HeaderName::from_bytes(&name), h, "{name:?}");
                assert_eq!(HeaderName::from_token(&name), h, "{name:?}");
                // Near misses: every byte replaced by another token byte, one byte
                // dropped, one added. Each must be found exactly when it happens to
                // spell a known name.
                let mut near = Vec::new();
                for i in 0..name.len() {
                    for b in [b'-', b'x', b'0', b'~', b'_'] {
                        let mut n = name.clone();
                        n[i] = b;
                        near.push(n);
                    }
                    let mut n = name.clone();
                    n.remove(i);
                    near.push(n);
                }
                near.push([&name[..], b"s"].concat());
                near.push([b"X-", &name[..]].concat());
                for n in near {
                    assert_eq!(HeaderName::from_token(&n), by_definition(&n), "{n:?}");
                    checked += 1;
                }
            }
        }
        assert!(checked > 10_000);
    }

    #[test]
    fn exact_for_any_bytes() {
        // The folded compare would take CR (0x0D) for '-' (0x2D) and '@' for '`':
        // from_bytes refuses non-token names before it.
        for name in [
            &b"Call\rID"[..],
            b"Call-ID\0",
            b"Content\x0dType",
            b"C\x13eq",
            b"C\x13EQ",
            b"Via ",
            b" Via",
            b"",
            b":",
            b"\xff\xff",
        ] {
            assert_eq!(
                HeaderName::from_bytes(name),
                by_definition(name),
                "{name:?}"
            );
            assert_eq!(HeaderName::from_bytes(name), HeaderName::Other, "{name:?}");
        }
        assert_eq!(
            HeaderName::from_bytes(b"X-Very-Long-Extension-Header-Name"),
            HeaderName::Other
        );
    }

    #[test]
    fn fold_is_case_folding_on_tokens() {
        // Why Key's `| 0x20` is exact for tokens: two token bytes agree after the
        // fold only when they are the same letter in either case.
        for a in (0..=u8::MAX).filter(|&b| is_token(b)) {
            for b in (0..=u8::MAX).filter(|&b| is_token(b)) {
                assert_eq!(
                    a | 0x20 == b | 0x20,
                    a.eq_ignore_ascii_case(&b),
                    "{a:#x} {b:#x}"
                );
            }
        }
    }

    #[test]
    fn long_forms_any_case() {
        assert_eq!(HeaderName::from_bytes(b"cAlL-iD"), HeaderName::CallId);
        assert_eq!(HeaderName::from_bytes(b"CSEQ"), HeaderName::CSeq);
        assert_eq!(
            HeaderName::from_bytes(b"Record-route"),
            HeaderName::RecordRoute
        );
        assert_eq!(HeaderName::from_bytes(b"X-Custom"), HeaderName::Other);
        assert!(HeaderName::Via.is_list());
        assert!(!HeaderName::CSeq.is_list());
        assert_eq!(HeaderName::CallId.as_str(), "Call-ID");
    }
}
