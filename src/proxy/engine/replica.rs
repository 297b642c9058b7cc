//! The location replica: every shard's copy of the bindings the other shards own.
//!
//! An AOR's bindings are written only by the shard that owns it (`shard_of_aor`):
//! REGISTER goes there, and so does the binding log. Reads are everywhere: an
//! INVITE to a user arrives on any core, and hopping it to the AOR's shard cost a
//! cross-core wake-up per call, and put every call to a busy AOR (a PBX trunk
//! registered once) on one core. So each owner sends its binding changes (the same
//! [`Change`]s its store logs) to the other shards once per tick, and each shard
//! applies them to a replica it looks up like its own part, expiring bindings on
//! its own clock.
//!
//! The replica lags its owner by up to a tick plus a mesh delivery. A request for
//! an AOR the replica does not know yet still goes to the owner
//! ([`crate::shard::Shard::owner_of`]), so a binding registered a moment ago is
//! found; a binding removed a moment ago may still be tried, as with any
//! replicated location service.

use std::time::{Duration, Instant};

use smallvec::SmallVec;

use super::Engine;
use crate::registrar::{AorKey, Binding, Change};
use crate::sip::{Message, Method};

/// The least time between two batches of new bindings sent to the other shards:
/// a change after a quiet spell goes at once, with the REGISTER's response, while
/// a REGISTER flood costs the other cores one wake-up per 10 ms rather than one per
/// REGISTER. Removals never wait.
pub(super) const REPLICATION_INTERVAL: Duration = Duration::from_millis(10);

impl Engine {
    /// Starts telling the other shards about this shard's binding changes,
    /// beginning with every binding it holds (loaded from its store).
    pub fn start_replicating(&mut self, now: Instant) {
        self.replicating = true;
        let mut all = Vec::new();
        for (aor, bindings) in self.registrar.location().iter() {
            all.extend(bindings.iter().map(|binding| Change::Put {
                aor: aor.clone(),
                binding: binding.clone(),
            }));
        }
        self.queue_replication(now, all);
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
    pub(super) fn replication_due(&self) -> Option<Instant> {
        self.outgoing_due
    }

    /// The binding changes due at `now` for the other shards (empty when none is).
    pub fn take_replication(&mut self, now: Instant) -> Vec<Change> {
        if self.outgoing_due.map_or(true, |due| due > now) {
            return Vec::new();
        }
        self.outgoing_due = None;
        self.replicated_at = Some(now);
        std::mem::take(&mut self.outgoing)
    }

    /// Applies binding changes another shard made to its AORs.
    pub fn apply_replicated(&mut self, changes: &[Change]) {
        for c in changes {
            self.replica.apply(c);
        }
    }

    /// Bindings the replica holds (for the metrics: the replica's memory).
    pub fn replica_len(&self) -> usize {
        self.replica.len()
    }

    /// Whether the replica holds bindings of `aor` (an AOR another shard owns).
    pub fn replica_knows(&self, aor: &AorKey) -> bool {
        !self.replica.bindings(aor).is_empty()
    }

    /// The live bindings of `aor` at `unix`, best first: from this shard's own
    /// location part when it owns the AOR, else from the replica.
    pub(super) fn lookup(&self, aor: &AorKey, unix: u64) -> SmallVec<[&Binding; 4]> {
        // An AOR is in one of the two: ours, or another shard's in the replica.
        let own = self.registrar.location().lookup(aor, unix);
        if !own.is_empty() {
            return own;
        }
        self.replica.lookup(aor, unix)
    }

    /// Whether `msg` matches a server transaction of this shard: its own (a
    /// retransmission), or for a CANCEL the INVITE it cancels (§9.2).
    pub fn has_server_transaction(&self, msg: &Message<'_>) -> bool {
        let (Some(method), Ok(via)) = (msg.method(), msg.via()) else {
            return false;
        };
        let Some(key) = super::server_key(msg, &via, method) else {
            return false;
        };
        self.table.find_server(&key).is_some()
            || (method == Method::Cancel
                && self.table.find_server(&key.cancelled_invite()).is_some())
    }
}
