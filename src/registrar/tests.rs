//! REGISTER processing (RFC 3261 §10.3, RFC 3327, RFC 5626 §6) and persistence,
//! driven by real REGISTER bytes parsed with `Message::parse`.

use super::location::tests::source;
use super::*;
use crate::sip::message::Message;

pub(crate) const NOW: u64 = 1_700_000_000;

/// A REGISTER under construction.
#[derive(Clone)]
pub(crate) struct Req {
    pub(crate) ruri: String,
    pub(crate) to: String,
    pub(crate) call_id: String,
    pub(crate) cseq: u32,
    pub(crate) vias: usize,
    pub(crate) headers: Vec<String>,
}

pub(crate) fn req() -> Req {
    Req {
        ruri: "sip:example.com".into(),
        to: "Alice <sip:alice@example.com>".into(),
        call_id: "843817637684230@998sdasdh09".into(),
        cseq: 1826,
        vias: 1,
        headers: Vec::new(),
    }
}

impl Req {
    pub(crate) fn h(mut self, line: &str) -> Req {
        self.headers.push(line.into());
        self
    }

    pub(crate) fn cseq(mut self, n: u32) -> Req {
        self.cseq = n;
        self
    }

    pub(crate) fn call_id(mut self, c: &str) -> Req {
        self.call_id = c.into();
        self
    }

    pub(crate) fn bytes(&self) -> Vec<u8> {
        let mut s = format!("REGISTER {} SIP/2.0\r\n", self.ruri);
        for i in (0..self.vias).rev() {
            s += &format!(
                "Via: SIP/2.0/UDP 192.0.2.{}:5060;branch=z9hG4bKnashds{i}\r\n",
                10 + i
            );
        }
        s += "Max-Forwards: 70\r\n";
        s += &format!("To: {}\r\n", self.to);
        s += "From: Alice <sip:alice@example.com>;tag=456248\r\n";
        s += &format!("Call-ID: {}\r\n", self.call_id);
        s += &format!("CSeq: {} REGISTER\r\n", self.cseq);
        for h in &self.headers {
            s += h;
            s += "\r\n";
        }
        s += "Content-Length: 0\r\n\r\n";
        s.into_bytes()
    }
}

pub(crate) fn config() -> RegistrarConfig {
    RegistrarConfig {
        domains: vec!["example.com".into(), "192.0.2.1".into()],
        ..RegistrarConfig::default()
    }
}

pub(crate) fn registrar() -> Registrar {
    Registrar::new(config()).unwrap()
}

pub(crate) struct Answer {
    status: u16,
    changes: Vec<Change>,
    text: String,
}

impl Answer {
    pub(crate) fn lines(&self, name: &str) -> Vec<&str> {
        self.text
            .split("\r\n")
            .filter_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(": ")))
            .collect()
    }
}

pub(crate) fn send(r: &mut Registrar, now: u64, q: &Req) -> Answer {
    send_versioned(r, now, 0, q)
}

/// [`send`] as a replicating shard does: its writes carry `version`.
pub(crate) fn send_versioned(r: &mut Registrar, now: u64, version: u64, q: &Req) -> Answer {
    let bytes = q.bytes();
    let msg = Message::parse(&bytes).unwrap();
    let mut out = Vec::new();
    match r.on_register(now, version, &msg, source(), &mut out) {
        RegisterOutcome::Answered { status, changes } => {
            let text = String::from_utf8(out).unwrap();
            assert!(text.starts_with(&format!("SIP/2.0 {status} ")), "{text}");
            Message::parse(text.as_bytes()).unwrap();
            Answer {
                status,
                changes,
                text,
            }
        }
        other => panic!("{other:?}"),
    }
}

pub(crate) fn alice() -> AorKey {
    location::tests::aor("sip:alice@example.com")
}

pub(crate) fn contacts(r: &Registrar, now: u64) -> Vec<String> {
    r.location()
        .lookup(&alice(), now)
        .iter()
        .map(|b| String::from_utf8(b.contact().to_vec()).unwrap())
        .collect()
}

// --- step 1, 2, 5 ------------------------------------------------------------------

#[test]
fn register_foreign_domain_writes_nothing() {
    let mut r = registrar();
    let mut q = req().h("Contact: <sip:alice@192.0.2.10>");
    q.ruri = "sip:elsewhere.example.org".into();
    let bytes = q.bytes();
    let msg = Message::parse(&bytes).unwrap();
    let mut out = Vec::new();
    assert_eq!(
        r.on_register(NOW, 0, &msg, source(), &mut out),
        RegisterOutcome::ForeignDomain
    );
    assert!(out.is_empty());
    r.reject_foreign(&msg, &mut out);
    assert!(out.starts_with(b"SIP/2.0 403 "));
    assert!(r.location().is_empty());
}

#[test]
fn register_request_uri_domain_matches_case_insensitively_and_by_ip() {
    let mut r = registrar();
    let mut q = req().h("Contact: <sip:alice@192.0.2.10>");
    q.ruri = "sip:EXAMPLE.com:5060".into();
    assert_eq!(send(&mut r, NOW, &q).status, 200);
    q.ruri = "sip:192.0.2.1".into();
    assert_eq!(send(&mut r, NOW, &q.cseq(1827)).status, 200);
}

#[test]
fn register_not_a_register_writes_nothing() {
    let mut r = registrar();
    let bytes = b"OPTIONS sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nTo: <sip:a@example.com>\r\nFrom: <sip:a@example.com>;tag=1\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
    let msg = Message::parse(bytes).unwrap();
    let mut out = Vec::new();
    assert_eq!(
        r.on_register(NOW, 0, &msg, source(), &mut out),
        RegisterOutcome::NotRegister
    );
    assert!(out.is_empty());
}

#[test]
fn register_unsupported_require_gets_420() {
    // §10.3 step 2, §8.2.2.3.
    let mut r = registrar();
    let a = send(
        &mut r,
        NOW,
        &req()
            .h("Require: path, foo, bar")
            .h("Contact: <sip:alice@192.0.2.10>"),
    );
    assert_eq!(a.status, 420);
    assert_eq!(a.lines("Unsupported"), ["foo, bar"]);
    assert!(r.location().is_empty());
}

#[test]
fn register_to_outside_our_domains_gets_404() {
    // §10.3 step 5.
    let mut r = registrar();
    let mut q = req().h("Contact: <sip:alice@192.0.2.10>");
    q.to = "<sip:alice@elsewhere.example.org>".into();
    assert_eq!(send(&mut r, NOW, &q).status, 404);
}

#[test]
fn register_to_must_be_sip_uri() {
    let mut r = registrar();
    let mut q = req().h("Contact: <sip:alice@192.0.2.10>");
    q.to = "<tel:+15551234>".into();
    assert_eq!(send(&mut r, NOW, &q).status, 400);
}

#[test]
fn register_aor_is_canonical_to_uri() {
    // §10.3 step 5: parameters and port dropped, escapes resolved.
    let mut r = registrar();
    let mut q = req().h("Contact: <sip:alice@192.0.2.10>");
    q.to = "\"A\" <sip:%61lice@Example.COM:5060;user=phone>;tag=x".into();
    assert_eq!(send(&mut r, NOW, &q).status, 200);
    assert_eq!(contacts(&r, NOW), ["sip:alice@192.0.2.10"]);
    assert_eq!(
        aor_of_register(&Message::parse(&q.bytes()).unwrap()),
        Some(alice())
    );
}

// --- step 6: Contact * ---------------------------------------------------------------

#[test]
fn register_star_requires_expires_zero() {
    let mut r = registrar();
    send(&mut r, NOW, &req().h("Contact: <sip:alice@192.0.2.10>"));
    let a = send(
        &mut r,
        NOW,
        &req().cseq(1827).h("Contact: *").h("Expires: 3600"),
    );
    assert_eq!(a.status, 400);
    let a = send(&mut r, NOW, &req().cseq(1828).h("Contact: *"));
    assert_eq!(a.status, 400);
    assert_eq!(r.location().len(), 1);
}

#[test]
fn register_star_must_be_the_only_contact() {
    let mut r = registrar();
    let a = send(
        &mut r,
        NOW,
        &req()
            .h("Contact: *")
            .h("Contact: <sip:alice@192.0.2.10>")
            .h("Expires: 0"),
    );
    assert_eq!(a.status, 400);
    let a = send(
        &mut r,
        NOW,
        &req()
            .h("Contact: *, <sip:alice@192.0.2.10>")
            .h("Expires: 0"),
    );
    assert_eq!(a.status, 400);
}

#[test]
fn register_star_removes_all_bindings() {
    let mut r = registrar();
    send(
        &mut r,
        NOW,
        &req().h("Contact: <sip:alice@192.0.2.10>, <sip:alice@192.0.2.11>"),
    );
    send(
        &mut r,
        NOW,
        &req()
            .call_id("other@phone2")
            .cseq(1)
            .h("Contact: <sip:alice@192.0.2.12>"),
    );
    assert_eq!(r.location().len(), 3);
    let a = send(
        &mut r,
        NOW,
        &req().cseq(1827).h("Contact: *").h("Expires: 0"),
    );
    assert_eq!(a.status, 200);
    // One removal per binding (with replication, a binding another core accepted
    // meanwhile is not taken away by a `*` that did not know it).
    assert_eq!(a.changes.len(), 3);
    assert!(a
        .changes
        .iter()
        .all(|c| matches!(c, Change::Remove { aor, .. } if *aor == alice())));
    assert!(a.lines("Contact").is_empty());
    assert!(r.location().is_empty());
}

/// The version of a write accepted `micros` into second [`NOW`] by shard 0.
fn version_at(micros: u64) -> u64 {
    (NOW * 1_000_000 + micros) << 8
}

#[test]
fn a_register_older_than_a_removal_held_changes_nothing_to_persist_or_replicate() {
    // On several cores: another core removed alice's binding by a write this
    // core has applied (its tombstone), though this core's REGISTER was accepted
    // earlier by the clock. The later removal stands, and the REGISTER reports no
    // change: none for the store to log, none for the other cores.
    let mut r = registrar();
    let contact = "Contact: <sip:alice@192.0.2.10>";
    let a = send_versioned(&mut r, NOW, version_at(100), &req().h(contact));
    assert_eq!(a.changes.len(), 1);
    let held = r.location().bindings(&alice())[0].clone();
    r.location_mut().apply(&Change::Remove {
        aor: alice(),
        binding: held.with_version(version_at(300)),
    });
    let a = send_versioned(&mut r, NOW, version_at(200), &req().cseq(1827).h(contact));
    assert_eq!(a.status, 200);
    assert_eq!(a.changes, []);
    assert!(r.location().bindings(&alice()).is_empty());
}

#[test]
fn register_star_out_of_order_cseq_rejected() {
    // §10.3 step 6: same Call-ID, CSeq not higher: the update is aborted.
    let mut r = registrar();
    send(
        &mut r,
        NOW,
        &req().cseq(10).h("Contact: <sip:alice@192.0.2.10>"),
    );
    for cseq in [9, 10] {
        let a = send(
            &mut r,
            NOW,
            &req().cseq(cseq).h("Contact: *").h("Expires: 0"),
        );
        assert_eq!(a.status, 500);
        assert!(a.changes.is_empty());
    }
    assert_eq!(r.location().len(), 1);
    // Another Call-ID removes whatever its CSeq.
    let a = send(
        &mut r,
        NOW,
        &req()
            .call_id("new@x")
            .cseq(1)
            .h("Contact: *")
            .h("Expires: 0"),
    );
    assert_eq!(a.status, 200);
    assert!(r.location().is_empty());
}

// --- step 7: expiry ----------------------------------------------------------------------

pub(crate) fn expires_of(a: &Answer) -> Vec<String> {
    a.lines("Contact")
        .iter()
        .map(|c| {
            c.split(';')
                .find_map(|p| p.strip_prefix("expires="))
                .unwrap()
                .to_string()
        })
        .collect()
}

#[test]
fn register_expires_param_overrides_header() {
    let mut r = registrar();
    let a = send(
        &mut r,
        NOW,
        &req()
            .h("Contact: <sip:alice@192.0.2.10>;expires=120")
            .h("Expires: 600"),
    );
    assert_eq!(expires_of(&a), ["120"]);
}

#[test]
fn register_expires_header_applies_without_param() {
    let mut r = registrar();
    let a = send(
        &mut r,
        NOW,
        &req().h("Contact: <sip:alice@192.0.2.10>").h("Expires: 600"),
    );
    assert_eq!(expires_of(&a), ["600"]);
}

#[test]
fn register_default_expires_is_3600() {
    let mut r = registrar();
    let a = send(&mut r, NOW, &req().h("Contact: <sip:alice@192.0.2.10>"));
    assert_eq!(expires_of(&a), ["3600"]);
    assert_eq!(r.location().bindings(&alice())[0].expires_at, NOW + 3600);
}

#[test]
fn register_below_min_expires_gets_423_with_min_expires() {
    let mut r = registrar();
    let a = send(
        &mut r,
        NOW,
        &req().h("Contact: <sip:alice@192.0.2.10>;expires=30"),
    );
    assert_eq!(a.status, 423);
    assert_eq!(a.lines("Min-Expires"), ["60"]);
    assert!(r.location().is_empty());
    // The whole request fails, even with a valid contact first.
    let a = send(
        &mut r,
        NOW,
        &req().h("Contact: <sip:alice@192.0.2.11>, <sip:alice@192.0.2.10>;expires=30"),
    );
    assert_eq!(a.status, 423);
    assert!(r.location().is_empty());
}

#[test]
fn register_min_expires_only_below_one_hour() {
    // §10.3 step 7: 423 iff 0 < requested < 3600 and below the minimum.
    let mut r = Registrar::new(RegistrarConfig {
        min_expires: 7200,
        max_expires: 86400,
        ..config()
    })
    .unwrap();
    let a = send(
        &mut r,
        NOW,
        &req().h("Contact: <sip:alice@192.0.2.10>;expires=3600"),
    );
    assert_eq!(a.status, 200);
    assert_eq!(expires_of(&a), ["3600"]);
}

#[test]
fn register_max_expires_clamps() {
    let mut r = registrar();
    let a = send(
        &mut r,
        NOW,
        &req().h("Contact: <sip:alice@192.0.2.10>;expires=999999"),
    );
    assert_eq!(a.status, 200);
    assert_eq!(expires_of(&a), ["7200"]);
}

#[test]
fn register_bad_expires_rejected() {
    let mut r = registrar();
    assert_eq!(
        send(
            &mut r,
            NOW,
            &req().h("Contact: <sip:a@192.0.2.10>").h("Expires: soon")
        )
        .status,
        400
    );
    assert_eq!(
        send(
            &mut r,
            NOW,
            &req().h("Contact: <sip:a@192.0.2.10>;expires=-1")
        )
        .status,
        400
    );
}

#[test]
fn register_zero_expires_removes_binding() {
    let mut r = registrar();
    send(
        &mut r,
        NOW,
        &req().h("Contact: <sip:alice@192.0.2.10>, <sip:alice@192.0.2.11>"),
    );
    let a = send(
        &mut r,
        NOW,
        &req()
            .cseq(1827)
            .h("Contact: <sip:alice@192.0.2.10>;expires=0"),
    );
    assert_eq!(a.status, 200);
    assert_eq!(contacts(&r, NOW), ["sip:alice@192.0.2.11"]);
    assert!(matches!(a.changes.as_slice(), [Change::Remove { .. }]));
    // Removing an unknown contact changes nothing.
    let a = send(
        &mut r,
        NOW,
        &req()
            .cseq(1828)
            .h("Contact: <sip:alice@192.0.2.99>")
            .h("Expires: 0"),
    );
    assert_eq!(a.status, 200);
    assert!(a.changes.is_empty());
}

// --- step 7: binding comparison and Call-ID / CSeq -------------------------------------

#[test]
fn register_contact_equality_uses_uri_comparison() {
    // §10.3 step 7 searches the bindings "using the URI comparison rules" (§19.1.4).
    let mut r = registrar();
    send(
        &mut r,
        NOW,
        &req().h("Contact: <sip:alice@PC33.Example.com;transport=TCP>"),
    );
    let a = send(
        &mut r,
        NOW + 10,
        &req()
            .cseq(1827)
            .h("Contact: <sip:alice@pc33.example.com;transport=tcp>"),
    );
    assert_eq!(a.status, 200);
    assert_eq!(r.location().len(), 1);
    assert_eq!(
        r.location().bindings(&alice())[0].expires_at,
        NOW + 10 + 3600
    );
    // A port makes it a different URI.
    send(
        &mut r,
        NOW,
        &req()
            .cseq(1828)
            .h("Contact: <sip:alice@pc33.example.com:5060;transport=tcp>"),
    );
    assert_eq!(r.location().len(), 2);
}

#[test]
fn register_out_of_order_cseq_rejected() {
    // §10.3 step 7: same Call-ID and a CSeq not higher: aborted, 500.
    let mut r = registrar();
    send(
        &mut r,
        NOW,
        &req().cseq(10).h("Contact: <sip:alice@192.0.2.10>"),
    );
    for cseq in [9, 10] {
        let a = send(
            &mut r,
            NOW + 5,
            &req()
                .cseq(cseq)
                .h("Contact: <sip:alice@192.0.2.10>;expires=0"),
        );
        assert_eq!(a.status, 500);
        assert!(a.text.starts_with("SIP/2.0 500 Out of Order Request\r\n"));
    }
    assert_eq!(r.location().len(), 1);
    let a = send(
        &mut r,
        NOW + 5,
        &req().cseq(11).h("Contact: <sip:alice@192.0.2.10>"),
    );
    assert_eq!(a.status, 200);
    assert_eq!(r.location().bindings(&alice())[0].cseq, 11);
}

#[test]
fn register_other_call_id_updates_whatever_its_cseq() {
    let mut r = registrar();
    send(
        &mut r,
        NOW,
        &req().cseq(10).h("Contact: <sip:alice@192.0.2.10>"),
    );
    let a = send(
        &mut r,
        NOW + 5,
        &req()
            .call_id("rebooted@phone")
            .cseq(1)
            .h("Contact: <sip:alice@192.0.2.10>"),
    );
    assert_eq!(a.status, 200);
    let b = &r.location().bindings(&alice())[0];
    assert_eq!((b.call_id(), b.cseq), (&b"rebooted@phone"[..], 1));
}

#[test]
fn register_is_atomic() {
    // §10.3: processed completely or not at all.
    let mut r = registrar();
    send(
        &mut r,
        NOW,
        &req().cseq(10).h("Contact: <sip:alice@192.0.2.10>"),
    );
    let a = send(
        &mut r,
        NOW,
        &req()
            .cseq(10)
            .h("Contact: <sip:alice@192.0.2.20>, <sip:alice@192.0.2.10>;expires=0"),
    );
    assert_eq!(a.status, 500);
    assert_eq!(contacts(&r, NOW), ["sip:alice@192.0.2.10"]);
}

#[test]
fn register_without_contact_is_a_query() {
    // §10.3 step 6 → step 8.
    let mut r = registrar();
    send(&mut r, NOW, &req().h("Contact: <sip:alice@192.0.2.10>"));
    let a = send(&mut r, NOW + 100, &req().cseq(1827));
    assert_eq!(a.status, 200);
    assert!(a.changes.is_empty());
    assert_eq!(a.lines("Contact"), ["<sip:alice@192.0.2.10>;expires=3500"]);
}

#[test]
fn register_bad_contact_rejected() {
    let mut r = registrar();
    assert_eq!(
        send(&mut r, NOW, &req().h("Contact: <sip:alice@192.0.2.10")).status,
        400
    );
    assert_eq!(send(&mut r, NOW, &req().h("Contact: <sip:@@>")).status, 400);
}

// --- q -----------------------------------------------------------------------------

#[test]
fn register_q_values_order_and_echo() {
    let mut r = registrar();
    let a = send(
        &mut r,
        NOW,
        &req().h("Contact: <sip:alice@192.0.2.10>;q=0.5, <sip:alice@192.0.2.11>;q=0.9, <sip:alice@192.0.2.12>;q=0.075"),
    );
    assert_eq!(
        a.lines("Contact"),
        [
            "<sip:alice@192.0.2.11>;expires=3600;q=0.9",
            "<sip:alice@192.0.2.10>;expires=3600;q=0.5",
            "<sip:alice@192.0.2.12>;expires=3600;q=0.075",
        ]
    );
    assert_eq!(
        contacts(&r, NOW),
        [
            "sip:alice@192.0.2.11",
            "sip:alice@192.0.2.10",
            "sip:alice@192.0.2.12"
        ]
    );
}

#[test]
fn register_bad_q_rejected() {
    let mut r = registrar();
    assert_eq!(
        send(
            &mut r,
            NOW,
            &req().h("Contact: <sip:alice@192.0.2.10>;q=1.5")
        )
        .status,
        400
    );
}

// --- max contacts ---------------------------------------------------------------------

#[test]
fn register_max_contacts_rejects_excess() {
    let mut r = Registrar::new(RegistrarConfig {
        max_contacts: 2,
        ..config()
    })
    .unwrap();
    send(
        &mut r,
        NOW,
        &req().h("Contact: <sip:alice@192.0.2.10>, <sip:alice@192.0.2.11>"),
    );
    let a = send(
        &mut r,
        NOW,
        &req().cseq(1827).h("Contact: <sip:alice@192.0.2.12>"),
    );
    assert_eq!(a.status, 403);
    assert!(a
        .text
        .starts_with("SIP/2.0 403 Too Many Registered Contacts\r\n"));
    assert_eq!(r.location().len(), 2);
    // Replacing one within the limit is fine.
    let a = send(
        &mut r,
        NOW,
        &req()
            .cseq(1828)
            .h("Contact: <sip:alice@192.0.2.10>;expires=0, <sip:alice@192.0.2.12>"),
    );
    assert_eq!(a.status, 200);
}

#[test]
fn register_max_contacts_replace_oldest() {
    let mut r = Registrar::new(RegistrarConfig {
        max_contacts: 2,
        replace_oldest: true,
        ..config()
    })
    .unwrap();
    send(&mut r, NOW, &req().h("Contact: <sip:alice@192.0.2.10>"));
    send(
        &mut r,
        NOW,
        &req().cseq(1827).h("Contact: <sip:alice@192.0.2.11>"),
    );
    // Refreshing the oldest keeps its age.
    send(
        &mut r,
        NOW + 1,
        &req().cseq(1828).h("Contact: <sip:alice@192.0.2.10>"),
    );
    let a = send(
        &mut r,
        NOW + 2,
        &req().cseq(1829).h("Contact: <sip:alice@192.0.2.12>"),
    );
    assert_eq!(a.status, 200);
    assert!(
        matches!(&a.changes[..], [Change::Put { .. }, Change::Remove { binding, .. }] if binding.contact() == b"sip:alice@192.0.2.10")
    );
    let mut got = contacts(&r, NOW + 2);
    got.sort();
    assert_eq!(got, ["sip:alice@192.0.2.11", "sip:alice@192.0.2.12"]);
    // A request that alone exceeds the limit still fails.
    let a = send(
        &mut r,
        NOW + 3,
        &req()
            .cseq(1830)
            .h("Contact: <sip:alice@192.0.2.13>, <sip:alice@192.0.2.14>, <sip:alice@192.0.2.15>"),
    );
    assert_eq!(a.status, 403);
}

// --- RFC 5626 ---------------------------------------------------------------------------

pub(crate) const INSTANCE: &str = "\"<urn:uuid:00000000-0000-1000-8000-000A95A0E128>\"";

#[test]
fn register_instance_and_reg_id_replace_old_binding() {
    // RFC 5626 §6: the binding is AOR + instance + reg-id; the URI is not compared.
    let mut r = registrar();
    let c1 = format!(
        "Contact: <sip:alice@192.0.2.10:5060;transport=tcp>;+sip.instance={INSTANCE};reg-id=1"
    );
    let c2 = format!(
        "Contact: <sip:alice@198.51.100.7:40000;transport=tcp>;+sip.instance={INSTANCE};reg-id=1"
    );
    let c3 = format!(
        "Contact: <sip:alice@198.51.100.7:40000;transport=tcp>;+sip.instance={INSTANCE};reg-id=2"
    );
    send(&mut r, NOW, &req().h("Supported: outbound, path").h(&c1));
    let a = send(
        &mut r,
        NOW,
        &req()
            .call_id("after-reboot@x")
            .cseq(1)
            .h("Supported: outbound")
            .h(&c2),
    );
    assert_eq!(a.status, 200);
    assert_eq!(
        contacts(&r, NOW),
        ["sip:alice@198.51.100.7:40000;transport=tcp"]
    );
    // RFC 5626 §6: Require: outbound when the UA supports it and a reg-id was used.
    assert_eq!(a.lines("Require"), ["outbound"]);
    assert_eq!(
        a.lines("Contact"),
        ["<sip:alice@198.51.100.7:40000;transport=tcp>;expires=3600;+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-000A95A0E128>\";reg-id=1"]
    );
    // Another reg-id is another flow: a second binding.
    send(&mut r, NOW, &req().call_id("after-reboot@x").cseq(2).h(&c3));
    assert_eq!(r.location().len(), 2);
    let b = &r.location().bindings(&alice())[0];
    assert_eq!(
        b.instance(),
        Some(&b"<urn:uuid:00000000-0000-1000-8000-000A95A0E128>"[..])
    );
    assert_eq!(b.reg_id(), Some(1));
}

#[test]
fn register_reg_id_without_instance_is_ignored() {
    let mut r = registrar();
    send(
        &mut r,
        NOW,
        &req().h("Contact: <sip:alice@192.0.2.10>;reg-id=1"),
    );
    let a = send(
        &mut r,
        NOW,
        &req()
            .cseq(1827)
            .h("Contact: <sip:alice@192.0.2.11>;reg-id=1"),
    );
    assert_eq!(a.status, 200);
    assert_eq!(r.location().len(), 2);
    assert_eq!(r.location().bindings(&alice())[0].reg_id(), None);
}

#[test]
fn register_multiple_contacts_with_reg_id_rejected() {
    // RFC 5626 §6: one flow per registration with a reg-id.
    let mut r = registrar();
    let a = send(
        &mut r,
        NOW,
        &req().h(&format!(
            "Contact: <sip:alice@192.0.2.10>;+sip.instance={INSTANCE};reg-id=1, <sip:alice@192.0.2.11>"
        )),
    );
    assert_eq!(a.status, 400);
}

#[test]
fn register_reg_id_past_first_hop_needs_ob_path() {
    // RFC 5626 §6: not the first hop and no `ob` in the first Path URI.
    let mut r = registrar();
    let contact = format!("Contact: <sip:alice@192.0.2.10>;+sip.instance={INSTANCE};reg-id=1");
    let mut q = req().h("Supported: outbound, path").h(&contact);
    q.vias = 2;
    assert_eq!(send(&mut r, NOW, &q).status, 439);
    // Without Supported: outbound the reg-id is ignored instead.
    let mut q = req().h(&contact);
    q.vias = 2;
    let a = send(&mut r, NOW, &q);
    assert_eq!(a.status, 200);
    assert!(a.lines("Require").is_empty());
    assert_eq!(r.location().bindings(&alice())[0].reg_id(), None);
    // With an `ob` Path from the edge proxy, outbound applies.
    let mut q = req()
        .cseq(1827)
        .h("Supported: outbound, path")
        .h("Path: <sip:edge.example.com;lr;ob>")
        .h(&contact);
    q.vias = 2;
    let a = send(&mut r, NOW, &q);
    assert_eq!(a.status, 200);
    assert_eq!(a.lines("Require"), ["outbound"]);
}

// --- Path (RFC 3327) ---------------------------------------------------------------------

#[test]
fn register_path_stored_in_order_and_echoed() {
    let mut r = registrar();
    let a = send(
        &mut r,
        NOW,
        &req()
            .h("Supported: path")
            .h("Path: <sip:p1.example.com;lr>")
            .h("Path: <sip:p2.example.com;lr>, <sip:p3.example.com;lr>")
            .h("Contact: <sip:alice@192.0.2.10>"),
    );
    assert_eq!(a.status, 200);
    assert_eq!(
        a.lines("Path"),
        ["<sip:p1.example.com;lr>, <sip:p2.example.com;lr>, <sip:p3.example.com;lr>"]
    );
    assert_eq!(a.lines("Supported"), ["path"]);
    let b = &r.location().bindings(&alice())[0];
    let path: Vec<_> = b.path_values().collect();
    assert_eq!(
        path,
        [
            &b"<sip:p1.example.com;lr>"[..],
            b"<sip:p2.example.com;lr>",
            b"<sip:p3.example.com;lr>"
        ]
    );
}

#[test]
fn register_path_without_supported_path_gets_420() {
    // RFC 3327 §5.3's recommended policy.
    let mut r = registrar();
    let q = req()
        .h("Path: <sip:p1.example.com;lr>")
        .h("Contact: <sip:alice@192.0.2.10>");
    let a = send(&mut r, NOW, &q);
    assert_eq!(a.status, 420);
    assert_eq!(a.lines("Unsupported"), ["path"]);
    let mut r = Registrar::new(RegistrarConfig {
        path_requires_supported: false,
        ..config()
    })
    .unwrap();
    assert_eq!(send(&mut r, NOW, &q).status, 200);
}

// --- step 8: the 200 -----------------------------------------------------------------------

#[test]
fn register_200_lists_every_binding_with_remaining_expires_and_date() {
    let mut r = registrar();
    send(
        &mut r,
        NOW,
        &req().h("Contact: <sip:alice@192.0.2.10>;expires=600"),
    );
    let a = send(
        &mut r,
        NOW + 100,
        &req()
            .call_id("phone2@x")
            .cseq(1)
            .h("Contact: <sip:alice@192.0.2.11>"),
    );
    assert_eq!(a.status, 200);
    let mut listed = a.lines("Contact");
    listed.sort();
    assert_eq!(
        listed,
        [
            "<sip:alice@192.0.2.10>;expires=500",
            "<sip:alice@192.0.2.11>;expires=3600"
        ]
    );
    assert_eq!(a.lines("Date"), ["Tue, 14 Nov 2023 22:15:00 GMT"]);
    // §8.2.6.2: a To tag; the request's Via, From, Call-ID, CSeq copied.
    let to = a.lines("To")[0];
    assert!(to.starts_with("Alice <sip:alice@example.com>;tag="), "{to}");
    assert_eq!(a.lines("Call-ID"), ["phone2@x"]);
    // §10.3: no Record-Route in a REGISTER response.
    assert!(a.lines("Record-Route").is_empty());
}

#[test]
fn register_source_is_stored() {
    let mut r = registrar();
    send(&mut r, NOW, &req().h("Contact: <sip:alice@10.0.0.5:5060>"));
    let b = &r.location().bindings(&alice())[0];
    assert_eq!(b.source, source());
}

#[test]
fn register_expiry_removes_bindings() {
    let mut r = registrar();
    send(
        &mut r,
        NOW,
        &req().h("Contact: <sip:alice@192.0.2.10>;expires=600, <sip:alice@192.0.2.11>"),
    );
    assert_eq!(r.location_mut().expire(NOW + 599), 0);
    assert_eq!(r.location_mut().expire(NOW + 600), 1);
    assert_eq!(contacts(&r, NOW + 600), ["sip:alice@192.0.2.11"]);
    // A lookup never returns an expired binding, swept or not.
    assert!(contacts(&r, NOW + 3600).is_empty());
    let a = send(&mut r, NOW + 3600, &req().cseq(1900));
    assert!(a.lines("Contact").is_empty());
}

#[test]
fn register_changes_replay_to_the_same_state() {
    let mut r = registrar();
    let mut replica = Location::new();
    let script = [
        req().h("Contact: <sip:alice@192.0.2.10>, <sip:alice@192.0.2.11>;q=0.5"),
        req()
            .cseq(1827)
            .h("Contact: <sip:alice@192.0.2.10>;expires=0"),
        req().call_id("b@x").h(&format!(
            "Contact: <sip:alice@192.0.2.12>;+sip.instance={INSTANCE};reg-id=1"
        )),
        req().call_id("b@x").cseq(1827).h(&format!(
            "Contact: <sip:alice@192.0.2.13>;+sip.instance={INSTANCE};reg-id=1"
        )),
    ];
    for q in &script {
        for c in send(&mut r, NOW, q).changes {
            replica.apply(&c);
        }
    }
    assert_eq!(replica.bindings(&alice()), r.location().bindings(&alice()));
    assert_eq!(replica.len(), 2);
}

#[test]
fn http_date_is_rfc1123() {
    let mut out = Vec::new();
    register::write_http_date(784_111_777, &mut out);
    assert_eq!(out, b"Sun, 06 Nov 1994 08:49:37 GMT");
    out.clear();
    register::write_http_date(0, &mut out);
    assert_eq!(out, b"Thu, 01 Jan 1970 00:00:00 GMT");
    out.clear();
    register::write_http_date(951_782_400, &mut out);
    assert_eq!(out, b"Tue, 29 Feb 2000 00:00:00 GMT");
    out.clear();
    register::write_http_date(4_102_444_799, &mut out);
    assert_eq!(out, b"Thu, 31 Dec 2099 23:59:59 GMT");
}

#[test]
fn register_date_follows_the_clock_second_by_second() {
    // RFC 3261 §10.3 step 8: each 200 carries the Date of its own second, also
    // when the registrar reuses the text written for an earlier 200.
    let mut r = registrar();
    for (i, now) in [NOW, NOW, NOW + 1, NOW + 1, NOW + 86_400, NOW]
        .into_iter()
        .enumerate()
    {
        let q = req()
            .cseq(i as u32 + 1)
            .h("Contact: <sip:alice@192.0.2.10>");
        let a = send(&mut r, now, &q);
        let mut want = Vec::new();
        register::write_http_date(now, &mut want);
        assert_eq!(a.lines("Date"), [std::str::from_utf8(&want).unwrap()]);
    }
}

#[test]
fn register_contact_listed_twice_is_not_out_of_order() {
    let mut r = registrar();
    let a = send(
        &mut r,
        NOW,
        &req().h("Contact: <sip:alice@192.0.2.10>;expires=100, <sip:alice@192.0.2.10>;expires=200"),
    );
    assert_eq!(a.status, 200);
    assert_eq!(expires_of(&a), ["200"]);
}
