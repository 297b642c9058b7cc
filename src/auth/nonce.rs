//! Stateless, tamper-proof nonces (RFC 7616 §3.3 and §5.4 leave the format to the
//! server) and nonce-count replay tracking (RFC 7616 §3.4, §5.5).
//!
//! A nonce is 66 lowercase hex digits encoding 33 bytes:
//!
//! ```text
//! issued (8, big-endian seconds since the UNIX epoch) | id (8) | failures (1) | mac (16)
//! mac = HMAC-SHA256(secret, "coresip nonce v1" | issued | id | failures | realm)[..16]
//! ```
//!
//! Verifying one needs only the secret: no table of issued nonces. `id` makes
//! nonces issued in the same second distinct (a per-issuer counter from a random
//! start); `failures` counts the failed attempts that led to this challenge, so
//! re-challenging a wrong password can be bounded without state (see
//! [`super::AuthConfig::max_rechallenges`]). The MAC covers the realm, so a nonce
//! is only good for the realm it was issued for.

use std::cell::Cell;
use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::path::PathBuf;

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Bytes of key material in a [`NonceSecret`].
pub(crate) const SECRET_LEN: usize = 32;

/// Bytes of the truncated HMAC in a nonce: 128 bits, half the SHA-256 output,
/// as RFC 2104 §5 allows.
const MAC_LEN: usize = 16;
const RAW_LEN: usize = 8 + 8 + 1 + MAC_LEN;

/// Length of every nonce this module issues, in characters.
pub(crate) const NONCE_LEN: usize = RAW_LEN * 2;

/// Domain separation, so the secret's MAC of a nonce can never be confused with
/// any other use of the same key.
const MAC_CONTEXT: &[u8] = b"coresip nonce v1";

/// The key nonces are authenticated with. Its `Debug` never prints the key.
#[derive(Clone)]
pub struct NonceSecret([u8; SECRET_LEN]);

impl fmt::Debug for NonceSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NonceSecret(..)")
    }
}

/// Why a [`NonceSecret`] could not be had.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The operating system's random source failed.
    #[error("cannot draw a random nonce secret: {0}")]
    Random(getrandom::Error),
    /// The secret file exists but does not hold 64 hex digits.
    #[error("{}: corrupt nonce secret (expected {} hex digits); delete it to make a new one", path.display(), SECRET_LEN * 2)]
    Corrupt {
        /// The file.
        path: PathBuf,
    },
    /// Reading or writing the secret file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
}

impl NonceSecret {
    /// A fresh random secret: nonces issued with it die with the process.
    pub fn generate() -> Result<NonceSecret, SecretError> {
        let mut key = [0u8; SECRET_LEN];
        getrandom::fill(&mut key).map_err(SecretError::Random)?;
        Ok(NonceSecret(key))
    }

    /// A secret from known bytes (tests, or a key managed elsewhere).
    pub const fn from_bytes(key: [u8; SECRET_LEN]) -> NonceSecret {
        NonceSecret(key)
    }

    /// The secret as its file holds it: 64 hex digits and a newline.
    pub fn encode(&self) -> [u8; SECRET_LEN * 2 + 1] {
        let mut out = [b'\n'; SECRET_LEN * 2 + 1];
        for (pair, &b) in out.chunks_exact_mut(2).zip(&self.0) {
            pair.copy_from_slice(&hex_pair(b));
        }
        out
    }
}

/// A secret from its file's text (64 hex digits, an optional line end).
pub(crate) fn decode_secret(text: &[u8]) -> Option<NonceSecret> {
    let text = text.strip_suffix(b"\n").unwrap_or(text);
    let text = text.strip_suffix(b"\r").unwrap_or(text);
    let mut key = [0u8; SECRET_LEN];
    decode_hex(text, &mut key)?;
    Some(NonceSecret(key))
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn hex_pair(b: u8) -> [u8; 2] {
    [HEX[usize::from(b >> 4)], HEX[usize::from(b & 0x0f)]]
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Decodes exactly `out.len() * 2` hex digits.
fn decode_hex(text: &[u8], out: &mut [u8]) -> Option<()> {
    if text.len() != out.len() * 2 {
        return None;
    }
    for (o, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        let (&hi, &lo) = (pair.first()?, pair.get(1)?);
        *o = hex_val(hi)? << 4 | hex_val(lo)?;
    }
    Some(())
}

/// A nonce written as text, on the stack.
#[derive(Clone, Copy)]
pub(crate) struct NonceText([u8; NONCE_LEN]);

impl NonceText {
    /// The nonce's characters (lowercase hex).
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for NonceText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(std::str::from_utf8(&self.0).unwrap_or_default())
    }
}

/// What a verified nonce says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct NonceInfo {
    /// When it was issued, in seconds since the UNIX epoch.
    pub issued: u64,
    /// The issuer's sequence number: with `issued`, it identifies the nonce.
    pub id: u64,
    /// Failed attempts that led to this challenge.
    pub failures: u8,
}

/// The verdict on a nonce a client sent back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NonceCheck {
    /// Ours, for this realm, and younger than the TTL.
    Fresh(NonceInfo),
    /// Ours and for this realm, but older than the TTL: answer with `stale=true`
    /// once the response proves the client knows the password (RFC 7616 §3.3).
    Stale(NonceInfo),
    /// Not one of ours (forged, altered, for another realm, or malformed).
    Invalid,
}

/// Issues and verifies nonces. One per shard: `issue` only bumps a `Cell`
/// counter, so it takes `&self` and the type is `Send` but not `Sync`.
pub(crate) struct NonceIssuer {
    mac: HmacSha256,
    next_id: Cell<u64>,
    ttl: u64,
}

impl fmt::Debug for NonceIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NonceIssuer")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl NonceIssuer {
    /// An issuer whose nonces go stale `ttl` seconds after they are issued.
    pub(crate) fn new(secret: &NonceSecret, ttl: u64) -> NonceIssuer {
        // The key is hashed into the HMAC state once, here; each nonce clones it.
        let mac = match HmacSha256::new_from_slice(&secret.0) {
            Ok(m) => m,
            // HMAC accepts keys of any length.
            Err(_) => unreachable!("HMAC takes any key length"),
        };
        // A random start keeps the ids of issuers on different shards (and of
        // successive processes sharing a secret) apart. `RandomState` is seeded
        // from the OS once per thread and differs per call.
        let start = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        NonceIssuer {
            mac,
            next_id: Cell::new(start),
            ttl,
        }
    }

    /// A new nonce for `realm`, issued at `now` (seconds since the UNIX epoch),
    /// recording `failures` earlier failed attempts.
    pub(crate) fn issue(&self, now: u64, realm: &[u8], failures: u8) -> NonceText {
        let id = self.next_id.get();
        self.next_id.set(id.wrapping_add(1));
        let mut raw = [0u8; RAW_LEN];
        let (head, tag) = raw.split_at_mut(RAW_LEN - MAC_LEN);
        head[..8].copy_from_slice(&now.to_be_bytes());
        head[8..16].copy_from_slice(&id.to_be_bytes());
        head[16] = failures;
        tag.copy_from_slice(&self.tag(head, realm));
        let mut text = [0u8; NONCE_LEN];
        for (pair, &b) in text.chunks_exact_mut(2).zip(&raw) {
            pair.copy_from_slice(&hex_pair(b));
        }
        NonceText(text)
    }

    fn tag(&self, head: &[u8], realm: &[u8]) -> [u8; MAC_LEN] {
        let mut m = self.mac.clone();
        m.update(MAC_CONTEXT);
        m.update(head);
        m.update(realm);
        let full = m.finalize().into_bytes();
        let mut out = [0u8; MAC_LEN];
        out.copy_from_slice(full.get(..MAC_LEN).unwrap_or(&[0; MAC_LEN]));
        out
    }

    /// Checks a nonce from a client's credentials against `realm` at `now`.
    ///
    /// A nonce from the future (a clock stepped back, or a secret shared with a
    /// host whose clock is ahead) counts as fresh unless it is more than one TTL
    /// ahead, when it is stale.
    pub(crate) fn verify(&self, now: u64, realm: &[u8], nonce: &[u8]) -> NonceCheck {
        let mut raw = [0u8; RAW_LEN];
        if decode_hex(nonce, &mut raw).is_none() {
            return NonceCheck::Invalid;
        }
        let (head, tag) = raw.split_at(RAW_LEN - MAC_LEN);
        let mut m = self.mac.clone();
        m.update(MAC_CONTEXT);
        m.update(head);
        m.update(realm);
        // Constant time: the comparison must not tell a forger how much is right.
        if m.verify_truncated_left(tag).is_err() {
            return NonceCheck::Invalid;
        }
        let mut word = [0u8; 8];
        word.copy_from_slice(&head[..8]);
        let issued = u64::from_be_bytes(word);
        word.copy_from_slice(&head[8..16]);
        let info = NonceInfo {
            issued,
            id: u64::from_be_bytes(word),
            failures: head[16],
        };
        if issued.abs_diff(now) > self.ttl {
            NonceCheck::Stale(info)
        } else {
            NonceCheck::Fresh(info)
        }
    }
}

/// Why [`NcTracker::check`] refused a nonce-count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NcRejected {
    /// `nc` is not above the highest one accepted for this nonce: a replay
    /// (or a reordered request; the client recovers with the fresh nonce of a
    /// `stale=true` challenge).
    Replayed,
    /// The tracker forgot this nonce to stay within its bounds, so it cannot
    /// tell a replay apart; the client must take a fresh nonce.
    Forgotten,
}

/// Remembers the highest `nc` accepted per nonce (RFC 7616 §3.4: "the server
/// ... can detect request replays by maintaining its own copy of this count").
///
/// Bounded: entries of nonces older than the TTL are dropped, and when it is
/// still full the older half of the entries (by issue time) goes. A nonce
/// issued at or before the newest forgotten one is refused as
/// [`NcRejected::Forgotten`], so forgetting never reopens a replay.
///
/// Per shard: a nonce used on two shards is tracked on each separately.
#[derive(Debug)]
pub(crate) struct NcTracker {
    seen: HashMap<(u64, u64), u32, ahash::RandomState>,
    capacity: usize,
    ttl: u64,
    /// Every nonce issued at or before this second that is not in `seen` has
    /// been forgotten (or was never tracked before a prune).
    forgotten_upto: Option<u64>,
}

impl NcTracker {
    /// A tracker holding at most `capacity` nonces (at least 1) that each live
    /// `ttl` seconds.
    pub(crate) fn new(capacity: usize, ttl: u64) -> NcTracker {
        NcTracker {
            seen: HashMap::with_hasher(ahash::RandomState::new()),
            capacity: capacity.max(1),
            ttl,
            forgotten_upto: None,
        }
    }

    /// Nonces currently tracked.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.seen.len()
    }

    /// Accepts `nc` for `nonce` when it is above every count accepted before
    /// for it, and records it. Call only once the response has been verified,
    /// so a forger cannot burn a legitimate client's counts.
    pub(crate) fn check(&mut self, now: u64, nonce: &NonceInfo, nc: u32) -> Result<(), NcRejected> {
        let key = (nonce.issued, nonce.id);
        if let Some(last) = self.seen.get_mut(&key) {
            if nc <= *last {
                return Err(NcRejected::Replayed);
            }
            *last = nc;
            return Ok(());
        }
        if self.forgotten_upto.is_some_and(|t| nonce.issued <= t) {
            return Err(NcRejected::Forgotten);
        }
        if self.seen.len() >= self.capacity {
            self.make_room(now);
            if self.forgotten_upto.is_some_and(|t| nonce.issued <= t) {
                return Err(NcRejected::Forgotten);
            }
        }
        self.seen.insert(key, nc);
        Ok(())
    }

    fn make_room(&mut self, now: u64) {
        // Expired nonces are refused as stale before they get here: forgetting
        // them costs nothing.
        let ttl = self.ttl;
        self.seen
            .retain(|&(issued, _), _| issued.saturating_add(ttl) >= now);
        if self.seen.len() < self.capacity {
            return;
        }
        // Still full of live nonces: drop the older half by issue time. Halving
        // the span keeps the cost amortised O(1) per insert.
        let oldest = self.seen.keys().map(|k| k.0).min().unwrap_or(now);
        let newest = self.seen.keys().map(|k| k.0).max().unwrap_or(now);
        let cut = oldest + (newest - oldest) / 2;
        self.seen.retain(|&(issued, _), _| issued > cut);
        self.forgotten_upto = Some(self.forgotten_upto.map_or(cut, |t| t.max(cut)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REALM: &[u8] = b"example.com";

    fn issuer() -> NonceIssuer {
        NonceIssuer::new(&NonceSecret::from_bytes([7; SECRET_LEN]), 300)
    }

    fn info(check: NonceCheck) -> NonceInfo {
        match check {
            NonceCheck::Fresh(i) | NonceCheck::Stale(i) => i,
            NonceCheck::Invalid => panic!("invalid nonce"),
        }
    }

    #[test]
    fn issued_nonce_verifies_fresh() {
        let i = issuer();
        let n = i.issue(1_000, REALM, 0);
        assert_eq!(n.as_bytes().len(), NONCE_LEN);
        assert!(n.as_bytes().iter().all(|b| b.is_ascii_hexdigit()));
        let v = i.verify(1_000, REALM, n.as_bytes());
        assert!(matches!(
            v,
            NonceCheck::Fresh(NonceInfo {
                issued: 1_000,
                failures: 0,
                ..
            })
        ));
    }

    #[test]
    fn nonces_issued_in_the_same_second_differ() {
        let i = issuer();
        let a = i.issue(1_000, REALM, 0);
        let b = i.issue(1_000, REALM, 0);
        assert_ne!(a.as_bytes(), b.as_bytes());
        assert_ne!(
            info(i.verify(1_000, REALM, a.as_bytes())).id,
            info(i.verify(1_000, REALM, b.as_bytes())).id
        );
    }

    #[test]
    fn failures_survive_the_round_trip() {
        let i = issuer();
        let n = i.issue(1_000, REALM, 2);
        assert_eq!(info(i.verify(1_000, REALM, n.as_bytes())).failures, 2);
    }

    #[test]
    fn nonce_expires_after_ttl() {
        let i = issuer();
        let n = i.issue(1_000, REALM, 0);
        assert!(matches!(
            i.verify(1_300, REALM, n.as_bytes()),
            NonceCheck::Fresh(_)
        ));
        assert!(matches!(
            i.verify(1_301, REALM, n.as_bytes()),
            NonceCheck::Stale(_)
        ));
    }

    #[test]
    fn nonce_from_far_future_is_stale() {
        let i = issuer();
        let n = i.issue(2_000, REALM, 0);
        assert!(matches!(
            i.verify(1_700, REALM, n.as_bytes()),
            NonceCheck::Fresh(_)
        ));
        assert!(matches!(
            i.verify(1_699, REALM, n.as_bytes()),
            NonceCheck::Stale(_)
        ));
    }

    #[test]
    fn tampered_nonce_is_invalid() {
        let i = issuer();
        let n = i.issue(1_000, REALM, 0);
        for pos in 0..NONCE_LEN {
            let mut t = n.as_bytes().to_vec();
            t[pos] = if t[pos] == b'0' { b'1' } else { b'0' };
            assert_eq!(
                i.verify(1_000, REALM, &t),
                NonceCheck::Invalid,
                "byte {pos}"
            );
        }
    }

    #[test]
    fn uppercase_nonce_still_verifies() {
        // Hex digits decode either case; the MAC covers the bytes, not the text.
        let i = issuer();
        let n = i.issue(1_000, REALM, 0);
        let upper = n.as_bytes().to_ascii_uppercase();
        assert!(matches!(
            i.verify(1_000, REALM, &upper),
            NonceCheck::Fresh(_)
        ));
    }

    #[test]
    fn malformed_nonce_is_invalid() {
        let i = issuer();
        let n = i.issue(1_000, REALM, 0);
        assert_eq!(i.verify(1_000, REALM, b""), NonceCheck::Invalid);
        assert_eq!(
            i.verify(1_000, REALM, &n.as_bytes()[..NONCE_LEN - 2]),
            NonceCheck::Invalid
        );
        let mut long = n.as_bytes().to_vec();
        long.extend_from_slice(b"00");
        assert_eq!(i.verify(1_000, REALM, &long), NonceCheck::Invalid);
        let mut bad = n.as_bytes().to_vec();
        bad[0] = b'g';
        assert_eq!(i.verify(1_000, REALM, &bad), NonceCheck::Invalid);
    }

    #[test]
    fn nonce_is_bound_to_its_realm() {
        let i = issuer();
        let n = i.issue(1_000, REALM, 0);
        assert_eq!(
            i.verify(1_000, b"other.org", n.as_bytes()),
            NonceCheck::Invalid
        );
    }

    #[test]
    fn nonce_from_another_secret_is_invalid() {
        let n = issuer().issue(1_000, REALM, 0);
        let other = NonceIssuer::new(&NonceSecret::from_bytes([8; SECRET_LEN]), 300);
        assert_eq!(
            other.verify(1_000, REALM, n.as_bytes()),
            NonceCheck::Invalid
        );
    }

    #[test]
    fn same_secret_verifies_across_issuers() {
        // Another shard, or the next process with a persisted secret.
        let n = issuer().issue(1_000, REALM, 0);
        assert!(matches!(
            issuer().verify(1_010, REALM, n.as_bytes()),
            NonceCheck::Fresh(_)
        ));
    }

    fn nonce(issued: u64, id: u64) -> NonceInfo {
        NonceInfo {
            issued,
            id,
            failures: 0,
        }
    }

    #[test]
    fn nc_must_increase() {
        let mut t = NcTracker::new(16, 300);
        let n = nonce(1_000, 1);
        assert_eq!(t.check(1_000, &n, 1), Ok(()));
        assert_eq!(t.check(1_000, &n, 1), Err(NcRejected::Replayed));
        assert_eq!(t.check(1_000, &n, 3), Ok(()));
        assert_eq!(t.check(1_000, &n, 2), Err(NcRejected::Replayed));
        assert_eq!(t.check(1_000, &n, 4), Ok(()));
        // Another nonce has its own count.
        assert_eq!(t.check(1_000, &nonce(1_000, 2), 1), Ok(()));
    }

    #[test]
    fn tracker_drops_expired_nonces_when_full() {
        let mut t = NcTracker::new(2, 300);
        t.check(1_000, &nonce(1_000, 1), 1).unwrap();
        t.check(1_000, &nonce(1_000, 2), 1).unwrap();
        t.check(1_400, &nonce(1_400, 3), 1).unwrap();
        assert_eq!(t.len(), 1);
        // Nothing live was forgotten, so a newer nonce is still welcome.
        assert_eq!(t.check(1_400, &nonce(1_399, 4), 1), Ok(()));
    }

    #[test]
    fn tracker_full_of_live_nonces_forgets_the_older_half() {
        let mut t = NcTracker::new(4, 300);
        for (k, issued) in [1_000u64, 1_010, 1_020, 1_030].into_iter().enumerate() {
            t.check(1_030, &nonce(issued, k as u64), 5).unwrap();
        }
        t.check(1_040, &nonce(1_040, 9), 1).unwrap();
        assert!(t.len() <= 4);
        // A forgotten nonce is refused rather than accepted with any nc.
        assert_eq!(
            t.check(1_040, &nonce(1_000, 0), 6),
            Err(NcRejected::Forgotten)
        );
        // The kept ones still remember their counts.
        assert_eq!(
            t.check(1_040, &nonce(1_030, 3), 5),
            Err(NcRejected::Replayed)
        );
        assert_eq!(t.check(1_040, &nonce(1_030, 3), 6), Ok(()));
    }

    #[test]
    fn tracker_stays_bounded_under_load() {
        let mut t = NcTracker::new(100, 300);
        for k in 0..10_000u64 {
            let now = 1_000 + k / 50;
            let _ = t.check(now, &nonce(now, k), 1);
            assert!(t.len() <= 100);
        }
    }

    #[test]
    fn secret_debug_hides_the_key() {
        let s = format!("{:?}", NonceSecret::from_bytes([0xab; SECRET_LEN]));
        assert!(!s.contains("ab"), "{s}");
    }
}
