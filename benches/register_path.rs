//! The user-space cost of a REGISTER on one shard and on two, in instructions
//! (callgrind), the way `loadtest/run --scenario register` floods: every REGISTER
//! a new AOR (SIPp's `register_flood.xml`), no authentication, over UDP.
//!
//! On two shards the REGISTERs land on both alternately (the kernel spreads the
//! phones' sockets over the cores) and each shard answers the ones it receives;
//! its batches of binding changes are delivered to the other shard, which applies
//! them (`proxy::engine::replica`). What two cores cost beyond one is then the
//! work of applying the other core's bindings and of sending its own, counted
//! apart from the time a wake-up costs (which callgrind does not see).
//!
//! ```text
//! cargo bench --bench register_path --no-run   # prints the binary's path
//! REGISTER_PATH_N=20000 valgrind --tool=callgrind \
//!     --callgrind-out-file=/tmp/register_path.cg target/release/deps/register_path-<hash>
//! callgrind_annotate --inclusive=yes --auto=no --threshold=100 /tmp/register_path.cg \
//!     | grep -E 'register_path::(one_|two_)'
//! ```
//!
//! Instructions per REGISTER: `one_step`'s inclusive Ir / N on one shard,
//! `two_step`'s / N on two (the answering shard's work), and `two_replica`'s / N
//! (the other shard applying it). Without `REGISTER_PATH_N` it runs 2000
//! REGISTERs each way and checks every answer and that both shards end with every
//! binding (`cargo bench --bench register_path`).
//!
//! 2026-12-08 (N = 20000): `one_step` 27.8k instructions per REGISTER; on two
//! shards `two_step` 28.6k (the answering shard also queues the change for the
//! other) and `two_replica` 1.1k (the other shard applying it): 29.7k, +7%. With
//! the harness and ticks, `one_shard` 32.4k and `two_shards` 35.3k per REGISTER. The µs a
//! REGISTER costs on two cores beyond one (`loadtest/run`, ×1.4–1.6) are mostly
//! not instructions, then: they are the second core's wake-ups and cache misses.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use coresip::io::{Dest, Peer};
use coresip::{Config, MeshMsg, Outbox, Shard};

/// The load kit's domain, and where SIPp registers from.
const DOMAIN: &str = "example.test";
const PROXY: &str = "127.0.0.1:5060";
const PHONE: &str = "127.0.0.1:5999";
/// SIPp's rate in the load runs this is compared with: the simulated clock moves
/// one millisecond every this many REGISTERs / 1000.
const PER_SECOND: u64 = 6000;

fn config(cores: usize) -> Config {
    let mut cfg = Config::for_tests();
    cfg.cores = cores;
    cfg.listen = vec![format!("udp:{PROXY}").parse().unwrap()];
    cfg.domains = vec![DOMAIN.into()];
    cfg
}

/// register_flood.xml's REGISTER number `n`: a new AOR each time.
fn register(buf: &mut String, n: u64) {
    buf.clear();
    buf.push_str(&format!(
        "REGISTER sip:{DOMAIN} SIP/2.0\r\n\
Via: SIP/2.0/UDP {PHONE};branch=z9hG4bK-4242-{n}-0;rport\r\n\
From: <sip:user{n}@{DOMAIN}>;tag=4242SIPpTag00{n}\r\n\
To: <sip:user{n}@{DOMAIN}>\r\n\
Call-ID: {n}-4242@127.0.0.1\r\n\
CSeq: 1 REGISTER\r\n\
Contact: <sip:user{n}@{PHONE}>\r\n\
Expires: 3600\r\n\
Max-Forwards: 70\r\n\
User-Agent: coresip-loadtest\r\n\
Content-Length: 0\r\n\r\n"
    ));
}

/// Checks that `out` holds one 200 to the phone, and clears it (mesh messages
/// included: deliver them first).
fn expect_ok(out: &mut Outbox) {
    let sent: Vec<(Dest, bool)> = out
        .transmits()
        .map(|(d, b)| (d, b.starts_with(b"SIP/2.0 200 ")))
        .collect();
    let phone: SocketAddr = PHONE.parse().unwrap();
    assert!(
        matches!(sent.as_slice(), [(Dest::Udp { to, .. }, true)] if *to == phone),
        "expected one 200, got {sent:?}"
    );
    out.clear();
}

/// A REGISTER into a shard: the unit callgrind attributes instructions to.
#[inline(never)]
fn one_step(shard: &mut Shard, now: Instant, peer: Peer, bytes: &[u8], out: &mut Outbox) {
    shard.on_datagram(now, peer, bytes, out);
}

/// [`one_step`] on two shards (a function of its own for callgrind).
#[inline(never)]
fn two_step(shard: &mut Shard, now: Instant, peer: Peer, bytes: &[u8], out: &mut Outbox) {
    std::hint::black_box(2u8);
    shard.on_datagram(now, peer, bytes, out);
}

/// A batch of the other shard's binding changes into a shard.
#[inline(never)]
fn two_replica(shard: &mut Shard, now: Instant, msg: MeshMsg, out: &mut Outbox) {
    shard.on_mesh(now, msg, out);
}

/// A timer tick (it sends the batches that are due).
#[inline(never)]
fn tick(shard: &mut Shard, now: Instant, out: &mut Outbox) {
    shard.on_tick(now, out);
}

/// Delivers the mesh messages `out` holds to the shard they are for.
fn deliver(shards: &mut [Shard], now: Instant, out: &mut Outbox) {
    let msgs: Vec<_> = out.drain_mesh().collect();
    for (to, msg) in msgs {
        let mut sink = Outbox::new();
        two_replica(&mut shards[to], now, msg, &mut sink);
        assert_eq!(
            sink.transmits().count(),
            0,
            "a replica batch sent something"
        );
    }
}

/// `n` REGISTERs into one shard.
#[inline(never)]
fn one_shard(n: u64) {
    let mut shard = Shard::in_memory(0, &config(1), vec!["127.0.0.1".parse().unwrap()]);
    let peer = Peer::udp(PHONE.parse().unwrap(), 0);
    let (mut out, mut msg, start) = (Outbox::new(), String::with_capacity(512), Instant::now());
    for i in 0..n {
        let now = start + Duration::from_micros(i * 1_000_000 / PER_SECOND);
        register(&mut msg, i);
        one_step(&mut shard, now, peer, msg.as_bytes(), &mut out);
        expect_ok(&mut out);
        if i % (PER_SECOND / 100) == 0 {
            tick(&mut shard, now, &mut out);
        }
    }
}

/// `n` REGISTERs landing on two shards in turn, their batches delivered.
#[inline(never)]
fn two_shards(n: u64) {
    let ips = vec!["127.0.0.1".parse().unwrap()];
    let mut shards = [
        Shard::in_memory(0, &config(2), ips.clone()),
        Shard::in_memory(1, &config(2), ips),
    ];
    let peer = Peer::udp(PHONE.parse().unwrap(), 0);
    let (mut out, mut msg, start) = (Outbox::new(), String::with_capacity(512), Instant::now());
    for i in 0..n {
        let now = start + Duration::from_micros(i * 1_000_000 / PER_SECOND);
        register(&mut msg, i);
        let here = (i % 2) as usize;
        two_step(&mut shards[here], now, peer, msg.as_bytes(), &mut out);
        deliver(&mut shards, now, &mut out);
        expect_ok(&mut out);
        if i % (PER_SECOND / 100) == 0 {
            for s in 0..2 {
                tick(&mut shards[s], now, &mut out);
                deliver(&mut shards, now, &mut out);
            }
        }
    }
    // Every binding on both shards once the last batches are in.
    let end = start + Duration::from_secs(n / PER_SECOND + 1);
    for s in 0..2 {
        tick(&mut shards[s], end, &mut out);
        deliver(&mut shards, end, &mut out);
    }
    for s in &shards {
        let held = s.snapshot();
        assert_eq!(
            held.bindings_live + held.bindings_replicated,
            n,
            "bindings held"
        );
    }
}

fn main() {
    let n = std::env::var("REGISTER_PATH_N")
        .ok()
        .map_or(2000, |v| v.parse().expect("REGISTER_PATH_N: a number"));
    let t = Instant::now();
    one_shard(n);
    let one = t.elapsed();
    let t = Instant::now();
    two_shards(n);
    let two = t.elapsed();
    println!(
        "register_path: {n} REGISTERs on one shard in {one:?}, on two in {two:?}; \
         divide one_shard's and two_shards' inclusive instructions by {n}"
    );
}
