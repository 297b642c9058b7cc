//! The validated configuration every part of the proxy reads. The CLI ([`crate::cli`])
//! builds it; the runtime and the shard (`crate::shard::Shard`) only ever see this form, so
//! they can be driven from tests without going through flag parsing.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

pub(crate) use crate::io::Transport;

/// One listening socket: `udp:ADDR:PORT`, `tcp:ADDR:PORT` or `tls:ADDR:PORT`, where an
/// IPv6 address is written in brackets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ListenSpec {
    pub transport: Transport,
    pub addr: SocketAddr,
}

/// Why a `--listen` value was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ListenSpecError {
    #[error("expected TRANSPORT:ADDR:PORT (udp, tcp or tls)")]
    MissingTransport,
    #[error("unknown transport (expected udp, tcp or tls)")]
    UnknownTransport,
    #[error("expected an IPv4 ADDR:PORT or [IPv6]:PORT")]
    BadAddress,
}

impl FromStr for ListenSpec {
    type Err = ListenSpecError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (t, rest) = s.split_once(':').ok_or(ListenSpecError::MissingTransport)?;
        let transport = match t.to_ascii_lowercase().as_str() {
            "udp" => Transport::Udp,
            "tcp" => Transport::Tcp,
            "tls" => Transport::Tls,
            _ => return Err(ListenSpecError::UnknownTransport),
        };
        // SocketAddr's parser takes exactly `a.b.c.d:port` and `[v6]:port`.
        let addr = rest
            .parse::<SocketAddr>()
            .map_err(|_| ListenSpecError::BadAddress)?;
        Ok(ListenSpec { transport, addr })
    }
}

impl fmt::Display for ListenSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.transport, self.addr)
    }
}

/// RFC 3261 timer values (§17.1.1.1, §16.6 for Timer C): the transaction layer's.
pub(crate) use crate::txn::Timers;

/// Which requests must carry digest credentials (`--auth`, RFC 3261 §22).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum AuthMode {
    /// Nobody is challenged.
    None,
    /// REGISTER is challenged with 401.
    #[default]
    Register,
    /// REGISTER (401) and every out-of-dialog request from one of our domains (407).
    All,
}

/// Registrar, location service and authentication settings (RFC 3261 §10, §22).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrarOptions {
    pub default_expires: u32,
    pub min_expires: u32,
    pub max_expires: u32,
    /// Bindings per AOR; 0 means no limit.
    pub max_contacts: usize,
    /// Past `max_contacts`, replace the oldest binding instead of answering 403.
    pub replace_oldest: bool,
    pub auth: AuthMode,
    /// Digest realm; empty means the first `--domain`.
    pub realm: String,
    /// `user:password` / `user:realm:HA1` lines; without it nobody is challenged.
    pub users: Option<PathBuf>,
    pub nonce_ttl: Duration,
    /// Digest algorithms offered, in order, and accepted (`--digest-algorithms`).
    pub digest_algorithms: crate::auth::Algorithms,
    /// How often each shard fsyncs its binding log.
    pub sync_interval: Duration,
}

impl Default for RegistrarOptions {
    fn default() -> Self {
        RegistrarOptions {
            default_expires: 3600,
            min_expires: 60,
            max_expires: 7200,
            max_contacts: 0,
            replace_oldest: false,
            auth: AuthMode::Register,
            realm: String::new(),
            users: None,
            nonce_ttl: Duration::from_secs(300),
            digest_algorithms: crate::auth::Algorithms::DEFAULT,
            sync_interval: Duration::from_secs(1),
        }
    }
}

/// How the contacts of a registered user are tried (`--fork`, RFC 3261 §16.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ForkMode {
    /// All contacts at once.
    #[default]
    Parallel,
    /// One contact at a time, highest q first.
    Serial,
    /// Contacts of equal q at once, the q-groups one after another.
    Auto,
}

/// What the proxy core does with requests (RFC 3261 §16).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyOptions {
    /// Record-Route dialog-creating requests (§16.6 step 4).
    pub record_route: bool,
    /// Networks any request may be relayed to (`--relay`); everything else needs a
    /// dialog we record-routed or a local user.
    pub relay: Vec<crate::io::Cidr>,
    /// Live transactions per shard before new requests get 503.
    pub max_transactions: usize,
    pub fork: ForkMode,
    /// Forward without transactions (`--stateless`, RFC 3261 §16.11).
    pub stateless: bool,
}

impl Default for ProxyOptions {
    fn default() -> Self {
        ProxyOptions {
            record_route: true,
            relay: Vec::new(),
            max_transactions: 1_000_000,
            fork: ForkMode::Parallel,
            stateless: false,
        }
    }
}

/// UDP socket settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpConfig {
    /// SO_RCVBUF in bytes.
    pub rcvbuf: usize,
    /// SO_SNDBUF in bytes.
    pub sndbuf: usize,
    /// Largest request sent over UDP; larger ones go over TCP (RFC 3261 §18.1.1).
    /// None (the default): every request for a UDP target stays on UDP.
    pub mtu: Option<usize>,
    /// Datagrams taken per recvmmsg, whose sends go out in one sendmmsg.
    pub batch: usize,
}

/// Limits on stream (TCP and TLS) connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpLimits {
    /// Connections open at once, all cores and both directions together.
    pub max_connections: usize,
    /// Inbound connections open at once from one source IP address.
    pub max_per_ip: usize,
    /// Time a client has to deliver a whole header section once it started one
    /// (and to send anything at all after connecting).
    pub header_timeout: Duration,
    /// A connection that carries nothing for this long is closed.
    pub idle_timeout: Duration,
    /// Time allowed for an outbound connect (and TLS handshake).
    pub connect_timeout: Duration,
}

/// TLS certificate sources.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// Server certificate chain (PEM).
    pub cert: Option<PathBuf>,
    /// Server private key (PEM).
    pub key: Option<PathBuf>,
    /// CA bundle used to verify peers of outbound TLS instead of the system roots.
    pub ca: Option<PathBuf>,
}

/// Everything the proxy runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Number of cores (executors, shards).
    pub cores: usize,
    /// Listening sockets; every core binds every one of them.
    pub listen: Vec<ListenSpec>,
    /// Domains the proxy is responsible for (besides its own addresses).
    pub domains: Vec<String>,
    /// Where state that must survive a restart is kept (and the generated TLS cert).
    pub data_dir: PathBuf,
    pub tls: TlsFiles,
    pub udp: UdpConfig,
    /// Largest message accepted on any transport.
    pub max_message_size: usize,
    pub tcp: TcpLimits,
    pub timers: Timers,
    pub proxy: ProxyOptions,
    pub registrar: RegistrarOptions,
    /// Time in-flight work gets to finish after SIGTERM/SIGINT.
    pub shutdown_grace: Duration,
    /// `tracing` filter level (error, warn, info, debug, trace).
    pub log_level: String,
    /// Where the admin thread serves `/metrics` and `/health`; `None`: not served.
    pub metrics: Option<SocketAddr>,
    /// How often the admin thread logs a summary line; zero: never.
    pub stats_interval: Duration,
}

impl Config {
    /// A configuration for tests: one core, no listeners, defaults elsewhere.
    pub fn for_tests() -> Config {
        Config {
            cores: 1,
            listen: Vec::new(),
            domains: Vec::new(),
            data_dir: PathBuf::from("coresip-data"),
            tls: TlsFiles::default(),
            udp: UdpConfig {
                rcvbuf: 4 << 20,
                sndbuf: 4 << 20,
                mtu: None,
                batch: 4,
            },
            max_message_size: 65535,
            tcp: TcpLimits {
                max_connections: 65536,
                max_per_ip: 1024,
                header_timeout: Duration::from_secs(10),
                idle_timeout: Duration::from_secs(300),
                connect_timeout: Duration::from_secs(5),
            },
            timers: Timers::default(),
            proxy: ProxyOptions::default(),
            registrar: RegistrarOptions::default(),
            shutdown_grace: Duration::from_secs(5),
            log_level: "info".into(),
            metrics: None,
            stats_interval: Duration::ZERO,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_spec_forms() {
        let s: ListenSpec = "udp:0.0.0.0:5060".parse().unwrap();
        assert_eq!(s.transport, Transport::Udp);
        assert_eq!(s.addr, "0.0.0.0:5060".parse().unwrap());
        let s: ListenSpec = "TLS:[::1]:5061".parse().unwrap();
        assert_eq!(s.transport, Transport::Tls);
        assert_eq!(s.addr, "[::1]:5061".parse().unwrap());
        assert_eq!(s.to_string(), "tls:[::1]:5061");
    }

    #[test]
    fn listen_spec_errors() {
        assert_eq!(
            "0.0.0.0:5060".parse::<ListenSpec>(),
            Err(ListenSpecError::UnknownTransport)
        );
        assert_eq!(
            "sctp:1.2.3.4:5".parse::<ListenSpec>(),
            Err(ListenSpecError::UnknownTransport)
        );
        assert_eq!(
            "udp".parse::<ListenSpec>(),
            Err(ListenSpecError::MissingTransport)
        );
        assert_eq!(
            "udp:::1:5060".parse::<ListenSpec>(),
            Err(ListenSpecError::BadAddress)
        );
        assert_eq!(
            "tcp:1.2.3.4".parse::<ListenSpec>(),
            Err(ListenSpecError::BadAddress)
        );
        assert_eq!(
            "tcp:1.2.3.4:70000".parse::<ListenSpec>(),
            Err(ListenSpecError::BadAddress)
        );
    }

    #[test]
    fn default_ports() {
        assert_eq!(Transport::Udp.default_port(), 5060);
        assert_eq!(Transport::Tls.default_port(), 5061);
        assert!(Transport::Tcp.is_reliable());
        assert!(!Transport::Udp.is_reliable());
    }
}
