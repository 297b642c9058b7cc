//! A hashed timing wheel, one per shard (DESIGN.md §4).
//!
//! Every transaction timer of a shard (RFC 3261 §17 timers A–K, the proxy's Timer C)
//! lives here rather than in the executor: one executor timer per transaction costs
//! ten times as much and a single task panics past ~32k pending timers.
//!
//! - Time is quantised into ticks (10 ms by default) counted from an `origin`
//!   instant; a deadline is rounded *up* to a tick, so a timer never fires early and
//!   at most one tick late (relative to the `advance` calls the runtime makes).
//! - `slots` buckets (a power of two) hold doubly linked lists of entries whose
//!   deadline tick hashes to them; an entry stores its absolute deadline tick, so
//!   deadlines beyond one revolution simply stay in their bucket until the wheel
//!   comes round to the right tick.
//! - Entries live in a slab; a [`TimerHandle`] names a slab slot plus the slot's
//!   generation. Firing or cancelling bumps the generation, so an old handle goes
//!   stale without any search, and cancel unlinks in O(1).
//! - [`TimerWheel::advance`] appends the payloads of expired entries to a
//!   caller-provided `Vec`, in deadline order, and in insertion order within a tick.
//!   Nothing allocates in steady state: the slab and free list are reused.

use std::time::{Duration, Instant};

/// Sentinel for "no entry" in the intrusive lists and the free list.
const NIL: u32 = u32::MAX;

/// Names one armed timer. Stale (ignored by [`TimerWheel::cancel`]) once the timer
/// has fired or been cancelled, even if the slot is reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct TimerHandle {
    slot: u32,
    generation: u32,
}

/// The wheel holds `u32::MAX - 1` entries already; a shard never gets there (its
/// transaction cap bounds the timers), but the wheel says so instead of panicking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("timer wheel full")]
pub(crate) struct WheelFull;

#[derive(Debug)]
struct Entry<T> {
    /// Bumped whenever the entry fires, is cancelled, or is freed.
    generation: u32,
    /// Absolute tick at which the entry expires.
    deadline: u64,
    prev: u32,
    /// Next entry in the bucket, or next free slot when `payload` is `None`.
    next: u32,
    /// `None` while the slot is free.
    payload: Option<T>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    head: u32,
    tail: u32,
}

const EMPTY_BUCKET: Bucket = Bucket {
    head: NIL,
    tail: NIL,
};

/// A hashed timing wheel carrying a payload `T` per timer (typically a transaction
/// id and a timer kind).
#[derive(Debug)]
pub(crate) struct TimerWheel<T> {
    origin: Instant,
    tick_nanos: u64,
    mask: u64,
    buckets: Box<[Bucket]>,
    entries: Vec<Entry<T>>,
    free: u32,
    /// Last tick processed by `advance`; entries with a deadline ≤ `current` have fired.
    current: u64,
    len: usize,
    /// Reused when `advance` jumps more than one revolution and must sort.
    scratch: Vec<(u64, T)>,
}

/// Default tick (DESIGN.md §4).
pub(crate) const DEFAULT_TICK: Duration = Duration::from_millis(10);
/// Default bucket count: 4096 × 10 ms ≈ 41 s per revolution, which covers every
/// §17 timer with default T1 in one revolution (Timer C's 3 minutes takes a few).
pub(crate) const DEFAULT_SLOTS: usize = 4096;

impl<T> TimerWheel<T> {
    /// A wheel with the default 10 ms tick and 4096 buckets, counting from `origin`.
    pub(crate) fn new(origin: Instant) -> Self {
        Self::with_config(origin, DEFAULT_TICK, DEFAULT_SLOTS)
    }

    /// A wheel with the given tick (zero is raised to 1 ns) and bucket count
    /// (rounded up to a power of two, between 1 and 2^24).
    pub(crate) fn with_config(origin: Instant, tick: Duration, slots: usize) -> Self {
        let tick_nanos = u64::try_from(tick.as_nanos()).unwrap_or(u64::MAX).max(1);
        let slots = slots.clamp(1, 1 << 24).next_power_of_two();
        TimerWheel {
            origin,
            tick_nanos,
            mask: slots as u64 - 1,
            buckets: vec![EMPTY_BUCKET; slots].into_boxed_slice(),
            entries: Vec::new(),
            free: NIL,
            current: 0,
            len: 0,
            scratch: Vec::new(),
        }
    }

    /// Number of pending timers.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// True when no timer is pending.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The instant at which the next tick boundary after the last `advance` falls:
    /// the earliest moment any pending timer can expire. `None` when none is pending.
    /// A runtime sleeps until then (or simply every tick while timers are pending).
    pub(crate) fn next_tick_at(&self) -> Option<Instant> {
        if self.len == 0 {
            return None;
        }
        let nanos = self
            .current
            .saturating_add(1)
            .saturating_mul(self.tick_nanos);
        self.origin.checked_add(Duration::from_nanos(nanos))
    }

    /// The tick whose start is at or after `deadline` (rounding up: never early).
    fn tick_of_deadline(&self, deadline: Instant) -> u64 {
        let nanos = deadline.saturating_duration_since(self.origin).as_nanos();
        let ticks = nanos.div_ceil(u128::from(self.tick_nanos));
        u64::try_from(ticks).unwrap_or(u64::MAX)
    }

    /// The last tick that has fully started at `now` (rounding down).
    fn tick_of_now(&self, now: Instant) -> u64 {
        let nanos = now.saturating_duration_since(self.origin).as_nanos();
        u64::try_from(nanos / u128::from(self.tick_nanos)).unwrap_or(u64::MAX)
    }

    /// Arms a timer expiring at `deadline`. A deadline at or before the last
    /// processed tick fires on the next tick. O(1).
    pub(crate) fn insert(
        &mut self,
        deadline: Instant,
        payload: T,
    ) -> Result<TimerHandle, WheelFull> {
        self.insert_at_tick(self.tick_of_deadline(deadline), payload)
    }

    /// Arms a timer expiring `after` from `now`.
    pub(crate) fn insert_after(
        &mut self,
        now: Instant,
        after: Duration,
        payload: T,
    ) -> Result<TimerHandle, WheelFull> {
        match now.checked_add(after) {
            Some(deadline) => self.insert(deadline, payload),
            // Beyond the platform's clock range: never fires in practice.
            None => self.insert_at_tick(u64::MAX, payload),
        }
    }

    fn insert_at_tick(&mut self, tick: u64, payload: T) -> Result<TimerHandle, WheelFull> {
        let tick = tick.max(self.current.saturating_add(1));
        let slot = if self.free != NIL {
            let slot = self.free;
            let e = &mut self.entries[slot as usize];
            self.free = e.next;
            e.deadline = tick;
            e.payload = Some(payload);
            slot
        } else {
            let slot = u32::try_from(self.entries.len()).map_err(|_| WheelFull)?;
            if slot == NIL {
                return Err(WheelFull);
            }
            self.entries.push(Entry {
                generation: 0,
                deadline: tick,
                prev: NIL,
                next: NIL,
                payload: Some(payload),
            });
            slot
        };
        self.link(slot, tick);
        self.len += 1;
        Ok(TimerHandle {
            slot,
            generation: self.entries[slot as usize].generation,
        })
    }

    /// Disarms a timer; returns its payload when the handle was still live (not
    /// fired, not cancelled). O(1), no search.
    pub(crate) fn cancel(&mut self, handle: TimerHandle) -> Option<T> {
        let e = self.entries.get(handle.slot as usize)?;
        if e.generation != handle.generation || e.payload.is_none() {
            return None;
        }
        self.unlink(handle.slot);
        let payload = self.release(handle.slot);
        self.len -= 1;
        payload
    }

    /// True while the handle's timer is pending.
    pub(crate) fn is_pending(&self, handle: TimerHandle) -> bool {
        self.entries
            .get(handle.slot as usize)
            .is_some_and(|e| e.generation == handle.generation && e.payload.is_some())
    }

    /// Moves the wheel to `now` and appends the payloads of every timer whose
    /// deadline has passed to `out`: in deadline order, insertion order within a
    /// tick. Returns how many were appended. Calling it with a `now` that has not
    /// reached a new tick does nothing.
    pub(crate) fn advance(&mut self, now: Instant, out: &mut Vec<T>) -> usize {
        let target = self.tick_of_now(now);
        if target <= self.current {
            return 0;
        }
        let before = out.len();
        let steps = target - self.current;
        if steps <= self.mask + 1 {
            // Each bucket is visited at most once, in tick order, so an entry found
            // with `deadline <= tick` is exactly one due at `tick` (a later
            // revolution's entry has `deadline > target`).
            for tick in self.current + 1..=target {
                self.fire_bucket(tick, tick, |_, p| out.push(p));
            }
        } else {
            // More than a revolution passed (a stalled runtime): visit every bucket
            // once and sort what fired by deadline. Stable sort keeps insertion
            // order among equal deadlines (they share a bucket).
            let mut scratch = std::mem::take(&mut self.scratch);
            for b in 0..=self.mask {
                self.fire_bucket(b, target, |d, p| scratch.push((d, p)));
            }
            scratch.sort_by_key(|&(d, _)| d);
            out.extend(scratch.drain(..).map(|(_, p)| p));
            self.scratch = scratch;
        }
        self.current = target;
        out.len() - before
    }

    /// Fires the entries of bucket `tick & mask` due at or before `limit`.
    fn fire_bucket(&mut self, tick: u64, limit: u64, mut sink: impl FnMut(u64, T)) {
        let b = (tick & self.mask) as usize;
        let mut cur = self.buckets[b].head;
        while cur != NIL {
            let (next, deadline) = {
                let e = &self.entries[cur as usize];
                (e.next, e.deadline)
            };
            if deadline <= limit {
                self.unlink(cur);
                if let Some(p) = self.release(cur) {
                    self.len -= 1;
                    sink(deadline, p);
                }
            }
            cur = next;
        }
    }

    /// Appends `slot` at the tail of the bucket for `tick`.
    fn link(&mut self, slot: u32, tick: u64) {
        let b = (tick & self.mask) as usize;
        let tail = self.buckets[b].tail;
        {
            let e = &mut self.entries[slot as usize];
            e.prev = tail;
            e.next = NIL;
        }
        if tail == NIL {
            self.buckets[b].head = slot;
        } else {
            self.entries[tail as usize].next = slot;
        }
        self.buckets[b].tail = slot;
    }

    /// Removes `slot` from its bucket list.
    fn unlink(&mut self, slot: u32) {
        let (prev, next, deadline) = {
            let e = &self.entries[slot as usize];
            (e.prev, e.next, e.deadline)
        };
        let b = (deadline & self.mask) as usize;
        if prev == NIL {
            self.buckets[b].head = next;
        } else {
            self.entries[prev as usize].next = next;
        }
        if next == NIL {
            self.buckets[b].tail = prev;
        } else {
            self.entries[next as usize].prev = prev;
        }
    }

    /// Frees an unlinked slot: bumps its generation (staling handles) and pushes it
    /// on the free list.
    fn release(&mut self, slot: u32) -> Option<T> {
        let e = &mut self.entries[slot as usize];
        e.generation = e.generation.wrapping_add(1);
        e.prev = NIL;
        e.next = self.free;
        self.free = slot;
        e.payload.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn wheel() -> (Instant, TimerWheel<u32>) {
        let t0 = Instant::now();
        (t0, TimerWheel::new(t0))
    }

    #[test]
    fn timer_fires_not_before_its_deadline() {
        let (t0, mut w) = wheel();
        w.insert(t0 + ms(25), 1).unwrap();
        let mut out = Vec::new();
        assert_eq!(w.advance(t0 + ms(20), &mut out), 0);
        assert_eq!(w.advance(t0 + ms(29), &mut out), 0);
        // 25 ms rounds up to tick 3 (30 ms).
        assert_eq!(w.advance(t0 + ms(30), &mut out), 1);
        assert_eq!(out, [1]);
        assert!(w.is_empty());
    }

    #[test]
    fn timer_exactly_on_tick_boundary() {
        let (t0, mut w) = wheel();
        w.insert(t0 + ms(20), 7).unwrap();
        let mut out = Vec::new();
        assert_eq!(w.advance(t0 + ms(19), &mut out), 0);
        assert_eq!(w.advance(t0 + ms(20), &mut out), 1);
    }

    #[test]
    fn timer_in_the_past_fires_next_tick() {
        let (t0, mut w) = wheel();
        let mut out = Vec::new();
        w.advance(t0 + ms(100), &mut out);
        w.insert(t0 + ms(5), 9).unwrap();
        assert_eq!(w.advance(t0 + ms(105), &mut out), 0);
        assert_eq!(w.advance(t0 + ms(110), &mut out), 1);
        assert_eq!(out, [9]);
    }

    #[test]
    fn timer_cancel_prevents_firing_and_stales_handle() {
        let (t0, mut w) = wheel();
        let h = w.insert(t0 + ms(50), 1).unwrap();
        let h2 = w.insert(t0 + ms(50), 2).unwrap();
        assert!(w.is_pending(h));
        assert_eq!(w.cancel(h), Some(1));
        assert!(!w.is_pending(h));
        assert_eq!(w.cancel(h), None, "second cancel is a no-op");
        let mut out = Vec::new();
        w.advance(t0 + ms(60), &mut out);
        assert_eq!(out, [2]);
        assert_eq!(w.cancel(h2), None, "fired handle is stale");
    }

    #[test]
    fn timer_stale_handle_does_not_cancel_slot_reuser() {
        let (t0, mut w) = wheel();
        let old = w.insert(t0 + ms(50), 1).unwrap();
        w.cancel(old);
        // The freed slot is reused with a new generation.
        let new = w.insert(t0 + ms(50), 2).unwrap();
        assert_eq!(old.slot, new.slot);
        assert_ne!(old.generation, new.generation);
        assert_eq!(w.cancel(old), None);
        assert!(w.is_pending(new));
    }

    #[test]
    fn timer_rearm_after_fire() {
        let (t0, mut w) = wheel();
        let mut out = Vec::new();
        w.insert(t0 + ms(500), 1).unwrap();
        w.advance(t0 + ms(500), &mut out);
        assert_eq!(out, [1]);
        // Re-arm with the doubled interval, as Timer A does.
        let h = w.insert(t0 + ms(1500), 1).unwrap();
        out.clear();
        w.advance(t0 + ms(1490), &mut out);
        assert!(out.is_empty());
        w.advance(t0 + ms(1500), &mut out);
        assert_eq!(out, [1]);
        assert!(!w.is_pending(h));
    }

    #[test]
    fn timer_far_deadline_beyond_one_revolution() {
        let t0 = Instant::now();
        // 8 buckets × 10 ms = 80 ms per revolution.
        let mut w = TimerWheel::with_config(t0, ms(10), 8);
        // Ticks 25, 1 and 17 all hash to bucket 1: the wheel passes that bucket
        // several times before the far entries are due.
        w.insert(t0 + ms(250), 1).unwrap();
        w.insert(t0 + ms(10), 2).unwrap();
        w.insert(t0 + ms(170), 3).unwrap();
        let mut out = Vec::new();
        let mut now = t0;
        let mut fired_at = Vec::new();
        while now <= t0 + ms(300) {
            if w.advance(now, &mut out) > 0 {
                fired_at.push((now - t0).as_millis());
            }
            now += ms(10);
        }
        assert_eq!(out, [2, 3, 1]);
        assert_eq!(fired_at, [10, 170, 250]);
    }

    #[test]
    fn timer_large_jump_keeps_deadline_order() {
        let t0 = Instant::now();
        let mut w = TimerWheel::with_config(t0, ms(10), 8);
        // Inserted in reverse deadline order, across several revolutions.
        for (i, d) in [(1u32, 700u64), (2, 300), (3, 90), (4, 90), (5, 20)] {
            w.insert(t0 + ms(d), i).unwrap();
        }
        w.insert(t0 + ms(5000), 99).unwrap();
        let mut out = Vec::new();
        // One advance covering 1 s = 12.5 revolutions of this small wheel.
        assert_eq!(w.advance(t0 + ms(1000), &mut out), 5);
        assert_eq!(out, [5, 3, 4, 2, 1]);
        assert_eq!(w.len(), 1);
        out.clear();
        w.advance(t0 + ms(5000), &mut out);
        assert_eq!(out, [99]);
    }

    #[test]
    fn timer_ordering_within_a_tick_is_insertion_order() {
        let (t0, mut w) = wheel();
        // All in tick 5 (41..=50 ms round up to 50).
        for (i, d) in [(1u32, 50u64), (2, 41), (3, 45), (4, 50)] {
            w.insert(t0 + ms(d), i).unwrap();
        }
        w.insert(t0 + ms(40), 0).unwrap(); // tick 4, earlier
        let mut out = Vec::new();
        w.advance(t0 + ms(50), &mut out);
        assert_eq!(out, [0, 1, 2, 3, 4]);
    }

    #[test]
    fn timer_advance_backwards_or_same_tick_is_a_no_op() {
        let (t0, mut w) = wheel();
        w.insert(t0 + ms(30), 1).unwrap();
        let mut out = Vec::new();
        w.advance(t0 + ms(20), &mut out);
        w.advance(t0 + ms(10), &mut out);
        w.advance(t0, &mut out);
        assert!(out.is_empty());
        assert_eq!(w.len(), 1);
    }

    #[test]
    fn timer_next_tick_at() {
        let (t0, mut w) = wheel();
        assert_eq!(w.next_tick_at(), None);
        w.insert(t0 + ms(1000), 1).unwrap();
        assert_eq!(w.next_tick_at(), Some(t0 + ms(10)));
        w.advance(t0 + ms(35), &mut Vec::new());
        assert_eq!(w.next_tick_at(), Some(t0 + ms(40)));
    }

    #[test]
    fn timer_hundreds_of_thousands_pending() {
        let t0 = Instant::now();
        let mut w = TimerWheel::new(t0);
        const N: u32 = 300_000;
        let mut handles = Vec::with_capacity(N as usize);
        for i in 0..N {
            // Spread over 0..200 s: many revolutions of the default wheel.
            let d = Duration::from_millis(u64::from(i) * 7 % 200_000);
            handles.push(w.insert(t0 + d, i).unwrap());
        }
        assert_eq!(w.len(), N as usize);
        // Cancel every third.
        let mut cancelled = 0;
        for h in handles.iter().step_by(3) {
            assert!(w.cancel(*h).is_some());
            cancelled += 1;
        }
        let mut out = Vec::with_capacity(N as usize);
        let mut now = t0;
        let mut last_deadline = 0u64;
        while !w.is_empty() {
            now += ms(10);
            let start = out.len();
            w.advance(now, &mut out);
            for &i in &out[start..] {
                let d = u64::from(i) * 7 % 200_000;
                assert!(d >= last_deadline.saturating_sub(10), "deadline order");
                assert!(t0 + ms(d) <= now, "never early");
                last_deadline = last_deadline.max(d);
            }
        }
        assert_eq!(out.len(), N as usize - cancelled);
        // The slab is reused: re-inserting N timers does not grow it.
        let cap = w.entries.len();
        for i in 0..N {
            w.insert(now + ms(u64::from(i % 1000)), i).unwrap();
        }
        assert_eq!(w.entries.len(), cap);
    }

    #[test]
    fn timer_steady_state_does_not_grow_slab() {
        let (t0, mut w) = wheel();
        let mut out = Vec::with_capacity(16);
        let mut now = t0;
        for round in 0..1000u64 {
            w.insert(now + ms(20 + round % 7), 1).unwrap();
            now += ms(10);
            w.advance(now, &mut out);
            out.clear();
        }
        assert!(
            w.entries.len() <= 4,
            "slab stayed small: {}",
            w.entries.len()
        );
    }
}
