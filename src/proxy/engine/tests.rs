//! Call flows through the engine on a simulated clock: a UAC on one side, a UAS on
//! the other, every message checked as it crosses the proxy.

use std::time::Duration;

use super::*;
use crate::io::Dest;
use crate::io::Transport;
use crate::mesh::Outbox;
use crate::proxy::testnet::{collect, engine, peer, udp, UAC, UAS};
use crate::sip::writer::write_response;

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
        Net {
            engine: engine(now, cfg),
            now,
        }
    }

    /// Feeds a message from `from`; returns what the proxy sent, as (dest, text).
    fn feed(&mut self, from: &str, bytes: &[u8]) -> Vec<(Dest, String)> {
        let msg = Message::parse(bytes).unwrap();
        let mut out = Outbox::new();
        if msg.is_request() {
            self.engine.on_request(self.now, peer(from), &msg, &mut out);
        } else {
            self.engine
                .on_response(self.now, peer(from), &msg, &mut out);
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

fn to(addr: &str) -> SocketAddr {
    addr.parse().unwrap()
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

/// An idle shard sleeps until something is due: a binding's expiry is a deadline
/// like a transaction timer (the runtime used to poll for expiries every 250 ms).
#[test]
fn a_binding_expiry_is_the_next_deadline_of_an_idle_engine() {
    let mut net = Net::new();
    let ok = net.feed(UAS, &register("sip:bob@203.0.113.5:5060", 120));
    assert_eq!(status(&only(&ok).1), 200);
    // The REGISTER's transaction ends (Timer J, 64·T1); then only the binding is left.
    net.advance(Duration::from_secs(40));
    let due = net.engine.next_deadline().expect("the binding's expiry");
    let left = due.saturating_duration_since(net.now);
    assert!(
        (Duration::from_secs(75)..=Duration::from_secs(81)).contains(&left),
        "{left:?}"
    );
    // At that deadline the tick removes the binding, and nothing is due any more.
    net.advance(left + Duration::from_millis(10));
    assert!(net.engine.registrar().location().is_empty());
    assert_eq!(net.engine.next_deadline(), None);
}

#[test]
fn registered_user_is_called_where_it_registered_from() {
    // RFC 3261 §10.3 then §16.5: the binding's contact becomes the Request-URI and,
    // the REGISTER having come through a NAT (its Via names another address than
    // its source), the request goes to the REGISTER's source address.
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

/// The request copy kept by the server transaction of `bytes`.
fn kept_request(net: &Net, bytes: &[u8]) -> Vec<u8> {
    let msg = Message::parse(bytes).unwrap();
    let via = msg.via().unwrap();
    let key = server_key(&msg, &via, msg.method().unwrap()).unwrap();
    let id = net.engine.table.find_server(&key).unwrap();
    match &net.engine.table.get(id).unwrap().data {
        Ctx::Server(s) => s.request.clone(),
        Ctx::Client(_) => panic!("not a server transaction"),
    }
}

#[test]
fn register_answered_here_keeps_no_request_copy() {
    // The registrar answers at once (RFC 3261 §10.3), so the server transaction
    // needs only its response for retransmissions (§17.2.2), not the request.
    let mut net = Net::with(ProxyConfig::default());
    let reg = register("sip:bob@10.0.0.7:5062", 600);
    let first = net.feed("203.0.113.5:40000", &reg);
    assert_eq!(status(&only(&first).1), 200);
    assert!(kept_request(&net, &reg).is_empty());
    // A retransmission gets the same 200 from the transaction.
    let again = net.feed("203.0.113.5:40000", &reg);
    assert_eq!(only(&again).1, only(&first).1);
    // A proxied request keeps its copy (to answer it later: 408, 5xx).
    let inv = invite("z9hG4bKuac7");
    net.feed(UAC, &inv);
    assert_eq!(kept_request(&net, &inv), inv);
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

/// Registers bob with `contact` from 203.0.113.5:40000 (its Via naming that
/// source), then calls him: the INVITE forwarded and where it went.
fn call_registered_from_its_source(contact: &str) -> (Dest, String) {
    let mut net = Net::with(ProxyConfig::default());
    let reg = String::from_utf8(register(contact, 600))
        .unwrap()
        .replace("203.0.113.5:5060;branch", "203.0.113.5:40000;branch");
    let r = net.feed("203.0.113.5:40000", reg.as_bytes());
    assert_eq!(status(&only(&r).1), 200);
    let sent = net.feed(UAC, &invite_user("bob"));
    sent.into_iter()
        .find(|(_, t)| t.starts_with("INVITE"))
        .unwrap()
}

#[test]
fn registered_user_without_nat_is_called_at_its_contact() {
    // The Via matched the packet's source: no NAT, so the Contact URI is used.
    let (to, _) = call_registered_from_its_source("sip:bob@203.0.113.5:5070");
    assert_eq!(to, udp("203.0.113.5:5070"));
}

#[test]
fn host_name_next_hop_waits_for_the_resolver() {
    // RFC 3263 §4.2 (A/AAAA): the request is parked, the name asked for once, and
    // forwarded when the answer comes back.
    let mut net = Net::new();
    let req = String::from_utf8(invite("z9hG4bKuac1")).unwrap().replace(
        "INVITE sip:bob@203.0.113.5",
        "INVITE sip:bob@uas.example.net",
    );
    let msg = Message::parse(req.as_bytes()).unwrap();
    let mut out = Outbox::new();
    net.engine.on_request(net.now, peer(UAC), &msg, &mut out);
    let asked: Vec<String> = out.drain_resolve().collect();
    assert_eq!(asked, vec!["uas.example.net".to_string()]);
    // Only the 100 Trying went out.
    assert_eq!(collect(&out).len(), 1);
    let mut out = Outbox::new();
    net.engine
        .on_resolved(net.now, "uas.example.net", &[to(UAS).ip()], &mut out);
    let sent = collect(&out);
    let (d, t) = only(&sent);
    assert_eq!(*d, udp(UAS));
    assert!(t.starts_with("INVITE sip:bob@uas.example.net SIP/2.0"));
    // A name that does not resolve: 503 for the next request (cached failure).
    let mut out = Outbox::new();
    net.engine
        .on_resolved(net.now, "gone.example.net", &[], &mut out);
    let req = req
        .replace("uas.example.net", "gone.example.net")
        .replace("z9hG4bKuac1", "z9hG4bKuac2");
    let sent = net.feed(UAC, req.as_bytes());
    assert_eq!(status(&sent.last().unwrap().1), 503);
}

#[test]
fn registered_user_with_private_contact_is_called_where_it_registered_from() {
    // The Via matches the packet's source, but the Contact names a private
    // address while the source is public: NAT all the same (nat_uac_test's
    // Contact test), so the request goes to the REGISTER's source.
    let (to, invite) = call_registered_from_its_source("sip:bob@10.0.0.7:5062");
    assert_eq!(to, udp("203.0.113.5:40000"));
    assert!(invite.starts_with("INVITE sip:bob@10.0.0.7:5062 SIP/2.0\r\n"));
}

#[test]
fn serial_forking_tries_the_next_contact_after_a_failure() {
    // RFC 3261 §16.6 with --fork serial: highest q first; a 486 hands over to the
    // next contact, whose 200 goes upstream.
    let mut net = Net::with(ProxyConfig {
        fork: ForkMode::Serial,
        ..ProxyConfig::default()
    });
    let reg = String::from_utf8(register("sip:bob@10.0.0.7", 600))
        .unwrap()
        .replace(
            "Contact: <sip:bob@10.0.0.7>",
            "Contact: <sip:bob@10.0.0.8>;q=0.5, <sip:bob@10.0.0.7>;q=0.9",
        );
    let r = net.feed("203.0.113.5:40000", reg.as_bytes());
    assert_eq!(status(&only(&r).1), 200);
    let sent = net.feed(UAC, &invite_user("bob"));
    let first: Vec<_> = sent
        .iter()
        .filter(|(_, t)| t.starts_with("INVITE"))
        .collect();
    assert_eq!(first.len(), 1, "{sent:#?}");
    assert!(
        first[0].1.starts_with("INVITE sip:bob@10.0.0.7 "),
        "{}",
        first[0].1
    );
    let a = first[0].1.clone();
    let s = net.feed("203.0.113.5:40000", &answer(&a, 486, "Busy Here"));
    let second: Vec<_> = s.iter().filter(|(_, t)| t.starts_with("INVITE")).collect();
    assert_eq!(second.len(), 1, "{s:#?}");
    assert!(second[0].1.starts_with("INVITE sip:bob@10.0.0.8 "));
    // Nothing went upstream but the 100 so far.
    assert!(s.iter().all(|(d, _)| *d != udp(UAC)));
    let b = second[0].1.clone();
    let s = net.feed("203.0.113.5:40000", &answer(&b, 200, "OK"));
    assert!(s.iter().any(|(d, t)| *d == udp(UAC) && status(t) == 200));
}

/// Registers `contacts` for bob and returns the INVITE branches the proxy sent.
fn fork_to(net: &mut Net, contacts: &str) -> Vec<String> {
    let reg = String::from_utf8(register("sip:bob@10.0.0.7", 600))
        .unwrap()
        .replace(
            "Contact: <sip:bob@10.0.0.7>",
            &format!("Contact: {contacts}"),
        );
    let r = net.feed("203.0.113.5:40000", reg.as_bytes());
    assert_eq!(status(&only(&r).1), 200);
    let sent = net.feed(UAC, &invite_user("bob"));
    sent.into_iter()
        .filter(|(_, t)| t.starts_with("INVITE"))
        .map(|(_, t)| t)
        .collect()
}

fn upstream_finals(sent: &[(Dest, String)]) -> Vec<u16> {
    sent.iter()
        .filter(|(d, t)| *d == udp(UAC) && t.starts_with("SIP/2.0") && status(t) >= 200)
        .map(|(_, t)| status(t))
        .collect()
}

#[test]
fn best_response_6xx_wins_and_cancels_the_rest() {
    // §16.7 steps 5-6: a 6xx cancels pending branches and is what goes upstream,
    // even though a 4xx came first.
    let mut net = Net::with(ProxyConfig::default());
    let b = fork_to(
        &mut net,
        "<sip:bob@10.0.0.7>, <sip:bob@10.0.0.8>, <sip:bob@10.0.0.9>",
    );
    assert_eq!(b.len(), 3);
    net.feed("203.0.113.5:40000", &answer(&b[2], 180, "Ringing"));
    let s = net.feed("203.0.113.5:40000", &answer(&b[0], 486, "Busy Here"));
    assert!(upstream_finals(&s).is_empty());
    let s = net.feed("203.0.113.5:40000", &answer(&b[1], 603, "Decline"));
    assert!(s.iter().any(|(_, t)| t.starts_with("CANCEL ")), "{s:#?}");
    assert!(
        upstream_finals(&s).is_empty(),
        "waits for the cancelled branch"
    );
    let s = net.feed(
        "203.0.113.5:40000",
        &answer(&b[2], 487, "Request Terminated"),
    );
    assert_eq!(upstream_finals(&s), vec![603]);
}

#[test]
fn best_response_lowest_class_and_503_becomes_500() {
    // §16.7 step 6: 4xx beats 5xx; a lone 503 is answered 500 upstream.
    let mut net = Net::with(ProxyConfig::default());
    let b = fork_to(&mut net, "<sip:bob@10.0.0.7>, <sip:bob@10.0.0.8>");
    net.feed(
        "203.0.113.5:40000",
        &answer(&b[0], 503, "Service Unavailable"),
    );
    let s = net.feed(
        "203.0.113.5:40000",
        &answer(&b[1], 480, "Temporarily Unavailable"),
    );
    assert_eq!(upstream_finals(&s), vec![480]);

    let mut net = Net::with(ProxyConfig::default());
    let b = fork_to(&mut net, "<sip:bob@10.0.0.7>");
    let s = net.feed(
        "203.0.113.5:40000",
        &answer(&b[0], 503, "Service Unavailable"),
    );
    assert_eq!(upstream_finals(&s), vec![500]);
}

#[test]
fn challenges_of_401_and_407_are_aggregated() {
    // §16.7 step 7: every WWW-/Proxy-Authenticate of the branches rides on the
    // forwarded 401/407.
    let mut net = Net::with(ProxyConfig::default());
    let b = fork_to(&mut net, "<sip:bob@10.0.0.7>, <sip:bob@10.0.0.8>");
    let challenge = |req: &str, code: u16, header: &str, realm: &str| {
        let m = Message::parse(req.as_bytes()).unwrap();
        let mut out = Vec::new();
        let value = format!("Digest realm=\"{realm}\", nonce=\"n\", qop=\"auth\"");
        let reason: &[u8] = if code == 401 {
            b"Unauthorized"
        } else {
            b"Proxy Authentication Required"
        };
        write_response(
            &m,
            code,
            reason,
            Some(b"uas1"),
            &[(header, value.as_bytes())],
            &mut out,
        )
        .unwrap();
        out
    };
    net.feed(
        "203.0.113.5:40000",
        &challenge(&b[0], 401, "WWW-Authenticate", "a.example"),
    );
    let s = net.feed(
        "203.0.113.5:40000",
        &challenge(&b[1], 407, "Proxy-Authenticate", "b.example"),
    );
    let up: Vec<&(Dest, String)> = s.iter().filter(|(d, _)| *d == udp(UAC)).collect();
    assert_eq!(up.len(), 1, "{s:#?}");
    let t = &up[0].1;
    assert!(matches!(status(t), 401 | 407));
    assert!(
        t.contains("WWW-Authenticate: Digest realm=\"a.example\""),
        "{t}"
    );
    assert!(
        t.contains("Proxy-Authenticate: Digest realm=\"b.example\""),
        "{t}"
    );
}

#[test]
fn cancel_racing_a_200_leaves_the_call_up() {
    // §16.10 / §9.2: the 200 crossed the CANCEL; the 200 goes upstream, the CANCEL
    // is answered 200 and changes nothing (no 487 invented).
    let mut net = Net::new();
    let sent = net.feed(UAC, &invite("z9hG4bKuac1"));
    let fwd = sent[1].1.clone();
    net.feed(UAS, &answer(&fwd, 180, "Ringing"));
    let s = net.feed(UAS, &answer(&fwd, 200, "OK"));
    assert_eq!(upstream_finals(&s), vec![200]);
    let sc = net.feed(UAC, &cancel("z9hG4bKuac1"));
    // The INVITE transaction ended with the 2xx: the CANCEL matches nothing (481)
    // or is answered 200; either way no CANCEL or 487 follows.
    assert!(sc.iter().all(|(_, t)| !t.starts_with("CANCEL ")), "{sc:#?}");
    assert!(
        sc.iter().all(|(_, t)| !t.starts_with("SIP/2.0 487")),
        "{sc:#?}"
    );
    assert_eq!(sc.len(), 1);
    assert!(matches!(status(&sc[0].1), 200 | 481));
}

#[test]
fn a_large_request_stays_on_udp_by_default() {
    // A phone registered over UDP may have no TCP listener (RFC 3261 §18.1.1's
    // switch is off unless --udp-mtu is given, as Kamailio's udp_mtu).
    let mut net = Net::new();
    let big = String::from_utf8(invite("z9hG4bKuac1")).unwrap().replace(
        "Content-Length: 4\r\n\r\nv=0\n",
        &format!("Content-Length: 1501\r\n\r\n{}\n", "x".repeat(1500)),
    );
    let sent = net.feed(UAC, big.as_bytes());
    let fwd = sent.iter().find(|(_, t)| t.starts_with("INVITE")).unwrap();
    assert_eq!(fwd.0, udp(UAS));
    assert!(fwd
        .1
        .contains("\r\nVia: SIP/2.0/UDP 192.0.2.10:5060;branch="));
}

#[test]
fn a_request_too_large_for_udp_goes_over_tcp() {
    // RFC 3261 §18.1.1: over --udp-mtu, the request is sent over TCP (with a Via
    // saying so), to the same address.
    let mut net = Net::with(ProxyConfig {
        relay: vec!["203.0.113.0/24".parse().unwrap()],
        udp_mtu: Some(800),
        ..ProxyConfig::default()
    });
    let big = String::from_utf8(invite("z9hG4bKuac1")).unwrap().replace(
        "Content-Length: 4\r\n\r\nv=0\n",
        &format!("Content-Length: 604\r\n\r\n{}\n", "x".repeat(603)),
    );
    let sent = net.feed(UAC, big.as_bytes());
    let fwd = sent.iter().find(|(_, t)| t.starts_with("INVITE")).unwrap();
    assert_eq!(
        fwd.0,
        Dest::Stream {
            transport: Transport::Tcp,
            to: to(UAS)
        }
    );
    assert!(
        fwd.1
            .contains("\r\nVia: SIP/2.0/TCP 192.0.2.10:5060;branch="),
        "{}",
        fwd.1
    );
    // A small one stays on UDP.
    let sent = net.feed(UAC, &invite("z9hG4bKuac2"));
    assert!(sent
        .iter()
        .any(|(d, t)| t.starts_with("INVITE") && *d == udp(UAS)));
}
