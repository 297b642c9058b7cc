//! End to end: the real `coresip` binary as a child process, driven over loopback
//! sockets. Every test starts its own instance on free ports, and every wait is
//! bounded.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;

use common::{command as coresip, data_dir, free_ports, Server, WAIT};

/// Starts coresip with UDP and TCP on a free port and TLS on the next one, with
/// `extra` flags.
fn start(tag: &str, cores: usize, extra: &[&str]) -> Server {
    let port = free_ports(2);
    let data_dir = data_dir(tag);
    let mut args: Vec<String> = vec![
        "--cores".into(),
        cores.to_string(),
        "--listen".into(),
        format!("udp:127.0.0.1:{port}"),
        "--listen".into(),
        format!("tcp:127.0.0.1:{port}"),
        "--listen".into(),
        format!("tls:127.0.0.1:{}", port + 1),
        "--data-dir".into(),
        data_dir.display().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    Server::spawn(port, data_dir, args)
}

fn tls_addr(s: &Server) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], s.port + 1))
}

fn options(target: &str, transport: &str, call_id: &str, cseq: u32, extra: &str) -> Vec<u8> {
    format!(
        "OPTIONS sip:{target} SIP/2.0\r\n\
Via: SIP/2.0/{transport} 127.0.0.1:9;branch=z9hG4bK{call_id}x{cseq};rport\r\n\
Max-Forwards: 70\r\n\
To: <sip:{target}>\r\n\
From: <sip:tester@example.com>;tag=t1\r\n\
Call-ID: {call_id}\r\n\
CSeq: {cseq} OPTIONS\r\n\
{extra}Content-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

fn udp_client() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s
}

fn udp_exchange(sock: &UdpSocket, to: SocketAddr, req: &[u8]) -> String {
    sock.send_to(req, to).unwrap();
    let mut buf = vec![0u8; 65536];
    let (n, _) = sock.recv_from(&mut buf).expect("no UDP response");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// Reads whole responses (by Content-Length, always 0 here) off a stream.
struct StreamReader<S: Read> {
    s: S,
    buf: Vec<u8>,
}

impl<S: Read> StreamReader<S> {
    fn new(s: S) -> Self {
        StreamReader { s, buf: Vec::new() }
    }

    fn fill(&mut self) -> usize {
        let mut chunk = [0u8; 4096];
        let n = self.s.read(&mut chunk).unwrap_or(0);
        self.buf.extend_from_slice(&chunk[..n]);
        n
    }

    /// The next response (header section up to the blank line; bodies are empty).
    fn response(&mut self) -> String {
        loop {
            while self.buf.starts_with(b"\r\n") {
                self.buf.drain(..2);
            }
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let text = String::from_utf8_lossy(&self.buf[..end + 4]).into_owned();
                self.buf.drain(..end + 4);
                return text;
            }
            assert!(self.fill() > 0, "stream closed before a whole response");
        }
    }
}

/// The server closed `tcp`: EOF (or a reset) rather than our read timeout.
fn assert_closed_by_server(tcp: &mut TcpStream) {
    let mut buf = [0u8; 16];
    match tcp.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("expected the server to close the connection, got {other:?}"),
    }
}

fn tcp_client(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// A burst from several sources, sent before any answer is read, is answered in full,
/// each answer to its own source: the UDP loop takes queued datagrams `--udp-batch` at
/// a time (recvmmsg) and sends what a batch caused together (sendmmsg), so sources and
/// answers must not get mixed up across a batch. Also with batching off.
#[test]
fn a_burst_of_datagrams_from_several_sources_is_answered_each_to_its_own() {
    for extra in [
        &[][..],
        &["--udp-batch", "1"][..],
        &["--udp-batch", "3"][..],
    ] {
        let server = start("udp-burst", 1, extra);
        let target = format!("127.0.0.1:{}", server.port);
        let clients: Vec<UdpSocket> = (0..3).map(|_| udp_client()).collect();
        const EACH: u32 = 12;
        for cseq in 1..=EACH {
            for (i, c) in clients.iter().enumerate() {
                c.send_to(
                    &options(&target, "UDP", &format!("burst{i}"), cseq, ""),
                    server.addr(),
                )
                .unwrap();
            }
        }
        for (i, c) in clients.iter().enumerate() {
            let mut seen = Vec::new();
            let mut buf = vec![0u8; 65536];
            for _ in 0..EACH {
                let (n, _) = c.recv_from(&mut buf).expect("an answer missing");
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                assert!(text.starts_with("SIP/2.0 200 OK\r\n"), "{extra:?}: {text}");
                assert!(
                    text.contains(&format!("\r\nCall-ID: burst{i}\r\n")),
                    "{extra:?}: client {i} got {text}"
                );
                let cseq = text
                    .lines()
                    .find_map(|l| l.strip_prefix("CSeq: "))
                    .and_then(|v| v.split(' ').next())
                    .and_then(|n| n.parse::<u32>().ok())
                    .expect("a CSeq");
                seen.push(cseq);
            }
            seen.sort_unstable();
            assert_eq!(seen, (1..=EACH).collect::<Vec<_>>(), "{extra:?}");
        }
    }
}

#[test]
fn options_over_udp_tcp_and_tls_get_200() {
    let server = start("transports", 1, &[]);
    let target = format!("127.0.0.1:{}", server.port);

    let resp = udp_exchange(
        &udp_client(),
        server.addr(),
        &options(&target, "UDP", "u1", 1, ""),
    );
    assert!(resp.starts_with("SIP/2.0 200 OK\r\n"), "{resp}");
    assert!(resp.contains("\r\nAllow: "));

    let mut tcp = tcp_client(server.addr());
    tcp.write_all(&options(&target, "TCP", "t1", 1, ""))
        .unwrap();
    let resp = StreamReader::new(&tcp).response();
    assert!(resp.starts_with("SIP/2.0 200 OK\r\n"), "{resp}");

    // TLS, trusting the certificate the server generated into its data dir.
    let cert_path = server.data_dir.join("tls-selfsigned-cert.pem");
    let mut roots = rustls::RootCertStore::empty();
    use rustls::pki_types::pem::PemObject;
    for c in rustls::pki_types::CertificateDer::pem_file_iter(&cert_path).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp_client(tls_addr(&server)));
    tls.write_all(&options(
        &format!("127.0.0.1:{}", server.port + 1),
        "TLS",
        "s1",
        1,
        "",
    ))
    .unwrap();
    tls.flush().unwrap();
    let resp = StreamReader::new(&mut tls).response();
    assert!(resp.starts_with("SIP/2.0 200 OK\r\n"), "{resp}");
}

#[test]
fn messages_landing_on_the_wrong_core_are_handled_by_their_owner() {
    let server = start("mesh", 2, &[]);
    let target = format!("127.0.0.1:{}", server.port);
    // Many source ports spread the datagrams over both cores' sockets; the branches
    // spread ownership over both shards, so some must cross the mesh.
    for i in 0..64 {
        let sock = udp_client();
        let resp = udp_exchange(
            &sock,
            server.addr(),
            &options(&target, "UDP", &format!("m{i}"), 1, ""),
        );
        assert!(resp.starts_with("SIP/2.0 200 OK\r\n"), "{resp}");
        assert!(resp.contains(&format!("Call-ID: m{i}\r\n")));
    }
    // Over TCP too: responses to forwarded messages come back on the connection.
    let mut tcp = tcp_client(server.addr());
    let mut reader = StreamReader::new(tcp.try_clone().unwrap());
    for i in 0..32 {
        tcp.write_all(&options(&target, "TCP", &format!("mt{i}"), 1, ""))
            .unwrap();
        let resp = reader.response();
        assert!(resp.contains(&format!("Call-ID: mt{i}\r\n")), "{resp}");
    }
    let (log, status) = server.terminate();
    assert!(status.success(), "exit status {status}");
    let forwarded: u64 = log
        .iter()
        .filter(|l| l.contains("core stopped"))
        .filter_map(|l| l.split(" forwarded=").nth(1))
        .filter_map(|v| v.split(' ').next()?.parse::<u64>().ok())
        .sum();
    assert!(
        forwarded > 0,
        "nothing crossed the mesh:\n{}",
        log.join("\n")
    );
}

#[test]
fn large_messages_over_udp() {
    let server = start("large", 1, &["--max-message-size", "8k"]);
    let target = format!("127.0.0.1:{}", server.port);
    let sock = udp_client();
    // A request and a response both larger than --udp-mtu (1300): the response
    // copies the 40 Via lines and still goes back over UDP (§18.2.1 moves only
    // requests to TCP).
    let vias: String = (0..40)
        .map(|i| format!("Via: SIP/2.0/UDP hop{i}.example.com;branch=z9hG4bKhop{i}\r\n"))
        .collect();
    let resp = udp_exchange(
        &sock,
        server.addr(),
        &options(&target, "UDP", "big", 1, &vias),
    );
    assert!(resp.starts_with("SIP/2.0 200 OK\r\n"), "{resp}");
    assert!(resp.len() > 1300);

    // Over --max-message-size: dropped. The next request's answer is the next datagram.
    let pad = format!("X-Pad: {}\r\n", "p".repeat(9000));
    sock.send_to(&options(&target, "UDP", "huge", 1, &pad), server.addr())
        .unwrap();
    let resp = udp_exchange(
        &sock,
        server.addr(),
        &options(&target, "UDP", "after", 1, ""),
    );
    assert!(resp.contains("Call-ID: after\r\n"), "{resp}");
}

#[test]
fn tcp_messages_split_across_writes_and_batched_in_one() {
    let server = start("framing", 1, &[]);
    let target = format!("127.0.0.1:{}", server.port);
    let mut tcp = tcp_client(server.addr());
    let mut reader = StreamReader::new(tcp.try_clone().unwrap());

    // One message, one byte per write.
    for b in options(&target, "TCP", "split", 1, "") {
        tcp.write_all(&[b]).unwrap();
    }
    let resp = reader.response();
    assert!(resp.contains("Call-ID: split\r\n"), "{resp}");

    // Three messages in one write.
    let mut batch = Vec::new();
    for i in 0..3 {
        batch.extend(options(&target, "TCP", &format!("batch{i}"), 1, ""));
    }
    tcp.write_all(&batch).unwrap();
    for i in 0..3 {
        let resp = reader.response();
        assert!(resp.contains(&format!("Call-ID: batch{i}\r\n")), "{resp}");
    }
}

#[test]
fn crlf_keepalive_is_answered() {
    // RFC 5626 §3.5.1
    let server = start("keepalive", 1, &[]);
    let mut tcp = tcp_client(server.addr());
    tcp.write_all(b"\r\n\r\n").unwrap();
    let mut pong = [0u8; 2];
    tcp.read_exact(&mut pong).unwrap();
    assert_eq!(&pong, b"\r\n");
}

#[test]
fn malformed_requests_get_400_over_udp() {
    let server = start("malformed", 1, &[]);
    let target = format!("127.0.0.1:{}", server.port);
    let req = String::from_utf8(options(&target, "UDP", "bad", 1, ""))
        .unwrap()
        .replace("CSeq: 1 OPTIONS", "CSeq: 1 INVITE");
    let resp = udp_exchange(&udp_client(), server.addr(), req.as_bytes());
    assert!(
        resp.starts_with("SIP/2.0 400 CSeq Method Mismatch\r\n"),
        "{resp}"
    );
}

#[test]
fn a_silent_connection_is_closed_after_the_header_timeout() {
    let server = start("silent", 1, &["--tcp-header-timeout", "1s"]);
    let mut tcp = tcp_client(server.addr());
    assert_closed_by_server(&mut tcp);
}

#[test]
fn a_second_instance_on_the_same_port_refuses_to_start() {
    let server = start("first", 1, &[]);
    let out = coresip(&[
        "--cores".into(),
        "1".into(),
        "--listen".into(),
        format!("udp:127.0.0.1:{}", server.port),
        "--data-dir".into(),
        data_dir("second").display().to_string(),
    ])
    .output()
    .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let last = err.lines().last().unwrap_or("");
    assert!(last.contains("already listens on udp:127.0.0.1:"), "{err}");
    // The first one still answers.
    let target = format!("127.0.0.1:{}", server.port);
    let resp = udp_exchange(
        &udp_client(),
        server.addr(),
        &options(&target, "UDP", "still", 1, ""),
    );
    assert!(resp.starts_with("SIP/2.0 200 OK"), "{resp}");
}

#[test]
fn a_bad_flag_exits_2_with_one_line() {
    for args in [
        &["--cores", "many"][..],
        &["--listen", "udp:nowhere"][..],
        &["--bogus"][..],
    ] {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let out = coresip(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(err.contains(&args[0]), "{err}");
    }
}

#[test]
fn connections_over_the_per_address_limit_are_refused() {
    let server = start("perip", 1, &["--tcp-max-per-ip", "2"]);
    let target = format!("127.0.0.1:{}", server.port);
    let mut first = tcp_client(server.addr());
    let mut second = tcp_client(server.addr());
    // Both admitted ones answer (which also proves they were accepted before the third).
    for (i, c) in [&mut first, &mut second].into_iter().enumerate() {
        c.write_all(&options(&target, "TCP", &format!("lim{i}"), 1, ""))
            .unwrap();
        let resp = StreamReader::new(&*c).response();
        assert!(resp.starts_with("SIP/2.0 200 OK"), "{resp}");
    }
    let mut third = tcp_client(server.addr());
    let mut buf = [0u8; 16];
    match third.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("expected the third connection to be closed, got {other:?}"),
    }
    // Closing one frees its slot.
    drop(first);
    let deadline = Instant::now() + WAIT;
    loop {
        let mut c = tcp_client(server.addr());
        c.write_all(&options(&target, "TCP", "again", 1, ""))
            .unwrap();
        let mut r = StreamReader::new(&c);
        if r.fill() > 0 {
            break;
        }
        // The server may not have noticed the close yet.
        assert!(Instant::now() < deadline, "slot never freed");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Many requests in one segment are answered in order (their answers go out in one
/// write), and requests ahead of a framing error in that segment are answered
/// before the connection closes (RFC 4475 §3.1.2.3: a stream that cannot be
/// framed is closed).
#[test]
fn requests_in_one_segment_are_answered_in_order_even_ahead_of_a_framing_error() {
    let server = start("segment", 1, &[]);
    let target = format!("127.0.0.1:{}", server.port);
    let mut tcp = tcp_client(server.addr());
    let mut segment = Vec::new();
    for cseq in 1..=20 {
        segment.extend_from_slice(&options(&target, "TCP", "seg", cseq, ""));
    }
    // No Content-Length on a stream: the message cannot be framed (RFC 3261 §18.3).
    segment.extend_from_slice(
        format!(
            "OPTIONS sip:{target} SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bKx\r\n\r\n"
        )
        .as_bytes(),
    );
    tcp.write_all(&segment).unwrap();
    let mut reader = StreamReader::new(tcp.try_clone().unwrap());
    for cseq in 1..=20 {
        let resp = reader.response();
        assert!(resp.starts_with("SIP/2.0 200 OK\r\n"), "{resp}");
        assert!(
            resp.contains(&format!("\r\nCSeq: {cseq} OPTIONS\r\n")),
            "{resp}"
        );
    }
    assert_closed_by_server(&mut tcp);
}

/// A request that arrives over a stream and goes to a host name is forwarded once the
/// system resolver answers (RFC 3263 §4.2: A/AAAA of the name). `localhost` resolves
/// from /etc/hosts to the loopback, where the next hop listens.
#[test]
fn a_request_received_over_tcp_reaches_a_next_hop_named_by_host_name() {
    let server = start("tcp-resolve", 1, &["--relay", "127.0.0.0/8"]);
    let hop = udp_client();
    let hop_port = hop.local_addr().unwrap().port();
    let mut tcp = tcp_client(server.addr());
    tcp.write_all(&options(
        &format!("hop@localhost:{hop_port}"),
        "TCP",
        "resolve",
        1,
        "",
    ))
    .unwrap();
    let mut buf = vec![0u8; 65536];
    let (n, _) = hop
        .recv_from(&mut buf)
        .expect("the OPTIONS never reached the host-named next hop");
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(
        text.starts_with(&format!("OPTIONS sip:hop@localhost:{hop_port} SIP/2.0\r\n")),
        "{text}"
    );
}

#[test]
fn an_idle_connection_is_closed_after_the_idle_timeout() {
    let server = start("idle", 1, &["--tcp-idle-timeout", "1s"]);
    let target = format!("127.0.0.1:{}", server.port);
    let mut tcp = tcp_client(server.addr());
    tcp.write_all(&options(&target, "TCP", "idle", 1, ""))
        .unwrap();
    let mut reader = StreamReader::new(tcp.try_clone().unwrap());
    assert!(reader.response().starts_with("SIP/2.0 200 OK"));
    assert!(reader.buf.is_empty());
    // Nothing more is sent: the server closes the connection.
    assert_closed_by_server(&mut tcp);
}

#[test]
fn a_malformed_header_line_gets_400_and_the_connection_stays_in_step() {
    // RFC 3261 §21.4.1 over UDP and TCP. On the stream, Content-Length is read
    // past the bad line (§18.3), so the 400 comes back on the connection and the
    // next message, sent in the same write, is answered as usual.
    let server = start("badline", 1, &[]);
    let target = format!("127.0.0.1:{}", server.port);
    let broken = |transport: &str, call_id: &str| {
        String::from_utf8(options(&target, transport, call_id, 1, "Foo bar baz\r\n"))
            .unwrap()
            .replace("Content-Length: 0\r\n\r\n", "Content-Length: 2\r\n\r\nhi")
            .into_bytes()
    };
    let resp = udp_exchange(&udp_client(), server.addr(), &broken("UDP", "u1"));
    assert!(
        resp.starts_with("SIP/2.0 400 Bad Header Line\r\n"),
        "{resp}"
    );
    assert!(resp.contains("Call-ID: u1\r\n"), "{resp}");

    let mut tcp = tcp_client(server.addr());
    let mut reader = StreamReader::new(tcp.try_clone().unwrap());
    let mut batch = broken("TCP", "t1");
    batch.extend(options(&target, "TCP", "t2", 1, ""));
    tcp.write_all(&batch).unwrap();
    let resp = reader.response();
    assert!(
        resp.starts_with("SIP/2.0 400 Bad Header Line\r\n"),
        "{resp}"
    );
    assert!(resp.contains("Call-ID: t1\r\n"), "{resp}");
    let resp = reader.response();
    assert!(resp.starts_with("SIP/2.0 200 OK\r\n"), "{resp}");
    assert!(resp.contains("Call-ID: t2\r\n"), "{resp}");
    // The connection is still open for the next one.
    tcp.write_all(&options(&target, "TCP", "t3", 1, ""))
        .unwrap();
    assert!(reader.response().contains("Call-ID: t3\r\n"));
}
