//! Host names of next hops (RFC 3263 §4.2, A/AAAA part): a per-shard cache in front
//! of the system resolver, which the runtime runs off the reactor (a blocking
//! `getaddrinfo` on glommio's blocking pool). The sans-IO core only asks for names
//! and parks the requests that wait for them; NAPTR/SRV lookups come later.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use smallvec::SmallVec;

use crate::txn::table::TxnId;

/// How long an answer is trusted (the system resolver gives no TTL).
const POSITIVE_TTL: Duration = Duration::from_secs(60);
/// How long a failed lookup is remembered, so a dead name is not asked for on
/// every request.
const NEGATIVE_TTL: Duration = Duration::from_secs(10);
/// Names cached per shard before the cache starts over.
const MAX_NAMES: usize = 4096;

#[derive(Debug)]
struct Entry {
    addrs: SmallVec<[IpAddr; 2]>,
    expires: Instant,
}

/// What the cache knows about a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// The first address of the answer.
    Found(IpAddr),
    /// The name did not resolve (recently).
    Failed,
    /// Not known: the caller parks its request and asks (once per name).
    Unknown { ask: bool },
}

/// The per-shard resolver state.
#[derive(Debug, Default)]
pub(crate) struct Resolver {
    cache: ahash::AHashMap<Box<str>, Entry>,
    /// Server transactions waiting for a name, by name.
    waiting: ahash::AHashMap<Box<str>, SmallVec<[TxnId; 2]>>,
}

impl Resolver {
    /// Looks `name` up at `now`, preferring an address of the family of `v4`.
    pub(crate) fn lookup(&self, name: &str, now: Instant, v4: bool) -> Lookup {
        let key = name.trim_end_matches('.').to_ascii_lowercase();
        let key = key.as_str();
        match self.cache.get(key) {
            Some(e) if e.expires > now => match pick(&e.addrs, v4) {
                Some(ip) => Lookup::Found(ip),
                None => Lookup::Failed,
            },
            _ => Lookup::Unknown {
                ask: !self.waiting.contains_key(key),
            },
        }
    }

    /// Parks server transaction `id` until `name` resolves.
    pub(crate) fn wait(&mut self, name: &str, id: TxnId) {
        let key: Box<str> = name.trim_end_matches('.').to_ascii_lowercase().into();
        self.waiting.entry(key).or_default().push(id);
    }

    /// Stores the answer for `name` (empty: it failed) and returns the parked
    /// transactions, to be routed again.
    pub(crate) fn answer(
        &mut self,
        name: &str,
        addrs: &[IpAddr],
        now: Instant,
    ) -> SmallVec<[TxnId; 2]> {
        let key: Box<str> = name.trim_end_matches('.').to_ascii_lowercase().into();
        if self.cache.len() >= MAX_NAMES {
            self.cache.retain(|_, e| e.expires > now);
            if self.cache.len() >= MAX_NAMES {
                self.cache.clear();
            }
        }
        let ttl = if addrs.is_empty() {
            NEGATIVE_TTL
        } else {
            POSITIVE_TTL
        };
        let waiting = self.waiting.remove(&key).unwrap_or_default();
        self.cache.insert(
            key,
            Entry {
                addrs: addrs.iter().copied().collect(),
                expires: now + ttl,
            },
        );
        waiting
    }
}

/// The first address of the wanted family, else the first of any.
fn pick(addrs: &[IpAddr], v4: bool) -> Option<IpAddr> {
    addrs
        .iter()
        .find(|a| a.is_ipv4() == v4)
        .or_else(|| addrs.first())
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::txn::table::TxnTable;

    #[test]
    fn unknown_then_found_then_expired() {
        let mut r = Resolver::default();
        let now = Instant::now();
        assert_eq!(
            r.lookup("Example.test", now, true),
            Lookup::Unknown { ask: true }
        );
        let mut table: TxnTable<()> = TxnTable::new(10, Default::default());
        let view = crate::txn::key::ClientKeyRef::new(b"z9hG4bK1", crate::sip::Method::Invite);
        let mut wheel: crate::txn::TimerWheel<crate::txn::table::TxnTimer> =
            crate::txn::TimerWheel::new(now);
        let id = table
            .insert_client(
                now,
                &view,
                crate::txn::Reliability::Reliable,
                (),
                &mut wheel,
            )
            .unwrap();
        r.wait("example.test", id);
        // Asked once: the second request waits without asking again.
        assert_eq!(
            r.lookup("example.test", now, true),
            Lookup::Unknown { ask: false }
        );
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        let v4: IpAddr = "192.0.2.1".parse().unwrap();
        let woken = r.answer("EXAMPLE.test.", &[v6, v4], now);
        assert_eq!(woken.as_slice(), &[id]);
        assert_eq!(r.lookup("example.test", now, true), Lookup::Found(v4));
        assert_eq!(r.lookup("example.test", now, false), Lookup::Found(v6));
        assert_eq!(
            r.lookup("example.test", now + POSITIVE_TTL, true),
            Lookup::Unknown { ask: true }
        );
    }

    #[test]
    fn failures_are_remembered_briefly() {
        let mut r = Resolver::default();
        let now = Instant::now();
        r.answer("nowhere.invalid", &[], now);
        assert_eq!(r.lookup("nowhere.invalid", now, true), Lookup::Failed);
        assert_eq!(
            r.lookup("nowhere.invalid", now + NEGATIVE_TTL, true),
            Lookup::Unknown { ask: true }
        );
    }
}
