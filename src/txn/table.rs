//! A per-shard transaction table: slab storage for the state machines, indexes from
//! matching keys to slab slots, the wiring of machine timer requests to the shard's
//! [`TimerWheel`], and the `--max-transactions` cap.
//!
//! The index maps a key's 64-bit hash to the newest entry with that hash; entries
//! sharing a hash are chained through the slab, and every candidate is confirmed
//! against its stored key. Chains stay short by the hash's quality and bounded by
//! the cap.
//!
//! Timer payloads carry a [`TxnId`] (slot + generation), so a timer of a removed
//! transaction that races with its removal is recognised and dropped.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::time::Instant;

use super::key::{ClientKey, ClientKeyRef, ServerKey, ServerKeyRef};
use super::timer::{TimerHandle, TimerWheel};
use super::{
    Action, Actions, ClientEvent, ClientInvite, ClientNonInvite, Reliability, ServerEvent,
    ServerInvite, ServerNonInvite, TimerKind, Timers, TIMER_LANES,
};

const NIL: u32 = u32::MAX;

/// Names a live transaction; stale once it is removed, even if its slot is reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct TxnId {
    index: u32,
    generation: u32,
}

/// The wheel payload of a transaction timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TxnTimer {
    /// The transaction that armed it.
    pub id: TxnId,
    /// Which timer.
    pub kind: TimerKind,
}

/// Why a transaction could not be created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum TableError {
    /// The shard holds `--max-transactions` live transactions: answer
    /// `503 Service Unavailable` with Retry-After instead.
    #[error("transaction table full")]
    Full,
    /// A transaction with this key exists (the request is a retransmission).
    #[error("transaction exists")]
    Exists(TxnId),
    /// An ACK never creates a server transaction (§17.2.3: it matches an INVITE's,
    /// or, for a 2xx, is forwarded without one).
    #[error("ACK creates no transaction")]
    Ack,
}

/// One of the four §17 state machines (named as RFC 3261 §17 names them).
#[derive(Debug, Clone)]
#[allow(clippy::enum_variant_names)]
pub(crate) enum Machine {
    ClientInvite(ClientInvite),
    ClientNonInvite(ClientNonInvite),
    ServerInvite(ServerInvite),
    ServerNonInvite(ServerNonInvite),
}

impl Machine {
    fn on_timer(&mut self, kind: TimerKind, out: &mut Actions) {
        match self {
            Machine::ClientInvite(m) => m.on_event(ClientEvent::Timer(kind), out),
            Machine::ClientNonInvite(m) => m.on_event(ClientEvent::Timer(kind), out),
            Machine::ServerInvite(m) => m.on_event(ServerEvent::Timer(kind), out),
            Machine::ServerNonInvite(m) => m.on_event(ServerEvent::Timer(kind), out),
        }
    }
}

/// The key a transaction is indexed under.
#[derive(Debug, Clone)]
pub(crate) enum Key {
    Server(ServerKey),
    Client(ClientKey),
}

impl Key {
    fn hash(&self) -> u64 {
        match self {
            Key::Server(k) => k.hash(),
            Key::Client(k) => k.hash(),
        }
    }
}

/// A live transaction.
#[derive(Debug)]
pub(crate) struct Entry<T> {
    /// Its key (private: changing it would desynchronise the index).
    key: Key,
    /// Its state machine; drive it through the table so timers stay wired.
    machine: Machine,
    timers: [Option<TimerHandle>; TIMER_LANES],
    /// Next entry with the same key hash.
    chain: u32,
    /// The caller's per-transaction data (proxy context, bytes to retransmit).
    pub data: T,
}

impl<T> Entry<T> {
    /// The state machine.
    #[cfg(test)]
    pub(crate) fn machine(&self) -> &Machine {
        &self.machine
    }
}

#[derive(Debug)]
struct Slot<T> {
    generation: u32,
    entry: Option<Entry<T>>,
}

/// Key hashes are already ahash outputs: index them as they are.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only u64 keys are hashed; fold anything else in for completeness.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type Index = HashMap<u64, u32, BuildHasherDefault<PassThrough>>;

/// The transactions of one shard.
#[derive(Debug)]
pub(crate) struct TxnTable<T> {
    slots: Vec<Slot<T>>,
    free: Vec<u32>,
    server_index: Index,
    client_index: Index,
    len: usize,
    max: usize,
    timers: Timers,
}

impl<T> TxnTable<T> {
    /// A table holding at most `max` live transactions (`--max-transactions`),
    /// whose machines use `timers`.
    pub(crate) fn new(max: usize, timers: Timers) -> Self {
        // Slot indices are u32 with NIL reserved.
        let max = max.min(NIL as usize - 1);
        TxnTable {
            slots: Vec::new(),
            free: Vec::new(),
            server_index: Index::default(),
            client_index: Index::default(),
            len: 0,
            max,
            timers,
        }
    }

    /// Live transactions.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The timer configuration.
    #[cfg(test)]
    pub(crate) fn timers(&self) -> &Timers {
        &self.timers
    }

    /// The transaction an incoming request belongs to (§17.2.3).
    pub(crate) fn find_server(&self, view: &ServerKeyRef<'_>) -> Option<TxnId> {
        self.find(&self.server_index, view.hash(), |k| match k {
            Key::Server(k) => view.matches(k),
            Key::Client(_) => false,
        })
    }

    /// The transaction an incoming response belongs to (§17.1.3).
    pub(crate) fn find_client(&self, view: &ClientKeyRef<'_>) -> Option<TxnId> {
        self.find(&self.client_index, view.hash(), |k| match k {
            Key::Client(k) => view.matches(k),
            Key::Server(_) => false,
        })
    }

    fn find(&self, index: &Index, hash: u64, eq: impl Fn(&Key) -> bool) -> Option<TxnId> {
        let mut cur = *index.get(&hash)?;
        while cur != NIL {
            let slot = self.slots.get(cur as usize)?;
            let entry = slot.entry.as_ref()?;
            if eq(&entry.key) {
                return Some(TxnId {
                    index: cur,
                    generation: slot.generation,
                });
            }
            cur = entry.chain;
        }
        None
    }

    /// Creates the server transaction for a new request (an INVITE one when the
    /// key's method is INVITE). The caller passes the request to the TU.
    pub(crate) fn insert_server(
        &mut self,
        view: &ServerKeyRef<'_>,
        reliability: Reliability,
        data: T,
    ) -> Result<TxnId, TableError> {
        if view.is_ack() {
            return Err(TableError::Ack);
        }
        if let Some(id) = self.find_server(view) {
            return Err(TableError::Exists(id));
        }
        let key = view.to_key();
        let machine = if key.method() == b"INVITE" {
            Machine::ServerInvite(ServerInvite::new(&self.timers, reliability))
        } else {
            Machine::ServerNonInvite(ServerNonInvite::new(&self.timers, reliability))
        };
        self.insert(Key::Server(key), machine, data)
    }

    /// Creates the client transaction for a request the caller has just sent (an
    /// INVITE one when the key's method is INVITE), arming its timers.
    pub(crate) fn insert_client<P: From<TxnTimer>>(
        &mut self,
        now: Instant,
        view: &ClientKeyRef<'_>,
        reliability: Reliability,
        data: T,
        wheel: &mut TimerWheel<P>,
    ) -> Result<TxnId, TableError> {
        if let Some(id) = self.find_client(view) {
            return Err(TableError::Exists(id));
        }
        if self.len >= self.max {
            return Err(TableError::Full);
        }
        let key = view.to_key();
        let mut out = Actions::new();
        let machine = if key.method() == b"INVITE" {
            Machine::ClientInvite(ClientInvite::new(&self.timers, reliability, &mut out))
        } else {
            Machine::ClientNonInvite(ClientNonInvite::new(&self.timers, reliability, &mut out))
        };
        let id = self.insert(Key::Client(key), machine, data)?;
        let mut effects = Actions::new();
        self.apply(now, id, &out, wheel, &mut effects);
        Ok(id)
    }

    fn insert(&mut self, key: Key, machine: Machine, data: T) -> Result<TxnId, TableError> {
        if self.len >= self.max {
            return Err(TableError::Full);
        }
        let hash = key.hash();
        let index = match &key {
            Key::Server(_) => &mut self.server_index,
            Key::Client(_) => &mut self.client_index,
        };
        let slot = match self.free.pop() {
            Some(i) => i,
            None => {
                // `len < max < NIL` and every slot below `slots.len()` is either
                // live or free, so this index fits.
                let i = u32::try_from(self.slots.len()).map_err(|_| TableError::Full)?;
                self.slots.push(Slot {
                    generation: 0,
                    entry: None,
                });
                i
            }
        };
        let chain = index.insert(hash, slot).unwrap_or(NIL);
        let s = &mut self.slots[slot as usize];
        s.entry = Some(Entry {
            key,
            machine,
            timers: [None; TIMER_LANES],
            chain,
            data,
        });
        self.len += 1;
        Ok(TxnId {
            index: slot,
            generation: s.generation,
        })
    }

    /// The live transaction `id` names.
    pub(crate) fn get(&self, id: TxnId) -> Option<&Entry<T>> {
        let s = self.slots.get(id.index as usize)?;
        (s.generation == id.generation)
            .then_some(s.entry.as_ref())
            .flatten()
    }

    /// The live transaction `id` names, mutably.
    pub(crate) fn get_mut(&mut self, id: TxnId) -> Option<&mut Entry<T>> {
        let s = self.slots.get_mut(id.index as usize)?;
        if s.generation != id.generation {
            return None;
        }
        s.entry.as_mut()
    }

    /// Records the To tag of the response a server transaction sent, for matching
    /// a pre-RFC 3261 ACK (§17.2.3). The tag is not part of the key's hash, so the
    /// index stays valid.
    #[cfg(test)]
    pub(crate) fn set_response_to_tag(&mut self, id: TxnId, tag: &[u8]) {
        if let Some(Entry {
            key: Key::Server(k),
            ..
        }) = self.get_mut(id)
        {
            k.set_response_to_tag(tag);
        }
    }

    /// Removes a transaction, cancelling its timers; returns its data. Call it
    /// when an event reports [`Action::Terminated`].
    pub(crate) fn remove<P>(&mut self, id: TxnId, wheel: &mut TimerWheel<P>) -> Option<T> {
        let s = self.slots.get_mut(id.index as usize)?;
        if s.generation != id.generation {
            return None;
        }
        let entry = s.entry.take()?;
        s.generation = s.generation.wrapping_add(1);
        for h in entry.timers.iter().flatten() {
            wheel.cancel(*h);
        }
        self.unchain(id.index, &entry.key, entry.chain);
        self.free.push(id.index);
        self.len -= 1;
        Some(entry.data)
    }

    /// Takes slot `index` (whose entry has been taken out, with key `key` and
    /// successor `next`) out of its hash chain.
    fn unchain(&mut self, index: u32, key: &Key, next: u32) {
        let hash = key.hash();
        let map = match key {
            Key::Server(_) => &mut self.server_index,
            Key::Client(_) => &mut self.client_index,
        };
        let Some(head) = map.get(&hash).copied() else {
            return;
        };
        if head == index {
            if next == NIL {
                map.remove(&hash);
            } else {
                map.insert(hash, next);
            }
            return;
        }
        let mut cur = head;
        while cur != NIL {
            let Some(e) = self
                .slots
                .get_mut(cur as usize)
                .and_then(|s| s.entry.as_mut())
            else {
                return;
            };
            if e.chain == index {
                e.chain = next;
                return;
            }
            cur = e.chain;
        }
    }

    /// Feeds a response to a client transaction. Effects for the caller (timer
    /// bookkeeping already done on `wheel`) are appended to `out`.
    pub(crate) fn client_event<P: From<TxnTimer>>(
        &mut self,
        now: Instant,
        id: TxnId,
        event: ClientEvent,
        wheel: &mut TimerWheel<P>,
        out: &mut Actions,
    ) {
        let mut actions = Actions::new();
        match self.get_mut(id).map(|e| &mut e.machine) {
            Some(Machine::ClientInvite(m)) => m.on_event(event, &mut actions),
            Some(Machine::ClientNonInvite(m)) => m.on_event(event, &mut actions),
            _ => return,
        }
        self.apply(now, id, &actions, wheel, out);
    }

    /// Feeds a request retransmission, an ACK, a TU response or a transport error
    /// to a server transaction. Effects for the caller are appended to `out`.
    pub(crate) fn server_event<P: From<TxnTimer>>(
        &mut self,
        now: Instant,
        id: TxnId,
        event: ServerEvent,
        wheel: &mut TimerWheel<P>,
        out: &mut Actions,
    ) {
        let mut actions = Actions::new();
        match self.get_mut(id).map(|e| &mut e.machine) {
            Some(Machine::ServerInvite(m)) => m.on_event(event, &mut actions),
            Some(Machine::ServerNonInvite(m)) => m.on_event(event, &mut actions),
            _ => return,
        }
        self.apply(now, id, &actions, wheel, out);
    }

    /// Feeds a fired transaction timer (from [`TimerWheel::advance`]) to its
    /// machine; Timer C, which no machine owns, comes out as
    /// `Action::Timeout(TimerKind::C)` for the TU. Timers of removed transactions
    /// are ignored. Effects for the caller
    /// are appended to `out`; the transaction is `timer.id`.
    pub(crate) fn on_timer<P: From<TxnTimer>>(
        &mut self,
        now: Instant,
        timer: TxnTimer,
        wheel: &mut TimerWheel<P>,
        out: &mut Actions,
    ) {
        let Some(entry) = self.get_mut(timer.id) else {
            return;
        };
        let lane = &mut entry.timers[timer.kind.lane()];
        // The handle that fired is spent.
        if lane.is_some_and(|h| !wheel.is_pending(h)) {
            *lane = None;
        }
        let mut actions = Actions::new();
        if timer.kind == TimerKind::C {
            // The machines do not own Timer C: hand it to the TU (§16.8).
            actions.push(Action::Timeout(TimerKind::C));
        } else {
            entry.machine.on_timer(timer.kind, &mut actions);
        }
        self.apply(now, timer.id, &actions, wheel, out);
    }

    /// Arms or disarms `kind` (lane by lane) on behalf of the TU: the proxy's
    /// Timer C (§16.6 step 11, §16.8). `None` disarms.
    pub(crate) fn set_timer<P: From<TxnTimer>>(
        &mut self,
        now: Instant,
        id: TxnId,
        kind: TimerKind,
        after: Option<std::time::Duration>,
        wheel: &mut TimerWheel<P>,
    ) {
        let action = match after {
            Some(d) => Action::StartTimer(kind, d),
            None => Action::StopTimer(kind),
        };
        let mut ignored = Actions::new();
        self.apply(now, id, &[action], wheel, &mut ignored);
    }

    /// Carries out timer actions on `wheel`; passes the others on to `out`.
    fn apply<P: From<TxnTimer>>(
        &mut self,
        now: Instant,
        id: TxnId,
        actions: &[Action],
        wheel: &mut TimerWheel<P>,
        out: &mut Actions,
    ) {
        let Some(entry) = self.get_mut(id) else {
            return;
        };
        for &a in actions {
            match a {
                Action::StartTimer(kind, after) => {
                    let lane = &mut entry.timers[kind.lane()];
                    if let Some(h) = lane.take() {
                        wheel.cancel(h);
                    }
                    // The wheel holds u32::MAX - 1 timers, more than
                    // TIMER_LANES × any table's cap; if it were full anyway, the
                    // lifetime timer of a transaction would be missing and the
                    // transaction would live until removed by its TU.
                    *lane = wheel
                        .insert_after(now, after, P::from(TxnTimer { id, kind }))
                        .ok();
                }
                Action::StopTimer(kind) => {
                    if let Some(h) = entry.timers[kind.lane()].take() {
                        wheel.cancel(h);
                    }
                }
                Action::Terminated => {
                    for h in entry.timers.iter_mut().filter_map(Option::take) {
                        wheel.cancel(h);
                    }
                    out.push(a);
                }
                _ => out.push(a),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::{HostPort, Method};
    use crate::txn::key::{LegacyFields, ServerKeyRef};
    use std::time::Duration;

    const BR: &[u8] = b"z9hG4bK776asdhds";
    fn sent_by() -> HostPort<'static> {
        HostPort::parse(b"pc33.atlanta.com").unwrap()
    }

    fn setup(max: usize) -> (Instant, TxnTable<u32>, TimerWheel<TxnTimer>) {
        let t0 = Instant::now();
        (
            t0,
            TxnTable::new(max, Timers::default()),
            TimerWheel::new(t0),
        )
    }

    /// Advances the wheel to `at` and feeds every fired timer to the table.
    fn tick(
        table: &mut TxnTable<u32>,
        wheel: &mut TimerWheel<TxnTimer>,
        at: Instant,
        out: &mut Actions,
    ) {
        let mut fired = Vec::new();
        wheel.advance(at, &mut fired);
        for t in fired {
            table.on_timer(at, t, wheel, out);
        }
    }

    #[test]
    fn table_server_invite_ack_and_cancel_lookup() {
        let (t0, mut table, mut wheel) = setup(10);
        let invite = ServerKeyRef::rfc3261(BR, sent_by(), Method::Invite);
        let id = table
            .insert_server(&invite, Reliability::Unreliable, 1)
            .unwrap();
        assert!(matches!(
            table.get(id).unwrap().machine(),
            Machine::ServerInvite(_)
        ));
        // Retransmission and ACK find it; CANCEL does not, but finds it through
        // cancelled_invite.
        assert_eq!(table.find_server(&invite), Some(id));
        let ack = ServerKeyRef::rfc3261(BR, sent_by(), Method::Ack);
        assert_eq!(table.find_server(&ack), Some(id));
        assert_eq!(
            table.insert_server(&ack, Reliability::Unreliable, 0),
            Err(TableError::Ack)
        );
        let cancel = ServerKeyRef::rfc3261(BR, sent_by(), Method::Cancel);
        assert_eq!(table.find_server(&cancel), None);
        assert_eq!(table.find_server(&cancel.cancelled_invite()), Some(id));
        let cid = table
            .insert_server(&cancel, Reliability::Unreliable, 2)
            .unwrap();
        assert_ne!(cid, id);
        assert!(matches!(
            table.get(cid).unwrap().machine(),
            Machine::ServerNonInvite(_)
        ));
        assert_eq!(
            table.insert_server(&invite, Reliability::Unreliable, 3),
            Err(TableError::Exists(id))
        );
        // A 486, then the ACK: Confirmed, then Timer I ends it.
        let mut out = Actions::new();
        table.server_event(t0, id, ServerEvent::TuResponse(486), &mut wheel, &mut out);
        assert_eq!(out.as_slice(), [Action::SendResponse]);
        assert_eq!(wheel.len(), 2, "G and H armed");
        out.clear();
        table.server_event(t0, id, ServerEvent::Ack, &mut wheel, &mut out);
        assert!(out.is_empty());
        assert_eq!(wheel.len(), 1, "G and H stopped, I armed");
        tick(
            &mut table,
            &mut wheel,
            t0 + Duration::from_secs(5),
            &mut out,
        );
        assert_eq!(out.as_slice(), [Action::Terminated]);
        assert_eq!(table.remove(id, &mut wheel), Some(1));
        assert_eq!(table.find_server(&invite), None);
        assert_eq!(table.get(id).map(|e| e.data), None);
        assert_eq!(table.len(), 1);
    }

    #[test]
    fn table_client_timers_drive_retransmissions() {
        let (t0, mut table, mut wheel) = setup(10);
        let key = ClientKeyRef::new(BR, Method::Options);
        let id = table
            .insert_client(t0, &key, Reliability::Unreliable, 7, &mut wheel)
            .unwrap();
        assert_eq!(wheel.len(), 2, "E and F armed");
        let mut out = Actions::new();
        let mut at = t0;
        let mut retransmits = 0;
        while !out.contains(&Action::Terminated) {
            at += Duration::from_millis(10);
            let before = out.len();
            tick(&mut table, &mut wheel, at, &mut out);
            retransmits += out[before..]
                .iter()
                .filter(|a| **a == Action::RetransmitRequest)
                .count();
            out.retain(|a| *a != Action::RetransmitRequest);
        }
        assert_eq!(at - t0, Duration::from_secs(32), "Timer F");
        assert_eq!(
            out.as_slice(),
            [Action::Timeout(TimerKind::F), Action::Terminated]
        );
        // 0.5, 1.5, 3.5, 7.5, then every 4 s up to 31.5: 10 retransmissions.
        assert_eq!(retransmits, 10);
        assert_eq!(wheel.len(), 0);
        assert_eq!(table.find_client(&key), Some(id));
        assert_eq!(table.remove(id, &mut wheel), Some(7));
        assert_eq!(table.find_client(&key), None);
    }

    #[test]
    fn table_max_transactions_cap() {
        let (t0, mut table, mut wheel) = setup(2);
        let a = ServerKeyRef::rfc3261(b"z9hG4bKa", sent_by(), Method::Invite);
        let b = ServerKeyRef::rfc3261(b"z9hG4bKb", sent_by(), Method::Invite);
        let c = ServerKeyRef::rfc3261(b"z9hG4bKc", sent_by(), Method::Invite);
        let ida = table.insert_server(&a, Reliability::Reliable, 0).unwrap();
        table.insert_server(&b, Reliability::Reliable, 0).unwrap();
        assert_eq!(
            table.insert_server(&c, Reliability::Reliable, 0),
            Err(TableError::Full)
        );
        let k = ClientKeyRef::new(b"z9hG4bKc", Method::Invite);
        assert_eq!(
            table.insert_client(t0, &k, Reliability::Reliable, 0, &mut wheel),
            Err(TableError::Full)
        );
        table.remove(ida, &mut wheel);
        let idc = table.insert_server(&c, Reliability::Reliable, 0).unwrap();
        // The slot was reused; the old id is stale.
        assert_eq!(idc.index, ida.index);
        assert!(table.get(ida).is_none());
        assert!(table.remove(ida, &mut wheel).is_none());
    }

    #[test]
    fn table_stale_timer_after_remove_is_ignored() {
        let (t0, mut table, mut wheel) = setup(4);
        let key = ClientKeyRef::new(BR, Method::Invite);
        let id = table
            .insert_client(t0, &key, Reliability::Unreliable, 0, &mut wheel)
            .unwrap();
        let stale = TxnTimer {
            id,
            kind: TimerKind::A,
        };
        table.remove(id, &mut wheel);
        assert!(wheel.is_empty(), "timers cancelled on remove");
        let mut out = Actions::new();
        table.on_timer(t0, stale, &mut wheel, &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn table_hash_chain_with_equal_hashes() {
        // Two legacy keys differing only in the To tag share a hash (the tag is not
        // hashed): the chain must keep both findable and unlink either.
        let (_, mut table, mut wheel) = setup(8);
        let f = |to_tag: &'static [u8]| LegacyFields {
            request_uri: b"sip:bob@biloxi.com",
            to_tag,
            from_tag: b"1",
            call_id: b"cid",
            cseq: 1,
            top_via: b"SIP/2.0/UDP h",
        };
        let k1 = ServerKeyRef::legacy(f(b"t1"), Method::Bye);
        let k2 = ServerKeyRef::legacy(f(b"t2"), Method::Bye);
        let k3 = ServerKeyRef::legacy(f(b"t3"), Method::Bye);
        assert_eq!(k1.hash(), k2.hash());
        let id1 = table.insert_server(&k1, Reliability::Reliable, 1).unwrap();
        let id2 = table.insert_server(&k2, Reliability::Reliable, 2).unwrap();
        let id3 = table.insert_server(&k3, Reliability::Reliable, 3).unwrap();
        assert_eq!(table.find_server(&k1), Some(id1));
        assert_eq!(table.find_server(&k2), Some(id2));
        assert_eq!(table.find_server(&k3), Some(id3));
        // Remove the middle of the chain, then the head.
        table.remove(id2, &mut wheel);
        assert_eq!(table.find_server(&k1), Some(id1));
        assert_eq!(table.find_server(&k2), None);
        assert_eq!(table.find_server(&k3), Some(id3));
        table.remove(id3, &mut wheel);
        assert_eq!(table.find_server(&k1), Some(id1));
        assert_eq!(table.find_server(&k3), None);
        table.remove(id1, &mut wheel);
        assert!(table.server_index.is_empty());
    }

    #[test]
    fn table_legacy_ack_after_response_tag() {
        let (t0, mut table, mut wheel) = setup(4);
        let fields = LegacyFields {
            request_uri: b"sip:bob@biloxi.com",
            to_tag: b"",
            from_tag: b"1928301774",
            call_id: b"a84b4c76e66710",
            cseq: 314159,
            top_via: b"SIP/2.0/UDP pc33.atlanta.com",
        };
        let invite = ServerKeyRef::legacy(fields, Method::Invite);
        let id = table
            .insert_server(&invite, Reliability::Unreliable, 0)
            .unwrap();
        let mut out = Actions::new();
        table.server_event(t0, id, ServerEvent::TuResponse(404), &mut wheel, &mut out);
        let ack = ServerKeyRef::legacy(
            LegacyFields {
                to_tag: b"8321234356",
                ..fields
            },
            Method::Ack,
        );
        assert_eq!(table.find_server(&ack), None, "response tag not known yet");
        table.set_response_to_tag(id, b"8321234356");
        assert_eq!(table.find_server(&ack), Some(id));
    }

    #[test]
    fn table_timer_c_set_by_tu() {
        let (t0, mut table, mut wheel) = setup(4);
        let key = ClientKeyRef::new(BR, Method::Invite);
        let id = table
            .insert_client(t0, &key, Reliability::Reliable, 0, &mut wheel)
            .unwrap();
        let c = table.timers().timer_c;
        table.set_timer(t0, id, TimerKind::C, Some(c), &mut wheel);
        assert_eq!(wheel.len(), 2, "B and C");
        let mut fired = Vec::new();
        wheel.advance(t0 + c, &mut fired);
        let c_timer = TxnTimer {
            id,
            kind: TimerKind::C,
        };
        assert!(fired.contains(&c_timer));
        let mut out = Actions::new();
        table.on_timer(t0 + c, c_timer, &mut wheel, &mut out);
        assert_eq!(out.as_slice(), [Action::Timeout(TimerKind::C)]);
        // Disarming works too.
        table.set_timer(t0 + c, id, TimerKind::C, Some(c), &mut wheel);
        table.set_timer(t0 + c, id, TimerKind::C, None, &mut wheel);
        assert!(wheel.is_empty());
    }
}
