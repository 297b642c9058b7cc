//! Call flows through the engine on a simulated clock: a UAC on one side, a UAS on
//! the other, every message checked as it crosses the proxy.

use std::time::Duration;

use super::*;
use crate::config::Transport;
use crate::registrar::{Registrar, RegistrarConfig};
use crate::shard::{Dest, Outbox, Peer};
use crate::sip::writer::write_response;

const PROXY: &str = "192.0.2.10:5060";
const UAC: &str = "198.51.100.1:5060";
const UAS: &str = "203.0.113.5:5060";

struct Net {
    engine: Engine,
    now: Instant,
}

impl Net {
    fn new() -> Net {
        Net::with(ProxyConfig {
            relay: vec!["203.0.113.0/24".parse().unwrap()],
            ..ProxyConfig::default()
        })
    }

    fn with(cfg: ProxyConfig) -> Net {
        let now = Instant::now();
        let proxy: SocketAddr = PROXY.parse().unwrap();
        let identity = Identity::new(&[(proxy.ip(), proxy.port())], &[], &["example.test".into()]);
        let listeners = vec![
            Listener::new(Transport::Udp, proxy, &[]),
            Listener::new(Transport::Tcp, proxy, &[]),
        ];
        let services = Services {
            registrar: Registrar::new(RegistrarConfig {
                domains: vec!["example.test".into()],
                ..RegistrarConfig::default()
            })
            .unwrap(),
            store: None,
            auth: None,
        };
        Net {
            engine: Engine::new(0, 7, now, 1_800_000_000, cfg, identity, listeners, services),
            now,
        }
    }

    fn peer(addr: &str) -> Peer {
        Peer {
            transport: Transport::Udp,
            addr: addr.parse().unwrap(),
            listener: 0,
            conn: None,
        }
    }

    /// Feeds a message from `from`; returns what the proxy sent, as (dest, text).
    fn feed(&mut self, from: &str, bytes: &[u8]) -> Vec<(Dest, String)> {
        let msg = Message::parse(bytes).unwrap();
        let mut out = Outbox::new();
        if msg.is_request() {
            self.engine
                .on_request(self.now, Net::peer(from), &msg, &mut out);
        } else {
            self.engine
                .on_response(self.now, Net::peer(from), &msg, &mut out);
        }
        collect(&out)
    }

    fn advance(&mut self, d: Duration) -> Vec<(Dest, String)> {
        let mut sent = Vec::new();
        let end = self.now + d;
        while self.now < end {
            self.now += Duration::from_millis(10);
            let mut out = Outbox::new();
            self.engine.on_tick(self.now, &mut out);
            sent.extend(collect(&out));
        }
        sent
    }
}

fn collect(out: &Outbox) -> Vec<(Dest, String)> {
    out.transmits()
        .map(|(d, b)| (d, String::from_utf8(b.to_vec()).unwrap()))
        .collect()
}

fn to(addr: &str) -> SocketAddr {
    addr.parse().unwrap()
}

fn udp(addr: &str) -> Dest {
    Dest::Udp {
        listener: 0,
        to: to(addr),
    }
}

fn invite(branch: &str) -> Vec<u8> {
    format!(
        "INVITE sip:bob@203.0.113.5 SIP/2.0\r\n\
Via: SIP/2.0/UDP 198.51.100.1:5060;branch={branch};rport\r\n\
Max-Forwards: 70\r\n\
From: <sip:alice@example.test>;tag=a1\r\n\
To: <sip:bob@example.test>\r\n\
Call-ID: call-1@uac\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:alice@198.51.100.1>\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 4\r\n\r\nv=0\n"
    )
    .into_bytes()
}

fn cancel(branch: &str) -> Vec<u8> {
    format!(
        "CANCEL sip:bob@203.0.113.5 SIP/2.0\r\n\
Via: SIP/2.0/UDP 198.51.100.1:5060;branch={branch};rport\r\n\
Max-Forwards: 70\r\n\
From: <sip:alice@example.test>;tag=a1\r\n\
To: <sip:bob@example.test>\r\n\
Call-ID: call-1@uac\r\n\
CSeq: 1 CANCEL\r\n\
Content-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

/// The UAS's response to a request it received (all Vias copied, §8.2.6).
fn answer(req: &str, code: u16, reason: &str) -> Vec<u8> {
    let m = Message::parse(req.as_bytes()).unwrap();
    let mut out = Vec::new();
    write_response(&m, code, reason.as_bytes(), Some(b"uas1"), &[], &mut out).unwrap();
    out
}

fn status(text: &str) -> u16 {
    text[8..11].parse().unwrap()
}

fn only(sent: &[(Dest, String)]) -> &(Dest, String) {
    assert_eq!(sent.len(), 1, "{sent:#?}");
    &sent[0]
}

#[test]
fn invite_gets_100_and_is_forwarded_with_via_rr_and_max_forwards() {
    // RFC 3261 §16.2 (100 Trying), §16.6 steps 3, 4, 8.
    let mut net = Net::new();
    let sent = net.feed(UAC, &invite("z9hG4bKuac1"));
    assert_eq!(sent.len(), 2, "{sent:#?}");
    let (d100, t100) = &sent[0];
    assert_eq!(status(t100), 100);
    assert_eq!(*d100, udp(UAC));
    let (dfwd, fwd) = &sent[1];
    assert_eq!(*dfwd, udp(UAS));
    assert!(
        fwd.starts_with("INVITE sip:bob@203.0.113.5 SIP/2.0\r\n"),
        "{fwd}"
    );
    let m = Message::parse(fwd.as_bytes()).unwrap();
    let vias: Vec<&[u8]> = m.values(HeaderName::Via).collect();
    assert_eq!(vias.len(), 2);
    let ours = Via::parse(vias[0]).unwrap();
    assert_eq!(ours.sent_by.host.to_string(), "192.0.2.10");
    assert_eq!(ours.sent_by.port, Some(5060));
    assert!(ours.has_magic_cookie());
    // RFC 3581 §4: rport filled in, received added.
    assert_eq!(
        vias[1],
        b"SIP/2.0/UDP 198.51.100.1:5060;branch=z9hG4bKuac1;rport=5060;received=198.51.100.1"
    );
    assert_eq!(m.max_forwards(), Ok(Some(69)));
    assert_eq!(
        m.header(HeaderName::RecordRoute),
        Some(&b"<sip:192.0.2.10:5060;lr>"[..])
    );
    assert_eq!(m.body(), b"v=0\n");
}

#[test]
fn basic_call_flow() {
    // RFC 3665 §3.2 through one proxy: 180 and 200 forwarded, ACK for 2xx relayed.
    let mut net = Net::new();
    let sent = net.feed(UAC, &invite("z9hG4bKuac1"));
    let fwd = sent[1].1.clone();
    let s180 = net.feed(UAS, &answer(&fwd, 180, "Ringing"));
    let (d, t) = only(&s180);
    assert_eq!(*d, udp(UAC));
    assert_eq!(status(t), 180);
    // Our Via is gone, the UAC's is on top.
    assert!(t.contains("\r\nVia: SIP/2.0/UDP 198.51.100.1:5060;branch=z9hG4bKuac1;rport=5060"));
    assert!(!t.contains("192.0.2.10"));
    let s200 = net.feed(UAS, &answer(&fwd, 200, "OK"));
    assert_eq!(status(&only(&s200).1), 200);
    // The 2xx ended the INVITE transactions (§17.1.1.2, §17.2.1).
    let ack = "ACK sip:bob@203.0.113.5 SIP/2.0\r\n\
Via: SIP/2.0/UDP 198.51.100.1:5060;branch=z9hG4bKuac2;rport\r\n\
Route: <sip:192.0.2.10:5060;lr>\r\n\
Max-Forwards: 70\r\nFrom: <sip:alice@example.test>;tag=a1\r\n\
To: <sip:bob@example.test>;tag=uas1\r\nCall-ID: call-1@uac\r\nCSeq: 1 ACK\r\n\
Content-Length: 0\r\n\r\n";
    let sa = net.feed(UAC, ack.as_bytes());
    let (d, t) = only(&sa);
    assert_eq!(*d, udp(UAS));
    assert!(t.starts_with("ACK sip:bob@203.0.113.5 SIP/2.0\r\n"));
    // Our own Route value is consumed (§16.4).
    assert!(!t.contains("Route:"), "{t}");
    assert_eq!(net.engine.stats().stateless_relays, 1);
}

#[test]
fn cancel_before_answer() {
    // RFC 3261 §16.10, RFC 3665 §3.8: 200 to the CANCEL, CANCEL downstream,
    // 487 from the UAS forwarded, ACK for the 487 generated by the proxy.
    let mut net = Net::new();
    let sent = net.feed(UAC, &invite("z9hG4bKuac1"));
    let fwd = sent[1].1.clone();
    net.feed(UAS, &answer(&fwd, 180, "Ringing"));
    let sc = net.feed(UAC, &cancel("z9hG4bKuac1"));
    assert_eq!(sc.len(), 2, "{sc:#?}");
    assert_eq!(sc[0].0, udp(UAC));
    assert_eq!(status(&sc[0].1), 200);
    assert!(sc[0].1.contains("CSeq: 1 CANCEL"));
    assert_eq!(sc[1].0, udp(UAS));
    let down_cancel = &sc[1].1;
    assert!(down_cancel.starts_with("CANCEL sip:bob@203.0.113.5 SIP/2.0\r\n"));
    // Same branch as the INVITE we sent (§9.1).
    let inv_branch = Message::parse(fwd.as_bytes())
        .unwrap()
        .via()
        .unwrap()
        .branch()
        .unwrap()
        .to_vec();
    let can_branch = Message::parse(down_cancel.as_bytes())
        .unwrap()
        .via()
        .unwrap()
        .branch()
        .unwrap()
        .to_vec();
    assert_eq!(inv_branch, can_branch);
    // The UAS answers the CANCEL (absorbed) and the INVITE with 487.
    assert!(net.feed(UAS, &answer(down_cancel, 200, "OK")).is_empty());
    let s487 = net.feed(UAS, &answer(&fwd, 487, "Request Terminated"));
    assert_eq!(s487.len(), 2, "{s487:#?}");
    let ack = s487.iter().find(|(_, t)| t.starts_with("ACK ")).unwrap();
    assert_eq!(ack.0, udp(UAS));
    let up = s487.iter().find(|(_, t)| t.starts_with("SIP/2.0")).unwrap();
    assert_eq!(up.0, udp(UAC));
    assert_eq!(status(&up.1), 487);
}

#[test]
fn cancel_waits_for_a_provisional() {
    // RFC 3261 §9.1: no CANCEL before the branch has had a provisional response.
    let mut net = Net::new();
    let sent = net.feed(UAC, &invite("z9hG4bKuac1"));
    let fwd = sent[1].1.clone();
    let sc = net.feed(UAC, &cancel("z9hG4bKuac1"));
    assert_eq!(sc.len(), 1, "{sc:#?}");
    assert_eq!(status(&sc[0].1), 200);
    let s = net.feed(UAS, &answer(&fwd, 180, "Ringing"));
    assert!(
        s.iter()
            .any(|(d, t)| *d == udp(UAS) && t.starts_with("CANCEL ")),
        "{s:#?}"
    );
}

#[test]
fn busy_here_is_forwarded_and_acked() {
    // A 486: ACK to the UAS by the client transaction, 486 to the UAC, whose ACK
    // the server transaction absorbs.
    let mut net = Net::new();
    let sent = net.feed(UAC, &invite("z9hG4bKuac1"));
    let fwd = sent[1].1.clone();
    let s = net.feed(UAS, &answer(&fwd, 486, "Busy Here"));
    assert!(s
        .iter()
        .any(|(d, t)| *d == udp(UAS) && t.starts_with("ACK ")));
    let up = s.iter().find(|(_, t)| t.starts_with("SIP/2.0")).unwrap();
    assert_eq!(status(&up.1), 486);
    let ack = "ACK sip:bob@203.0.113.5 SIP/2.0\r\n\
Via: SIP/2.0/UDP 198.51.100.1:5060;branch=z9hG4bKuac1;rport\r\n\
Max-Forwards: 70\r\nFrom: <sip:alice@example.test>;tag=a1\r\n\
To: <sip:bob@example.test>;tag=uas1\r\nCall-ID: call-1@uac\r\nCSeq: 1 ACK\r\n\
Content-Length: 0\r\n\r\n";
    assert!(net.feed(UAC, ack.as_bytes()).is_empty());
    assert_eq!(net.engine.stats().stateless_relays, 0);
}

#[test]
fn retransmitted_invite_is_absorbed() {
    // RFC 3261 §17.2.1: the retransmission gets the last response again.
    let mut net = Net::new();
    net.feed(UAC, &invite("z9hG4bKuac1"));
    let again = net.feed(UAC, &invite("z9hG4bKuac1"));
    let (d, t) = only(&again);
    assert_eq!(*d, udp(UAC));
    assert_eq!(status(t), 100);
    assert_eq!(net.engine.stats().retransmissions_absorbed, 1);
}

#[test]
fn no_answer_times_out_with_408() {
    // RFC 3261 §16.8: Timer B (nothing at all) makes the branch a 408.
    let mut net = Net::new();
    net.feed(UAC, &invite("z9hG4bKuac1"));
    let sent = net.advance(Duration::from_secs(33));
    let retrans = sent
        .iter()
        .filter(|(d, t)| *d == udp(UAS) && t.starts_with("INVITE"))
        .count();
    assert!(retrans >= 5, "Timer A retransmissions: {retrans}");
    let finals: Vec<_> = sent
        .iter()
        .filter(|(d, t)| *d == udp(UAC) && status(t) >= 200)
        .collect();
    // The 408 and its Timer G retransmissions (the UAC never ACKs here).
    assert!(!finals.is_empty());
    assert!(finals.iter().all(|(_, t)| status(t) == 408), "{finals:#?}");
}

#[test]
fn ringing_without_answer_is_cancelled_by_timer_c() {
    // RFC 3261 §16.8: Timer C fires on a branch that has rung: CANCEL it, answer 408.
    let mut net = Net::with(ProxyConfig {
        relay: vec!["203.0.113.0/24".parse().unwrap()],
        timers: Timers {
            timer_c: Duration::from_secs(180),
            ..Timers::default()
        },
        ..ProxyConfig::default()
    });
    let sent = net.feed(UAC, &invite("z9hG4bKuac1"));
    let fwd = sent[1].1.clone();
    net.feed(UAS, &answer(&fwd, 180, "Ringing"));
    let before = net.advance(Duration::from_secs(179));
    assert!(before.iter().all(|(_, t)| !t.starts_with("CANCEL")));
    let after = net.advance(Duration::from_secs(2));
    assert!(
        after
            .iter()
            .any(|(d, t)| *d == udp(UAS) && t.starts_with("CANCEL ")),
        "{after:#?}"
    );
    let up = after.iter().find(|(d, _)| *d == udp(UAC)).unwrap();
    assert_eq!(status(&up.1), 408);
}

#[test]
fn relay_is_refused_without_policy() {
    // coresip is never an open relay.
    let mut net = Net::with(ProxyConfig::default());
    let sent = net.feed(UAC, &invite("z9hG4bKuac1"));
    let last = sent.last().unwrap();
    assert_eq!(status(&last.1), 403);
}

#[test]
fn response_without_transaction_is_forwarded_statelessly() {
    // §16.7: a 2xx retransmission after the INVITE transaction ended.
    let mut net = Net::new();
    let sent = net.feed(UAC, &invite("z9hG4bKuac1"));
    let fwd = sent[1].1.clone();
    net.feed(UAS, &answer(&fwd, 200, "OK"));
    let again = net.feed(UAS, &answer(&fwd, 200, "OK"));
    let (d, t) = only(&again);
    assert_eq!(*d, udp(UAC));
    assert_eq!(status(t), 200);
}

fn register(contact: &str, expires: u32) -> Vec<u8> {
    format!(
        "REGISTER sip:example.test SIP/2.0\r\n\
Via: SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bKreg{expires};rport\r\n\
Max-Forwards: 70\r\n\
From: <sip:bob@example.test>;tag=r1\r\n\
To: <sip:bob@example.test>\r\n\
Call-ID: reg-1@uas\r\n\
CSeq: {expires} REGISTER\r\n\
Contact: <{contact}>\r\n\
Expires: {expires}\r\n\
Content-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

fn invite_user(user: &str) -> Vec<u8> {
    String::from_utf8(invite("z9hG4bKuac9"))
        .unwrap()
        .replace(
            "INVITE sip:bob@203.0.113.5",
            &format!("INVITE sip:{user}@example.test"),
        )
        .into_bytes()
}

#[test]
fn registered_user_is_called_where_it_registered_from() {
    // RFC 3261 §10.3 then §16.5: the binding's contact becomes the Request-URI and
    // the request goes to the REGISTER's source address (NAT).
    let mut net = Net::with(ProxyConfig::default());
    let r = net.feed("203.0.113.5:40000", &register("sip:bob@10.0.0.7:5062", 600));
    let (d, t) = only(&r);
    assert_eq!(*d, udp("203.0.113.5:40000"));
    assert_eq!(status(t), 200, "{t}");
    assert!(
        t.contains("Contact: <sip:bob@10.0.0.7:5062>;expires=600"),
        "{t}"
    );
    let sent = net.feed(UAC, &invite_user("bob"));
    let fwd = sent.iter().find(|(_, t)| t.starts_with("INVITE")).unwrap();
    assert_eq!(fwd.0, udp("203.0.113.5:40000"));
    assert!(
        fwd.1
            .starts_with("INVITE sip:bob@10.0.0.7:5062 SIP/2.0\r\n"),
        "{}",
        fwd.1
    );
}

#[test]
fn unknown_user_is_404_and_expired_binding_is_gone() {
    let mut net = Net::with(ProxyConfig::default());
    let sent = net.feed(UAC, &invite_user("carol"));
    assert_eq!(status(&sent.last().unwrap().1), 404);
    net.feed("203.0.113.5:40000", &register("sip:bob@10.0.0.7", 60));
    net.advance(Duration::from_secs(61));
    let sent = net.feed(UAC, &invite_user("bob"));
    assert_eq!(status(&sent.last().unwrap().1), 404);
    assert_eq!(net.engine.stats().bindings_expired, 1);
}

#[test]
fn two_contacts_are_forked_in_parallel() {
    // §16.6: one branch per target; the first 2xx wins and the other is cancelled.
    let mut net = Net::with(ProxyConfig::default());
    let mut two = String::from_utf8(register("sip:bob@10.0.0.7", 600)).unwrap();
    two = two.replace(
        "Contact: <sip:bob@10.0.0.7>",
        "Contact: <sip:bob@10.0.0.7>, <sip:bob@10.0.0.8>",
    );
    let r = net.feed("203.0.113.5:40000", two.as_bytes());
    assert_eq!(status(&only(&r).1), 200);
    let sent = net.feed(UAC, &invite_user("bob"));
    let branches: Vec<&(Dest, String)> = sent
        .iter()
        .filter(|(_, t)| t.starts_with("INVITE"))
        .collect();
    assert_eq!(branches.len(), 2, "{sent:#?}");
    let a = branches[0].1.clone();
    let b = branches[1].1.clone();
    net.feed("203.0.113.5:40000", &answer(&b, 180, "Ringing"));
    let s = net.feed("203.0.113.5:40000", &answer(&a, 200, "OK"));
    assert!(s.iter().any(|(d, t)| *d == udp(UAC) && status(t) == 200));
    assert!(s.iter().any(|(_, t)| t.starts_with("CANCEL ")), "{s:#?}");
}
