//! The digest computation of RFC 7616 §3.4.1–3.4.3 (RFC 2617 §3.2.2), as SIP uses
//! it (RFC 3261 §22.4): `qop=auth` and the RFC 2069 form without `qop`, with MD5,
//! SHA-256 and their `-sess` variants.
//!
//! ```text
//! HA1      = H(username ":" realm ":" password)
//! HA1-sess = H(HA1 ":" nonce ":" cnonce)                    ; "-sess" algorithms
//! HA2      = H(method ":" digest-uri)                       ; qop=auth or no qop
//! response = H(HA1 ":" nonce ":" nc ":" cnonce ":" qop ":" HA2)   ; qop=auth
//! response = H(HA1 ":" nonce ":" HA2)                       ; no qop (RFC 2069)
//! ```
//!
//! Every hash is written as lowercase hex (RFC 7616 §3.4.1 `LHEX`) into a
//! [`HexDigest`] on the stack; nothing here allocates.

use md5::Md5;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::sip::text::eq_ic;

/// The hash function under a digest algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Hash {
    /// MD5 (RFC 1321): 32 hex digits.
    Md5,
    /// SHA-256 (FIPS 180-4): 64 hex digits.
    Sha256,
}

impl Hash {
    /// Length of this hash written as hex.
    pub const fn hex_len(self) -> usize {
        match self {
            Hash::Md5 => 32,
            Hash::Sha256 => 64,
        }
    }

    /// The hash whose hex form is `len` digits long.
    pub const fn from_hex_len(len: usize) -> Option<Hash> {
        match len {
            32 => Some(Hash::Md5),
            64 => Some(Hash::Sha256),
            _ => None,
        }
    }

    /// `H(part0 ":" part1 ":" …)`, in lowercase hex. Parts are fed to the hash one
    /// by one, so nothing is concatenated in memory.
    pub fn hash_joined(self, parts: &[&[u8]]) -> HexDigest {
        match self {
            Hash::Md5 => hex_of(feed::<Md5>(parts).as_slice()),
            Hash::Sha256 => hex_of(feed::<Sha256>(parts).as_slice()),
        }
    }
}

fn feed<D: sha2::Digest>(parts: &[&[u8]]) -> sha2::digest::Output<D> {
    let mut d = D::new();
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            d.update(b":");
        }
        d.update(p);
    }
    d.finalize()
}

/// A digest algorithm (RFC 7616 §3.3 `algorithm`; §6.1 registry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Algorithm {
    /// The hash function.
    pub hash: Hash,
    /// A `-sess` variant: HA1 is re-hashed with the nonce and cnonce.
    pub session: bool,
}

impl Algorithm {
    /// `MD5`, the default when `algorithm` is absent (RFC 7616 §3.3).
    pub const MD5: Algorithm = Algorithm {
        hash: Hash::Md5,
        session: false,
    };
    /// `MD5-sess`.
    pub const MD5_SESS: Algorithm = Algorithm {
        hash: Hash::Md5,
        session: true,
    };
    /// `SHA-256` (RFC 7616, and for SIP RFC 8760).
    pub const SHA256: Algorithm = Algorithm {
        hash: Hash::Sha256,
        session: false,
    };
    /// `SHA-256-sess`.
    pub const SHA256_SESS: Algorithm = Algorithm {
        hash: Hash::Sha256,
        session: true,
    };

    /// The algorithm named by a credentials' `algorithm` parameter, matched
    /// case-insensitively; an absent parameter means MD5 (RFC 7616 §3.3). `None`
    /// for an algorithm this module does not implement (e.g. `SHA-512-256`).
    pub fn from_param(value: Option<&[u8]>) -> Option<Algorithm> {
        let Some(v) = value else {
            return Some(Algorithm::MD5);
        };
        [
            Algorithm::MD5,
            Algorithm::SHA256,
            Algorithm::MD5_SESS,
            Algorithm::SHA256_SESS,
        ]
        .into_iter()
        .find(|a| eq_ic(a.name().as_bytes(), v))
    }

    /// The token written in `algorithm=` (RFC 7616 §6.1).
    pub const fn name(self) -> &'static str {
        match (self.hash, self.session) {
            (Hash::Md5, false) => "MD5",
            (Hash::Md5, true) => "MD5-sess",
            (Hash::Sha256, false) => "SHA-256",
            (Hash::Sha256, true) => "SHA-256-sess",
        }
    }
}

/// The largest hex digest this module produces (SHA-256).
pub const MAX_HEX_LEN: usize = 64;

/// A hash in lowercase hex, on the stack.
#[derive(Clone, Copy)]
pub struct HexDigest {
    buf: [u8; MAX_HEX_LEN],
    len: u8,
}

impl HexDigest {
    /// The hex digits.
    pub fn as_bytes(&self) -> &[u8] {
        self.buf.get(..usize::from(self.len)).unwrap_or_default()
    }

    /// A hex digest from its text (at most [`MAX_HEX_LEN`] characters), e.g. a
    /// stored HA1; `None` when longer.
    pub fn from_hex(hex: &[u8]) -> Option<HexDigest> {
        let mut out = HexDigest {
            buf: [0; MAX_HEX_LEN],
            len: u8::try_from(hex.len()).ok()?,
        };
        out.buf.get_mut(..hex.len())?.copy_from_slice(hex);
        Some(out)
    }

    /// The hex digits as text.
    pub fn as_str(&self) -> &str {
        // Only ASCII hex digits are ever written.
        std::str::from_utf8(self.as_bytes()).unwrap_or_default()
    }

    /// Compares with `received` (a client's `response`) in time independent of
    /// where they differ; hex case is ignored, since some clients send uppercase
    /// although RFC 7616 §3.4.1 asks for `LHEX`.
    pub fn matches(&self, received: &[u8]) -> bool {
        if received.len() != usize::from(self.len) {
            return false;
        }
        let mut lower = [0u8; MAX_HEX_LEN];
        for (l, &b) in lower.iter_mut().zip(received) {
            *l = b.to_ascii_lowercase();
        }
        let lower = lower.get(..received.len()).unwrap_or_default();
        bool::from(self.as_bytes().ct_eq(lower))
    }
}

impl std::fmt::Debug for HexDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<[u8]> for HexDigest {
    fn eq(&self, other: &[u8]) -> bool {
        self.as_bytes() == other
    }
}

impl PartialEq<&str> for HexDigest {
    fn eq(&self, other: &&str) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Lowercase hex of `bytes` (at most 32 bytes).
fn hex_of(bytes: &[u8]) -> HexDigest {
    let mut out = HexDigest {
        buf: [0; MAX_HEX_LEN],
        len: 0,
    };
    for (pair, &b) in out.buf.chunks_exact_mut(2).zip(bytes) {
        pair[0] = HEX[usize::from(b >> 4)];
        pair[1] = HEX[usize::from(b & 0x0f)];
        out.len += 2;
    }
    out
}

/// `HA1 = H(username ":" realm ":" password)` (RFC 7616 §3.4.2), the value a user
/// store may keep instead of the password.
pub fn ha1(hash: Hash, username: &[u8], realm: &[u8], password: &[u8]) -> HexDigest {
    hash.hash_joined(&[username, realm, password])
}

/// `HA2 = H(method ":" digest-uri)` for `qop=auth` and for no `qop` (RFC 7616
/// §3.4.3; RFC 2617 §3.2.2.3).
pub fn ha2(hash: Hash, method: &[u8], digest_uri: &[u8]) -> HexDigest {
    hash.hash_joined(&[method, digest_uri])
}

/// The `qop=auth` inputs of a response (RFC 7616 §3.4.1). Without them the
/// response takes the RFC 2069 form that RFC 3261 §22.4 keeps servers accepting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QopAuth<'a> {
    /// `nc` exactly as the client wrote it (8 hex digits): the hash covers the
    /// text, not the number.
    pub nc: &'a [u8],
    /// `cnonce`, unquoted.
    pub cnonce: &'a [u8],
}

/// The request-digest (`response`) for credentials computed with `algorithm`.
///
/// `ha1` is the hex of `H(username:realm:password)` with `algorithm.hash` (from
/// [`ha1`] or a user store); for a `-sess` algorithm it is re-hashed here with
/// the nonce and cnonce (RFC 7616 §3.4.2). Returns `None` for a `-sess`
/// algorithm without `qop`: it needs the cnonce, which only comes with `qop`
/// (RFC 3261 §22.4 item 8).
pub fn response(
    algorithm: Algorithm,
    ha1: &[u8],
    nonce: &[u8],
    qop: Option<QopAuth<'_>>,
    method: &[u8],
    digest_uri: &[u8],
) -> Option<HexDigest> {
    let h = algorithm.hash;
    let sess;
    let ha1 = if algorithm.session {
        sess = h.hash_joined(&[ha1, nonce, qop?.cnonce]);
        sess.as_bytes()
    } else {
        ha1
    };
    let ha2 = ha2(h, method, digest_uri);
    Some(match qop {
        Some(q) => h.hash_joined(&[ha1, nonce, q.nc, q.cnonce, b"auth", ha2.as_bytes()]),
        None => h.hash_joined(&[ha1, nonce, ha2.as_bytes()]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn algorithm_names_round_trip_case_insensitively() {
        for a in [
            Algorithm::MD5,
            Algorithm::MD5_SESS,
            Algorithm::SHA256,
            Algorithm::SHA256_SESS,
        ] {
            assert_eq!(Algorithm::from_param(Some(a.name().as_bytes())), Some(a));
        }
        assert_eq!(
            Algorithm::from_param(Some(b"sha-256")),
            Some(Algorithm::SHA256)
        );
        assert_eq!(
            Algorithm::from_param(Some(b"md5-SESS")),
            Some(Algorithm::MD5_SESS)
        );
    }

    #[test]
    fn algorithm_absent_means_md5() {
        // RFC 7616 §3.3: "If this is not present, it is assumed to be MD5."
        assert_eq!(Algorithm::from_param(None), Some(Algorithm::MD5));
    }

    #[test]
    fn algorithm_unknown_is_none() {
        assert_eq!(Algorithm::from_param(Some(b"SHA-512-256")), None);
        assert_eq!(Algorithm::from_param(Some(b"")), None);
        assert_eq!(Algorithm::from_param(Some(b"MD5 ")), None);
    }

    #[test]
    fn hash_of_empty_string() {
        // RFC 3261 §22.4 item 7 quotes MD5("").
        assert_eq!(
            Hash::Md5.hash_joined(&[b""]),
            "d41d8cd98f00b204e9800998ecf8427e"
        );
        assert_eq!(
            Hash::Sha256.hash_joined(&[b""]),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn hash_joined_inserts_colons() {
        assert_eq!(
            Hash::Md5.hash_joined(&[b"a", b"b", b"c"]).as_bytes(),
            Hash::Md5.hash_joined(&[b"a:b:c"]).as_bytes()
        );
    }

    /// RFC 2617 §3.5: GET /dir/index.html, Mufasa / "Circle Of Life".
    #[test]
    fn rfc2617_worked_example() {
        let ha1 = ha1(
            Hash::Md5,
            b"Mufasa",
            b"testrealm@host.com",
            b"Circle Of Life",
        );
        let r = response(
            Algorithm::MD5,
            ha1.as_bytes(),
            b"dcd98b7102dd2f0e8b11d0f600bfb0c093",
            Some(QopAuth {
                nc: b"00000001",
                cnonce: b"0a4f113b",
            }),
            b"GET",
            b"/dir/index.html",
        )
        .unwrap();
        assert_eq!(r, "6629fae49393a05397450978507c4ef1");
    }

    /// RFC 7616 §3.9.1: the same request with MD5 and with SHA-256; the password
    /// there is "Circle of Life" (lowercase "of").
    fn rfc7616_response(algorithm: Algorithm) -> HexDigest {
        let ha1 = ha1(
            algorithm.hash,
            b"Mufasa",
            b"http-auth@example.org",
            b"Circle of Life",
        );
        response(
            algorithm,
            ha1.as_bytes(),
            b"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
            Some(QopAuth {
                nc: b"00000001",
                cnonce: b"f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
            }),
            b"GET",
            b"/dir/index.html",
        )
        .unwrap()
    }

    #[test]
    fn rfc7616_worked_example_md5() {
        assert_eq!(
            rfc7616_response(Algorithm::MD5),
            "8ca523f5e9506fed4657c9700eebdbec"
        );
    }

    #[test]
    fn rfc7616_worked_example_sha256() {
        assert_eq!(
            rfc7616_response(Algorithm::SHA256),
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
    }

    #[test]
    fn rfc2069_response_without_qop() {
        // RFC 2069 §2.1.2: response = H(H(A1) ":" nonce ":" H(A2)).
        let ha1 = ha1(
            Hash::Md5,
            b"Mufasa",
            b"testrealm@host.com",
            b"Circle Of Life",
        );
        let nonce = b"dcd98b7102dd2f0e8b11d0f600bfb0c093";
        let ha2 = Hash::Md5.hash_joined(&[b"GET:/dir/index.html"]);
        let mut joined = Vec::new();
        joined.extend_from_slice(ha1.as_bytes());
        joined.push(b':');
        joined.extend_from_slice(nonce);
        joined.push(b':');
        joined.extend_from_slice(ha2.as_bytes());
        let r = response(
            Algorithm::MD5,
            ha1.as_bytes(),
            nonce,
            None,
            b"GET",
            b"/dir/index.html",
        )
        .unwrap();
        assert_eq!(r.as_bytes(), Hash::Md5.hash_joined(&[&joined]).as_bytes());
    }

    #[test]
    fn sess_rehashes_ha1_with_nonce_and_cnonce() {
        // RFC 7616 §3.4.2: A1 = H(user:realm:pw) ":" nonce ":" cnonce for -sess.
        let base = ha1(Hash::Sha256, b"u", b"r", b"p");
        let qop = QopAuth {
            nc: b"00000001",
            cnonce: b"cn",
        };
        let sess = response(
            Algorithm::SHA256_SESS,
            base.as_bytes(),
            b"n",
            Some(qop),
            b"M",
            b"u",
        )
        .unwrap();
        let rehashed = Hash::Sha256.hash_joined(&[base.as_bytes(), b"n", b"cn"]);
        let plain = response(
            Algorithm::SHA256,
            rehashed.as_bytes(),
            b"n",
            Some(qop),
            b"M",
            b"u",
        )
        .unwrap();
        assert_eq!(sess.as_bytes(), plain.as_bytes());
        assert_ne!(
            sess.as_bytes(),
            response(
                Algorithm::SHA256,
                base.as_bytes(),
                b"n",
                Some(qop),
                b"M",
                b"u"
            )
            .unwrap()
            .as_bytes()
        );
    }

    #[test]
    fn sess_without_qop_has_no_response() {
        // RFC 3261 §22.4 item 8: -sess needs the cnonce, which needs qop.
        let base = ha1(Hash::Md5, b"u", b"r", b"p");
        assert!(response(Algorithm::MD5_SESS, base.as_bytes(), b"n", None, b"M", b"u").is_none());
    }

    #[test]
    fn matches_ignores_hex_case_and_rejects_other_lengths() {
        let d = Hash::Md5.hash_joined(&[b"x"]);
        let upper = d.as_str().to_ascii_uppercase();
        assert!(d.matches(d.as_bytes()));
        assert!(d.matches(upper.as_bytes()));
        assert!(!d.matches(d.as_bytes().get(..31).unwrap()));
        let mut wrong = d.as_bytes().to_vec();
        wrong[31] = if wrong[31] == b'0' { b'1' } else { b'0' };
        assert!(!d.matches(&wrong));
        assert!(!d.matches(b""));
    }
}
