use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::exposition::{self, ExpositionError};
use super::*;
use crate::config::{Config, ListenSpec, Transport};
use crate::io::Peer;
use crate::mesh::Outbox;
use crate::shard::Shard;

fn shard() -> Shard {
    let mut cfg = Config::for_tests();
    cfg.listen = vec!["udp:192.0.2.10:5060".parse::<ListenSpec>().unwrap()];
    let ips: Vec<IpAddr> = vec!["192.0.2.10".parse().unwrap()];
    Shard::in_memory(0, &cfg, ips)
}

fn datagram(sh: &mut Shard, text: &str) {
    let peer = Peer {
        transport: Transport::Udp,
        addr: "198.51.100.7:5060".parse().unwrap(),
        listener: 0,
        conn: None,
    };
    let mut out = Outbox::new();
    sh.on_datagram(Instant::now(), peer, text.as_bytes(), &mut out);
}

fn options(branch: &str, cseq_method: &str) -> String {
    format!(
        "OPTIONS sip:192.0.2.10 SIP/2.0\r\n\
Via: SIP/2.0/UDP 198.51.100.7;branch={branch}\r\n\
Max-Forwards: 70\r\n\
To: <sip:192.0.2.10>\r\n\
From: <sip:alice@example.com>;tag=a1\r\n\
Call-ID: {branch}@client\r\n\
CSeq: 1 {cseq_method}\r\n\
Content-Length: 0\r\n\r\n"
    )
}

#[test]
fn shard_snapshot_follows_a_known_sequence_of_messages() {
    let mut sh = shard();
    let before = sh.snapshot();
    assert_eq!(before.responses_out_total(), 0);
    assert_eq!(before.local, 0);

    // Two OPTIONS to the proxy itself: each handled here and answered 200.
    datagram(&mut sh, &options("z9hG4bKa", "OPTIONS"));
    datagram(&mut sh, &options("z9hG4bKb", "OPTIONS"));
    // A CSeq method that differs from the request's: 400 (RFC 3261 §8.1.1.5).
    datagram(&mut sh, &options("z9hG4bKc", "INVITE"));
    // Not SIP at all: dropped without an answer.
    datagram(&mut sh, "hello\r\n\r\n");

    let s = sh.snapshot();
    assert_eq!(s.local, 3);
    assert_eq!(s.responses_out[1], 2, "2xx out");
    assert_eq!(s.responses_out[3], 1, "4xx out");
    assert_eq!(s.responses_out_total(), 3);
    assert_eq!(s.dropped_total(), 1);
    assert_eq!(s.mesh_out + s.mesh_in, 0);
    // The proxy core counts requests by method and its transactions.
    assert_eq!(s.requests_in(MethodClass::Options), 3);
    // The malformed one is answered without a transaction.
    assert_eq!(s.transactions_created, 2);

    // What the runtime records adds to the same snapshot.
    sh.metrics_mut()
        .inc_request_in(&crate::sip::Method::Options);
    assert_eq!(sh.snapshot().requests_in(MethodClass::Options), 4);
}

#[test]
fn each_record_method_moves_its_own_figure() {
    let mut m = ShardMetrics::new();
    m.inc_request_in(&Method::Invite);
    m.inc_request_in(&Method::Invite);
    m.inc_request_in(&Method::Prack);
    m.inc_request_out(&Method::Cancel);
    m.inc_response_in(180);
    m.inc_response_in(100);
    m.inc_response_out(603);
    m.inc_transaction_created();
    m.inc_transaction_timed_out();
    m.set_transactions_live(7);
    m.inc_retransmission_absorbed();
    m.inc_fork(3);
    m.inc_local();
    m.inc_mesh_out();
    m.inc_mesh_in();
    m.inc_registration();
    m.set_bindings_live(5);
    m.add_binding_expirations(2);
    m.inc_auth_challenge();
    m.inc_auth_failure();
    m.inc_dropped(DropReason::RateLimit);
    m.set_connections_open(4);
    m.inc_connection_refused(Transport::Tls);
    m.observe_forward_latency(Duration::from_micros(250));
    m.observe_transaction_duration(Duration::from_millis(40));

    let s = m.snapshot();
    assert_eq!(s.requests_in(MethodClass::Invite), 2);
    assert_eq!(s.requests_in(MethodClass::Other), 1);
    assert_eq!(s.requests_in_total(), 3);
    assert_eq!(s.requests_out(MethodClass::Cancel), 1);
    assert_eq!(s.responses_in, [2, 0, 0, 0, 0, 0]);
    assert_eq!(s.responses_out, [0, 0, 0, 0, 0, 1]);
    assert_eq!(s.transactions_created, 1);
    assert_eq!(s.transactions_timed_out, 1);
    assert_eq!(s.transactions_live, 7);
    assert_eq!(s.retransmissions_absorbed, 1);
    assert_eq!((s.forks, s.fork_branches), (1, 3));
    assert_eq!((s.local, s.mesh_out, s.mesh_in), (1, 1, 1));
    assert_eq!(s.registrations, 1);
    assert_eq!(s.bindings_live, 5);
    assert_eq!(s.binding_expirations, 2);
    assert_eq!((s.auth_challenges, s.auth_failures), (1, 1));
    assert_eq!(s.dropped(DropReason::RateLimit), 1);
    assert_eq!(s.dropped_total(), 1);
    assert_eq!(s.connections_open, 4);
    assert_eq!(s.connections_refused, [0, 1]);
    assert_eq!(s.forward_latency_us.len(), 1);
    assert_eq!(s.forward_latency_sum_us, 250);
    assert_eq!(s.transaction_duration_ms.len(), 1);
    assert_eq!(s.transaction_duration_sum_ms, 40);

    // Gauges are set, not added.
    m.set_transactions_live(2);
    assert_eq!(m.snapshot().transactions_live, 2);
}

#[test]
fn invalid_status_codes_and_udp_refusals_are_not_counted() {
    let mut m = ShardMetrics::new();
    m.inc_response_in(99);
    m.inc_response_out(700);
    m.inc_response_out(0);
    m.inc_connection_refused(Transport::Udp);
    let s = m.snapshot();
    assert_eq!(s.responses_in, [0; 6]);
    assert_eq!(s.responses_out, [0; 6]);
    assert_eq!(s.connections_refused, [0; 2]);
    m.inc_response_in(100);
    m.inc_response_in(699);
    assert_eq!(m.snapshot().responses_in, [1, 0, 0, 0, 0, 1]);
}

#[test]
fn latency_beyond_the_histogram_saturates() {
    let mut m = ShardMetrics::new();
    m.observe_forward_latency(Duration::from_secs(3600));
    m.observe_transaction_duration(Duration::from_secs(86_400));
    let s = m.snapshot();
    assert_eq!(s.forward_latency_us.len(), 1);
    assert!(s.forward_latency_us.max() <= 61_000_000);
    assert_eq!(s.transaction_duration_ms.len(), 1);
}

#[test]
fn merge_sums_counters_gauges_and_histograms() {
    let mut a = ShardMetrics::new();
    let mut b = ShardMetrics::new();
    for _ in 0..3 {
        a.inc_request_in(&Method::Register);
        a.observe_forward_latency(Duration::from_micros(100));
    }
    a.set_transactions_live(4);
    b.inc_request_in(&Method::Register);
    b.set_transactions_live(6);
    b.observe_forward_latency(Duration::from_micros(10_000));
    b.inc_dropped(DropReason::Malformed);

    let sum = Snapshot::merged([&a.snapshot(), &b.snapshot()]);
    assert_eq!(sum.requests_in(MethodClass::Register), 4);
    assert_eq!(sum.transactions_live, 10);
    assert_eq!(sum.dropped(DropReason::Malformed), 1);
    assert_eq!(sum.forward_latency_us.len(), 4);
    assert_eq!(sum.forward_latency_sum_us, 10_300);
    assert_eq!(sum.forward_latency_us.value_at_quantile(0.5), 100);
    let p99 = sum.forward_latency_us.value_at_quantile(0.99);
    assert!((9_900..=10_100).contains(&p99), "{p99}");
}

#[test]
fn forward_latency_quantile_since_covers_only_the_interval() {
    let mut m = ShardMetrics::new();
    for _ in 0..100 {
        m.observe_forward_latency(Duration::from_micros(5_000));
    }
    let earlier = m.snapshot();
    assert_eq!(
        m.snapshot().forward_latency_quantile_since(&earlier, 0.5),
        None
    );
    m.observe_forward_latency(Duration::from_micros(20));
    let now = m.snapshot();
    assert_eq!(now.forward_latency_quantile_since(&earlier, 0.99), Some(20));
    // Over everything, the 5 ms observations dominate.
    assert!(now.forward_latency_us.value_at_quantile(0.5) >= 4_900);
}

fn rendered() -> String {
    let mut m = ShardMetrics::new();
    m.inc_request_in(&Method::Invite);
    m.inc_response_out(200);
    m.inc_mesh_out();
    m.inc_dropped(DropReason::Limits);
    m.set_transactions_live(3);
    // 300 µs lands in le=0.0005 and not le=0.00025; 2 ms in le=0.0025.
    m.observe_forward_latency(Duration::from_micros(300));
    m.observe_forward_latency(Duration::from_micros(2_000));
    m.observe_transaction_duration(Duration::from_millis(1_500));
    let mut other = ShardMetrics::new();
    other.inc_request_in(&Method::Invite);
    let merged = Snapshot::merged([&m.snapshot(), &other.snapshot()]);
    render(
        &merged,
        ShardHealth {
            shards: 2,
            fresh: 2,
        },
    )
}

#[test]
fn rendered_text_is_a_well_formed_exposition() {
    let text = rendered();
    let exp = exposition::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    // Every non-comment line is `name{labels} value` (checked by the parser) and
    // belongs to a family with HELP and TYPE.
    assert!(exp.samples.len() > 60);
    for f in &exp.families {
        assert!(f.name.starts_with("coresip_"), "{}", f.name);
        assert!(f.help.as_deref().is_some_and(|h| !h.is_empty()));
    }
    assert!(text.ends_with("# EOF\n"));
    // No label set is written empty.
    assert!(!text.contains("{}"));
}

#[test]
fn rendered_values_match_the_snapshot() {
    let exp = exposition::parse(&rendered()).unwrap();
    let v = |name: &str, labels: &[(&str, &str)]| exp.value(name, labels).unwrap();
    assert_eq!(
        v(
            "coresip_requests_total",
            &[("direction", "in"), ("method", "INVITE")]
        ),
        2.0
    );
    assert_eq!(
        v(
            "coresip_requests_total",
            &[("direction", "out"), ("method", "INVITE")]
        ),
        0.0
    );
    assert_eq!(
        v(
            "coresip_responses_total",
            &[("direction", "out"), ("class", "2xx")]
        ),
        1.0
    );
    assert_eq!(v("coresip_mesh_hops_total", &[("direction", "out")]), 1.0);
    assert_eq!(v("coresip_dropped_total", &[("reason", "limits")]), 1.0);
    assert_eq!(v("coresip_transactions_live", &[]), 3.0);
    assert_eq!(v("coresip_shards", &[]), 2.0);
    assert_eq!(v("coresip_shards_reporting", &[]), 2.0);

    let h = "coresip_forward_latency_seconds";
    assert_eq!(v(&format!("{h}_count"), &[]), 2.0);
    assert!((v(&format!("{h}_sum"), &[]) - 0.0023).abs() < 1e-9);
    let bucket = |le: &str| v(&format!("{h}_bucket"), &[("le", le)]);
    assert_eq!(bucket("0.00025"), 0.0);
    assert_eq!(bucket("0.0005"), 1.0);
    assert_eq!(bucket("0.001"), 1.0);
    assert_eq!(bucket("0.0025"), 2.0);
    assert_eq!(bucket("+Inf"), 2.0);
    // Buckets are cumulative.
    let counts: Vec<f64> = exp
        .series(&format!("{h}_bucket"))
        .map(|s| s.value)
        .collect();
    assert_eq!(counts.len(), LATENCY_BUCKETS.len() + 1);
    assert!(counts.windows(2).all(|w| w[0] <= w[1]));

    let d = "coresip_transaction_duration_seconds";
    assert_eq!(v(&format!("{d}_bucket"), &[("le", "1.0")]), 0.0);
    assert_eq!(v(&format!("{d}_bucket"), &[("le", "2.0")]), 1.0);
    assert!((v(&format!("{d}_sum"), &[]) - 1.5).abs() < 1e-9);
}

/// A proxy's own latency is tens of µs: the buckets below 100 µs must tell 15, 40 and
/// 60 µs apart, or a p50 read from them is a guess across the whole first bucket.
#[test]
fn latency_buckets_resolve_tens_of_microseconds() {
    let mut m = ShardMetrics::new();
    for us in [15, 40, 60] {
        m.observe_forward_latency(Duration::from_micros(us));
    }
    let text = render(
        &m.snapshot(),
        ShardHealth {
            shards: 1,
            fresh: 1,
        },
    );
    let exp = exposition::parse(&text).unwrap();
    let cumulative = |bound: f64| {
        exp.series("coresip_forward_latency_seconds_bucket")
            .find(|s| s.label("le").and_then(|le| le.parse::<f64>().ok()) == Some(bound))
            .map(|s| s.value)
            .unwrap_or_else(|| panic!("no bucket le={bound}\n{text}"))
    };
    assert_eq!(cumulative(0.000_01), 0.0);
    assert_eq!(cumulative(0.000_02), 1.0);
    assert_eq!(cumulative(0.000_03), 1.0);
    assert_eq!(cumulative(0.000_05), 2.0);
    assert_eq!(cumulative(0.000_075), 3.0);
}

#[test]
fn exposition_parser_rejects_what_prometheus_would() {
    let ok = "# HELP a_b Help.\n# TYPE a_b counter\na_b_total{x=\"1\",y=\"q\\\"}\"} 3\n";
    let exp = exposition::parse(ok).unwrap();
    assert_eq!(exp.value("a_b_total", &[("y", "q\"}")]), Some(3.0));

    for (text, want) in [
        (
            "# TYPE a counter\na_total 1\n",
            ExpositionError::NoHelp("a".into()),
        ),
        ("# HELP a h\na 1\n", ExpositionError::NoType("a".into())),
        (
            "# HELP a h\n# TYPE a gauge\nb 1\n",
            ExpositionError::NoFamily {
                line: 3,
                name: "b".into(),
            },
        ),
        (
            // A gauge has no _total series.
            "# HELP a h\n# TYPE a gauge\na_total 1\n",
            ExpositionError::NoFamily {
                line: 3,
                name: "a_total".into(),
            },
        ),
        (
            "# HELP a h\n# TYPE a gauge\na{x=1} 1\n",
            ExpositionError::Labels { line: 3 },
        ),
        (
            "# HELP a h\n# TYPE a gauge\na{x=\"1\" 1\n",
            ExpositionError::Labels { line: 3 },
        ),
        (
            "# HELP a h\n# TYPE a gauge\na one\n",
            ExpositionError::Value { line: 3 },
        ),
        (
            "# HELP a h\n# TYPE a gauge\na\n",
            ExpositionError::Syntax { line: 3 },
        ),
        (
            "# HELP a h\n# TYPE a gauge\n9a 1\n",
            ExpositionError::Syntax { line: 3 },
        ),
        (
            "# HELP a h\n# TYPE a gauge\n# EOF\na 1\n",
            ExpositionError::AfterEof { line: 4 },
        ),
        ("# NOTE a\n", ExpositionError::UnknownComment { line: 1 }),
    ] {
        assert_eq!(exposition::parse(text), Err(want), "{text:?}");
    }
}
