//! The admin thread (DESIGN.md §1): a plain std thread outside the executors. Every
//! core sends it a [`Snapshot`] once a second; it keeps the latest one of each shard,
//! merges them and logs a summary line every `--stats-interval`. With `--metrics` a
//! second thread serves `/metrics` and `/health` from the same board. Both block
//! until there is something to do: neither polls. `coresip stats` ([`print_stats`]) reads `/metrics` back
//! for an operator.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};

use crate::io::ShardId;
use crate::metrics::exposition::{self, Exposition, ExpositionError};
use crate::metrics::{self, DropReason, MethodClass, ShardHealth, Snapshot, STATUS_CLASSES};

/// How often a core sends its snapshot.
pub(crate) const REPORT_EVERY: Duration = Duration::from_secs(1);
/// A shard whose last snapshot is older than this is not healthy.
pub(crate) const STALE_AFTER: Duration = Duration::from_secs(3);
/// Reports that may wait in the channel per core before senders drop theirs.
const QUEUE_PER_CORE: usize = 4;

/// One core's figures, as sent to the admin thread.
#[derive(Debug, Clone)]
pub(crate) struct ShardReport {
    pub shard: ShardId,
    pub snapshot: Snapshot,
}

/// A core's end of the channel to the admin thread. Sending never blocks: when the
/// admin thread falls behind, the report is dropped (the next one supersedes it).
#[derive(Debug, Clone)]
pub(crate) struct Reporter {
    tx: Sender<ShardReport>,
}

impl Reporter {
    /// Offers `report`; false when the channel is full or the admin thread is gone.
    pub(crate) fn offer(&self, report: ShardReport) -> bool {
        match self.tx.try_send(report) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => false,
        }
    }
}

/// What the admin thread knows: the latest snapshot of each shard and when it came.
#[derive(Debug)]
pub(crate) struct Board {
    latest: Vec<Option<(Instant, Snapshot)>>,
}

impl Board {
    /// A board for `shards` shards, none reported yet.
    pub(crate) fn new(shards: usize) -> Board {
        Board {
            latest: vec![None; shards],
        }
    }

    /// Keeps `report` as its shard's latest, received at `now`. Reports of shards out
    /// of range are ignored.
    pub(crate) fn record(&mut self, now: Instant, report: ShardReport) {
        if let Some(slot) = self.latest.get_mut(report.shard) {
            *slot = Some((now, report.snapshot));
        }
    }

    /// How many shards there are and how many reported within [`STALE_AFTER`].
    pub(crate) fn health(&self, now: Instant) -> ShardHealth {
        ShardHealth {
            shards: self.latest.len(),
            fresh: self
                .latest
                .iter()
                .flatten()
                .filter(|(at, _)| now.saturating_duration_since(*at) < STALE_AFTER)
                .count(),
        }
    }

    /// True when every shard reported within [`STALE_AFTER`].
    pub(crate) fn healthy(&self, now: Instant) -> bool {
        let h = self.health(now);
        h.shards > 0 && h.fresh == h.shards
    }

    /// The sum of every shard's latest snapshot.
    pub(crate) fn merged(&self) -> Snapshot {
        Snapshot::merged(self.latest.iter().flatten().map(|(_, s)| s))
    }
}

/// One summary line's figures: rates over the interval since `prev`, the gauges and
/// the latency quantiles of the interval.
pub(crate) fn summary(prev: &Snapshot, now: &Snapshot, interval: Duration) -> Summary {
    let secs = interval.as_secs_f64().max(1e-3);
    let rate = |a: u64, b: u64| b.saturating_sub(a) as f64 / secs;
    Summary {
        requests_per_s: rate(prev.requests_in_total(), now.requests_in_total()),
        responses_per_s: rate(prev.responses_out_total(), now.responses_out_total()),
        mesh_per_s: rate(prev.mesh_out, now.mesh_out),
        drops_per_s: rate(prev.dropped_total(), now.dropped_total()),
        transactions_live: now.transactions_live,
        bindings_live: now.bindings_live,
        p50_us: now.forward_latency_quantile_since(prev, 0.5),
        p99_us: now.forward_latency_quantile_since(prev, 0.99),
    }
}

/// See [`summary`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Summary {
    pub requests_per_s: f64,
    pub responses_per_s: f64,
    pub mesh_per_s: f64,
    pub drops_per_s: f64,
    pub transactions_live: u64,
    pub bindings_live: u64,
    pub p50_us: Option<u64>,
    pub p99_us: Option<u64>,
}

/// Why the admin thread could not start.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("cannot serve metrics on {0}: {1}")]
    Bind(SocketAddr, io::Error),
    #[error("cannot start the admin thread: {0}")]
    Spawn(io::Error),
}

/// The running admin thread. Dropping it stops and joins the thread.
pub(crate) struct Admin {
    /// Closed (dropped) or sent to when the thread must stop: it wakes at once.
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
    /// `--metrics`: the server, blocked in `recv` on a thread of its own.
    http: Option<(Arc<tiny_http::Server>, JoinHandle<()>)>,
    reporter: Reporter,
}

impl Admin {
    /// Binds `--metrics` (if given) and starts the thread for `shards` shards. Binding
    /// here, before the executors start, makes a taken port a clean startup error.
    pub(crate) fn start(
        shards: usize,
        metrics: Option<SocketAddr>,
        stats_interval: Duration,
    ) -> Result<Admin, AdminError> {
        let server = match metrics {
            Some(addr) => {
                let listener = TcpListener::bind(addr).map_err(|e| AdminError::Bind(addr, e))?;
                let server = tiny_http::Server::from_listener(listener, None)
                    .map_err(|e| AdminError::Bind(addr, io::Error::other(e)))?;
                Some(server)
            }
            None => None,
        };
        let (tx, rx) = crossbeam_channel::bounded(shards.max(1) * QUEUE_PER_CORE);
        let (stop, stopped) = crossbeam_channel::bounded(1);
        let board = Arc::new(Mutex::new(Board::new(shards)));
        // The HTTP server waits for requests on its own thread, so neither thread
        // polls: an idle proxy's admin side wakes for the cores' reports only.
        let http = match server {
            Some(server) => {
                let server = Arc::new(server);
                let (srv, b) = (Arc::clone(&server), Arc::clone(&board));
                let t = std::thread::Builder::new()
                    .name("coresip-metrics".into())
                    .spawn(move || http_main(&srv, &b))
                    .map_err(AdminError::Spawn)?;
                Some((server, t))
            }
            None => None,
        };
        let thread = std::thread::Builder::new()
            .name("coresip-admin".into())
            .spawn(move || admin_main(rx, &board, stats_interval, &stopped))
            .map_err(AdminError::Spawn)?;
        Ok(Admin {
            stop: Some(stop),
            thread: Some(thread),
            http,
            reporter: Reporter { tx },
        })
    }

    /// A sender for a core.
    pub(crate) fn reporter(&self) -> Reporter {
        self.reporter.clone()
    }
}

impl Drop for Admin {
    fn drop(&mut self) {
        // Dropping the sender disconnects the channel: the thread's wait ends.
        self.stop.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if let Some((server, t)) = self.http.take() {
            server.unblock();
            let _ = t.join();
        }
    }
}

/// The board every core's report is recorded on; the metrics thread reads it.
fn lock(board: &Mutex<Board>) -> std::sync::MutexGuard<'_, Board> {
    // A panic while the lock was held leaves figures, not broken invariants.
    board.lock().unwrap_or_else(PoisonError::into_inner)
}

fn admin_main(
    rx: Receiver<ShardReport>,
    board: &Mutex<Board>,
    stats_interval: Duration,
    stop: &Receiver<()>,
) {
    let mut last_summary = (Instant::now(), Snapshot::default());
    loop {
        // Sleep until a report, the next summary or the stop; never on a poll.
        let wait = if stats_interval.is_zero() {
            REPORT_EVERY * 60
        } else {
            stats_interval.saturating_sub(last_summary.0.elapsed())
        };
        crossbeam_channel::select! {
            recv(rx) -> report => match report {
                Ok(report) => lock(board).record(Instant::now(), report),
                Err(_) => break,
            },
            recv(stop) -> _ => break,
            default(wait) => {}
        }
        if !stats_interval.is_zero() && last_summary.0.elapsed() >= stats_interval {
            let now = Instant::now();
            let (merged, health) = {
                let b = lock(board);
                (b.merged(), b.health(now))
            };
            let s = summary(&last_summary.1, &merged, now - last_summary.0);
            log_summary(&s, health);
            last_summary = (now, merged);
        }
    }
}

/// Serves `--metrics` until [`tiny_http::Server::unblock`].
fn http_main(server: &tiny_http::Server, board: &Mutex<Board>) {
    loop {
        match server.recv() {
            Ok(req) => serve(board, req),
            // `unblock` at shutdown (tiny_http's accept loop handles its own errors).
            Err(e) => {
                tracing::debug!(error = %e, "metrics endpoint stopped");
                return;
            }
        }
    }
}

fn log_summary(s: &Summary, h: ShardHealth) {
    tracing::info!(
        req_s = format_args!("{:.1}", s.requests_per_s),
        resp_s = format_args!("{:.1}", s.responses_per_s),
        mesh_s = format_args!("{:.1}", s.mesh_per_s),
        drop_s = format_args!("{:.1}", s.drops_per_s),
        live_txn = s.transactions_live,
        bindings = s.bindings_live,
        p50_us = %OrDash(s.p50_us),
        p99_us = %OrDash(s.p99_us),
        shards = format_args!("{}/{}", h.fresh, h.shards),
        "stats"
    );
}

/// A value, or `-` when there is none (no latency observed in the interval).
struct OrDash(Option<u64>);

impl std::fmt::Display for OrDash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(v) => write!(f, "{v}"),
            None => f.write_str("-"),
        }
    }
}

fn header(name: &str, value: &str) -> Option<tiny_http::Header> {
    tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()).ok()
}

/// Answers one HTTP request. `/metrics` and `/health` take GET (and HEAD); anything
/// else is 404 or 405.
fn serve(board: &Mutex<Board>, req: tiny_http::Request) {
    let now = Instant::now();
    let board = lock(board);
    let path = req.url().split('?').next().unwrap_or("");
    let get = matches!(
        req.method(),
        tiny_http::Method::Get | tiny_http::Method::Head
    );
    let (code, ctype, body) = match path {
        "/metrics" | "/health" if !get => (405, "text/plain", "GET only\n".to_owned()),
        "/metrics" => (
            200,
            metrics::CONTENT_TYPE,
            metrics::render(&board.merged(), board.health(now)),
        ),
        "/health" => {
            let h = board.health(now);
            let body = format!("{}/{} shards reporting\n", h.fresh, h.shards);
            (
                if board.healthy(now) { 200 } else { 503 },
                "text/plain",
                body,
            )
        }
        _ => (404, "text/plain", "try /metrics or /health\n".to_owned()),
    };
    // The answer is written without the board held.
    drop(board);
    let mut resp = tiny_http::Response::from_string(body).with_status_code(code);
    if let Some(h) = header("Content-Type", ctype) {
        resp.add_header(h);
    }
    if let Err(e) = req.respond(resp) {
        tracing::debug!(error = %e, "metrics response not sent");
    }
}

/// Why `coresip stats` could not show the figures.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StatsError {
    #[error("cannot reach {0}: {1}")]
    Connect(SocketAddr, io::Error),
    #[error("reading from {0}: {1}")]
    Io(SocketAddr, io::Error),
    #[error("{0} answered {1}")]
    Status(SocketAddr, String),
    #[error("{0} did not answer HTTP")]
    NotHttp(SocketAddr),
    #[error("{0}/metrics is not Prometheus text: {1}")]
    Exposition(SocketAddr, ExpositionError),
}

/// Largest /metrics body `coresip stats` reads.
const MAX_BODY: u64 = 4 << 20;

/// `GET /metrics` from `addr` with a plain HTTP/1.0 request (no keep-alive, the server
/// closes after the body).
pub(crate) fn fetch_metrics(addr: SocketAddr, timeout: Duration) -> Result<String, StatsError> {
    let mut s =
        TcpStream::connect_timeout(&addr, timeout).map_err(|e| StatsError::Connect(addr, e))?;
    let io = |e| StatsError::Io(addr, e);
    s.set_read_timeout(Some(timeout)).map_err(io)?;
    s.set_write_timeout(Some(timeout)).map_err(io)?;
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: coresip\r\nAccept: text/plain\r\n\r\n")
        .map_err(io)?;
    let mut raw = Vec::new();
    s.take(MAX_BODY).read_to_end(&mut raw).map_err(io)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or(StatsError::NotHttp(addr))?;
    let status = head.lines().next().unwrap_or("");
    let mut parts = status.splitn(3, ' ');
    match (parts.next(), parts.next()) {
        (Some(v), Some("200")) if v.starts_with("HTTP/") => Ok(body.to_owned()),
        (Some(v), Some(_)) if v.starts_with("HTTP/") => {
            Err(StatsError::Status(addr, status.to_owned()))
        }
        _ => Err(StatsError::NotHttp(addr)),
    }
}

/// `coresip stats`: fetches `/metrics` from a running instance and prints a table.
pub(crate) fn print_stats(addr: SocketAddr, out: &mut impl Write) -> Result<(), StatsError> {
    let body = fetch_metrics(addr, Duration::from_secs(5))?;
    let exp = exposition::parse(&body).map_err(|e| StatsError::Exposition(addr, e))?;
    out.write_all(table(addr, &exp).as_bytes())
        .map_err(|e| StatsError::Io(addr, e))
}

/// The upper bound (seconds) of the bucket holding the `q` quantile of histogram
/// `name`: "at most this much".
fn bucket_quantile(exp: &Exposition, name: &str, q: f64) -> Option<f64> {
    let total = exp.value(&format!("{name}_count"), &[])?;
    if total <= 0.0 {
        return None;
    }
    exp.series(&format!("{name}_bucket"))
        .filter_map(|s| Some((s.label("le")?.parse::<f64>().ok()?, s.value)))
        .find(|&(_, cum)| cum >= q * total)
        .map(|(le, _)| le)
}

fn secs(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(s) if s.is_infinite() => "> max".into(),
        Some(s) if s < 1e-3 => format!("≤ {:.0} µs", s * 1e6),
        Some(s) if s < 1.0 => format!("≤ {:.1} ms", s * 1e3),
        Some(s) => format!("≤ {s:.1} s"),
    }
}

/// The human table `coresip stats` prints.
pub(crate) fn table(addr: SocketAddr, exp: &Exposition) -> String {
    use std::fmt::Write as _;
    let v = |name: &str, labels: &[(&str, &str)]| exp.value(name, labels).unwrap_or(0.0);
    let n = |name: &str| v(name, &[]);
    let mut t = String::new();
    let _ = writeln!(
        t,
        "coresip at {addr}: {}/{} shards reporting",
        n("coresip_shards_reporting"),
        n("coresip_shards")
    );
    let _ = writeln!(t, "\n{:<14}{:>12}{:>12}", "requests", "in", "out");
    for m in MethodClass::ALL {
        let l = m.label();
        let _ = writeln!(
            t,
            "  {:<12}{:>12}{:>12}",
            l,
            v(
                "coresip_requests_total",
                &[("direction", "in"), ("method", l)]
            ),
            v(
                "coresip_requests_total",
                &[("direction", "out"), ("method", l)]
            ),
        );
    }
    let _ = writeln!(t, "\n{:<14}{:>12}{:>12}", "responses", "in", "out");
    for c in STATUS_CLASSES {
        let _ = writeln!(
            t,
            "  {:<12}{:>12}{:>12}",
            c,
            v(
                "coresip_responses_total",
                &[("direction", "in"), ("class", c)]
            ),
            v(
                "coresip_responses_total",
                &[("direction", "out"), ("class", c)]
            ),
        );
    }
    let _ = writeln!(t);
    let rows: [(&str, f64); 15] = [
        (
            "transactions created",
            n("coresip_transactions_created_total"),
        ),
        ("transactions live", n("coresip_transactions_live")),
        (
            "transactions timed out",
            n("coresip_transactions_timed_out_total"),
        ),
        (
            "retransmissions absorbed",
            n("coresip_retransmissions_absorbed_total"),
        ),
        ("forks", n("coresip_forks_total")),
        ("handled locally", n("coresip_messages_local_total")),
        (
            "mesh hops out",
            v("coresip_mesh_hops_total", &[("direction", "out")]),
        ),
        (
            "mesh hops in",
            v("coresip_mesh_hops_total", &[("direction", "in")]),
        ),
        ("registrations", n("coresip_registrations_total")),
        ("bindings live", n("coresip_bindings_live")),
        ("bindings replicated", n("coresip_bindings_replicated")),
        (
            "binding expirations",
            n("coresip_binding_expirations_total"),
        ),
        ("auth challenges", n("coresip_auth_challenges_total")),
        ("auth failures", n("coresip_auth_failures_total")),
        ("connections open", n("coresip_connections_open")),
    ];
    for (label, value) in rows {
        let _ = writeln!(t, "{label:<26}{value:>12}");
    }
    for r in DropReason::ALL {
        let _ = writeln!(
            t,
            "{:<26}{:>12}",
            format!("dropped: {}", r.label()),
            v("coresip_dropped_total", &[("reason", r.label())])
        );
    }
    for tr in ["tcp", "tls"] {
        let _ = writeln!(
            t,
            "{:<26}{:>12}",
            format!("connections refused: {tr}"),
            v("coresip_connections_refused_total", &[("transport", tr)])
        );
    }
    let _ = writeln!(
        t,
        "\n{:<26}{:>12}{:>12}{:>12}",
        "since start", "count", "p50", "p99"
    );
    for (label, name) in [
        ("proxy-added latency", "coresip_forward_latency_seconds"),
        (
            "transaction duration",
            "coresip_transaction_duration_seconds",
        ),
    ] {
        let _ = writeln!(
            t,
            "{label:<26}{:>12}{:>12}{:>12}",
            n(&format!("{name}_count")),
            secs(bucket_quantile(exp, name, 0.5)),
            secs(bucket_quantile(exp, name, 0.99)),
        );
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::ShardMetrics;
    use crate::sip::Method;

    fn report(shard: ShardId, invites: u64) -> ShardReport {
        let mut m = ShardMetrics::new();
        for _ in 0..invites {
            m.inc_request_in(&Method::Invite);
        }
        ShardReport {
            shard,
            snapshot: m.snapshot(),
        }
    }

    #[test]
    fn health_needs_a_recent_snapshot_from_every_shard() {
        let t0 = Instant::now();
        let mut b = Board::new(2);
        assert!(!b.healthy(t0));
        b.record(t0, report(0, 1));
        assert!(!b.healthy(t0), "shard 1 never reported");
        b.record(t0, report(1, 1));
        assert!(b.healthy(t0));
        assert_eq!(
            b.health(t0),
            ShardHealth {
                shards: 2,
                fresh: 2
            }
        );
        // Shard 0 keeps reporting, shard 1 stops.
        let later = t0 + STALE_AFTER + Duration::from_millis(1);
        b.record(later, report(0, 2));
        assert!(!b.healthy(later));
        assert_eq!(b.health(later).fresh, 1);
        // A report for a shard that does not exist changes nothing.
        b.record(later, report(7, 1));
        assert_eq!(b.health(later).shards, 2);
    }

    #[test]
    fn the_board_merges_the_latest_snapshot_of_each_shard() {
        let t0 = Instant::now();
        let mut b = Board::new(2);
        b.record(t0, report(0, 1));
        b.record(t0, report(0, 5)); // replaces, not adds
        b.record(t0, report(1, 2));
        assert_eq!(b.merged().requests_in(MethodClass::Invite), 7);
    }

    #[test]
    fn reporter_drops_when_the_admin_thread_lags() {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let r = Reporter { tx };
        assert!(r.offer(report(0, 1)));
        assert!(!r.offer(report(0, 2)), "full: dropped, not blocked");
        drop(rx);
        assert!(!r.offer(report(0, 3)));
    }

    #[test]
    fn summary_rates_are_per_second_over_the_interval() {
        let mut m = ShardMetrics::new();
        let prev = m.snapshot();
        for _ in 0..20 {
            m.inc_request_in(&Method::Options);
            m.inc_response_out(200);
        }
        m.inc_mesh_out();
        m.set_transactions_live(3);
        m.observe_forward_latency(Duration::from_micros(80));
        let s = summary(&prev, &m.snapshot(), Duration::from_secs(10));
        assert_eq!(s.requests_per_s, 2.0);
        assert_eq!(s.responses_per_s, 2.0);
        assert_eq!(s.mesh_per_s, 0.1);
        assert_eq!(s.drops_per_s, 0.0);
        assert_eq!(s.transactions_live, 3);
        assert_eq!(s.p50_us, Some(80));
    }

    #[test]
    fn stats_table_shows_the_figures() {
        let mut m = ShardMetrics::new();
        m.inc_request_in(&Method::Register);
        m.inc_response_out(401);
        m.inc_auth_challenge();
        for _ in 0..99 {
            m.observe_forward_latency(Duration::from_micros(90));
        }
        m.observe_forward_latency(Duration::from_millis(20));
        let text = metrics::render(
            &m.snapshot(),
            ShardHealth {
                shards: 1,
                fresh: 1,
            },
        );
        let exp = exposition::parse(&text).unwrap();
        let table = table("127.0.0.1:9090".parse().unwrap(), &exp);
        assert!(table.contains("1/1 shards reporting"), "{table}");
        let line = |start: &str| {
            table
                .lines()
                .find(|l| l.trim_start().starts_with(start))
                .unwrap_or_else(|| panic!("no {start} line in\n{table}"))
                .split_whitespace()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        assert_eq!(line("REGISTER"), ["REGISTER", "1", "0"]);
        assert_eq!(line("4xx"), ["4xx", "0", "1"]);
        assert_eq!(line("auth challenges"), ["auth", "challenges", "1"]);
        // p50 in the 100 µs bucket, p99 (the 99th of 100) still there, the 20 ms one
        // only beyond.
        assert_eq!(
            line("proxy-added"),
            [
                "proxy-added",
                "latency",
                "100",
                "≤",
                "100",
                "µs",
                "≤",
                "100",
                "µs"
            ]
        );
    }

    #[test]
    fn fetch_reports_a_closed_port_and_a_non_200() {
        // A listener that answers 404 to anything.
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let t = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut buf = [0u8; 512];
            let _ = s.read(&mut buf);
            s.write_all(b"HTTP/1.0 404 Not Found\r\n\r\nnope").unwrap();
        });
        let e = fetch_metrics(addr, Duration::from_secs(5)).unwrap_err();
        assert!(
            matches!(e, StatsError::Status(_, ref s) if s.contains("404")),
            "{e}"
        );
        t.join().unwrap();
        // Nothing listens there any more.
        let e = fetch_metrics(addr, Duration::from_secs(5)).unwrap_err();
        assert!(matches!(e, StatsError::Connect(..)), "{e}");
    }
}
