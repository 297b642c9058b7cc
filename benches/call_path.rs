//! The user-space cost of one basic call through the proxy core: the sans-IO
//! [`Shard`] fed the seven messages of `loadtest/scenarios/uac_call.xml` and
//! `uas_call.xml` (RFC 3665 §3.2 shape: INVITE, 100 from the proxy, 180, 200, ACK,
//! BYE, 200), with no sockets and no executor. It is the stable, callgrind-able
//! counterpart of what `loadtest/run --scenario call` measures end to end.
//!
//! The shard is configured as the load kit starts coresip (`--domain example.test`,
//! `--relay 127.0.0.0/8`, UDP and TCP listeners on 127.0.0.1:5060, Record-Route on,
//! stateful, one core), and the callee `sip:callee@example.test` is registered at
//! 127.0.0.1:5090 once. Per call (unique Call-ID, branches and tags each time):
//!
//! 1. the caller (127.0.0.1:5080) sends the INVITE with SDP: the proxy answers
//!    100 Trying and forwards the INVITE to the callee;
//! 2. the callee answers 180 and 3. 200 with SDP, built from the forwarded INVITE
//!    as SIPp's `[last_Via:]`, `[last_Record-Route:]`… build them (several headers
//!    of a name become one comma-separated line): both reach the caller;
//! 4. the caller sends the ACK and 5. the BYE to the 200's Contact with the Route
//!    set from its Record-Route (SIPp's `[next_url]`, `[routes]`): both reach the
//!    callee;
//! 6. the callee answers the BYE 200, which reaches the caller.
//!
//! Every step is checked (where each transmit goes, what it starts with), so the
//! bench cannot measure an error path. Building those messages and reading the
//! forwarded ones is the harness's work and is not timed: only the six
//! [`Shard::on_datagram`] calls are (criterion's `iter_custom`). A simulated clock
//! advances 1 s every 1000 calls, at which point [`Shard::on_tick`] ends the
//! transactions whose timers ran out (64·T1 = 32 s after a 2xx, T4 after a BYE's
//! 200), so the transaction table stays at its steady-state size for 1000 calls/s.
//! The ticks are not in criterion's time; callgrind shows their cost apart
//! (`proxy_tick`).
//!
//! # Criterion
//!
//! `cargo bench --bench call_path` reports `call_path/basic_call`, the time of one
//! whole call (six messages into the shard); `-- --test` runs one call and checks it.
//!
//! # Instructions per call (callgrind)
//!
//! With `CALL_PATH_CALLS=N` the binary runs, instead of criterion, a warm-up of
//! `CALL_PATH_WARMUP` calls (default 33000: the table fills up to its steady state)
//! and then N calls, and prints what it did. The warm-up's messages go through
//! `warmup_step`/`warmup_tick`, the measured ones through `proxy_step` (every
//! message) and `proxy_tick`, so their inclusive costs count the N measured calls
//! only:
//!
//! ```text
//! cargo bench --bench call_path --no-run   # prints the binary's path
//! CALL_PATH_CALLS=20000 valgrind --tool=callgrind \
//!     --callgrind-out-file=/tmp/call_path.cg target/release/deps/call_path-<hash>
//! callgrind_annotate --inclusive=yes --auto=no --threshold=100 /tmp/call_path.cg \
//!     | grep -E 'call_path::(proxy_|step_)'
//! ```
//!
//! (`target/` is `$CARGO_TARGET_DIR` when set.) Instructions per call =
//! `proxy_step`'s inclusive Ir / N; per message kind, the inclusive Ir of
//! `step_invite`, `step_ringing`, `step_ok`, `step_ack`, `step_bye`, `step_bye_ok`
//! / N; the timers' share per call, `proxy_tick`'s / N. `benches/call_path.md` has
//! more (a profile of the proxy alone, the figures of the last run).

mod call;

use std::hint::black_box;
use std::time::{Duration, Instant};

use call::{Bench, Hooks, Step, StepFn, TickFn, CALLS_PER_SECOND, DEFAULT_WARMUP};
use coresip::io::Peer;
use coresip::Outbox;
use coresip::Shard;
use criterion::{criterion_group, Criterion, Throughput};
/// One message into the shard: the unit callgrind attributes instructions to.
#[inline(never)]
fn proxy_step(shard: &mut Shard, now: Instant, peer: Peer, bytes: &[u8], out: &mut Outbox) {
    shard.on_datagram(now, peer, bytes, out);
}

/// One timer tick.
#[inline(never)]
fn proxy_tick(shard: &mut Shard, now: Instant, out: &mut Outbox) {
    shard.on_tick(now, out);
}

/// [`proxy_step`] during the callgrind mode's warm-up, so that it stays out of
/// `proxy_step`'s inclusive cost.
#[inline(never)]
fn warmup_step(shard: &mut Shard, now: Instant, peer: Peer, bytes: &[u8], out: &mut Outbox) {
    black_box(u8::MAX);
    shard.on_datagram(now, peer, bytes, out);
}

/// [`proxy_tick`] during the warm-up.
#[inline(never)]
fn warmup_tick(shard: &mut Shard, now: Instant, out: &mut Outbox) {
    black_box(u8::MAX);
    shard.on_tick(now, out);
}
/// The per-kind entry points. Their bodies differ (the `black_box`ed kind) so that
/// LLVM's function merging cannot fold them into one symbol.
macro_rules! step_fns {
    ($($name:ident = $step:expr;)*) => {$(
        #[inline(never)]
        fn $name(shard: &mut Shard, now: Instant, peer: Peer, bytes: &[u8], out: &mut Outbox) {
            black_box($step as u8);
            proxy_step(shard, now, peer, bytes, out);
        }
    )*};
}

step_fns! {
    step_invite = Step::Invite;
    step_ringing = Step::Ringing;
    step_ok = Step::Ok;
    step_ack = Step::Ack;
    step_bye = Step::Bye;
    step_bye_ok = Step::ByeOk;
}

/// The bench's entry points: measured messages through `step_<kind>`, the
/// warm-up's through `warmup_step`.
const HOOKS: Hooks = Hooks {
    step: |step, measuring| -> StepFn {
        if !measuring {
            return warmup_step;
        }
        match step {
            Step::Invite => step_invite,
            Step::Ringing => step_ringing,
            Step::Ok => step_ok,
            Step::Ack => step_ack,
            Step::Bye => step_bye,
            Step::ByeOk => step_bye_ok,
        }
    },
    tick: |measuring| -> TickFn {
        if measuring {
            proxy_tick
        } else {
            warmup_tick
        }
    },
};

fn basic_call(c: &mut Criterion) {
    let mut b = Bench::new(HOOKS);
    let mut g = c.benchmark_group("call_path");
    g.throughput(Throughput::Elements(1));
    g.bench_function("basic_call", |bench| {
        bench.iter_custom(|iters| (0..iters).map(|_| b.call()).sum())
    });
    g.finish();
    assert_eq!(b.tick_transmits, 0, "the timers sent something");
}

criterion_group!(benches, basic_call);

/// `CALL_PATH_CALLS=N`: warm-up and N measured calls without criterion, for
/// callgrind (see the top of this file).
fn callgrind_mode(calls: u64) {
    let warmup = std::env::var("CALL_PATH_WARMUP")
        .ok()
        .map_or(DEFAULT_WARMUP, |w| {
            w.parse().expect("CALL_PATH_WARMUP: a number")
        });
    let mut b = Bench::new(HOOKS);
    b.measuring = false;
    for _ in 0..warmup {
        b.call();
    }
    let in_flight_before = b.shard.in_flight();
    b.measuring = true;
    let mut took = Duration::ZERO;
    for _ in 0..calls {
        took += b.call();
    }
    assert_eq!(b.tick_transmits, 0, "the timers sent something");
    println!(
        "call_path: {warmup} warm-up calls, then {calls} measured calls over {} simulated s; \
         in flight {in_flight_before} after the warm-up, {} at the end; {:?} per call in the \
         shard; divide proxy_step's inclusive instructions by {calls}",
        calls / CALLS_PER_SECOND,
        b.shard.in_flight(),
        took.div_f64(calls.max(1) as f64),
    );
}

fn main() {
    if let Ok(n) = std::env::var("CALL_PATH_CALLS") {
        callgrind_mode(n.parse().expect("CALL_PATH_CALLS: a number of calls"));
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
