//! Criterion benchmarks of the zero-copy SIP message view (coresip issue 2).
//!
//! - `parse/<msg>`: [`Message::parse`] alone, the memchr scan that every received
//!   datagram pays.
//! - `proxy_fields/<msg>`: parse plus what a proxy reads from every message before it
//!   can route or match a transaction: the top Via branch, CSeq, Call-ID and the From
//!   and To tags (RFC 3261 §16.3, §17.2.3).
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

use coresip::sip::{HeaderName, Message, Params};
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

/// Parses `buf` and decodes the fields a proxy reads, with the message view and
/// [`Params`].
fn proxy_fields(buf: &[u8]) -> Option<ProxyFields<'_>> {
    let msg = Message::parse(buf).ok()?;
    let branch = Params::new(msg.top_via()?).value(b"branch")?;
    // CSeq = 1*DIGIT LWS Method (RFC 3261 §20.16)
    let cseq = msg.header(HeaderName::CSeq)?;
    let sp = cseq.iter().position(|&b| b == b' ' || b == b'\t')?;
    let number = coresip::sip::text::parse_u32(&cseq[..sp])?;
    let cseq_method = coresip::sip::text::trim(&cseq[sp..]);
    let call_id = msg.header(HeaderName::CallId)?;
    let from_tag = Params::new(msg.header(HeaderName::From)?).value(b"tag")?;
    let to_tag = Params::new(msg.header(HeaderName::To)?).value(b"tag");
    Some(ProxyFields {
        branch,
        cseq: number,
        cseq_method,
        call_id,
        from_tag,
        to_tag,
    })
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

criterion_group!(benches, parse, fields);
criterion_main!(benches);
