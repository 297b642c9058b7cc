//! RFC 4475 (SIP torture test messages), every message of §3, bit-exact from the
//! RFC's Appendix A archive (`tests/rfc4475/*.dat`), plus IPv6 references in URIs
//! and Via that RFC 4475 does not cover.
//!
//! A valid message must pass `Message::parse` and `Message::check`, and each test
//! asserts the values that make the message tricky. An invalid one must fail with
//! the specific `ParseError`. The §3.2 and §3.3 messages are syntactically valid
//! and carry semantic traps that the proxy or registrar acts on later; their tests
//! assert that they pass the parser layer and that the values those layers act on
//! decode as expected.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use coresip::sip::header::HeaderName;
use coresip::sip::text::percent_decode;
use coresip::sip::{
    Contact, Host, Message, Method, NameAddr, ParseError, SipUri, Transport, Uri, Via,
};

// --- allocation counting -------------------------------------------------------------

/// Counts allocations per thread, so that tests running in parallel do not see
/// each other's.
struct CountingAlloc;

thread_local! {
    static ALLOCATIONS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

// SAFETY: defers every call to the system allocator; the counter is a const-initialised
// thread-local without destructor, so touching it never allocates or re-enters.
unsafe impl std::alloc::GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        std::alloc::System.alloc(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        std::alloc::System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

fn allocations() -> usize {
    ALLOCATIONS.with(|c| c.get())
}

// --- helpers ------------------------------------------------------------------------

/// Parses and checks a message the RFC calls valid.
fn valid(buf: &[u8]) -> Message<'_> {
    let m = Message::parse(buf).expect("parse");
    m.check().expect("check");
    m
}

/// The check error of a message that frames but is invalid.
fn check_err(buf: &[u8]) -> ParseError {
    Message::parse(buf).expect("parse").check().unwrap_err()
}

fn sip<'a>(u: Uri<'a>) -> SipUri<'a> {
    match u {
        Uri::Sip(u) => u,
        other => panic!("not a SIP URI: {other:?}"),
    }
}

fn request_uri<'a>(m: &Message<'a>) -> Uri<'a> {
    Uri::parse(m.request_uri().unwrap()).unwrap()
}

fn vias<'a>(m: &Message<'a>) -> Vec<Via<'a>> {
    m.values(HeaderName::Via)
        .map(|v| Via::parse(v).unwrap())
        .collect()
}

fn contacts<'a>(m: &Message<'a>) -> Vec<NameAddr<'a>> {
    m.contacts()
        .map(|c| match c.unwrap() {
            Contact::Addr(a) => a,
            Contact::Star => panic!("unexpected *"),
        })
        .collect()
}

fn v4(a: u8, b: u8, c: u8, d: u8) -> Host<'static> {
    Host::V4(Ipv4Addr::new(a, b, c, d))
}

fn v6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

/// Every .dat file of the archive, and the tests below cover each one.
const FILES: &[&str] = &[
    "wsinv",
    "intmeth",
    "esc01",
    "escnull",
    "esc02",
    "lwsdisp",
    "longreq",
    "dblreq",
    "semiuri",
    "transports",
    "mpart01",
    "unreason",
    "noreason",
    "badinv01",
    "clerr",
    "ncl",
    "scalar02",
    "scalarlg",
    "quotbal",
    "ltgtruri",
    "lwsruri",
    "lwsstart",
    "trws",
    "escruri",
    "baddate",
    "regbadct",
    "badaspec",
    "baddn",
    "badvers",
    "mismatch01",
    "mismatch02",
    "bigcode",
    "badbranch",
    "insuf",
    "unkscm",
    "novelsc",
    "unksm2",
    "bext01",
    "invut",
    "regaut01",
    "multi01",
    "mcl01",
    "bcast",
    "zeromf",
    "cparam01",
    "cparam02",
    "regescrt",
    "sdp01",
    "inv2543",
    "test",
];

#[test]
fn every_archived_message_has_a_test() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/rfc4475");
    let mut on_disk: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".dat").map(str::to_owned)
        })
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = FILES.iter().map(|s| s.to_string()).collect();
    listed.sort();
    assert_eq!(on_disk, listed);
}

/// `Message::check` is on the proxy's hot path: it must not allocate, on any of the
/// messages that pass it. Parsing allocates only a header table longer than the 24
/// lines held inline: longreq's 43 lines, and none of the others.
#[test]
fn parse_and_check_do_not_allocate() {
    let messages: [&[u8]; 8] = [
        include_bytes!("rfc4475/wsinv.dat"),
        include_bytes!("rfc4475/intmeth.dat"),
        include_bytes!("rfc4475/esc01.dat"),
        include_bytes!("rfc4475/longreq.dat"),
        include_bytes!("rfc4475/mpart01.dat"),
        include_bytes!("rfc4475/unreason.dat"),
        include_bytes!("rfc4475/inv2543.dat"),
        IPV6_INVITE,
    ];
    for buf in messages {
        let before = allocations();
        let m = Message::parse(buf).unwrap();
        let long = m.headers().len() > coresip::sip::message::INLINE_HEADERS;
        if long {
            assert!(allocations() > before);
        } else {
            assert_eq!(allocations(), before);
        }
        let before = allocations();
        assert_eq!(m.check(), Ok(()));
        assert_eq!(allocations(), before);
    }
    // The counter does count.
    let before = allocations();
    let v = std::hint::black_box(vec![1u8]);
    assert_eq!(allocations(), before + 1);
    drop(v);
}

// --- §3.1.1 valid messages ----------------------------------------------------------

#[test]
fn s3_1_1_1_wsinv_short_tortuous_invite() {
    let m = valid(include_bytes!("rfc4475/wsinv.dat"));
    assert_eq!(m.method(), Some(Method::Invite));
    // Unknown Request-URI parameter without a value.
    let ruri = sip(request_uri(&m));
    assert_eq!(ruri.params.get(b"unknownparam"), Some(None));

    // "TO :" folded, addr-spec form, LWS around `;` and `=`.
    let to = m.to().unwrap();
    assert_eq!(to.display, None);
    assert_eq!(to.uri, b"sip:vivekg@chair-dnrc.example.com");
    assert_eq!(to.tag(), Some(&b"1918181833n"[..]));
    // Escaped characters within quotes, and a folded `;` and tag.
    let from = m.from().unwrap();
    assert_eq!(
        from.display_unescaped().as_deref(),
        Some(&b"J Rosenberg \\\""[..])
    );
    assert_eq!(from.tag(), Some(&b"98asjd8"[..]));

    // Leading zeros; CSeq over a fold.
    assert_eq!(m.max_forwards(), Ok(Some(68)));
    let cseq = m.cseq().unwrap();
    assert_eq!((cseq.seq, cseq.method), (9, Method::Invite));
    assert_eq!(m.call_id(), Ok(&b"wsinv.ndaksdj@192.0.2.1"[..]));

    // "Via  :" and "v:" lines, separate and comma-separated, odd spacing and folds.
    let v = vias(&m);
    assert_eq!(v.len(), 3);
    assert_eq!(
        (v[0].transport, v[0].sent_by.host),
        (Transport::Udp, v4(192, 0, 2, 2))
    );
    assert_eq!(v[0].branch(), Some(&b"390skdjuw"[..]));
    assert!(v[0].is_sip_2_0());
    assert_eq!(v[1].transport, Transport::Tcp);
    assert_eq!(v[1].sent_by.host, Host::Domain("spindle.example.com"));
    assert_eq!(v[1].branch(), Some(&b"z9hG4bK9ikj8"[..]));
    assert_eq!(v[2].sent_by.host, v4(192, 168, 255, 111));
    assert_eq!(v[2].branch(), Some(&b"z9hG4bK30239"[..]));

    // Empty Subject (compact "s :").
    assert_eq!(m.header(HeaderName::Subject), Some(&b""[..]));
    // Unknown headers kept raw, folding included.
    assert_eq!(
        m.header_raw(b"NewFangledHeader"),
        Some(&b"newfangled value\r\n continued newfangled value"[..])
    );
    assert_eq!(
        m.header_raw(b"UnknownHeaderWithUnusualValue"),
        Some(&b";;,,;;,;"[..])
    );

    // Route with uri parameters with and without values.
    let routes: Vec<_> = m.routes().map(Result::unwrap).collect();
    assert_eq!(routes.len(), 1);
    let r = sip(routes[0].parse_uri().unwrap());
    assert!(r.lr());
    assert_eq!(r.params.value(b"unknownwith"), Some(&b"value"[..]));
    assert_eq!(r.params.get(b"unknown-no-value"), Some(None));

    // Contact: quoted display name with escaped quotes, folded parameters.
    let c = m.contacts().next().unwrap().unwrap();
    let a = c.addr().unwrap();
    assert_eq!(
        a.display_unescaped().as_deref(),
        Some(&b"Quoted string \"\""[..])
    );
    assert_eq!(a.params.value(b"newparam"), Some(&b"newvalue"[..]));
    assert_eq!(a.params.get(b"secondparam"), Some(None));
    assert_eq!(c.q().unwrap().unwrap().thousandths(), 330);

    // "Content-Length   :" with spaces before the colon.
    assert_eq!(m.content_length(), Ok(Some(150)));
    assert_eq!(m.body().len(), 150);
    assert!(m.content_type().unwrap().unwrap().is_sdp());
}

#[test]
fn s3_1_1_2_intmeth_wide_range_of_valid_characters() {
    let m = valid(include_bytes!("rfc4475/intmeth.dat"));
    let method: &[u8] = b"!interesting-Method0123456789_*+`.%indeed'~";
    assert_eq!(m.method(), Some(Method::Other(method)));
    assert_eq!(m.cseq().unwrap().method, Method::Other(method));
    assert_eq!(m.cseq().unwrap().seq, 139122385);

    let ruri = sip(request_uri(&m));
    assert_eq!(
        ruri.user,
        Some(&b"1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"[..])
    );
    assert_eq!(
        ruri.password,
        Some(&b"&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"[..])
    );
    assert_eq!(ruri.host, Host::Domain("example.com"));
    assert!(ruri.params.is_empty());

    // % is not an escape in a token.
    assert_eq!(m.via().unwrap().branch(), Some(&b"z9hG4bK-.!%66*_+`'~"[..]));

    // quoted-pairs, including an escaped NUL.
    let to = m.to().unwrap();
    assert_eq!(
        to.display_unescaped().as_deref(),
        Some(&b"BEL:\x07 NUL:\x00 DEL:\x7f"[..])
    );
    assert_eq!(sip(to.parse_uri().unwrap()).user, ruri.user);

    // Token display name with every token character; UTF-8 parameter value.
    let from = m.from().unwrap();
    assert_eq!(from.display, Some(&b"token1~` token2'+_ token3*%!.-"[..]));
    assert_eq!(
        from.params.value(b"fromParam''~+*_!.-%"),
        Some("\"работающий\"".as_bytes())
    );
    assert_eq!(from.tag(), Some(&b"_token~1'+`*%!-."[..]));

    // Call-ID word characters: no escapes, no grouping.
    assert_eq!(
        m.call_id(),
        Ok(&b"intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"[..])
    );
    assert_eq!(m.max_forwards(), Ok(Some(255)));
    assert_eq!(
        m.header_raw(b"extensionHeader-!.%*+_`'~"),
        Some("\u{feff}大停電".as_bytes())
    );
    assert!(m.body().is_empty());
}

#[test]
fn s3_1_1_3_esc01_valid_percent_escaping() {
    let m = valid(include_bytes!("rfc4475/esc01.dat"));
    let ruri = sip(request_uri(&m));
    assert_eq!(ruri.user, Some(&b"sips%3Auser%40example.com"[..]));
    assert_eq!(
        ruri.user_unescaped().as_deref(),
        Some(&b"sips:user@example.com"[..])
    );
    assert_eq!(ruri.host, Host::Domain("example.net"));

    // Escapes in From and To user parts.
    let to = sip(m.to().unwrap().parse_uri().unwrap());
    assert!(to.user_is(b"user"));
    assert_eq!(to.user_unescaped().as_deref(), Some(&b"user"[..]));
    let from = m.from().unwrap();
    assert_eq!(from.tag(), Some(&b"938"[..]));
    let from = sip(from.parse_uri().unwrap());
    assert_eq!(
        from.user_unescaped().as_deref(),
        Some(&b"I have spaces"[..])
    );

    // Compact "i:" and upper-case compact "C:".
    assert_eq!(m.call_id(), Ok(&b"esc01.239409asdfakjkn23onasd0-3234"[..]));
    assert!(m.content_type().unwrap().unwrap().is_sdp());

    // Escapes in uri-parameters; never unescaped twice.
    let c = sip(contacts(&m)[0].parse_uri().unwrap());
    assert!(c.user_is(b"caller"));
    let p: Vec<_> = c.params.into_iter().collect();
    assert_eq!(p.len(), 2);
    assert_eq!(percent_decode(p[0].name).unwrap(), b"lr");
    assert_eq!(percent_decode(p[1].name).unwrap(), b"name");
    let value = percent_decode(p[1].value.unwrap()).unwrap();
    assert_eq!(value, b"value%41");
    assert_ne!(value, b"valueA");
    assert_eq!(m.body().len(), 150);
}

#[test]
fn s3_1_1_4_escnull_escaped_nulls_in_uris() {
    let m = valid(include_bytes!("rfc4475/escnull.dat"));
    assert_eq!(m.method(), Some(Method::Register));
    let to = sip(m.to().unwrap().parse_uri().unwrap());
    let aor = to.user_unescaped().unwrap();
    // Not shortened at the NUL.
    assert_eq!(&*aor, b"null-\0-null");
    assert_eq!(m.from().unwrap().tag(), Some(&b"839923423"[..]));
    // Two distinct bindings.
    let users: Vec<Vec<u8>> = contacts(&m)
        .iter()
        .map(|c| {
            sip(c.parse_uri().unwrap())
                .user_unescaped()
                .unwrap()
                .into_owned()
        })
        .collect();
    assert_eq!(users, vec![vec![0u8], vec![0u8, 0u8]]);
    // "L:0": upper-case compact form, no space.
    assert_eq!(m.content_length(), Ok(Some(0)));
}

#[test]
fn s3_1_1_5_esc02_percent_that_is_not_an_escape() {
    let m = valid(include_bytes!("rfc4475/esc02.dat"));
    // Not REGISTER: % is no escape in a method.
    assert_eq!(m.method(), Some(Method::Other(b"RE%47IST%45R")));
    assert_ne!(m.method(), Some(Method::Register));
    assert_eq!(m.cseq().unwrap().method, Method::Other(b"RE%47IST%45R"));
    // Display name "%Z%45", not "%ZE".
    assert_eq!(
        m.to().unwrap().display_unescaped().as_deref(),
        Some(&b"%Z%45"[..])
    );
    assert_eq!(
        m.from().unwrap().display_unescaped().as_deref(),
        Some(&b"%Z%45"[..])
    );
    assert_eq!(
        m.via().unwrap().branch(),
        Some(&b"z9hG4bK209%fzsnel234"[..])
    );
    // Two Contact values; C%6Fntact is an extension header.
    let hosts: Vec<_> = contacts(&m)
        .iter()
        .map(|c| sip(c.parse_uri().unwrap()).host)
        .collect();
    assert_eq!(
        hosts,
        vec![
            Host::Domain("host1.example.com"),
            Host::Domain("host3.example.com")
        ]
    );
    assert_eq!(
        m.header_raw(b"C%6Fntact"),
        Some(&b"<sip:alias2@host2.example.com>"[..])
    );
}

#[test]
fn s3_1_1_6_lwsdisp_no_lws_between_display_name_and_laquot() {
    let m = valid(include_bytes!("rfc4475/lwsdisp.dat"));
    let from = m.from().unwrap();
    assert_eq!(from.display, Some(&b"caller"[..]));
    assert!(from.angle);
    assert_eq!(from.uri, b"sip:caller@example.com");
    assert_eq!(from.tag(), Some(&b"323"[..]));
}

#[test]
fn s3_1_1_7_longreq_long_values_in_header_fields() {
    let m = valid(include_bytes!("rfc4475/longreq.dat"));
    let to = m.to().unwrap();
    let display = format!("I have a user name of {} proportion", "extreme".repeat(10));
    assert_eq!(to.display_unescaped().as_deref(), Some(display.as_bytes()));
    let to_uri = sip(to.parse_uri().unwrap());
    assert_eq!(to_uri.port, Some(6000));
    let v1 = format!("very{}value", "long".repeat(20));
    assert_eq!(to_uri.params.value(b"unknownparam1"), Some(v1.as_bytes()));
    let n2 = format!("longparam{}", "name".repeat(25));
    assert_eq!(to_uri.params.value(n2.as_bytes()), Some(&b"shortvalue"[..]));
    let n3 = format!("very{}ParameterNameWithNoValue", "long".repeat(25));
    assert_eq!(to_uri.params.get(n3.as_bytes()), Some(None));

    let from = m.from().unwrap();
    let caller = "amazinglylongcallername".repeat(5);
    assert!(sip(from.parse_uri().unwrap()).user_is(caller.as_bytes()));
    let tag = format!("12{}424", "982".repeat(50));
    assert_eq!(from.tag(), Some(tag.as_bytes()));
    let pn = format!("unknownheaderparam{}", "name".repeat(20));
    let pv = format!("unknowheaderparam{}", "value".repeat(15));
    assert_eq!(from.params.value(pn.as_bytes()), Some(pv.as_bytes()));
    let flag = format!("unknownValueless{}", "paramname".repeat(10));
    assert_eq!(from.params.get(flag.as_bytes()), Some(None));

    let call_id = format!("longreq.one{}longcallid", "really".repeat(20));
    assert_eq!(m.call_id(), Ok(call_id.as_bytes()));
    let hname = format!("Unknown-{}-Name", "Long".repeat(20));
    let hval = m.header_raw(hname.as_bytes()).unwrap();
    assert!(hval.starts_with(format!("unknown-{}-value;", "long".repeat(20)).as_bytes()));

    // 34 Via values in every spelling of the name; sip33 on top.
    let v = vias(&m);
    assert_eq!(v.len(), 34);
    assert_eq!(v[0].sent_by.host, Host::Domain("sip33.example.com"));
    for (i, via) in v.iter().take(33).enumerate() {
        let host = format!("sip{}.example.com", 33 - i);
        assert_eq!(via.sent_by.host, Host::Domain(&host));
        assert_eq!(via.transport, Transport::Tcp);
    }
    let last = &v[33];
    assert_eq!(
        last.received(),
        Some(Ok(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 5))))
    );
    let branch = format!("very{}branchvalue", "long".repeat(50));
    assert_eq!(last.branch(), Some(branch.as_bytes()));

    assert!(sip(contacts(&m)[0].parse_uri().unwrap()).user_is(caller.as_bytes()));
    assert_eq!(m.content_length(), Ok(Some(150)));
    assert_eq!(m.body().len(), 150);
}

#[test]
fn s3_1_1_8_dblreq_extra_trailing_octets_in_udp_datagram() {
    let buf = include_bytes!("rfc4475/dblreq.dat");
    let m = valid(buf);
    assert_eq!(m.method(), Some(Method::Register));
    assert_eq!(m.content_length(), Ok(Some(0)));
    assert!(m.body().is_empty());
    // The INVITE that follows is noise (RFC 3261 §18.3): not part of the message.
    let own = m.as_bytes();
    assert!(own.len() < buf.len());
    assert!(own.ends_with(b"Content-Length: 0\r\n\r\n"));
    assert!(buf[own.len()..].starts_with(b"\r\nINVITE sip:joe@example.com SIP/2.0\r\n"));
    assert_eq!(m.max_forwards(), Ok(Some(8)));
    assert_eq!(
        m.call_id(),
        Ok(&b"dblreq.0ha0isndaksdj99sdfafnl3lk233412"[..])
    );
    assert_eq!(m.all(HeaderName::CSeq).count(), 1);
    // Contact in addr-spec form.
    assert_eq!(contacts(&m)[0].uri, b"sip:j.user@host.example.com");
}

#[test]
fn s3_1_1_9_semiuri_semicolon_in_uri_user_part() {
    let m = valid(include_bytes!("rfc4475/semiuri.dat"));
    let ruri = sip(request_uri(&m));
    assert_eq!(ruri.user, Some(&b"user;par=u%40example.net"[..]));
    assert_eq!(
        ruri.user_unescaped().as_deref(),
        Some(&b"user;par=u@example.net"[..])
    );
    assert_eq!(ruri.host, Host::Domain("example.com"));
    assert!(ruri.params.is_empty());
    // A folded Accept list.
    let accept: Vec<_> = m.values(HeaderName::Accept).collect();
    assert_eq!(accept.len(), 6);
    assert_eq!(accept[5], b"message/sipfrag");
}

#[test]
fn s3_1_1_10_transports_varied_and_unknown_transport_types() {
    let m = valid(include_bytes!("rfc4475/transports.dat"));
    let t: Vec<_> = vias(&m).iter().map(|v| v.transport).collect();
    assert_eq!(
        t,
        vec![
            Transport::Udp,
            Transport::Sctp,
            Transport::Tls,
            Transport::Other(b"UNKNOWN"),
            Transport::Tcp
        ]
    );
    assert_eq!(m.call_id(), Ok(&b"transports.kijh4akdnaqjkwendsasfdj"[..]));
}

#[test]
fn s3_1_1_11_mpart01_multipart_mime_message() {
    let m = valid(include_bytes!("rfc4475/mpart01.dat"));
    assert_eq!(m.method(), Some(Method::Message));
    let via = m.via().unwrap();
    assert_eq!(
        (via.sent_by.host, via.sent_by.port),
        (v4(127, 0, 0, 1), Some(5070))
    );
    assert_eq!(via.rport(), Some(None));
    assert_eq!(
        via.branch(),
        Some(&b"z9hG4bK-d87543-4dade06d0bdb11ee-1--d87543-"[..])
    );
    let route = sip(m.routes().next().unwrap().unwrap().parse_uri().unwrap());
    assert_eq!((route.host, route.port), (v4(127, 0, 0, 1), Some(5080)));
    let ct = m.content_type().unwrap().unwrap();
    assert!(ct.is("multipart", "mixed"));
    assert_eq!(ct.param("boundary"), Some(&b"7a9cbec02ceef655"[..]));
    // Framed by Content-Length, NULs in the binary part notwithstanding.
    assert_eq!(m.content_length(), Ok(Some(553)));
    let body = m.body();
    assert_eq!(body.len(), 553);
    assert!(body.contains(&0));
    assert!(body.starts_with(b"--7a9cbec02ceef655\r\n"));
    assert!(body.ends_with(b"--7a9cbec02ceef655--\r\n"));
    // The folded Identity header is one value.
    assert_eq!(m.all(HeaderName::Identity).count(), 1);
    assert!(m
        .header(HeaderName::Identity)
        .unwrap()
        .ends_with(b"teeivUhkMWYUA="));
}

#[test]
fn s3_1_1_12_unreason_unusual_reason_phrase() {
    let m = valid(include_bytes!("rfc4475/unreason.dat"));
    assert_eq!(m.status(), Some(200));
    match m.start_line() {
        coresip::sip::StartLine::Response { reason, .. } => assert_eq!(
            *reason,
            "= 2**3 * 5**2 но сто девяносто девять - простое".as_bytes()
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(m.to().unwrap().tag(), Some(&b"2229"[..]));
    assert_eq!(m.body().len(), 154);
}

#[test]
fn s3_1_1_13_noreason_empty_reason_phrase() {
    let m = valid(include_bytes!("rfc4475/noreason.dat"));
    assert_eq!(m.status(), Some(100));
    match m.start_line() {
        coresip::sip::StartLine::Response { reason, .. } => assert!(reason.is_empty()),
        other => panic!("{other:?}"),
    }
    assert_eq!(m.cseq().unwrap().method, Method::Invite);
}

// --- §3.1.2 invalid messages ----------------------------------------------------------

#[test]
fn s3_1_2_1_badinv01_extraneous_header_field_separators() {
    let buf = include_bytes!("rfc4475/badinv01.dat");
    assert_eq!(check_err(buf), ParseError::InvalidVia);
    // The Contact's empty parameters are a fault of their own.
    let m = Message::parse(buf).unwrap();
    assert_eq!(m.contacts().next(), Some(Err(ParseError::InvalidContact)));
}

#[test]
fn s3_1_2_2_clerr_content_length_larger_than_message() {
    assert_eq!(
        Message::parse(include_bytes!("rfc4475/clerr.dat")).unwrap_err(),
        ParseError::BadContentLength
    );
}

#[test]
fn s3_1_2_3_ncl_negative_content_length() {
    assert_eq!(
        Message::parse(include_bytes!("rfc4475/ncl.dat")).unwrap_err(),
        ParseError::BadContentLength
    );
}

#[test]
fn s3_1_2_4_scalar02_request_scalar_fields_with_overlarge_values() {
    let buf = include_bytes!("rfc4475/scalar02.dat");
    // A 400 "due to the CSeq error".
    let err = check_err(buf);
    assert_eq!(err, ParseError::InvalidCSeq);
    assert!(err.is_answerable());
    let m = Message::parse(buf).unwrap();
    assert_eq!(m.max_forwards(), Err(ParseError::InvalidMaxForwards));
    // Expiry values past 2^32-1 are read as 2^32-1 (RFC 3261 §10.2.1).
    assert_eq!(m.expires(), Ok(Some(u32::MAX)));
    assert_eq!(
        m.contacts().next().unwrap().unwrap().expires(),
        Ok(Some(u32::MAX))
    );
}

#[test]
fn s3_1_2_5_scalarlg_response_scalar_fields_with_overlarge_values() {
    let buf = include_bytes!("rfc4475/scalarlg.dat");
    // A response: dropped.
    assert_eq!(check_err(buf), ParseError::InvalidCSeq);
    let m = Message::parse(buf).unwrap();
    assert_eq!(m.status(), Some(503));
    assert_eq!(m.retry_after(), Ok(Some(u32::MAX)));
    assert_eq!(
        m.header(HeaderName::Warning),
        Some(&b"1812 overture \"In Progress\""[..])
    );
}

#[test]
fn s3_1_2_6_quotbal_unterminated_quoted_string_in_display_name() {
    assert_eq!(
        check_err(include_bytes!("rfc4475/quotbal.dat")),
        ParseError::InvalidTo
    );
}

#[test]
fn s3_1_2_7_ltgtruri_angle_brackets_enclosing_request_uri() {
    let buf = include_bytes!("rfc4475/ltgtruri.dat");
    assert_eq!(check_err(buf), ParseError::InvalidRequestUri);
    let m = Message::parse(buf).unwrap();
    assert_eq!(m.request_uri(), Some(&b"<sip:user@example.com>"[..]));
}

#[test]
fn s3_1_2_8_lwsruri_embedded_lws_in_request_uri() {
    assert_eq!(
        Message::parse(include_bytes!("rfc4475/lwsruri.dat")).unwrap_err(),
        ParseError::InvalidRequestUri
    );
}

#[test]
fn s3_1_2_9_lwsstart_multiple_sp_in_request_line() {
    assert_eq!(
        Message::parse(include_bytes!("rfc4475/lwsstart.dat")).unwrap_err(),
        ParseError::InvalidRequestUri
    );
}

#[test]
fn s3_1_2_10_trws_sp_at_end_of_request_line() {
    assert_eq!(
        Message::parse(include_bytes!("rfc4475/trws.dat")).unwrap_err(),
        ParseError::InvalidStartLine
    );
}

#[test]
fn s3_1_2_11_escruri_escaped_headers_in_request_uri() {
    let buf = include_bytes!("rfc4475/escruri.dat");
    assert_eq!(check_err(buf), ParseError::InvalidRequestUri);
    // The URI itself is well formed; headers are what a Request-URI must not carry.
    let m = Message::parse(buf).unwrap();
    assert_eq!(
        sip(request_uri(&m)).headers,
        Some(&b"Route=%3Csip:example.com%3E"[..])
    );
}

/// RFC 4475 calls the `EST` time zone invalid but says an element that does not use
/// Date should not reject the request for it. A proxy never reads Date, and
/// [`Message::check`] does not decode it: the request passes, Date kept raw.
#[test]
fn s3_1_2_12_baddate_invalid_time_zone_in_date() {
    let m = valid(include_bytes!("rfc4475/baddate.dat"));
    assert_eq!(
        m.header(HeaderName::Date),
        Some(&b"Fri, 01 Jan 2010 16:00:00 EST"[..])
    );
}

#[test]
fn s3_1_2_13_regbadct_name_addr_uri_not_in_angle_brackets() {
    let buf = include_bytes!("rfc4475/regbadct.dat");
    assert_eq!(check_err(buf), ParseError::InvalidContact);
}

#[test]
fn s3_1_2_14_badaspec_spaces_within_addr_spec() {
    let buf = include_bytes!("rfc4475/badaspec.dat");
    assert_eq!(check_err(buf), ParseError::InvalidTo);
    // The From with its quoted comma is fine.
    let m = Message::parse(buf).unwrap();
    assert_eq!(
        m.from().unwrap().display_unescaped().as_deref(),
        Some(&b"Bell, Alexander"[..])
    );
}

/// The archived `baddn.dat` ends after `l: 0` without the blank line that ends the
/// header section, so as a datagram it is incomplete. With the blank line added,
/// the fault the RFC describes (unquoted non-token display names) is found.
#[test]
fn s3_1_2_15_baddn_non_token_characters_in_display_name() {
    let buf = include_bytes!("rfc4475/baddn.dat");
    assert!(buf.ends_with(b"l: 0\r\n"));
    assert_eq!(Message::parse(buf).unwrap_err(), ParseError::Incomplete);
    let mut whole = buf.to_vec();
    whole.extend_from_slice(b"\r\n");
    assert_eq!(check_err(&whole), ParseError::InvalidFrom);
    assert_eq!(
        Message::parse(&whole).unwrap().to().unwrap_err(),
        ParseError::InvalidTo
    );
}

#[test]
fn s3_1_2_16_badvers_unknown_protocol_version() {
    assert_eq!(
        Message::parse(include_bytes!("rfc4475/badvers.dat")).unwrap_err(),
        ParseError::BadVersion
    );
}

#[test]
fn s3_1_2_17_mismatch01_start_line_and_cseq_method_mismatch() {
    let err = check_err(include_bytes!("rfc4475/mismatch01.dat"));
    assert_eq!(err, ParseError::CSeqMethodMismatch);
    assert!(err.is_answerable());
}

/// RFC 4475 prefers 501 here and accepts 400; the parser layer reports the
/// mismatch, which RFC 3261 §8.1.1.5 makes a fault whatever the method.
#[test]
fn s3_1_2_18_mismatch02_unknown_method_with_cseq_method_mismatch() {
    let buf = include_bytes!("rfc4475/mismatch02.dat");
    assert_eq!(check_err(buf), ParseError::CSeqMethodMismatch);
    let m = Message::parse(buf).unwrap();
    assert_eq!(m.method(), Some(Method::Other(b"NEWMETHOD")));
    assert_eq!(m.body().len(), 138);
}

#[test]
fn s3_1_2_19_bigcode_overlarge_response_code() {
    assert_eq!(
        Message::parse(include_bytes!("rfc4475/bigcode.dat")).unwrap_err(),
        ParseError::InvalidStatusCode
    );
}

// --- §3.2 transaction layer semantics -------------------------------------------------

#[test]
fn s3_2_1_badbranch_missing_transaction_identifier() {
    let m = valid(include_bytes!("rfc4475/badbranch.dat"));
    // The cookie with nothing after it: the transaction layer decides.
    let via = m.via().unwrap();
    assert_eq!(via.branch(), Some(&b"z9hG4bK"[..]));
    assert!(via.has_magic_cookie());
}

// --- §3.3 application-layer semantics -------------------------------------------------

#[test]
fn s3_3_1_insuf_missing_required_header_fields() {
    let buf = include_bytes!("rfc4475/insuf.dat");
    let err = check_err(buf);
    assert_eq!(err, ParseError::MissingFrom);
    // The Via is sound: the 400 the RFC asks for can be sent.
    assert!(err.is_answerable());
    let m = Message::parse(buf).unwrap();
    assert_eq!(m.to().unwrap_err(), ParseError::MissingTo);
    assert_eq!(m.call_id().unwrap_err(), ParseError::MissingCallId);
}

#[test]
fn s3_3_2_unkscm_request_uri_with_unknown_scheme() {
    let m = valid(include_bytes!("rfc4475/unkscm.dat"));
    // Kept opaque, for the proxy to answer 416.
    match request_uri(&m) {
        Uri::Other { scheme, opaque, .. } => {
            assert_eq!(scheme, b"nobodyKnowsThisScheme");
            assert_eq!(opaque, b"totallyopaquecontent");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn s3_3_3_novelsc_request_uri_with_known_but_atypical_scheme() {
    let m = valid(include_bytes!("rfc4475/novelsc.dat"));
    match request_uri(&m) {
        Uri::Other { scheme, opaque, .. } => {
            assert_eq!(scheme, b"soap.beep");
            assert_eq!(opaque, b"//192.0.2.103:3002");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn s3_3_4_unksm2_unknown_uri_schemes_in_header_fields() {
    let m = valid(include_bytes!("rfc4475/unksm2.dat"));
    let scheme = |u: Uri<'_>| match u {
        Uri::Other { scheme, .. } => scheme.to_vec(),
        other => panic!("{other:?}"),
    };
    // A registrar rejects this (the AOR is not SIP); the parser layer does not.
    assert_eq!(scheme(m.to().unwrap().parse_uri().unwrap()), b"isbn");
    assert_eq!(scheme(m.from().unwrap().parse_uri().unwrap()), b"http");
    assert_eq!(scheme(contacts(&m)[0].parse_uri().unwrap()), b"name");
}

#[test]
fn s3_3_5_bext01_proxy_require_and_require() {
    let m = valid(include_bytes!("rfc4475/bext01.dat"));
    let require: Vec<_> = m.require().map(Result::unwrap).collect();
    assert_eq!(
        require,
        vec![&b"nothingSupportsThis"[..], b"nothingSupportsThisEither"]
    );
    assert_eq!(
        m.proxy_require().contains(b"noProxiesSupportThis"),
        Ok(true)
    );
    assert_eq!(
        m.proxy_require().contains(b"norDoAnyProxiesSupportThis"),
        Ok(true)
    );
    assert_eq!(m.via().unwrap().transport, Transport::Tls);
}

#[test]
fn s3_3_6_invut_unknown_content_type() {
    let m = valid(include_bytes!("rfc4475/invut.dat"));
    let ct = m.content_type().unwrap().unwrap();
    assert!(ct.is("application", "unknownformat"));
    assert_eq!(m.body().len(), 40);
}

#[test]
fn s3_3_7_regaut01_unknown_authorization_scheme() {
    let m = valid(include_bytes!("rfc4475/regaut01.dat"));
    let creds: Vec<_> = m.authorizations().map(Result::unwrap).collect();
    assert_eq!(creds.len(), 1);
    assert_eq!(creds[0].scheme(), b"NoOneKnowsThisScheme");
    assert!(!creds[0].is_digest());
    assert_eq!(creds[0].param("opaque-data").unwrap().unquoted(), b"here");
    assert_eq!(m.content_length(), Ok(Some(0)));
}

#[test]
fn s3_3_8_multi01_multiple_values_in_single_value_required_fields() {
    let buf = include_bytes!("rfc4475/multi01.dat");
    let err = check_err(buf);
    assert_eq!(err, ParseError::DuplicateHeader);
    assert!(err.is_answerable());
    let m = Message::parse(buf).unwrap();
    for name in [
        HeaderName::CallId,
        HeaderName::To,
        HeaderName::From,
        HeaderName::MaxForwards,
        HeaderName::CSeq,
    ] {
        assert_eq!(m.all(name).count(), 2, "{name:?}");
    }
}

#[test]
fn s3_3_9_mcl01_multiple_content_length_values() {
    let buf = include_bytes!("rfc4475/mcl01.dat");
    assert_eq!(check_err(buf), ParseError::DuplicateHeader);
    let m = Message::parse(buf).unwrap();
    let values: Vec<_> = m
        .all(HeaderName::ContentLength)
        .map(|h| m.value(h))
        .collect();
    assert_eq!(values, vec![&b"13"[..], b"5"]);
}

#[test]
fn s3_3_10_bcast_200_ok_with_broadcast_via() {
    let m = valid(include_bytes!("rfc4475/bcast.dat"));
    assert_eq!(m.status(), Some(200));
    // The proxy must not forward to it; the parser layer reports the address.
    let v = vias(&m);
    assert_eq!(v[1].sent_by.host, Host::V4(Ipv4Addr::BROADCAST));
    assert_eq!(
        v[1].sent_by.host.ip().unwrap(),
        IpAddr::V4(Ipv4Addr::BROADCAST)
    );
}

#[test]
fn s3_3_11_zeromf_max_forwards_of_zero() {
    let m = valid(include_bytes!("rfc4475/zeromf.dat"));
    assert_eq!(m.max_forwards(), Ok(Some(0)));
}

#[test]
fn s3_3_12_cparam01_register_with_contact_header_parameter() {
    let m = valid(include_bytes!("rfc4475/cparam01.dat"));
    let c = &contacts(&m)[0];
    // addr-spec form: unknownparam is a contact-param, not a url-parameter.
    assert!(!c.angle);
    assert_eq!(c.params.get(b"unknownparam"), Some(None));
    let uri = sip(c.parse_uri().unwrap());
    assert!(uri.params.is_empty());
    assert_eq!(uri.user, Some(&b"+19725552222"[..]));
}

#[test]
fn s3_3_13_cparam02_register_with_url_parameter() {
    let m = valid(include_bytes!("rfc4475/cparam02.dat"));
    let c = &contacts(&m)[0];
    assert!(c.angle);
    assert!(c.params.is_empty());
    let uri = sip(c.parse_uri().unwrap());
    assert_eq!(uri.params.get(b"unknownparam"), Some(None));
}

#[test]
fn s3_3_14_regescrt_register_with_url_escaped_header() {
    let m = valid(include_bytes!("rfc4475/regescrt.dat"));
    // "M:" compact Contact; the escaped Route stays in the binding's URI.
    let uri = sip(contacts(&m)[0].parse_uri().unwrap());
    assert_eq!(uri.headers, Some(&b"Route=%3Csip:sip.example.com%3E"[..]));
    assert_eq!(
        percent_decode(uri.headers.unwrap()).unwrap(),
        b"Route=<sip:sip.example.com>"
    );
}

#[test]
fn s3_3_15_sdp01_unacceptable_accept_offering() {
    let m = valid(include_bytes!("rfc4475/sdp01.dat"));
    let accept: Vec<_> = m.values(HeaderName::Accept).collect();
    assert_eq!(accept, vec![&b"text/nobodyKnowsThis"[..]]);
    assert!(m.content_type().unwrap().unwrap().is_sdp());
    assert_eq!(m.body().len(), 150);
}

// --- §3.4 backward compatibility ------------------------------------------------------

#[test]
fn s3_4_1_inv2543_invite_with_rfc2543_syntax() {
    let buf = include_bytes!("rfc4475/inv2543.dat");
    let m = valid(buf);
    let via = m.via().unwrap();
    assert_eq!(via.branch(), None);
    assert!(!via.has_magic_cookie());
    assert_eq!(m.from().unwrap().tag(), None);
    assert_eq!(m.max_forwards(), Ok(None));
    // No Content-Length: the body is the rest of the datagram.
    assert_eq!(m.content_length(), Ok(None));
    assert!(m.body().starts_with(b"v=0\r\n"));
    assert_eq!(m.as_bytes().len(), buf.len());
    let to = sip(m.to().unwrap().parse_uri().unwrap());
    assert_eq!(to.user, Some(&b"+16505552222"[..]));
    let rr = sip(m
        .record_routes()
        .next()
        .unwrap()
        .unwrap()
        .parse_uri()
        .unwrap());
    assert_eq!(rr.maddr(), Some(&b"ss1.example.com"[..]));
}

// --- test.dat (in the archive, not in §3) ---------------------------------------------

/// `test.dat` ships in the archive without a section: a Request-Line without
/// SIP-Version, bare addresses, and a header line without a colon. The start line
/// is the first fault.
#[test]
fn archive_test_dat_invalid_request_line() {
    let buf = include_bytes!("rfc4475/test.dat");
    assert_eq!(
        Message::parse(buf).unwrap_err(),
        ParseError::InvalidStartLine
    );
    // With the start line repaired, the colon-less line is next.
    let fixed = [&b"INVITE sip:alan@jasomi.com SIP/2.0"[..], &buf[26..]].concat();
    assert_eq!(
        Message::parse(&fixed).unwrap_err(),
        ParseError::InvalidHeaderLine
    );
}

// --- IPv6 references --------------------------------------------------------------------

const IPV6_INVITE: &[u8] = b"INVITE sip:bob@[2001:db8::10]:5070;transport=tcp SIP/2.0\r\n\
Via: SIP/2.0/UDP [2001:db8::1]:5062;branch=z9hG4bK776asdhds;received=2001:db8::99;rport=40000\r\n\
Via: SIP/2.0/TCP [2001:db8::2];branch=z9hG4bKnashds8;received=[2001:db8::98];rport\r\n\
Max-Forwards: 70\r\n\
Route: <sip:[2001:db8::10];lr>, <sip:proxy@[2001:db8::20]:5080;lr>\r\n\
To: <sip:bob@[2001:db8::10]>\r\n\
From: <sip:alice@[2001:db8::1]:5062>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@[2001:db8::1]\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:alice@[2001:db8::1]:5062;transport=udp>, <sip:[2001:db8::10]>\r\n\
Content-Length: 0\r\n\r\n";

#[test]
fn ipv6_request_uri_with_and_without_port() {
    let m = valid(IPV6_INVITE);
    let u = sip(request_uri(&m));
    assert_eq!(u.host, Host::V6(v6("2001:db8::10")));
    assert_eq!(u.port, Some(5070));
    assert_eq!(u.transport(), Some(&b"tcp"[..]));

    let buf = b"OPTIONS sip:[2001:db8::10] SIP/2.0\r\n\
Via: SIP/2.0/UDP [2001:db8::1];branch=z9hG4bK1\r\n\
To: <sip:[2001:db8::10]>\r\nFrom: <sip:a@[2001:db8::1]>;tag=1\r\n\
Call-ID: 1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
    let m = valid(buf);
    let u = sip(request_uri(&m));
    assert_eq!(
        (u.user, u.host, u.port),
        (None, Host::V6(v6("2001:db8::10")), None)
    );
    assert_eq!(u.port_or_default(), 5060);
}

#[test]
fn ipv6_contact_and_route_with_and_without_port() {
    let m = valid(IPV6_INVITE);
    let c: Vec<_> = contacts(&m)
        .iter()
        .map(|c| sip(c.parse_uri().unwrap()))
        .collect();
    assert_eq!(
        (c[0].host, c[0].port),
        (Host::V6(v6("2001:db8::1")), Some(5062))
    );
    assert_eq!(c[0].transport(), Some(&b"udp"[..]));
    assert_eq!((c[1].host, c[1].port), (Host::V6(v6("2001:db8::10")), None));

    let r: Vec<_> = m
        .routes()
        .map(|r| sip(r.unwrap().parse_uri().unwrap()))
        .collect();
    assert_eq!((r[0].host, r[0].port), (Host::V6(v6("2001:db8::10")), None));
    assert!(r[0].lr());
    assert!(r[0].targets(&Host::V6(v6("2001:db8::10")), 5060));
    assert_eq!(
        (r[1].host, r[1].port),
        (Host::V6(v6("2001:db8::20")), Some(5080))
    );
    assert_eq!(r[1].user, Some(&b"proxy"[..]));

    let to = sip(m.to().unwrap().parse_uri().unwrap());
    assert_eq!(to.host, Host::V6(v6("2001:db8::10")));
    let from = sip(m.from().unwrap().parse_uri().unwrap());
    assert_eq!(from.port, Some(5062));
    assert_eq!(m.call_id(), Ok(&b"a84b4c76e66710@[2001:db8::1]"[..]));
}

#[test]
fn ipv6_via_sent_by_received_and_rport() {
    let m = valid(IPV6_INVITE);
    let v = vias(&m);
    // sent-by with a port; received as RFC 3261 writes it (unbracketed); rport set.
    assert_eq!(v[0].sent_by.host, Host::V6(v6("2001:db8::1")));
    assert_eq!(v[0].sent_by.port, Some(5062));
    assert_eq!(v[0].received(), Some(Ok(IpAddr::V6(v6("2001:db8::99")))));
    assert_eq!(v[0].rport(), Some(Some(40000)));
    // sent-by without a port; bracketed received; rport flag.
    assert_eq!(v[1].sent_by.host, Host::V6(v6("2001:db8::2")));
    assert_eq!(v[1].sent_by.port, None);
    assert_eq!(v[1].port_or_default(), 5060);
    assert_eq!(v[1].received(), Some(Ok(IpAddr::V6(v6("2001:db8::98")))));
    assert_eq!(v[1].rport(), Some(None));
}

#[test]
fn ipv6_response_vias() {
    let buf = b"SIP/2.0 200 OK\r\n\
Via: SIP/2.0/UDP [2001:db8::1]:5062;branch=z9hG4bK776asdhds;received=2001:db8::99;rport=40000\r\n\
Via: SIP/2.0/TLS [2001:db8::2];branch=z9hG4bKnashds8\r\n\
To: <sip:bob@[2001:db8::10]>;tag=a6c85cf\r\n\
From: <sip:alice@[2001:db8::1]:5062>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@[2001:db8::1]\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:bob@[2001:db8::10]:5070>\r\n\
Content-Length: 0\r\n\r\n";
    let m = valid(buf);
    let v = vias(&m);
    assert_eq!(v[1].transport, Transport::Tls);
    assert_eq!(v[1].port_or_default(), 5061);
    assert_eq!(v[0].received(), Some(Ok(IpAddr::V6(v6("2001:db8::99")))));
}

#[test]
fn ipv6_malformed_references_fail_check() {
    let base = std::str::from_utf8(IPV6_INVITE).unwrap();
    // Unbracketed IPv6 in the Request-URI.
    let bad = base.replace("sip:bob@[2001:db8::10]:5070;", "sip:bob@2001:db8::10;");
    assert_eq!(check_err(bad.as_bytes()), ParseError::InvalidRequestUri);
    // A received that is not an address, a sent-by that is not a host.
    let bad = base.replace("received=2001:db8::99", "received=2001:db8::zz");
    assert_eq!(check_err(bad.as_bytes()), ParseError::InvalidVia);
    let bad = base.replace("[2001:db8::1]:5062;branch", "[2001:db8::1:5062;branch");
    assert_eq!(check_err(bad.as_bytes()), ParseError::InvalidVia);
    // rport must be a port.
    let bad = base.replace("rport=40000", "rport=400000");
    assert_eq!(check_err(bad.as_bytes()), ParseError::InvalidVia);
    // An IPv6 Route or Contact without its closing bracket.
    let bad = base.replace("<sip:[2001:db8::10];lr>", "<sip:[2001:db8::10;lr>");
    assert_eq!(check_err(bad.as_bytes()), ParseError::InvalidNameAddr);
    let bad = base.replace(
        "<sip:[2001:db8::10]>\r\nContent",
        "<sip:[2001:db8::10>\r\nContent",
    );
    assert_eq!(check_err(bad.as_bytes()), ParseError::InvalidContact);
}
