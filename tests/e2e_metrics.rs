//! End to end: the real `coresip` binary with `--metrics` on loopback. SIP traffic goes
//! in over UDP and TCP; `/metrics`, `/health` and `coresip stats` must show it. Every wait is
//! bounded.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::Stdio;
use std::time::{Duration, Instant};

use coresip::exposition::{self, Exposition};

mod common;

use common::{command as coresip, data_dir, free_ports, Server, WAIT};

/// Starts coresip with UDP and TCP SIP on a free port and `--metrics` on the next one.
fn start(tag: &str, cores: usize, extra: &[&str]) -> Server {
    let sip = free_ports(2);
    let data_dir = data_dir(&format!("metrics-{tag}"));
    let mut args: Vec<String> = vec![
        "--cores".into(),
        cores.to_string(),
        "--listen".into(),
        format!("udp:127.0.0.1:{sip}"),
        "--listen".into(),
        format!("tcp:127.0.0.1:{sip}"),
        "--metrics".into(),
        format!("127.0.0.1:{}", sip + 1),
        "--data-dir".into(),
        data_dir.display().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    Server::spawn(sip, data_dir, args)
}

fn metrics_addr(s: &Server) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], s.port + 1))
}

/// `GET path` over HTTP/1.0: (status code, body).
fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect_timeout(&addr, WAIT).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: test\r\n\r\n").unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").expect("an HTTP response");
    let code = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("a status code");
    (code, body.to_owned())
}

/// Polls `/metrics` until `done` holds for the parsed exposition (snapshots reach the
/// admin thread once a second).
fn metrics_until(addr: SocketAddr, done: impl Fn(&Exposition) -> bool) -> Exposition {
    let deadline = Instant::now() + WAIT;
    loop {
        let (code, body) = get(addr, "/metrics");
        assert_eq!(code, 200);
        let exp = exposition::parse(&body).unwrap_or_else(|e| panic!("{e}\n{body}"));
        if done(&exp) {
            return exp;
        }
        assert!(
            Instant::now() < deadline,
            "metrics never got there:\n{body}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn options(target: SocketAddr, call_id: &str) -> Vec<u8> {
    format!(
        "OPTIONS sip:{target} SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK{call_id};rport\r\n\
Max-Forwards: 70\r\n\
To: <sip:{target}>\r\n\
From: <sip:tester@example.com>;tag=t1\r\n\
Call-ID: {call_id}\r\n\
CSeq: 1 OPTIONS\r\n\
Content-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

fn answered_2xx(exp: &Exposition) -> f64 {
    exp.value(
        "coresip_responses_total",
        &[("direction", "out"), ("class", "2xx")],
    )
    .unwrap_or(0.0)
}

/// A datagram over --max-message-size is dropped and counted under "limits".
#[test]
fn an_oversized_datagram_is_counted_as_dropped_for_limits() {
    let server = start("oversized", 1, &["--max-message-size", "1k"]);
    let mut big = options(server.addr(), "big");
    big.resize(2000, b'\n');
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.send_to(&big, server.addr()).unwrap();
    metrics_until(metrics_addr(&server), |e| {
        e.value("coresip_dropped_total", &[("reason", "limits")]) == Some(1.0)
    });
}

#[test]
fn metrics_health_and_stats_show_the_traffic() {
    let mut server = start("traffic", 2, &["--stats-interval", "1s"]);

    // Healthy once both cores have reported.
    let deadline = Instant::now() + WAIT;
    loop {
        let (code, body) = get(metrics_addr(&server), "/health");
        if code == 200 {
            assert_eq!(body, "2/2 shards reporting\n");
            break;
        }
        assert_eq!(code, 503, "{body}");
        assert!(Instant::now() < deadline, "never healthy: {body}");
        std::thread::sleep(Duration::from_millis(100));
    }

    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(WAIT)).unwrap();
    let mut buf = vec![0u8; 65536];
    for i in 0..5 {
        sock.send_to(&options(server.addr(), &format!("m{i}")), server.addr())
            .unwrap();
        let (n, _) = sock.recv_from(&mut buf).expect("no answer");
        assert!(buf[..n].starts_with(b"SIP/2.0 200 OK\r\n"));
    }

    let exp = metrics_until(metrics_addr(&server), |e| answered_2xx(e) >= 5.0);
    assert_eq!(answered_2xx(&exp), 5.0);
    assert_eq!(exp.value("coresip_shards", &[]), Some(2.0));
    assert_eq!(exp.value("coresip_shards_reporting", &[]), Some(2.0));
    // Each OPTIONS was handled once: on its arrival core or after one mesh hop.
    let local = exp.value("coresip_messages_local_total", &[]).unwrap();
    let hops_in = exp
        .value("coresip_mesh_hops_total", &[("direction", "in")])
        .unwrap();
    assert_eq!(local + hops_in, 5.0);
    assert!(exp
        .value("coresip_forward_latency_seconds_count", &[])
        .is_some());

    // Other paths are not found.
    assert_eq!(get(metrics_addr(&server), "/").0, 404);

    // The operator's view.
    let out = coresip(&[
        "stats".into(),
        "--metrics".into(),
        metrics_addr(&server).to_string(),
    ])
    .output()
    .unwrap();
    assert!(out.status.success(), "{out:?}");
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(table.contains("2/2 shards reporting"), "{table}");
    let row: Vec<&str> = table
        .lines()
        .find(|l| l.trim_start().starts_with("2xx"))
        .unwrap_or_else(|| panic!("no 2xx row:\n{table}"))
        .split_whitespace()
        .collect();
    assert_eq!(row, ["2xx", "0", "5"], "{table}");

    // The summary line, once a second here.
    let line = server.wait_for_line(|l| l.contains(" stats ") || l.ends_with(" stats"));
    assert!(line.contains("p99_us="), "{line}");
    assert!(line.contains("shards=2/2"), "{line}");
}

/// Proxy-added latency is recorded for every answered message: over TCP as over
/// UDP, and after a mesh hop (two cores: some OPTIONS are owned by the other core).
#[test]
fn latency_is_timed_on_every_transport_and_after_a_hop() {
    let server = start("latency", 2, &[]);
    let target = server.addr();

    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(WAIT)).unwrap();
    let mut buf = vec![0u8; 65536];
    for i in 0..6 {
        sock.send_to(&options(target, &format!("u{i}")), target)
            .unwrap();
        let (n, _) = sock.recv_from(&mut buf).expect("no answer over UDP");
        assert!(buf[..n].starts_with(b"SIP/2.0 200 OK\r\n"));
    }
    let mut tcp = TcpStream::connect_timeout(&target, WAIT).unwrap();
    tcp.set_read_timeout(Some(WAIT)).unwrap();
    for i in 0..3 {
        let req = String::from_utf8(options(target, &format!("t{i}")))
            .unwrap()
            .replace("SIP/2.0/UDP 127.0.0.1:9", "SIP/2.0/TCP 127.0.0.1:9");
        tcp.write_all(req.as_bytes()).unwrap();
        let n = tcp.read(&mut buf).expect("no answer over TCP");
        assert!(
            buf[..n].starts_with(b"SIP/2.0 200 OK\r\n"),
            "{:?}",
            &buf[..n]
        );
    }

    let count = |e: &Exposition| {
        e.value("coresip_forward_latency_seconds_count", &[])
            .unwrap_or(0.0)
    };
    let exp = metrics_until(metrics_addr(&server), |e| count(e) >= 9.0);
    assert_eq!(count(&exp), 9.0);
    let hops_in = exp
        .value("coresip_mesh_hops_total", &[("direction", "in")])
        .unwrap_or(0.0);
    assert!(
        hops_in > 0.0,
        "no OPTIONS crossed cores; the hop path went untested"
    );
}

/// SIP messages handled so far: on their arrival core or after a mesh hop.
fn handled(e: &Exposition) -> f64 {
    e.value("coresip_messages_local_total", &[]).unwrap_or(0.0) + hops(e)
}

/// Messages that crossed to another core so far.
fn hops(e: &Exposition) -> f64 {
    e.value("coresip_mesh_hops_total", &[("direction", "in")])
        .unwrap_or(0.0)
}

/// On two cores, nothing inside a dialog crosses cores: a request with a To tag is
/// handled on the core it arrives on, and the kernel steers every response to the
/// core named in our branch (`runtime::steering`). Before, each request and each
/// response hopped whenever its branch hashed to the other core.
#[test]
fn inside_a_dialog_nothing_crosses_cores() {
    use common::ua::{answered_call, hang_up, Ua};
    let server = start("steering", 2, &["--domain", "example.com"]);

    let mut bob = Ua::udp("bob", server.addr());
    assert_eq!(bob.register(3600).status(), Some(200));
    let mut alice = Ua::udp("alice", server.addr());
    let (mut call, mut callee) = answered_call(&mut alice, &mut bob, true);
    // REGISTER, INVITE, 180, 200, ACK.
    let before = metrics_until(metrics_addr(&server), |e| handled(e) >= 5.0);
    let base = handled(&before);

    const ROUNDS: usize = 16;
    for _ in 0..ROUNDS {
        alice.in_dialog(&mut call, "INFO");
        let info = bob.expect_request("INFO");
        bob.respond(&info, 200, None);
        alice.expect_status(200);
        bob.in_dialog(&mut callee, "INFO");
        let info = alice.expect_request("INFO");
        alice.respond(&info, 200, None);
        bob.expect_status(200);
    }
    hang_up(&mut alice, &mut call, &mut bob);

    let sent = (ROUNDS * 4 + 2) as f64;
    let after = metrics_until(metrics_addr(&server), |e| handled(e) >= base + sent);
    assert_eq!(
        hops(&after),
        hops(&before),
        "in-dialog requests or their responses crossed cores"
    );
}

/// On two cores, a call to a registered user is handled on the core its INVITE
/// arrives on, whichever core took the REGISTER: the other core holds a copy of
/// the binding a moment after (`proxy::engine::replica`). Before, every INVITE
/// arriving on the other core hopped to the AOR's.
#[test]
fn calls_to_a_registered_user_stay_on_their_arrival_core() {
    use common::ua::{answered_call, hang_up, Ua};
    let server = start("replica", 2, &["--domain", "example.com"]);
    let mut bob = Ua::udp("bob", server.addr());
    assert_eq!(bob.register(3600).status(), Some(200));
    // The other core's replica holds a copy of bob's one binding.
    let before = metrics_until(metrics_addr(&server), |e| {
        handled(e) >= 1.0 && e.value("coresip_bindings_replicated", &[]) == Some(1.0)
    });
    assert_eq!(before.value("coresip_bindings_live", &[]), Some(1.0));

    // Callers on several sockets: the kernel spreads them over both cores.
    const CALLERS: usize = 8;
    for i in 0..CALLERS {
        let mut alice = Ua::udp(&format!("alice{i}"), server.addr());
        let (mut call, _) = answered_call(&mut alice, &mut bob, false);
        hang_up(&mut alice, &mut call, &mut bob);
    }
    // INVITE, 200, ACK, BYE, 200 per call.
    let after = metrics_until(metrics_addr(&server), |e| {
        handled(e) >= handled(&before) + (CALLERS * 5) as f64
    });
    assert_eq!(hops(&after), hops(&before), "INVITEs crossed cores");
}

/// On two cores, a REGISTER is answered by the core it arrives on, whichever
/// AOR it is for, and every binding is found from either core: phones on many
/// sockets register without a cross-core hop, and each is then called from
/// sockets the kernel spreads over both cores. Before, half the REGISTERs hopped
/// to their AOR's core.
#[test]
fn registers_stay_on_their_arrival_core_and_every_core_finds_the_binding() {
    use common::ua::{answered_call, hang_up, Ua};
    let server = start("register-here", 2, &["--domain", "example.com"]);
    const PHONES: usize = 12;
    let mut phones: Vec<Ua> = (0..PHONES)
        .map(|i| Ua::udp(&format!("phone{i}"), server.addr()))
        .collect();
    for p in &mut phones {
        assert_eq!(p.register(3600).status(), Some(200));
    }
    let before = metrics_until(metrics_addr(&server), |e| {
        handled(e) >= PHONES as f64
            && e.value("coresip_bindings_live", &[]) == Some(PHONES as f64)
            && e.value("coresip_bindings_replicated", &[]) == Some(PHONES as f64)
    });
    assert_eq!(hops(&before), 0.0, "REGISTERs crossed cores");
    for (i, phone) in phones.iter_mut().enumerate() {
        let mut caller = Ua::udp(&format!("caller{i}"), server.addr());
        let (mut call, _) = answered_call(&mut caller, phone, false);
        hang_up(&mut caller, &mut call, phone);
    }
}

#[test]
fn a_taken_metrics_port_stops_startup() {
    let sip = free_ports(1);
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let data_dir =
        std::env::temp_dir().join(format!("coresip-e2e-metrics-{}-taken", std::process::id()));
    let mut child = coresip(&[
        "--cores".into(),
        "1".into(),
        "--listen".into(),
        format!("udp:127.0.0.1:{sip}"),
        "--metrics".into(),
        addr.to_string(),
        "--data-dir".into(),
        data_dir.display().to_string(),
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("coresip kept running with its metrics port taken");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let _ = std::fs::remove_dir_all(&data_dir);
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("cannot serve metrics on {addr}")),
        "{err}"
    );
}

#[test]
fn stats_against_nothing_fails_with_one_line() {
    // A port that was free a moment ago and has no listener now.
    let addr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let out = coresip(&["stats".into(), "--metrics".into(), addr.to_string()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.starts_with("error: cannot reach"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}
