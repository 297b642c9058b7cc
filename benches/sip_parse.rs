//! Criterion benchmarks of the zero-copy SIP message view (coresip issue 2).
//!
//! - `parse/<msg>`: [`Message::parse`] alone, the memchr scan that every received
//!   datagram pays.
//! - `proxy_fields/<msg>`: parse plus what a proxy reads from every message before it
//!   can route or match a transaction: the top Via branch, CSeq, Call-ID and the From
//!   and To tags (RFC 3261 §16.3, §17.2.3).
//! - `check/<msg>`: parse, [`Message::check`] (every Via, From/To with their URIs,
//!   the Request-URI, Routes, Contacts, …) and then the proxy fields: the decoding
//!   the proxy core does for every message it accepts.
//! - `decode/via`, `decode/name_addr`, `decode/uri`: one typed decoder over every
//!   value of its kind in the four messages (the Vias; the From, To, Contact and
//!   Record-Route values; the Request-URIs and the URIs of those name-addrs).
//!   Throughput is one element per decoded value.
//! - `splice/invite`: forwarding a parsed INVITE (RFC 3261 §16.6): our Via and
//!   Record-Route on top, Max-Forwards decremented, the Request-URI replaced by the
//!   target's contact, into a reused output buffer. `splice/ringing_180` and
//!   `splice/ok_200`: forwarding a response without our Via (§16.7 step 3).
//!
//! The bytes are the ones in `benches/messages/`, shared with the peer comparison in
//! `benches/peers/`. `benches/report` runs both and prints the table for the README.
//! `cargo bench --bench sip_parse -- --test` runs every routine once and checks the
//! fields it extracts.
//!
//! Throughput is counted in messages; criterion 0.7 (the last on the crate's
//! rust-version) reports one unit per benchmark, so `benches/report` derives bytes/s
//! from the message sizes.

use std::hint::black_box;

use coresip::sip::writer::{forward_request, forward_response, RequestEdits};
use coresip::sip::{HeaderName, Message, NameAddr, Uri, Via};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

#[path = "messages/mod.rs"]
mod messages;

/// What a proxy needs from every message to find or create its transaction and to
/// route the message: each a slice of the receive buffer, nothing copied.
#[derive(Debug, PartialEq, Eq)]
struct ProxyFields<'a> {
    branch: &'a [u8],
    cseq: u32,
    cseq_method: &'a [u8],
    call_id: &'a [u8],
    from_tag: &'a [u8],
    to_tag: Option<&'a [u8]>,
}

/// Parses `buf` and decodes the fields a proxy reads through the typed decoders,
/// which also validate what they decode (the whole top via-parm, CSeq, Call-ID, the
/// From and To name-addrs).
///
/// Never inlined, here and in the other routines, so that callgrind can attribute
/// instructions per call to them (`valgrind --tool=callgrind` on the bench binary
/// with `--profile-time`).
#[inline(never)]
fn proxy_fields(buf: &[u8]) -> Option<ProxyFields<'_>> {
    let msg = Message::parse(buf).ok()?;
    let via = msg.via().ok()?;
    let cseq = msg.cseq().ok()?;
    Some(ProxyFields {
        branch: via.branch()?,
        cseq: cseq.seq,
        cseq_method: cseq.method.as_bytes(),
        call_id: msg.call_id().ok()?,
        from_tag: msg.from().ok()?.tag()?,
        to_tag: msg.to().ok()?.tag(),
    })
}

/// [`Message::check`], then the proxy fields: what the proxy core decodes from every
/// message before it acts on it.
#[inline(never)]
fn checked_fields(buf: &[u8]) -> Option<ProxyFields<'_>> {
    Message::parse(buf).ok()?.check().ok()?;
    proxy_fields(buf)
}

/// The fields each benchmark message must yield: a routine that stops decoding
/// them fails here instead of getting faster.
fn expected(name: &str) -> ProxyFields<'static> {
    let call = &b"3848276298220188511@atlanta.example.com"[..];
    match name {
        "invite" => ProxyFields {
            branch: b"z9hG4bK74bf9a1b2c3d4e5f",
            cseq: 31862,
            cseq_method: b"INVITE",
            call_id: call,
            from_tag: b"9fxced76sl",
            to_tag: None,
        },
        "register" => ProxyFields {
            branch: b"z9hG4bKnashds7e4a1f",
            cseq: 1826,
            cseq_method: b"REGISTER",
            call_id: b"843817637684230@998sdasdh09",
            from_tag: b"456248",
            to_tag: None,
        },
        "ringing_180" | "ok_200" => ProxyFields {
            branch: b"z9hG4bK2d4790.1c3e5a",
            cseq: 31862,
            cseq_method: b"INVITE",
            call_id: call,
            from_tag: b"9fxced76sl",
            to_tag: Some(b"8321234356"),
        },
        _ => unreachable!("no expectations for {name}"),
    }
}

fn parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse");
    for (name, bytes) in messages::ALL {
        let msg = Message::parse(bytes).expect("benchmark message parses");
        assert_eq!(msg.as_bytes(), bytes, "{name}: whole message consumed");
        group.throughput(Throughput::Elements(1));
        group.bench_function(name, |b| {
            b.iter(|| Message::parse(black_box(bytes)).map(|m| m.headers().len()))
        });
    }
    group.finish();
}

fn fields(c: &mut Criterion) {
    let mut group = c.benchmark_group("proxy_fields");
    for (name, bytes) in messages::ALL {
        assert_eq!(proxy_fields(bytes), Some(expected(name)), "{name}");
        group.throughput(Throughput::Elements(1));
        group.bench_function(name, |b| b.iter(|| proxy_fields(black_box(bytes))));
    }
    group.finish();
}

fn check(c: &mut Criterion) {
    let mut group = c.benchmark_group("check");
    for (name, bytes) in messages::ALL {
        assert_eq!(checked_fields(bytes), Some(expected(name)), "{name}");
        group.throughput(Throughput::Elements(1));
        group.bench_function(name, |b| b.iter(|| checked_fields(black_box(bytes))));
    }
    group.finish();
}

/// The values each `decode/*` benchmark decodes, taken from all four messages.
struct DecoderInputs {
    vias: Vec<&'static [u8]>,
    name_addrs: Vec<&'static [u8]>,
    uris: Vec<&'static [u8]>,
}

fn decoder_inputs() -> DecoderInputs {
    let mut inputs = DecoderInputs {
        vias: Vec::new(),
        name_addrs: Vec::new(),
        uris: Vec::new(),
    };
    for (_, bytes) in messages::ALL {
        let msg = Message::parse(bytes).expect("benchmark message parses");
        inputs.vias.extend(msg.values(HeaderName::Via));
        inputs.uris.extend(msg.request_uri());
        for name in [
            HeaderName::From,
            HeaderName::To,
            HeaderName::Contact,
            HeaderName::RecordRoute,
        ] {
            for value in msg.values(name) {
                inputs.name_addrs.push(value);
                let addr = NameAddr::parse(value).expect("benchmark name-addr parses");
                inputs.uris.push(addr.uri);
            }
        }
    }
    inputs
}

/// Decodes every value; the count of successes keeps the work observable.
#[inline(never)]
fn decode_vias(values: &[&[u8]]) -> usize {
    values.iter().filter(|v| Via::parse(v).is_ok()).count()
}

#[inline(never)]
fn decode_name_addrs(values: &[&[u8]]) -> usize {
    values.iter().filter(|v| NameAddr::parse(v).is_ok()).count()
}

#[inline(never)]
fn decode_uris(values: &[&[u8]]) -> usize {
    values.iter().filter(|v| Uri::parse(v).is_ok()).count()
}

fn decode(c: &mut Criterion) {
    let inputs = decoder_inputs();
    let mut group = c.benchmark_group("decode");
    for (name, values, routine) in [
        ("via", &inputs.vias, decode_vias as fn(&[&[u8]]) -> usize),
        ("name_addr", &inputs.name_addrs, decode_name_addrs),
        ("uri", &inputs.uris, decode_uris),
    ] {
        assert_eq!(routine(values), values.len(), "{name}: every value decodes");
        group.throughput(Throughput::Elements(values.len() as u64));
        group.bench_function(name, |b| b.iter(|| routine(black_box(values))));
    }
    group.finish();
}

/// The edits a record-routing proxy makes to the INVITE it forwards.
const OUR_VIA: &[u8] = b"SIP/2.0/UDP 198.51.100.1:5060;branch=z9hG4bK.s0.7f3a9c2e41d8b6";
const OUR_RR: &[&[u8]] = &[b"<sip:198.51.100.1:5060;lr>"];
const TARGET: &[u8] = b"sip:bob@192.0.2.4:5060;transport=udp";

/// Forwards `msg` the way the proxy core does: Max-Forwards decremented (70 when
/// absent, RFC 3261 §16.6 step 3), our Via and Record-Route, the Request-URI
/// retargeted.
fn forward_invite(msg: &Message, out: &mut Vec<u8>) -> Option<()> {
    let mf = msg.max_forwards().ok()?.unwrap_or(70).checked_sub(1)?;
    let edits = RequestEdits {
        request_uri: Some(TARGET),
        via: Some(OUR_VIA),
        record_route: OUR_RR,
        max_forwards: Some(mf),
        ..RequestEdits::default()
    };
    out.clear();
    forward_request(msg, &edits, out).ok()
}

/// Checks that the forwarded INVITE carries every edit and the body unchanged.
fn check_forwarded_invite(original: &Message, out: &[u8]) {
    let fwd = Message::parse(out).expect("forwarded INVITE parses");
    assert_eq!(fwd.request_uri(), Some(TARGET));
    assert_eq!(fwd.top_via(), Some(OUR_VIA));
    assert_eq!(fwd.values(HeaderName::Via).count(), 2);
    assert_eq!(fwd.header(HeaderName::RecordRoute), Some(OUR_RR[0]));
    assert_eq!(fwd.values(HeaderName::RecordRoute).count(), 2);
    assert_eq!(fwd.max_forwards(), Ok(Some(69)));
    assert_eq!(fwd.body(), original.body());
}

fn splice(c: &mut Criterion) {
    let mut group = c.benchmark_group("splice");
    group.throughput(Throughput::Elements(1));
    // Sized once, as the shard's reused send buffer is.
    let mut out = Vec::with_capacity(4096);

    let invite = Message::parse(messages::INVITE).expect("INVITE parses");
    forward_invite(&invite, &mut out).expect("INVITE forwards");
    check_forwarded_invite(&invite, &out);
    group.bench_function("invite", |b| {
        b.iter(|| forward_invite(black_box(&invite), &mut out))
    });

    for (name, bytes) in [
        ("ringing_180", messages::RINGING_180),
        ("ok_200", messages::OK_200),
    ] {
        let resp = Message::parse(bytes).expect("response parses");
        out.clear();
        forward_response(&resp, &mut out).expect("response forwards");
        let fwd = Message::parse(&out).expect("forwarded response parses");
        assert_eq!(fwd.values(HeaderName::Via).count(), 1, "{name}");
        assert_eq!(
            fwd.via().ok().and_then(|v| v.branch()),
            Some(&b"z9hG4bK74bf9a1b2c3d4e5f"[..])
        );
        group.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                forward_response(black_box(&resp), &mut out)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, parse, fields, check, decode, splice);
criterion_main!(benches);
