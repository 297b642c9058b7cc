//! Every shard's copy of every binding, on more than one core.
//!
//! A REGISTER is answered by the shard it lands on, whatever its AOR: hopping it
//! to a fixed owner cost a cross-core wake-up for half the REGISTERs on two
//! cores (the 2026-12-08 measurement: 9.1 µs of CPU per REGISTER on one core, 21.4
//! on two with 0.5 hops each). Each shard sends the binding changes it makes to
//! the others in batches (at most one per [`REPLICATION_INTERVAL`] for new
//! bindings, at once for removals), and applies theirs to the same location it
//! writes itself, so that a call to a user is routed by the shard it lands on too.
//!
//! Writes to one binding from two shards are ordered by [`Version`] (the time the
//! write was accepted, then the shard): every shard keeps the newest whatever
//! order the writes reach it in, and a removal leaves a tombstone for
//! [`crate::registrar::location::TOMBSTONE_SECS`] so that an older write still on
//! its way does not bring the binding back. A REGISTER is checked (Call-ID and
//! CSeq, RFC 3261 §10.3 step 7) against what its shard knows: a write another shard
//! accepted less than a batch ago may not be known yet, and then the later write
//! wins. The contacts a 200 lists are likewise those this shard knows.
//!
//! A request to a user no binding is known for waits [`LOCATION_WAIT`] (every
//! other shard's pending batch has gone by then) and is looked up once more before
//! it is answered 480 or 404: a phone that has just registered on another core is
//! found.
//!
//! Persisting stays with the AOR's owner (`shard_of_aor`): it journals the changes
//! it makes and the ones it applies from the others, so that each store holds its
//! own AORs, as before.
//!
//! [`Version`]: crate::registrar::location::Version

use std::time::{Duration, Instant};

use smallvec::SmallVec;

use super::{Contexts, Engine, ServerId};
use crate::mesh::Outbox;
use crate::registrar::{AorKey, Applied, Binding, Change};

/// The least time between two batches of new bindings sent to the other shards:
/// a change after a quiet spell goes at once, with the REGISTER's response, while
/// a REGISTER flood costs the other cores one wake-up per 10 ms rather than one per
/// REGISTER. Removals never wait.
pub(super) const REPLICATION_INTERVAL: Duration = Duration::from_millis(10);

/// How long a request to a user of ours with no known binding waits for the other
/// shards' bindings: two batches' interval, so that a batch due when it arrived
/// has been sent and delivered.
pub(super) const LOCATION_WAIT: Duration = Duration::from_millis(20);

impl Engine {
    /// Starts replicating with the other `shards - 1` shards: from now on this
    /// shard accepts REGISTER for any AOR, persists only the AORs it owns, and
    /// begins by sending every binding it holds (loaded from its store).
    pub(crate) fn start_replicating(&mut self, now: Instant, shards: usize) {
        self.replicating = true;
        self.registrar
            .location_mut()
            .set_owner(usize::from(self.shard), shards);
        let mut all = Vec::new();
        for (aor, bindings) in self.registrar.location().iter() {
            all.extend(bindings.iter().map(|binding| Change::Put {
                aor: aor.clone(),
                binding: binding.clone(),
            }));
        }
        self.queue_replication(now, all);
    }

    /// The version of a write accepted at `now` ([`Version`]); 0 on a shard that
    /// does not replicate, where every write is simply the latest.
    ///
    /// [`Version`]: crate::registrar::location::Version
    pub(super) fn version(&self, now: Instant) -> u64 {
        if !self.replicating {
            return 0;
        }
        let micros = self
            .unix_origin
            .saturating_mul(1_000_000)
            .saturating_add(now.saturating_duration_since(self.origin).as_micros() as u64);
        (micros << 8) | u64::from(self.shard & 0xff)
    }

    /// Whether a request to a user with no binding known here waits for the
    /// other shards' bindings (once) before it is answered: it has been queued
    /// for [`Engine::retry_location_waits`].
    pub(super) fn wait_for_location(&mut self, now: Instant, id: ServerId) -> bool {
        if !self.replicating {
            return false;
        }
        let Some(s) = self.table.server_mut(id) else {
            return false;
        };
        if s.location_waited {
            return false;
        }
        s.location_waited = true;
        self.location_waits.push_back((now + LOCATION_WAIT, id));
        true
    }

    /// Routes again the requests whose wait for the other shards' bindings is
    /// over.
    pub(super) fn retry_location_waits(&mut self, now: Instant, out: &mut Outbox) {
        while let Some(&(due, id)) = self.location_waits.front() {
            if due > now {
                break;
            }
            self.location_waits.pop_front();
            self.route_again(now, id, out);
        }
    }

    /// Queues binding changes made at `now` for the other shards.
    pub(super) fn queue_replication(&mut self, now: Instant, changes: Vec<Change>) {
        if changes.is_empty() {
            return;
        }
        // A removal goes at once, so that no other core routes a call to a
        // contact whose removal the phone has already been told of; new bindings
        // may wait, since a core whose replica lacks one asks the owner.
        let removes = changes.iter().any(|c| !matches!(c, Change::Put { .. }));
        let next = match (removes, self.replicated_at) {
            (false, Some(t)) => (t + REPLICATION_INTERVAL).max(now),
            _ => now,
        };
        self.outgoing_due = Some(self.outgoing_due.map_or(next, |due| due.min(next)));
        self.outgoing.extend(changes);
    }

    /// When queued changes are due to be sent ([`Engine::take_replication`]).
    pub(crate) fn replication_due(&self) -> Option<Instant> {
        self.outgoing_due
    }

    /// The binding changes due at `now` for the other shards (empty when none is).
    pub(crate) fn take_replication(&mut self, now: Instant) -> Vec<Change> {
        if self.outgoing_due.map_or(true, |due| due > now) {
            return Vec::new();
        }
        self.outgoing_due = None;
        self.replicated_at = Some(now);
        std::mem::take(&mut self.outgoing)
    }

    /// Applies binding changes another shard accepted; the AOR's owner persists
    /// the ones that took effect.
    pub(crate) fn apply_replicated(&mut self, changes: &[Change]) {
        let location = self.registrar.location_mut();
        for c in changes {
            let applied = location.apply(c);
            if let (Some(journal), Applied::Changed { owned: true }) = (&mut self.journal, applied)
            {
                journal.push(c.clone());
            }
        }
    }

    /// Bindings held for AORs other shards own (for the metrics).
    pub(crate) fn replica_len(&self) -> usize {
        let location = self.registrar.location();
        location.len() - location.owned_len()
    }

    /// The live bindings of `aor` at `unix`, best first.
    pub(super) fn lookup(&self, aor: &AorKey, unix: u64) -> SmallVec<[&Binding; 4]> {
        self.registrar.location().lookup(aor, unix)
    }
}
