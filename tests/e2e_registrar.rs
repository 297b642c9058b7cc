//! End to end through the registrar and location service (RFC 3261 §10) and
//! digest authentication (§22): phones register with the real `coresip` binary and
//! call each other through it, over loopback. Every test starts its own proxy
//! (two cores, so REGISTERs and lookups cross the mesh to the AOR's owner); every
//! wait is bounded (common::WAIT).

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::ua::{Call, Ua};
use common::{data_dir, users_file, Server, DOMAIN};
use coresip::sip::{Challenge, HeaderName};

const USERS: &[&str] = &[
    "alice:alice-secret",
    "bob:bob-secret",
    // MD5 only: HA1 = MD5("carol:example.com:carol-secret").
    "carol:example.com:2843553c517fa833867eabed5673943c",
];

/// A fresh data dir holding a users file.
fn dir_with_users(tag: &str) -> (PathBuf, String) {
    let dir = data_dir(&format!("reg-{tag}"));
    let users = users_file(&dir, USERS).display().to_string();
    (dir, users)
}

/// `caller` calls `callee` through the proxy (answering a 407 first when
/// `challenged`), the callee answers, and `hangs_up` ends the call.
fn call_and_hang_up(caller: &mut Ua, callee: &mut Ua, challenged: bool, caller_hangs_up: bool) {
    let mut call = caller.invite(&callee.aor());
    if challenged {
        // RFC 3261 §22.3: 407 with Proxy-Authenticate; the ACK is hop by hop, the
        // retry a new transaction with credentials.
        let challenge = caller.expect_status(407);
        assert!(
            !challenge.values(HeaderName::ProxyAuthenticate).is_empty(),
            "{challenge:?}"
        );
        caller.ack(&mut call, &challenge);
        let auth = caller.authorization(&challenge, "INVITE", &call.request_uri);
        call = caller.reinvite_out_of_dialog(call, &[auth]);
    }
    let invite = callee.expect_request("INVITE");
    assert_eq!(invite.request_uri(), callee.contact_uri());
    assert_eq!(invite.cseq_number(), call.invite_cseq);
    let mut answered = callee.accept(&invite);
    callee.respond(&invite, 180, Some(&answered.local_tag));
    caller.expect_status(180);
    callee.respond(&invite, 200, Some(&answered.local_tag));
    let ok = caller.expect_status(200);
    caller.ack(&mut call, &ok);
    callee.expect_request("ACK");

    // In-dialog requests are not challenged, even with --auth all.
    let (ender, other, dialog): (&mut Ua, &mut Ua, &mut Call) = if caller_hangs_up {
        (caller, callee, &mut call)
    } else {
        (callee, caller, &mut answered)
    };
    ender.in_dialog(dialog, "BYE");
    let bye = other.expect_request("BYE");
    other.respond(&bye, 200, None);
    assert_eq!(ender.expect_status(200).cseq_method(), "BYE");
}

/// Registers `ua` and checks the 200.
fn register_ok(ua: &mut Ua, expires: u32) {
    let r = ua.register(expires);
    assert_eq!(r.status(), Some(200), "{r:?}");
    assert!(
        r.values(HeaderName::Contact)
            .iter()
            .any(|c| c.contains(&ua.contact_uri())),
        "our binding is listed: {r:?}"
    );
}

#[test]
fn udp_and_tcp_phones_register_and_call_each_other() {
    let server = Server::start(2, &data_dir("reg-plain"), &["--auth", "none"]);
    let mut alice = Ua::udp("alice", server.addr());
    let mut bob = Ua::tcp("bob", server.addr());
    register_ok(&mut alice, 3600);
    register_ok(&mut bob, 3600);

    call_and_hang_up(&mut alice, &mut bob, false, true);
    call_and_hang_up(&mut bob, &mut alice, false, false);
}

#[test]
fn register_is_challenged_with_401_when_auth_is_register() {
    let (dir, users) = dir_with_users("authreg");
    let server = Server::start(2, &dir, &["--auth", "register", "--users", &users]);
    let mut alice = Ua::udp("alice", server.addr()).with_password("alice-secret");
    let mut bob = Ua::tcp("bob", server.addr())
        .with_password("bob-secret")
        .with_algorithm("MD5");

    // §22.2: a 401 offering MD5 alone (the default, what stock phones answer)
    // with qop=auth, then 200.
    let contact = format!("<{}>", alice.contact_uri());
    let challenge = alice.register_raw(Some(&contact), Some(3600), &[]);
    assert_eq!(challenge.status(), Some(401), "{challenge:?}");
    let offered = challenge.values(HeaderName::WwwAuthenticate);
    let algorithms: Vec<String> = offered
        .iter()
        .map(|v| {
            let c = Challenge::parse(v.as_bytes()).unwrap();
            assert_eq!(c.realm(), Some(DOMAIN.as_bytes()));
            assert!(c.offers_qop(b"auth"), "{v}");
            String::from_utf8_lossy(c.algorithm().unwrap_or(b"MD5")).into_owned()
        })
        .collect();
    assert_eq!(algorithms, ["MD5"], "{offered:?}");
    let auth = alice.authorization(&challenge, "REGISTER", &format!("sip:{DOMAIN}"));
    let ok = alice.register_raw(Some(&contact), Some(3600), &[auth]);
    assert_eq!(ok.status(), Some(200), "{ok:?}");

    // Over TCP.
    register_ok(&mut bob, 3600);

    // A wrong password is not accepted.
    let mut mallory = Ua::udp("alice", server.addr()).with_password("guess");
    let r = mallory.register(3600);
    assert_ne!(r.status(), Some(200), "{r:?}");

    // Calls need no credentials with --auth register.
    call_and_hang_up(&mut alice, &mut bob, false, true);
    call_and_hang_up(&mut bob, &mut alice, false, false);
}

#[test]
fn sha256_is_offered_first_when_configured() {
    // RFC 8760 §2.4: several challenges, the preferred first.
    let (dir, users) = dir_with_users("authsha");
    let server = Server::start(
        2,
        &dir,
        &["--users", &users, "--digest-algorithms", "sha-256,md5"],
    );
    let mut alice = Ua::udp("alice", server.addr()).with_password("alice-secret");
    let mut carol = Ua::tcp("carol", server.addr())
        .with_password("carol-secret")
        .with_algorithm("MD5");
    let contact = format!("<{}>", alice.contact_uri());
    let challenge = alice.register_raw(Some(&contact), Some(3600), &[]);
    let algorithms: Vec<String> = challenge
        .values(HeaderName::WwwAuthenticate)
        .iter()
        .map(|v| {
            let c = Challenge::parse(v.as_bytes()).unwrap();
            String::from_utf8_lossy(c.algorithm().unwrap_or(b"MD5")).into_owned()
        })
        .collect();
    assert_eq!(algorithms, ["SHA-256", "MD5"], "{challenge:?}");
    let auth = alice.authorization(&challenge, "REGISTER", &format!("sip:{DOMAIN}"));
    let ok = alice.register_raw(Some(&contact), Some(3600), &[auth]);
    assert_eq!(ok.status(), Some(200), "{ok:?}");
    // An MD5-only user (an MD5 HA1) answers with the other algorithm.
    register_ok(&mut carol, 3600);
}

#[test]
fn every_call_is_challenged_with_407_when_auth_is_all() {
    let (dir, users) = dir_with_users("authall");
    let server = Server::start(2, &dir, &["--auth", "all", "--users", &users]);
    let mut alice = Ua::udp("alice", server.addr()).with_password("alice-secret");
    let mut bob = Ua::tcp("bob", server.addr()).with_password("bob-secret");
    let mut carol = Ua::udp("carol", server.addr())
        .with_password("carol-secret")
        .with_algorithm("MD5");
    for ua in [&mut alice, &mut bob, &mut carol] {
        register_ok(ua, 3600);
    }

    call_and_hang_up(&mut alice, &mut bob, true, true);
    call_and_hang_up(&mut bob, &mut alice, true, false);
    call_and_hang_up(&mut carol, &mut alice, true, true);
}

#[test]
fn an_invite_without_credentials_never_reaches_the_callee_with_auth_all() {
    let (dir, users) = dir_with_users("authnone");
    let server = Server::start(2, &dir, &["--auth", "all", "--users", &users]);
    let mut alice = Ua::udp("alice", server.addr()).with_password("alice-secret");
    let mut bob = Ua::udp("bob", server.addr()).with_password("bob-secret");
    register_ok(&mut bob, 3600);

    let mut call = alice.invite(&bob.aor());
    let challenge = alice.expect_status(407);
    alice.ack(&mut call, &challenge);
    // Wrong credentials get no further either.
    alice.password = Some("wrong".into());
    let auth = alice.authorization(&challenge, "INVITE", &call.request_uri);
    let mut call = alice.reinvite_out_of_dialog(call, &[auth]);
    let refused = alice.recv_final();
    let code = refused.status().unwrap();
    assert!(code == 407 || code == 403, "{refused:?}");
    alice.ack(&mut call, &refused);
    bob.expect_silence(Duration::from_millis(300));
}

#[test]
fn a_binding_survives_a_restart() {
    let server = Server::start(1, &data_dir("reg-restart"), &["--auth", "none"]);
    let mut bob = Ua::udp("bob", server.addr());
    let mut carol = Ua::tcp("carol", server.addr());
    register_ok(&mut bob, 3600);
    register_ok(&mut carol, 3600);

    // SIGTERM flushes the bindings; the next start (with another core count: the
    // store does not depend on it) reloads them.
    let server = server.restart(2);
    assert!(
        server
            .log()
            .iter()
            .any(|l| l.contains("registrar store loaded") && l.contains("bindings=2")),
        "{:?}",
        server.log()
    );
    let mut alice = Ua::udp("alice", server.addr());
    call_and_hang_up(&mut alice, &mut bob, false, true);
    call_and_hang_up(&mut alice, &mut carol, false, true);
}

/// On two cores each REGISTER is answered where it lands, and the AOR's own core
/// persists it when the change reaches it: every binding is in the store after a
/// restart, whichever core took it.
#[test]
fn bindings_taken_on_either_core_survive_a_restart() {
    let server = Server::start(2, &data_dir("reg-restart-2"), &["--auth", "none"]);
    const PHONES: usize = 8;
    // Over TCP: no REGISTER transaction lingers (Timer J is 0 on a reliable
    // transport), so nothing keeps the cores running after the stop is asked.
    let mut phones: Vec<Ua> = (0..PHONES)
        .map(|i| Ua::tcp(&format!("phone{i}"), server.addr()))
        .collect();
    for p in &mut phones {
        register_ok(p, 3600);
    }
    // Stopped at once: the last batch of new bindings (sent at most 10 ms after
    // its REGISTERs) is still waiting on the core that took them.
    let server = server.restart(2);
    assert!(
        server
            .log()
            .iter()
            .any(|l| l.contains("registrar store loaded")
                && l.contains(&format!("bindings={PHONES}"))),
        "{:?}",
        server.log()
    );
    let mut alice = Ua::udp("alice", server.addr());
    for p in &mut phones {
        call_and_hang_up(&mut alice, p, false, true);
    }
}

#[test]
fn an_expired_binding_is_removed() {
    let (dir, users) = dir_with_users("expiry");
    let server = Server::start(
        2,
        &dir,
        &[
            "--auth",
            "register",
            "--users",
            &users,
            "--min-expires",
            "1",
        ],
    );
    let mut bob = Ua::udp("bob", server.addr()).with_password("bob-secret");
    let r = bob.register(2);
    assert_eq!(r.status(), Some(200), "{r:?}");
    let binding = r.values(HeaderName::Contact);
    assert_eq!(binding.len(), 1, "{r:?}");
    assert!(binding[0].contains(&bob.contact_uri()), "{r:?}");
    assert!(binding[0].ends_with(";expires=2"), "{r:?}");

    // Once its 2 s have passed (counted in whole seconds), the binding is gone: a
    // known user without a binding is temporarily unavailable (480), not unknown.
    std::thread::sleep(Duration::from_secs(4));
    let mut alice = Ua::udp("alice", server.addr());
    let mut call = alice.invite(&bob.aor());
    let gone = alice.expect_status(480);
    alice.ack(&mut call, &gone);
    bob.expect_silence(Duration::from_millis(300));

    // A user nobody knows is 404.
    let mut call = alice.invite(&format!("sip:nobody@{DOMAIN}"));
    let unknown = alice.expect_status(404);
    alice.ack(&mut call, &unknown);
}

#[test]
fn contact_star_with_expires_0_removes_every_binding() {
    let server = Server::start(2, &data_dir("reg-star"), &["--auth", "none"]);
    let mut desk = Ua::udp("bob", server.addr());
    let mut mobile = Ua::tcp("bob", server.addr());
    register_ok(&mut desk, 3600);
    // The 200 lists every binding of the AOR with its expires, and a Date (§10.3
    // step 8).
    let r = mobile.register(1800);
    assert_eq!(r.status(), Some(200), "{r:?}");
    let contacts = r.values(HeaderName::Contact);
    assert_eq!(contacts.len(), 2, "{r:?}");
    for ua in [&desk, &mobile] {
        let c = contacts
            .iter()
            .find(|c| c.contains(&ua.contact_uri()))
            .unwrap_or_else(|| panic!("{} missing from {r:?}", ua.contact_uri()));
        assert!(c.contains(";expires="), "{c}");
    }
    assert!(r.header(HeaderName::Date).is_some(), "{r:?}");

    // §10.2.2: Contact: * with Expires: 0 removes them all.
    let r = desk.register_raw(Some("*"), Some(0), &[]);
    assert_eq!(r.status(), Some(200), "{r:?}");
    assert!(r.values(HeaderName::Contact).is_empty(), "{r:?}");
    let mut alice = Ua::udp("alice", server.addr());
    let mut call = alice.invite(&desk.aor());
    let gone = alice.recv_final();
    assert!(matches!(gone.status(), Some(404 | 480)), "{gone:?}");
    alice.ack(&mut call, &gone);
    desk.expect_silence(Duration::from_millis(200));
    mobile.expect_silence(Duration::from_millis(100));

    // §10.3 step 6: `*` with any other Expires (or with other contacts) is a 400.
    let r = desk.register_raw(Some("*"), Some(60), &[]);
    assert_eq!(r.status(), Some(400), "{r:?}");
}

#[test]
fn a_too_brief_expires_gets_423_with_min_expires() {
    let server = Server::start(
        2,
        &data_dir("reg-brief"),
        &["--auth", "none", "--min-expires", "60"],
    );
    let mut bob = Ua::udp("bob", server.addr());
    // §10.3 step 7: 423 Interval Too Brief, with Min-Expires.
    let r = bob.register(30);
    assert_eq!(r.status(), Some(423), "{r:?}");
    assert_eq!(r.header(HeaderName::MinExpires).as_deref(), Some("60"));
    // Nothing was bound.
    let mut alice = Ua::udp("alice", server.addr());
    let mut call = alice.invite(&bob.aor());
    let gone = alice.recv_final();
    assert!(matches!(gone.status(), Some(404 | 480)), "{gone:?}");
    alice.ack(&mut call, &gone);
    // The minimum itself is fine.
    register_ok(&mut bob, 60);
}

#[test]
fn phones_behind_nat_are_called_where_they_registered_from() {
    let server = Server::start(2, &data_dir("reg-nat"), &["--auth", "none"]);
    let mut alice = Ua::udp("alice", server.addr()).behind_nat();
    let mut bob = Ua::tcp("bob", server.addr()).behind_nat();
    register_ok(&mut alice, 3600);
    register_ok(&mut bob, 3600);
    let mut carol = Ua::udp("carol", server.addr());

    // UDP: to the REGISTER's source address and port, not the Contact's.
    let mut call = carol.invite(&alice.aor());
    let invite = alice.expect_request("INVITE");
    assert_eq!(invite.request_uri(), alice.contact_uri());
    alice.respond(&invite, 486, Some("a"));
    alice.expect_request("ACK");
    let busy = carol.expect_status(486);
    carol.ack(&mut call, &busy);

    // TCP: over the connection the REGISTER came on.
    let mut call = carol.invite(&bob.aor());
    let invite = bob.expect_request("INVITE");
    assert!(bob.on_own_connection(&invite), "{invite:?}");
    bob.respond(&invite, 486, Some("b"));
    let ack = bob.expect_request("ACK");
    assert!(bob.on_own_connection(&ack));
    let busy = carol.expect_status(486);
    carol.ack(&mut call, &busy);
}

/// A proxy, a phone `nat_ua` behind NAT registered with it, and carol, who is not.
fn nat_setup(tag: &str, nat_ua: fn(&str, std::net::SocketAddr) -> Ua) -> (Server, Ua, Ua) {
    let server = Server::start(2, &data_dir(tag), &["--auth", "none"]);
    let mut phone = nat_ua("alice", server.addr()).behind_nat();
    register_ok(&mut phone, 3600);
    let mut carol = Ua::udp("carol", server.addr());
    register_ok(&mut carol, 3600);
    (server, phone, carol)
}

#[test]
fn a_udp_phone_behind_nat_is_called_and_hung_up_on() {
    let (_server, mut phone, mut carol) = nat_setup("reg-natudp-in", Ua::udp);
    call_and_hang_up(&mut carol, &mut phone, false, true);
}

#[test]
fn a_tcp_phone_behind_nat_is_called_and_hung_up_on() {
    let (_server, mut phone, mut carol) = nat_setup("reg-nattcp-in", Ua::tcp);
    call_and_hang_up(&mut carol, &mut phone, false, true);
}

#[test]
fn a_udp_phone_behind_nat_calls_and_is_hung_up_on() {
    let (_server, mut phone, mut carol) = nat_setup("reg-natudp-out", Ua::udp);
    call_and_hang_up(&mut phone, &mut carol, false, false);
}

#[test]
fn a_tcp_phone_behind_nat_calls_and_is_hung_up_on() {
    let (_server, mut phone, mut carol) = nat_setup("reg-nattcp-out", Ua::tcp);
    call_and_hang_up(&mut phone, &mut carol, false, false);
}

/// `--domain 127.0.0.1`, proxy and phones on one host, auth on, the default core
/// count: a phone's Contact `sip:bob@127.0.0.1:PORT` shares the domain's IP, and a
/// BYE or re-INVITE to it is the peer's, not a user to look up (RFC 3261 §16.4,
/// §16.5). It used to be answered 404.
#[test]
fn in_dialog_requests_reach_the_phone_when_the_domain_is_an_ip_literal() {
    let (dir, users) = dir_with_users("ipdomain");
    let server = Server::start_in_domain(0, &dir, "127.0.0.1", &["--users", &users]);
    let mut alice = Ua::udp("alice", server.addr())
        .in_domain("127.0.0.1")
        .with_contact_user("alice-0x5d1e")
        .with_password("alice-secret");
    let mut bob = Ua::udp("bob", server.addr())
        .in_domain("127.0.0.1")
        .with_contact_user("bob-0x7f3a")
        .with_password("bob-secret");
    register_ok(&mut alice, 3600);
    register_ok(&mut bob, 3600);
    assert!(alice
        .contact_uri()
        .starts_with("sip:alice-0x5d1e@127.0.0.1:"));

    // Hung up by the caller, then by the callee, then a re-INVITE in the dialog.
    call_and_hang_up(&mut alice, &mut bob, false, true);
    call_and_hang_up(&mut alice, &mut bob, false, false);
    let (mut call, _answered) = common::ua::answered_call(&mut alice, &mut bob, false);
    alice.in_dialog(&mut call, "INVITE");
    let reinvite = bob.expect_request("INVITE");
    assert_eq!(reinvite.request_uri(), bob.contact_uri());
    bob.respond(&reinvite, 200, None);
    assert_eq!(alice.expect_status(200).cseq_method(), "INVITE");
}

/// Phones over TCP do not listen where their Contact points (Linphone, baresip
/// over TLS): every request to them, the INVITE and the rest of the dialog, must
/// take the connection they registered over (RFC 3261 §18.1.1, RFC 5626 §5.3).
/// coresip used to open a new connection to the Contact, and the call never
/// reached the callee.
#[test]
fn tcp_phones_without_a_listener_are_reached_on_their_connection() {
    let (dir, users) = dir_with_users("tcpflow");
    let server = Server::start(0, &dir, &["--users", &users]);
    let mut alice = Ua::tcp_client("alice", server.addr()).with_password("alice-secret");
    let mut bob = Ua::tcp_client("bob", server.addr()).with_password("bob-secret");
    register_ok(&mut alice, 3600);
    register_ok(&mut bob, 3600);

    call_and_hang_up(&mut alice, &mut bob, false, true);
    call_and_hang_up(&mut alice, &mut bob, false, false);
    call_and_hang_up(&mut bob, &mut alice, false, false);
    // A re-INVITE (hold) from the callee, then the caller hangs up.
    let (mut call, mut answered) = common::ua::answered_call(&mut alice, &mut bob, true);
    bob.in_dialog(&mut answered, "INVITE");
    let hold = alice.expect_request("INVITE");
    assert!(alice.on_own_connection(&hold));
    alice.respond(&hold, 200, None);
    assert_eq!(bob.expect_status(200).cseq_method(), "INVITE");
    let ok = common::ua::hang_up(&mut alice, &mut call, &mut bob);
    assert_eq!(ok.cseq_method(), "BYE");
}

/// A phone on TCP sends the rest of the dialog (the ACK for the 2xx, a BYE) over
/// a new connection when our Record-Route names another of our addresses than the
/// one it connected to (a wildcard listener advertises one interface address):
/// baresip over TCP and TLS. Which end such a request goes to is told by its From
/// tag; coresip used to tell it by the connection it came on, matched neither end
/// and sent the ACK to the callee's Contact, where nothing listens.
#[test]
fn in_dialog_requests_on_a_new_connection_reach_the_other_end() {
    let (dir, users) = dir_with_users("tcpnewconn");
    let server = Server::start(0, &dir, &["--users", &users]);
    let mut alice = Ua::tcp_client("alice", server.addr()).with_password("alice-secret");
    let mut bob = Ua::tcp_client("bob", server.addr()).with_password("bob-secret");
    register_ok(&mut alice, 3600);
    register_ok(&mut bob, 3600);

    let mut call = alice.invite(&bob.aor());
    let invite = bob.expect_request("INVITE");
    let mut answered = bob.accept(&invite);
    bob.respond(&invite, 200, Some(&answered.local_tag));
    let ok = alice.expect_status(200);
    alice.new_connection();
    alice.ack(&mut call, &ok);
    let ack = bob.expect_request("ACK");
    assert!(bob.on_own_connection(&ack));
    // The callee's re-INVITE, sent on a new connection too, reaches the caller.
    bob.new_connection();
    bob.in_dialog(&mut answered, "INVITE");
    let hold = alice.expect_request("INVITE");
    alice.respond(&hold, 200, None);
    assert_eq!(bob.expect_status(200).cseq_method(), "INVITE");
    let ok = common::ua::hang_up(&mut alice, &mut call, &mut bob);
    assert_eq!(ok.cseq_method(), "BYE");
}

/// A slow disk never delays a SIP message: the binding log is written and synced
/// on the blocking pool, not on the core that answers REGISTERs (the store's
/// writes are made to take 4 s each here, a test hook). The bindings still reach
/// the disk: a clean stop waits for the write, and a restart finds them.
#[test]
fn registrations_are_answered_while_the_store_is_stalled() {
    const STALL: Duration = Duration::from_secs(4);
    let dir = data_dir("reg-stall");
    let server = Server::start_with_env(
        1,
        &dir,
        &["--auth", "none", "--sync-interval", "100ms"],
        &[("CORESIP_TEST_STORE_STALL_MS", "4000")],
    );
    let mut bob = Ua::udp("bob", server.addr());
    register_ok(&mut bob, 3600);
    // The next sync round takes bob's binding and stalls on it.
    std::thread::sleep(Duration::from_millis(400));
    let stalled_until = std::time::Instant::now() + STALL - Duration::from_millis(500);
    let mut alice = Ua::udp("alice", server.addr());
    for _ in 0..5 {
        register_ok(&mut alice, 3600);
    }
    call_and_hang_up(&mut alice, &mut bob, false, true);
    assert!(
        std::time::Instant::now() < stalled_until,
        "REGISTERs and a call waited for the store"
    );
    let server = server.restart(1);
    assert!(
        server
            .log()
            .iter()
            .any(|l| l.contains("registrar store loaded") && l.contains("bindings=2")),
        "{:?}",
        server.log()
    );
}
