//! The whole sans-IO proxy core (`Shard`: parser, check, transactions, routing,
//! registrar, digest authentication, timers, the mesh between cores) fed a
//! sequence of arbitrary messages from a few peers, with a clock that moves:
//! nothing a peer sends may panic, hang or trip a debug assertion, because on a
//! real core that is every call of that core lost (DESIGN.md §2, README "bad
//! input").
//!
//! # Input
//!
//! - byte 0 chooses the configuration: bit 0 stateless (`--stateless`), bit 1
//!   Record-Route, bit 2 two cores (two shards, mesh messages carried between
//!   them), bits 4–5 the fork mode, bits 6–7 digest authentication (`--auth`:
//!   none, register, all, all; users `alice` and `bob`, password `secret`);
//! - the rest is split at each `\n~~~\n` into steps. A step's first byte says who
//!   sends it and when: bits 0–1 the peer (two UDP sources, a TCP connection, the
//!   registered callee's address), bit 2 the core it lands on, bits 3–7 how far the
//!   clock moves first (0–31 × 256 ms, so that retransmission timers, Timer C and
//!   the registrar's expiries fire within a run). The rest of the step is the
//!   message.
//!
//! A step whose message starts with `@` is the answer of whoever received the last
//! request the proxy sent: its status line is `SIP/2.0 ` and the rest of the
//! step's first line, then the Via, From, To (tagged if it is not), Call-ID and
//! CSeq lines of that request, then the rest of the step. That is how a run gets
//! past the branch the proxy chose (a fuzzer cannot guess it) into provisional and
//! final responses, forking, CANCEL, ACK and in-dialog requests.
//!
//! Host names the proxy asks to resolve are answered with a loopback address, so
//! that the requests parked on them go on. The shards' seeds and clocks are fixed,
//! so a run replays the same way.
#![no_main]

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use coresip::NonceSecret;
use coresip::UserStore;
use coresip::{AuthConfig, Authenticator};
use coresip::io::Transport;
use coresip::{AuthMode, Config, ForkMode};
use coresip::{AuthSetup, Services, Start};
use coresip::io::{ConnId, Peer};
use coresip::Outbox;
use coresip::Shard;
use libfuzzer_sys::fuzz_target;

const SEPARATOR: &[u8] = b"\n~~~\n";
const DOMAIN: &str = "example.test";
const PROXY: &str = "127.0.0.1:5060";
/// The peers a step can come from (bits 0–1 of its first byte).
const PEERS: [&str; 4] = [
    "127.0.0.1:5070",
    "127.0.0.2:5060",
    "127.0.0.3:40000",
    "127.0.0.1:5090",
];
/// Steps past this many are ignored: a run stays short.
const MAX_STEPS: usize = 64;

fn config(mode: u8) -> Config {
    let mut cfg = Config::for_tests();
    cfg.listen = vec![
        format!("udp:{PROXY}").parse().expect("listener"),
        format!("tcp:{PROXY}").parse().expect("listener"),
    ];
    cfg.domains = vec![DOMAIN.into()];
    cfg.cores = if mode & 4 != 0 { 2 } else { 1 };
    cfg.proxy.stateless = mode & 1 != 0;
    cfg.proxy.record_route = mode & 2 != 0;
    cfg.proxy.relay = vec!["127.0.0.0/8".parse().expect("cidr")];
    cfg.proxy.fork = match (mode >> 4) & 3 {
        0 => ForkMode::Parallel,
        1 => ForkMode::Serial,
        _ => ForkMode::Auto,
    };
    cfg.registrar.auth = match mode >> 6 {
        0 => AuthMode::None,
        1 => AuthMode::Register,
        _ => AuthMode::All,
    };
    cfg
}

/// A shard with bindings in memory and users `alice` and `bob` (password
/// `secret`) in the realm of the domain.
fn shard(id: usize, cfg: &Config, start: Instant) -> Shard {
    let mut services = Services::in_memory(cfg);
    if cfg.registrar.auth == AuthMode::None {
        return with_services(id, cfg, start, services);
    }
    let users = Arc::new(
        UserStore::parse(b"alice:secret\nbob:secret\n").expect("users file of the target"),
    );
    let secret = NonceSecret::generate().expect("nonce secret");
    services.auth = Some(AuthSetup {
        authenticator: Authenticator::new(Arc::clone(&users), &secret, AuthConfig::default()),
        users,
        mode: cfg.registrar.auth,
        realm: DOMAIN.into(),
    });
    with_services(id, cfg, start, services)
}

fn with_services(id: usize, cfg: &Config, start: Instant, services: Services) -> Shard {
    let start = Start {
        seed: 7 + id as u64,
        now: start,
        unix_now: 1_800_000_000,
    };
    Shard::with_seed(
        id,
        cfg,
        vec!["127.0.0.1".parse().expect("ip")],
        services,
        start,
    )
}

fn peer(control: u8) -> Peer {
    let which = usize::from(control & 3);
    let addr: SocketAddr = PEERS[which].parse().expect("peer address");
    if which == 2 {
        Peer {
            transport: Transport::Tcp,
            addr,
            listener: 1,
            conn: Some(ConnId {
                shard: u16::from(control >> 2 & 1),
                seq: 1,
            }),
        }
    } else {
        Peer::udp(addr, 0)
    }
}

/// Hands every mesh message in `out` to its shard, and answers every name to
/// resolve, until nothing more comes of it (bounded: a loop between the shards
/// would be a bug of its own, and is reported as one).
fn settle(
    shards: &mut [Shard],
    from: usize,
    now: Instant,
    out: &mut Outbox,
    last_request: &mut Vec<u8>,
) {
    let mut work: Vec<(usize, Outbox)> = vec![(from, std::mem::take(out))];
    let mut rounds = 0;
    while let Some((at, mut o)) = work.pop() {
        rounds += 1;
        assert!(rounds < 10_000, "the mesh keeps bouncing messages");
        let names: Vec<String> = o.drain_resolve().collect();
        let mesh: Vec<_> = o.drain_mesh().collect();
        for (dest, bytes) in o.transmits() {
            if trace() {
                eprintln!("  sent to {dest:?}: {}", first_line(bytes));
            }
            if !bytes.starts_with(b"SIP/2.0 ") {
                last_request.clear();
                last_request.extend_from_slice(bytes);
            }
        }
        let loopback: [IpAddr; 1] = ["127.0.0.1".parse().expect("ip")];
        for name in names {
            let mut next = Outbox::new();
            shards[at].on_resolved(now, &name, &loopback, &mut next);
            work.push((at, next));
        }
        for (to, msg) in mesh {
            assert!(
                to < shards.len(),
                "mesh message to shard {to} of {}",
                shards.len()
            );
            let mut next = Outbox::new();
            shards[to].on_mesh(now, msg, &mut next);
            work.push((to, next));
        }
    }
}

/// `SHARD_FUZZ_TRACE` set: print each step and what the shards sent (to check
/// that a seed goes where it should).
fn trace() -> bool {
    std::env::var_os("SHARD_FUZZ_TRACE").is_some()
}

fn first_line(bytes: &[u8]) -> String {
    let end = bytes
        .iter()
        .position(|&b| b == b'\r')
        .unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// Writes into `answer` the response `reply` describes (see the module docs) to
/// `request`.
fn answer_to(request: &[u8], reply: &[u8], answer: &mut Vec<u8>) {
    answer.clear();
    let (status, extra) = match reply.windows(2).position(|w| w == b"\r\n") {
        Some(at) => (&reply[..at], &reply[at + 2..]),
        None => (reply, &b""[..]),
    };
    answer.extend_from_slice(b"SIP/2.0 ");
    answer.extend_from_slice(status);
    answer.extend_from_slice(b"\r\n");
    let head_end = request
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(request.len());
    for line in request[..head_end].split(|&b| b == b'\n').skip(1) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let name_end = line.iter().position(|&b| b == b':').unwrap_or(0);
        let name = line[..name_end].trim_ascii().to_ascii_lowercase();
        let copied = matches!(
            &name[..],
            b"via" | b"v" | b"from" | b"f" | b"to" | b"t" | b"call-id" | b"i" | b"cseq"
        );
        if !copied {
            continue;
        }
        answer.extend_from_slice(line);
        let is_to = matches!(&name[..], b"to" | b"t");
        if is_to && !line.windows(5).any(|w| w.eq_ignore_ascii_case(b";tag=")) {
            answer.extend_from_slice(b";tag=fz");
        }
        answer.extend_from_slice(b"\r\n");
    }
    answer.extend_from_slice(extra);
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let cfg = config(mode);
    let mut now = Instant::now();
    let mut shards: Vec<Shard> = (0..cfg.cores).map(|id| shard(id, &cfg, now)).collect();
    let mut out = Outbox::new();
    let mut last_request = Vec::new();
    let mut answer = Vec::new();

    let mut steps = rest;
    for _ in 0..MAX_STEPS {
        let split = steps.windows(SEPARATOR.len()).position(|w| w == SEPARATOR);
        let (step, more) = match split {
            Some(at) => (&steps[..at], Some(&steps[at + SEPARATOR.len()..])),
            None => (steps, None),
        };
        if let Some((&control, msg)) = step.split_first() {
            now += Duration::from_millis(256 * u64::from(control >> 3));
            for id in 0..shards.len() {
                shards[id].on_tick(now, &mut out);
                settle(&mut shards, id, now, &mut out, &mut last_request);
            }
            let at = usize::from(control >> 2 & 1) % shards.len();
            let from = peer(control);
            let msg = match msg.strip_prefix(b"@") {
                Some(reply) => {
                    answer_to(&last_request, reply, &mut answer);
                    &answer[..]
                }
                None => msg,
            };
            if trace() {
                eprintln!("core {at} from {}: {}", from.addr, first_line(msg));
            }
            if from.transport == Transport::Udp {
                shards[at].on_datagram(now, from, msg, &mut out);
            } else {
                shards[at].on_stream_message(now, from, msg, &mut out);
            }
            settle(&mut shards, at, now, &mut out, &mut last_request);
        }
        match more {
            Some(m) => steps = m,
            None => break,
        }
    }
    // Let every timer run out: retransmissions end, transactions and bindings go.
    for _ in 0..8 {
        now += Duration::from_secs(40);
        for id in 0..shards.len() {
            shards[id].on_tick(now, &mut out);
            settle(&mut shards, id, now, &mut out, &mut last_request);
        }
    }
});
