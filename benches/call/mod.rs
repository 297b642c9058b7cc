//! The harness of the `call_path` bench, shared with `tests/allocations.rs`: a
//! sans-IO [`Shard`] configured as `loadtest/run` starts coresip, the callee
//! registered once, and one basic call (SIPp's `uac_call.xml`/`uas_call.xml`
//! messages) fed through it on a simulated clock, every transmit checked. See
//! `benches/call_path.rs` for what is measured.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use coresip::io::{Dest, Peer};
use coresip::Config;
use coresip::Outbox;
use coresip::Shard;

/// The load kit's `DOMAIN`.
const DOMAIN: &str = "example.test";
/// SIPp's `[pid]`, part of its tags.
const PID: u32 = 4242;
const PROXY: &str = "127.0.0.1:5060";
const CALLER: &str = "127.0.0.1:5080";
const CALLEE: &str = "127.0.0.1:5090";
/// The callee's Contact, as uas_call.xml and register.xml write it
/// (`-key contact_transport udp`).
const CALLEE_CONTACT: &str = "<sip:callee@127.0.0.1:5090;transport=udp>";
/// The simulated call rate: the clock advances 1 s (and the shard ticks) every this
/// many calls.
pub const CALLS_PER_SECOND: u64 = 1000;
/// Registration refresh, in simulated seconds (the REGISTER asks for 3600 s).
const REREGISTER_AFTER: Duration = Duration::from_secs(1800);
/// Default warm-up of the callgrind mode: more than 32 s of calls, so that the
/// first transactions have ended and the table is at its steady state.
pub const DEFAULT_WARMUP: u64 = 33 * CALLS_PER_SECOND;

/// The SDP of uac_call.xml and uas_call.xml (`[media_port]` 6000).
const SDP: &str = "v=0\r\n\
o=user1 53655765 2353687637 IN IP4 127.0.0.1\r\n\
s=-\r\n\
c=IN IP4 127.0.0.1\r\n\
t=0 0\r\n\
m=audio 6000 RTP/AVP 0\r\n\
a=rtpmap:0 PCMU/8000\r\n";

/// The messages of a call, in order, each with a function of its own in callgrind's
/// output (`step_invite` …).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Invite,
    Ringing,
    Ok,
    Ack,
    Bye,
    ByeOk,
}

/// How one message goes into the shard.
pub type StepFn = fn(&mut Shard, Instant, Peer, &[u8], &mut Outbox);
/// How one timer tick goes into the shard.
pub type TickFn = fn(&mut Shard, Instant, &mut Outbox);

/// The entry points a caller wants each message and tick to pass through (the
/// bench gives callgrind a function per kind; the allocation test counts around
/// them), chosen by the message's kind and whether it is measured.
#[derive(Clone, Copy)]
pub struct Hooks {
    pub step: fn(Step, bool) -> StepFn,
    pub tick: fn(bool) -> TickFn,
}

impl Hooks {
    /// Straight into the shard.
    pub const PLAIN: Hooks = Hooks {
        step: |_, _| |shard, now, peer, bytes, out| shard.on_datagram(now, peer, bytes, out),
        tick: |_| |shard, now, out| shard.on_tick(now, out),
    };
}

fn udp_peer(addr: &str) -> Peer {
    Peer::udp(addr.parse().unwrap(), 0)
}

/// The proxy's configuration as `loadtest/run` starts it (TLS left out: no
/// message of this call touches it).
fn config() -> Config {
    let mut cfg = Config::for_tests();
    cfg.listen = vec![
        format!("udp:{PROXY}").parse().unwrap(),
        format!("tcp:{PROXY}").parse().unwrap(),
    ];
    cfg.domains = vec![DOMAIN.into()];
    cfg.proxy.relay = vec!["127.0.0.0/8".parse().unwrap()];
    cfg.proxy.record_route = true;
    cfg.proxy.stateless = false;
    cfg
}

/// The shard under test with its simulated clock, and the harness's buffers.
pub struct Bench {
    pub shard: Shard,
    out: Outbox,
    caller: Peer,
    callee: Peer,
    /// The simulated clock: `epoch + clock`.
    epoch: Instant,
    clock: Duration,
    registered_at: Duration,
    calls: u64,
    registers: u64,
    /// Whether the messages being fed are measured (passed to [`Hooks`]).
    pub measuring: bool,
    /// The functions the messages and ticks go through.
    hooks: Hooks,
    /// Transmits the ticks produced (none expected: every call completed).
    pub tick_transmits: u64,
    /// The message being fed.
    msg: String,
    /// `CALL_PATH_TRACE` set: print the first call's messages.
    trace: bool,
}

impl Bench {
    pub fn new(hooks: Hooks) -> Bench {
        let cfg = config();
        let shard = Shard::in_memory(0, &cfg, vec!["127.0.0.1".parse().unwrap()]);
        let mut b = Bench {
            shard,
            out: Outbox::new(),
            caller: udp_peer(CALLER),
            callee: udp_peer(CALLEE),
            // The shard's own clocks start at its creation: the simulated one
            // starts after it.
            epoch: Instant::now(),
            clock: Duration::ZERO,
            registered_at: Duration::ZERO,
            calls: 0,
            registers: 0,
            measuring: true,
            hooks,
            tick_transmits: 0,
            msg: String::with_capacity(2048),
            trace: std::env::var_os("CALL_PATH_TRACE").is_some(),
        };
        b.register();
        b
    }

    fn now(&self) -> Instant {
        self.epoch + self.clock
    }

    /// Feeds `self.msg` from `peer` as message `step` of a call and returns what
    /// the shard sent (each to a UDP address of listener 0) and the time the shard
    /// took.
    fn feed(&mut self, step: Step, peer: Peer) -> (Vec<(SocketAddr, String)>, Duration) {
        let now = self.now();
        let bytes = self.msg.as_bytes();
        let (shard, out) = (&mut self.shard, &mut self.out);
        let f = (self.hooks.step)(step, self.measuring);
        let t = Instant::now();
        f(shard, now, peer, bytes, out);
        let took = t.elapsed();
        let sent = take(&mut self.out);
        if self.trace {
            eprintln!("==== {step:?} from {}:\n{}", peer.addr, self.msg);
            for (to, text) in &sent {
                eprintln!("---- sent to {to}:\n{text}");
            }
        }
        (sent, took)
    }

    /// Registers sip:callee@DOMAIN at [`CALLEE_CONTACT`] (register.xml), checking
    /// the 200.
    fn register(&mut self) {
        let r = self.registers;
        self.registers += 1;
        self.msg.clear();
        self.msg.push_str(&format!(
            "REGISTER sip:{DOMAIN} SIP/2.0\r\n\
Via: SIP/2.0/UDP {CALLEE};branch=z9hG4bK-{PID}-reg{r}-0;rport\r\n\
From: <sip:callee@{DOMAIN}>;tag={PID}SIPpTag00reg{r}\r\n\
To: <sip:callee@{DOMAIN}>\r\n\
Call-ID: reg{r}-{PID}@127.0.0.1\r\n\
CSeq: 1 REGISTER\r\n\
Contact: {CALLEE_CONTACT}\r\n\
Expires: 3600\r\n\
Max-Forwards: 70\r\n\
User-Agent: coresip-loadtest\r\n\
Content-Length: 0\r\n\r\n"
        ));
        let now = self.now();
        self.shard
            .on_datagram(now, self.callee, self.msg.as_bytes(), &mut self.out);
        let sent = take(&mut self.out);
        expect(sent, &[(CALLEE, "SIP/2.0 200 ")]);
        self.registered_at = self.clock;
    }

    /// One whole call; returns the time the shard took for its six messages.
    pub fn call(&mut self) -> Duration {
        let n = self.calls;
        self.calls += 1;
        let caller = self.caller;
        let callee = self.callee;
        let mut took = Duration::ZERO;

        // 1. INVITE: 100 Trying back to the caller, the INVITE on to the callee.
        self.msg.clear();
        invite(&mut self.msg, n);
        let (sent, t) = self.feed(Step::Invite, caller);
        took += t;
        let [_trying, invite] = expect(
            sent,
            &[(CALLER, "SIP/2.0 100 "), (CALLEE, "INVITE sip:callee@")],
        )
        .try_into()
        .unwrap();

        // 2. 180 Ringing and 3. 200 OK from the callee, relayed to the caller.
        let to_tag = format!("{PID}SIPpTag01{n}");
        self.msg.clear();
        response(
            &mut self.msg,
            &invite,
            "180 Ringing",
            Some(&to_tag),
            true,
            None,
        );
        let (sent, t) = self.feed(Step::Ringing, callee);
        took += t;
        expect(sent, &[(CALLER, "SIP/2.0 180 ")]);

        self.msg.clear();
        response(
            &mut self.msg,
            &invite,
            "200 OK",
            Some(&to_tag),
            true,
            Some(SDP),
        );
        let (sent, t) = self.feed(Step::Ok, callee);
        took += t;
        let [ok] = expect(sent, &[(CALLER, "SIP/2.0 200 ")])
            .try_into()
            .unwrap();
        assert!(ok.contains(&to_tag), "200 without the callee's tag:\n{ok}");

        // 4. ACK and 5. BYE from the caller along the route set, to the callee.
        self.msg.clear();
        in_dialog(&mut self.msg, &ok, n, "ACK", 1, 2);
        let (sent, t) = self.feed(Step::Ack, caller);
        took += t;
        expect(sent, &[(CALLEE, "ACK sip:callee@")]);

        self.msg.clear();
        in_dialog(&mut self.msg, &ok, n, "BYE", 2, 3);
        let (sent, t) = self.feed(Step::Bye, caller);
        took += t;
        let [bye] = expect(sent, &[(CALLEE, "BYE sip:callee@")])
            .try_into()
            .unwrap();

        // 6. The callee's 200 to the BYE, relayed to the caller.
        self.msg.clear();
        response(&mut self.msg, &bye, "200 OK", None, false, None);
        let (sent, t) = self.feed(Step::ByeOk, callee);
        took += t;
        expect(sent, &[(CALLER, "SIP/2.0 200 ")]);

        self.trace = false;
        self.pace();
        took
    }

    /// Advances the simulated clock by 1 s every [`CALLS_PER_SECOND`] calls and
    /// ticks; refreshes the callee's registration before it expires.
    fn pace(&mut self) {
        if self.calls % CALLS_PER_SECOND != 0 {
            return;
        }
        self.clock += Duration::from_secs(1);
        let now = self.now();
        let tick = (self.hooks.tick)(self.measuring);
        tick(&mut self.shard, now, &mut self.out);
        self.tick_transmits += take(&mut self.out).len() as u64;
        if self.clock - self.registered_at >= REREGISTER_AFTER {
            self.register();
        }
    }
}

/// The UDP transmits in `out` as (destination, text); clears it.
fn take(out: &mut Outbox) -> Vec<(SocketAddr, String)> {
    let sent = out
        .transmits()
        .map(|(dest, bytes)| match dest {
            Dest::Udp { listener: 0, to } => (to, String::from_utf8(bytes.to_vec()).unwrap()),
            other => panic!("unexpected destination {other:?}"),
        })
        .collect();
    out.clear();
    sent
}

/// Checks that `sent` is exactly one message to each `(address, start)` of `want`
/// (in any order) and returns their texts in `want`'s order.
fn expect(mut sent: Vec<(SocketAddr, String)>, want: &[(&str, &str)]) -> Vec<String> {
    let fits = sent.len() == want.len()
        && want.iter().all(|&(to, start)| {
            let to: SocketAddr = to.parse().unwrap();
            sent.iter()
                .any(|(d, text)| *d == to && text.starts_with(start))
        });
    assert!(fits, "expected {want:?}, the shard sent:\n{sent:#?}");
    want.iter()
        .map(|&(to, start)| {
            let to: SocketAddr = to.parse().unwrap();
            let i = sent
                .iter()
                .position(|(d, text)| *d == to && text.starts_with(start))
                .unwrap();
            sent.remove(i).1
        })
        .collect()
}

/// uac_call.xml's INVITE for call `n`.
fn invite(buf: &mut String, n: u64) {
    buf.push_str(&format!(
        "INVITE sip:callee@{DOMAIN} SIP/2.0\r\n\
Via: SIP/2.0/UDP {CALLER};branch=z9hG4bK-{PID}-{n}-0;rport\r\n\
From: \"caller\" <sip:caller{n}@{DOMAIN}>;tag={PID}SIPpTag00{n}\r\n\
To: <sip:callee@{DOMAIN}>\r\n\
Call-ID: {n}-{PID}@127.0.0.1\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:caller@{CALLER};transport=UDP>\r\n\
Max-Forwards: 70\r\n\
Subject: coresip load test\r\n\
Content-Type: application/sdp\r\n\
Content-Length: {}\r\n\r\n{SDP}",
        SDP.len()
    ));
}

/// uas_call.xml's response to `req` (`[last_Via:]`, `[last_Record-Route:]` when
/// `record_route`, `[last_From:]`, `[last_To:]` with `to_tag`, `[last_Call-ID:]`,
/// `[last_CSeq:]`).
fn response(
    buf: &mut String,
    req: &str,
    status: &str,
    to_tag: Option<&str>,
    record_route: bool,
    body: Option<&str>,
) {
    buf.push_str("SIP/2.0 ");
    buf.push_str(status);
    buf.push_str("\r\n");
    push_last(buf, req, "Via", "v");
    if record_route {
        push_last(buf, req, "Record-Route", "");
    }
    push_last(buf, req, "From", "f");
    push_last(buf, req, "To", "t");
    if let Some(tag) = to_tag {
        // uas_call.xml: `[last_To:];tag=...` on the same line.
        buf.truncate(buf.len() - 2);
        buf.push_str(";tag=");
        buf.push_str(tag);
        buf.push_str("\r\n");
    }
    push_last(buf, req, "Call-ID", "i");
    push_last(buf, req, "CSeq", "");
    buf.push_str(&format!("Contact: {CALLEE_CONTACT}\r\n"));
    match body {
        Some(b) => buf.push_str(&format!(
            "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{b}",
            b.len()
        )),
        None => buf.push_str("Content-Length: 0\r\n\r\n"),
    }
}

/// uac_call.xml's ACK or BYE of call `n` after the 200 `ok`: `[next_url]` (the
/// 200's Contact) as Request-URI, `[routes]` (its Record-Route, reversed, RFC 3261
/// §12.1.2) and `[last_To:]`; a branch of its own (`msg_index`).
fn in_dialog(buf: &mut String, ok: &str, n: u64, method: &str, cseq: u32, msg_index: u32) {
    let contact = values(ok, "Contact", "m")
        .next()
        .expect("200 without Contact");
    let target = contact
        .split_once('<')
        .and_then(|(_, rest)| rest.split_once('>'))
        .map_or(contact, |(uri, _)| uri);
    let mut routes: Vec<&str> = values(ok, "Record-Route", "").collect();
    routes.reverse();
    buf.push_str(&format!(
        "{method} {target} SIP/2.0\r\n\
Via: SIP/2.0/UDP {CALLER};branch=z9hG4bK-{PID}-{n}-{msg_index};rport\r\n"
    ));
    if !routes.is_empty() {
        buf.push_str("Route: ");
        buf.push_str(&routes.join(", "));
        buf.push_str("\r\n");
    }
    buf.push_str(&format!(
        "From: \"caller\" <sip:caller{n}@{DOMAIN}>;tag={PID}SIPpTag00{n}\r\n"
    ));
    push_last(buf, ok, "To", "t");
    buf.push_str(&format!(
        "Call-ID: {n}-{PID}@127.0.0.1\r\n\
CSeq: {cseq} {method}\r\n\
Contact: <sip:caller@{CALLER};transport=UDP>\r\n\
Max-Forwards: 70\r\n\
Content-Length: 0\r\n\r\n"
    ));
}

/// SIPp's `[last_Name:]`: every header `name` (or its compact form) of `msg` as one
/// line, several joined by ", ". Nothing when there is none.
fn push_last(buf: &mut String, msg: &str, name: &str, compact: &str) {
    let mut first = true;
    for v in header_values(msg, name, compact) {
        if first {
            buf.push_str(name);
            buf.push_str(": ");
            first = false;
        } else {
            buf.push_str(", ");
        }
        buf.push_str(v);
    }
    if !first {
        buf.push_str("\r\n");
    }
}

/// The values (one per header line, trimmed) of the headers `name` or `compact` in
/// `msg`'s header section. The proxy folds no lines.
fn header_values<'a>(
    msg: &'a str,
    name: &'a str,
    compact: &'a str,
) -> impl Iterator<Item = &'a str> + 'a {
    let head = msg.split("\r\n\r\n").next().unwrap_or("");
    head.split("\r\n").skip(1).filter_map(move |line| {
        let (n, v) = line.split_once(':')?;
        let n = n.trim();
        (n.eq_ignore_ascii_case(name) || (!compact.is_empty() && n.eq_ignore_ascii_case(compact)))
            .then(|| v.trim())
    })
}

/// The comma-separated values of the headers `name`, split outside `<…>` and quotes
/// (name-addrs only: Contact, Record-Route).
fn values<'a>(msg: &'a str, name: &'a str, compact: &'a str) -> impl Iterator<Item = &'a str> {
    header_values(msg, name, compact).flat_map(|v| {
        let mut parts = Vec::new();
        let (mut depth, mut quoted, mut start) = (0u32, false, 0);
        for (i, c) in v.char_indices() {
            match c {
                '"' => quoted = !quoted,
                '<' if !quoted => depth += 1,
                '>' if !quoted => depth = depth.saturating_sub(1),
                ',' if !quoted && depth == 0 => {
                    parts.push(v[start..i].trim());
                    start = i + 1;
                }
                _ => {}
            }
        }
        parts.push(v[start..].trim());
        parts
    })
}
