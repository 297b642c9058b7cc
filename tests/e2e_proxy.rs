//! End to end through the stateful proxy (RFC 3261 §16): the real `coresip` binary
//! and small test UAs on loopback. Every test starts its own proxy; every wait is
//! bounded (common::WAIT).

mod common;

use std::time::Duration;

use common::ua::{answered_call_to, hang_up, Msg, Ua};
use common::{data_dir, Server};
use coresip::sip::HeaderName;

/// A proxy with `--cores cores` and `extra` flags, and a fresh data dir.
fn proxy(tag: &str, cores: usize, extra: &[&str]) -> Server {
    Server::start(cores, &data_dir(&format!("proxy-{tag}")), extra)
}

/// A UDP UA registered as `user` with the proxy.
fn registered_udp(server: &Server, user: &str) -> Ua {
    let mut ua = Ua::udp(user, server.addr());
    let r = ua.register(3600);
    assert_eq!(r.status(), Some(200), "{r:?}");
    ua
}

/// Our Record-Route URI for the UDP and the TCP listener.
fn rr_udp(server: &Server) -> String {
    format!("sip:127.0.0.1:{};lr", server.port)
}

fn rr_tcp(server: &Server) -> String {
    format!("sip:127.0.0.1:{};transport=tcp;lr", server.port)
}

/// Record-Route values without the flow token in their user part.
fn rr_hosts(rrs: Vec<String>) -> Vec<String> {
    rrs.into_iter()
        .map(|r| match r.split_once('@') {
            Some((_, host)) => format!("sip:{host}"),
            None => r,
        })
        .collect()
}

fn vias(m: &Msg) -> Vec<String> {
    m.values(HeaderName::Via)
}

#[test]
fn a_call_is_set_up_and_torn_down_along_the_record_route() {
    let server = proxy("call", 1, &[]);
    let mut bob = registered_udp(&server, "bob");
    let mut alice = Ua::udp("alice", server.addr());

    let mut call = alice.invite(&bob.aor());
    // §16.2 / §16.7: the proxy answers the INVITE with 100 Trying itself.
    alice.expect_status(100);
    let invite = bob.expect_request("INVITE");
    // §16.5 / §16.6: retargeted to the registered contact, one Via more, Max-Forwards
    // decremented, and record-routed once (same transport in and out).
    assert_eq!(invite.request_uri(), bob.contact_uri());
    assert_eq!(vias(&invite).len(), 2, "{invite:?}");
    assert_eq!(invite.header(HeaderName::MaxForwards).unwrap(), "69");
    assert_eq!(invite.record_routes(), vec![rr_udp(&server)]);
    assert!(invite.body().starts_with("v=0\r\n"), "{invite:?}");

    let mut callee = bob.accept(&invite);
    bob.respond(&invite, 180, Some(&callee.local_tag));
    let ringing = alice.expect_status(180);
    assert_eq!(ringing.to_tag().as_deref(), Some(callee.local_tag.as_str()));
    assert_eq!(vias(&ringing).len(), 1, "our Via is removed: {ringing:?}");

    bob.respond(&invite, 200, Some(&callee.local_tag));
    let ok = alice.expect_status(200);
    assert_eq!(ok.record_routes(), vec![rr_udp(&server)]);
    assert!(ok.body().starts_with("v=0\r\n"), "{ok:?}");

    // The ACK for the 2xx is a new transaction along the route set (§13.2.2.4): it
    // carries Route: <proxy>, which the proxy removes (§16.4) before sending it on to
    // the remote target.
    alice.ack(&mut call, &ok);
    assert_eq!(call.route_set, vec![rr_udp(&server)]);
    assert_eq!(call.remote_target, bob.contact_uri());
    let ack = bob.expect_request("ACK");
    assert_eq!(ack.request_uri(), bob.contact_uri());
    assert!(ack.values(HeaderName::Route).is_empty(), "{ack:?}");
    assert_eq!(ack.cseq_number(), call.invite_cseq);
    assert_eq!(ack.call_id(), call.call_id);

    // The caller hangs up.
    alice.in_dialog(&mut call, "BYE");
    let bye = bob.expect_request("BYE");
    assert!(bye.values(HeaderName::Route).is_empty(), "{bye:?}");
    assert_eq!(bye.to_tag().as_deref(), Some(callee.local_tag.as_str()));
    bob.respond(&bye, 200, None);
    let bye_ok = alice.expect_status(200);
    assert_eq!(bye_ok.cseq_method(), "BYE");

    // And the callee's side of the same dialog works too: it sends along the
    // Record-Route as received (§12.1.1).
    bob.in_dialog(&mut callee, "INFO");
    let info = alice.expect_request("INFO");
    assert_eq!(info.request_uri(), alice.contact_uri());
    alice.respond(&info, 200, None);
    assert_eq!(bob.expect_status(200).cseq_method(), "INFO");
}

#[test]
fn cancel_before_the_answer_gets_200_and_the_invite_487() {
    let server = proxy("cancel", 1, &[]);
    let mut bob = registered_udp(&server, "bob");
    let mut alice = Ua::udp("alice", server.addr());

    let mut call = alice.invite(&bob.aor());
    let invite = bob.expect_request("INVITE");
    let callee = bob.accept(&invite);
    bob.respond(&invite, 180, Some(&callee.local_tag));
    alice.expect_status(180);

    // §16.10: the proxy answers the CANCEL itself and cancels the pending branch.
    alice.cancel(&call);
    let cancel_ok = alice.expect_status(200);
    assert_eq!(cancel_ok.cseq_method(), "CANCEL");
    let cancel = bob.expect_request("CANCEL");
    // §9.1: the CANCEL matches the INVITE it cancels: same Request-URI, branch, CSeq.
    assert_eq!(cancel.request_uri(), invite.request_uri());
    assert_eq!(vias(&cancel)[0], vias(&invite)[0]);
    assert_eq!(cancel.cseq_number(), invite.cseq_number());
    bob.respond(&cancel, 200, None);
    bob.respond(&invite, 487, Some(&callee.local_tag));

    // The proxy ACKs the 487 hop by hop (§17.1.1.3) and forwards it upstream.
    let ack = bob.expect_request("ACK");
    assert_eq!(vias(&ack), vec![vias(&invite)[0].clone()]);
    assert_eq!(ack.to_tag().as_deref(), Some(callee.local_tag.as_str()));
    let terminated = alice.expect_status(487);
    assert_eq!(terminated.cseq_method(), "INVITE");
    alice.ack(&mut call, &terminated);
    // Our ACK is absorbed by the proxy's server transaction: nothing reaches bob.
    bob.expect_silence(Duration::from_millis(300));
}

#[test]
fn busy_here_is_forwarded_and_acked_on_both_sides() {
    let server = proxy("busy", 1, &[]);
    let mut bob = registered_udp(&server, "bob");
    let mut alice = Ua::udp("alice", server.addr());

    let mut call = alice.invite(&bob.aor());
    let invite = bob.expect_request("INVITE");
    bob.respond(&invite, 486, Some("busytag"));
    let ack = bob.expect_request("ACK");
    assert_eq!(ack.request_uri(), invite.request_uri());
    assert_eq!(vias(&ack), vec![vias(&invite)[0].clone()]);
    assert_eq!(ack.to_tag().as_deref(), Some("busytag"));

    let busy = alice.expect_status(486);
    assert_eq!(busy.to_tag().as_deref(), Some("busytag"));
    assert_eq!(vias(&busy).len(), 1);
    alice.ack(&mut call, &busy);
    bob.expect_silence(Duration::from_millis(300));
}

#[test]
fn a_callee_that_never_answers_times_out_with_408() {
    // Timer B = 64*T1 = 6.4 s with --t1 100ms (RFC 3261 §17.1.1.2). Timer C (§16.6
    // step 11) must be more than 3 minutes, too long for a test; the silent callee
    // exercises the other way a branch ends without an answer.
    let server = proxy("timeout", 1, &["--t1", "100ms"]);
    let mut bob = registered_udp(&server, "bob");
    let mut alice = Ua::udp("alice", server.addr());

    let mut call = alice.invite(&bob.aor());
    bob.expect_request("INVITE");
    // §16.7 step 6 / §16.8: the branch's timeout counts as a 408 and is the best
    // (only) response.
    let timeout = alice.expect_status(408);
    assert_eq!(timeout.cseq_method(), "INVITE");
    alice.ack(&mut call, &timeout);
    // No provisional response came, so no CANCEL is sent (§9.1).
    bob.expect_silence(Duration::from_millis(300));
    // Meanwhile Timer A retransmitted the INVITE over UDP (§17.1.1.2).
    assert!(bob.retransmissions > 0);
}

#[test]
fn a_retransmitted_invite_is_absorbed_and_answered_with_the_last_provisional() {
    let server = proxy("retransmit", 1, &[]);
    let mut bob = registered_udp(&server, "bob");
    let mut alice = Ua::udp("alice", server.addr());

    let mut call = alice.invite(&bob.aor());
    let invite = bob.expect_request("INVITE");
    let callee = bob.accept(&invite);
    bob.respond(&invite, 180, Some(&callee.local_tag));
    alice.expect_status(180);

    // §17.2.1: the server transaction absorbs the retransmission and sends the
    // most recent provisional again; nothing new goes downstream.
    alice.send_to_proxy(&call.invite_bytes);
    let deadline = std::time::Instant::now() + common::WAIT;
    while alice.retransmissions == 0 {
        assert!(std::time::Instant::now() < deadline, "no 180 again");
        if let Some(m) = alice.recv_within(Duration::from_millis(100)) {
            panic!("expected the 180 again, got:\n{m:?}");
        }
    }
    bob.expect_silence(Duration::from_millis(300));

    bob.respond(&invite, 200, Some(&callee.local_tag));
    let ok = alice.expect_status(200);
    alice.ack(&mut call, &ok);
    bob.expect_request("ACK");
}

#[test]
fn a_fork_to_two_contacts_rings_both_and_the_first_200_wins() {
    let server = proxy("fork", 1, &[]);
    let mut desk = registered_udp(&server, "bob");
    let mut mobile = registered_udp(&server, "bob");
    let mut alice = Ua::udp("alice", server.addr());

    let mut call = alice.invite(&desk.aor());
    let inv_desk = desk.expect_request("INVITE");
    let inv_mobile = mobile.expect_request("INVITE");
    assert_eq!(inv_desk.request_uri(), desk.contact_uri());
    assert_eq!(inv_mobile.request_uri(), mobile.contact_uri());
    // Parallel branches of one server transaction: different branch parameters.
    assert_ne!(vias(&inv_desk)[0], vias(&inv_mobile)[0]);

    let d = desk.accept(&inv_desk);
    let m = mobile.accept(&inv_mobile);
    desk.respond(&inv_desk, 180, Some(&d.local_tag));
    mobile.respond(&inv_mobile, 180, Some(&m.local_tag));
    // Both provisionals are forwarded (§16.7 step 5), as two early dialogs.
    let mut tags = vec![
        alice.expect_status(180).to_tag().unwrap(),
        alice.expect_status(180).to_tag().unwrap(),
    ];
    tags.sort();
    let mut want = vec![d.local_tag.clone(), m.local_tag.clone()];
    want.sort();
    assert_eq!(tags, want);

    desk.respond(&inv_desk, 200, Some(&d.local_tag));
    let ok = alice.expect_status(200);
    assert_eq!(ok.to_tag().as_deref(), Some(d.local_tag.as_str()));

    // §16.7 step 10: the other branch is cancelled.
    let cancel = mobile.expect_request("CANCEL");
    assert_eq!(vias(&cancel)[0], vias(&inv_mobile)[0]);
    mobile.respond(&cancel, 200, None);
    mobile.respond(&inv_mobile, 487, Some(&m.local_tag));
    mobile.expect_request("ACK");

    alice.ack(&mut call, &ok);
    desk.expect_request("ACK");
    alice.in_dialog(&mut call, "BYE");
    let bye = desk.expect_request("BYE");
    desk.respond(&bye, 200, None);
    assert_eq!(alice.expect_status(200).cseq_method(), "BYE");
    // The 487 of the cancelled branch is not forwarded: a final response was sent.
    alice.expect_silence(Duration::from_millis(300));
    mobile.expect_silence(Duration::from_millis(100));
}

#[test]
fn udp_caller_reaches_a_tcp_callee_with_a_double_record_route() {
    let server = proxy("switch", 1, &[]);
    let mut bob = Ua::tcp("bob", server.addr());
    let r = bob.register(3600);
    assert_eq!(r.status(), Some(200), "{r:?}");
    let mut alice = Ua::udp("alice", server.addr());

    let mut call = alice.invite(&bob.aor());
    let invite = bob.expect_request("INVITE");
    // On the connection bob registered over (RFC 3261 §18.1.1, RFC 5626 §5.3):
    // phones accept requests only there.
    assert!(
        bob.on_own_connection(&invite),
        "the INVITE must arrive over TCP"
    );
    assert!(vias(&invite)[0].starts_with("SIP/2.0/TCP "), "{invite:?}");
    // RFC 3261 §16.6 step 4 with RFC 5658: the request changes transport, so the
    // proxy record-routes twice, the outbound (TCP) interface first. The user part
    // carries bob's flow, so the rest of the dialog takes that connection too.
    assert_eq!(
        rr_hosts(invite.record_routes()),
        vec![rr_tcp(&server), rr_udp(&server)]
    );
    let rrs = invite.record_routes();

    let mut callee = bob.accept(&invite);
    bob.respond(&invite, 180, Some(&callee.local_tag));
    alice.expect_status(180);
    bob.respond(&invite, 200, Some(&callee.local_tag));
    let ok = alice.expect_status(200);
    assert_eq!(ok.record_routes(), rrs);

    // The caller's route set starts with the UDP entry, the callee's with the TCP
    // one; the proxy removes both of its entries from what it forwards.
    alice.ack(&mut call, &ok);
    assert_eq!(
        rr_hosts(call.route_set.clone()),
        vec![rr_udp(&server), rr_tcp(&server)]
    );
    let ack = bob.expect_request("ACK");
    assert!(bob.on_own_connection(&ack), "{ack:?}");
    assert!(ack.values(HeaderName::Route).is_empty(), "{ack:?}");

    // The callee hangs up, over TCP to the proxy, and the BYE reaches the caller
    // over UDP.
    assert_eq!(callee.route_set, rrs);
    bob.in_dialog(&mut callee, "BYE");
    let bye = alice.expect_request("BYE");
    assert!(!bye.link.is_tcp());
    assert_eq!(bye.request_uri(), alice.contact_uri());
    assert!(bye.values(HeaderName::Route).is_empty(), "{bye:?}");
    assert!(vias(&bye)[0].starts_with("SIP/2.0/UDP "), "{bye:?}");
    alice.respond(&bye, 200, None);
    let bye_ok = bob.expect_status(200);
    assert_eq!(bye_ok.cseq_method(), "BYE");
    assert!(bye_ok.link.is_tcp());
}

#[test]
fn calls_complete_when_responses_land_on_the_other_core() {
    let server = proxy("mesh", 2, &["--relay", "127.0.0.0/8"]);
    // Fresh sockets for every caller and callee: SO_REUSEPORT spreads their
    // datagrams over both cores. A call to a user of ours stays on the core its
    // INVITE lands on; one addressed to the callee's contact is owned by the core
    // its branch hashes to, so some of those cross the mesh (DESIGN.md §3).
    for i in 0..16 {
        let mut bob = registered_udp(&server, &format!("bob{i}"));
        let mut alice = Ua::udp(&format!("alice{i}"), server.addr());
        let target = if i % 2 == 0 {
            bob.aor()
        } else {
            bob.contact_uri()
        };
        let (mut call, _) = answered_call_to(&mut alice, &target, &mut bob, true);
        let ok = hang_up(&mut alice, &mut call, &mut bob);
        assert_eq!(ok.cseq_method(), "BYE", "call {i}");
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
