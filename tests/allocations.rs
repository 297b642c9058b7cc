//! Heap allocations on the call path: the `call_path` bench's call (six messages
//! through a sans-IO shard, `benches/call/mod.rs`) with a counting global
//! allocator around each message. The bound is the count the architecture issue
//! started from (a forwarded INVITE: 5); it is a count, not a timing, so it holds
//! on any machine.

#[path = "../benches/call/mod.rs"]
mod call;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use call::{Bench, Hooks, Step, StepFn, TickFn};
use coresip::io::Peer;
use coresip::Outbox;
use coresip::Shard;

/// The system allocator, counting allocations (and reallocations: each may move
/// the block) while [`COUNTING`] is set.
struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is passed to `System` unchanged; the counter has no effect on
// the memory handed out.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: the caller's contract for `alloc` is passed on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` (every block does), with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: `ptr` came from `System` with `layout`; the caller's contract
        // for `realloc` is passed on unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

fn count() {
    if COUNTING.load(Ordering::Relaxed) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations inside measured messages, per kind (the index is `Step as usize`).
static PER_STEP: [AtomicU64; 6] = [const { AtomicU64::new(0) }; 6];

/// Message kind `K` into the shard with the allocator counting.
fn counted<const K: usize>(
    shard: &mut Shard,
    now: Instant,
    peer: Peer,
    b: &[u8],
    out: &mut Outbox,
) {
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    COUNTING.store(true, Ordering::Relaxed);
    shard.on_datagram(now, peer, b, out);
    COUNTING.store(false, Ordering::Relaxed);
    PER_STEP[K].fetch_add(
        ALLOCATIONS.load(Ordering::Relaxed) - before,
        Ordering::Relaxed,
    );
}

const COUNTED: Hooks = Hooks {
    step: |step, measuring| -> StepFn {
        if !measuring {
            return (Hooks::PLAIN.step)(step, false);
        }
        match step {
            Step::Invite => counted::<0>,
            Step::Ringing => counted::<1>,
            Step::Ok => counted::<2>,
            Step::Ack => counted::<3>,
            Step::Bye => counted::<4>,
            Step::ByeOk => counted::<5>,
        }
    },
    tick: |measuring| -> TickFn { (Hooks::PLAIN.tick)(measuring) },
};

/// Calls counted after a warm-up that fills the transaction table to its steady
/// size (64·T1 = 32 s of calls at the harness's 1000 calls per simulated second),
/// so the table's own growth is not counted.
const WARMUP: u64 = 33_000;
const MEASURED: u64 = 2_000;

/// The counts measured when this test was written (INVITE, 180, 200, ACK, BYE,
/// the BYE's 200): none may grow.
const BOUNDS: [f64; 6] = [5.0, 1.0, 1.0, 0.0, 2.0, 1.0];

#[test]
fn no_message_of_a_call_allocates_more_than_when_measured() {
    let mut b = Bench::new(COUNTED);
    b.measuring = false;
    for _ in 0..WARMUP {
        b.call();
    }
    b.measuring = true;
    for _ in 0..MEASURED {
        b.call();
    }
    let per_call: Vec<f64> = PER_STEP
        .iter()
        .map(|n| n.load(Ordering::Relaxed) as f64 / MEASURED as f64)
        .collect();
    eprintln!("allocations per call, INVITE 180 200 ACK BYE 200(BYE): {per_call:?}");
    for (i, (&got, &bound)) in per_call.iter().zip(&BOUNDS).enumerate() {
        assert!(
            got <= bound,
            "message {i} of the call allocates {got} times per call (at most {bound})"
        );
    }
}
