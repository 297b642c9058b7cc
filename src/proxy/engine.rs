//! The stateful proxy, RFC 3261 §16 on top of the §17 transactions of
//! [`crate::txn`]: one server transaction per received request, one client
//! transaction per branch, the response context that picks the best final response
//! (§16.7), CANCEL (§16.10), Timer C (§16.8), and stateless relaying of ACKs for 2xx
//! and of responses no transaction claims.
//!
//! No I/O: requests, responses and time come in; transmits go out through the
//! shard's [`Outbox`]. Every buffer a transaction keeps (the request to retransmit,
//! the last response) is one owned copy; nothing is rebuilt from a parsed tree.

use std::hash::{BuildHasher, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use smallvec::SmallVec;

use crate::auth::users::UserStore;
use crate::auth::{AuthKind, AuthOutcome, Authenticator};
use crate::config::{AuthMode, Transport};
use crate::io::{ConnId, Dest, Peer};
use crate::mesh::Outbox;
use crate::metrics::{DropReason, ShardMetrics};
use crate::registrar::{
    AorKey, Change, ConnRef, Location, RegisterOutcome, Registrar, RegistrarConfig, Source,
    TransportKind,
};
use crate::sip::header::HeaderName;
use crate::sip::method::Method;
use crate::sip::uri::Uri;
use crate::sip::via::Via;
use crate::sip::writer::{self, RequestEdits, ViaReceived, WriteError};
use crate::sip::Message;
use crate::txn::key::{BranchGenerator, ClientKeyRef, LegacyFields, ServerKeyRef};
use crate::txn::table::{TableError, TxnId, TxnTable, TxnTimer};
use crate::txn::{
    Action, Actions, ClientEvent, Reliability, ServerEvent, TimerKind, TimerWheel, Timers,
};

use super::flow::{self as flows, Flow, FlowKey};
use super::identity::Identity;
use super::next_hop::{next_hop, NextHop};
use super::resolve::{Lookup, Resolver};
use super::route::{preprocess, RoutePlan};
use super::validate::{loop_hash, unsupported_proxy_require, validate_request, Reject};
use crate::io::Cidr;

/// Methods listed in `Allow` when the proxy answers OPTIONS itself.
pub const ALLOW: &[u8] =
    b"INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, PRACK, UPDATE, INFO, SUBSCRIBE, NOTIFY, REFER, MESSAGE, PUBLISH";
/// Bodies the proxy itself accepts (RFC 3261 §11.2).
pub const ACCEPT: &[u8] = b"application/sdp";
/// Option tags the proxy supports.
pub const SUPPORTED: &[u8] = b"path";
/// The capability headers of the proxy's own 200 to OPTIONS (§11.2).
pub(super) const CAPABILITIES: [(&str, &[u8]); 3] = [
    ("Allow", ALLOW),
    ("Accept", ACCEPT),
    ("Supported", SUPPORTED),
];
/// Retry-After of a 503 sent when the transaction table is full, seconds.
const RETRY_AFTER: &[u8] = b"5";

/// What the proxy is allowed and told to do.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// Insert Record-Route into dialog-creating requests (§16.6 step 4).
    pub record_route: bool,
    /// Destinations a request from anyone may be relayed to (`--relay`).
    pub relay: Vec<Cidr>,
    /// Live transactions per shard before new requests get 503.
    pub max_transactions: usize,
    pub timers: Timers,
    /// Requests larger than this go over TCP instead of UDP (§18.1.1); None
    /// keeps every UDP target on UDP.
    pub udp_mtu: Option<usize>,
    /// How the contacts of a user are tried (§16.6).
    pub fork: ForkMode,
    /// Authenticates the flow tokens in our Record-Route; the same on every shard.
    pub flow_key: FlowKey,
}

pub use crate::config::ForkMode;

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            record_route: true,
            relay: Vec::new(),
            max_transactions: 1_000_000,
            timers: Timers::default(),
            udp_mtu: None,
            fork: ForkMode::Parallel,
            flow_key: FlowKey([0x666c_6f77, 0x006b_6579, 0x636f_7265, 0x0073_6970]),
        }
    }
}

/// A listening socket as the proxy names it in Via and Record-Route.
#[derive(Debug, Clone)]
pub struct Listener {
    pub transport: Transport,
    pub local: SocketAddr,
    /// `host:port` written into our Via sent-by and Record-Route URIs.
    pub advertised: String,
}

impl Listener {
    /// The listener for `local`; an unspecified address is advertised as the first
    /// interface address of its family that is not loopback (or loopback if that is
    /// all there is).
    pub fn new(transport: Transport, local: SocketAddr, local_ips: &[IpAddr]) -> Listener {
        let ip = if local.ip().is_unspecified() {
            let same_family = |ip: &&IpAddr| ip.is_ipv4() == local.is_ipv4();
            local_ips
                .iter()
                .filter(same_family)
                .find(|ip| !ip.is_loopback())
                .or_else(|| local_ips.iter().find(same_family))
                .copied()
                .unwrap_or(local.ip())
        } else {
            local.ip()
        };
        Listener {
            transport,
            local,
            advertised: SocketAddr::new(ip, local.port()).to_string(),
        }
    }
}

/// Digest authentication of one shard (RFC 3261 §22).
#[derive(Debug)]
pub struct AuthSetup {
    pub authenticator: Authenticator,
    pub users: std::sync::Arc<UserStore>,
    pub mode: AuthMode,
    pub realm: String,
}

/// The registrar, its store and authentication, as one shard runs them.
#[derive(Debug)]
pub struct Services {
    pub registrar: Registrar,
    /// Keep a journal of binding changes for the runtime to persist; false keeps
    /// bindings in memory only (tests). The engine never writes a file itself.
    pub journal: bool,
    /// `None` when nobody is challenged (`--auth none`, or no `--users`).
    pub auth: Option<AuthSetup>,
}

impl Services {
    /// A registrar for `cfg`'s domains with bindings in memory only and nobody
    /// challenged.
    pub fn in_memory(cfg: &crate::config::Config) -> Services {
        Services {
            registrar: Registrar::new(registrar_config(cfg)).unwrap_or_else(|_| {
                // `--domain` values are checked as hosts by the CLI.
                Registrar::new(RegistrarConfig::default()).expect("no domains is valid")
            }),
            journal: false,
            auth: None,
        }
    }
}

/// The registrar settings of a configuration.
pub fn registrar_config(cfg: &crate::config::Config) -> RegistrarConfig {
    let r = &cfg.registrar;
    RegistrarConfig {
        domains: cfg.domains.clone(),
        default_expires: r.default_expires,
        min_expires: r.min_expires,
        max_expires: r.max_expires,
        max_contacts: r.max_contacts,
        replace_oldest: r.replace_oldest,
        ..RegistrarConfig::default()
    }
}

/// Counters of the proxy core: what [`ShardMetrics`] counts too is read from it,
/// the rest is counted by the engine itself ([`Counters`]).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct EngineStats {
    pub requests: u64,
    pub responses: u64,
    /// Requests answered by the proxy itself (4xx/5xx of validation, OPTIONS…).
    pub local_replies: u64,
    pub forwarded_requests: u64,
    pub forwarded_responses: u64,
    pub retransmissions_absorbed: u64,
    pub stateless_relays: u64,
    pub timeouts: u64,
    pub table_full: u64,
    pub dropped: u64,
    pub registrations: u64,
    pub auth_challenges: u64,
    pub auth_failures: u64,
    pub bindings_expired: u64,
}

/// What the engine counts that the metrics do not break down the same way.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Counters {
    pub(super) local_replies: u64,
    pub(super) forwarded_requests: u64,
    pub(super) forwarded_responses: u64,
    pub(super) stateless_relays: u64,
    pub(super) table_full: u64,
    /// Drops by the engine (the metrics also count the shard's own).
    pub(super) dropped: u64,
}

/// Where a request is sent.
#[derive(Debug, Clone, Copy)]
pub(super) struct Target<'a> {
    /// The Request-URI to write, when it changes (§16.6 step 2).
    pub(super) request_uri: Option<&'a [u8]>,
    pub(super) hop: NextHop<'a>,
    /// A registered contact is reached where its REGISTER came from (behind NAT,
    /// over the same connection), not where its Contact URI points.
    pub(super) fixed: Option<Fixed>,
    /// A preloaded Route set (the contact's Path, RFC 3327).
    pub(super) route: Option<&'a [u8]>,
    /// The next hop's address, when its host name was resolved.
    pub(super) resolved: Option<SocketAddr>,
}

impl Fixed {
    /// The flow this destination names (for a flow token).
    fn flow(&self) -> Option<Flow> {
        let (addr, conn) = match self.dest {
            Dest::Udp { to, .. } | Dest::Stream { to, .. } => (to, None),
            Dest::Conn { conn, fallback, .. } => (fallback?, Some(conn)),
        };
        Some(Flow {
            transport: self.transport,
            addr,
            conn,
            listener: self.listener,
        })
    }

    fn of_flow(f: &Flow) -> Fixed {
        Fixed {
            transport: f.transport,
            dest: f.dest(),
            listener: f.listener,
        }
    }
}

/// A binding copied out of the location part: its contact and Path as ranges of a
/// shared buffer, and where it registered from.
type Found = (std::ops::Range<usize>, std::ops::Range<usize>, Source);

/// How a request leaves (§16.6 step 10): transport, destination, and the listener
/// (index and socket) named in our Via and Record-Route.
#[derive(Debug, Clone, Copy)]
pub(super) struct Outbound<'l> {
    pub(super) transport: Transport,
    pub(super) dest: Dest,
    pub(super) index: usize,
    pub(super) listener: &'l Listener,
}

/// The transport, destination and listener of a registered contact.
#[derive(Debug, Clone, Copy)]
pub(super) struct Fixed {
    transport: Transport,
    dest: Dest,
    listener: u16,
}

/// Per-transaction data kept in the table.
#[derive(Debug)]
enum Ctx {
    Server(ServerCtx),
    Client(ClientCtx),
}

/// The server transaction and response context of a received request (§16.7).
#[derive(Debug)]
struct ServerCtx {
    /// The request as received (to answer it ourselves).
    request: Vec<u8>,
    reply_to: Dest,
    /// The last response sent, for retransmissions.
    last_response: Vec<u8>,
    branches: SmallVec<[TxnId; 2]>,
    /// The best final response received so far (§16.7 step 6), as received.
    best: Option<(u16, Vec<u8>)>,
    /// WWW-/Proxy-Authenticate lines of every 401/407 (§16.7 step 7).
    challenges: Vec<u8>,
    final_sent: bool,
    cancelled: bool,
    /// When the request arrived (transaction duration).
    created: Instant,
    /// Where it came from, and whether its sender authenticated: to route it again
    /// once a host name it waits for has resolved.
    from: Peer,
    authenticated: bool,
    /// Serial forking: where the next group of contacts starts in the AOR's
    /// lookup order, once the current group has failed.
    next_group: Option<usize>,
}

impl ServerCtx {
    /// The context of a request just received; `request` is kept to answer it
    /// ourselves (empty for a CANCEL, which is only ever answered 200, and for a
    /// REGISTER our registrar answers at once).
    fn new(request: Vec<u8>, reply_to: Dest, from: Peer, now: Instant) -> ServerCtx {
        ServerCtx {
            request,
            reply_to,
            last_response: Vec::new(),
            branches: SmallVec::new(),
            best: None,
            challenges: Vec::new(),
            final_sent: false,
            cancelled: false,
            created: now,
            from,
            authenticated: false,
            next_group: None,
        }
    }
}

/// What a branch does about CANCEL (§9.1: not before a provisional arrived).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CancelState {
    None,
    Pending,
    Sent,
}

/// A client transaction: one branch of a forwarded request.
#[derive(Debug)]
struct ClientCtx {
    server: TxnId,
    /// The request as sent, for retransmissions, CANCEL and ACK.
    request: Vec<u8>,
    dest: Dest,
    /// Where responses go upstream once the server transaction has ended (a 2xx
    /// from another fork branch).
    upstream: Dest,
    provisional: bool,
    final_code: Option<u16>,
    cancel: CancelState,
    is_invite: bool,
    /// A CANCEL this proxy generated (§16.10): its responses are absorbed.
    is_cancel: bool,
}

/// The stateful proxy core of one shard.
pub struct Engine {
    pub(super) cfg: ProxyConfig,
    pub(super) identity: Identity,
    pub(super) listeners: Vec<Listener>,
    table: TxnTable<Ctx>,
    wheel: TimerWheel<TxnTimer>,
    branches: BranchGenerator,
    fired: Vec<TxnTimer>,
    tags: ahash::RandomState,
    pub(super) stats: Counters,
    pub(super) metrics: ShardMetrics,
    pub(super) registrar: Registrar,
    /// Binding changes the runtime has not yet taken to persist
    /// ([`Engine::take_journal`]); `None` when nothing is persisted.
    journal: Option<Vec<Change>>,
    pub(super) auth: Option<AuthSetup>,
    pub(super) resolver: Resolver,
    /// Wall-clock seconds at `origin`: bindings and nonces live in UNIX time.
    unix_origin: u64,
    origin: Instant,
    /// The bindings of the AORs other shards own, as they last told us
    /// ([`Engine::start_replicating`]).
    replica: Location,
    /// Whether this shard tells the others about its binding changes.
    replicating: bool,
    /// Binding changes not yet sent to the other shards, when they are due, and
    /// when the last batch went.
    outgoing: Vec<Change>,
    outgoing_due: Option<Instant>,
    replicated_at: Option<Instant>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("live", &self.table.len())
            .field("stats", &self.stats)
            .finish()
    }
}

impl Engine {
    /// The core of shard `shard`; `seed` makes its branches unique across runs.
    /// `unix_now` is the wall clock at `now`, in seconds since the UNIX epoch.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        shard: u16,
        seed: u64,
        now: Instant,
        unix_now: u64,
        cfg: ProxyConfig,
        identity: Identity,
        listeners: Vec<Listener>,
        services: Services,
    ) -> Engine {
        Engine {
            registrar: services.registrar,
            journal: services.journal.then(Vec::new),
            auth: services.auth,
            resolver: Resolver::default(),
            unix_origin: unix_now,
            origin: now,
            replica: Location::new(),
            replicating: false,
            outgoing: Vec::new(),
            outgoing_due: None,
            replicated_at: None,
            table: TxnTable::new(cfg.max_transactions, cfg.timers),
            wheel: TimerWheel::new(now),
            branches: BranchGenerator::new(shard, seed),
            fired: Vec::new(),
            tags: ahash::RandomState::with_seeds(seed, 0x0074_6f74_6167, 0x5f73_6970, shard.into()),
            stats: Counters::default(),
            metrics: ShardMetrics::new(),
            cfg,
            identity,
            listeners,
        }
    }

    /// The counters.
    pub fn stats(&self) -> EngineStats {
        let m = self.metrics.counters();
        let c = self.stats;
        EngineStats {
            requests: m.requests_in_total(),
            responses: m.responses_in.iter().sum(),
            local_replies: c.local_replies,
            forwarded_requests: c.forwarded_requests,
            forwarded_responses: c.forwarded_responses,
            retransmissions_absorbed: m.retransmissions_absorbed,
            stateless_relays: c.stateless_relays,
            timeouts: m.transactions_timed_out,
            table_full: c.table_full,
            dropped: c.dropped,
            registrations: m.registrations,
            auth_challenges: m.auth_challenges,
            auth_failures: m.auth_failures,
            bindings_expired: m.binding_expirations,
        }
    }

    /// Counters and histograms for the admin thread.
    pub fn metrics(&self) -> &ShardMetrics {
        &self.metrics
    }

    /// The metrics, for what the runtime measures (latency, connections).
    pub fn metrics_mut(&mut self) -> &mut ShardMetrics {
        &mut self.metrics
    }

    /// Live transactions (shutdown waits for them).
    pub fn in_flight(&self) -> usize {
        self.table.len()
    }

    /// Who this proxy is.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The registrar (and through it the shard's location part).
    pub fn registrar(&self) -> &Registrar {
        &self.registrar
    }

    /// The binding changes made since the last call, in order, for the runtime to
    /// write and sync off the SIP task queue: a slow disk never delays a message.
    pub fn take_journal(&mut self) -> Vec<Change> {
        self.journal
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// Seconds since the UNIX epoch at `now`.
    pub(crate) fn unix(&self, now: Instant) -> u64 {
        self.unix_origin + now.saturating_duration_since(self.origin).as_secs()
    }

    // ---------------------------------------------------------------------------
    // Requests

    /// A request owned by this shard arrived from `from`.
    pub fn on_request(&mut self, now: Instant, from: Peer, msg: &Message<'_>, out: &mut Outbox) {
        let Some(method) = msg.method() else {
            return;
        };
        self.metrics.inc_request_in(&method);
        let via = match msg.via() {
            Ok(v) => v,
            Err(e) => {
                // §16.3 step 1 with a Via nobody can route by: the 400 goes back to
                // where the request came from, as Kamailio's sanity checks do. An
                // ACK is never answered.
                if method == Method::Ack {
                    self.dropped(DropReason::Malformed);
                } else {
                    let to = crate::proxy::response_dest(from, None);
                    self.reply_stateless(msg, to, 400, e.reason().as_bytes(), &[], out);
                }
                return;
            }
        };
        let Some(key) = server_key(msg, &via, method) else {
            self.dropped(DropReason::Malformed);
            return;
        };
        let reply_to = crate::proxy::response_dest(from, Some(&via));

        if method == Method::Ack {
            self.on_ack(now, from, msg, &key, out);
            return;
        }
        // A retransmission (§17.2.3): the transaction answers it.
        if let Some(id) = self.table.find_server(&key) {
            self.metrics.inc_retransmission_absorbed();
            self.server_event(now, id, ServerEvent::Request, out);
            return;
        }
        if method == Method::Cancel {
            self.on_cancel(now, from, msg, &key, reply_to, out);
            return;
        }

        let to_me = self.addressed_to_me(msg);
        if let Err(reject) = validate_request(msg, &self.identity, to_me) {
            self.reject_stateless(msg, reply_to, reject, out);
            return;
        }

        let reliability = reliability_of(from.transport);
        // A REGISTER for one of our domains is answered before this call returns, so
        // nothing would ever read a copy of it (the copy is for answering a proxied
        // request later: its branches' outcome, a timeout, a DNS answer).
        let local_register = method == Method::Register && self.register_is_ours(msg);
        let request = if local_register {
            Vec::new()
        } else {
            msg.as_bytes().to_vec()
        };
        let ctx = ServerCtx::new(request, reply_to, from, now);
        let id = match self
            .table
            .insert_server(&key, reliability, Ctx::Server(ctx))
        {
            Ok(id) => {
                self.metrics.inc_transaction_created();
                id
            }
            Err(TableError::Full) => {
                self.stats.table_full += 1;
                self.reply_stateless(
                    msg,
                    reply_to,
                    503,
                    b"Service Unavailable",
                    &[("Retry-After", RETRY_AFTER)],
                    out,
                );
                return;
            }
            Err(TableError::Exists(id)) => {
                self.server_event(now, id, ServerEvent::Request, out);
                return;
            }
            Err(TableError::Ack) => return,
        };
        if method == Method::Invite {
            // §16.2: a stateful proxy answers INVITE with 100 at once so the
            // client stops retransmitting.
            self.respond(now, id, msg, 100, b"Trying", &[], out);
        }
        if local_register {
            self.on_register(now, id, from, msg, out);
            return;
        }
        let authenticated = match self.authenticate_request(now, id, msg, method, out) {
            Some(a) => a,
            None => return,
        };
        if let Some(Ctx::Server(s)) = self.table.get_mut(id).map(|e| &mut e.data) {
            s.authenticated = authenticated;
        }
        self.route_request(now, id, from, msg, to_me, authenticated, out);
    }

    /// True when the Request-URI names the proxy itself (no user part, §16.5).
    pub(super) fn addressed_to_me(&self, msg: &Message<'_>) -> bool {
        msg.uri().ok().is_some_and(|u| {
            u.as_sip()
                .is_some_and(|s| s.user.is_none() && self.identity.is_me(s))
        })
    }

    /// True when a REGISTER's Request-URI names one of our domains (RFC 3261
    /// §10.3 step 1); others are proxied like any request.
    pub(super) fn register_is_ours(&self, msg: &Message<'_>) -> bool {
        msg.uri()
            .ok()
            .and_then(|u| u.as_sip().map(|s| self.registrar.is_our_domain(&s.host)))
            .unwrap_or(false)
    }

    /// A REGISTER for one of our domains (RFC 3261 §10.3), on the shard that owns
    /// its AOR.
    fn on_register(
        &mut self,
        now: Instant,
        id: TxnId,
        from: Peer,
        msg: &Message<'_>,
        out: &mut Outbox,
    ) {
        let unix = self.unix(now);
        // Steps 3–4: authenticate, and the user may only register its own AOR.
        if let Some(auth) = self.auth.as_ref().filter(|a| a.mode != AuthMode::None) {
            let realm = auth.realm.clone();
            match auth
                .authenticator
                .check(unix, msg, AuthKind::Www, realm.as_bytes())
            {
                AuthOutcome::Authorized { user } => {
                    let own = msg
                        .to_uri()
                        .ok()
                        .and_then(|u| u.as_sip().map(|s| s.user_is(user)))
                        .unwrap_or(false);
                    if !own {
                        self.metrics.inc_auth_failure();
                        self.respond(now, id, msg, 403, b"Forbidden (AOR Mismatch)", &[], out);
                        return;
                    }
                }
                other => {
                    self.answer_auth_failure(now, id, msg, AuthKind::Www, other, out);
                    return;
                }
            }
        }
        let source = Source {
            addr: from.addr,
            transport: match from.transport {
                Transport::Udp => TransportKind::Udp,
                Transport::Tcp => TransportKind::Tcp,
                Transport::Tls => TransportKind::Tls,
            },
            conn: from.conn.map(|c| ConnRef {
                shard: c.shard,
                id: c.seq,
            }),
            listener: from.listener,
            nat: nat_detected(msg, from),
        };
        let Some(Ctx::Server(s)) = self.table.get_mut(id).map(|e| &mut e.data) else {
            return;
        };
        let mut resp = std::mem::take(&mut s.last_response);
        resp.clear();
        match self.registrar.on_register(unix, msg, source, &mut resp) {
            RegisterOutcome::Answered { status, changes } => {
                if let Some(journal) = &mut self.journal {
                    journal.extend_from_slice(&changes);
                }
                if self.replicating {
                    self.queue_replication(now, changes);
                }
                self.metrics.inc_registration();
                if let Some(Ctx::Server(s)) = self.table.get_mut(id).map(|e| &mut e.data) {
                    s.last_response = resp;
                    s.final_sent = true;
                }
                self.server_event(now, id, ServerEvent::TuResponse(status), out);
            }
            RegisterOutcome::ForeignDomain | RegisterOutcome::NotRegister => {
                self.respond(now, id, msg, 403, b"Not Our Domain", &[], out);
            }
        }
    }

    /// `--auth all`: an out-of-dialog request from one of our domains must carry
    /// valid Proxy-Authorization (RFC 3261 §22.3). Returns whether the sender is an
    /// authenticated local user, or `None` when the request has been answered.
    fn authenticate_request(
        &mut self,
        now: Instant,
        id: TxnId,
        msg: &Message<'_>,
        method: Method<'_>,
        out: &mut Outbox,
    ) -> Option<bool> {
        let Some(auth) = self.auth.as_ref().filter(|a| a.mode == AuthMode::All) else {
            return Some(false);
        };
        let in_dialog = msg.to().ok().and_then(|t| t.tag()).is_some();
        let local_sender = msg
            .from_uri()
            .ok()
            .and_then(|u| {
                u.as_sip().map(|s| {
                    self.identity
                        .is_our_domain(&s.host, s.port, s.port_or_default())
                })
            })
            .unwrap_or(false);
        if in_dialog || !local_sender || !crate::auth::is_challengeable(method) {
            return Some(false);
        }
        let realm = auth.realm.clone();
        let unix = self.unix(now);
        match auth
            .authenticator
            .check(unix, msg, AuthKind::Proxy, realm.as_bytes())
        {
            AuthOutcome::Authorized { .. } => Some(true),
            other => {
                self.answer_auth_failure(now, id, msg, AuthKind::Proxy, other, out);
                None
            }
        }
    }

    /// 401/407 with fresh challenges, 403 or 400, for failed credentials.
    fn answer_auth_failure(
        &mut self,
        now: Instant,
        id: TxnId,
        msg: &Message<'_>,
        kind: AuthKind,
        outcome: AuthOutcome<'_>,
        out: &mut Outbox,
    ) {
        let Some(auth) = self.auth.as_ref() else {
            return;
        };
        match outcome {
            AuthOutcome::Challenge(state) => {
                let unix = self.unix(now);
                let ch = auth
                    .authenticator
                    .challenge(unix, auth.realm.as_bytes(), kind, state);
                let headers: SmallVec<[(&str, Vec<u8>); 2]> =
                    ch.headers().map(|(n, v)| (n, v.to_vec())).collect();
                let extra: SmallVec<[(&str, &[u8]); 2]> =
                    headers.iter().map(|(n, v)| (*n, v.as_slice())).collect();
                self.metrics.inc_auth_challenge();
                self.respond(now, id, msg, ch.status(), ch.reason(), &extra, out);
            }
            AuthOutcome::Forbidden => {
                self.metrics.inc_auth_failure();
                self.respond(now, id, msg, 403, b"Forbidden", &[], out);
            }
            AuthOutcome::BadRequest(_) => {
                self.metrics.inc_auth_failure();
                self.respond(now, id, msg, 400, b"Bad Credentials", &[], out);
            }
            AuthOutcome::Authorized { .. } => {}
        }
    }

    /// §16.4–§16.6 for a new request whose server transaction is `id`.
    #[allow(clippy::too_many_arguments)]
    fn route_request(
        &mut self,
        now: Instant,
        id: TxnId,
        from: Peer,
        msg: &Message<'_>,
        to_me: bool,
        authenticated: bool,
        out: &mut Outbox,
    ) {
        let plan = match preprocess(msg, &self.identity) {
            Ok(p) => p,
            Err(e) => {
                self.respond(now, id, msg, 400, e.reason().as_bytes(), &[], out);
                return;
            }
        };
        let method = msg.method().unwrap_or(Method::Options);

        // The Route set names the next hop (§16.6 step 7), or the request is for
        // the Request-URI's owner (§16.5).
        let hop_uri: &[u8] = match &plan.next {
            Some(r) => r.uri,
            None => plan.request_uri,
        };
        if plan.next.is_none() && to_me && !plan.strict_fixed {
            self.handle_local(now, id, msg, method, out);
            return;
        }
        let Ok(Uri::Sip(hop_sip)) = Uri::parse(hop_uri) else {
            // A tel: (or other) Request-URI with no Route to follow.
            self.respond(now, id, msg, 404, b"Not Found", &[], out);
            return;
        };
        if self.targets_our_user(msg, &plan, &hop_sip) {
            // A user of ours: the location service names the targets (§16.5).
            self.route_to_user(now, id, from, msg, &plan, &hop_sip, 0, out);
            return;
        }
        let hop = match next_hop(&hop_sip) {
            Ok(h) => h,
            Err(_) => {
                self.respond(now, id, msg, 416, b"Unsupported URI Scheme", &[], out);
                return;
            }
        };
        let addr = match (hop.addr(), hop.host) {
            (Some(a), _) => a,
            (None, crate::sip::Host::Domain(name)) => {
                match self.resolver.lookup(name, now, hop_v4(from)) {
                    Lookup::Found(ip) => SocketAddr::new(ip, hop.port),
                    Lookup::Failed => {
                        // §16.9 / RFC 3263 §4.3: no address to try.
                        self.respond(now, id, msg, 503, b"Cannot Resolve Next Hop", &[], out);
                        return;
                    }
                    Lookup::Unknown { ask } => {
                        // Parked: routed again by `on_resolved`.
                        self.resolver.wait(name, id);
                        if ask {
                            out.resolve(name);
                        }
                        return;
                    }
                }
            }
            (None, _) => {
                self.respond(now, id, msg, 503, b"Cannot Resolve Next Hop", &[], out);
                return;
            }
        };
        if !authenticated && !self.may_relay(msg, &plan, addr.ip()) {
            self.respond(now, id, msg, 403, b"Relaying Forbidden", &[], out);
            return;
        }
        let target = Target {
            request_uri: plan.strict_fixed.then_some(plan.request_uri),
            hop,
            fixed: self.flow_of_route(msg, &plan).map(|f| Fixed::of_flow(&f)),
            route: None,
            resolved: Some(addr),
        };
        self.fork(now, id, from, msg, &plan, &[target], out);
    }

    /// Target determination for a user of one of our domains (§16.5): the live
    /// bindings of the AOR from position `start` of the lookup order (highest q
    /// first), all at once or, with `--fork serial|auto`, one contact or one
    /// q-group at a time (§16.6). None: 480 when the user exists in the users file,
    /// else 404.
    #[allow(clippy::too_many_arguments)]
    fn route_to_user(
        &mut self,
        now: Instant,
        id: TxnId,
        from: Peer,
        msg: &Message<'_>,
        plan: &RoutePlan<'_>,
        uri: &crate::sip::SipUri<'_>,
        start: usize,
        out: &mut Outbox,
    ) {
        let unix = self.unix(now);
        let Ok(aor) = AorKey::from_sip_uri(uri) else {
            self.respond(now, id, msg, 404, b"Not Found", &[], out);
            return;
        };
        // Copied out of the location part: the forwarding below changes the engine.
        let mut texts: Vec<u8> = Vec::new();
        let mut found: SmallVec<[Found; 4]> = SmallVec::new();
        let all = self.lookup(&aor, unix);
        let total = all.len();
        let rank = |b: &crate::registrar::Binding| b.q().map_or(1000, |q| q.thousandths());
        let first_q = all.get(start).map(|b| rank(b));
        let group = all
            .into_iter()
            .skip(start)
            .take_while(|b| match self.cfg.fork {
                ForkMode::Parallel => true,
                ForkMode::Auto => Some(rank(b)) == first_q,
                ForkMode::Serial => false,
            })
            .count()
            .max(1);
        let mut next = start + group;
        for b in self.lookup(&aor, unix).into_iter().skip(start).take(group) {
            let c = texts.len()..texts.len() + b.contact().len();
            texts.extend_from_slice(b.contact());
            let p = texts.len()..texts.len() + b.path().len();
            texts.extend_from_slice(b.path());
            found.push((c, p, b.source));
        }
        if next >= total {
            next = 0;
        }
        if let Some(Ctx::Server(s)) = self.table.get_mut(id).map(|e| &mut e.data) {
            s.next_group = (next > 0).then_some(next);
        }
        if found.is_empty() && start > 0 {
            // The bindings changed while the earlier groups rang: finish with what
            // they answered.
            self.maybe_finish(now, id, out);
            return;
        }
        if found.is_empty() {
            if self.knows_user(uri) {
                self.respond(now, id, msg, 480, b"Temporarily Unavailable", &[], out);
            } else {
                self.respond(now, id, msg, 404, b"Not Found", &[], out);
            }
            return;
        }
        let mut targets: SmallVec<[Target<'_>; 4]> = SmallVec::new();
        for (c, p, source) in &found {
            let Some(mut target) = binding_target(&texts[c.clone()], &texts[p.clone()], source)
            else {
                continue;
            };
            target.resolved = self.resolved_addr(&target.hop, now, from, out);
            targets.push(target);
        }
        if targets.is_empty() {
            self.respond(now, id, msg, 480, b"Temporarily Unavailable", &[], out);
            return;
        }
        self.fork(now, id, from, msg, plan, &targets, out);
    }

    /// True when target determination goes to the location service (§16.5): no
    /// Route value is left and the Request-URI names one of our domains. A
    /// request in a dialog we record-routed (our Route and a To tag) is routed by
    /// its Request-URI, the peer's Contact (§16.4, §12.2.1.1), unless that URI
    /// names this proxy itself and the location service is the only way on.
    pub(super) fn targets_our_user(
        &self,
        msg: &Message<'_>,
        plan: &RoutePlan<'_>,
        uri: &crate::sip::SipUri<'_>,
    ) -> bool {
        if plan.next.is_some()
            || !self
                .identity
                .is_our_domain(&uri.host, uri.port, uri.port_or_default())
        {
            return false;
        }
        let in_our_dialog = plan.ours > 0 && msg.to().ok().and_then(|t| t.tag()).is_some();
        !in_our_dialog || self.identity.is_me(uri)
    }

    /// True when `uri`'s user is in the users file: an unregistered user of ours is
    /// 480, anyone else 404.
    pub(super) fn knows_user(&self, uri: &crate::sip::SipUri<'_>) -> bool {
        self.auth.as_ref().is_some_and(|a| {
            uri.user
                .is_some_and(|u| a.users.knows(u, a.realm.as_bytes()))
        })
    }

    /// The flow a request routed through our Record-Route must go to: the end of
    /// the dialog it did not come from (told by its From tag), when that end sits
    /// behind a NAT or on a connection and the Request-URI (its Contact) would not
    /// reach it.
    pub(super) fn flow_of_route(&self, msg: &Message<'_>, plan: &RoutePlan<'_>) -> Option<Flow> {
        if plan.next.is_some() {
            return None;
        }
        let key = &self.cfg.flow_key;
        let token = flows::Token::decode(key, plan.ours_user?)?;
        let from = msg.from().ok()?;
        token.next_flow(key, from.tag())
    }

    /// The relay policy: coresip is never an open relay. A request may go to a
    /// foreign destination when that destination is inside `--relay`, or when it is
    /// in a dialog this proxy record-routed (it carries our Route and a To tag, the
    /// way Kamailio's `loose_route()` lets in-dialog requests through).
    pub(super) fn may_relay(&self, msg: &Message<'_>, plan: &RoutePlan<'_>, ip: IpAddr) -> bool {
        if self.cfg.relay.iter().any(|c| c.contains(ip)) {
            return true;
        }
        plan.ours > 0 && msg.to().ok().and_then(|t| t.tag()).is_some()
    }

    /// Requests addressed to the proxy itself.
    fn handle_local(
        &mut self,
        now: Instant,
        id: TxnId,
        msg: &Message<'_>,
        method: Method<'_>,
        out: &mut Outbox,
    ) {
        match method {
            Method::Options => self.respond(now, id, msg, 200, b"OK", &CAPABILITIES, out),
            _ => self.respond(now, id, msg, 404, b"Not Found", &[], out),
        }
    }

    /// Sends `msg` to every target (§16.6), each in its own client transaction.
    #[allow(clippy::too_many_arguments)]
    fn fork(
        &mut self,
        now: Instant,
        id: TxnId,
        from: Peer,
        msg: &Message<'_>,
        plan: &RoutePlan<'_>,
        targets: &[Target<'_>],
        out: &mut Outbox,
    ) {
        let method = msg.method().unwrap_or(Method::Options);
        let upstream = match self.table.get(id).map(|e| &e.data) {
            Some(Ctx::Server(s)) => s.reply_to,
            _ => return,
        };
        let lh = loop_hash(msg);
        let fw = self.forwarding(from, msg, method);
        let mut sent = 0;
        for target in targets {
            match self.send_branch(
                now, id, from, msg, plan, target, &lh, &fw, upstream, method, out,
            ) {
                Some(client) => {
                    sent += 1;
                    if let Some(Ctx::Server(s)) = self.table.get_mut(id).map(|e| &mut e.data) {
                        s.branches.push(client);
                    }
                }
                None => continue,
            }
        }
        if sent == 0 {
            self.respond(now, id, msg, 503, b"Service Unavailable", &[], out);
        } else if sent > 1 {
            self.metrics.inc_fork(sent);
        }
    }

    /// Writes and sends one branch; returns its client transaction.
    #[allow(clippy::too_many_arguments)]
    fn send_branch(
        &mut self,
        now: Instant,
        server: TxnId,
        from: Peer,
        msg: &Message<'_>,
        plan: &RoutePlan<'_>,
        target: &Target<'_>,
        loop_hash: &[u8; 16],
        fw: &Forwarding,
        upstream: Dest,
        method: Method<'_>,
        out: &mut Outbox,
    ) -> Option<TxnId> {
        let b = self.branches.next_branch();
        let ob = self.outbound(from, msg, target)?;
        let (transport, dest) = (ob.transport, ob.dest);
        let mut branch = [0u8; 45];
        branch[..28].copy_from_slice(b.as_bytes());
        branch[28] = super::validate::LOOP_SEPARATOR;
        branch[29..].copy_from_slice(loop_hash);

        let mut bytes = Vec::with_capacity(msg.as_bytes().len() + 256);
        self.write_branch(from, msg, plan, target, &ob, &branch, fw, &mut bytes)
            .ok()?;
        let key = ClientKeyRef::new(&branch, method);
        let is_invite = method == Method::Invite;
        let ctx = ClientCtx {
            server,
            request: Vec::new(),
            dest,
            upstream,
            provisional: false,
            final_code: None,
            cancel: CancelState::None,
            is_invite,
            is_cancel: false,
        };
        let client = self
            .table
            .insert_client(
                now,
                &key,
                reliability_of(transport),
                Ctx::Client(ctx),
                &mut self.wheel,
            )
            .ok()?;
        out.send_with(dest, |b| b.extend_from_slice(&bytes));
        self.metrics.inc_transaction_created();
        self.metrics.inc_request_out(&method);
        if let Some(Ctx::Client(c)) = self.table.get_mut(client).map(|e| &mut e.data) {
            c.request = bytes;
        }
        if is_invite {
            // §16.6 step 11.
            self.table.set_timer(
                now,
                client,
                TimerKind::C,
                Some(self.cfg.timers.timer_c),
                &mut self.wheel,
            );
        }
        self.stats.forwarded_requests += 1;
        Some(client)
    }

    /// Where a request to `target` goes (§16.6 step 10): its transport,
    /// destination and the listener it leaves from.
    pub(super) fn outbound(
        &self,
        from: Peer,
        msg: &Message<'_>,
        target: &Target<'_>,
    ) -> Option<Outbound<'_>> {
        let (transport, dest, index, listener) = match target.fixed {
            Some(f) => {
                let l = self.listeners.get(f.listener as usize)?;
                (f.transport, f.dest, f.listener as usize, l)
            }
            None => {
                let to = target.resolved.or_else(|| target.hop.addr())?;
                // §18.1.1: a request that would not fit a UDP datagram goes over
                // TCP, when --udp-mtu asks for it. Off by default, as Kamailio's
                // `udp_mtu`: a phone that listens on UDP only (most, behind NAT
                // all) would never get a large INVITE.
                let estimate = msg.as_bytes().len() + 300;
                let transport = match (target.hop.transport, self.cfg.udp_mtu) {
                    (Transport::Udp, Some(mtu)) if estimate > mtu => Transport::Tcp,
                    (t, _) => t,
                };
                let (idx, l) = self.outbound_listener(from, transport, to)?;
                let dest = match transport {
                    Transport::Udp => Dest::Udp {
                        listener: idx as u16,
                        to,
                    },
                    t => Dest::Stream { transport: t, to },
                };
                (transport, dest, idx, l)
            }
        };
        Some(Outbound {
            transport,
            dest,
            index,
            listener,
        })
    }

    /// Writes `msg` as forwarded to `target` (§16.6 steps 2–9): Request-URI, our
    /// Via with `branch`, Record-Route, Max-Forwards, Route removal, `received` and
    /// `rport` on the previous hop's Via.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn write_branch(
        &self,
        from: Peer,
        msg: &Message<'_>,
        plan: &RoutePlan<'_>,
        target: &Target<'_>,
        ob: &Outbound<'_>,
        branch: &[u8],
        fw: &Forwarding,
        bytes: &mut Vec<u8>,
    ) -> Result<(), WriteError> {
        let (out_idx, out_listener) = (ob.index, ob.listener);
        let inbound = self.listeners.get(from.listener as usize);
        let via = our_via(ob.transport, out_listener, branch);

        // §16.6 step 4: record-route dialog-creating requests; twice when the
        // request changes transport or interface (RFC 5658), ours outbound first.
        let mut rr_out = SmallVec::<[u8; 96]>::new();
        let mut rr_in = SmallVec::<[u8; 96]>::new();
        let record = fw.record;
        if record {
            // A NATed caller or callee: its flow rides in our Record-Route so the
            // rest of the dialog reaches it (RFC 5626 §5.3).
            let caller = fw.caller;
            let callee = target.fixed.and_then(|f| f.flow());
            let mut token = SmallVec::<[u8; 96]>::new();
            if caller.is_some() || callee.is_some() {
                let key = &self.cfg.flow_key;
                let tag = msg.from().ok().and_then(|f| f.tag());
                flows::Token::new(key, caller, callee, tag).encode(key, &mut token);
            }
            rr_value(&mut rr_out, out_listener, &token);
            if let Some(inb) = inbound {
                if from.listener as usize != out_idx {
                    rr_value(&mut rr_in, inb, &token);
                }
            }
        }
        let rr_storage: [&[u8]; 2] = [&rr_out, &rr_in];
        let rr: &[&[u8]] = match (record, rr_in.is_empty()) {
            (false, _) => &[],
            (true, true) => &rr_storage[..1],
            (true, false) => &rr_storage[..],
        };

        let edits = RequestEdits {
            request_uri: target.request_uri,
            via: Some(&via),
            record_route: rr,
            max_forwards: Some(fw.max_forwards),
            remove_first_routes: plan.ours,
            remove_last_route: plan.strict_fixed,
            via_received: fw.via_received,
            route_preload: target.route,
        };
        writer::forward_request(msg, &edits, bytes)
    }

    /// What every branch of `msg` shares, decoded once per request rather than once
    /// per branch: §16.6 steps 3 and 4 and the receiving transport's §18.2.1 /
    /// RFC 3581 edits to the previous hop's Via.
    pub(super) fn forwarding(
        &self,
        from: Peer,
        msg: &Message<'_>,
        method: Method<'_>,
    ) -> Forwarding {
        let via_received = msg.via().ok().map(|v| {
            let rport = v.rport().map(|_| from.addr.port());
            let differs = v.sent_by.host.ip() != Some(from.addr.ip());
            ViaReceived {
                received: (differs || rport.is_some()).then_some(from.addr.ip()),
                rport,
            }
        });
        let record = self.cfg.record_route
            && method != Method::Register
            && msg.to().ok().and_then(|t| t.tag()).is_none();
        Forwarding {
            max_forwards: next_max_forwards(msg),
            via_received,
            record,
            // A NATed caller, or one on a TCP or TLS connection (reached on that
            // connection for the rest of the dialog, as its callee is).
            caller: (record && (from.transport.is_reliable() || nat_detected(msg, from)))
                .then(|| Flow::of_peer(&from)),
        }
    }

    /// The listener a request to `to` over `transport` leaves from: the one it
    /// arrived on when it fits, else the first of the right transport and family.
    fn outbound_listener(
        &self,
        from: Peer,
        transport: Transport,
        to: SocketAddr,
    ) -> Option<(usize, &Listener)> {
        let fits = |l: &Listener| l.transport == transport && l.local.is_ipv4() == to.is_ipv4();
        let inbound = from.listener as usize;
        if let Some(l) = self.listeners.get(inbound).filter(|l| fits(l)) {
            return Some((inbound, l));
        }
        self.listeners.iter().enumerate().find(|(_, l)| fits(l))
    }

    /// An ACK: for a non-2xx final it belongs to the INVITE's server transaction;
    /// otherwise (a 2xx's ACK, its own transaction) it is relayed statelessly along
    /// its Route set (§16.4, §16.11).
    fn on_ack(
        &mut self,
        now: Instant,
        from: Peer,
        msg: &Message<'_>,
        key: &ServerKeyRef<'_>,
        out: &mut Outbox,
    ) {
        if let Some(id) = self.table.find_server(key) {
            self.server_event(now, id, ServerEvent::Ack, out);
            return;
        }
        if msg.check().is_err() {
            self.dropped(DropReason::Malformed);
            return;
        }
        self.relay_stateless(from, msg, out);
    }

    /// Forwards a request without a transaction (ACK for 2xx): Route processing,
    /// our Via, Max-Forwards. Never answered; dropped where it cannot go.
    fn relay_stateless(&mut self, from: Peer, msg: &Message<'_>, out: &mut Outbox) {
        let Ok(plan) = preprocess(msg, &self.identity) else {
            self.dropped(DropReason::Malformed);
            return;
        };
        let hop_uri = plan.next.as_ref().map_or(plan.request_uri, |r| r.uri);
        let hop = match Uri::parse(hop_uri) {
            Ok(Uri::Sip(u)) => next_hop(&u).ok(),
            _ => None,
        };
        let branch = self.branches.next_branch();
        // Through our Record-Route to a NATed end: its flow; else the next hop.
        let (transport, dest, l) = match self.flow_of_route(msg, &plan) {
            Some(f) => {
                let Some(l) = self.listeners.get(f.listener as usize) else {
                    self.dropped(DropReason::Unroutable);
                    return;
                };
                (f.transport, f.dest(), l)
            }
            None => {
                let Some((hop, to)) = hop.and_then(|h| h.addr().map(|a| (h, a))) else {
                    self.dropped(DropReason::Malformed);
                    return;
                };
                if !self.may_relay(msg, &plan, to.ip()) {
                    self.dropped(DropReason::Malformed);
                    return;
                }
                let Some((idx, l)) = self.outbound_listener(from, hop.transport, to) else {
                    self.dropped(DropReason::Malformed);
                    return;
                };
                let dest = match hop.transport {
                    Transport::Udp => Dest::Udp {
                        listener: idx as u16,
                        to,
                    },
                    t => Dest::Stream { transport: t, to },
                };
                (hop.transport, dest, l)
            }
        };
        let via = our_via(transport, l, branch.as_bytes());
        let edits = RequestEdits {
            request_uri: plan.strict_fixed.then_some(plan.request_uri),
            via: Some(&via),
            max_forwards: Some(next_max_forwards(msg)),
            remove_first_routes: plan.ours,
            remove_last_route: plan.strict_fixed,
            ..RequestEdits::default()
        };
        if out
            .try_send_with(dest, |b| writer::forward_request(msg, &edits, b))
            .is_ok()
        {
            self.stats.stateless_relays += 1;
            if let Some(m) = msg.method() {
                self.metrics.inc_request_out(&m);
            }
        }
    }

    /// CANCEL (§16.10): answered 200 at once; every pending branch of the INVITE
    /// it matches is cancelled, and the INVITE's final answer follows (487 from
    /// downstream). With no INVITE to match: 481.
    fn on_cancel(
        &mut self,
        now: Instant,
        from: Peer,
        msg: &Message<'_>,
        key: &ServerKeyRef<'_>,
        reply_to: Dest,
        out: &mut Outbox,
    ) {
        let invite = self.table.find_server(&key.cancelled_invite());
        let Some(invite) = invite else {
            self.reply_stateless(
                msg,
                reply_to,
                481,
                b"Call/Transaction Does Not Exist",
                &[],
                out,
            );
            return;
        };
        // The CANCEL's own transaction absorbs its retransmissions.
        let ctx = ServerCtx::new(Vec::new(), reply_to, from, now);
        match self
            .table
            .insert_server(key, Reliability::Unreliable, Ctx::Server(ctx))
        {
            Ok(id) => {
                self.metrics.inc_transaction_created();
                self.respond(now, id, msg, 200, b"OK", &[], out)
            }
            Err(_) => self.reply_stateless(msg, reply_to, 200, b"OK", &[], out),
        }
        let branches = match self.table.get_mut(invite).map(|e| &mut e.data) {
            Some(Ctx::Server(s)) => {
                s.cancelled = true;
                s.branches.clone()
            }
            _ => return,
        };
        for b in branches {
            self.cancel_branch(now, b, out);
        }
    }

    /// Sends CANCEL on branch `id` if it is still pending, or marks it to be sent
    /// when its first provisional arrives (§9.1).
    fn cancel_branch(&mut self, now: Instant, id: TxnId, out: &mut Outbox) {
        let Some(Ctx::Client(c)) = self.table.get_mut(id).map(|e| &mut e.data) else {
            return;
        };
        if !c.is_invite || c.final_code.is_some() || c.cancel == CancelState::Sent {
            return;
        }
        if !c.provisional {
            c.cancel = CancelState::Pending;
            return;
        }
        c.cancel = CancelState::Sent;
        let (dest, server, upstream) = (c.dest, c.server, c.upstream);
        let Ok(req) = Message::parse(&c.request) else {
            return;
        };
        let mut cancel = Vec::with_capacity(400);
        if writer::write_cancel(&req, &mut cancel).is_err() {
            return;
        }
        // The CANCEL carries the INVITE's branch (§9.1); copied out so the table
        // can be changed below.
        let Some(branch) = req.via().ok().and_then(|v| v.branch()) else {
            return;
        };
        let branch: SmallVec<[u8; 64]> = SmallVec::from_slice(branch);
        let key = ClientKeyRef::new(&branch, Method::Cancel);
        let ctx = ClientCtx {
            server,
            request: Vec::new(),
            dest,
            upstream,
            provisional: false,
            final_code: None,
            cancel: CancelState::None,
            is_invite: false,
            is_cancel: true,
        };
        let reliability = match dest {
            Dest::Udp { .. } => Reliability::Unreliable,
            _ => Reliability::Reliable,
        };
        out.send_with(dest, |b| b.extend_from_slice(&cancel));
        self.metrics.inc_request_out(&Method::Cancel);
        if let Ok(cid) =
            self.table
                .insert_client(now, &key, reliability, Ctx::Client(ctx), &mut self.wheel)
        {
            self.metrics.inc_transaction_created();
            if let Some(Ctx::Client(cc)) = self.table.get_mut(cid).map(|e| &mut e.data) {
                cc.request = cancel;
            }
        }
    }

    // ---------------------------------------------------------------------------
    // Responses

    /// A response owned by this shard arrived.
    pub fn on_response(&mut self, now: Instant, from: Peer, msg: &Message<'_>, out: &mut Outbox) {
        let _ = from;
        let Some(code) = msg.status() else {
            return;
        };
        self.metrics.inc_response_in(code);
        let (Ok(via), Ok(cseq)) = (msg.via(), msg.cseq()) else {
            self.dropped(DropReason::Malformed);
            return;
        };
        let Some(branch) = via.branch() else {
            self.dropped(DropReason::Malformed);
            return;
        };
        let key = ClientKeyRef::new(branch, cseq.method);
        let Some(id) = self.table.find_client(&key) else {
            // §16.7: no transaction claims it (a 2xx retransmission after the
            // INVITE transaction ended): forward statelessly if the Via was ours.
            if self.identity.is_me_at(
                &via.sent_by.host,
                via.sent_by.port,
                via.transport.default_port(),
            ) {
                self.forward_response_stateless(msg, out);
            } else {
                self.dropped(DropReason::Malformed);
            }
            return;
        };
        let mut actions = Actions::new();
        self.table.client_event(
            now,
            id,
            ClientEvent::Response(code),
            &mut self.wheel,
            &mut actions,
        );
        for a in actions {
            match a {
                Action::PassResponse => self.on_branch_response(now, id, code, msg, out),
                Action::SendAck => self.send_ack(id, msg, out),
                Action::Terminated => self.branch_terminated(id),
                other => self.client_action(now, id, other, out),
            }
        }
    }

    /// Sends `msg` without its top Via to `dest`, outside any server transaction's
    /// state (stateless, or a further 2xx after the final response), and counts it.
    fn relay_response(&mut self, dest: Dest, msg: &Message<'_>, out: &mut Outbox) {
        if out
            .try_send_with(dest, |b| writer::forward_response(msg, b))
            .is_ok()
        {
            self.stats.forwarded_responses += 1;
            self.metrics.inc_response_out(msg.status().unwrap_or(0));
        }
    }

    /// Forwards a response to the element named by its second Via (§16.7 step 9,
    /// §18.2.2) without a transaction.
    pub(super) fn forward_response_stateless(&mut self, msg: &Message<'_>, out: &mut Outbox) {
        let Some(next) = msg.values(HeaderName::Via).nth(1) else {
            self.dropped(DropReason::Malformed);
            return;
        };
        let Ok(via) = Via::parse(next) else {
            self.dropped(DropReason::Malformed);
            return;
        };
        let Some(dest) = self.via_dest(&via) else {
            self.dropped(DropReason::Malformed);
            return;
        };
        self.relay_response(dest, msg, out);
    }

    /// Where a response goes by a Via value alone (§18.2.2, RFC 3581): `received`
    /// and `rport` when present, else sent-by.
    fn via_dest(&self, via: &Via<'_>) -> Option<Dest> {
        let ip = match via.received() {
            Some(Ok(ip)) => ip,
            _ => via.sent_by.host.ip()?,
        };
        let port = via
            .rport()
            .flatten()
            .or(via.sent_by.port)
            .unwrap_or(via.transport.default_port());
        let to = SocketAddr::new(ip, port);
        let transport = match via.transport {
            crate::sip::via::Transport::Tcp => Transport::Tcp,
            crate::sip::via::Transport::Tls => Transport::Tls,
            _ => Transport::Udp,
        };
        match transport {
            Transport::Udp => {
                let idx = self.listeners.iter().position(|l| {
                    l.transport == Transport::Udp && l.local.is_ipv4() == to.is_ipv4()
                })?;
                Some(Dest::Udp {
                    listener: idx as u16,
                    to,
                })
            }
            t => Some(Dest::Stream { transport: t, to }),
        }
    }

    /// §16.7 for a response a branch passed up.
    fn on_branch_response(
        &mut self,
        now: Instant,
        id: TxnId,
        code: u16,
        msg: &Message<'_>,
        out: &mut Outbox,
    ) {
        let Some(Ctx::Client(c)) = self.table.get_mut(id).map(|e| &mut e.data) else {
            return;
        };
        let server = c.server;
        let upstream = c.upstream;
        let is_invite = c.is_invite;
        if c.is_cancel {
            // The response to a CANCEL we generated: absorbed (§16.10).
            return;
        }
        if code < 200 {
            c.provisional = true;
            let send_cancel = c.cancel == CancelState::Pending;
            if is_invite && code > 100 {
                // §16.7 step 2: a provisional resets Timer C.
                self.table.set_timer(
                    now,
                    id,
                    TimerKind::C,
                    Some(self.cfg.timers.timer_c),
                    &mut self.wheel,
                );
            }
            if send_cancel {
                if let Some(Ctx::Client(c)) = self.table.get_mut(id).map(|e| &mut e.data) {
                    c.cancel = CancelState::None;
                }
                self.cancel_branch(now, id, out);
            }
            // 100 is hop-by-hop (§16.7 step 5): never forwarded.
            if code > 100 {
                self.forward_upstream(now, server, upstream, code, msg, out);
            }
            return;
        }
        if c.final_code.is_some() {
            // Timer C already settled this branch (408); a late 487 changes nothing.
            return;
        }
        c.final_code = Some(code);
        if is_invite {
            self.table
                .set_timer(now, id, TimerKind::C, None, &mut self.wheel);
        }
        if (200..300).contains(&code) {
            // §16.7 step 5/10: every 2xx goes upstream at once; the other branches
            // are cancelled (first: the 2xx ends the server transaction, and with it
            // the list of branches).
            if is_invite {
                self.cancel_others(now, server, id, out);
            }
            self.forward_upstream(now, server, upstream, code, msg, out);
            return;
        }
        // A final non-2xx: a candidate for the best response (§16.7 step 6).
        if let Some(Ctx::Server(s)) = self.table.get_mut(server).map(|e| &mut e.data) {
            if matches!(code, 401 | 407) {
                collect_challenges(msg, &mut s.challenges);
            }
            if better(code, s.best.as_ref().map(|b| b.0)) {
                s.best = Some((code, msg.as_bytes().to_vec()));
            }
        }
        if code >= 600 && is_invite {
            self.cancel_others(now, server, id, out);
        }
        self.maybe_finish(now, server, out);
    }

    /// Forwards `msg` (minus our Via) to the server transaction's client.
    fn forward_upstream(
        &mut self,
        now: Instant,
        server: TxnId,
        upstream: Dest,
        code: u16,
        msg: &Message<'_>,
        out: &mut Outbox,
    ) {
        let live = matches!(self.table.get(server).map(|e| &e.data), Some(Ctx::Server(s)) if !s.final_sent || (200..300).contains(&code));
        if !live {
            // The server transaction has ended: only a further 2xx (another fork
            // branch answered) still goes upstream, statelessly.
            if (200..300).contains(&code) {
                self.relay_response(upstream, msg, out);
            }
            return;
        }
        let Some(Ctx::Server(s)) = self.table.get_mut(server).map(|e| &mut e.data) else {
            return;
        };
        if s.final_sent {
            // A second 2xx while the transaction lingers.
            self.relay_response(upstream, msg, out);
            return;
        }
        let mut resp = std::mem::take(&mut s.last_response);
        resp.clear();
        if writer::forward_response(msg, &mut resp).is_err() {
            s.last_response = resp;
            return;
        }
        if code >= 200 {
            s.final_sent = true;
        }
        s.last_response = resp;
        self.stats.forwarded_responses += 1;
        self.server_event(now, server, ServerEvent::TuResponse(code), out);
    }

    /// Sends CANCEL on every branch of `server` except `except`.
    fn cancel_others(&mut self, now: Instant, server: TxnId, except: TxnId, out: &mut Outbox) {
        let branches = match self.table.get(server).map(|e| &e.data) {
            Some(Ctx::Server(s)) => s.branches.clone(),
            _ => return,
        };
        for b in branches.into_iter().filter(|&b| b != except) {
            self.cancel_branch(now, b, out);
        }
    }

    /// When every branch has a final answer, sends the best one upstream (§16.7
    /// step 6): 503 becomes 500, collected challenges ride on a 401/407, and with no
    /// answer at all the proxy answers 408.
    fn maybe_finish(&mut self, now: Instant, server: TxnId, out: &mut Outbox) {
        let Some(Ctx::Server(s)) = self.table.get(server).map(|e| &e.data) else {
            return;
        };
        if s.final_sent {
            return;
        }
        let pending = s.branches.iter().any(|&b| {
            matches!(self.table.get(b).map(|e| &e.data), Some(Ctx::Client(c)) if c.final_code.is_none())
        });
        if pending {
            return;
        }
        let best = s.best.as_ref().map(|(code, _)| *code);
        let request = s.request.clone();
        let Ok(req) = Message::parse(&request) else {
            return;
        };
        // Serial forking (§16.6): a group that failed without a 6xx hands over to
        // the next one, unless the request was cancelled.
        if let (Some(start), false, false) =
            (s.next_group, s.cancelled, best.is_some_and(|c| c >= 600))
        {
            let from = s.from;
            if let (Ok(plan), Some(uri)) = (
                preprocess(&req, &self.identity),
                match req.uri() {
                    Ok(Uri::Sip(s)) => Some(s),
                    _ => None,
                },
            ) {
                self.route_to_user(now, server, from, &req, &plan, &uri, start, out);
                return;
            }
        }
        match best {
            Some(503) | None => {
                let (code, reason): (u16, &[u8]) = if best.is_some() {
                    (500, b"Server Internal Error")
                } else {
                    (408, b"Request Timeout")
                };
                self.respond(now, server, &req, code, reason, &[], out);
            }
            Some(code) => {
                let Some(Ctx::Server(s)) = self.table.get_mut(server).map(|e| &mut e.data) else {
                    return;
                };
                let Some((_, bytes)) = s.best.take() else {
                    return;
                };
                let Ok(resp) = Message::parse(&bytes) else {
                    return;
                };
                let mut outb = std::mem::take(&mut s.last_response);
                outb.clear();
                let extra = if matches!(code, 401 | 407) {
                    own_challenges_removed(&resp, &s.challenges)
                } else {
                    Vec::new()
                };
                if writer::forward_response_with(&resp, &extra, &mut outb).is_err() {
                    return;
                }
                s.last_response = outb;
                s.final_sent = true;
                self.stats.forwarded_responses += 1;
                self.server_event(now, server, ServerEvent::TuResponse(code), out);
            }
        }
    }

    fn send_ack(&mut self, id: TxnId, resp: &Message<'_>, out: &mut Outbox) {
        let Some(Ctx::Client(c)) = self.table.get(id).map(|e| &e.data) else {
            return;
        };
        let Ok(req) = Message::parse(&c.request) else {
            return;
        };
        let dest = c.dest;
        if out
            .try_send_with(dest, |b| writer::write_ack(&req, resp, b))
            .is_ok()
        {
            self.metrics.inc_request_out(&Method::Ack);
        }
    }

    fn branch_terminated(&mut self, id: TxnId) {
        self.table.remove(id, &mut self.wheel);
    }

    /// Client actions other than passing a response up.
    fn client_action(&mut self, now: Instant, id: TxnId, a: Action, out: &mut Outbox) {
        match a {
            Action::RetransmitRequest => {
                if let Some(Ctx::Client(c)) = self.table.get(id).map(|e| &e.data) {
                    let dest = c.dest;
                    out.send_with(dest, |b| b.extend_from_slice(&c.request));
                }
            }
            Action::Timeout(TimerKind::C) => self.timer_c(now, id, out),
            // §16.8 (B, F): the branch behaves as if it had a 408; §16.9: a
            // transport error counts as 503.
            Action::Timeout(_) => {
                self.metrics.inc_transaction_timed_out();
                self.branch_failed(now, id, 408, out);
            }
            Action::TransportError => self.branch_failed(now, id, 503, out),
            Action::Terminated => self.branch_terminated(id),
            _ => {}
        }
    }

    /// Timer C (§16.8): a branch that has rung gets a CANCEL and counts as 408; one
    /// that has not behaves as if it got 408.
    fn timer_c(&mut self, now: Instant, id: TxnId, out: &mut Outbox) {
        self.metrics.inc_transaction_timed_out();
        let provisional =
            matches!(self.table.get(id).map(|e| &e.data), Some(Ctx::Client(c)) if c.provisional);
        if provisional {
            self.cancel_branch(now, id, out);
        }
        self.branch_failed(now, id, 408, out);
    }

    fn branch_failed(&mut self, now: Instant, id: TxnId, code: u16, out: &mut Outbox) {
        let Some(Ctx::Client(c)) = self.table.get_mut(id).map(|e| &mut e.data) else {
            return;
        };
        if c.is_cancel || c.final_code.is_some() {
            return;
        }
        c.final_code = Some(code);
        let server = c.server;
        if let Some(Ctx::Server(s)) = self.table.get_mut(server).map(|e| &mut e.data) {
            if code == 503 && s.best.is_none() {
                // Remembered as a 503 so that it turns into 500 (§16.9, §16.7 step 6).
                s.best = Some((503, Vec::new()));
            }
        }
        self.maybe_finish(now, server, out);
    }

    // ---------------------------------------------------------------------------
    // Server side

    /// Writes a response of our own to the request of server transaction `id` and
    /// hands it to the transaction.
    #[allow(clippy::too_many_arguments)]
    fn respond(
        &mut self,
        now: Instant,
        id: TxnId,
        req: &Message<'_>,
        code: u16,
        reason: &[u8],
        extra: &[(&str, &[u8])],
        out: &mut Outbox,
    ) {
        let tag = self.to_tag(req);
        let Some(Ctx::Server(s)) = self.table.get_mut(id).map(|e| &mut e.data) else {
            return;
        };
        if s.final_sent && code >= 200 {
            return;
        }
        let mut resp = std::mem::take(&mut s.last_response);
        resp.clear();
        if writer::write_response(req, code, reason, Some(&tag), extra, &mut resp).is_err() {
            s.last_response = resp;
            return;
        }
        if code >= 200 {
            s.final_sent = true;
        }
        s.last_response = resp;
        if code > 100 {
            self.stats.local_replies += 1;
        }
        self.server_event(now, id, ServerEvent::TuResponse(code), out);
    }

    /// Feeds `event` to server transaction `id` and carries out what it asks.
    fn server_event(&mut self, now: Instant, id: TxnId, event: ServerEvent, out: &mut Outbox) {
        let mut actions = Actions::new();
        self.table
            .server_event(now, id, event, &mut self.wheel, &mut actions);
        self.server_actions(now, id, &actions, out);
    }

    fn server_actions(&mut self, now: Instant, id: TxnId, actions: &[Action], out: &mut Outbox) {
        for a in actions {
            match a {
                Action::SendResponse | Action::RetransmitResponse => {
                    if let Some(Ctx::Server(s)) = self.table.get(id).map(|e| &e.data) {
                        if !s.last_response.is_empty() {
                            let dest = s.reply_to;
                            out.send_with(dest, |b| b.extend_from_slice(&s.last_response));
                            let code = s
                                .last_response
                                .get(8..11)
                                .and_then(crate::sip::text::parse_u32)
                                .unwrap_or(0);
                            self.metrics.inc_response_out(code as u16);
                        }
                    }
                }
                Action::Terminated => {
                    if let Some(Ctx::Server(s)) = self.table.remove(id, &mut self.wheel) {
                        self.metrics
                            .observe_transaction_duration(now.saturating_duration_since(s.created));
                    }
                }
                _ => {}
            }
        }
    }

    pub(super) fn dropped(&mut self, reason: DropReason) {
        self.stats.dropped += 1;
        self.metrics.inc_dropped(reason);
    }

    /// Answers a request without creating a transaction: validation failures
    /// (their retransmissions are answered the same way) and overload.
    pub(super) fn reject_stateless(
        &mut self,
        msg: &Message<'_>,
        to: Dest,
        r: Reject,
        out: &mut Outbox,
    ) {
        let reason = r.reason().as_bytes();
        if r == Reject::BadExtension {
            let mut tags = SmallVec::<[u8; 64]>::new();
            for t in unsupported_proxy_require(msg) {
                if !tags.is_empty() {
                    tags.extend_from_slice(b", ");
                }
                tags.extend_from_slice(t);
            }
            self.reply_stateless(msg, to, r.code(), reason, &[("Unsupported", &tags)], out);
        } else {
            self.reply_stateless(msg, to, r.code(), reason, &[], out);
        }
    }

    /// 505 for a request whose SIP-Version this proxy does not speak (RFC 3261
    /// §21.5.7): `msg` is the request with its version rewritten.
    pub fn reply_version_not_supported(&mut self, from: Peer, msg: &Message<'_>, out: &mut Outbox) {
        let via = msg.via().ok();
        let to = crate::proxy::response_dest(from, via.as_ref());
        self.reply_stateless(msg, to, 505, b"Version Not Supported", &[], out);
    }

    /// 400 for a request that failed [`Message::parse`] with `fault` (RFC 3261
    /// §21.4.1, the reason phrase naming it): `msg` is what could be salvaged of it
    /// (see [`Message::parse_skipping_bad_lines`]), with a usable top Via.
    pub fn reply_unparsable(
        &mut self,
        from: Peer,
        msg: &Message<'_>,
        fault: crate::sip::ParseError,
        out: &mut Outbox,
    ) {
        let via = msg.via().ok();
        let to = crate::proxy::response_dest(from, via.as_ref());
        self.reply_stateless(msg, to, 400, fault.reason().as_bytes(), &[], out);
    }

    pub(super) fn reply_stateless(
        &mut self,
        msg: &Message<'_>,
        to: Dest,
        code: u16,
        reason: &[u8],
        extra: &[(&str, &[u8])],
        out: &mut Outbox,
    ) {
        let tag = self.to_tag(msg);
        if out
            .try_send_with(to, |b| {
                writer::write_response(msg, code, reason, Some(&tag), extra, b)
            })
            .is_ok()
        {
            self.stats.local_replies += 1;
            self.metrics.inc_response_out(code);
        }
    }

    /// A To tag for responses this proxy generates: the same request (and its
    /// retransmissions) always gets the same tag (§8.2.6.2).
    fn to_tag(&self, req: &Message<'_>) -> [u8; 16] {
        let mut h = self.tags.build_hasher();
        h.write(req.call_id().unwrap_or_default());
        h.write_u32(req.cseq().map(|c| c.seq).unwrap_or(0));
        h.write(req.top_via().unwrap_or_default());
        let v = h.finish();
        let mut tag = [0u8; 16];
        for (i, b) in tag.iter_mut().enumerate() {
            *b = b"0123456789abcdef"[((v >> (60 - 4 * i)) & 0xf) as usize];
        }
        tag
    }

    // ---------------------------------------------------------------------------
    // Time

    /// The address of a next hop: its IP literal, or its host name from the
    /// resolver cache (asking for it when unknown, without waiting).
    pub(super) fn resolved_addr(
        &self,
        hop: &NextHop<'_>,
        now: Instant,
        from: Peer,
        out: &mut Outbox,
    ) -> Option<SocketAddr> {
        match (hop.addr(), hop.host) {
            (Some(a), _) => Some(a),
            (None, crate::sip::Host::Domain(name)) => {
                match self.resolver.lookup(name, now, hop_v4(from)) {
                    Lookup::Found(ip) => Some(SocketAddr::new(ip, hop.port)),
                    Lookup::Unknown { ask: true } => {
                        out.resolve(name);
                        None
                    }
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// The system resolver answered for `name` (no addresses: it failed): the
    /// requests that waited for it are routed again.
    pub fn on_resolved(&mut self, now: Instant, name: &str, addrs: &[IpAddr], out: &mut Outbox) {
        for id in self.resolver.answer(name, addrs, now) {
            let Some(Ctx::Server(s)) = self.table.get(id).map(|e| &e.data) else {
                continue;
            };
            if s.final_sent || s.cancelled {
                continue;
            }
            let (from, authenticated, request) = (s.from, s.authenticated, s.request.clone());
            let Ok(msg) = Message::parse(&request) else {
                continue;
            };
            self.route_request(now, id, from, &msg, false, authenticated, out);
        }
    }

    /// Fires due timers and expires bindings. Call at least every tick (10 ms).
    pub fn on_tick(&mut self, now: Instant, out: &mut Outbox) {
        let unix = self.unix(now);
        if self
            .registrar
            .location()
            .next_expiry()
            .is_some_and(|t| t <= unix)
        {
            let n = self.registrar.location_mut().expire(unix) as u64;
            self.metrics.add_binding_expirations(n);
        }
        if self.replica.next_expiry().is_some_and(|t| t <= unix) {
            self.replica.expire(unix);
        }
        let mut fired = std::mem::take(&mut self.fired);
        fired.clear();
        self.wheel.advance(now, &mut fired);
        for t in fired.drain(..) {
            let mut actions = Actions::new();
            self.table.on_timer(now, t, &mut self.wheel, &mut actions);
            let is_server = matches!(self.table.get(t.id).map(|e| &e.data), Some(Ctx::Server(_)));
            if is_server {
                self.server_actions(now, t.id, &actions, out);
            } else {
                for a in actions {
                    self.client_action(now, t.id, a, out);
                }
            }
        }
        self.fired = fired;
    }

    /// The earliest time [`Engine::on_tick`] has work.
    pub fn next_deadline(&self) -> Option<Instant> {
        let replication = self.replication_due();
        match (self.wheel.next_tick_at(), replication) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Timer settings in force.
    pub fn timers(&self) -> &Timers {
        &self.cfg.timers
    }
}

/// The server transaction key of a request (§17.2.3): branch + sent-by + method,
/// or the pre-3261 fields when the branch lacks the cookie.
fn server_key<'a>(
    msg: &Message<'a>,
    via: &Via<'a>,
    method: Method<'a>,
) -> Option<ServerKeyRef<'a>> {
    if let Some(k) = ServerKeyRef::from_via(via, method) {
        return Some(k);
    }
    let fields = LegacyFields {
        request_uri: msg.request_uri()?,
        to_tag: msg.to().ok().and_then(|t| t.tag()).unwrap_or_default(),
        from_tag: msg.from().ok().and_then(|t| t.tag()).unwrap_or_default(),
        call_id: msg.call_id().ok()?,
        cseq: msg.cseq().ok()?.seq,
        top_via: msg.top_via()?,
    };
    Some(ServerKeyRef::legacy(fields, method))
}

fn reliability_of(t: Transport) -> Reliability {
    if t.is_reliable() {
        Reliability::Reliable
    } else {
        Reliability::Unreliable
    }
}

/// What every branch of one forwarded request shares; see [`Engine::forwarding`].
#[derive(Debug, Clone, Copy)]
pub(super) struct Forwarding {
    /// §16.6 step 3: the Max-Forwards to send.
    max_forwards: u8,
    /// `received`/`rport` for the previous hop's Via.
    via_received: Option<ViaReceived>,
    /// §16.6 step 4: the request may create a dialog and we record-route.
    record: bool,
    /// The caller's flow when it sits behind a NAT (for the flow token).
    caller: Option<Flow>,
}

/// §16.6 step 3: one less than received, or 70 when the request had none.
fn next_max_forwards(msg: &Message<'_>) -> u8 {
    msg.max_forwards()
        .ok()
        .flatten()
        .map_or(70, |m| m.saturating_sub(1))
}

/// Our Via value (§16.6 step 8): `SIP/2.0/TRANSPORT host:port;branch=…`.
fn our_via(transport: Transport, l: &Listener, branch: &[u8]) -> SmallVec<[u8; 128]> {
    let mut via = SmallVec::new();
    via.extend_from_slice(b"SIP/2.0/");
    via.extend_from_slice(transport.via_token().as_bytes());
    via.push(b' ');
    via.extend_from_slice(l.advertised.as_bytes());
    via.extend_from_slice(b";branch=");
    via.extend_from_slice(branch);
    via
}

/// Our Record-Route value for listener `l`: `<sip:[TOKEN@]HOST:PORT;transport=…;lr>`.
fn rr_value(out: &mut SmallVec<[u8; 96]>, l: &Listener, flow_token: &[u8]) {
    out.extend_from_slice(b"<sip:");
    if !flow_token.is_empty() {
        out.extend_from_slice(flow_token);
        out.push(b'@');
    }
    out.extend_from_slice(l.advertised.as_bytes());
    if l.transport != Transport::Udp {
        out.extend_from_slice(b";transport=");
        out.extend_from_slice(l.transport.as_str().as_bytes());
    }
    out.extend_from_slice(b";lr>");
}

/// §16.7 step 6: is `code` a better final response than `best`? 6xx beats
/// everything; otherwise the lower class wins; within 4xx, prefer 401/407 (so the
/// caller can authenticate) over other 4xx; a 503 (which becomes 500) loses to any
/// other answer.
fn better(code: u16, best: Option<u16>) -> bool {
    let Some(best) = best else {
        return true;
    };
    let rank = |c: u16| -> (u8, u8) {
        let class = match c / 100 {
            6 => 0,
            3 => 1,
            4 => 2,
            5 => 3,
            _ => 4,
        };
        let within = match c {
            401 | 407 => 0,
            503 => 2,
            _ => 1,
        };
        (class, within)
    };
    rank(code) < rank(best)
}

/// Appends the WWW-Authenticate / Proxy-Authenticate lines of `resp`.
fn collect_challenges(resp: &Message<'_>, into: &mut Vec<u8>) {
    for h in resp.headers() {
        if matches!(
            h.name,
            HeaderName::WwwAuthenticate | HeaderName::ProxyAuthenticate
        ) {
            let line = &resp.buf()[h.line_range()];
            into.extend_from_slice(line);
            if !line.ends_with(b"\n") {
                into.extend_from_slice(b"\r\n");
            }
        }
    }
}

/// The collected challenge lines minus the ones `resp` already carries.
fn own_challenges_removed(resp: &Message<'_>, all: &[u8]) -> Vec<u8> {
    let mut mine = Vec::new();
    collect_challenges(resp, &mut mine);
    let mut out = Vec::new();
    for line in all.split_inclusive(|&b| b == b'\n') {
        let present = mine.split_inclusive(|&b| b == b'\n').any(|m| m == line);
        if !present {
            out.extend_from_slice(line);
        }
    }
    out
}

/// The target of one binding (§16.5): its contact as Request-URI, its Path as a
/// preloaded Route set.
pub(super) fn binding_target<'a>(
    contact: &'a [u8],
    path: &'a [u8],
    source: &Source,
) -> Option<Target<'a>> {
    let route = (!path.is_empty()).then_some(path);
    // With a Path the request goes to its first hop; otherwise to where the
    // REGISTER came from.
    let hop_uri: &[u8] = match route {
        Some(path) => first_route_uri(path).unwrap_or(contact),
        None => contact,
    };
    let hop = super::next_hop::next_hop_of(hop_uri).ok()?;
    // A NATed contact is reached where it registered from. So is a contact
    // registered over a TCP or TLS connection, on that connection while it is
    // open (RFC 3261 §18.1.1 reuse, RFC 5626 §5.3's flow): phones do not listen
    // where they connect from, and many (Linphone, baresip over TLS) accept
    // requests only on the connection they opened. Any other contact is reached
    // at its Contact URI.
    let fixed = match route {
        None if source.nat => registered_dest(source, None),
        None if registered_over(source) == Some(hop.transport) && hop.transport.is_reliable() => {
            registered_dest(source, hop.addr())
        }
        _ => None,
    };
    Some(Target {
        request_uri: Some(contact),
        hop,
        fixed,
        route,
        resolved: None,
    })
}

/// The transport a binding's REGISTER came over, when it is one of ours.
fn registered_over(s: &Source) -> Option<Transport> {
    match s.transport {
        TransportKind::Udp => Some(Transport::Udp),
        TransportKind::Tcp => Some(Transport::Tcp),
        TransportKind::Tls => Some(Transport::Tls),
        _ => None,
    }
}

/// Where a registered contact is reached: back where its REGISTER came from, over
/// the same connection for TCP and TLS (RFC 5626 §5.2's flow; RFC 3261 §10.3 keeps
/// the source for NAT). When the connection has closed, a new one goes to
/// `fallback` (the Contact's address, where a phone not behind a NAT listens), or
/// else to the source address.
fn registered_dest(s: &Source, fallback: Option<SocketAddr>) -> Option<Fixed> {
    let transport = registered_over(s)?;
    let dest = match (transport, s.conn) {
        (Transport::Udp, _) => Dest::Udp {
            listener: s.listener,
            to: s.addr,
        },
        (t, Some(c)) => Dest::Conn {
            conn: ConnId {
                shard: c.shard,
                seq: c.id,
            },
            transport: t,
            fallback: Some(fallback.unwrap_or(s.addr)),
        },
        // No connection (a binding reloaded after a restart).
        (t, None) => Dest::Stream {
            transport: t,
            to: fallback.unwrap_or(s.addr),
        },
    };
    Some(Fixed {
        transport,
        dest,
        listener: s.listener,
    })
}

/// Does a REGISTER come from behind a NAT? The test of Kamailio's
/// `nat_uac_test`: the top Via names another address than the packet's source
/// (for UDP also another port, RFC 3581), or a Contact names a private address
/// while the source is public.
fn nat_detected(msg: &Message<'_>, from: Peer) -> bool {
    let via_differs = match msg.via() {
        Ok(v) => {
            v.sent_by.host.ip() != Some(from.addr.ip())
                || (from.transport == Transport::Udp
                    && v.sent_by.port.unwrap_or(5060) != from.addr.port())
        }
        Err(_) => true,
    };
    // The Contacts are decoded only when the Via has not already decided.
    via_differs
        || (!is_private(from.addr.ip())
            && msg.contact_uris().any(|u| {
                u.ok()
                    .flatten()
                    .and_then(|u| u.as_sip().and_then(|s| s.host.ip()))
                    .is_some_and(is_private)
            }))
}

/// RFC 1918, RFC 6598 (CGN) and IPv6 unique-local addresses.
fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => {
            let o = a.octets();
            a.is_private() || (o[0] == 100 && (o[1] & 0xc0) == 64)
        }
        IpAddr::V6(a) => (a.segments()[0] & 0xfe00) == 0xfc00,
    }
}

/// Which address family to prefer for a next hop: the one the request came in on.
fn hop_v4(from: Peer) -> bool {
    from.addr.is_ipv4()
}

/// The URI of the first value of a Route/Path list.
fn first_route_uri(list: &[u8]) -> Option<&[u8]> {
    let first = crate::sip::text::CommaList::new(list).next()?;
    crate::sip::NameAddr::parse(first).ok().map(|n| n.uri)
}

mod replica;
#[cfg(test)]
mod tests;
