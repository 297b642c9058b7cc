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

use crate::config::Transport;
use crate::shard::{Dest, Outbox, Peer};
use crate::sip::header::HeaderName;
use crate::sip::method::Method;
use crate::sip::uri::Uri;
use crate::sip::via::Via;
use crate::sip::writer::{self, RequestEdits, ViaReceived};
use crate::sip::Message;
use crate::txn::key::{BranchGenerator, ClientKeyRef, LegacyFields, ServerKeyRef};
use crate::txn::table::{TableError, TxnId, TxnTable, TxnTimer};
use crate::txn::{
    Action, Actions, ClientEvent, Reliability, ServerEvent, TimerKind, TimerWheel, Timers,
};

use super::identity::Identity;
use super::next_hop::{next_hop, Cidr, NextHop};
use super::route::{preprocess, RoutePlan};
use super::validate::{loop_hash, unsupported_proxy_require, validate_request, Reject};

/// Methods listed in `Allow` when the proxy answers OPTIONS itself.
pub const ALLOW: &[u8] =
    b"INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, PRACK, UPDATE, INFO, SUBSCRIBE, NOTIFY, REFER, MESSAGE, PUBLISH";
/// Bodies the proxy itself accepts (RFC 3261 §11.2).
pub const ACCEPT: &[u8] = b"application/sdp";
/// Option tags the proxy supports.
pub const SUPPORTED: &[u8] = b"path";
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
    /// Requests larger than this go over TCP instead of UDP (§18.1.1).
    pub udp_mtu: usize,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            record_route: true,
            relay: Vec::new(),
            max_transactions: 100_000,
            timers: Timers::default(),
            udp_mtu: 1300,
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

/// Counters of the proxy core.
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
}

/// Where a request is sent.
#[derive(Debug, Clone, Copy)]
struct Target<'a> {
    /// The Request-URI to write, when it changes (§16.6 step 2).
    request_uri: Option<&'a [u8]>,
    hop: NextHop<'a>,
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
    cfg: ProxyConfig,
    identity: Identity,
    listeners: Vec<Listener>,
    table: TxnTable<Ctx>,
    wheel: TimerWheel<TxnTimer>,
    branches: BranchGenerator,
    fired: Vec<TxnTimer>,
    tags: ahash::RandomState,
    stats: EngineStats,
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
    pub fn new(
        shard: u16,
        seed: u64,
        now: Instant,
        cfg: ProxyConfig,
        identity: Identity,
        listeners: Vec<Listener>,
    ) -> Engine {
        Engine {
            table: TxnTable::new(cfg.max_transactions, cfg.timers),
            wheel: TimerWheel::new(now),
            branches: BranchGenerator::new(shard, seed),
            fired: Vec::new(),
            tags: ahash::RandomState::with_seeds(seed, 0x0074_6f74_6167, 0x5f73_6970, shard.into()),
            stats: EngineStats::default(),
            cfg,
            identity,
            listeners,
        }
    }

    /// The counters.
    pub fn stats(&self) -> EngineStats {
        self.stats
    }

    /// Live transactions (shutdown waits for them).
    pub fn in_flight(&self) -> usize {
        self.table.len()
    }

    /// Who this proxy is.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    // ---------------------------------------------------------------------------
    // Requests

    /// A request owned by this shard arrived from `from`.
    pub fn on_request(&mut self, now: Instant, from: Peer, msg: &Message<'_>, out: &mut Outbox) {
        self.stats.requests += 1;
        let Some(method) = msg.method() else {
            return;
        };
        let via = match msg.via() {
            Ok(v) => v,
            Err(e) => {
                // §16.3 step 1 with a Via nobody can route by: the 400 goes back to
                // where the request came from, as Kamailio's sanity checks do. An
                // ACK is never answered.
                if method == Method::Ack {
                    self.stats.dropped += 1;
                } else {
                    let to = crate::shard::response_dest(from, None);
                    self.reply_stateless(msg, to, 400, e.reason().as_bytes(), &[], out);
                }
                return;
            }
        };
        let Some(key) = server_key(msg, &via, method) else {
            self.stats.dropped += 1;
            return;
        };
        let reply_to = crate::shard::response_dest(from, Some(&via));

        if method == Method::Ack {
            self.on_ack(now, from, msg, &key, out);
            return;
        }
        // A retransmission (§17.2.3): the transaction answers it.
        if let Some(id) = self.table.find_server(&key) {
            self.stats.retransmissions_absorbed += 1;
            self.server_event(now, id, ServerEvent::Request, out);
            return;
        }
        if method == Method::Cancel {
            self.on_cancel(now, msg, &key, reply_to, out);
            return;
        }

        let to_me = msg
            .request_uri()
            .and_then(|u| Uri::parse(u).ok())
            .is_some_and(|u| {
                u.as_sip()
                    .is_some_and(|s| s.user.is_none() && self.identity.is_me(s))
            });
        if let Err(reject) = validate_request(msg, &self.identity, to_me) {
            self.reject_stateless(msg, reply_to, reject, out);
            return;
        }

        let reliability = reliability_of(from.transport);
        let ctx = ServerCtx {
            request: msg.as_bytes().to_vec(),
            reply_to,
            last_response: Vec::new(),
            branches: SmallVec::new(),
            best: None,
            challenges: Vec::new(),
            final_sent: false,
            cancelled: false,
        };
        let id = match self
            .table
            .insert_server(&key, reliability, Ctx::Server(ctx))
        {
            Ok(id) => id,
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
        self.route_request(now, id, from, msg, to_me, out);
    }

    /// §16.4–§16.6 for a new request whose server transaction is `id`.
    fn route_request(
        &mut self,
        now: Instant,
        id: TxnId,
        from: Peer,
        msg: &Message<'_>,
        to_me: bool,
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
        if plan.next.is_none()
            && self
                .identity
                .is_our_domain(&hop_sip.host, hop_sip.port, hop_sip.port_or_default())
        {
            // A user of ours: the location service decides (registrar issue).
            self.respond(now, id, msg, 404, b"Not Found", &[], out);
            return;
        }
        let hop = match next_hop(&hop_sip) {
            Ok(h) => h,
            Err(_) => {
                self.respond(now, id, msg, 416, b"Unsupported URI Scheme", &[], out);
                return;
            }
        };
        let Some(addr) = hop.addr() else {
            // Host names need the resolver; until it lands only IP literals route.
            self.respond(now, id, msg, 503, b"Cannot Resolve Next Hop", &[], out);
            return;
        };
        if !self.may_relay(msg, &plan, addr.ip()) {
            self.respond(now, id, msg, 403, b"Relaying Forbidden", &[], out);
            return;
        }
        let target = Target {
            request_uri: plan.strict_fixed.then_some(plan.request_uri),
            hop,
        };
        self.fork(now, id, from, msg, &plan, &[target], out);
    }

    /// The relay policy: coresip is never an open relay. A request may go to a
    /// foreign destination when that destination is inside `--relay`, or when it is
    /// in a dialog this proxy record-routed (it carries our Route and a To tag, the
    /// way Kamailio's `loose_route()` lets in-dialog requests through).
    fn may_relay(&self, msg: &Message<'_>, plan: &RoutePlan<'_>, ip: IpAddr) -> bool {
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
            Method::Options => {
                let extra: [(&str, &[u8]); 3] = [
                    ("Allow", ALLOW),
                    ("Accept", ACCEPT),
                    ("Supported", SUPPORTED),
                ];
                self.respond(now, id, msg, 200, b"OK", &extra, out);
            }
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
        let mut sent = 0;
        for target in targets {
            match self.send_branch(now, id, from, msg, plan, target, &lh, upstream, method, out) {
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
        upstream: Dest,
        method: Method<'_>,
        out: &mut Outbox,
    ) -> Option<TxnId> {
        let to = target.hop.addr()?;
        // §18.1.1: a request that would not fit a UDP datagram goes over TCP.
        let estimate = msg.as_bytes().len() + 300;
        let transport = match target.hop.transport {
            Transport::Udp if estimate > self.cfg.udp_mtu => Transport::Tcp,
            t => t,
        };
        let b = self.branches.next_branch();
        let (out_idx, out_listener) = self.outbound_listener(from, transport, to)?;
        let inbound = self.listeners.get(from.listener as usize);

        let mut branch = [0u8; 45];
        branch[..28].copy_from_slice(b.as_bytes());
        branch[28] = super::validate::LOOP_SEPARATOR;
        branch[29..].copy_from_slice(loop_hash);

        let mut via = SmallVec::<[u8; 128]>::new();
        via.extend_from_slice(b"SIP/2.0/");
        via.extend_from_slice(transport.via_token().as_bytes());
        via.push(b' ');
        via.extend_from_slice(out_listener.advertised.as_bytes());
        via.extend_from_slice(b";branch=");
        via.extend_from_slice(&branch);

        // §16.6 step 4: record-route dialog-creating requests; twice when the
        // request changes transport or interface (RFC 5658), ours outbound first.
        let mut rr_out = SmallVec::<[u8; 96]>::new();
        let mut rr_in = SmallVec::<[u8; 96]>::new();
        let record = self.cfg.record_route
            && method != Method::Register
            && msg.to().ok().and_then(|t| t.tag()).is_none();
        if record {
            rr_value(&mut rr_out, out_listener);
            if let Some(inb) = inbound {
                if from.listener as usize != out_idx {
                    rr_value(&mut rr_in, inb);
                }
            }
        }
        let rr_storage: [&[u8]; 2] = [&rr_out, &rr_in];
        let rr: &[&[u8]] = match (record, rr_in.is_empty()) {
            (false, _) => &[],
            (true, true) => &rr_storage[..1],
            (true, false) => &rr_storage[..],
        };

        let mf = msg
            .max_forwards()
            .ok()
            .flatten()
            .map_or(70, |m| m.saturating_sub(1));
        let top = msg.via().ok();
        let via_received = top.map(|v| {
            let rport = v.rport().map(|_| from.addr.port());
            let differs = v.sent_by.host.ip() != Some(from.addr.ip());
            ViaReceived {
                received: (differs || rport.is_some()).then_some(from.addr.ip()),
                rport,
            }
        });
        let edits = RequestEdits {
            request_uri: target.request_uri,
            via: Some(&via),
            record_route: rr,
            max_forwards: Some(mf),
            remove_first_routes: plan.ours,
            remove_last_route: plan.strict_fixed,
            via_received,
        };
        let mut bytes = Vec::with_capacity(msg.as_bytes().len() + 256);
        writer::forward_request(msg, &edits, &mut bytes).ok()?;
        let dest = match transport {
            Transport::Udp => Dest::Udp {
                listener: out_idx as u16,
                to,
            },
            t => Dest::Stream { transport: t, to },
        };
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
            self.stats.dropped += 1;
            return;
        }
        self.relay_stateless(from, msg, out);
    }

    /// Forwards a request without a transaction (ACK for 2xx): Route processing,
    /// our Via, Max-Forwards. Never answered; dropped where it cannot go.
    fn relay_stateless(&mut self, from: Peer, msg: &Message<'_>, out: &mut Outbox) {
        let Ok(plan) = preprocess(msg, &self.identity) else {
            self.stats.dropped += 1;
            return;
        };
        let hop_uri = plan.next.as_ref().map_or(plan.request_uri, |r| r.uri);
        let hop = match Uri::parse(hop_uri) {
            Ok(Uri::Sip(u)) => next_hop(&u).ok(),
            _ => None,
        };
        let Some((hop, to)) = hop.and_then(|h| h.addr().map(|a| (h, a))) else {
            self.stats.dropped += 1;
            return;
        };
        if !self.may_relay(msg, &plan, to.ip()) {
            self.stats.dropped += 1;
            return;
        }
        let branch = self.branches.next_branch();
        let Some((idx, l)) = self.outbound_listener(from, hop.transport, to) else {
            self.stats.dropped += 1;
            return;
        };
        let mut via = SmallVec::<[u8; 128]>::new();
        via.extend_from_slice(b"SIP/2.0/");
        via.extend_from_slice(hop.transport.via_token().as_bytes());
        via.push(b' ');
        via.extend_from_slice(l.advertised.as_bytes());
        via.extend_from_slice(b";branch=");
        via.extend_from_slice(branch.as_bytes());
        let mf = msg
            .max_forwards()
            .ok()
            .flatten()
            .map_or(70, |m| m.saturating_sub(1));
        let edits = RequestEdits {
            request_uri: plan.strict_fixed.then_some(plan.request_uri),
            via: Some(&via),
            max_forwards: Some(mf),
            remove_first_routes: plan.ours,
            remove_last_route: plan.strict_fixed,
            ..RequestEdits::default()
        };
        let dest = match hop.transport {
            Transport::Udp => Dest::Udp {
                listener: idx as u16,
                to,
            },
            t => Dest::Stream { transport: t, to },
        };
        if out
            .try_send_with(dest, |b| writer::forward_request(msg, &edits, b))
            .is_ok()
        {
            self.stats.stateless_relays += 1;
        }
    }

    /// CANCEL (§16.10): answered 200 at once; every pending branch of the INVITE
    /// it matches is cancelled, and the INVITE's final answer follows (487 from
    /// downstream). With no INVITE to match: 481.
    fn on_cancel(
        &mut self,
        now: Instant,
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
        let ctx = ServerCtx {
            request: Vec::new(),
            reply_to,
            last_response: Vec::new(),
            branches: SmallVec::new(),
            best: None,
            challenges: Vec::new(),
            final_sent: false,
            cancelled: false,
        };
        match self
            .table
            .insert_server(key, Reliability::Unreliable, Ctx::Server(ctx))
        {
            Ok(id) => self.respond(now, id, msg, 200, b"OK", &[], out),
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
        if let Ok(cid) =
            self.table
                .insert_client(now, &key, reliability, Ctx::Client(ctx), &mut self.wheel)
        {
            if let Some(Ctx::Client(cc)) = self.table.get_mut(cid).map(|e| &mut e.data) {
                cc.request = cancel;
            }
        }
    }

    // ---------------------------------------------------------------------------
    // Responses

    /// A response owned by this shard arrived.
    pub fn on_response(&mut self, now: Instant, from: Peer, msg: &Message<'_>, out: &mut Outbox) {
        self.stats.responses += 1;
        let _ = from;
        let Some(code) = msg.status() else {
            return;
        };
        let (Ok(via), Ok(cseq)) = (msg.via(), msg.cseq()) else {
            self.stats.dropped += 1;
            return;
        };
        let Some(branch) = via.branch() else {
            self.stats.dropped += 1;
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
                self.stats.dropped += 1;
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

    /// Forwards a response to the element named by its second Via (§16.7 step 9,
    /// §18.2.2) without a transaction.
    fn forward_response_stateless(&mut self, msg: &Message<'_>, out: &mut Outbox) {
        let Some(next) = msg.values(HeaderName::Via).nth(1) else {
            self.stats.dropped += 1;
            return;
        };
        let Ok(via) = Via::parse(next) else {
            self.stats.dropped += 1;
            return;
        };
        let Some(dest) = self.via_dest(&via) else {
            self.stats.dropped += 1;
            return;
        };
        if out
            .try_send_with(dest, |b| writer::forward_response(msg, b))
            .is_ok()
        {
            self.stats.forwarded_responses += 1;
        }
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
            // §16.7 step 5/10: every 2xx goes upstream at once; the others are
            // cancelled.
            self.forward_upstream(now, server, upstream, code, msg, out);
            if is_invite {
                self.cancel_others(now, server, id, out);
            }
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
            if (200..300).contains(&code)
                && out
                    .try_send_with(upstream, |b| writer::forward_response(msg, b))
                    .is_ok()
            {
                self.stats.forwarded_responses += 1;
            }
            return;
        }
        let Some(Ctx::Server(s)) = self.table.get_mut(server).map(|e| &mut e.data) else {
            return;
        };
        if s.final_sent {
            // A second 2xx while the transaction lingers.
            if out
                .try_send_with(upstream, |b| writer::forward_response(msg, b))
                .is_ok()
            {
                self.stats.forwarded_responses += 1;
            }
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
        let _ = out.try_send_with(dest, |b| writer::write_ack(&req, resp, b));
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
                self.stats.timeouts += 1;
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
        self.stats.timeouts += 1;
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
        self.server_actions(id, &actions, out);
    }

    fn server_actions(&mut self, id: TxnId, actions: &[Action], out: &mut Outbox) {
        for a in actions {
            match a {
                Action::SendResponse | Action::RetransmitResponse => {
                    if let Some(Ctx::Server(s)) = self.table.get(id).map(|e| &e.data) {
                        if !s.last_response.is_empty() {
                            let dest = s.reply_to;
                            out.send_with(dest, |b| b.extend_from_slice(&s.last_response));
                        }
                    }
                }
                Action::Terminated => {
                    self.table.remove(id, &mut self.wheel);
                }
                _ => {}
            }
        }
    }

    /// Answers a request without creating a transaction: validation failures
    /// (their retransmissions are answered the same way) and overload.
    fn reject_stateless(&mut self, msg: &Message<'_>, to: Dest, r: Reject, out: &mut Outbox) {
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

    fn reply_stateless(
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

    /// Fires due timers. Call at least every tick (10 ms).
    pub fn on_tick(&mut self, now: Instant, out: &mut Outbox) {
        let mut fired = std::mem::take(&mut self.fired);
        fired.clear();
        self.wheel.advance(now, &mut fired);
        for t in fired.drain(..) {
            let mut actions = Actions::new();
            self.table.on_timer(now, t, &mut self.wheel, &mut actions);
            let is_server = matches!(self.table.get(t.id).map(|e| &e.data), Some(Ctx::Server(_)));
            if is_server {
                self.server_actions(t.id, &actions, out);
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
        self.wheel.next_tick_at()
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

/// Our Record-Route value for listener `l`: `<sip:HOST:PORT;transport=…;lr>`.
fn rr_value(out: &mut SmallVec<[u8; 96]>, l: &Listener) {
    out.extend_from_slice(b"<sip:");
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

#[cfg(test)]
mod tests;
