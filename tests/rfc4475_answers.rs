//! RFC 4475 §3.1.2, the invalid messages, as the proxy answers them over UDP: each
//! request the RFC says to answer gets its `400` (or `505` for §3.1.2.16) back to
//! where it came from, and the two responses (§3.1.2.5, §3.1.2.19) are dropped.
//! None of them may be met with silence: a phone would retransmit into the void.

use std::time::Instant;

use coresip::io::Peer;
use coresip::Config;
use coresip::Outbox;
use coresip::Shard;

/// (message, the status answered; None: dropped).
const EXPECTED: &[(&str, Option<u16>)] = &[
    ("badinv01", Some(400)),   // §3.1.2.1
    ("clerr", Some(400)),      // §3.1.2.2: "should respond with a 400"
    ("ncl", Some(400)),        // §3.1.2.3
    ("scalar02", Some(400)),   // §3.1.2.4
    ("scalarlg", None),        // §3.1.2.5: a response
    ("quotbal", Some(400)),    // §3.1.2.6
    ("ltgtruri", Some(400)),   // §3.1.2.7
    ("lwsruri", Some(400)),    // §3.1.2.8: "should respond with a 400"
    ("lwsstart", Some(400)),   // §3.1.2.9: "acceptable to reject"
    ("trws", Some(400)),       // §3.1.2.10: "acceptable to reject"
    ("escruri", Some(400)),    // §3.1.2.11
    ("regbadct", Some(400)),   // §3.1.2.13
    ("badaspec", Some(400)),   // §3.1.2.14
    ("baddn", Some(400)),      // §3.1.2.15 (the archive lacks the final CRLF)
    ("badvers", Some(505)),    // §3.1.2.16
    ("mismatch01", Some(400)), // §3.1.2.17
    ("mismatch02", Some(400)), // §3.1.2.18: 501 preferred, 400 allowed
    ("bigcode", None),         // §3.1.2.19: a response
];

fn shard() -> Shard {
    let mut c = Config::for_tests();
    c.cores = 1;
    c.listen = vec!["udp:0.0.0.0:5060".parse().unwrap()];
    c.domains = vec!["example.com".into()];
    Shard::in_memory(0, &c, vec!["127.0.0.1".parse().unwrap()])
}

#[test]
fn every_invalid_request_of_3_1_2_is_answered() {
    let mut sh = shard();
    for &(name, want) in EXPECTED {
        let mut bytes = std::fs::read(format!("tests/rfc4475/{name}.dat")).unwrap();
        if name == "baddn" {
            bytes.extend_from_slice(b"\r\n");
        }
        let mut out = Outbox::new();
        let from = Peer::udp("127.0.0.1:40000".parse().unwrap(), 0);
        sh.on_datagram(Instant::now(), from, &bytes, &mut out);
        let sent: Vec<String> = out
            .transmits()
            .map(|(_, b)| String::from_utf8_lossy(b).into_owned())
            .collect();
        match want {
            None => assert!(sent.is_empty(), "{name}: {sent:?}"),
            Some(code) => {
                assert_eq!(sent.len(), 1, "{name}: {sent:?}");
                let status = format!("SIP/2.0 {code} ");
                assert!(sent[0].starts_with(&status), "{name}: {}", sent[0]);
                // The answer is the request's (§8.2.6.2): its Call-ID.
                let call_id = String::from_utf8_lossy(&bytes)
                    .lines()
                    .find_map(|l| l.strip_prefix("Call-ID: ").map(str::to_string))
                    .unwrap();
                assert!(sent[0].contains(&call_id), "{name}: {}", sent[0]);
            }
        }
    }
}

#[test]
fn a_bad_content_length_on_a_stream_is_not_salvaged() {
    // Over TCP a Content-Length that does not parse is a framing error: nothing
    // after it can be trusted, and the connection is closed (§3.1.2.3).
    let mut sh = shard();
    let bytes = std::fs::read("tests/rfc4475/ncl.dat").unwrap();
    let mut out = Outbox::new();
    let from = Peer {
        transport: coresip::io::Transport::Tcp,
        ..Peer::udp("127.0.0.1:40000".parse().unwrap(), 0)
    };
    sh.on_stream_message(Instant::now(), from, &bytes, &mut out);
    assert_eq!(out.transmits().count(), 0);
}
