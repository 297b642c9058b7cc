//! The stateless proxy (§16.11) on a simulated network: a UAC on one side, a UAS
//! on the other, every message checked as it crosses the proxy, and the stateful
//! engine as the reference for the edits both make.

use std::time::Duration;

use super::*;
use crate::io::Dest;
use crate::mesh::Outbox;
use crate::proxy::testnet::{collect, engine, peer, udp, UAC, UAS};
use crate::proxy::ProxyConfig;
use crate::sip::header::HeaderName;
use crate::sip::writer::write_response;

struct Net {
    engine: Engine,
    now: Instant,
    stateless: bool,
}

impl Net {
    fn new() -> Net {
        Net::with(true)
    }

    /// The same proxy, stateful: the reference for what forwarding writes.
    fn stateful() -> Net {
        Net::with(false)
    }

    fn with(stateless: bool) -> Net {
        let now = Instant::now();
        let cfg = ProxyConfig {
            relay: vec!["203.0.113.0/24".parse().unwrap()],
            ..ProxyConfig::default()
        };
        Net {
            engine: engine(now, cfg),
            now,
            stateless,
        }
    }

    /// Feeds a message from `from` over UDP; returns what the proxy sent.
    fn feed(&mut self, from: &str, bytes: &[u8]) -> Vec<(Dest, String)> {
        let msg = Message::parse(bytes).unwrap();
        let peer = peer(from);
        let mut out = Outbox::new();
        match (self.stateless, msg.is_request()) {
            (true, true) => self
                .engine
                .on_stateless_request(self.now, peer, &msg, &mut out),
            (true, false) => self.engine.on_stateless_response(&msg, &mut out),
            (false, true) => self.engine.on_request(self.now, peer, &msg, &mut out),
            (false, false) => self.engine.on_response(self.now, peer, &msg, &mut out),
        }
        collect(&out)
    }

    fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            self.now += Duration::from_millis(10);
            let mut out = Outbox::new();
            self.engine.on_tick(self.now, &mut out);
        }
    }
}

fn request(method: &str, branch: &str, to_tag: &str, extra: &str) -> Vec<u8> {
    let body = if method == "INVITE" { "v=0\n" } else { "" };
    format!(
        "{method} sip:bob@203.0.113.5 SIP/2.0\r\n\
Via: SIP/2.0/UDP 198.51.100.1:5060;branch={branch};rport\r\n\
Max-Forwards: 70\r\n\
From: <sip:alice@example.test>;tag=a1\r\n\
To: <sip:bob@example.test>{to_tag}\r\n\
Call-ID: call-1@uac\r\n\
CSeq: 1 {method}\r\n\
{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn invite(branch: &str) -> Vec<u8> {
    request(
        "INVITE",
        branch,
        "",
        "Contact: <sip:alice@198.51.100.1>\r\n",
    )
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

/// The branch of the top Via.
fn top_branch(text: &str) -> String {
    let m = Message::parse(text.as_bytes()).unwrap();
    let v = m.via().unwrap();
    String::from_utf8(v.branch().unwrap().to_vec()).unwrap()
}

#[test]
fn invite_is_forwarded_without_100_and_without_a_transaction() {
    // §16.11: no 100 Trying, straight to the transport.
    let mut net = Net::new();
    let sent = net.feed(UAC, &invite("z9hG4bKuac1"));
    let (d, fwd) = only(&sent);
    assert_eq!(*d, udp(UAS));
    assert!(
        fwd.starts_with("INVITE sip:bob@203.0.113.5 SIP/2.0\r\n"),
        "{fwd}"
    );
    let branch = top_branch(fwd);
    assert!(branch.starts_with("z9hG4bKs"), "{branch}");
    assert_eq!(net.engine.in_flight(), 0);
    assert_eq!(net.engine.next_deadline(), None, "no timer either");
    assert_eq!(net.engine.stats().forwarded_requests, 1);
}

#[test]
fn forwarding_edits_are_the_stateful_proxys() {
    // §16.11: "All other message transformations specified in Section 16.6" —
    // Max-Forwards, Record-Route, our Via, received/rport: byte for byte what the
    // stateful proxy writes, but for the branch.
    let mut sl = Net::new();
    let stateless = only(&sl.feed(UAC, &invite("z9hG4bKuac1"))).1.clone();
    let mut sf = Net::stateful();
    let sent = sf.feed(UAC, &invite("z9hG4bKuac1"));
    let stateful = sent.iter().find(|(_, t)| t.starts_with("INVITE")).unwrap();
    let m = Message::parse(stateless.as_bytes()).unwrap();
    assert_eq!(m.max_forwards(), Ok(Some(69)));
    assert_eq!(
        m.header(HeaderName::RecordRoute),
        Some(&b"<sip:192.0.2.10:5060;lr>"[..])
    );
    let vias: Vec<&[u8]> = m.values(HeaderName::Via).collect();
    assert_eq!(
        vias[1],
        b"SIP/2.0/UDP 198.51.100.1:5060;branch=z9hG4bKuac1;rport=5060;received=198.51.100.1"
    );
    assert_eq!(
        stateless.replace(&top_branch(&stateless), "B"),
        stateful.1.replace(&top_branch(&stateful.1), "B")
    );
}

#[test]
fn a_retransmission_gets_the_same_branch() {
    // §16.11: the branch is a function of what a retransmission repeats.
    let mut net = Net::new();
    let a = only(&net.feed(UAC, &invite("z9hG4bKuac1"))).1.clone();
    let b = only(&net.feed(UAC, &invite("z9hG4bKuac1"))).1.clone();
    assert_eq!(a, b, "forwarded identically, to the same place");
    // Another transaction gets another branch.
    let c = only(&net.feed(UAC, &invite("z9hG4bKuac2"))).1.clone();
    assert_ne!(top_branch(&a), top_branch(&c));
    // So does the same branch from another client (sent-by, §17.2.3).
    let other = String::from_utf8(invite("z9hG4bKuac1"))
        .unwrap()
        .replace("198.51.100.1:5060;branch", "198.51.100.2:5060;branch");
    let d = only(&net.feed(UAC, other.as_bytes())).1.clone();
    assert_ne!(top_branch(&a), top_branch(&d));
    assert_eq!(net.engine.in_flight(), 0);
}

#[test]
fn cancel_and_the_ack_of_a_non_2xx_get_the_invites_branch() {
    // §16.11: CANCEL is forwarded like any request; with the INVITE's branch the
    // next hop matches it to the INVITE (§9.2), as it matches the ACK of a
    // non-2xx (§17.2.3), which carries the response's To tag (§17.1.1.3).
    let mut net = Net::new();
    let inv = only(&net.feed(UAC, &invite("z9hG4bKuac1"))).1.clone();
    let can = net.feed(UAC, &request("CANCEL", "z9hG4bKuac1", "", ""));
    let (d, can) = only(&can);
    assert_eq!(*d, udp(UAS));
    assert!(
        can.starts_with("CANCEL sip:bob@203.0.113.5 SIP/2.0\r\n"),
        "{can}"
    );
    assert_eq!(top_branch(can), top_branch(&inv));
    let ack = net.feed(UAC, &request("ACK", "z9hG4bKuac1", ";tag=uas1", ""));
    let (d, ack) = only(&ack);
    assert_eq!(*d, udp(UAS));
    assert_eq!(top_branch(ack), top_branch(&inv));
    // The ACK of a 2xx is its own transaction: a new branch upstream, a new one
    // here.
    let ack2 = net.feed(UAC, &request("ACK", "z9hG4bKuac1ack", ";tag=uas1", ""));
    assert_ne!(top_branch(&only(&ack2).1), top_branch(&inv));
    assert_eq!(net.engine.in_flight(), 0);
}

#[test]
fn rfc2543_requests_get_a_branch_from_their_fields() {
    // §16.11: without the magic cookie, a hash of the top Via, tags, Call-ID,
    // CSeq number and Request-URI; CANCEL still matches its INVITE.
    let mut net = Net::new();
    let inv = only(&net.feed(UAC, &invite("old1"))).1.clone();
    let again = only(&net.feed(UAC, &invite("old1"))).1.clone();
    assert_eq!(top_branch(&inv), top_branch(&again));
    let can = only(&net.feed(UAC, &request("CANCEL", "old1", "", "")))
        .1
        .clone();
    assert_eq!(top_branch(&can), top_branch(&inv));
    let next = String::from_utf8(invite("old1"))
        .unwrap()
        .replace("CSeq: 1 INVITE", "CSeq: 2 INVITE");
    let next = only(&net.feed(UAC, next.as_bytes())).1.clone();
    assert_ne!(top_branch(&next), top_branch(&inv));
}

#[test]
fn responses_go_upstream_without_our_via() {
    // §16.11 / §18.2.2: every response, 100 included, to the next Via's
    // received/rport.
    let mut net = Net::new();
    let fwd = only(&net.feed(UAC, &invite("z9hG4bKuac1"))).1.clone();
    for (code, reason) in [(100, "Trying"), (180, "Ringing"), (200, "OK"), (200, "OK")] {
        let sent = net.feed(UAS, &answer(&fwd, code, reason));
        let (d, t) = only(&sent);
        assert_eq!(*d, udp(UAC));
        assert_eq!(status(t), code);
        assert!(
            t.contains("\r\nVia: SIP/2.0/UDP 198.51.100.1:5060;branch=z9hG4bKuac1;rport=5060"),
            "{t}"
        );
        assert!(!t.contains("192.0.2.10"), "{t}");
    }
    assert_eq!(net.engine.stats().forwarded_responses, 4);
    // A response whose top Via is not ours is dropped.
    let theirs = String::from_utf8(answer(&fwd, 180, "Ringing"))
        .unwrap()
        .replace("SIP/2.0/UDP 192.0.2.10:5060", "SIP/2.0/UDP 192.0.2.99:5060");
    assert!(net.feed(UAS, theirs.as_bytes()).is_empty());
    assert_eq!(net.engine.stats().dropped, 1);
    assert_eq!(net.engine.in_flight(), 0);
}

#[test]
fn invalid_requests_are_answered_statelessly() {
    // §16.3 before anything else; an ACK is never answered.
    let mut net = Net::new();
    let good = String::from_utf8(invite("z9hG4bKuac1")).unwrap();
    for (req, code) in [
        (good.replace("Max-Forwards: 70", "Max-Forwards: 0"), 483),
        (
            good.replace(
                "Max-Forwards: 70\r\n",
                "Max-Forwards: 70\r\nProxy-Require: foo\r\n",
            ),
            420,
        ),
        (good.replace("CSeq: 1 INVITE", "CSeq: x INVITE"), 400),
        (
            good.replace("SIP/2.0/UDP 198.51.100.1:5060", "SIP/2.0/UDP [bad"),
            400,
        ),
        // Not ours to relay to (no --relay for it, no dialog of ours).
        (
            good.replace("sip:bob@203.0.113.5", "sip:bob@192.0.2.99"),
            403,
        ),
        (
            good.replace("sip:bob@203.0.113.5", "notsip:bob@203.0.113.5"),
            416,
        ),
        // A tel: URI with no Route to follow, no way to route it.
        (
            good.replace("INVITE sip:bob@203.0.113.5", "INVITE tel:+15551234"),
            404,
        ),
        // A TLS next hop with no TLS listener.
        (
            good.replace("sip:bob@203.0.113.5", "sips:bob@203.0.113.5"),
            503,
        ),
    ] {
        let sent = net.feed(UAC, req.as_bytes());
        let (_, t) = only(&sent);
        assert_eq!(status(t), code, "{t}");
    }
    let ack = String::from_utf8(request("ACK", "z9hG4bKuac1", ";tag=x", ""))
        .unwrap()
        .replace("Max-Forwards: 70", "Max-Forwards: 0");
    assert!(net.feed(UAC, ack.as_bytes()).is_empty());
    assert_eq!(net.engine.in_flight(), 0);
}

#[test]
fn a_request_that_comes_back_is_a_loop() {
    // §16.3 step 4 with the stateless branch's loop part.
    let mut net = Net::new();
    let fwd = only(&net.feed(UAC, &invite("z9hG4bKuac1"))).1.clone();
    let sent = net.feed(UAS, fwd.as_bytes());
    assert_eq!(status(&only(&sent).1), 482);
}

#[test]
fn options_to_the_proxy_is_answered_with_its_capabilities() {
    let mut net = Net::new();
    let req = String::from_utf8(request("OPTIONS", "z9hG4bKo1", "", ""))
        .unwrap()
        .replace("OPTIONS sip:bob@203.0.113.5", "OPTIONS sip:192.0.2.10");
    let sent = net.feed(UAC, req.as_bytes());
    let (d, t) = only(&sent);
    assert_eq!(*d, udp(UAC));
    assert_eq!(status(t), 200);
    assert!(t.contains("\r\nAllow: INVITE, ACK, CANCEL"), "{t}");
}

fn register(contacts: &str, cseq: u32) -> Vec<u8> {
    format!(
        "REGISTER sip:example.test SIP/2.0\r\n\
Via: SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bKreg{cseq}\r\n\
Max-Forwards: 70\r\n\
From: <sip:bob@example.test>;tag=r1\r\n\
To: <sip:bob@example.test>\r\n\
Call-ID: reg-1@uas\r\n\
CSeq: {cseq} REGISTER\r\n\
Contact: {contacts}\r\n\
Expires: 600\r\n\
Content-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

fn invite_user(user: &str, branch: &str) -> Vec<u8> {
    String::from_utf8(invite(branch))
        .unwrap()
        .replace(
            "INVITE sip:bob@203.0.113.5",
            &format!("INVITE sip:{user}@example.test"),
        )
        .into_bytes()
}

#[test]
fn a_registered_user_is_reached_at_its_best_binding_only() {
    // §16.11: one target; the location service's best (highest q).
    let mut net = Net::new();
    let reg = register(
        "<sip:bob@203.0.113.5:5070>;q=0.5, <sip:bob@203.0.113.5:5071>;q=0.9",
        1,
    );
    let r = net.feed(UAS, &reg);
    assert_eq!(status(&only(&r).1), 200);
    let sent = net.feed(UAC, &invite_user("bob", "z9hG4bKuac1"));
    let (d, t) = only(&sent);
    assert_eq!(*d, udp("203.0.113.5:5071"));
    assert!(
        t.starts_with("INVITE sip:bob@203.0.113.5:5071 SIP/2.0\r\n"),
        "{t}"
    );
    // Its CANCEL goes the same way with the same branch.
    let can = String::from_utf8(request("CANCEL", "z9hG4bKuac1", "", ""))
        .unwrap()
        .replace("CANCEL sip:bob@203.0.113.5", "CANCEL sip:bob@example.test");
    let c = net.feed(UAC, can.as_bytes());
    assert_eq!(only(&c).0, udp("203.0.113.5:5071"));
    assert_eq!(top_branch(&only(&c).1), top_branch(t));
    // Unknown users are 404.
    let sent = net.feed(UAC, &invite_user("carol", "z9hG4bKuac2"));
    assert_eq!(status(&only(&sent).1), 404);
}

#[test]
fn register_is_the_registrars_transaction_as_in_stateful_mode() {
    // §10.3: a retransmitted REGISTER gets the same 200 again from the
    // registrar's server transaction; processed anew, §10.3 step 7 would refuse
    // its CSeq.
    let mut net = Net::new();
    let reg = register("<sip:bob@203.0.113.5:5070>", 5);
    let a = only(&net.feed(UAS, &reg)).1.clone();
    let b = only(&net.feed(UAS, &reg)).1.clone();
    assert_eq!(status(&a), 200);
    assert_eq!(a, b);
    assert_eq!(net.engine.stats().registrations, 1);
    // That transaction is the only state, and it ends (Timer J, §17.2.2).
    assert_eq!(net.engine.in_flight(), 1);
    net.advance(Duration::from_secs(33));
    assert_eq!(net.engine.in_flight(), 0);
}
