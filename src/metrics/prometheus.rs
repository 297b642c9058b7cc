//! Prometheus (OpenMetrics) text rendering of a [`Snapshot`], through
//! `prometheus-client`'s encoder so names, escaping, `_total` suffixes and histogram
//! series follow the format without hand-written printing.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use hdrhistogram::Histogram;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::{
    DropReason, MethodClass, Snapshot, DURATION_BUCKETS, LATENCY_BUCKETS, STATUS_CLASSES,
    STREAM_TRANSPORTS,
};

/// Figures about the shards themselves, known only to the admin thread.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShardHealth {
    /// Shards (cores) configured.
    pub shards: usize,
    /// Shards whose last snapshot is recent.
    pub fresh: usize,
}

/// The `Content-Type` of [`render`]'s output.
pub(crate) const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Renders `snap` (normally the merge of every shard's latest snapshot) and `health`
/// in the OpenMetrics text format, which Prometheus scrapes natively.
pub fn render(snap: &Snapshot, health: ShardHealth) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(SnapshotCollector {
        snap: Arc::new(snap.clone()),
        health,
    }));
    let mut out = String::with_capacity(8192);
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
    out
}

/// Encodes one snapshot on each scrape.
#[derive(Debug)]
struct SnapshotCollector {
    snap: Arc<Snapshot>,
    health: ShardHealth,
}

type Labels = [(&'static str, Cow<'static, str>)];

/// One family of counters or gauges: its name (without `_total`), help, and samples.
fn family(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    ty: MetricType,
    samples: &[(&Labels, u64)],
) -> fmt::Result {
    let mut m = enc.encode_descriptor(name, help, None, ty)?;
    if let [(labels, v)] = samples {
        if labels.is_empty() {
            return encode_value(m, ty, *v);
        }
    }
    for (labels, v) in samples {
        encode_value(m.encode_family(labels)?, ty, *v)?;
    }
    Ok(())
}

fn encode_value(m: MetricEncoder<'_>, ty: MetricType, v: u64) -> fmt::Result {
    match ty {
        MetricType::Gauge => ConstGauge::new(i64::try_from(v).unwrap_or(i64::MAX)).encode(m),
        _ => ConstCounter::new(v).encode(m),
    }
}

/// `(labels, value)` pairs from parallel lists of label sets and values.
fn labelled<'a, const K: usize>(
    labels: &'a [[(&'static str, Cow<'static, str>); K]],
    values: impl IntoIterator<Item = &'a u64>,
) -> Vec<(&'a Labels, u64)> {
    labels
        .iter()
        .zip(values)
        .map(|(l, v)| (&l[..], *v))
        .collect()
}

/// Per-bucket (not cumulative) counts of `h` for the `le` bounds `bounds` (in seconds)
/// when `h` records `unit` seconds per count, with `+Inf` last. A recorded value
/// belongs to the first bound its lowest equivalent value does not exceed, so a
/// boundary is exact to hdrhistogram's 1 % precision.
fn buckets(h: &Histogram<u64>, unit: f64, bounds: &[f64]) -> Vec<(f64, u64)> {
    let mut out: Vec<(f64, u64)> = bounds.iter().map(|&b| (b, 0)).collect();
    out.push((f64::INFINITY, 0));
    for v in h.iter_recorded() {
        let secs = h.lowest_equivalent(v.value_iterated_to()) as f64 * unit;
        let i = bounds
            .iter()
            .position(|&b| secs <= b)
            .unwrap_or(bounds.len());
        if let Some(slot) = out.get_mut(i) {
            slot.1 += v.count_at_value();
        }
    }
    out
}

fn histogram_family(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    h: &Histogram<u64>,
    sum: u64,
    unit: f64,
    bounds: &[f64],
) -> fmt::Result {
    let b = buckets(h, unit, bounds);
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Histogram)?;
    m.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
        sum as f64 * unit,
        h.len(),
        &b,
        None,
    )
}

fn cow(s: &'static str) -> Cow<'static, str> {
    Cow::Borrowed(s)
}

impl Collector for SnapshotCollector {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> fmt::Result {
        use MetricType::{Counter, Gauge};
        let s = &*self.snap;
        let e = &mut enc;

        let methods: Vec<[(&str, Cow<'static, str>); 2]> = ["in", "out"]
            .into_iter()
            .flat_map(|dir| {
                MethodClass::ALL.map(|m| [("direction", cow(dir)), ("method", cow(m.label()))])
            })
            .collect();
        let samples = labelled(&methods, s.requests_in.iter().chain(&s.requests_out));
        family(
            e,
            "coresip_requests",
            "SIP requests received (in) and sent (out), by method.",
            Counter,
            &samples,
        )?;

        let classes: Vec<[(&str, Cow<'static, str>); 2]> = ["in", "out"]
            .into_iter()
            .flat_map(|dir| STATUS_CLASSES.map(|c| [("direction", cow(dir)), ("class", cow(c))]))
            .collect();
        let samples = labelled(&classes, s.responses_in.iter().chain(&s.responses_out));
        family(
            e,
            "coresip_responses",
            "SIP responses received (in) and sent (out), by status class.",
            Counter,
            &samples,
        )?;

        let none: &Labels = &[];
        let single = |v: u64| [(none, v)];
        family(
            e,
            "coresip_transactions_created",
            "Server and client transactions created.",
            Counter,
            &single(s.transactions_created),
        )?;
        family(
            e,
            "coresip_transactions_live",
            "Transactions alive now.",
            Gauge,
            &single(s.transactions_live),
        )?;
        family(
            e,
            "coresip_transactions_timed_out",
            "Transactions ended by a timeout (Timers B, F, H, C).",
            Counter,
            &single(s.transactions_timed_out),
        )?;
        family(
            e,
            "coresip_retransmissions_absorbed",
            "Retransmitted messages absorbed by a transaction.",
            Counter,
            &single(s.retransmissions_absorbed),
        )?;
        family(
            e,
            "coresip_forks",
            "Requests forked to more than one target.",
            Counter,
            &single(s.forks),
        )?;
        family(
            e,
            "coresip_fork_branches",
            "Branches created by forking.",
            Counter,
            &single(s.fork_branches),
        )?;
        family(
            e,
            "coresip_messages_local",
            "Messages handled on the core they arrived on.",
            Counter,
            &single(s.local),
        )?;
        let out_l: &Labels = &[("direction", cow("out"))];
        let in_l: &Labels = &[("direction", cow("in"))];
        family(
            e,
            "coresip_mesh_hops",
            "Messages sent to (out) and received from (in) another core over the mesh.",
            Counter,
            &[(out_l, s.mesh_out), (in_l, s.mesh_in)],
        )?;
        family(
            e,
            "coresip_registrations",
            "REGISTER requests accepted.",
            Counter,
            &single(s.registrations),
        )?;
        family(
            e,
            "coresip_bindings_live",
            "Location bindings held now.",
            Gauge,
            &single(s.bindings_live),
        )?;
        family(
            e,
            "coresip_bindings_replicated",
            "Copies of other cores' bindings held in the cores' location replicas now.",
            Gauge,
            &single(s.bindings_replicated),
        )?;
        family(
            e,
            "coresip_binding_expirations",
            "Location bindings removed because they expired.",
            Counter,
            &single(s.binding_expirations),
        )?;
        family(
            e,
            "coresip_auth_challenges",
            "401/407 digest challenges sent.",
            Counter,
            &single(s.auth_challenges),
        )?;
        family(
            e,
            "coresip_auth_failures",
            "Credentials that did not verify.",
            Counter,
            &single(s.auth_failures),
        )?;

        let reasons: Vec<[(&str, Cow<'static, str>); 1]> = DropReason::ALL
            .iter()
            .map(|r| [("reason", cow(r.label()))])
            .collect();
        let samples = labelled(&reasons, &s.dropped);
        family(
            e,
            "coresip_dropped",
            "Messages dropped without an answer, by reason.",
            Counter,
            &samples,
        )?;
        family(
            e,
            "coresip_connections_open",
            "TCP and TLS connections open now, both directions.",
            Gauge,
            &single(s.connections_open),
        )?;
        let transports: Vec<[(&str, Cow<'static, str>); 1]> = STREAM_TRANSPORTS
            .iter()
            .map(|t| [("transport", cow(t.as_str()))])
            .collect();
        family(
            e,
            "coresip_connections_refused",
            "Inbound connections refused over a connection limit, by transport.",
            Counter,
            &labelled(&transports, &s.connections_refused),
        )?;

        histogram_family(
            e,
            "coresip_forward_latency_seconds",
            "Proxy-added latency: request received to request forwarded.",
            &s.forward_latency_us,
            s.forward_latency_sum_us,
            1e-6,
            &LATENCY_BUCKETS,
        )?;
        histogram_family(
            e,
            "coresip_transaction_duration_seconds",
            "Lifetime of finished transactions.",
            &s.transaction_duration_ms,
            s.transaction_duration_sum_ms,
            1e-3,
            &DURATION_BUCKETS,
        )?;

        family(
            e,
            "coresip_shards",
            "Shards (cores) configured.",
            Gauge,
            &single(self.health.shards as u64),
        )?;
        family(
            e,
            "coresip_shards_reporting",
            "Shards whose last snapshot reached the admin thread in the last 3 seconds.",
            Gauge,
            &single(self.health.fresh as u64),
        )
    }
}
