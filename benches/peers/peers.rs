//! coresip against published Rust SIP parsers, on identical bytes
//! (`benches/messages/`). Each group holds one message and one benchmark per
//! implementation, so criterion prints them side by side:
//!
//! - `peers_parse/<msg>/{coresip,rsip,rsipstack}`: bytes to a message value.
//! - `peers_fields/<msg>/{coresip,rsip,rsipstack}`: parse, then the fields a proxy
//!   reads from every message (top Via branch, CSeq number and method, Call-ID, From
//!   and To tags), through each library's own accessors.
//!
//! rsip (0.4) and rsipstack (0.7, its own copy of the rsip parser) parse the start
//! line and split the headers into owned `String`s; their typed values are built
//! when asked for. coresip keeps offsets into the buffer and decodes on demand.

use std::fmt::Display;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

#[path = "../messages/mod.rs"]
mod messages;

/// The implementations compared, in the order criterion runs them.
const PEERS: [&str; 3] = ["coresip", "rsip", "rsipstack"];

/// What a proxy reads from a message, as each library hands it out (borrowed where
/// the library allows it; the method through its `Display`).
struct Fields<'a> {
    branch: &'a [u8],
    cseq: u32,
    method: &'a dyn Display,
    call_id: &'a [u8],
    from_tag: &'a [u8],
    to_tag: Option<&'a [u8]>,
}

/// A method as coresip returns it: bytes of the message.
struct Bytes<'a>(&'a [u8]);

impl Display for Bytes<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&String::from_utf8_lossy(self.0))
    }
}

mod coresip_peer {
    use super::{Bytes, Fields};
    use coresip::sip::Message;

    pub fn parse(buf: &[u8]) -> Option<usize> {
        Message::parse(buf).ok().map(|m| m.headers().len())
    }

    pub fn fields<R>(buf: &[u8], f: impl FnOnce(Fields<'_>) -> R) -> Option<R> {
        let msg = Message::parse(buf).ok()?;
        let via = msg.via().ok()?;
        let cseq = msg.cseq().ok()?;
        let call_id = msg.call_id().ok()?;
        let from = msg.from().ok()?;
        let to = msg.to().ok()?;
        Some(f(Fields {
            branch: via.branch()?,
            cseq: cseq.seq,
            method: &Bytes(cseq.method.as_bytes()),
            call_id,
            from_tag: from.tag()?,
            to_tag: to.tag(),
        }))
    }
}

mod rsip_peer {
    use super::Fields;
    use rsip::prelude::*;
    use rsip::SipMessage;

    pub fn parse(buf: &[u8]) -> Option<usize> {
        SipMessage::try_from(buf)
            .ok()
            .map(|m| m.headers().iter().count())
    }

    pub fn fields<R>(buf: &[u8], f: impl FnOnce(Fields<'_>) -> R) -> Option<R> {
        let msg = SipMessage::try_from(buf).ok()?;
        let via = msg.via_header().ok()?.typed().ok()?;
        let cseq = msg.cseq_header().ok()?.typed().ok()?;
        let call_id = msg.call_id_header().ok()?;
        let from_tag = msg.from_header().ok()?.tag().ok()??;
        let to_tag = msg.to_header().ok()?.tag().ok()?;
        Some(f(Fields {
            branch: via.branch()?.value().as_bytes(),
            cseq: cseq.seq,
            method: &cseq.method,
            call_id: call_id.value().as_bytes(),
            from_tag: from_tag.value().as_bytes(),
            to_tag: to_tag.as_ref().map(|t| t.value().as_bytes()),
        }))
    }
}

mod rsipstack_peer {
    use super::Fields;
    use rsipstack::sip::headers::ToTypedHeader;
    use rsipstack::sip::{HasHeaders, HeadersExt, SipMessage};

    pub fn parse(buf: &[u8]) -> Option<usize> {
        SipMessage::try_from(buf).ok().map(|m| m.headers().len())
    }

    pub fn fields<R>(buf: &[u8], f: impl FnOnce(Fields<'_>) -> R) -> Option<R> {
        let msg = SipMessage::try_from(buf).ok()?;
        let via = msg.via_header().ok()?.typed().ok()?;
        let cseq = msg.cseq_header().ok()?.typed().ok()?;
        let call_id = msg.call_id_header().ok()?;
        let from_tag = msg.from_header().ok()?.tag().ok()??;
        let to_tag = msg.to_header().ok()?.tag().ok()?;
        Some(f(Fields {
            branch: via.branch()?.value().as_bytes(),
            cseq: cseq.seq,
            method: &cseq.method,
            call_id: call_id.value().as_bytes(),
            from_tag: from_tag.value().as_bytes(),
            to_tag: to_tag.as_ref().map(|t| t.value().as_bytes()),
        }))
    }
}

fn parse_with(peer: &str) -> fn(&[u8]) -> Option<usize> {
    match peer {
        "coresip" => coresip_peer::parse,
        "rsip" => rsip_peer::parse,
        "rsipstack" => rsipstack_peer::parse,
        _ => unreachable!("unknown peer {peer}"),
    }
}

/// The fields as text, for the check that every implementation reads the same
/// values before any of them is timed.
fn owned(f: Fields<'_>) -> [String; 6] {
    let s = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    [
        s(f.branch),
        f.cseq.to_string(),
        f.method.to_string(),
        s(f.call_id),
        s(f.from_tag),
        f.to_tag.map(s).unwrap_or_default(),
    ]
}

fn fields_owned(peer: &str, buf: &[u8]) -> Option<[String; 6]> {
    match peer {
        "coresip" => coresip_peer::fields(buf, owned),
        "rsip" => rsip_peer::fields(buf, owned),
        "rsipstack" => rsipstack_peer::fields(buf, owned),
        _ => unreachable!("unknown peer {peer}"),
    }
}

/// Hands the fields to the optimiser as opaque, so none of them is computed away.
fn consume(f: Fields<'_>) {
    black_box((f.branch, f.cseq, f.method, f.call_id, f.from_tag, f.to_tag));
}

fn parse(c: &mut Criterion) {
    for (name, bytes) in messages::ALL {
        let mut group = c.benchmark_group(format!("peers_parse/{name}"));
        group.throughput(Throughput::Elements(1));
        let reference = coresip_peer::parse(bytes).expect("coresip parses");
        for peer in PEERS {
            let parse = parse_with(peer);
            // Header counts differ only if a parser merged or dropped lines.
            assert_eq!(parse(bytes), Some(reference), "{peer} on {name}");
            group.bench_function(peer, |b| b.iter(|| parse(black_box(bytes))));
        }
        group.finish();
    }
}

fn fields(c: &mut Criterion) {
    for (name, bytes) in messages::ALL {
        let mut group = c.benchmark_group(format!("peers_fields/{name}"));
        group.throughput(Throughput::Elements(1));
        let reference = fields_owned("coresip", bytes).expect("coresip reads the fields");
        for peer in PEERS {
            assert_eq!(
                fields_owned(peer, bytes).as_ref(),
                Some(&reference),
                "{peer} on {name}"
            );
        }
        group.bench_function("coresip", |b| {
            b.iter(|| coresip_peer::fields(black_box(bytes), consume))
        });
        group.bench_function("rsip", |b| {
            b.iter(|| rsip_peer::fields(black_box(bytes), consume))
        });
        group.bench_function("rsipstack", |b| {
            b.iter(|| rsipstack_peer::fields(black_box(bytes), consume))
        });
        group.finish();
    }
}

criterion_group!(benches, parse, fields);
criterion_main!(benches);
