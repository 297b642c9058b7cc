//! The location service's per-shard part: address-of-record → bindings
//! (RFC 3261 §10), with expiry driven by the shard's tick.
//!
//! On one shard it holds every AOR. On several, each holds every binding too (the
//! writes of the others arrive in batches, `proxy::engine::replica`), and
//! persists the AORs with `shard_of_aor(aor, n) == shard` ([`Location::owns`]).
//! Everything that changes a binding goes through [`Location::apply`] with a
//! [`Change`]; the registrar computes the changes of a REGISTER and the store
//! replays logged changes through the same function, so a restart rebuilds exactly
//! the state that was live.
//!
//! Expiry: each AOR is scheduled once, in a min-heap, at its earliest `expires_at`.
//! [`Location::expire`] pops what is due, drops the expired bindings of those AORs
//! and reschedules them. Heap entries of AORs that were refreshed or removed since
//! are recognised as stale and skipped (a generation counter per AOR slot), so there
//! is no per-binding timer and no cancellation cost.

use crate::io::{ConnId, Transport};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;

use smallvec::SmallVec;

use super::aor::AorKey;
use crate::sip::text::CommaList;
use crate::sip::uri::Uri;
use crate::sip::QValue;

/// Where a REGISTER came from: requests to the contact go back there (a phone behind
/// NAT), over the same connection for TCP/TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Source {
    /// The packet's source address (not what the Contact or Via claims).
    pub addr: SocketAddr,
    pub transport: Transport,
    /// The connection, for connection-oriented transports. Not meaningful across a
    /// restart: the store clears it on load.
    pub conn: Option<ConnId>,
    /// The local listener (socket) the request arrived on, as the runtime numbers
    /// them.
    pub listener: u16,
    /// The REGISTER looked NATed (its Via or Contact disagreed with `addr`, the
    /// way Kamailio's `nat_uac_test` decides): requests go to `addr` (and the
    /// connection) instead of the Contact URI.
    pub nat: bool,
}

/// What an `Arc` allocation holds besides its value: the strong and weak counts.
pub(crate) const ARC_HEADER: usize = 2 * std::mem::size_of::<usize>();

/// `q` not given: no value is echoed, and it ranks as `q=1.0` (RFC 3261 leaves the
/// default open; a contact without a preference does not lose to explicit ones).
const Q_UNSPECIFIED: u16 = u16::MAX;

/// One contact bound to an AOR.
///
/// The variable-length fields share one reference-counted slice,
/// `contact URI | Call-ID | +sip.instance | Path`, never changed once written: a
/// REGISTER's copies of a binding (its change for the store, the registrar's
/// tentative list, the location's own) share it rather than each allocating one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    text: Arc<[u8]>,
    contact_end: u32,
    call_id_end: u32,
    instance_end: u32,
    /// When the binding expires, in seconds since the UNIX epoch.
    pub expires_at: u64,
    /// The CSeq number of the REGISTER that last wrote it (§10.3 step 7).
    pub cseq: u32,
    /// RFC 5626 `reg-id`, 0 when absent (valid values are 1..2^31).
    reg_id: u32,
    q: u16,
    pub source: Source,
    /// When the write that made it (or, for a tombstone, removed it) was accepted:
    /// [`Version`]. Not stored: a binding loaded from the store has 0 and loses to
    /// every write made since.
    pub version: Version,
}

/// The order of writes to one binding across shards: the accepting shard's clock
/// in microseconds since the UNIX epoch, shifted left 8 bits, with the shard's index
/// in the low 8 bits (no two shards make the same version). Every shard accepts
/// REGISTERs for any AOR and replicates its writes to the others
/// (`proxy::engine::replica`); each applies a write to a binding only if it is
/// newer than what it holds, so all of them end with the same binding whatever
/// order the writes reach them in (last writer wins).
pub(crate) type Version = u64;

/// How long a removal is remembered (as a tombstone) after it was accepted, so
/// that an older write to the same binding, still on its way from another shard,
/// does not bring it back. Far longer than a replication batch takes.
pub(crate) const TOMBSTONE_SECS: u64 = 5;

/// The fields of a new binding, borrowed from the request.
#[derive(Debug, Clone, Copy)]
pub struct BindingFields<'a> {
    /// The contact URI as written (without `<>` and header parameters).
    pub contact: &'a [u8],
    pub call_id: &'a [u8],
    pub cseq: u32,
    pub expires_at: u64,
    pub q: Option<QValue>,
    /// `+sip.instance`, quotes removed (RFC 5626 §4.1).
    pub instance: Option<&'a [u8]>,
    pub reg_id: Option<u32>,
    /// The Path values as received, in order, joined with `", "` (RFC 3327 §5.3).
    pub path: &'a [u8],
    pub source: Source,
}

impl Binding {
    /// Builds a binding; `None` when the texts together exceed 4 GiB.
    pub fn new(f: &BindingFields<'_>) -> Option<Binding> {
        let total =
            f.contact.len() + f.call_id.len() + f.instance.map_or(0, <[u8]>::len) + f.path.len();
        u32::try_from(total).ok()?;
        // Assembled on the stack, then copied into its one allocation.
        let mut text: SmallVec<[u8; 256]> = SmallVec::with_capacity(total);
        text.extend_from_slice(f.contact);
        let contact_end = text.len() as u32;
        text.extend_from_slice(f.call_id);
        let call_id_end = text.len() as u32;
        text.extend_from_slice(f.instance.unwrap_or_default());
        let instance_end = text.len() as u32;
        text.extend_from_slice(f.path);
        Some(Binding {
            text: Arc::from(text.as_slice()),
            contact_end,
            call_id_end,
            instance_end,
            expires_at: f.expires_at,
            cseq: f.cseq,
            reg_id: f.reg_id.unwrap_or(0),
            q: f.q.map_or(Q_UNSPECIFIED, QValue::thousandths),
            source: f.source,
            version: 0,
        })
    }

    fn part(&self, start: u32, end: u32) -> &[u8] {
        self.text
            .get(start as usize..end as usize)
            .unwrap_or_default()
    }

    /// The contact URI as registered.
    pub fn contact(&self) -> &[u8] {
        self.part(0, self.contact_end)
    }

    /// The Call-ID of the REGISTER that last wrote the binding.
    pub fn call_id(&self) -> &[u8] {
        self.part(self.contact_end, self.call_id_end)
    }

    /// The `+sip.instance` value (RFC 5626), quotes removed.
    pub fn instance(&self) -> Option<&[u8]> {
        Some(self.part(self.call_id_end, self.instance_end)).filter(|i| !i.is_empty())
    }

    /// The `reg-id` (RFC 5626).
    pub fn reg_id(&self) -> Option<u32> {
        (self.reg_id != 0).then_some(self.reg_id)
    }

    /// The `q` value, when one was given.
    pub fn q(&self) -> Option<QValue> {
        QValue::from_thousandths(self.q)
    }

    /// The rank used to order contacts: thousandths, unspecified as 1000.
    fn rank(&self) -> u16 {
        if self.q == Q_UNSPECIFIED {
            1000
        } else {
            self.q
        }
    }

    /// The Path of the registration as received, its values joined with `", "`:
    /// the value of the preloaded Route when forwarding to this contact
    /// (RFC 3327 §5.3). Empty when there was none.
    pub fn path(&self) -> &[u8] {
        self.part(self.instance_end, self.text.len() as u32)
    }

    /// The Path values one by one, in order.
    pub fn path_values(&self) -> CommaList<'_> {
        CommaList::new(self.path())
    }

    /// Seconds left at `now` (0 once expired).
    pub fn remaining(&self, now: u64) -> u64 {
        self.expires_at.saturating_sub(now)
    }

    /// Live at `now`.
    pub fn is_live(&self, now: u64) -> bool {
        self.expires_at > now
    }

    /// Heap bytes held by the binding: the text and its reference counts (once per
    /// binding, as if no other copy shared it).
    pub fn heap_bytes(&self) -> usize {
        ARC_HEADER + self.text.len()
    }

    /// True when the binding is keyed by instance and reg-id (RFC 5626 §6) rather
    /// than by its contact URI.
    fn is_outbound(&self) -> bool {
        self.reg_id != 0 && self.instance().is_some()
    }

    /// The binding identity rule shared by REGISTER processing and replay: an
    /// outbound binding matches the one with the same instance and reg-id (RFC 5626
    /// §6: the contact URI is not used); any other matches a non-outbound binding
    /// whose contact URI is equivalent (RFC 3261 §10.3 step 7, §19.1.4).
    pub fn same_binding(&self, other: &Binding) -> bool {
        if self.is_outbound() || other.is_outbound() {
            return self.is_outbound()
                && other.is_outbound()
                && self.reg_id == other.reg_id
                && self.instance() == other.instance();
        }
        match (Uri::parse(self.contact()), Uri::parse(other.contact())) {
            (Ok(a), Ok(b)) => a.same_as(&b),
            _ => self.contact() == other.contact(),
        }
    }

    /// The exact same stored binding (used to remove it).
    fn same_identity_bytes(&self, other: &Binding) -> bool {
        self.contact() == other.contact()
            && self.instance() == other.instance()
            && self.reg_id == other.reg_id
    }

    /// The internal text layout, for the store.
    pub(crate) fn raw_parts(&self) -> (&[u8], [u32; 3], u32, u16) {
        (
            &self.text,
            [self.contact_end, self.call_id_end, self.instance_end],
            self.reg_id,
            self.q,
        )
    }

    /// Rebuilds a binding from [`Binding::raw_parts`]; `None` when the offsets do
    /// not fit the text.
    pub(crate) fn from_raw_parts(
        text: Arc<[u8]>,
        ends: [u32; 3],
        reg_id: u32,
        q: u16,
        expires_at: u64,
        cseq: u32,
        source: Source,
    ) -> Option<Binding> {
        let [c, i, n] = ends;
        if !(c <= i && i <= n && n as usize <= text.len()) || (q > 1000 && q != Q_UNSPECIFIED) {
            return None;
        }
        Some(Binding {
            text,
            contact_end: c,
            call_id_end: i,
            instance_end: n,
            expires_at,
            cseq,
            reg_id,
            q,
            source,
            version: 0,
        })
    }

    /// The binding, as written (or removed) by a write of `version`.
    pub(crate) fn with_version(mut self, version: Version) -> Binding {
        self.version = version;
        self
    }

    /// The UNIX second a version was accepted in.
    fn version_secs(&self) -> u64 {
        (self.version >> 8) / 1_000_000
    }
}

/// What [`Location::apply`] did with a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Nothing: a newer write to the binding is held, or there was nothing to
    /// remove.
    Unchanged,
    /// It took effect, on an AOR this shard persists (`owned`,
    /// [`Location::owns`]) or on another's.
    Changed { owned: bool },
}

/// One change to the location service: what REGISTER processing produces, what the
/// store logs and replays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Add a binding, or replace the one it matches ([`Binding::same_binding`]).
    Put { aor: AorKey, binding: Binding },
    /// Remove this binding (matched by its exact contact, instance and reg-id).
    Remove { aor: AorKey, binding: Binding },
    /// Remove every binding of the AOR (`Contact: *`, RFC 3261 §10.3 step 6).
    RemoveAll { aor: AorKey },
}

impl Change {
    /// The AOR changed.
    pub fn aor(&self) -> &AorKey {
        match self {
            Change::Put { aor, .. } | Change::Remove { aor, .. } | Change::RemoveAll { aor } => aor,
        }
    }
}

/// Applies `change` to the bindings of one AOR (held in creation order, oldest
/// first). Shared by the registrar's tentative copy and [`Location::apply`].
pub(crate) fn apply_to(bindings: &mut Vec<Binding>, change: &Change) {
    match change {
        Change::Put { binding, .. } => {
            match bindings.iter_mut().find(|b| b.same_binding(binding)) {
                Some(slot) => *slot = binding.clone(),
                None => {
                    // AORs hold few bindings: grow by one rather than doubling (an
                    // empty Vec's first push would reserve room for four).
                    bindings.reserve_exact(1);
                    bindings.push(binding.clone());
                }
            }
        }
        Change::Remove { binding, .. } => bindings.retain(|b| !b.same_identity_bytes(binding)),
        Change::RemoveAll { .. } => bindings.clear(),
    }
}

#[derive(Debug)]
struct Record {
    aor: AorKey,
    /// Creation order, oldest first (what `replace_oldest` drops first).
    bindings: Vec<Binding>,
    /// The AOR is this shard's to persist ([`Location::set_owner`]).
    owned: bool,
    /// The `expires_at` this AOR is scheduled at in the heap (`u64::MAX`: none).
    scheduled: u64,
}

#[derive(Debug, Default)]
struct Slot {
    record: Option<Record>,
    /// Bumped whenever the slot is freed, so heap entries for the old AOR are stale.
    generation: u32,
}

/// The AORs and bindings one shard owns.
#[derive(Debug, Default)]
pub struct Location {
    index: HashMap<AorKey, u32, ahash::RandomState>,
    slots: Vec<Slot>,
    free: Vec<u32>,
    /// (expires_at, slot, generation), earliest first.
    heap: BinaryHeap<Reverse<(u64, u32, u32)>>,
    bindings: usize,
    /// Bindings of the AORs whose records are `owned`.
    owned_bindings: usize,
    /// This shard and the number of shards, once set: which AORs it owns.
    owner: Option<(usize, usize)>,
    /// Bindings removed less than [`TOMBSTONE_SECS`] ago, with the removal's
    /// version and `expires_at` the time to forget them: not bindings (nothing
    /// reads them but [`Location::apply`]), and kept apart so that an AOR costs
    /// nothing more for them.
    tombstones: HashMap<AorKey, Vec<Binding>, ahash::RandomState>,
    /// When to forget the tombstones of an AOR, in the order they were made.
    tombstone_queue: VecDeque<(u64, AorKey)>,
}

impl Location {
    /// An empty location part.
    pub fn new() -> Location {
        Location::default()
    }

    /// Every binding of `aor` in creation order, expired ones not yet swept
    /// included. Empty for an unknown AOR.
    pub fn bindings(&self, aor: &AorKey) -> &[Binding] {
        self.record(aor).map_or(&[], |r| &r.bindings)
    }

    /// The live contacts of `aor` at `now`, best first: highest `q` first, and
    /// among equal `q` the most recently created first. Empty when the AOR has no
    /// live binding (the proxy answers 480) or is unknown.
    pub fn lookup(&self, aor: &AorKey, now: u64) -> SmallVec<[&Binding; 4]> {
        let mut out: SmallVec<[&Binding; 4]> = self
            .bindings(aor)
            .iter()
            .rev()
            .filter(|b| b.is_live(now))
            .collect();
        // Stable: equal ranks keep newest-first.
        out.sort_by_key(|b| Reverse(b.rank()));
        out
    }

    fn record(&self, aor: &AorKey) -> Option<&Record> {
        let &slot = self.index.get(aor)?;
        self.slots.get(slot as usize)?.record.as_ref()
    }

    /// Applies one change (a REGISTER's, another shard's, or one replayed from the
    /// store) unless the location holds a newer write ([`Version`]) to the binding
    /// it writes, as a binding or as a tombstone: then nothing changes.
    pub fn apply(&mut self, change: &Change) -> Applied {
        let aor = change.aor();
        let slot = self.index.get(aor).copied();
        match change {
            Change::Put { binding, .. } | Change::Remove { binding, .. } => {
                if self.holds_newer(slot, aor, binding) {
                    return Applied::Unchanged;
                }
            }
            Change::RemoveAll { .. } => {}
        }
        let mut changed = false;
        match change {
            Change::Put { binding, .. } => {
                if let Some(t) = self.tombstones.get_mut(aor) {
                    t.retain(|t| !t.same_binding(binding));
                }
            }
            // Remembered until no older write can still be on its way.
            Change::Remove { binding, .. } if binding.version != 0 => {
                let mut t = binding.clone();
                t.expires_at = binding.version_secs() + TOMBSTONE_SECS;
                self.tombstone_queue.push_back((t.expires_at, aor.clone()));
                let tombs = self.tombstones.entry(aor.clone()).or_default();
                tombs.retain(|old| !old.same_binding(binding));
                tombs.push(t);
                changed = true;
            }
            _ => {}
        }
        let slot = match slot {
            Some(s) => s,
            None if matches!(change, Change::Put { .. }) => self.insert_record(aor.clone()),
            None if changed => {
                return Applied::Changed {
                    owned: self.owns(aor),
                }
            }
            None => return Applied::Unchanged,
        };
        let Some(rec) = self
            .slots
            .get_mut(slot as usize)
            .and_then(|s| s.record.as_mut())
        else {
            return Applied::Unchanged;
        };
        let owned = rec.owned;
        let before = rec.bindings.len();
        apply_to(&mut rec.bindings, change);
        let delta = rec.bindings.len() as isize - before as isize;
        self.bindings = self.bindings.saturating_add_signed(delta);
        if owned {
            self.owned_bindings = self.owned_bindings.saturating_add_signed(delta);
        }
        self.reschedule(slot);
        Applied::Changed { owned }
    }

    /// Whether a write to `binding` of `aor` (whose record is in `slot`) newer
    /// than its own is held, as a binding or as a tombstone.
    fn holds_newer(&self, slot: Option<u32>, aor: &AorKey, binding: &Binding) -> bool {
        let newer = |b: &Binding| b.version > binding.version && b.same_binding(binding);
        let held = slot
            .and_then(|s| self.slots.get(s as usize)?.record.as_ref())
            .map_or(&[][..], |r| &r.bindings);
        held.iter().any(newer)
            || self
                .tombstones
                .get(aor)
                .is_some_and(|t| t.iter().any(newer))
    }

    /// Tells the location which AORs are this shard's (`shard_of_aor(aor, shards) ==
    /// shard`): [`Location::owned_len`] counts their bindings, [`Location::owns`]
    /// answers for one.
    pub fn set_owner(&mut self, shard: usize, shards: usize) {
        self.owner = Some((shard, shards));
        self.owned_bindings = 0;
        for rec in self.slots.iter_mut().filter_map(|s| s.record.as_mut()) {
            rec.owned = super::shard_of_aor(&rec.aor, shards) == shard;
            if rec.owned {
                self.owned_bindings += rec.bindings.len();
            }
        }
    }

    /// Whether `aor` is this shard's to persist: always, until
    /// [`Location::set_owner`] says otherwise.
    pub fn owns(&self, aor: &AorKey) -> bool {
        self.owner.map_or(true, |(shard, shards)| {
            super::shard_of_aor(aor, shards) == shard
        })
    }

    /// Bindings of the AORs this shard owns (all of them before
    /// [`Location::set_owner`]).
    pub fn owned_len(&self) -> usize {
        match self.owner {
            Some(_) => self.owned_bindings,
            None => self.bindings,
        }
    }

    fn insert_record(&mut self, aor: AorKey) -> u32 {
        let record = Record {
            owned: self.owns(&aor),
            aor: aor.clone(),
            bindings: Vec::new(),
            scheduled: u64::MAX,
        };
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.slots.push(Slot::default());
                (self.slots.len() - 1) as u32
            }
        };
        if let Some(s) = self.slots.get_mut(slot as usize) {
            s.record = Some(record);
        }
        self.index.insert(aor, slot);
        slot
    }

    /// After the bindings of `slot` changed: frees an empty record, or makes sure
    /// the heap holds an entry at its earliest expiry.
    fn reschedule(&mut self, slot: u32) {
        let Some(s) = self.slots.get_mut(slot as usize) else {
            return;
        };
        let Some(rec) = s.record.as_mut() else {
            return;
        };
        match rec.bindings.iter().map(|b| b.expires_at).min() {
            None => {
                self.index.remove(&rec.aor);
                s.record = None;
                s.generation = s.generation.wrapping_add(1);
                self.free.push(slot);
            }
            Some(earliest) => {
                // A later entry for this AOR, if any, becomes a harmless early
                // wake-up; an earlier one needs a new entry.
                if earliest < rec.scheduled {
                    rec.scheduled = earliest;
                    self.heap.push(Reverse((earliest, slot, s.generation)));
                }
            }
        }
    }

    /// Drops the expired bindings of one AOR at `now` (before a REGISTER looks at
    /// them); returns how many. Not logged, like [`Location::expire`].
    pub fn sweep_aor(&mut self, aor: &AorKey, now: u64) -> usize {
        let Some(&slot) = self.index.get(aor) else {
            return 0;
        };
        let Some(rec) = self
            .slots
            .get_mut(slot as usize)
            .and_then(|s| s.record.as_mut())
        else {
            return 0;
        };
        let before = rec.bindings.len();
        rec.bindings.retain(|b| b.is_live(now));
        let removed = before - rec.bindings.len();
        self.bindings -= removed;
        if rec.owned {
            self.owned_bindings -= removed;
        }
        if removed > 0 {
            self.reschedule(slot);
        }
        removed
    }

    /// Removes every binding expired at `now` (`expires_at <= now`); returns how
    /// many. Call from the shard's tick; [`Location::next_expiry`] says when next.
    /// Expiry is not logged: the store drops expired bindings on load anyway.
    pub fn expire(&mut self, now: u64) -> usize {
        while let Some((at, aor)) = self.tombstone_queue.front() {
            if *at > now {
                break;
            }
            if let Some(t) = self.tombstones.get_mut(aor) {
                t.retain(|b| b.is_live(now));
                if t.is_empty() {
                    self.tombstones.remove(aor);
                }
            }
            self.tombstone_queue.pop_front();
        }
        let mut removed = 0;
        while let Some(&Reverse((at, slot, generation))) = self.heap.peek() {
            if at > now {
                break;
            }
            self.heap.pop();
            let Some(s) = self.slots.get_mut(slot as usize) else {
                continue;
            };
            if s.generation != generation {
                continue;
            }
            let Some(rec) = s.record.as_mut() else {
                continue;
            };
            if rec.scheduled != at {
                // Stale: this AOR was rescheduled since.
                continue;
            }
            let before = rec.bindings.len();
            rec.bindings.retain(|b| b.is_live(now));
            let gone = before - rec.bindings.len();
            removed += gone;
            if rec.owned {
                self.owned_bindings -= gone;
            }
            rec.scheduled = u64::MAX;
            self.reschedule(slot);
        }
        self.bindings -= removed;
        removed
    }

    /// The earliest time something may expire (a heap entry may be stale, in which
    /// case [`Location::expire`] finds nothing to do).
    pub fn next_expiry(&self) -> Option<u64> {
        let binding = self.heap.peek().map(|Reverse((at, _, _))| *at);
        let tombstone = self.tombstone_queue.front().map(|(at, _)| *at);
        binding.into_iter().chain(tombstone).min()
    }

    /// Bindings held (expired ones not yet swept included).
    pub fn len(&self) -> usize {
        self.bindings
    }

    /// True when no binding is held.
    pub fn is_empty(&self) -> bool {
        self.bindings == 0
    }

    /// AORs with at least one binding.
    pub fn aor_count(&self) -> usize {
        self.index.len()
    }

    /// Bytes held by this location part, heap included (allocator overhead and the
    /// hash table's spare capacity estimated from capacities): what the metrics
    /// report and the memory-per-binding test measures.
    pub fn memory_bytes(&self) -> usize {
        use std::mem::size_of;
        let records: usize = self
            .slots
            .iter()
            .filter_map(|s| s.record.as_ref())
            .map(|r| {
                r.aor.heap_bytes() // shared by the record and the index key
                    + r.bindings.capacity() * size_of::<Binding>()
                    + r.bindings.iter().map(Binding::heap_bytes).sum::<usize>()
            })
            .sum();
        size_of::<Location>()
            + records
            + self.slots.capacity() * size_of::<Slot>()
            + self.free.capacity() * size_of::<u32>()
            // hashbrown: one control byte per bucket besides the entry.
            + self.index.capacity() * (size_of::<(AorKey, u32)>() + 1)
            + self.heap.capacity() * size_of::<Reverse<(u64, u32, u32)>>()
    }

    /// Every AOR with its bindings (creation order), in no particular order: what a
    /// snapshot writes.
    pub fn iter(&self) -> impl Iterator<Item = (&AorKey, &[Binding])> + '_ {
        self.slots
            .iter()
            .filter_map(|s| s.record.as_ref())
            .map(|r| (&r.aor, r.bindings.as_slice()))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::sip::uri::Uri;

    pub(crate) fn source() -> Source {
        Source {
            nat: false,
            addr: "192.0.2.10:40123".parse().unwrap(),
            transport: Transport::Tcp,
            conn: Some(ConnId { shard: 1, seq: 77 }),
            listener: 0,
        }
    }

    pub(crate) fn aor(s: &str) -> AorKey {
        AorKey::from_uri(&Uri::parse(s.as_bytes()).unwrap()).unwrap()
    }

    pub(crate) fn binding(contact: &str, expires_at: u64, q: Option<&str>) -> Binding {
        Binding::new(&BindingFields {
            contact: contact.as_bytes(),
            call_id: b"a84b4c76e66710@pc33.atlanta.example.com",
            cseq: 1,
            expires_at,
            q: q.map(|q| QValue::parse(q.as_bytes()).unwrap()),
            instance: None,
            reg_id: None,
            path: b"",
            source: source(),
        })
        .unwrap()
    }

    fn put(l: &mut Location, a: &AorKey, b: Binding) {
        l.apply(&Change::Put {
            aor: a.clone(),
            binding: b,
        });
    }

    #[test]
    fn binding_fields_round_trip() {
        let b = Binding::new(&BindingFields {
            contact: b"sip:alice@192.0.2.10:5060;transport=tcp",
            call_id: b"cid",
            cseq: 7,
            expires_at: 1000,
            q: Some(QValue::parse(b"0.7").unwrap()),
            instance: Some(b"<urn:uuid:00000000-0000-1000-8000-000A95A0E128>"),
            reg_id: Some(2),
            path: b"<sip:edge1.example.com;lr>, <sip:edge2.example.com;lr>",
            source: source(),
        })
        .unwrap();
        assert_eq!(b.contact(), b"sip:alice@192.0.2.10:5060;transport=tcp");
        assert_eq!(b.call_id(), b"cid");
        assert_eq!(
            b.instance(),
            Some(&b"<urn:uuid:00000000-0000-1000-8000-000A95A0E128>"[..])
        );
        assert_eq!(b.reg_id(), Some(2));
        assert_eq!(b.q().map(QValue::thousandths), Some(700));
        let path: Vec<_> = b.path_values().collect();
        assert_eq!(
            path,
            [
                &b"<sip:edge1.example.com;lr>"[..],
                b"<sip:edge2.example.com;lr>"
            ]
        );
        assert_eq!(b.remaining(400), 600);
        assert_eq!(b.remaining(2000), 0);
    }

    #[test]
    fn lookup_orders_by_q_and_skips_expired() {
        let mut l = Location::new();
        let a = aor("sip:alice@example.com");
        put(&mut l, &a, binding("sip:alice@10.0.0.1", 100, Some("0.5")));
        put(&mut l, &a, binding("sip:alice@10.0.0.2", 100, Some("0.9")));
        put(&mut l, &a, binding("sip:alice@10.0.0.3", 100, None));
        put(&mut l, &a, binding("sip:alice@10.0.0.4", 10, Some("1.0")));
        put(&mut l, &a, binding("sip:alice@10.0.0.5", 100, Some("0.5")));
        let got: Vec<_> = l
            .lookup(&a, 50)
            .iter()
            .map(|b| b.contact().to_vec())
            .collect();
        assert_eq!(
            got,
            [
                &b"sip:alice@10.0.0.3"[..],
                b"sip:alice@10.0.0.2",
                // Equal q: newest first.
                b"sip:alice@10.0.0.5",
                b"sip:alice@10.0.0.1",
            ]
        );
        assert!(l.lookup(&aor("sip:bob@example.com"), 50).is_empty());
    }

    #[test]
    fn put_matches_equivalent_contact_uri() {
        // RFC 3261 §10.3 step 7: bindings are found with the §19.1.4 comparison.
        let mut l = Location::new();
        let a = aor("sip:alice@example.com");
        put(
            &mut l,
            &a,
            binding("sip:alice@PC33.example.com;transport=tcp", 100, None),
        );
        put(
            &mut l,
            &a,
            binding("sip:alice@pc33.example.com;Transport=TCP", 200, None),
        );
        assert_eq!(l.len(), 1);
        assert_eq!(l.bindings(&a)[0].expires_at, 200);
        put(
            &mut l,
            &a,
            binding("sip:alice@pc33.example.com:5060;transport=tcp", 200, None),
        );
        assert_eq!(l.len(), 2);
    }

    #[test]
    fn expire_removes_due_bindings_and_frees_aors() {
        let mut l = Location::new();
        let a = aor("sip:alice@example.com");
        let b = aor("sip:bob@example.com");
        put(&mut l, &a, binding("sip:alice@10.0.0.1", 100, None));
        put(&mut l, &a, binding("sip:alice@10.0.0.2", 300, None));
        put(&mut l, &b, binding("sip:bob@10.0.0.3", 200, None));
        assert_eq!(l.next_expiry(), Some(100));
        assert_eq!(l.expire(99), 0);
        assert_eq!(l.expire(100), 1);
        assert_eq!(l.len(), 2);
        // Refresh bob to later: the old heap entry at 200 is stale.
        put(&mut l, &b, binding("sip:bob@10.0.0.3", 400, None));
        assert_eq!(l.expire(250), 0);
        assert_eq!(l.lookup(&b, 250).len(), 1);
        assert_eq!(l.expire(300), 1);
        assert_eq!(l.aor_count(), 1);
        assert_eq!(l.expire(1000), 1);
        assert!(l.is_empty());
        assert_eq!(l.aor_count(), 0);
        assert!(l.bindings(&a).is_empty());
        // Slots are reused without confusing stale heap entries.
        put(&mut l, &a, binding("sip:alice@10.0.0.1", 2000, None));
        assert_eq!(l.expire(1500), 0);
        assert_eq!(l.len(), 1);
    }

    #[test]
    fn remove_and_remove_all() {
        let mut l = Location::new();
        let a = aor("sip:alice@example.com");
        let b1 = binding("sip:alice@10.0.0.1", 100, None);
        put(&mut l, &a, b1.clone());
        put(&mut l, &a, binding("sip:alice@10.0.0.2", 100, None));
        l.apply(&Change::Remove {
            aor: a.clone(),
            binding: b1,
        });
        assert_eq!(l.len(), 1);
        l.apply(&Change::RemoveAll { aor: a.clone() });
        assert!(l.is_empty());
        assert_eq!(l.aor_count(), 0);
        // Removing from an unknown AOR creates nothing.
        l.apply(&Change::RemoveAll { aor: a.clone() });
        assert_eq!(l.aor_count(), 0);
    }

    #[test]
    fn copies_of_a_binding_share_its_text() {
        // A REGISTER's binding is copied into its change, the registrar's
        // tentative list and the location: one text for all of them.
        let mut l = Location::new();
        let a = aor("sip:alice@example.com");
        let b = binding("sip:alice@192.0.2.10", 100, None);
        l.apply(&Change::Put {
            aor: a.clone(),
            binding: b.clone(),
        });
        let stored = &l.bindings(&a)[0];
        assert_eq!(stored, &b);
        assert!(Arc::ptr_eq(&stored.text, &b.text));
    }

    #[test]
    fn memory_per_binding() {
        // The target: <= 300 bytes per binding plus the contact strings.
        let mut b = binding("sip:alice@192.0.2.10:40123;transport=tcp", 100, Some("0.5"));
        b = Binding::new(&BindingFields {
            contact: b.contact(),
            call_id: b"3848276298220188511@192.0.2.10",
            cseq: 1,
            expires_at: 3600,
            q: None,
            instance: Some(b"<urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6>"),
            reg_id: Some(1),
            path: b"",
            source: source(),
        })
        .unwrap();
        let inline = std::mem::size_of::<Binding>();
        let heap = b.heap_bytes();
        println!(
            "Binding: {inline} bytes inline + {heap} heap bytes (contact {}, call-id {}, instance {})",
            b.contact().len(),
            b.call_id().len(),
            b.instance().map_or(0, <[u8]>::len),
        );
        assert!(inline <= 128, "{inline}");
        assert_eq!(
            heap,
            ARC_HEADER + b.contact().len() + b.call_id().len() + 47
        );

        // Whole-structure cost: 10 000 AORs with one binding each, as phones
        // usually are.
        let mut l = Location::new();
        let n = 10_000;
        let mut strings = 0;
        for i in 0..n {
            let a = aor(&format!("sip:user{i:05}@example.com"));
            strings += b.heap_bytes() + a.heap_bytes();
            put(&mut l, &a, b.clone());
        }
        let total = l.memory_bytes();
        let per = total / n;
        let structure = (total - strings) / n;
        println!(
            "per binding with its AOR: {per} bytes in all, {structure} bytes besides the strings ({} bytes of strings)",
            strings / n
        );
        assert!(structure <= 300, "{structure}");
    }
}
