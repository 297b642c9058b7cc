//! Transaction matching keys (RFC 3261 §17.1.3, §17.2.3), shard selection, and the
//! shard-tagged branches coresip generates (DESIGN.md §3).
//!
//! A key is a 64-bit ahash (fixed seeds, so every shard of the process computes
//! the same value) plus the fields needed to confirm a match: the seeds are public,
//! so colliding hashes can be crafted, and a hash alone must never decide a match.
//!
//! Lookups use borrowed views ([`ServerKeyRef`], [`ClientKeyRef`]) built from
//! fields the caller has already extracted from the message: nothing is copied to
//! look a transaction up. The owned keys ([`ServerKey`], [`ClientKey`]) stored in a
//! transaction table must copy the fields, because they outlive the receive buffer
//! of the request that created the transaction; the copy is inline (no heap) for
//! the usual branch + sent-by + method sizes. Only the rare pre-RFC 3261 key, with
//! its Request-URI and top Via, is boxed.
//!
//! Comparison follows RFC 3261 §7.3.1: tokens (branch, tags) are case-insensitive,
//! so they are compared and hashed ASCII-case-folded; a sent-by is compared in a
//! canonical form (lowercased host, IP addresses by value); Call-ID (§8.1.1.4) and
//! methods (§7.1) are case-sensitive; the Request-URI and top Via of the pre-3261
//! rules are compared as written (case-folded for the Via), which is what
//! retransmissions carry — a simplification of §19.1.4's URI comparison. The magic
//! cookie itself is matched case-sensitively, as [`Via::has_magic_cookie`] does.

use std::hash::{BuildHasher, Hasher};
use std::io::Write;

use smallvec::SmallVec;

use crate::sip::text::eq_ic;
use crate::sip::via::{Via, MAGIC_COOKIE};
use crate::sip::{Host, HostPort, Method};

/// Fixed seeds: every shard, and every run, hashes alike.
const SEEDS: [u64; 4] = [
    0x243f_6a88_85a3_08d3,
    0x1319_8a2e_0370_7344,
    0xa409_3822_299f_31d0,
    0x082e_fa98_ec4e_6c89,
];

fn hasher() -> impl Hasher {
    ahash::RandomState::with_seeds(SEEDS[0], SEEDS[1], SEEDS[2], SEEDS[3]).build_hasher()
}

/// Feeds a field ASCII-lowercased, length first so field boundaries are
/// unambiguous. Lowercases through a small stack buffer: no allocation.
fn write_folded(h: &mut impl Hasher, s: &[u8]) {
    h.write_usize(s.len());
    let mut buf = [0u8; 32];
    for chunk in s.chunks(buf.len()) {
        let b = &mut buf[..chunk.len()];
        b.copy_from_slice(chunk);
        b.make_ascii_lowercase();
        h.write(b);
    }
}

/// Feeds a case-sensitive field, length first.
fn write_exact(h: &mut impl Hasher, s: &[u8]) {
    h.write_usize(s.len());
    h.write(s);
}

/// True when `branch` carries the RFC 3261 magic cookie, so that the branch (with
/// sent-by and method) identifies the transaction (§17.2.3). Case-sensitive, like
/// [`Via::has_magic_cookie`].
pub(crate) fn is_rfc3261_branch(branch: &[u8]) -> bool {
    branch.starts_with(MAGIC_COOKIE)
}

/// Room for the canonical text of any sent-by: a hostname is at most 254 bytes
/// (checked by [`Host::parse`]), an IPv6 reference 47, plus `:65535`.
const SENT_BY_MAX: usize = 272;

/// The canonical text of a sent-by, compared and hashed instead of the text as
/// written: the domain lowercased (§19.1.4: hosts are case-insensitive), IP
/// addresses in their standard form (so `[2001:DB8:0::1]` equals
/// `[2001:db8::1]`), then `:port` when a port was written. A missing port is not
/// the default port: §17.2.3 asks for the same sent-by.
fn canonical_sent_by<'b>(hp: &HostPort<'_>, buf: &'b mut [u8; SENT_BY_MAX]) -> &'b [u8] {
    let mut w: &mut [u8] = &mut buf[..];
    // Writes into a fixed buffer cannot fail for inputs `Host::parse` accepts;
    // were one too long, the text is cut short the same way every time.
    let _ = match hp.host {
        Host::Domain(d) => w.write_all(d.as_bytes()),
        Host::V4(a) => write_v4(&mut w, a),
        Host::V6(a) => write!(w, "[{a}]"),
    };
    if let Some(p) = hp.port {
        let _ = w
            .write_all(b":")
            .and_then(|()| write_decimal(&mut w, p.into()));
    }
    let len = SENT_BY_MAX - w.len();
    let out = &mut buf[..len];
    out.make_ascii_lowercase();
    out
}

/// Dotted-quad text of `a`, as `Display` writes it, without the formatting
/// machinery: every request and response computes a sent-by, and `write!` was a
/// visible share of the transaction key's cost.
fn write_v4(w: &mut &mut [u8], a: std::net::Ipv4Addr) -> std::io::Result<()> {
    for (i, octet) in a.octets().into_iter().enumerate() {
        if i > 0 {
            w.write_all(b".")?;
        }
        write_decimal(w, octet.into())?;
    }
    Ok(())
}

/// `n` in decimal, no leading zeros.
fn write_decimal(w: &mut &mut [u8], n: u32) -> std::io::Result<()> {
    w.write_all(crate::sip::text::decimal(n, &mut [0; 10]))
}

/// The hash that places a request by its top Via branch on a shard (DESIGN.md §3,
/// `hash % N`): case-folded, like branch matching, so every request that matches
/// one transaction (§17.2.3) lands on its shard.
pub(crate) fn branch_hash(branch: &[u8]) -> u64 {
    let mut h = hasher();
    write_folded(&mut h, branch);
    h.finish()
}

/// The hash that places a request whose branch lacks the cookie: of Call-ID and
/// CSeq number (DESIGN.md §3). Its ACK and CANCEL share both, so they land on the
/// INVITE's shard.
pub(crate) fn legacy_request_hash(call_id: &[u8], cseq: u32) -> u64 {
    let mut h = hasher();
    write_exact(&mut h, call_id);
    h.write_u32(cseq);
    h.finish()
}

/// The method a request is matched under: ACK matches its INVITE's transaction
/// (§17.2.3 rule 3).
fn match_method(m: Method<'_>) -> &[u8] {
    match m {
        Method::Ack => b"INVITE",
        m => m.as_bytes(),
    }
}

/// Up to `K` byte fields copied into one inline buffer (spilling to the heap only
/// for unusually long fields).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fields<const K: usize> {
    bytes: SmallVec<[u8; 64]>,
    ends: [usize; K],
}

impl<const K: usize> Fields<K> {
    fn new(parts: [&[u8]; K]) -> Self {
        let mut bytes = SmallVec::new();
        let mut ends = [0; K];
        for (end, p) in ends.iter_mut().zip(parts) {
            bytes.extend_from_slice(p);
            *end = bytes.len();
        }
        Fields { bytes, ends }
    }

    fn get(&self, i: usize) -> &[u8] {
        let start = match i {
            0 => 0,
            _ => self.ends.get(i - 1).copied().unwrap_or(0),
        };
        let end = self.ends.get(i).copied().unwrap_or(start);
        self.bytes.get(start..end).unwrap_or(&[])
    }
}

// ---------------------------------------------------------------------------
// Server keys, §17.2.3

/// The fields of the pre-RFC 3261 matching rule (§17.2.3), for requests whose top
/// Via branch is missing or lacks the magic cookie. Empty slices stand for absent
/// tags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LegacyFields<'a> {
    /// The Request-URI as written.
    pub request_uri: &'a [u8],
    /// The To tag (empty when absent).
    pub to_tag: &'a [u8],
    /// The From tag (empty when absent).
    pub from_tag: &'a [u8],
    /// The Call-ID.
    pub call_id: &'a [u8],
    /// The CSeq sequence number.
    pub cseq: u32,
    /// The top Via field value (its first comma element) as written.
    pub top_via: &'a [u8],
}

#[derive(Debug, Clone, Copy)]
enum ServerFields<'a> {
    Rfc3261 {
        branch: &'a [u8],
        sent_by: HostPort<'a>,
    },
    Legacy(LegacyFields<'a>),
}

/// A borrowed server-transaction key for looking a request up (§17.2.3).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ServerKeyRef<'a> {
    hash: u64,
    /// The method matched under (ACK already mapped to INVITE).
    method: &'a [u8],
    is_ack: bool,
    fields: ServerFields<'a>,
}

impl<'a> ServerKeyRef<'a> {
    /// The key of a request from its decoded top Via and method: `None` when the
    /// branch lacks the magic cookie, and [`ServerKeyRef::legacy`] applies.
    pub(crate) fn from_via(via: &Via<'a>, method: Method<'a>) -> Option<Self> {
        let branch = via.branch().filter(|b| is_rfc3261_branch(b))?;
        Some(ServerKeyRef::rfc3261(branch, via.sent_by, method))
    }

    /// The key of a request whose top Via branch carries the magic cookie: branch,
    /// sent-by, and method, where ACK matches INVITE.
    pub(crate) fn rfc3261(branch: &'a [u8], sent_by: HostPort<'a>, method: Method<'a>) -> Self {
        let m = match_method(method);
        let mut h = hasher();
        h.write_u8(1);
        write_folded(&mut h, branch);
        write_exact(&mut h, canonical_sent_by(&sent_by, &mut [0; SENT_BY_MAX]));
        write_exact(&mut h, m);
        ServerKeyRef {
            hash: h.finish(),
            method: m,
            is_ack: method == Method::Ack,
            fields: ServerFields::Rfc3261 { branch, sent_by },
        }
    }

    /// The key of a request without an RFC 3261 branch (§17.2.3 backwards
    /// compatibility). The To tag is compared but not hashed: an ACK carries the
    /// tag of the response, which the INVITE did not have.
    pub(crate) fn legacy(fields: LegacyFields<'a>, method: Method<'a>) -> Self {
        let m = match_method(method);
        ServerKeyRef {
            hash: legacy_hash(&fields, m),
            method: m,
            is_ack: method == Method::Ack,
            fields: ServerFields::Legacy(fields),
        }
    }

    /// For a CANCEL's key, the key of the INVITE transaction it cancels: the same
    /// fields under method INVITE (§9.2: the matching of §17.2.3 without the
    /// method).
    pub(crate) fn cancelled_invite(&self) -> ServerKeyRef<'a> {
        match self.fields {
            ServerFields::Rfc3261 { branch, sent_by } => {
                ServerKeyRef::rfc3261(branch, sent_by, Method::Invite)
            }
            ServerFields::Legacy(f) => ServerKeyRef::legacy(f, Method::Invite),
        }
    }

    /// The 64-bit hash to index a table with.
    pub(crate) fn hash(&self) -> u64 {
        self.hash
    }

    /// True when the key is an ACK's (matched under INVITE).
    pub(crate) fn is_ack(&self) -> bool {
        self.is_ack
    }

    /// True for a pre-RFC 3261 key.
    #[cfg(test)]
    pub(crate) fn is_legacy(&self) -> bool {
        matches!(self.fields, ServerFields::Legacy(_))
    }

    /// An owned copy, to store with a new transaction.
    pub(crate) fn to_key(self) -> ServerKey {
        let repr = match self.fields {
            ServerFields::Rfc3261 { branch, sent_by } => {
                let mut buf = [0; SENT_BY_MAX];
                let sent_by = canonical_sent_by(&sent_by, &mut buf);
                ServerRepr::Rfc3261(Fields::new([branch, sent_by, self.method]))
            }
            ServerFields::Legacy(f) => ServerRepr::Legacy(Box::new(LegacyOwned {
                fields: Fields::new([
                    f.request_uri,
                    f.to_tag,
                    f.from_tag,
                    f.call_id,
                    f.top_via,
                    self.method,
                ]),
                cseq: f.cseq,
                response_to_tag: SmallVec::new(),
            })),
        };
        ServerKey {
            hash: self.hash,
            repr,
        }
    }

    /// True when the request this key was built from matches the transaction
    /// `key` was stored for.
    pub(crate) fn matches(&self, key: &ServerKey) -> bool {
        if self.hash != key.hash {
            return false;
        }
        match (&self.fields, &key.repr) {
            (ServerFields::Rfc3261 { branch, sent_by }, ServerRepr::Rfc3261(k)) => {
                eq_ic(branch, k.get(0))
                    && self.method == k.get(2)
                    && canonical_sent_by(sent_by, &mut [0; SENT_BY_MAX]) == k.get(1)
            }
            (ServerFields::Legacy(f), ServerRepr::Legacy(k)) => {
                let kf = &k.fields;
                // §17.2.3: an ACK's To tag is the one of the response we sent; any
                // other request's is the one the creating request had.
                let to_tag: &[u8] = if self.is_ack {
                    &k.response_to_tag
                } else {
                    kf.get(1)
                };
                f.request_uri == kf.get(0)
                    && eq_ic(f.to_tag, to_tag)
                    && eq_ic(f.from_tag, kf.get(2))
                    && f.call_id == kf.get(3)
                    && f.cseq == k.cseq
                    && eq_ic(f.top_via, kf.get(4))
                    && self.method == kf.get(5)
            }
            _ => false,
        }
    }
}

fn legacy_hash(f: &LegacyFields<'_>, method: &[u8]) -> u64 {
    let mut h = hasher();
    h.write_u8(2);
    write_exact(&mut h, f.request_uri);
    write_folded(&mut h, f.from_tag);
    write_exact(&mut h, f.call_id);
    h.write_u32(f.cseq);
    write_folded(&mut h, f.top_via);
    write_exact(&mut h, method);
    h.finish()
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct LegacyOwned {
    /// Request-URI, To tag, From tag, Call-ID, top Via, method.
    fields: Fields<6>,
    cseq: u32,
    response_to_tag: SmallVec<[u8; 24]>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum ServerRepr {
    /// Branch, canonical sent-by, method.
    Rfc3261(Fields<3>),
    /// Boxed: rare, and several times the size of an RFC 3261 key.
    Legacy(Box<LegacyOwned>),
}

/// An owned server-transaction key, stored with the transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServerKey {
    hash: u64,
    repr: ServerRepr,
}

impl ServerKey {
    /// The 64-bit hash the key was indexed under.
    pub(crate) fn hash(&self) -> u64 {
        self.hash
    }

    /// The branch of an RFC 3261 key.
    #[cfg(test)]
    pub(crate) fn branch(&self) -> Option<&[u8]> {
        match &self.repr {
            ServerRepr::Rfc3261(f) => Some(f.get(0)),
            ServerRepr::Legacy(_) => None,
        }
    }

    /// The method the transaction was created by (INVITE for an INVITE
    /// transaction, which its ACKs match).
    pub(crate) fn method(&self) -> &[u8] {
        match &self.repr {
            ServerRepr::Rfc3261(f) => f.get(2),
            ServerRepr::Legacy(l) => l.fields.get(5),
        }
    }

    /// Records the To tag of the response the transaction sent, which a pre-RFC
    /// 3261 ACK must carry to match (§17.2.3). A no-op for RFC 3261 keys, whose
    /// ACK matches by branch.
    #[cfg(test)]
    pub(crate) fn set_response_to_tag(&mut self, tag: &[u8]) {
        if let ServerRepr::Legacy(l) = &mut self.repr {
            l.response_to_tag.clear();
            l.response_to_tag.extend_from_slice(tag);
        }
    }
}

// ---------------------------------------------------------------------------
// Client keys, §17.1.3

/// A borrowed client-transaction key, from a response's top Via branch and CSeq
/// method (§17.1.3). The method keeps a CANCEL's transaction apart from its
/// INVITE's, which shares the branch.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientKeyRef<'a> {
    hash: u64,
    branch: &'a [u8],
    method: &'a [u8],
}

impl<'a> ClientKeyRef<'a> {
    /// The key for a branch and a CSeq method.
    pub(crate) fn new(branch: &'a [u8], method: Method<'a>) -> Self {
        let m = method.as_bytes();
        let mut h = hasher();
        h.write_u8(3);
        write_folded(&mut h, branch);
        write_exact(&mut h, m);
        ClientKeyRef {
            hash: h.finish(),
            branch,
            method: m,
        }
    }

    /// The 64-bit hash to index a table with.
    pub(crate) fn hash(&self) -> u64 {
        self.hash
    }

    /// An owned copy, to store with a new transaction.
    pub(crate) fn to_key(self) -> ClientKey {
        ClientKey {
            hash: self.hash,
            fields: Fields::new([self.branch, self.method]),
        }
    }

    /// True when a response with this key belongs to the transaction of `key`.
    pub(crate) fn matches(&self, key: &ClientKey) -> bool {
        self.hash == key.hash
            && eq_ic(self.branch, key.fields.get(0))
            && self.method == key.fields.get(1)
    }
}

/// An owned client-transaction key. Our branches are short, so it stays inline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClientKey {
    hash: u64,
    /// Branch, method.
    fields: Fields<2>,
}

impl ClientKey {
    /// The 64-bit hash the key was indexed under.
    pub(crate) fn hash(&self) -> u64 {
        self.hash
    }

    /// The branch.
    #[cfg(test)]
    pub(crate) fn branch(&self) -> &[u8] {
        self.fields.get(0)
    }

    /// The method.
    pub(crate) fn method(&self) -> &[u8] {
        self.fields.get(1)
    }
}

// ---------------------------------------------------------------------------
// Shard-tagged branches, DESIGN.md §3

/// Marks a branch as coresip's, right after the cookie.
const BRANCH_TAG: u8 = b'c';
/// How every branch coresip generates begins: the cookie and [`BRANCH_TAG`]. The
/// shard follows as 4 lowercase hex digits, where the kernel's response steering
/// (`runtime::steering`) reads it too.
pub(crate) const BRANCH_PREFIX: &[u8; 8] = b"z9hG4bKc";
/// `z9hG4bK` `c` + 4 hex digits of shard + 16 hex digits of unique id.
const BRANCH_LEN: usize = MAGIC_COOKIE.len() + 1 + 4 + 16;

/// A branch coresip generated: `z9hG4bKc` + shard (4 lowercase hex digits) + a
/// unique 64-bit id (16 lowercase hex digits). 28 bytes, inline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Branch {
    buf: [u8; BRANCH_LEN],
}

impl Branch {
    /// The branch text.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// The branch text (always ASCII).
    #[cfg(test)]
    pub(crate) fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf).unwrap_or_default()
    }
}

/// Generates unique, shard-tagged branches for one shard.
///
/// Uniqueness (§8.1.1.7: across space and time): within a run, the id is a
/// bijective mix of `seed + counter`, so it repeats only after 2^64 branches;
/// across runs and hosts, the caller supplies a random `seed` (sans-IO: no RNG
/// here), and the mix makes the ids unpredictable to others.
#[derive(Debug, Clone)]
pub(crate) struct BranchGenerator {
    shard: u16,
    seed: u64,
    counter: u64,
}

impl BranchGenerator {
    /// A generator for `shard`, seeded by the runtime (e.g. from getrandom).
    pub(crate) fn new(shard: u16, seed: u64) -> Self {
        BranchGenerator {
            shard,
            seed,
            counter: 0,
        }
    }

    /// The next branch.
    pub(crate) fn next_branch(&mut self) -> Branch {
        let id = mix64(self.seed.wrapping_add(self.counter));
        self.counter = self.counter.wrapping_add(1);
        let mut buf = [0u8; BRANCH_LEN];
        let (cookie, rest) = buf.split_at_mut(MAGIC_COOKIE.len());
        cookie.copy_from_slice(MAGIC_COOKIE);
        let (tag, rest) = rest.split_at_mut(1);
        tag[0] = BRANCH_TAG;
        let (shard, unique) = rest.split_at_mut(4);
        write_hex(shard, u64::from(self.shard));
        write_hex(unique, id);
        Branch { buf }
    }
}

/// The splitmix64 finaliser: a bijection on u64.
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Writes the low `out.len()` hex digits of `v`, most significant first.
fn write_hex(out: &mut [u8], mut v: u64) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for b in out.iter_mut().rev() {
        *b = HEX[(v & 0xf) as usize];
        v >>= 4;
    }
}

/// The shard id a branch generated by [`BranchGenerator`] carries; `None` for any
/// other branch. Text after the 28 generated bytes is allowed (room for a later
/// loop-detection component, §16.6 step 8). The caller checks the id against its
/// shard count.
pub(crate) fn parse_shard(branch: &[u8]) -> Option<u16> {
    let rest = branch.strip_prefix(MAGIC_COOKIE)?;
    let rest = rest.strip_prefix(&[BRANCH_TAG])?;
    let shard = rest.get(..4)?;
    let unique = rest.get(4..20)?;
    if !unique
        .iter()
        .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return None;
    }
    let mut v: u16 = 0;
    for &b in shard {
        let d = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            _ => return None,
        };
        v = (v << 4) | u16::from(d);
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BR: &[u8] = b"z9hG4bK776asdhds";
    fn sent_by() -> HostPort<'static> {
        HostPort::parse(b"pc33.atlanta.com:5060").unwrap()
    }

    fn legacy_invite() -> LegacyFields<'static> {
        LegacyFields {
            request_uri: b"sip:bob@biloxi.com",
            to_tag: b"",
            from_tag: b"1928301774",
            call_id: b"a84b4c76e66710",
            cseq: 314159,
            top_via: b"SIP/2.0/UDP pc33.atlanta.com;branch=776asdhds",
        }
    }

    #[test]
    fn magic_cookie_detection() {
        assert!(is_rfc3261_branch(BR));
        assert!(is_rfc3261_branch(b"z9hG4bK"));
        // Case-sensitive, like Via::has_magic_cookie.
        assert!(!is_rfc3261_branch(b"Z9HG4BKabc"));
        assert!(!is_rfc3261_branch(b"776asdhds"));
        assert!(!is_rfc3261_branch(b"z9hG4b"));
        assert!(!is_rfc3261_branch(b""));
    }

    #[test]
    fn server_key_branch_sent_by_method() {
        let k = ServerKeyRef::rfc3261(BR, sent_by(), Method::Invite).to_key();
        assert!(ServerKeyRef::rfc3261(BR, sent_by(), Method::Invite).matches(&k));
        // Branch and host compare case-insensitively (§7.3.1: tokens, hosts).
        let upper = HostPort::parse(b"PC33.Atlanta.com:5060").unwrap();
        assert!(ServerKeyRef::rfc3261(b"z9hG4bK776ASDHDS", upper, Method::Invite).matches(&k));
        // Another sent-by with the same branch: another transaction (§17.2.3).
        let evil = HostPort::parse(b"evil.example.com:5060").unwrap();
        assert!(!ServerKeyRef::rfc3261(BR, evil, Method::Invite).matches(&k));
        // The port is part of sent-by, and an absent port is not 5060.
        for other in [&b"pc33.atlanta.com:5070"[..], b"pc33.atlanta.com"] {
            let hp = HostPort::parse(other).unwrap();
            assert!(!ServerKeyRef::rfc3261(BR, hp, Method::Invite).matches(&k));
        }
        assert!(!ServerKeyRef::rfc3261(b"z9hG4bK776asdhdt", sent_by(), Method::Invite).matches(&k));
        // Another method: another transaction.
        assert!(!ServerKeyRef::rfc3261(BR, sent_by(), Method::Bye).matches(&k));
        assert_eq!(k.method(), b"INVITE");
        assert_eq!(k.branch(), Some(BR));
    }

    #[test]
    fn server_key_sent_by_ip_addresses_compare_by_value() {
        let hp = |s: &'static [u8]| HostPort::parse(s).unwrap();
        let k = ServerKeyRef::rfc3261(BR, hp(b"[2001:db8::1]:5060"), Method::Invite).to_key();
        let same = ServerKeyRef::rfc3261(BR, hp(b"[2001:DB8:0:0::1]:5060"), Method::Invite);
        assert_eq!(same.hash(), k.hash());
        assert!(same.matches(&k));
        let k4 = ServerKeyRef::rfc3261(BR, hp(b"192.0.2.1"), Method::Invite).to_key();
        assert!(ServerKeyRef::rfc3261(BR, hp(b"192.0.2.1"), Method::Invite).matches(&k4));
        assert!(!ServerKeyRef::rfc3261(BR, hp(b"192.0.2.2"), Method::Invite).matches(&k4));
    }

    #[test]
    fn server_key_from_top_via() {
        let via = Via::parse(b"SIP/2.0/UDP PC33.atlanta.com:5060;branch=z9hG4bK776asdhds").unwrap();
        let k = ServerKeyRef::from_via(&via, Method::Invite).unwrap();
        assert!(k.matches(&ServerKeyRef::rfc3261(BR, sent_by(), Method::Invite).to_key()));
        // Without the cookie (or without a branch), the pre-3261 rules apply.
        let old = Via::parse(b"SIP/2.0/UDP pc33.atlanta.com;branch=776asdhds").unwrap();
        assert!(ServerKeyRef::from_via(&old, Method::Invite).is_none());
        let none = Via::parse(b"SIP/2.0/UDP pc33.atlanta.com").unwrap();
        assert!(ServerKeyRef::from_via(&none, Method::Invite).is_none());
    }

    #[test]
    fn canonical_sent_by_writes_addresses_and_ports_as_display_does() {
        for text in [
            "0.0.0.0",
            "10.0.0.1:5060",
            "192.168.100.255:0",
            "255.255.255.255:65535",
            "127.0.0.1:9",
            "[2001:db8::1]:5061",
            "Example.COM:5070",
        ] {
            let hp = HostPort::parse(text.as_bytes()).unwrap();
            let mut buf = [0; SENT_BY_MAX];
            let want = match hp.host {
                Host::V4(a) => format!("{a}"),
                Host::V6(a) => format!("[{a}]"),
                Host::Domain(d) => d.to_ascii_lowercase(),
            } + &hp.port.map(|p| format!(":{p}")).unwrap_or_default();
            assert_eq!(canonical_sent_by(&hp, &mut buf), want.as_bytes(), "{text}");
        }
    }

    #[test]
    fn canonical_sent_by_fits_longest_hostname() {
        let name = [
            b"a".repeat(63),
            b"b".repeat(63),
            b"c".repeat(63),
            b"d".repeat(61),
        ]
        .join(&b'.');
        let text = [name.as_slice(), b":65535"].concat();
        let hp = HostPort::parse(&text).unwrap();
        let mut buf = [0; SENT_BY_MAX];
        assert_eq!(canonical_sent_by(&hp, &mut buf), text.as_slice());
    }

    #[test]
    fn server_key_ack_matches_invite_transaction() {
        let k = ServerKeyRef::rfc3261(BR, sent_by(), Method::Invite).to_key();
        let ack = ServerKeyRef::rfc3261(BR, sent_by(), Method::Ack);
        assert_eq!(ack.hash(), k.hash());
        assert!(ack.matches(&k));
        // But an ACK never matches a non-INVITE transaction.
        let bye = ServerKeyRef::rfc3261(BR, sent_by(), Method::Bye).to_key();
        assert!(!ack.matches(&bye));
    }

    #[test]
    fn server_key_cancel_is_its_own_transaction_but_finds_invite() {
        let invite = ServerKeyRef::rfc3261(BR, sent_by(), Method::Invite).to_key();
        let cancel = ServerKeyRef::rfc3261(BR, sent_by(), Method::Cancel);
        assert!(!cancel.matches(&invite));
        assert_ne!(cancel.hash(), invite.hash());
        let target = cancel.cancelled_invite();
        assert!(target.matches(&invite));
        assert_eq!(target.hash(), invite.hash());
        // The CANCEL's own transaction matches its retransmission.
        let cancel_key = cancel.to_key();
        assert!(ServerKeyRef::rfc3261(BR, sent_by(), Method::Cancel).matches(&cancel_key));
    }

    #[test]
    fn server_key_extension_method() {
        let m = Method::Other(b"FOO");
        let k = ServerKeyRef::rfc3261(BR, sent_by(), m).to_key();
        assert!(ServerKeyRef::rfc3261(BR, sent_by(), Method::Other(b"FOO")).matches(&k));
        // Methods are case-sensitive (§7.1).
        assert!(!ServerKeyRef::rfc3261(BR, sent_by(), Method::Other(b"foo")).matches(&k));
    }

    #[test]
    fn server_key_hash_collision_is_confirmed_by_fields() {
        // A forged key with the same hash but different fields must not match.
        let k = ServerKeyRef::rfc3261(BR, sent_by(), Method::Invite).to_key();
        let mut forged = ServerKeyRef::rfc3261(b"z9hG4bKother", sent_by(), Method::Invite);
        forged.hash = k.hash();
        assert!(!forged.matches(&k));
    }

    #[test]
    fn server_key_long_fields_spill_but_match() {
        let long_branch = [b"z9hG4bK".as_slice(), &[b'x'; 300]].concat();
        let k = ServerKeyRef::rfc3261(&long_branch, sent_by(), Method::Options).to_key();
        assert!(ServerKeyRef::rfc3261(&long_branch, sent_by(), Method::Options).matches(&k));
    }

    #[test]
    fn legacy_invite_retransmission_matches() {
        let k = ServerKeyRef::legacy(legacy_invite(), Method::Invite).to_key();
        assert!(ServerKeyRef::legacy(legacy_invite(), Method::Invite).matches(&k));
        for changed in [
            LegacyFields {
                request_uri: b"sip:carol@biloxi.com",
                ..legacy_invite()
            },
            LegacyFields {
                to_tag: b"xyz",
                ..legacy_invite()
            },
            LegacyFields {
                from_tag: b"other",
                ..legacy_invite()
            },
            LegacyFields {
                call_id: b"A84B4C76E66710", // Call-ID is case-sensitive
                ..legacy_invite()
            },
            LegacyFields {
                cseq: 314160,
                ..legacy_invite()
            },
            LegacyFields {
                top_via: b"SIP/2.0/UDP pc34.atlanta.com",
                ..legacy_invite()
            },
        ] {
            assert!(
                !ServerKeyRef::legacy(changed, Method::Invite).matches(&k),
                "{changed:?}"
            );
        }
    }

    #[test]
    fn legacy_ack_matches_by_response_to_tag() {
        let mut k = ServerKeyRef::legacy(legacy_invite(), Method::Invite).to_key();
        let ack_fields = LegacyFields {
            to_tag: b"a6c85cf",
            ..legacy_invite()
        };
        let ack = ServerKeyRef::legacy(ack_fields, Method::Ack);
        assert_eq!(ack.hash(), k.hash(), "To tag is not hashed");
        // Until we know the tag of our response, the ACK cannot match.
        assert!(!ack.matches(&k));
        k.set_response_to_tag(b"a6c85cf");
        assert!(ack.matches(&k));
        // An ACK with another To tag (e.g. for a 2xx from another fork) does not.
        let other = ServerKeyRef::legacy(
            LegacyFields {
                to_tag: b"314159",
                ..legacy_invite()
            },
            Method::Ack,
        );
        assert!(!other.matches(&k));
        // INVITE retransmissions still match by the request's (absent) To tag.
        assert!(ServerKeyRef::legacy(legacy_invite(), Method::Invite).matches(&k));
    }

    #[test]
    fn legacy_cancel_finds_invite() {
        let invite = ServerKeyRef::legacy(legacy_invite(), Method::Invite).to_key();
        let cancel = ServerKeyRef::legacy(legacy_invite(), Method::Cancel);
        assert!(!cancel.matches(&invite));
        assert!(cancel.cancelled_invite().matches(&invite));
        assert!(cancel.is_legacy());
    }

    #[test]
    fn legacy_and_rfc3261_keys_never_match_each_other() {
        let legacy = ServerKeyRef::legacy(legacy_invite(), Method::Invite).to_key();
        let modern = ServerKeyRef::rfc3261(BR, sent_by(), Method::Invite);
        assert!(!modern.matches(&legacy));
        let mut forged = ServerKeyRef::legacy(legacy_invite(), Method::Invite);
        let modern_key = modern.to_key();
        forged.hash = modern_key.hash();
        assert!(!forged.matches(&modern_key));
    }

    #[test]
    fn client_key_branch_and_cseq_method() {
        let k = ClientKeyRef::new(BR, Method::Invite).to_key();
        assert!(ClientKeyRef::new(BR, Method::Invite).matches(&k));
        assert!(ClientKeyRef::new(b"Z9HG4BK776ASDHDS", Method::Invite).matches(&k));
        // A CANCEL shares the branch but is its own client transaction (§17.1.3).
        assert!(!ClientKeyRef::new(BR, Method::Cancel).matches(&k));
        assert!(!ClientKeyRef::new(b"z9hG4bKx", Method::Invite).matches(&k));
        assert_eq!(k.branch(), BR);
        assert_eq!(k.method(), b"INVITE");
    }

    #[test]
    fn branch_hash_is_stable_case_folded_and_spreads() {
        assert_eq!(branch_hash(BR), branch_hash(BR));
        assert_eq!(branch_hash(BR), branch_hash(b"Z9HG4BK776ASDHDS"));
        // Branches spread over shards.
        let mut seen = [0usize; 4];
        for i in 0..1000u32 {
            seen[(branch_hash(format!("z9hG4bK{i}").as_bytes()) % 4) as usize] += 1;
        }
        assert!(seen.iter().all(|&c| c > 150), "{seen:?}");
    }

    #[test]
    fn legacy_request_hash_is_stable_and_tells_cseq_apart() {
        let h = legacy_request_hash(b"a84b4c76e66710", 314159);
        assert_eq!(h, legacy_request_hash(b"a84b4c76e66710", 314159));
        assert_ne!(h, legacy_request_hash(b"a84b4c76e66710", 314160));
    }

    #[test]
    fn branch_generator_embeds_shard() {
        let mut g = BranchGenerator::new(0x2a, 12345);
        let b = g.next_branch();
        assert_eq!(b.as_bytes().len(), 28);
        assert!(b.as_str().starts_with("z9hG4bKc002a"));
        assert!(b.as_bytes().starts_with(BRANCH_PREFIX));
        assert_eq!(&BRANCH_PREFIX[..7], MAGIC_COOKIE);
        assert_eq!(BRANCH_PREFIX[7], BRANCH_TAG);
        assert!(is_rfc3261_branch(b.as_bytes()));
        assert_eq!(parse_shard(b.as_bytes()), Some(0x2a));
        let mut g = BranchGenerator::new(u16::MAX, 0);
        assert_eq!(parse_shard(g.next_branch().as_bytes()), Some(u16::MAX));
    }

    #[test]
    fn branch_generator_unique() {
        let mut g = BranchGenerator::new(3, 0xdead_beef);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            assert!(seen.insert(g.next_branch()));
        }
        // Another seed gives other branches.
        let mut other = BranchGenerator::new(3, 0xfeed);
        assert!(!seen.contains(&other.next_branch()));
    }

    #[test]
    fn parse_shard_allows_suffix_and_rejects_foreign() {
        let mut g = BranchGenerator::new(7, 1);
        let b = g.next_branch();
        let with_suffix = [b.as_bytes(), b".loop1234"].concat();
        assert_eq!(parse_shard(&with_suffix), Some(7));
        assert_eq!(parse_shard(b"z9hG4bK776asdhds"), None);
        assert_eq!(parse_shard(b"z9hG4bKc0007"), None, "truncated");
        assert_eq!(parse_shard(b"z9hG4bKc00g7aaaaaaaaaaaaaaaa"), None);
        assert_eq!(parse_shard(b"z9hG4bKc0007aaaaaaaaaaaaaaaZ"), None);
        assert_eq!(parse_shard(b"776asdhds"), None);
        assert_eq!(parse_shard(b""), None);
    }
}
