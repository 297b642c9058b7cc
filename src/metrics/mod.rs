//! What a shard counts about itself, and how the admin thread shows it (DESIGN.md §1).
//!
//! Each shard owns one [`ShardMetrics`]: plain `u64` counters and `hdrhistogram`
//! histograms, no atomics and no sharing, so recording costs an add. Once a second the
//! runtime takes a [`Snapshot`] (a clone) and sends it to the admin thread, which
//! [merges](Snapshot::merge) the latest snapshot of every shard and [renders](render)
//! the sum as Prometheus text through `prometheus-client`.
//!
//! Snapshots are cumulative since the shard started: counters only grow, gauges are
//! the value at the time of the snapshot, histograms hold every observation. Rates and
//! interval quantiles are differences of two snapshots ([`Snapshot::forward_latency_quantile_since`]).
//!
//! The histograms are exposed as Prometheus histograms with fixed buckets rather than
//! summaries: buckets can be summed across instances and turned into any quantile over
//! any window with `histogram_quantile(rate(...))`, while a summary's quantiles are
//! fixed at scrape time and cannot be aggregated.

use std::time::Duration;

use hdrhistogram::Histogram;

use crate::io::Transport;
use crate::sip::Method;

pub mod exposition;
mod prometheus;

pub(crate) use prometheus::CONTENT_TYPE;
pub use prometheus::{render, ShardHealth};

#[cfg(test)]
mod tests;

/// The request methods counted separately; everything else is [`MethodClass::Other`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MethodClass {
    Invite,
    Ack,
    Bye,
    Cancel,
    Register,
    Options,
    Other,
}

impl MethodClass {
    /// Every class, in label order.
    pub const ALL: [MethodClass; 7] = [
        MethodClass::Invite,
        MethodClass::Ack,
        MethodClass::Bye,
        MethodClass::Cancel,
        MethodClass::Register,
        MethodClass::Options,
        MethodClass::Other,
    ];

    /// The class of `m`.
    pub fn of(m: &Method<'_>) -> MethodClass {
        match m {
            Method::Invite => MethodClass::Invite,
            Method::Ack => MethodClass::Ack,
            Method::Bye => MethodClass::Bye,
            Method::Cancel => MethodClass::Cancel,
            Method::Register => MethodClass::Register,
            Method::Options => MethodClass::Options,
            _ => MethodClass::Other,
        }
    }

    /// The `method` label value.
    pub fn label(self) -> &'static str {
        match self {
            MethodClass::Invite => "INVITE",
            MethodClass::Ack => "ACK",
            MethodClass::Bye => "BYE",
            MethodClass::Cancel => "CANCEL",
            MethodClass::Register => "REGISTER",
            MethodClass::Options => "OPTIONS",
            MethodClass::Other => "other",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Status classes 1xx to 6xx (RFC 3261 §21), in label order.
pub(crate) const STATUS_CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "6xx"];

/// The index into [`STATUS_CLASSES`] of `status`, if it is a valid status code.
fn status_class(status: u16) -> Option<usize> {
    match status {
        100..=699 => Some(usize::from(status / 100 - 1)),
        _ => None,
    }
}

/// Why a message was dropped without an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// Could not be parsed far enough to answer (no start line, no Via), or a
    /// malformed message that must not be answered (a bad ACK, a bad response).
    Malformed,
    /// Over a configured limit (message size, connection limits).
    Limits,
    /// Refused by rate limiting.
    RateLimit,
    /// Nothing to do with it: a response matching no transaction of ours, a request
    /// the proxy has no route for.
    Unroutable,
}

impl DropReason {
    /// Every reason, in label order.
    pub const ALL: [DropReason; 4] = [
        DropReason::Malformed,
        DropReason::Limits,
        DropReason::RateLimit,
        DropReason::Unroutable,
    ];

    /// The `reason` label value.
    pub fn label(self) -> &'static str {
        match self {
            DropReason::Malformed => "malformed",
            DropReason::Limits => "limits",
            DropReason::RateLimit => "rate_limit",
            DropReason::Unroutable => "unroutable",
        }
    }
}

/// The stream transports whose connections are counted, in label order.
pub(crate) const STREAM_TRANSPORTS: [Transport; 2] = [Transport::Tcp, Transport::Tls];

fn stream_index(t: Transport) -> Option<usize> {
    STREAM_TRANSPORTS.iter().position(|&s| s == t)
}

/// Highest proxy-added latency recorded, in µs (60 s); larger values saturate.
const LATENCY_MAX_US: u64 = 60_000_000;
/// Highest transaction duration recorded, in ms (1 h); larger values saturate.
const DURATION_MAX_MS: u64 = 3_600_000;
/// Two significant digits: 1 % precision in ~20 KiB per histogram, cheap to clone
/// once a second.
const SIGFIG: u8 = 2;

/// `le` bounds (seconds) of the proxy-added latency buckets. Fine below 1 ms, where a
/// proxy's own latency lives, so that a p50 read from bucket deltas (the load kit's
/// `lat p50 µs`) is not an interpolation across a decade.
pub(crate) const LATENCY_BUCKETS: [f64; 19] = [
    0.000_01, 0.000_02, 0.000_03, 0.000_05, 0.000_075, 0.000_1, 0.000_15, 0.000_25, 0.000_5, 0.001,
    0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];
/// `le` bounds (seconds) of the transaction duration buckets: T1 multiples up to
/// Timer B/F (64·T1 = 32 s), Timer C (180 s).
pub(crate) const DURATION_BUCKETS: [f64; 12] = [
    0.01, 0.05, 0.1, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 180.0,
];

fn histogram(high: u64) -> Histogram<u64> {
    // The bounds are constants that satisfy hdrhistogram's rules (low ≥ 1,
    // high ≥ 2·low, sigfig ≤ 5), so creation cannot fail.
    Histogram::new_with_bounds(1, high, SIGFIG).expect("constant histogram bounds are valid")
}

/// The figures of one shard, or the sum of several: what the admin thread receives and
/// renders. Cumulative since start, except the gauges (`*_live`, `connections_open`).
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Requests received, by [`MethodClass`].
    pub requests_in: [u64; 7],
    /// Requests sent (forwarded or generated), by [`MethodClass`].
    pub requests_out: [u64; 7],
    /// Responses received, by status class 1xx..6xx.
    pub responses_in: [u64; 6],
    /// Responses sent (forwarded or generated), by status class 1xx..6xx.
    pub responses_out: [u64; 6],
    /// Server and client transactions created.
    pub transactions_created: u64,
    /// Transactions alive now (gauge).
    pub transactions_live: u64,
    /// Transactions ended by a timeout (Timer B, F, H, C).
    pub transactions_timed_out: u64,
    /// Retransmitted requests and responses absorbed by a transaction.
    pub retransmissions_absorbed: u64,
    /// Requests forked to more than one target.
    pub forks: u64,
    /// Branches those forks created.
    pub fork_branches: u64,
    /// Messages handled on the core they arrived on.
    pub local: u64,
    /// Messages sent over the mesh to the shard that owns them.
    pub mesh_out: u64,
    /// Messages received over the mesh from the core they arrived on.
    pub mesh_in: u64,
    /// REGISTER requests accepted.
    pub registrations: u64,
    /// Location bindings held now (gauge).
    pub bindings_live: u64,
    /// Other cores' bindings held in this core's location replica now (gauge).
    pub bindings_replicated: u64,
    /// Bindings removed because they expired.
    pub binding_expirations: u64,
    /// 401/407 challenges sent.
    pub auth_challenges: u64,
    /// Credentials that did not verify.
    pub auth_failures: u64,
    /// Messages dropped without an answer, by [`DropReason`].
    pub dropped: [u64; 4],
    /// TCP and TLS connections open now, both directions (gauge).
    pub connections_open: u64,
    /// Inbound connections refused (limits), by transport: TCP, TLS.
    pub connections_refused: [u64; 2],
    /// Proxy-added latency, receive → forward, in µs.
    pub forward_latency_us: Histogram<u64>,
    /// Exact sum of `forward_latency_us` (the histogram's own sum is approximate).
    pub forward_latency_sum_us: u64,
    /// Transaction duration, creation → termination, in ms.
    pub transaction_duration_ms: Histogram<u64>,
    /// Exact sum of `transaction_duration_ms`.
    pub transaction_duration_sum_ms: u64,
}

impl Default for Snapshot {
    fn default() -> Snapshot {
        Snapshot {
            requests_in: [0; 7],
            requests_out: [0; 7],
            responses_in: [0; 6],
            responses_out: [0; 6],
            transactions_created: 0,
            transactions_live: 0,
            transactions_timed_out: 0,
            retransmissions_absorbed: 0,
            forks: 0,
            fork_branches: 0,
            local: 0,
            mesh_out: 0,
            mesh_in: 0,
            registrations: 0,
            bindings_live: 0,
            bindings_replicated: 0,
            binding_expirations: 0,
            auth_challenges: 0,
            auth_failures: 0,
            dropped: [0; 4],
            connections_open: 0,
            connections_refused: [0; 2],
            forward_latency_us: histogram(LATENCY_MAX_US),
            forward_latency_sum_us: 0,
            transaction_duration_ms: histogram(DURATION_MAX_MS),
            transaction_duration_sum_ms: 0,
        }
    }
}

fn add_all<const N: usize>(a: &mut [u64; N], b: &[u64; N]) {
    for (x, y) in a.iter_mut().zip(b) {
        *x = x.wrapping_add(*y);
    }
}

impl Snapshot {
    /// Adds `other` into `self`: counters and gauges are summed, histograms added.
    pub fn merge(&mut self, other: &Snapshot) {
        add_all(&mut self.requests_in, &other.requests_in);
        add_all(&mut self.requests_out, &other.requests_out);
        add_all(&mut self.responses_in, &other.responses_in);
        add_all(&mut self.responses_out, &other.responses_out);
        add_all(&mut self.dropped, &other.dropped);
        add_all(&mut self.connections_refused, &other.connections_refused);
        for (x, y) in [
            (&mut self.transactions_created, other.transactions_created),
            (&mut self.transactions_live, other.transactions_live),
            (
                &mut self.transactions_timed_out,
                other.transactions_timed_out,
            ),
            (
                &mut self.retransmissions_absorbed,
                other.retransmissions_absorbed,
            ),
            (&mut self.forks, other.forks),
            (&mut self.fork_branches, other.fork_branches),
            (&mut self.local, other.local),
            (&mut self.mesh_out, other.mesh_out),
            (&mut self.mesh_in, other.mesh_in),
            (&mut self.registrations, other.registrations),
            (&mut self.bindings_live, other.bindings_live),
            (&mut self.bindings_replicated, other.bindings_replicated),
            (&mut self.binding_expirations, other.binding_expirations),
            (&mut self.auth_challenges, other.auth_challenges),
            (&mut self.auth_failures, other.auth_failures),
            (&mut self.connections_open, other.connections_open),
            (
                &mut self.forward_latency_sum_us,
                other.forward_latency_sum_us,
            ),
            (
                &mut self.transaction_duration_sum_ms,
                other.transaction_duration_sum_ms,
            ),
        ] {
            *x = x.wrapping_add(y);
        }
        // Every histogram here is built by `histogram()` with the same bounds for its
        // field, so adding cannot run out of range.
        let _ = self.forward_latency_us.add(&other.forward_latency_us);
        let _ = self
            .transaction_duration_ms
            .add(&other.transaction_duration_ms);
    }

    /// The sum of `snapshots`.
    pub fn merged<'a>(snapshots: impl IntoIterator<Item = &'a Snapshot>) -> Snapshot {
        let mut sum = Snapshot::default();
        for s in snapshots {
            sum.merge(s);
        }
        sum
    }

    /// Requests received with this method.
    pub fn requests_in(&self, m: MethodClass) -> u64 {
        self.requests_in.get(m.index()).copied().unwrap_or(0)
    }

    /// Requests sent with this method.
    pub fn requests_out(&self, m: MethodClass) -> u64 {
        self.requests_out.get(m.index()).copied().unwrap_or(0)
    }

    /// Messages dropped for this reason.
    pub fn dropped(&self, r: DropReason) -> u64 {
        self.dropped.get(r as usize).copied().unwrap_or(0)
    }

    /// All requests received.
    pub fn requests_in_total(&self) -> u64 {
        self.requests_in.iter().sum()
    }

    /// All responses sent.
    pub fn responses_out_total(&self) -> u64 {
        self.responses_out.iter().sum()
    }

    /// All messages dropped.
    pub fn dropped_total(&self) -> u64 {
        self.dropped.iter().sum()
    }

    /// The `q` quantile (0..=1) of the forward latency observed since `earlier` was
    /// taken, in µs; `None` when nothing was observed in between. `earlier` must be an
    /// older snapshot of the same shards (its histogram a subset of this one's);
    /// otherwise the quantile is over everything since start.
    pub fn forward_latency_quantile_since(&self, earlier: &Snapshot, q: f64) -> Option<u64> {
        let mut h = self.forward_latency_us.clone();
        if h.subtract(&earlier.forward_latency_us).is_err() {
            h = self.forward_latency_us.clone();
        }
        (!h.is_empty()).then(|| h.value_at_quantile(q))
    }
}

/// The counters and histograms one shard records into. Owned by the shard: recording
/// is a plain add, no synchronisation.
#[derive(Debug, Clone, Default)]
pub struct ShardMetrics {
    s: Snapshot,
}

impl ShardMetrics {
    /// All zero.
    pub fn new() -> ShardMetrics {
        ShardMetrics::default()
    }

    /// A copy of the figures so far, to send to the admin thread.
    pub fn snapshot(&self) -> Snapshot {
        self.s.clone()
    }

    /// The figures so far, without copying the histograms.
    pub fn counters(&self) -> &Snapshot {
        &self.s
    }

    /// A request arrived (from a client, another proxy or the mesh's origin core; a
    /// message is counted once, on the shard that handles it).
    pub fn inc_request_in(&mut self, m: &Method<'_>) {
        bump(&mut self.s.requests_in, MethodClass::of(m).index());
    }

    /// A request was sent (forwarded or generated, e.g. CANCEL, ACK for a non-2xx).
    pub fn inc_request_out(&mut self, m: &Method<'_>) {
        bump(&mut self.s.requests_out, MethodClass::of(m).index());
    }

    /// A response with this status code arrived. Codes outside 100..=699 are ignored.
    pub fn inc_response_in(&mut self, status: u16) {
        if let Some(i) = status_class(status) {
            bump(&mut self.s.responses_in, i);
        }
    }

    /// A response with this status code was sent (forwarded or generated).
    pub fn inc_response_out(&mut self, status: u16) {
        if let Some(i) = status_class(status) {
            bump(&mut self.s.responses_out, i);
        }
    }

    /// A server or client transaction was created.
    pub fn inc_transaction_created(&mut self) {
        self.s.transactions_created += 1;
    }

    /// A transaction ended on a timeout (RFC 3261 Timers B, F, H; §16.8 Timer C).
    pub fn inc_transaction_timed_out(&mut self) {
        self.s.transactions_timed_out += 1;
    }

    /// The number of transactions alive now.
    pub fn set_transactions_live(&mut self, n: u64) {
        self.s.transactions_live = n;
    }

    /// A retransmission was absorbed by a transaction (RFC 3261 §17.2.1, §17.2.2).
    pub fn inc_retransmission_absorbed(&mut self) {
        self.s.retransmissions_absorbed += 1;
    }

    /// A request was forked to `branches` targets (RFC 3261 §16.6).
    pub fn inc_fork(&mut self, branches: u64) {
        self.s.forks += 1;
        self.s.fork_branches += branches;
    }

    /// A message was handled on the core it arrived on.
    pub fn inc_local(&mut self) {
        self.s.local += 1;
    }

    /// A message was sent over the mesh to the shard that owns it.
    pub fn inc_mesh_out(&mut self) {
        self.s.mesh_out += 1;
    }

    /// A message arrived over the mesh.
    pub fn inc_mesh_in(&mut self) {
        self.s.mesh_in += 1;
    }

    /// A REGISTER was accepted (RFC 3261 §10.3).
    pub fn inc_registration(&mut self) {
        self.s.registrations += 1;
    }

    /// The number of location bindings this shard holds now.
    pub fn set_bindings_live(&mut self, n: u64) {
        self.s.bindings_live = n;
    }

    /// `n` bindings expired and were removed.
    pub fn add_binding_expirations(&mut self, n: u64) {
        self.s.binding_expirations += n;
    }

    /// A 401/407 challenge was sent (RFC 3261 §22.1).
    pub fn inc_auth_challenge(&mut self) {
        self.s.auth_challenges += 1;
    }

    /// Credentials were presented and did not verify.
    pub fn inc_auth_failure(&mut self) {
        self.s.auth_failures += 1;
    }

    /// A message was dropped without an answer.
    pub fn inc_dropped(&mut self, reason: DropReason) {
        bump(&mut self.s.dropped, reason as usize);
    }

    /// The number of TCP and TLS connections this core has open now.
    pub fn set_connections_open(&mut self, n: u64) {
        self.s.connections_open = n;
    }

    /// An inbound connection was refused (over a connection limit). UDP is ignored.
    pub fn inc_connection_refused(&mut self, t: Transport) {
        if let Some(i) = stream_index(t) {
            bump(&mut self.s.connections_refused, i);
        }
    }

    /// The time from receiving a request to sending it on (RFC 3261 §16.6 step 10
    /// done). Values over 60 s are recorded as 60 s.
    pub fn observe_forward_latency(&mut self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.s.forward_latency_us.saturating_record(us);
        self.s.forward_latency_sum_us = self.s.forward_latency_sum_us.saturating_add(us);
    }

    /// The lifetime of a transaction that ended. Values over 1 h are recorded as 1 h.
    pub fn observe_transaction_duration(&mut self, d: Duration) {
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        self.s.transaction_duration_ms.saturating_record(ms);
        self.s.transaction_duration_sum_ms = self.s.transaction_duration_sum_ms.saturating_add(ms);
    }
}

fn bump<const N: usize>(a: &mut [u64; N], i: usize) {
    if let Some(x) = a.get_mut(i) {
        *x += 1;
    }
}
