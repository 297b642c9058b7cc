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
use crate::io::{Dest, Peer};
use crate::mesh::Outbox;
use crate::metrics::{DropReason, ShardMetrics};
use crate::registrar::{AorKey, Change, RegisterOutcome, Registrar, RegistrarConfig, Source};
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

use reply::{reliability_of, server_key};
use target::{first_route_uri, nat_detected, registered_dest};

/// Methods listed in `Allow` when the proxy answers OPTIONS itself.
pub(crate) const ALLOW: &[u8] =
    b"INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, PRACK, UPDATE, INFO, SUBSCRIBE, NOTIFY, REFER, MESSAGE, PUBLISH";
/// Bodies the proxy itself accepts (RFC 3261 §11.2).
pub(crate) const ACCEPT: &[u8] = b"application/sdp";
/// Option tags the proxy supports.
pub(crate) const SUPPORTED: &[u8] = b"path";
/// The capability headers of the proxy's own 200 to OPTIONS (§11.2).
pub(super) const CAPABILITIES: [(&str, &[u8]); 3] = [
    ("Allow", ALLOW),
    ("Accept", ACCEPT),
    ("Supported", SUPPORTED),
];
/// A response the proxy writes itself: status code, reason phrase and any extra
/// header fields (a challenge, Allow, Retry-After).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Answer<'a> {
    pub code: u16,
    pub reason: &'a [u8],
    pub extra: &'a [(&'a str, &'a [u8])],
}

impl Answer<'static> {
    pub(crate) const TRYING: Answer<'static> = Answer::new(100, b"Trying");
    pub(crate) const OK: Answer<'static> = Answer::new(200, b"OK");
    pub(crate) const FORBIDDEN: Answer<'static> = Answer::new(403, b"Forbidden");
    /// The relay policy refused a foreign destination.
    pub(crate) const RELAYING_FORBIDDEN: Answer<'static> = Answer::new(403, b"Relaying Forbidden");
    pub(crate) const NOT_FOUND: Answer<'static> = Answer::new(404, b"Not Found");
    pub(crate) const UNSUPPORTED_URI_SCHEME: Answer<'static> =
        Answer::new(416, b"Unsupported URI Scheme");
    /// A user of ours with no live binding.
    pub(crate) const TEMPORARILY_UNAVAILABLE: Answer<'static> =
        Answer::new(480, b"Temporarily Unavailable");
    pub(crate) const SERVICE_UNAVAILABLE: Answer<'static> =
        Answer::new(503, b"Service Unavailable");
    pub(crate) const CANNOT_RESOLVE: Answer<'static> = Answer::new(503, b"Cannot Resolve Next Hop");
    pub(crate) const VERSION_NOT_SUPPORTED: Answer<'static> =
        Answer::new(505, b"Version Not Supported");
}

impl<'a> Answer<'a> {
    /// `code` with `reason` and no extra header fields.
    pub(crate) const fn new(code: u16, reason: &'a [u8]) -> Answer<'a> {
        Answer {
            code,
            reason,
            extra: &[],
        }
    }

    /// The same answer with `extra` header fields.
    pub(crate) const fn with(self, extra: &'a [(&'a str, &'a [u8])]) -> Answer<'a> {
        Answer { extra, ..self }
    }

    /// Appends this answer to `req`, with our To tag `tag`, to `out`.
    fn write(&self, req: &Message<'_>, tag: &[u8], out: &mut Vec<u8>) -> Result<(), WriteError> {
        writer::write_response(req, self.code, self.reason, Some(tag), self.extra, out)
    }
}

/// Retry-After of a 503 sent when the transaction table is full, seconds.
const RETRY_AFTER: &[u8] = b"5";

/// What the proxy is allowed and told to do.
#[derive(Debug, Clone)]
pub(crate) struct ProxyConfig {
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

pub(crate) use crate::config::ForkMode;

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
pub(crate) struct Listener {
    pub transport: Transport,
    pub local: SocketAddr,
    /// `host:port` written into our Via sent-by and Record-Route URIs.
    pub advertised: String,
}

impl Listener {
    /// The listener for `local`; an unspecified address is advertised as the first
    /// interface address of its family that is not loopback (or loopback if that is
    /// all there is).
    pub(crate) fn new(transport: Transport, local: SocketAddr, local_ips: &[IpAddr]) -> Listener {
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
pub(crate) fn registrar_config(cfg: &crate::config::Config) -> RegistrarConfig {
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

/// The transaction table with each kind of context reached by its own accessor:
/// a server transaction's id looked up as a client (or the reverse) is `None`, in
/// one place, instead of a `match` at every use.
trait Contexts {
    fn server(&self, id: ServerId) -> Option<&ServerCtx>;
    fn server_mut(&mut self, id: ServerId) -> Option<&mut ServerCtx>;
    fn client(&self, id: ClientId) -> Option<&ClientCtx>;
    fn client_mut(&mut self, id: ClientId) -> Option<&mut ClientCtx>;
}

/// A server transaction of the table: the id of a received request's transaction,
/// never to be taken for a branch's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct ServerId(TxnId);

/// A client transaction of the table: one branch of a forwarded request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct ClientId(TxnId);

impl ServerId {
    pub(super) fn txn(self) -> TxnId {
        self.0
    }
}

impl ClientId {
    pub(super) fn txn(self) -> TxnId {
        self.0
    }
}

impl Contexts for TxnTable<Ctx> {
    fn server(&self, id: ServerId) -> Option<&ServerCtx> {
        match self.get(id.0).map(|e| &e.data) {
            Some(Ctx::Server(s)) => Some(s),
            _ => None,
        }
    }

    fn server_mut(&mut self, id: ServerId) -> Option<&mut ServerCtx> {
        match self.get_mut(id.0).map(|e| &mut e.data) {
            Some(Ctx::Server(s)) => Some(s),
            _ => None,
        }
    }

    fn client(&self, id: ClientId) -> Option<&ClientCtx> {
        match self.get(id.0).map(|e| &e.data) {
            Some(Ctx::Client(c)) => Some(c),
            _ => None,
        }
    }

    fn client_mut(&mut self, id: ClientId) -> Option<&mut ClientCtx> {
        match self.get_mut(id.0).map(|e| &mut e.data) {
            Some(Ctx::Client(c)) => Some(c),
            _ => None,
        }
    }
}

/// The server transaction and response context of a received request (§16.7).
#[derive(Debug)]
struct ServerCtx {
    /// The request as received (to answer it ourselves).
    request: Vec<u8>,
    reply_to: Dest,
    /// The last response sent, for retransmissions.
    last_response: Vec<u8>,
    branches: SmallVec<[ClientId; 2]>,
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
    /// It found no binding once and waited for the other shards' bindings
    /// ([`replica::LOCATION_WAIT`]): the next miss is the answer.
    location_waited: bool,
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
            location_waited: false,
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

impl ClientCtx {
    /// A branch of server transaction `server` sent to `dest` (`request` is filled
    /// in once the transaction exists).
    fn new(server: ServerId, dest: Dest, upstream: Dest, is_invite: bool, is_cancel: bool) -> Self {
        ClientCtx {
            server,
            request: Vec::new(),
            dest,
            upstream,
            provisional: false,
            final_code: None,
            cancel: CancelState::None,
            is_invite,
            is_cancel,
        }
    }
}

/// A client transaction: one branch of a forwarded request.
#[derive(Debug)]
struct ClientCtx {
    server: ServerId,
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
pub(crate) struct Engine {
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
    /// This shard's index (the low byte of the versions it writes).
    shard: u16,
    /// Whether this shard and the others tell each other their binding changes
    /// ([`Engine::start_replicating`]): every shard then accepts REGISTER and
    /// holds every binding.
    replicating: bool,
    /// Requests to a user of ours no binding was found for, on a replicating
    /// shard, waiting (in arrival order, so the first is due first) for the other
    /// shards' next batch before the lookup is tried once more
    /// ([`replica::LOCATION_WAIT`]).
    location_waits: std::collections::VecDeque<(Instant, ServerId)>,
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

/// Where an engine starts: the seed that makes its branches and tags unique across
/// runs, and the two clocks at one moment (`unix_now` in seconds since the UNIX
/// epoch: bindings and nonces live in UNIX time). The shards of one process are
/// given the same clocks, so that the versions of their binding writes compare
/// (`replica`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Start {
    pub seed: u64,
    pub now: Instant,
    pub unix_now: u64,
}

impl Engine {
    /// The core of shard `shard`.
    pub(crate) fn new(
        shard: u16,
        start: Start,
        cfg: ProxyConfig,
        identity: Identity,
        listeners: Vec<Listener>,
        services: Services,
    ) -> Engine {
        let Start {
            seed,
            now,
            unix_now,
        } = start;
        Engine {
            registrar: services.registrar,
            journal: services.journal.then(Vec::new),
            auth: services.auth,
            resolver: Resolver::default(),
            unix_origin: unix_now,
            origin: now,
            shard,
            replicating: false,
            location_waits: std::collections::VecDeque::new(),
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
    pub(crate) fn stats(&self) -> EngineStats {
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
    pub(crate) fn metrics(&self) -> &ShardMetrics {
        &self.metrics
    }

    /// The metrics, for what the runtime measures (latency, connections).
    pub(crate) fn metrics_mut(&mut self) -> &mut ShardMetrics {
        &mut self.metrics
    }

    /// Live transactions (shutdown waits for them).
    pub(crate) fn in_flight(&self) -> usize {
        self.table.len()
    }

    /// Who this proxy is.
    pub(crate) fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The registrar (and through it the shard's location part).
    pub(crate) fn registrar(&self) -> &Registrar {
        &self.registrar
    }

    /// The binding changes made since the last call, in order, for the runtime to
    /// write and sync off the SIP task queue: a slow disk never delays a message.
    pub(crate) fn take_journal(&mut self) -> Vec<Change> {
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

    // ---------------------------------------------------------------------------
    // Responses

    // ---------------------------------------------------------------------------
    // Server side

    // ---------------------------------------------------------------------------
    // Time

    /// Fires due timers and expires bindings. Call at least every tick (10 ms).
    pub(crate) fn on_tick(&mut self, now: Instant, out: &mut Outbox) {
        let unix = self.unix(now);
        if self
            .registrar
            .location()
            .next_expiry()
            .is_some_and(|t| t <= unix)
        {
            // Every shard drops the bindings it holds; the ones it persists are
            // counted, so that the sum over shards counts each binding once.
            let location = self.registrar.location_mut();
            let owned = location.owned_len();
            location.expire(unix);
            let n = owned.saturating_sub(location.owned_len()) as u64;
            self.metrics.add_binding_expirations(n);
        }
        self.retry_location_waits(now, out);
        let mut fired = std::mem::take(&mut self.fired);
        fired.clear();
        self.wheel.advance(now, &mut fired);
        for t in fired.drain(..) {
            let mut actions = Actions::new();
            self.table.on_timer(now, t, &mut self.wheel, &mut actions);
            // The wheel names a transaction of either kind; its context tells which.
            let server = ServerId(t.id);
            if self.table.server(server).is_some() {
                self.server_actions(now, server, &actions, out);
            } else {
                for a in actions {
                    self.client_action(now, ClientId(t.id), a, out);
                }
            }
        }
        self.fired = fired;
    }

    /// The earliest time [`Engine::on_tick`] has work.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        [
            self.wheel.next_tick_at(),
            self.replication_due(),
            self.expiry_due(),
            self.location_waits.front().map(|&(due, _)| due),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// When the next binding, ours or a replica's, expires: bindings live in UNIX
    /// seconds, so the instant of the second after it starts.
    fn expiry_due(&self) -> Option<Instant> {
        let at = self.registrar.location().next_expiry()?;
        // A millisecond past it, so that `unix(now)` has reached `at` when it fires.
        let secs = at.saturating_sub(self.unix_origin);
        Some(
            self.origin
                + std::time::Duration::from_secs(secs)
                + std::time::Duration::from_millis(1),
        )
    }
}

/// One request being handled: when it arrived, its server transaction, where it
/// came from, and the message.
#[derive(Clone, Copy)]
pub(super) struct Req<'a, 'm> {
    pub(super) now: Instant,
    pub(super) id: ServerId,
    pub(super) from: Peer,
    pub(super) msg: &'a Message<'m>,
}

/// A request on its way to the next hop (§16.6): the message, where it came from,
/// its Route processing, and the edits every branch makes alike.
#[derive(Clone, Copy)]
pub(in crate::proxy) struct Hop<'a, 'm> {
    pub(in crate::proxy) from: Peer,
    pub(in crate::proxy) msg: &'a Message<'m>,
    pub(in crate::proxy) plan: &'a RoutePlan<'a>,
    pub(in crate::proxy) fw: Forwarding,
}

/// What every client transaction of one forwarded request shares.
#[derive(Clone, Copy)]
pub(super) struct Branching<'a, 'm> {
    pub(super) hop: Hop<'a, 'm>,
    /// §16.3 step 4: appended to each branch for loop detection.
    pub(super) loop_hash: [u8; 16],
    /// Where responses go once the server transaction has ended.
    pub(super) upstream: Dest,
    pub(super) method: Method<'a>,
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
        None if source.nat => Some(registered_dest(source, None)),
        None if source.transport == hop.transport && hop.transport.is_reliable() => {
            Some(registered_dest(source, hop.addr()))
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

mod cancel;
mod forward;
mod intake;
mod replica;
mod reply;
mod response;
mod target;
#[cfg(test)]
mod tests;
