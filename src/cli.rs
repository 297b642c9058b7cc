//! Command-line flags. Every tuning knob is a flag with a documented default and a
//! `CORESIP_*` environment variable; [`Cli::into_config`] checks what the types alone
//! cannot and yields the [`Config`] the rest of the program reads.
//!
//! A bad value ends the program with status 2 and one line naming the flag
//! ([`parse_or_exit`]).

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::auth::Algorithms;
use crate::config::{
    AuthMode, Config, ForkMode, ListenSpec, ProxyOptions, RegistrarOptions, TcpLimits, Timers,
    TlsFiles, UdpConfig,
};
use crate::proxy::Cidr;

/// The listeners used when no `--listen` is given.
pub(crate) const DEFAULT_LISTEN: &[&str] = &[
    "udp:0.0.0.0:5060",
    "udp:[::]:5060",
    "tcp:0.0.0.0:5060",
    "tcp:[::]:5060",
    "tls:0.0.0.0:5061",
    "tls:[::]:5061",
];

/// coresip: a thread-per-core SIP proxy and registrar.
#[derive(Debug, Clone, Parser)]
#[command(name = "coresip", version, about, max_term_width = 100)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub general: General,
    #[command(flatten)]
    pub proxy: ProxyArgs,
    #[command(flatten)]
    pub registrar: RegistrarArgs,
    #[command(flatten)]
    pub tls: TlsArgs,
    #[command(flatten)]
    pub udp: UdpArgs,
    #[command(flatten)]
    pub limits: Limits,
    #[command(flatten)]
    pub timers: TimerArgs,
    #[command(flatten)]
    pub monitoring: Monitoring,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// What to do instead of running the proxy.
#[derive(Debug, Clone, clap::Subcommand)]
pub(crate) enum Command {
    /// Print the current figures of a running instance, read from its metrics port.
    Stats {
        /// The --metrics address of the running instance.
        #[arg(long, env = "CORESIP_METRICS", value_name = "ADDR:PORT")]
        metrics: SocketAddr,
    },
}

/// Metrics endpoint and periodic summary.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Monitoring")]
pub(crate) struct Monitoring {
    /// Serve Prometheus metrics on http://ADDR:PORT/metrics and a health check on
    /// /health (200 while every core reports, else 503). Off unless given.
    #[arg(long, env = "CORESIP_METRICS", value_name = "ADDR:PORT")]
    pub metrics: Option<SocketAddr>,

    /// Log one summary line (rates, live transactions, p50/p99 latency) this often;
    /// 0s turns it off.
    #[arg(long, env = "CORESIP_STATS_INTERVAL", default_value = "10s",
          value_name = "DURATION", value_parser = parse_duration)]
    pub stats_interval: Duration,
}

/// Cores, sockets, identity.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "General")]
pub(crate) struct General {
    /// Executors (one per core, pinned). 0 means every available CPU.
    #[arg(long, env = "CORESIP_CORES", default_value_t = 0, value_name = "N")]
    pub cores: usize,

    /// A socket to listen on, TRANSPORT:ADDR:PORT with TRANSPORT one of udp, tcp, tls and
    /// an IPv6 ADDR in brackets. Repeatable (comma-separated in the env var). Default:
    /// udp and tcp on 0.0.0.0:5060 and [::]:5060, tls on 0.0.0.0:5061 and [::]:5061.
    #[arg(
        long,
        env = "CORESIP_LISTEN",
        value_name = "SPEC",
        value_delimiter = ','
    )]
    pub listen: Vec<ListenSpec>,

    /// A domain this proxy is responsible for. Repeatable (comma-separated in the env var).
    #[arg(
        long,
        env = "CORESIP_DOMAIN",
        value_name = "DOMAIN",
        value_delimiter = ','
    )]
    pub domain: Vec<String>,

    /// Directory for state kept across restarts and the generated TLS certificate.
    #[arg(
        long,
        env = "CORESIP_DATA_DIR",
        default_value = "./coresip-data",
        value_name = "DIR"
    )]
    pub data_dir: PathBuf,

    /// Log level: error, warn, info, debug or trace. Nothing per message is logged above
    /// debug.
    #[arg(long, env = "CORESIP_LOG_LEVEL", default_value = "info", value_name = "LEVEL",
          value_parser = ["error", "warn", "info", "debug", "trace"])]
    pub log_level: String,

    /// Time in-flight work gets to finish after SIGTERM or SIGINT.
    #[arg(long, env = "CORESIP_SHUTDOWN_GRACE", default_value = "5s", value_name = "DURATION",
          value_parser = parse_duration)]
    pub shutdown_grace: Duration,
}

/// TLS certificates.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "TLS")]
pub(crate) struct TlsArgs {
    /// Server certificate chain (PEM). With neither --tls-cert nor --tls-key, a
    /// self-signed certificate is generated into --data-dir on first start.
    #[arg(
        long,
        env = "CORESIP_TLS_CERT",
        value_name = "FILE",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,

    /// Server private key (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(
        long,
        env = "CORESIP_TLS_KEY",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,

    /// CA bundle (PEM) that outbound TLS peers are verified against, instead of the
    /// system roots.
    #[arg(long, env = "CORESIP_TLS_CA", value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
}

/// UDP sockets.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "UDP")]
pub(crate) struct UdpArgs {
    /// Receive buffer (SO_RCVBUF) of each UDP socket; suffixes k and M (powers of 1024).
    #[arg(long, env = "CORESIP_UDP_RCVBUF", default_value = "4M", value_name = "BYTES",
          value_parser = parse_size)]
    pub udp_rcvbuf: usize,

    /// Send buffer (SO_SNDBUF) of each UDP socket.
    #[arg(long, env = "CORESIP_UDP_SNDBUF", default_value = "4M", value_name = "BYTES",
          value_parser = parse_size)]
    pub udp_sndbuf: usize,

    /// Requests larger than this are sent over TCP instead of UDP (RFC 3261 §18.1.1;
    /// 1300 is the RFC's figure). Off unless given, as Kamailio's udp_mtu: phones that
    /// listen on UDP only would never receive a large INVITE.
    #[arg(long, env = "CORESIP_UDP_MTU", value_name = "BYTES", value_parser = parse_size)]
    pub udp_mtu: Option<usize>,

    /// Datagrams taken from a UDP socket per system call (recvmmsg) when several are
    /// queued; what they cause goes to the kernel together (sendmmsg). Fewer system
    /// calls under bursts, at the price of proxy-added latency: a datagram waits for
    /// the rest of its batch. 1 handles each datagram on its own.
    #[arg(long, env = "CORESIP_UDP_BATCH", default_value_t = 4, value_name = "N")]
    pub udp_batch: usize,
}

/// Proxy behaviour (RFC 3261 §16).
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Proxy")]
pub(crate) struct ProxyArgs {
    /// A network (ADDR/PREFIX) any request may be relayed to. Repeatable. Without
    /// it, coresip forwards only to its own users and within dialogs it
    /// record-routed: never an open relay.
    #[arg(
        long,
        env = "CORESIP_RELAY",
        value_name = "CIDR",
        value_delimiter = ','
    )]
    pub relay: Vec<Cidr>,

    /// Do not insert Record-Route (the proxy leaves the path after the first request
    /// of a dialog).
    #[arg(long, env = "CORESIP_NO_RECORD_ROUTE")]
    pub no_record_route: bool,

    /// How a user's contacts are tried: parallel (all at once), serial (one at a
    /// time, highest q first) or auto (equal q at once, q-groups in turn).
    #[arg(long, env = "CORESIP_FORK", value_enum, default_value_t = ForkMode::Parallel)]
    pub fork: ForkMode,

    /// Live transactions per core; beyond it new requests get 503 with Retry-After.
    /// A call over UDP keeps about 70 transactions-seconds alive (a BYE's server
    /// transaction waits 64·T1 = 32 s for retransmissions, RFC 3261 §17.2.2), so
    /// 1M covers ~14k calls/s per core; each costs ~1.5 KiB while alive.
    #[arg(
        long,
        env = "CORESIP_MAX_TRANSACTIONS",
        default_value_t = 1_000_000,
        value_name = "N"
    )]
    pub max_transactions: usize,

    /// Forward statelessly (RFC 3261 §16.11): no transactions, no 100 Trying, no
    /// forking (a registered user gets its best contact), retransmissions relayed
    /// with the same branch. REGISTER is still answered by the registrar's own
    /// transaction. Cannot be combined with `--auth all`.
    #[arg(long, env = "CORESIP_STATELESS")]
    pub stateless: bool,
}

/// Registrar and authentication (RFC 3261 §10, §22).
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Registrar and authentication")]
pub(crate) struct RegistrarArgs {
    /// Binding lifetime when a REGISTER names none, seconds.
    #[arg(
        long,
        env = "CORESIP_DEFAULT_EXPIRES",
        default_value_t = 3600,
        value_name = "SECS"
    )]
    pub default_expires: u32,

    /// Shorter (non-zero) registrations get 423 Interval Too Brief, seconds.
    #[arg(
        long,
        env = "CORESIP_MIN_EXPIRES",
        default_value_t = 60,
        value_name = "SECS"
    )]
    pub min_expires: u32,

    /// Longer registrations are granted this much, seconds.
    #[arg(
        long,
        env = "CORESIP_MAX_EXPIRES",
        default_value_t = 7200,
        value_name = "SECS"
    )]
    pub max_expires: u32,

    /// Bindings per address-of-record; 0 means no limit. Past it, 403.
    #[arg(
        long,
        env = "CORESIP_MAX_CONTACTS",
        default_value_t = 0,
        value_name = "N"
    )]
    pub max_contacts: usize,

    /// Past --max-contacts, replace the oldest binding instead of answering 403.
    #[arg(long, env = "CORESIP_REPLACE_OLDEST_CONTACT")]
    pub replace_oldest_contact: bool,

    /// Which requests must authenticate: none, register (401 for REGISTER) or all
    /// (also 407 for out-of-dialog requests from our domains). Needs --users.
    #[arg(long, env = "CORESIP_AUTH", value_enum, default_value_t = AuthMode::Register)]
    pub auth: AuthMode,

    /// Digest realm. Default: the first --domain.
    #[arg(long, env = "CORESIP_REALM", value_name = "REALM")]
    pub realm: Option<String>,

    /// Users file: one `user:password` or `user:realm:HA1` per line (see
    /// deploy/users.example). Without it nobody is challenged.
    #[arg(long, env = "CORESIP_USERS", value_name = "FILE")]
    pub users: Option<PathBuf>,

    /// Digest algorithms offered in a 401/407, preferred first, and accepted: md5,
    /// sha-256 or both, comma-separated. Phones answer the first challenge only, and
    /// some (baresip 1.0) refuse a 401 that offers anything but MD5; add sha-256 for
    /// fleets that know it.
    #[arg(long, env = "CORESIP_DIGEST_ALGORITHMS", default_value = "md5",
          value_name = "LIST", value_parser = parse_algorithms)]
    pub digest_algorithms: Algorithms,

    /// Nonces older than this are answered with stale=true.
    #[arg(long, env = "CORESIP_NONCE_TTL", default_value = "300s", value_name = "DURATION",
          value_parser = parse_duration)]
    pub nonce_ttl: Duration,

    /// How often bindings are flushed to disk; after a crash at most this much is lost.
    #[arg(long, env = "CORESIP_SYNC_INTERVAL", default_value = "1s", value_name = "DURATION",
          value_parser = parse_duration)]
    pub sync_interval: Duration,
}

/// Message and connection limits.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Limits")]
pub(crate) struct Limits {
    /// Largest SIP message accepted on any transport.
    #[arg(long, env = "CORESIP_MAX_MESSAGE_SIZE", default_value = "64k", value_name = "BYTES",
          value_parser = parse_size)]
    pub max_message_size: usize,

    /// TCP and TLS connections open at once, all cores together.
    #[arg(
        long,
        env = "CORESIP_TCP_MAX_CONNECTIONS",
        default_value_t = 65536,
        value_name = "N"
    )]
    pub tcp_max_connections: usize,

    /// Inbound TCP and TLS connections open at once from one source IP address.
    #[arg(
        long,
        env = "CORESIP_TCP_MAX_PER_IP",
        default_value_t = 1024,
        value_name = "N"
    )]
    pub tcp_max_per_ip: usize,

    /// Time a client has to complete a message's header section once it started it, and
    /// to send its first bytes after connecting.
    #[arg(long, env = "CORESIP_TCP_HEADER_TIMEOUT", default_value = "10s",
          value_name = "DURATION", value_parser = parse_duration)]
    pub tcp_header_timeout: Duration,

    /// A TCP or TLS connection that carries nothing for this long is closed.
    #[arg(long, env = "CORESIP_TCP_IDLE_TIMEOUT", default_value = "300s",
          value_name = "DURATION", value_parser = parse_duration)]
    pub tcp_idle_timeout: Duration,

    /// Time allowed for an outbound TCP connect plus TLS handshake.
    #[arg(long, env = "CORESIP_TCP_CONNECT_TIMEOUT", default_value = "5s",
          value_name = "DURATION", value_parser = parse_duration)]
    pub tcp_connect_timeout: Duration,
}

/// RFC 3261 timers.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Timers (RFC 3261 §17.1.1.1, §16.6)")]
pub(crate) struct TimerArgs {
    /// T1, the round-trip estimate.
    #[arg(long, env = "CORESIP_T1", default_value = "500ms", value_name = "DURATION",
          value_parser = parse_duration)]
    pub t1: Duration,

    /// T2, the longest retransmit interval.
    #[arg(long, env = "CORESIP_T2", default_value = "4s", value_name = "DURATION",
          value_parser = parse_duration)]
    pub t2: Duration,

    /// T4, the longest a message stays in the network.
    #[arg(long, env = "CORESIP_T4", default_value = "5s", value_name = "DURATION",
          value_parser = parse_duration)]
    pub t4: Duration,

    /// Timer C, the proxy's INVITE transaction timeout (more than 3 minutes).
    #[arg(long, env = "CORESIP_TIMER_C", default_value = "180s", value_name = "DURATION",
          value_parser = parse_duration)]
    pub timer_c: Duration,
}

/// A value that parsed but makes no sense: the flag and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("error: {flag}: {problem}")]
pub(crate) struct CliError {
    pub flag: &'static str,
    pub problem: String,
}

fn bad(flag: &'static str, problem: impl Into<String>) -> CliError {
    CliError {
        flag,
        problem: problem.into(),
    }
}

impl Cli {
    /// Checks the values against each other and the machine, and builds the [`Config`].
    /// `cpus` is the number of CPUs this process may run on.
    pub(crate) fn into_config(self, cpus: usize) -> Result<Config, CliError> {
        let g = self.general;
        let cores = match g.cores {
            0 => cpus,
            n if n > cpus => {
                return Err(bad(
                    "--cores",
                    format!("{n} is more than the {cpus} available CPUs"),
                ))
            }
            n => n,
        };
        let listen = if g.listen.is_empty() {
            DEFAULT_LISTEN
                .iter()
                .filter_map(|s| s.parse().ok())
                .collect()
        } else {
            let mut seen = Vec::with_capacity(g.listen.len());
            for spec in g.listen {
                if seen.contains(&spec) {
                    return Err(bad("--listen", format!("{spec} is given twice")));
                }
                if spec.addr.port() == 0 {
                    return Err(bad("--listen", format!("{spec}: port 0 is not allowed")));
                }
                seen.push(spec);
            }
            seen
        };
        // An IPv6 domain is written in brackets in a SIP URI (RFC 3261 §25.1);
        // `--domain ::1` means the same as `--domain [::1]`.
        let domains: Vec<String> = g
            .domain
            .iter()
            .map(|d| match d.parse::<std::net::Ipv6Addr>() {
                Ok(a) => format!("[{a}]"),
                Err(_) => d.clone(),
            })
            .collect();
        for d in &domains {
            if crate::sip::Host::parse(d.as_bytes()).is_err() {
                return Err(bad("--domain", format!("{d:?} is not a host name")));
            }
        }
        let u = self.udp;
        if u.udp_mtu.is_some_and(|m| !(200..=65507).contains(&m)) {
            return Err(bad("--udp-mtu", "must be between 200 and 65507"));
        }
        if !(1..=64).contains(&u.udp_batch) {
            return Err(bad("--udp-batch", "must be between 1 and 64"));
        }
        let l = self.limits;
        if l.max_message_size < 1024 || l.max_message_size > (1 << 24) {
            return Err(bad("--max-message-size", "must be between 1k and 16M"));
        }
        if l.tcp_max_connections == 0 {
            return Err(bad("--tcp-max-connections", "must be at least 1"));
        }
        if l.tcp_max_per_ip == 0 {
            return Err(bad("--tcp-max-per-ip", "must be at least 1"));
        }
        for (flag, d) in [
            ("--tcp-header-timeout", l.tcp_header_timeout),
            ("--tcp-idle-timeout", l.tcp_idle_timeout),
            ("--tcp-connect-timeout", l.tcp_connect_timeout),
        ] {
            if d.is_zero() {
                return Err(bad(flag, "must be more than 0"));
            }
        }
        let r = self.registrar;
        if r.min_expires > r.max_expires {
            return Err(bad("--min-expires", "must not exceed --max-expires"));
        }
        if r.default_expires == 0 {
            return Err(bad("--default-expires", "must be more than 0"));
        }
        if r.nonce_ttl.is_zero() {
            return Err(bad("--nonce-ttl", "must be more than 0"));
        }
        if r.sync_interval.is_zero() {
            return Err(bad("--sync-interval", "must be more than 0"));
        }
        if let Some(u) = &r.users {
            if !u.is_file() {
                return Err(bad(
                    "--users",
                    format!("{} is not a readable file", u.display()),
                ));
            }
        }
        if self.proxy.max_transactions == 0 {
            return Err(bad("--max-transactions", "must be at least 1"));
        }
        if self.proxy.stateless && r.auth == AuthMode::All {
            // A stateless proxy has no transaction to hold a challenged request's
            // state; see proxy::stateless.
            return Err(bad("--stateless", "cannot be combined with --auth all"));
        }
        let t = self.timers;
        if t.t1.is_zero() {
            return Err(bad("--t1", "must be more than 0"));
        }
        if t.t2 < t.t1 {
            return Err(bad("--t2", "must not be less than --t1"));
        }
        // RFC 3261 §16.6 item 11 asks for more than 3 minutes; 180 s itself is the
        // customary default, so only shorter values are refused.
        if t.timer_c < Duration::from_secs(180) {
            return Err(bad(
                "--timer-c",
                "must be at least 3 minutes (RFC 3261 §16.6)",
            ));
        }
        Ok(Config {
            cores,
            listen,
            domains,
            data_dir: g.data_dir,
            tls: TlsFiles {
                cert: self.tls.tls_cert,
                key: self.tls.tls_key,
                ca: self.tls.tls_ca,
            },
            udp: UdpConfig {
                rcvbuf: u.udp_rcvbuf,
                sndbuf: u.udp_sndbuf,
                mtu: u.udp_mtu,
                batch: u.udp_batch,
            },
            max_message_size: l.max_message_size,
            tcp: TcpLimits {
                max_connections: l.tcp_max_connections,
                max_per_ip: l.tcp_max_per_ip,
                header_timeout: l.tcp_header_timeout,
                idle_timeout: l.tcp_idle_timeout,
                connect_timeout: l.tcp_connect_timeout,
            },
            timers: Timers {
                t1: t.t1,
                t2: t.t2,
                t4: t.t4,
                timer_c: t.timer_c,
            },
            proxy: ProxyOptions {
                record_route: !self.proxy.no_record_route,
                relay: self.proxy.relay,
                max_transactions: self.proxy.max_transactions,
                fork: self.proxy.fork,
                stateless: self.proxy.stateless,
            },
            registrar: RegistrarOptions {
                default_expires: r.default_expires,
                min_expires: r.min_expires,
                max_expires: r.max_expires,
                max_contacts: r.max_contacts,
                replace_oldest: r.replace_oldest_contact,
                auth: r.auth,
                realm: r.realm.unwrap_or_default(),
                users: r.users,
                nonce_ttl: r.nonce_ttl,
                digest_algorithms: r.digest_algorithms,
                sync_interval: r.sync_interval,
            },
            shutdown_grace: g.shutdown_grace,
            log_level: g.log_level,
            metrics: self.monitoring.metrics,
            stats_interval: self.monitoring.stats_interval,
        })
    }
}

/// A `--digest-algorithms` list.
fn parse_algorithms(s: &str) -> Result<Algorithms, String> {
    s.parse()
        .map_err(|e: crate::auth::AlgorithmsError| e.to_string())
}

/// What [`parse`] decided.
#[derive(Debug)]
pub(crate) enum Parsed {
    /// Run with this configuration.
    Run(Box<Config>),
    /// Print this text (help, version) on stdout and exit 0.
    Print(String),
    /// Print this one line on stderr and exit 2.
    Fail(String),
    /// `coresip stats`: show the figures served on this metrics address.
    Stats(SocketAddr),
}

/// Parses `args` (the program name first) into a [`Parsed`] outcome.
pub(crate) fn parse<I, T>(args: I, cpus: usize) -> Parsed
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    match Cli::try_parse_from(args) {
        Ok(Cli {
            command: Some(Command::Stats { metrics }),
            ..
        }) => Parsed::Stats(metrics),
        Ok(cli) => match cli.into_config(cpus) {
            Ok(cfg) => Parsed::Run(Box::new(cfg)),
            Err(e) => Parsed::Fail(e.to_string()),
        },
        Err(e) => {
            use clap::error::ErrorKind;
            match e.kind() {
                ErrorKind::DisplayHelp
                | ErrorKind::DisplayVersion
                | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                    Parsed::Print(e.render().to_string())
                }
                _ => {
                    // clap names the flag and the problem before its usage line and
                    // tips; fold that part onto one line.
                    let text = e.render().to_string();
                    let line = text
                        .lines()
                        .take_while(|l| {
                            let l = l.trim_start();
                            !l.starts_with("Usage:")
                                && !l.starts_with("tip:")
                                && !l.starts_with("For more information")
                        })
                        .map(str::trim)
                        .filter(|l| !l.is_empty())
                        .collect::<Vec<_>>()
                        .join(" ");
                    Parsed::Fail(if line.is_empty() {
                        "error: invalid arguments".into()
                    } else {
                        line
                    })
                }
            }
        }
    }
}

/// Parses the process arguments; prints help/version (exit 0) or a one-line error
/// (exit 2) and exits when there is nothing to run.
pub fn parse_or_exit(cpus: usize) -> Config {
    match parse(std::env::args_os(), cpus) {
        Parsed::Run(cfg) => *cfg,
        Parsed::Print(text) => {
            print!("{text}");
            std::process::exit(0);
        }
        Parsed::Fail(line) => {
            eprintln!("{line}");
            std::process::exit(2);
        }
        Parsed::Stats(addr) => {
            let mut stdout = std::io::stdout().lock();
            match crate::runtime::admin::print_stats(addr, &mut stdout) {
                Ok(()) => std::process::exit(0),
                Err(e) => {
                    eprintln!("error: {e}");
                    std::process::exit(1);
                }
            }
        }
    }
}

/// `500ms`, `4s`, `5m`, `1h`: a whole number and a unit.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    const HINT: &str = "expected a whole number and a unit (ms, s, m, h), e.g. 500ms";
    let split = s.find(|c: char| !c.is_ascii_digit()).ok_or(HINT)?;
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().map_err(|_| HINT)?;
    let ms = match unit {
        "ms" => Some(n),
        "s" => n.checked_mul(1000),
        "m" | "min" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        _ => return Err(HINT.into()),
    };
    ms.map(Duration::from_millis)
        .ok_or_else(|| "too large".into())
}

/// `1300`, `64k`, `4M`: bytes, with optional powers-of-1024 suffixes.
pub(crate) fn parse_size(s: &str) -> Result<usize, String> {
    const HINT: &str = "expected a number of bytes, optionally with k or M, e.g. 4M";
    let (num, mult) = match s.as_bytes().last() {
        Some(b'k' | b'K') => (&s[..s.len() - 1], 1usize << 10),
        Some(b'M') => (&s[..s.len() - 1], 1usize << 20),
        _ => (s, 1),
    };
    let n: usize = num.parse().map_err(|_| HINT)?;
    n.checked_mul(mult).ok_or_else(|| "too large".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::Transport;

    fn run(args: &[&str]) -> Parsed {
        let mut v = vec!["coresip"];
        v.extend_from_slice(args);
        parse(v, 2)
    }

    fn config(args: &[&str]) -> Config {
        match run(args) {
            Parsed::Run(c) => *c,
            other => panic!("expected a config, got {other:?}"),
        }
    }

    fn failure(args: &[&str]) -> String {
        match run(args) {
            Parsed::Fail(line) => line,
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    #[test]
    fn defaults() {
        let c = config(&[]);
        assert_eq!(c.cores, 2);
        assert_eq!(c.listen.len(), 6);
        assert_eq!(
            c.listen
                .iter()
                .filter(|l| l.transport == Transport::Tls)
                .count(),
            2
        );
        assert!(c
            .listen
            .iter()
            .any(|l| l.addr == "[::]:5060".parse().unwrap() && l.transport == Transport::Udp));
        // No switch to TCP for large requests unless asked (phones on UDP only).
        assert_eq!(c.udp.mtu, None);
        assert_eq!(config(&["--udp-mtu", "1300"]).udp.mtu, Some(1300));
        assert_eq!(c.udp.rcvbuf, 4 << 20);
        assert_eq!(c.max_message_size, 65536);
        // 100k per core answered 503 at ~3k UDP calls/s (BYEs held 32 s by Timer J).
        assert_eq!(c.proxy.max_transactions, 1_000_000);
        assert_eq!(c.timers, Timers::default());
        assert_eq!(c.data_dir, PathBuf::from("./coresip-data"));
        assert_eq!(c.log_level, "info");
        assert_eq!(c.metrics, None);
        assert_eq!(c.stats_interval, Duration::from_secs(10));
        assert!(!c.proxy.stateless);
    }

    #[test]
    fn stateless_flag() {
        // RFC 3261 §16.11.
        assert!(config(&["--stateless"]).proxy.stateless);
        let line = failure(&["--stateless", "--auth", "all"]);
        assert!(line.contains("--stateless"), "{line}");
        assert!(config(&["--stateless", "--auth", "none"]).proxy.stateless);
    }

    #[test]
    fn monitoring_flags_and_the_stats_subcommand() {
        let c = config(&["--metrics", "127.0.0.1:9090", "--stats-interval", "0s"]);
        assert_eq!(c.metrics, Some("127.0.0.1:9090".parse().unwrap()));
        assert_eq!(c.stats_interval, Duration::ZERO);
        let c = config(&["--metrics", "[::1]:9090"]);
        assert_eq!(c.metrics, Some("[::1]:9090".parse().unwrap()));
        for (args, flag) in [
            (&["--metrics", "localhost"][..], "--metrics"),
            (&["--metrics", "1.2.3.4"][..], "--metrics"),
            (&["--stats-interval", "10"][..], "--stats-interval"),
            (&["stats"][..], "--metrics"),
        ] {
            let line = failure(args);
            assert!(line.contains(flag), "{args:?} → {line}");
        }
        match run(&["stats", "--metrics", "127.0.0.1:9100"]) {
            Parsed::Stats(addr) => assert_eq!(addr, "127.0.0.1:9100".parse().unwrap()),
            other => panic!("expected stats, got {other:?}"),
        }
    }

    #[test]
    fn repeated_listen_and_domain() {
        let c = config(&[
            "--listen",
            "udp:127.0.0.1:5070",
            "--listen",
            "tls:[::1]:5071",
            "--domain",
            "example.com",
            "--domain",
            "example.org",
            "--cores",
            "1",
        ]);
        assert_eq!(c.cores, 1);
        assert_eq!(c.listen.len(), 2);
        assert_eq!(c.listen[1].transport, Transport::Tls);
        assert_eq!(c.domains, vec!["example.com", "example.org"]);
    }

    #[test]
    fn bad_values_name_the_flag_on_one_line() {
        for (args, flag) in [
            (&["--cores", "x"][..], "--cores"),
            (&["--cores", "3"][..], "--cores"),
            (&["--listen", "udp:1.2.3.4"][..], "--listen"),
            (&["--listen", "quic:1.2.3.4:5"][..], "--listen"),
            (&["--t1", "5"][..], "--t1"),
            (&["--t1", "1s", "--t2", "500ms"][..], "--t2"),
            (&["--udp-mtu", "10"][..], "--udp-mtu"),
            (&["--udp-batch", "0"][..], "--udp-batch"),
            (&["--udp-batch", "65"][..], "--udp-batch"),
            (&["--udp-rcvbuf", "lots"][..], "--udp-rcvbuf"),
            (&["--log-level", "loud"][..], "--log-level"),
            (&["--timer-c", "10s"][..], "--timer-c"),
            (&["--domain", "a b"][..], "--domain"),
            (&["--no-such-flag"][..], "--no-such-flag"),
            (&["--tls-cert", "c.pem"][..], "--tls-key"),
            (
                &["--digest-algorithms", "md5,sha-1"][..],
                "--digest-algorithms",
            ),
            (&["--digest-algorithms", ""][..], "--digest-algorithms"),
        ] {
            let line = failure(args);
            assert!(!line.contains('\n'), "{line}");
            assert!(line.contains(flag), "{args:?} → {line}");
            assert!(line.starts_with("error:"), "{line}");
        }
    }

    #[test]
    fn an_ipv6_domain_may_be_given_without_brackets() {
        assert_eq!(config(&["--domain", "::1"]).domains, ["[::1]"]);
        assert_eq!(config(&["--domain", "[::1]"]).domains, ["[::1]"]);
        assert_eq!(config(&["--domain", "127.0.0.1"]).domains, ["127.0.0.1"]);
    }

    #[test]
    fn digest_algorithms_default_to_md5() {
        use crate::auth::Algorithms;
        let c = config(&[]);
        assert_eq!(c.registrar.digest_algorithms, Algorithms::DEFAULT);
        assert_eq!(c.registrar.digest_algorithms.to_string(), "md5");
        let c = config(&["--digest-algorithms", "sha-256,md5"]);
        assert_eq!(c.registrar.digest_algorithms.to_string(), "sha-256,md5");
    }

    #[test]
    fn help_is_grouped() {
        let Parsed::Print(help) = run(&["--help"]) else {
            panic!("help expected")
        };
        for heading in [
            "General:",
            "TLS:",
            "UDP:",
            "Limits:",
            "Timers",
            "Monitoring:",
            "Commands:",
        ] {
            assert!(help.contains(heading), "{heading} missing from help");
        }
        assert!(help.contains("CORESIP_UDP_MTU"));
        assert!(help.contains("CORESIP_STATELESS"));
        assert!(help.contains("[default: md5]"));
    }

    #[test]
    fn durations_and_sizes() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("4s"), Ok(Duration::from_secs(4)));
        assert_eq!(parse_duration("3m"), Ok(Duration::from_secs(180)));
        assert!(parse_duration("4").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("1.5s").is_err());
        assert_eq!(parse_size("1300"), Ok(1300));
        assert_eq!(parse_size("64k"), Ok(65536));
        assert_eq!(parse_size("4M"), Ok(4 << 20));
        assert!(parse_size("4G").is_err());
    }
}
