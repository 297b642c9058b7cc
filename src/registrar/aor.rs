//! Address-of-record keys: the canonical form of a To URI under which bindings are
//! filed (RFC 3261 §10.3 step 5), and the shard that owns each key (DESIGN.md §3).
//!
//! Canonical form: `scheme:user@host`, where
//! - the scheme is `sip` or `sips`, kept distinct: RFC 3261 §19.1.4 says "a SIP and
//!   SIPS URI are never equivalent", and §10.3 step 5 only removes parameters and
//!   escapes, so `sips:alice@example.com` is a different AOR from
//!   `sip:alice@example.com`;
//! - the user part has its `%HH` escapes resolved (step 5) and keeps its case
//!   (userinfo compares case-sensitively, §19.1.4); the password is dropped;
//! - the host is lowercased (hosts compare case-insensitively, §19.1.4), IP
//!   literals written in their standard form (`[::1]`);
//! - the port and every URI parameter and header are dropped (step 5 removes the
//!   parameters, including `user=phone`; the port is dropped too, as Kamailio and
//!   OpenSIPS do, so `sip:alice@example.com:5060` is the same AOR).

use std::fmt;
use std::sync::Arc;

use smallvec::SmallVec;

use crate::sip::host::Host;
use crate::sip::uri::{SipUri, Uri};

/// A canonical address-of-record, owned and compact: one reference-counted slice,
/// so that the copies a REGISTER makes (the location's record and index key, each
/// change for the store) share it instead of each allocating one.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AorKey(Arc<[u8]>);

/// Why a URI cannot be an address-of-record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AorError {
    /// Only SIP and SIPS URIs name an AOR (RFC 3261 §10.2 "To").
    #[error("address-of-record is not a SIP or SIPS URI")]
    NotSip,
    /// The user part has a broken `%HH` escape.
    #[error("bad escape in the user part")]
    BadEscape,
}

impl AorKey {
    /// The canonical AOR of a URI (RFC 3261 §10.3 step 5).
    pub fn from_uri(uri: &Uri<'_>) -> Result<AorKey, AorError> {
        match uri {
            Uri::Sip(u) => AorKey::from_sip_uri(u),
            _ => Err(AorError::NotSip),
        }
    }

    /// The canonical AOR of a SIP or SIPS URI.
    pub fn from_sip_uri(u: &SipUri<'_>) -> Result<AorKey, AorError> {
        // Assembled on the stack, then copied into its one allocation.
        let mut key: SmallVec<[u8; 128]> = SmallVec::new();
        key.extend_from_slice(if u.secure { b"sips:" } else { b"sip:" });
        if let Some(user) = u.user {
            if memchr::memchr(b'%', user).is_some() {
                let unescaped =
                    crate::sip::text::percent_decode(user).ok_or(AorError::BadEscape)?;
                key.extend_from_slice(&unescaped);
            } else {
                key.extend_from_slice(user);
            }
            key.push(b'@');
        }
        push_host(&mut key, &u.host);
        Ok(AorKey(Arc::from(key.as_slice())))
    }

    /// A key read back from storage: the bytes are trusted to be canonical.
    pub(crate) fn from_canonical(bytes: &[u8]) -> AorKey {
        AorKey(bytes.into())
    }

    /// The canonical text, e.g. `sip:alice@example.com`.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Heap bytes held by the key: the text and its reference counts.
    pub fn heap_bytes(&self) -> usize {
        super::location::ARC_HEADER + self.0.len()
    }
}

fn push_host(key: &mut SmallVec<[u8; 128]>, host: &Host<'_>) {
    match host {
        Host::Domain(d) => key.extend(d.bytes().map(|b| b.to_ascii_lowercase())),
        // Display writes the standard text form (`[…]` for IPv6).
        other => key.extend_from_slice(other.to_string().as_bytes()),
    }
}

impl fmt::Debug for AorKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AorKey({:?})", String::from_utf8_lossy(&self.0))
    }
}

impl fmt::Display for AorKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.0))
    }
}

/// Fixed seeds: every core (and every process of this build) must map an AOR to
/// the same shard. The store never persists hash values, so a different build
/// hashing differently only moves bindings between shards at load time.
const SEEDS: [u64; 4] = [
    0x243f_6a88_85a3_08d3,
    0x1319_8a2e_0370_7344,
    0xa409_3822_299f_31d0,
    0x082e_fa98_ec4e_6c89,
];

/// The shard (0..n) that owns the bindings of `key`: `hash(AOR) % n`.
/// `n` of 0 is treated as 1.
pub(crate) fn shard_of_aor(key: &AorKey, n: usize) -> usize {
    let state = ahash::RandomState::with_seeds(SEEDS[0], SEEDS[1], SEEDS[2], SEEDS[3]);
    (state.hash_one(key.as_bytes()) % n.max(1) as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> AorKey {
        AorKey::from_uri(&Uri::parse(s.as_bytes()).unwrap()).unwrap()
    }

    #[test]
    fn aor_canonical_form_drops_port_params_and_headers() {
        // RFC 3261 §10.3 step 5.
        assert_eq!(
            key("sip:alice@Atlanta.Example.COM:5070;user=phone;transport=tcp?subject=x").as_bytes(),
            b"sip:alice@atlanta.example.com"
        );
        assert_eq!(key("SIP:alice@example.com"), key("sip:alice@example.com"));
        assert_eq!(
            key("sip:alice:secret@example.com").as_bytes(),
            b"sip:alice@example.com"
        );
    }

    #[test]
    fn aor_user_is_unescaped_and_case_sensitive() {
        assert_eq!(key("sip:%61lice@example.com"), key("sip:alice@example.com"));
        // §19.1.4: userinfo is case-sensitive.
        assert_ne!(key("sip:Alice@example.com"), key("sip:alice@example.com"));
        let bad = Uri::parse(b"sip:a%4@example.com");
        // Either the URI parser or the key rejects a broken escape.
        if let Ok(u) = bad {
            assert_eq!(AorKey::from_uri(&u), Err(AorError::BadEscape));
        }
    }

    #[test]
    fn aor_sips_is_distinct_from_sip() {
        // §19.1.4: a SIP and SIPS URI are never equivalent.
        assert_eq!(
            key("sips:alice@example.com").as_bytes(),
            b"sips:alice@example.com"
        );
        assert_ne!(key("sips:alice@example.com"), key("sip:alice@example.com"));
    }

    #[test]
    fn aor_ip_hosts_and_no_user() {
        assert_eq!(key("sip:bob@[0:0::1]:5060").as_bytes(), b"sip:bob@[::1]");
        assert_eq!(key("sip:192.0.2.1").as_bytes(), b"sip:192.0.2.1");
        let tel = Uri::parse(b"tel:+15551234").unwrap();
        assert_eq!(AorKey::from_uri(&tel), Err(AorError::NotSip));
    }

    #[test]
    fn shard_of_aor_is_stable_and_in_range() {
        let k = key("sip:alice@example.com");
        for n in 1..9 {
            let s = shard_of_aor(&k, n);
            assert!(s < n);
            assert_eq!(s, shard_of_aor(&k.clone(), n));
        }
        assert_eq!(shard_of_aor(&k, 0), 0);
        // Keys spread over shards.
        let mut seen = [false; 4];
        for i in 0..64 {
            seen[shard_of_aor(&key(&format!("sip:u{i}@example.com")), 4)] = true;
        }
        assert!(seen.iter().all(|&s| s));
    }
}
