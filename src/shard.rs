//! The sans-IO core of one executor (DESIGN.md §2): bytes and time go in, bytes to
//! send and messages for other shards come out through an [`Outbox`]. Nothing here
//! touches a socket, a clock or an executor, so every behaviour is unit-tested
//! without a network.
//!
//! Ownership (DESIGN.md §3): an initial request belongs to the shard of its AOR
//! (REGISTER, requests to our users) or to `hash(top Via branch) % N`; a request
//! inside a dialog belongs to the core it arrives on; a response to the shard named
//! in our branch. A message that arrives on another core than its owner is
//! forwarded there over the mesh untouched.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::io::{Peer, ShardId};
use crate::mesh::{MeshMsg, Outbox};
use crate::metrics::{DropReason, ShardMetrics, Snapshot};
use crate::proxy::{Engine, EngineStats, Identity, Listener, ProxyConfig, Services, Start};
use crate::registrar::{aor_of_register, shard_of_aor, AorKey, Change};
use crate::sip::header::HeaderName;
use crate::sip::{salvage, Message, Method, ParseError, SipUri, Uri};
use crate::txn::key::{branch_hash, is_rfc3261_branch, legacy_request_hash, parse_shard};

/// Counters a shard keeps about itself.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ShardStats {
    /// Messages handled on the shard they arrived on.
    pub local: u64,
    /// Messages forwarded to their owner over the mesh.
    pub forwarded: u64,
    /// Messages handled after a mesh hop.
    pub from_mesh: u64,
    /// Messages dropped (unparseable, malformed responses, responses not ours).
    pub dropped: u64,
}

/// The sans-IO core of one executor: ownership routing in front of the proxy
/// engine (`proxy::engine`).
#[derive(Debug)]
pub struct Shard {
    id: ShardId,
    shards: usize,
    max_message_size: usize,
    engine: Engine,
    /// `--stateless` (RFC 3261 §16.11): requests and responses go to the engine's
    /// stateless path.
    stateless: bool,
    /// Messages this shard dropped before the engine saw them (the metrics count
    /// these together with the engine's own drops).
    dropped: u64,
    /// Where the INVITEs this core handed to other cores went, for their ACKs.
    invite_hops: InviteHops,
}

impl Shard {
    /// The shard `id` of `shards`. `local_ips` are the addresses the host answers on;
    /// wildcard listen addresses are expanded by the caller.
    pub fn new(id: ShardId, cfg: &Config, local_ips: Vec<IpAddr>, services: Services) -> Shard {
        // One pair of clock readings for every shard of the process: the versions
        // of binding writes (`proxy::engine::replica`) compare across shards to the
        // microsecond, which shards that each read the wall clock in whole seconds
        // would not.
        static CLOCKS: std::sync::OnceLock<(Instant, u64)> = std::sync::OnceLock::new();
        let &(now, unix) = CLOCKS.get_or_init(|| {
            let unix = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            (Instant::now(), unix)
        });
        let start = Start {
            seed: branch_seed(id),
            now,
            unix_now: unix,
        };
        Shard::with_seed(id, cfg, local_ips, services, start)
    }

    /// A shard with bindings in memory only and no authentication (tests).
    pub fn in_memory(id: ShardId, cfg: &Config, local_ips: Vec<IpAddr>) -> Shard {
        Shard::new(id, cfg, local_ips, Services::in_memory(cfg))
    }

    /// [`Shard::new`] with the branch seed and the clocks given (tests).
    pub fn with_seed(
        id: ShardId,
        cfg: &Config,
        local_ips: Vec<IpAddr>,
        services: Services,
        start: Start,
    ) -> Shard {
        let addrs: Vec<(IpAddr, u16)> = cfg
            .listen
            .iter()
            .map(|l| (l.addr.ip(), l.addr.port()))
            .collect();
        let identity = Identity::new(&addrs, &local_ips, &cfg.domains);
        let listeners = cfg
            .listen
            .iter()
            .map(|l| Listener::new(l.transport, l.addr, &local_ips))
            .collect();
        let proxy = ProxyConfig {
            record_route: cfg.proxy.record_route,
            relay: cfg.proxy.relay.clone(),
            max_transactions: cfg.proxy.max_transactions,
            timers: cfg.timers,
            udp_mtu: cfg.udp.mtu,
            fork: cfg.proxy.fork,
            flow_key: process_flow_key(),
        };
        let now = start.now;
        let mut engine = Engine::new(id as u16, start, proxy, identity, listeners, services);
        if cfg.cores > 1 && !cfg.proxy.stateless {
            engine.start_replicating(now, cfg.cores);
        }
        Shard {
            id,
            shards: cfg.cores.max(1),
            max_message_size: cfg.max_message_size,
            stateless: cfg.proxy.stateless,
            engine,
            dropped: 0,
            invite_hops: InviteHops::new(now, 64 * cfg.timers.t1),
        }
    }

    /// This shard's index.
    pub fn id(&self) -> ShardId {
        self.id
    }

    /// The counters (the mesh ones read from the metrics).
    pub fn stats(&self) -> ShardStats {
        let m = self.engine.metrics().counters();
        ShardStats {
            local: m.local,
            forwarded: m.mesh_out,
            from_mesh: m.mesh_in,
            dropped: self.dropped,
        }
    }

    /// The proxy core's counters.
    pub fn engine_stats(&self) -> EngineStats {
        self.engine.stats()
    }

    /// The figures for the admin thread.
    pub fn snapshot(&self) -> Snapshot {
        let mut s = self.engine.metrics().snapshot();
        s.transactions_live = self.engine.in_flight() as u64;
        // Every shard holds every binding (`proxy::engine::replica`): each counts
        // those of the AORs it owns, so that the sum over shards counts each once.
        s.bindings_live = self.engine.registrar().location().owned_len() as u64;
        s.bindings_replicated = self.engine.replica_len() as u64;
        s
    }

    /// The metrics, for what the runtime measures (latency, connections).
    pub fn metrics_mut(&mut self) -> &mut ShardMetrics {
        self.engine.metrics_mut()
    }

    /// Work that has not finished (transactions); shutdown waits for it to drain.
    pub fn in_flight(&self) -> usize {
        self.engine.in_flight()
    }

    /// The proxy core (registrar, location part).
    pub(crate) fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The binding changes made since the last call, for the runtime's store.
    pub fn take_journal(&mut self) -> Vec<Change> {
        self.engine.take_journal()
    }

    /// Seconds since the UNIX epoch at `now`, on the clock bindings live by.
    pub fn unix(&self, now: Instant) -> u64 {
        self.engine.unix(now)
    }

    /// A datagram arrived.
    pub fn on_datagram(&mut self, now: Instant, from: Peer, bytes: &[u8], out: &mut Outbox) {
        self.on_message(now, from, bytes, false, out);
    }

    /// A stream connection delivered one whole message (cut by `sip::framing`).
    pub fn on_stream_message(&mut self, now: Instant, from: Peer, bytes: &[u8], out: &mut Outbox) {
        self.on_message(now, from, bytes, false, out);
    }

    /// Another shard sent a message.
    pub fn on_mesh(&mut self, now: Instant, msg: MeshMsg, out: &mut Outbox) {
        match msg {
            MeshMsg::Inbound { peer, bytes, .. } => {
                self.engine.metrics_mut().inc_mesh_in();
                self.on_message(now, peer, &bytes, true, out);
            }
            MeshMsg::Bindings(changes) => self.engine.apply_replicated(&changes),
        }
    }

    /// The system resolver answered for `name` (no addresses: it failed).
    pub fn on_resolved(&mut self, now: Instant, name: &str, addrs: &[IpAddr], out: &mut Outbox) {
        self.engine.on_resolved(now, name, addrs, out);
    }

    /// The periodic tick: fires transaction timers (DESIGN.md §4).
    pub fn on_tick(&mut self, now: Instant, out: &mut Outbox) {
        self.engine.on_tick(now, out);
        self.invite_hops.expire(now);
        self.send_replication(now, out);
    }

    /// Sends every binding change not yet sent, due or not: at shutdown, so that
    /// the AOR's own shard, which persists it, has it before it stops
    /// (`proxy::engine::replica`).
    pub fn flush_replication(&mut self, out: &mut Outbox) {
        if let Some(due) = self.engine.replication_due() {
            self.send_replication(due, out);
        }
    }

    /// Sends the binding changes due at `now` to every other shard's replica.
    fn send_replication(&mut self, now: Instant, out: &mut Outbox) {
        let changes = self.engine.take_replication(now);
        if changes.is_empty() {
            return;
        }
        let others: Vec<ShardId> = (0..self.shards).filter(|&s| s != self.id).collect();
        if let Some((&last, rest)) = others.split_last() {
            for &to in rest {
                out.mesh(to, MeshMsg::Bindings(changes.clone()));
            }
            out.mesh(last, MeshMsg::Bindings(changes));
        }
    }

    /// The earliest time [`Shard::on_tick`] has transaction work; `None` when no
    /// timer is pending (binding expiry is checked at whatever pace ticks come).
    pub fn next_deadline(&self) -> Option<Instant> {
        self.engine.next_deadline()
    }

    /// The shard that owns `msg` (DESIGN.md §3), `None` when it is not ours to
    /// handle. For a request, in this order:
    ///
    /// - REGISTER: this core. Every core holds every binding and replicates the
    ///   ones it writes to the others (`proxy::engine::replica`).
    /// - ACK: the core this one handed the ACK's INVITE to, if it did (the ACK of a
    ///   non-2xx response belongs to the INVITE's server transaction, §17.1.1.3);
    ///   otherwise this core, which relays a 2xx's ACK statelessly (§16.11) or finds
    ///   the transaction among its own.
    /// - Inside a dialog (a To tag, RFC 3261 §12.2): the core it arrives on. Its
    ///   retransmissions, CANCEL and ACK come over the same flow, which SO_REUSEPORT
    ///   (the same UDP 4-tuple) or the connection keeps on this core; and the
    ///   responses come back here, named in our branch.
    /// - Initial requests to a user of our domains, and their CANCEL: this core,
    ///   whose location holds every binding (a binding accepted on another core a
    ///   moment ago is waited for: `proxy::engine::replica`).
    /// - Any other: `hash(top Via branch) % N`, or `hash(Call-ID, CSeq number) % N`
    ///   when the branch is not RFC 3261's, so their CANCEL lands with them.
    ///
    /// For a response: the shard written into our own branch.
    pub fn owner_of(&self, msg: &Message<'_>) -> Option<ShardId> {
        if self.shards == 1 {
            return Some(0);
        }
        if self.stateless {
            // §16.11: no transaction to find, so no mesh hop by branch; only the
            // location part (REGISTER, requests to our users) is owned, by the
            // AOR's shard: stateless shards do not replicate bindings.
            let aor = msg.is_request().then(|| self.aor_of(msg)).flatten();
            return Some(aor.map_or(self.id, |a| shard_of_aor(&a, self.shards)));
        }
        let Some(method) = msg.method() else {
            return msg
                .via()
                .ok()
                .and_then(|v| v.branch())
                .and_then(parse_shard)
                .map(usize::from)
                .filter(|&s| s < self.shards);
        };
        // Every shard holds every binding (`proxy::engine::replica`): a REGISTER
        // is answered, and a request to a user of ours routed, where it lands.
        if method == Method::Register {
            return Some(self.id);
        }
        if method == Method::Ack {
            let hop = self.invite_hops.get(msg);
            return Some(hop.map_or(self.id, usize::from));
        }
        if msg.to().ok().and_then(|t| t.tag()).is_some() {
            return Some(self.id);
        }
        if self.user_of(msg).is_some() {
            // Its CANCEL and retransmissions come over the same flow (the same UDP
            // 4-tuple under SO_REUSEPORT, or the connection): here too.
            return Some(self.id);
        }
        affinity_of(msg).map(|a| (a % self.shards as u64) as usize)
    }

    /// With `--stateless` (no replication), the AOR whose shard owns a request
    /// where the location part decides: REGISTER (its To), and the requests of
    /// [`Shard::user_of`] (their Request-URI), so that the lookup is local.
    fn aor_of(&self, msg: &Message<'_>) -> Option<AorKey> {
        if msg.method()? == Method::Register {
            return aor_of_register(msg);
        }
        AorKey::from_sip_uri(&self.user_of(msg)?).ok()
    }

    /// The Request-URI of an initial request to a user of our domains with no
    /// Route to follow, and of the CANCEL and ACK of a non-2xx that share it
    /// (§9.1, §17.1.1.3): the requests the location decides, which depart from
    /// DESIGN.md §3's branch hash.
    fn user_of<'m>(&self, msg: &Message<'m>) -> Option<SipUri<'m>> {
        let method = msg.method()?;
        if msg.find(HeaderName::Route).is_some() {
            return None;
        }
        if !matches!(method, Method::Ack | Method::Cancel)
            && msg.to().ok().and_then(|t| t.tag()).is_some()
        {
            return None;
        }
        let Ok(Uri::Sip(u)) = msg.uri() else {
            return None;
        };
        u.user?;
        if !self
            .engine
            .identity()
            .is_our_domain(&u.host, u.port, u.port_or_default())
        {
            return None;
        }
        Some(u)
    }

    /// A request with another SIP-Version gets `505 Version Not Supported` (RFC 3261
    /// §21.5.7, RFC 4475 §3.1.2.16), one whose request line or Content-Length does
    /// not parse `400` naming the fault (RFC 4475 §3.1.2.2, .3, .8–.10), answered
    /// from a repaired copy (`sip::salvage`). False when it is not a request that
    /// can be answered (a response, an ACK, no usable Via), and the message is
    /// dropped. A Content-Length fault is repaired for datagrams only: on a stream
    /// it is a framing error, and the connection is closed.
    fn answer_unparsable(
        &mut self,
        from: Peer,
        bytes: &[u8],
        fault: ParseError,
        out: &mut Outbox,
    ) -> bool {
        let copy = match fault {
            ParseError::BadVersion
            | ParseError::InvalidRequestUri
            | ParseError::InvalidStartLine => salvage::with_request_line_repaired(bytes),
            ParseError::BadContentLength if !from.transport.is_reliable() => {
                salvage::without_content_length(bytes)
            }
            _ => None,
        };
        let Some(copy) = copy else {
            return false;
        };
        let Ok(msg) = Message::parse(&copy) else {
            return false;
        };
        if !msg.is_request() || msg.method() == Some(Method::Ack) || msg.via().is_err() {
            return false;
        }
        if fault == ParseError::BadVersion {
            self.engine.reply_version_not_supported(from, &msg, out);
        } else {
            self.engine.reply_unparsable(from, &msg, fault, out);
        }
        true
    }

    fn on_message(
        &mut self,
        now: Instant,
        from: Peer,
        bytes: &[u8],
        hopped: bool,
        out: &mut Outbox,
    ) {
        if bytes.len() > self.max_message_size {
            self.dropped += 1;
            self.engine.metrics_mut().inc_dropped(DropReason::Limits);
            return;
        }
        let msg = match Message::parse(bytes) {
            Ok(m) => m,
            Err(
                e @ (ParseError::BadVersion
                | ParseError::InvalidRequestUri
                | ParseError::InvalidStartLine
                | ParseError::BadContentLength),
            ) if self.answer_unparsable(from, bytes, e, out) => {
                return;
            }
            Err(ParseError::InvalidHeaderLine) if self.answer_bad_header_line(from, bytes, out) => {
                return;
            }
            Err(_) => {
                // Without a parsed start line and Via there is no one to answer.
                self.dropped += 1;
                self.engine.metrics_mut().inc_dropped(DropReason::Malformed);
                return;
            }
        };
        // A request whose ownership cannot be computed (no Call-ID, say) is
        // handled here: the engine answers it 400.
        let owner = match self.owner_of(&msg) {
            Some(o) => o,
            None if msg.is_request() => self.id,
            None => {
                // A response that names no shard of ours.
                self.dropped += 1;
                self.engine
                    .metrics_mut()
                    .inc_dropped(DropReason::Unroutable);
                return;
            }
        };
        if owner != self.id && !hopped {
            self.engine.metrics_mut().inc_mesh_out();
            if msg.method() == Some(Method::Invite) {
                if let Some(a) = affinity_of(&msg) {
                    self.invite_hops.insert(a, owner);
                }
            }
            out.mesh(
                owner,
                MeshMsg::Inbound {
                    peer: from,
                    bytes: bytes.to_vec(),
                    received: now,
                },
            );
            return;
        }
        if !hopped {
            self.engine.metrics_mut().inc_local();
        }
        match (self.stateless, msg.is_request()) {
            (false, true) => {
                self.engine.on_request(now, from, &msg, out);
                self.send_replication(now, out);
            }
            (false, false) => self.engine.on_response(now, from, &msg, out),
            (true, true) => self.engine.on_stateless_request(now, from, &msg, out),
            (true, false) => self.engine.on_stateless_response(&msg, out),
        }
    }

    /// A request with a header line that is not a header (no colon, a name that
    /// is not a token: RFC 3261 §7.3.1, §25.1) is malformed syntax, answered `400`
    /// naming the fault (§21.4.1) rather than dropped. On this error path only,
    /// the request is parsed again without its bad lines and the answer built
    /// from what remains, as every other 400 is. False, and the message dropped,
    /// when it cannot be answered:
    /// - a response (§18.1.2: nothing answers a response) or an ACK (§17.2.1,
    ///   §17.2.3: an ACK is never answered);
    /// - more bad lines than [`MAX_BAD_LINES`](crate::sip::message::MAX_BAD_LINES),
    ///   or another fault the salvage meets;
    /// - no usable top Via, or a bad line that may have been a Via: the answer's
    ///   Via values must be the request's (§8.2.6.2), and one with the wrong top
    ///   Via would go to the wrong place or be discarded there (§18.1.2).
    ///
    /// Over a stream the message was cut by Content-Length (`sip::framing`
    /// reads it past a bad line), so the answer goes back on the connection and
    /// the next message is framed where it begins.
    fn answer_bad_header_line(&mut self, from: Peer, bytes: &[u8], out: &mut Outbox) -> bool {
        let Ok((msg, bad)) = Message::parse_skipping_bad_lines(bytes) else {
            return false;
        };
        if !msg.is_request() || msg.method() == Some(Method::Ack) {
            return false;
        }
        if bad.iter().any(|l| l.may_be(HeaderName::Via)) || msg.via().is_err() {
            return false;
        }
        self.engine
            .reply_unparsable(from, &msg, ParseError::InvalidHeaderLine, out);
        true
    }
}

/// The hash that places a request by its transaction (DESIGN.md §3): of the top
/// Via branch, or of Call-ID and CSeq number when the branch is not RFC 3261's.
/// A CANCEL and the ACK of a non-2xx hash like their INVITE (§9.1, §17.1.1.3).
fn affinity_of(msg: &Message<'_>) -> Option<u64> {
    match msg.via().ok().and_then(|v| v.branch()) {
        Some(b) if is_rfc3261_branch(b) => Some(branch_hash(b)),
        _ => Some(legacy_request_hash(
            msg.call_id().ok()?,
            msg.cseq().ok()?.seq,
        )),
    }
}

/// Entries [`InviteHops`] keeps per generation; past it, a hop is not recorded
/// and its ACK, should one come, is relayed from the arrival core.
const MAX_INVITE_HOPS: usize = 1 << 20;

/// Where this core sent the INVITEs it received but did not own, by
/// [`affinity_of`], for as long as their ACK may follow: the ACK of a non-2xx
/// response comes over the INVITE's flow, so to this core, until the owner's
/// Timer H (64·T1) ends the transaction. It cannot be told from the ACK of a 2xx
/// (§13.2.2.4), which needs no owner, without this record. Two generations swapped
/// every 64·T1: an entry lives between one and two of them, with no timer each.
#[derive(Debug)]
struct InviteHops {
    current: ahash::AHashMap<u64, u16>,
    previous: ahash::AHashMap<u64, u16>,
    since: Instant,
    hold: Duration,
}

impl InviteHops {
    fn new(now: Instant, hold: Duration) -> InviteHops {
        InviteHops {
            current: ahash::AHashMap::new(),
            previous: ahash::AHashMap::new(),
            since: now,
            hold,
        }
    }

    fn insert(&mut self, affinity: u64, owner: ShardId) {
        if self.current.len() < MAX_INVITE_HOPS {
            self.current.insert(affinity, owner as u16);
        }
    }

    /// Where the INVITE `msg` (its ACK) hashes like went. The hash is taken only
    /// when something is recorded: on a core whose INVITEs stay local, never.
    fn get(&self, msg: &Message<'_>) -> Option<u16> {
        if self.current.is_empty() && self.previous.is_empty() {
            return None;
        }
        let affinity = affinity_of(msg)?;
        self.current
            .get(&affinity)
            .or_else(|| self.previous.get(&affinity))
            .copied()
    }

    /// Starts a new generation when the current one is `hold` old.
    fn expire(&mut self, now: Instant) {
        if now.saturating_duration_since(self.since) >= self.hold {
            self.previous = std::mem::take(&mut self.current);
            self.since = now;
        }
    }
}

/// The key of the flow tokens in our Record-Route: random per process and the
/// same on every shard, since the rest of a dialog may land on any of them.
fn process_flow_key() -> crate::proxy::flow::FlowKey {
    static KEY: std::sync::OnceLock<[u64; 4]> = std::sync::OnceLock::new();
    crate::proxy::flow::FlowKey(*KEY.get_or_init(|| {
        let mut b = [0u8; 32];
        if getrandom::fill(&mut b).is_err() {
            return [
                branch_seed(0),
                branch_seed(1),
                branch_seed(2),
                branch_seed(3),
            ];
        }
        let word = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&b[i * 8..i * 8 + 8]);
            u64::from_le_bytes(w)
        };
        [word(0), word(1), word(2), word(3)]
    }))
}

/// A per-process, per-shard seed for branch uniqueness across restarts
/// (§8.1.1.7).
fn branch_seed(id: ShardId) -> u64 {
    let mut b = [0u8; 8];
    if getrandom::fill(&mut b).is_err() {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        b = (t ^ (u64::from(std::process::id()) << 32)).to_le_bytes();
    }
    u64::from_le_bytes(b) ^ (id as u64).rotate_left(48)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::{ConnId, Dest, Transport};

    fn at(seed: u64, now: Instant) -> Start {
        Start {
            seed,
            now,
            unix_now: 0,
        }
    }

    fn cfg(cores: usize) -> Config {
        let mut c = Config::for_tests();
        c.cores = cores;
        c.listen = vec![
            "udp:0.0.0.0:5060".parse().unwrap(),
            "tcp:0.0.0.0:5060".parse().unwrap(),
        ];
        c.domains = vec!["proxy.example.com".into()];
        c
    }

    fn shard(id: ShardId, cores: usize) -> Shard {
        Shard::in_memory(
            id,
            &cfg(cores),
            vec!["192.0.2.10".parse().unwrap(), "127.0.0.1".parse().unwrap()],
        )
    }

    /// Where a datagram to `addr` goes out, from the first listener.
    fn udp_dest(addr: &str) -> Dest {
        Dest::Udp {
            listener: 0,
            to: addr.parse().unwrap(),
        }
    }

    /// A client at 198.51.100.7:40000 over connection `conn` (TCP listener 1).
    fn tcp_peer(conn: ConnId) -> Peer {
        Peer {
            transport: Transport::Tcp,
            addr: "198.51.100.7:40000".parse().unwrap(),
            listener: 1,
            conn: Some(conn),
        }
    }

    /// Where a response to [`tcp_peer`] goes: back on `conn`, or to the sent-by of
    /// `options()` should it have closed (RFC 3261 §18.2.2).
    fn tcp_dest(conn: ConnId) -> Dest {
        Dest::Conn {
            conn,
            transport: Transport::Tcp,
            fallback: Some("198.51.100.7:5070".parse().unwrap()),
        }
    }

    fn udp_peer(addr: &str) -> Peer {
        Peer::udp(addr.parse().unwrap(), 0)
    }

    fn options(uri: &str, via_params: &str, branch: &str) -> Vec<u8> {
        format!(
            "OPTIONS {uri} SIP/2.0\r\n\
Via: SIP/2.0/UDP client.example.com:5070;branch={branch}{via_params}\r\n\
Max-Forwards: 70\r\n\
To: <{uri}>\r\n\
From: <sip:alice@example.com>;tag=a1\r\n\
Call-ID: c1@client\r\n\
CSeq: 7 OPTIONS\r\n\
Content-Length: 0\r\n\r\n"
        )
        .into_bytes()
    }

    fn run(sh: &mut Shard, from: Peer, bytes: &[u8]) -> Outbox {
        let mut out = Outbox::new();
        sh.on_datagram(Instant::now(), from, bytes, &mut out);
        out
    }

    fn only_transmit(out: &Outbox) -> (Dest, String) {
        let v: Vec<_> = out.transmits().collect();
        assert_eq!(v.len(), 1, "expected one transmit");
        (v[0].0, String::from_utf8(v[0].1.to_vec()).unwrap())
    }

    #[test]
    fn options_to_the_proxy_gets_200_with_capabilities() {
        let mut sh = shard(0, 1);
        let out = run(
            &mut sh,
            udp_peer("198.51.100.7:40000"),
            &options("sip:192.0.2.10", "", "z9hG4bK1"),
        );
        let (dest, text) = only_transmit(&out);
        assert!(text.starts_with("SIP/2.0 200 OK\r\n"), "{text}");
        assert!(text.contains("\r\nAllow: INVITE, ACK, CANCEL, BYE, OPTIONS"));
        assert!(text.contains("\r\nAccept: application/sdp\r\n"));
        assert!(text.contains("\r\nSupported:"));
        assert!(text.contains("\r\nTo: <sip:192.0.2.10>;tag="));
        // RFC 3261 §18.2.2: no rport, so the sent-by port at the source address.
        assert_eq!(dest, udp_dest("198.51.100.7:5070"));
        assert_eq!(sh.engine_stats().local_replies, 1);
    }

    #[test]
    fn rport_sends_the_response_to_the_source_port() {
        // RFC 3581 §4
        let mut sh = shard(0, 1);
        let out = run(
            &mut sh,
            udp_peer("198.51.100.7:40000"),
            &options("sip:proxy.example.com", ";rport", "z9hG4bK1"),
        );
        let (dest, _) = only_transmit(&out);
        assert_eq!(dest, udp_dest("198.51.100.7:40000"));
    }

    #[test]
    fn the_same_request_gets_the_same_to_tag() {
        let mut sh = shard(0, 1);
        let req = options("sip:127.0.0.1:5060", "", "z9hG4bK1");
        let a = only_transmit(&run(&mut sh, udp_peer("127.0.0.1:1"), &req)).1;
        let b = only_transmit(&run(&mut sh, udp_peer("127.0.0.1:1"), &req)).1;
        assert_eq!(a, b);
    }

    #[test]
    fn options_for_someone_else_is_not_answered_as_the_proxy() {
        // Only a Request-URI naming the proxy itself gets the proxy's 200; the others
        // are routed (and, with no user registered and no relay allowed, refused).
        let mut sh = shard(0, 1);
        for (i, (uri, code)) in [
            ("sip:bob@192.0.2.10", "404"),  // a user of ours, not registered
            ("sip:192.0.2.99", "403"),      // not us, no relay
            ("sip:192.0.2.10:5099", "403"), // our host, another port: someone else
            ("sip:other.example.com", "-"), // a host name: waits for the resolver
        ]
        .into_iter()
        .enumerate()
        {
            let out = run(
                &mut sh,
                udp_peer("127.0.0.1:1"),
                &options(uri, "", &format!("z9hG4bK{i}")),
            );
            if code == "-" {
                assert!(out.transmits().next().is_none(), "{uri} answered");
                continue;
            }
            let (_, text) = only_transmit(&out);
            assert!(
                text.starts_with(&format!("SIP/2.0 {code} ")),
                "{uri}: {text}"
            );
        }
    }

    #[test]
    fn malformed_requests_get_400_naming_the_fault() {
        let mut sh = shard(0, 1);
        let good = String::from_utf8(options("sip:127.0.0.1", "", "z9hG4bK1")).unwrap();
        for (broken, reason) in [
            (
                good.replace("CSeq: 7 OPTIONS", "CSeq: x OPTIONS"),
                "Bad CSeq",
            ),
            (
                good.replace("CSeq: 7 OPTIONS", "CSeq: 7 INVITE"),
                "CSeq Method Mismatch",
            ),
            (
                good.replace("Call-ID: c1@client\r\n", ""),
                "Missing Call-ID",
            ),
            (
                good.replace("Max-Forwards: 70", "Max-Forwards: 300"),
                "Bad Max-Forwards",
            ),
            (
                good.replace("From: <sip:alice@example.com>;tag=a1\r\n", ""),
                "Missing From",
            ),
        ] {
            let out = run(&mut sh, udp_peer("127.0.0.1:1"), broken.as_bytes());
            let (_, text) = only_transmit(&out);
            assert!(
                text.starts_with(&format!("SIP/2.0 400 {reason}\r\n")),
                "{reason}: {text}"
            );
        }
        assert_eq!(sh.engine_stats().local_replies, 5);
    }

    #[test]
    fn a_400_for_a_broken_via_goes_to_the_source() {
        let mut sh = shard(0, 1);
        let req = String::from_utf8(options("sip:127.0.0.1", "", "z9hG4bK1"))
            .unwrap()
            .replace("SIP/2.0/UDP client.example.com:5070", "SIP/2.0/UDP [bad");
        let out = run(&mut sh, udp_peer("198.51.100.7:40000"), req.as_bytes());
        let (dest, text) = only_transmit(&out);
        assert!(text.starts_with("SIP/2.0 400 "), "{text}");
        assert_eq!(dest, udp_dest("198.51.100.7:40000"));
    }

    #[test]
    fn bad_ack_and_responses_are_dropped_silently() {
        let mut sh = shard(0, 1);
        let ack = String::from_utf8(request("ACK", "sip:127.0.0.1", "z9hG4bK1", None))
            .unwrap()
            .replace("Max-Forwards: 70", "Max-Forwards: 999");
        assert!(run(&mut sh, udp_peer("127.0.0.1:1"), ack.as_bytes()).is_empty());
        let resp = b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP x;branch=z9hG4bK1\r\nCSeq: x\r\n\r\n";
        assert!(run(&mut sh, udp_peer("127.0.0.1:1"), resp).is_empty());
        assert!(run(&mut sh, udp_peer("127.0.0.1:1"), b"garbage\r\n\r\n").is_empty());
        assert_eq!(sh.stats().dropped + sh.engine_stats().dropped, 3);
    }

    #[test]
    fn over_a_connection_the_response_goes_back_on_it() {
        // RFC 3261 §18.2.2
        let mut sh = shard(0, 1);
        let conn = ConnId { shard: 0, seq: 9 };
        let from = tcp_peer(conn);
        let mut out = Outbox::new();
        sh.on_stream_message(
            Instant::now(),
            from,
            &options("sip:127.0.0.1", "", "z9hG4bK1"),
            &mut out,
        );
        let (dest, _) = only_transmit(&out);
        assert_eq!(dest, tcp_dest(conn));
    }

    #[test]
    fn requests_owned_by_another_shard_cross_the_mesh_once() {
        let mut shards = [shard(0, 2), shard(1, 2)];
        let mut owners = [0usize; 2];
        for i in 0..64 {
            let req = options("sip:127.0.0.1", "", &format!("z9hG4bK{i}x"));
            let msg = Message::parse(&req).unwrap();
            let owner = shards[0].owner_of(&msg).unwrap();
            // Every shard agrees on the owner.
            assert_eq!(shards[1].owner_of(&msg), Some(owner));
            owners[owner] += 1;
            let other = 1 - owner;
            let out = run(&mut shards[other], udp_peer("127.0.0.1:1"), &req);
            assert!(out.transmits().next().is_none());
            let mut out = out;
            let mesh: Vec<_> = out.drain_mesh().collect();
            assert_eq!(mesh.len(), 1);
            let (to, msg) = mesh.into_iter().next().unwrap();
            assert_eq!(to, owner);
            let mut out2 = Outbox::new();
            shards[owner].on_mesh(Instant::now(), msg, &mut out2);
            let (_, text) = only_transmit(&out2);
            assert!(text.starts_with("SIP/2.0 200 OK"));
            assert_eq!(out2.drain_mesh().count(), 0);
        }
        assert!(owners[0] > 0 && owners[1] > 0, "{owners:?}");
        assert_eq!(
            shards[0].stats().forwarded + shards[1].stats().forwarded,
            64
        );
        assert_eq!(
            shards[0].stats().from_mesh + shards[1].stats().from_mesh,
            64
        );
    }

    /// `options()` turned into `method`, inside a dialog when `to_tag` is given.
    fn request(method: &str, uri: &str, branch: &str, to_tag: Option<&str>) -> Vec<u8> {
        let text = String::from_utf8(options(uri, "", branch))
            .unwrap()
            .replace("OPTIONS sip", &format!("{method} sip"))
            .replace("CSeq: 7 OPTIONS", &format!("CSeq: 7 {method}"));
        match to_tag {
            Some(tag) => text.replace(&format!("To: <{uri}>"), &format!("To: <{uri}>;tag={tag}")),
            None => text,
        }
        .into_bytes()
    }

    #[test]
    fn requests_inside_a_dialog_stay_on_their_arrival_core() {
        // RFC 3261 §12.2: a To tag puts a request inside a dialog. Its retransmissions,
        // CANCEL and ACK come over the same flow, so the core it arrives on owns it.
        let mut shards = [shard(0, 2), shard(1, 2)];
        for i in 0..32 {
            for method in ["BYE", "INVITE", "CANCEL", "INFO"] {
                let req = request(
                    method,
                    "sip:127.0.0.1:5999",
                    &format!("z9hG4bK{i}d"),
                    Some("b7"),
                );
                let msg = Message::parse(&req).unwrap();
                for sh in &shards {
                    assert_eq!(sh.owner_of(&msg), Some(sh.id()), "{method} {i}");
                }
            }
        }
        // Handled where they arrive: no mesh message.
        for (i, sh) in shards.iter_mut().enumerate() {
            let bye = request(
                "BYE",
                "sip:127.0.0.1:5999",
                &format!("z9hG4bK{i}e"),
                Some("b7"),
            );
            let mut out = run(sh, udp_peer("127.0.0.1:1"), &bye);
            assert_eq!(out.drain_mesh().count(), 0);
        }
        assert_eq!(shards[0].stats().forwarded + shards[1].stats().forwarded, 0);
    }

    #[test]
    fn a_cancel_outside_a_dialog_lands_with_its_invite() {
        // §9.1: the CANCEL shares the INVITE's Request-URI, Call-ID, CSeq number and
        // top Via, so every shard computes the same owner for both.
        let shards = [shard(0, 4), shard(1, 4), shard(3, 4)];
        for i in 0..32 {
            for uri in ["sip:127.0.0.1:5999", "sip:bob@proxy.example.com"] {
                let branch = format!("z9hG4bK{i}c");
                let invite = request("INVITE", uri, &branch, None);
                let cancel = request("CANCEL", uri, &branch, None);
                let invite = Message::parse(&invite).unwrap();
                let cancel = Message::parse(&cancel).unwrap();
                let owner = shards[0].owner_of(&invite);
                for sh in &shards {
                    // To a user of ours: both stay where they land (the same
                    // flow brings them), otherwise one hash for both.
                    let owner = if uri.contains("bob") {
                        Some(sh.id())
                    } else {
                        owner
                    };
                    assert_eq!(sh.owner_of(&invite), owner);
                    assert_eq!(sh.owner_of(&cancel), owner);
                }
            }
        }
    }

    #[test]
    fn the_ack_of_a_non_2xx_follows_its_invite_to_the_owner() {
        // §17.1.1.3: the ACK of a non-2xx final response carries the INVITE's branch
        // and belongs to its server transaction, wherever that lives. Another ACK (a
        // 2xx's, §13.2.2.4) is relayed from the core it arrives on.
        let mut c = cfg(2);
        c.timers.t1 = Duration::from_millis(500);
        let ips = vec!["127.0.0.1".parse().unwrap()];
        let start = Instant::now();
        let mut sh: Vec<Shard> = (0..2)
            .map(|i| Shard::with_seed(i, &c, ips.clone(), Services::in_memory(&c), at(7, start)))
            .collect();
        // An INVITE whose owner is the other core.
        let (branch, owner, arrival) = (0..64)
            .map(|i| format!("z9hG4bK{i}i"))
            .find_map(|b| {
                let inv = request("INVITE", "sip:127.0.0.1:5999", &b, None);
                let owner = sh[0].owner_of(&Message::parse(&inv).unwrap())?;
                Some((b, owner, 1 - owner))
            })
            .unwrap();
        let invite = request("INVITE", "sip:127.0.0.1:5999", &branch, None);
        let mut out = Outbox::new();
        sh[arrival].on_datagram(start, udp_peer("127.0.0.1:1"), &invite, &mut out);
        assert_eq!(
            out.drain_mesh().map(|(to, _)| to).collect::<Vec<_>>(),
            [owner]
        );

        let ack = request("ACK", "sip:127.0.0.1:5999", &branch, Some("x1"));
        let ack = Message::parse(&ack).unwrap();
        assert_eq!(sh[arrival].owner_of(&ack), Some(owner));
        let ack_2xx = request("ACK", "sip:127.0.0.1:5999", "z9hG4bKother", Some("x1"));
        let ack_2xx = Message::parse(&ack_2xx).unwrap();
        assert_eq!(sh[arrival].owner_of(&ack_2xx), Some(arrival));
        assert_eq!(sh[owner].owner_of(&ack_2xx), Some(owner));

        // Kept for Timer H (64·T1, 32 s) at least, forgotten after twice that.
        let mut out = Outbox::new();
        sh[arrival].on_tick(start + Duration::from_secs(33), &mut out);
        assert_eq!(sh[arrival].owner_of(&ack), Some(owner));
        sh[arrival].on_tick(start + Duration::from_secs(66), &mut out);
        assert_eq!(sh[arrival].owner_of(&ack), Some(arrival));
    }

    fn register(contact: &str, expires: u32) -> Vec<u8> {
        register_seq(contact, expires, 1)
    }

    fn register_seq(contact: &str, expires: u32, cseq: u32) -> Vec<u8> {
        format!(
            "REGISTER sip:proxy.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKreg{cseq}\r\n\
Max-Forwards: 70\r\n\
To: <sip:bob@proxy.example.com>\r\n\
From: <sip:bob@proxy.example.com>;tag=r1\r\n\
Call-ID: reg1@client\r\n\
CSeq: {cseq} REGISTER\r\n\
Contact: <{contact}>;expires={expires}\r\n\
Content-Length: 0\r\n\r\n"
        )
        .into_bytes()
    }

    /// The AOR `register()` binds.
    fn bob_aor() -> AorKey {
        let uri = Uri::parse(b"sip:bob@proxy.example.com").unwrap();
        AorKey::from_sip_uri(uri.as_sip().unwrap()).unwrap()
    }

    /// Ticks `from` and delivers its mesh messages to `to`.
    fn replicate(from: &mut Shard, to: &mut Shard, now: Instant) -> usize {
        let mut out = Outbox::new();
        from.on_tick(now, &mut out);
        deliver(&mut out, to, now)
    }

    /// Delivers the mesh messages in `out` to `to`.
    fn deliver(out: &mut Outbox, to: &mut Shard, now: Instant) -> usize {
        let msgs: Vec<_> = out.drain_mesh().collect();
        let n = msgs.len();
        for (dest, msg) in msgs {
            assert_eq!(dest, to.id());
            to.on_mesh(now, msg, &mut Outbox::new());
        }
        n
    }

    /// An INVITE to bob arriving from a caller at 127.0.0.1:5090.
    fn invite_bob(branch: &str) -> Vec<u8> {
        String::from_utf8(request("INVITE", "sip:bob@proxy.example.com", branch, None))
            .unwrap()
            .replace(
                "Max-Forwards",
                "Contact: <sip:alice@127.0.0.1:5090>\r\nMax-Forwards",
            )
            .into_bytes()
    }

    /// What `out` sends, as text.
    fn sent(out: &Outbox) -> Vec<String> {
        out.transmits()
            .map(|(_, b)| String::from_utf8_lossy(b).into_owned())
            .collect()
    }

    /// Whether `out` forwards an INVITE to bob's contact at 127.0.0.1:5070.
    fn forwarded_to_bob(out: &Outbox) -> bool {
        sent(out)
            .iter()
            .any(|t| t.starts_with("INVITE sip:bob@127.0.0.1:5070 SIP/2.0"))
    }

    /// Feeds `bytes` to `sh` at `now` and returns its output.
    fn feed(sh: &mut Shard, now: Instant, from: &str, bytes: &[u8]) -> Outbox {
        let mut out = Outbox::new();
        sh.on_datagram(now, udp_peer(from), bytes, &mut out);
        out
    }

    #[test]
    fn a_register_is_answered_where_it_lands_and_the_other_core_routes_to_it() {
        let now = Instant::now();
        let mut sh = [shard(0, 2), shard(1, 2)];
        let [a, b] = &mut sh;
        // Neither the REGISTER nor the INVITE is handed to another core, whichever
        // shard the AOR hashes to.
        let reg = register("sip:bob@127.0.0.1:5070", 3600);
        assert_eq!(a.owner_of(&Message::parse(&reg).unwrap()), Some(a.id()));
        assert_eq!(b.owner_of(&Message::parse(&reg).unwrap()), Some(b.id()));
        let inv = invite_bob("z9hG4bKinv1");
        assert_eq!(b.owner_of(&Message::parse(&inv).unwrap()), Some(b.id()));

        // The first change after a quiet spell goes to the other shard at once.
        let mut out = feed(a, now, "127.0.0.1:5070", &reg);
        assert!(only_transmit(&out).1.starts_with("SIP/2.0 200 OK"));
        assert_eq!(deliver(&mut out, b, now), 1);
        let out = feed(b, now, "127.0.0.1:5090", &inv);
        assert!(forwarded_to_bob(&out), "{:?}", sent(&out));
        // Its CANCEL stays with it (§9.1).
        let cancel = request("CANCEL", "sip:bob@proxy.example.com", "z9hG4bKinv1", None);
        assert_eq!(b.owner_of(&Message::parse(&cancel).unwrap()), Some(b.id()));

        // A second binding, registered on the other core: both cores list both
        // contacts.
        let at = now + Duration::from_millis(1);
        let second = register_seq("sip:bob@127.0.0.1:5071", 3600, 2);
        let mut out = feed(b, at, "127.0.0.1:5071", &second);
        assert!(only_transmit(&out).1.starts_with("SIP/2.0 200 OK"));
        // b's first change: at once too.
        assert_eq!(deliver(&mut out, a, at), 1);
        let later = now + Duration::from_millis(20);
        for s in [&*a, &*b] {
            assert_eq!(
                s.engine().registrar().location().bindings(&bob_aor()).len(),
                2
            );
        }

        // Removals go at once, however recent the last batch.
        for (i, contact) in ["sip:bob@127.0.0.1:5070", "sip:bob@127.0.0.1:5071"]
            .into_iter()
            .enumerate()
        {
            let at = later + Duration::from_millis(1 + i as u64);
            let gone = register_seq(contact, 0, 3 + i as u32);
            let mut out = feed(a, at, "127.0.0.1:5070", &gone);
            assert!(only_transmit(&out).1.starts_with("SIP/2.0 200 OK"));
            assert_eq!(deliver(&mut out, b, at), 1);
        }
        for s in [&*a, &*b] {
            assert!(s
                .engine()
                .registrar()
                .location()
                .bindings(&bob_aor())
                .is_empty());
        }
        // Nothing changed, nothing sent.
        assert_eq!(replicate(a, b, later + Duration::from_secs(1)), 0);
    }

    #[test]
    fn an_invite_for_a_binding_not_yet_replicated_waits_for_the_other_cores_batch() {
        let now = Instant::now();
        let mut sh = [shard(0, 2), shard(1, 2)];
        let [a, b] = &mut sh;
        // A first binding goes at once; a second within 10 ms waits for the batch.
        let carol = String::from_utf8(register("sip:carol@127.0.0.1:5072", 3600))
            .unwrap()
            .replace(
                "<sip:bob@proxy.example.com>",
                "<sip:carol@proxy.example.com>",
            )
            .into_bytes();
        let mut out = feed(a, now, "127.0.0.1:5072", &carol);
        assert_eq!(deliver(&mut out, b, now), 1);
        let at = now + Duration::from_millis(2);
        let bob = register_seq("sip:bob@127.0.0.1:5070", 3600, 2);
        let mut out = feed(a, at, "127.0.0.1:5070", &bob);
        assert!(only_transmit(&out).1.starts_with("SIP/2.0 200 OK"));
        assert_eq!(out.drain_mesh().count(), 0);

        // The INVITE lands on the core that has not heard of bob yet: 100 Trying,
        // and no 480 while the other core's batch may still be coming.
        let out = feed(b, at, "127.0.0.1:5090", &invite_bob("z9hG4bKinv9"));
        assert_eq!(sent(&out).len(), 1, "{:?}", sent(&out));
        assert!(sent(&out)[0].starts_with("SIP/2.0 100 "));
        assert!(b
            .next_deadline()
            .is_some_and(|d| d <= at + Duration::from_millis(20)));

        // The batch arrives; when the wait is over the INVITE goes to bob.
        assert_eq!(replicate(a, b, now + Duration::from_millis(12)), 1);
        let mut out = Outbox::new();
        b.on_tick(at + Duration::from_millis(20), &mut out);
        assert!(forwarded_to_bob(&out), "{:?}", sent(&out));

        // A user nobody registered is answered once the wait is over (no binding
        // on any core by then), not at once.
        let inv = String::from_utf8(invite_bob("z9hG4bKinv10"))
            .unwrap()
            .replace("sip:bob@", "sip:dave@")
            .into_bytes();
        let t = at + Duration::from_millis(30);
        let out = feed(b, t, "127.0.0.1:5090", &inv);
        assert!(sent(&out).iter().all(|m| m.starts_with("SIP/2.0 100 ")));
        let mut out = Outbox::new();
        b.on_tick(t + Duration::from_millis(20), &mut out);
        assert!(
            sent(&out)
                .iter()
                .any(|m| m.starts_with("SIP/2.0 404 ") || m.starts_with("SIP/2.0 480 ")),
            "{:?}",
            sent(&out)
        );
    }

    #[test]
    fn a_binding_held_by_two_cores_is_counted_expired_once() {
        // Both cores hold it and both drop it when it expires; the counter (summed
        // over the cores on /metrics) counts it where it is persisted only.
        let now = Instant::now();
        let mut sh = [shard(0, 2), shard(1, 2)];
        let [a, b] = &mut sh;
        let mut out = feed(
            a,
            now,
            "127.0.0.1:5070",
            &register("sip:bob@127.0.0.1:5070", 60),
        );
        assert_eq!(deliver(&mut out, b, now), 1);
        let later = now + Duration::from_secs(62);
        for s in [&mut *a, &mut *b] {
            s.on_tick(later, &mut Outbox::new());
            assert!(bob_bindings(s).is_empty());
        }
        let expired = a.engine_stats().bindings_expired + b.engine_stats().bindings_expired;
        assert_eq!(expired, 1);
    }

    /// The bindings `sh` holds for bob, as (contact, cseq).
    fn bob_bindings(sh: &Shard) -> Vec<(String, u32)> {
        sh.engine()
            .registrar()
            .location()
            .bindings(&bob_aor())
            .iter()
            .map(|b| (String::from_utf8_lossy(b.contact()).into_owned(), b.cseq))
            .collect()
    }

    #[test]
    fn a_refresh_and_an_unregister_on_two_cores_end_the_same_on_both_in_either_order() {
        // bob's phone registered (CSeq 1) and both cores know it. Then a refresh
        // (CSeq 2) and an un-REGISTER (CSeq 3) of the same binding land on
        // different cores, each before it hears of the other: the later-accepted
        // write wins on both cores, whatever order the batches cross in.
        for unregister_first in [false, true] {
            let now = Instant::now();
            let mut sh = [shard(0, 2), shard(1, 2)];
            let [a, b] = &mut sh;
            let contact = "sip:bob@127.0.0.1:5070";
            let mut out = feed(a, now, "127.0.0.1:5070", &register_seq(contact, 3600, 1));
            assert_eq!(deliver(&mut out, b, now), 1);

            let t1 = now + Duration::from_millis(1);
            let t2 = now + Duration::from_millis(2);
            let (refresh_at, unregister_at) = if unregister_first { (t2, t1) } else { (t1, t2) };
            let mut refresh = feed(
                a,
                refresh_at,
                "127.0.0.1:5070",
                &register_seq(contact, 3600, 2),
            );
            assert!(only_transmit(&refresh).1.starts_with("SIP/2.0 200 OK"));
            let mut unregister = feed(
                b,
                unregister_at,
                "127.0.0.1:5071",
                &register_seq(contact, 0, 3),
            );
            assert!(only_transmit(&unregister).1.starts_with("SIP/2.0 200 OK"));
            // The removal went at once; the refresh waits for a's next batch.
            let t3 = now + Duration::from_millis(30);
            deliver(&mut unregister, a, t3);
            deliver(&mut refresh, b, t3);
            replicate(a, b, t3);
            replicate(b, a, t3);

            let (on_a, on_b) = (bob_bindings(a), bob_bindings(b));
            assert_eq!(on_a, on_b, "unregister first: {unregister_first}");
            if unregister_first {
                // Accepted later, the refresh stands (as one registrar taking them
                // in that order would have it).
                assert_eq!(on_a, vec![(contact.to_string(), 2)]);
            } else {
                assert!(on_a.is_empty(), "{on_a:?}");
            }
            // And a call to bob on either core goes where both agree.
            for s in [&mut *a, &mut *b] {
                let out = feed(s, t3, "127.0.0.1:5090", &invite_bob("z9hG4bKrace"));
                assert_eq!(forwarded_to_bob(&out), unregister_first);
            }
        }
    }

    #[test]
    fn a_new_core_learns_the_bindings_loaded_before_it_started() {
        let now = Instant::now();
        let mut one = shard(0, 1);
        let out = run(
            &mut one,
            udp_peer("127.0.0.1:5070"),
            &register("sip:bob@127.0.0.1:5070", 3600),
        );
        assert!(only_transmit(&out).1.starts_with("SIP/2.0 200 OK"));
        // A shard replicates what its location part holds when it starts.
        let mut services = Services::in_memory(&cfg(2));
        for (aor, bindings) in one.engine().registrar().location().iter() {
            for b in bindings {
                services.registrar.location_mut().apply(&Change::Put {
                    aor: aor.clone(),
                    binding: b.clone(),
                });
            }
        }
        let ips = vec!["127.0.0.1".parse().unwrap()];
        let mut first = Shard::with_seed(0, &cfg(2), ips.clone(), services, at(1, now));
        let mut second = Shard::in_memory(1, &cfg(2), ips);
        assert_eq!(replicate(&mut first, &mut second, now), 1);
        assert_eq!(
            second
                .engine()
                .registrar()
                .location()
                .bindings(&bob_aor())
                .len(),
            1
        );
    }

    #[test]
    fn rfc2543_requests_are_owned_by_call_id_and_cseq() {
        let sh = shard(0, 4);
        let a = options("sip:127.0.0.1", "", "old-branch-1");
        let b = options("sip:127.0.0.1", "", "old-branch-2");
        // No magic cookie: the branch is ignored, the same Call-ID and CSeq agree.
        assert_eq!(
            sh.owner_of(&Message::parse(&a).unwrap()),
            sh.owner_of(&Message::parse(&b).unwrap())
        );
    }

    #[test]
    fn responses_are_owned_by_the_shard_in_our_branch() {
        let sh = shard(0, 4);
        // Our branches carry the shard after `z9hG4bKc` (txn::key::BranchGenerator).
        let resp =
            b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP p;branch=z9hG4bKc00030123456789abcdef.0\r\n\r\n";
        assert_eq!(sh.owner_of(&Message::parse(resp).unwrap()), Some(3));
        let foreign = b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP p;branch=z9hG4bKzz\r\n\r\n";
        assert_eq!(sh.owner_of(&Message::parse(foreign).unwrap()), None);
        // A shard id beyond the shard count is not ours either.
        let beyond =
            b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP p;branch=z9hG4bKc00090123456789abcdef\r\n\r\n";
        assert_eq!(sh.owner_of(&Message::parse(beyond).unwrap()), None);
    }

    #[test]
    fn stateless_messages_stay_on_the_shard_they_arrive_on() {
        // RFC 3261 §16.11: nothing to find on an owner shard, except the location
        // part, which still owns REGISTER and requests to our users.
        let mut c = cfg(4);
        c.proxy.stateless = true;
        let ips = vec!["192.0.2.10".parse().unwrap()];
        let shards: Vec<Shard> = (0..4)
            .map(|i| Shard::in_memory(i, &c, ips.clone()))
            .collect();
        for i in 0..16 {
            let req = options("sip:192.0.2.99", "", &format!("z9hG4bK{i}x"));
            let msg = Message::parse(&req).unwrap();
            for sh in &shards {
                assert_eq!(sh.owner_of(&msg), Some(sh.id()));
            }
        }
        let resp =
            b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP p;branch=z9hG4bKs0123456789abcdef.0\r\n\r\n";
        let msg = Message::parse(resp).unwrap();
        assert_eq!(shards[2].owner_of(&msg), Some(2));
        let reg = String::from_utf8(options("sip:proxy.example.com", "", "z9hG4bK1"))
            .unwrap()
            .replace("OPTIONS sip", "REGISTER sip")
            .replace("CSeq: 7 OPTIONS", "CSeq: 7 REGISTER")
            .replace(
                "To: <sip:proxy.example.com>",
                "To: <sip:bob@proxy.example.com>",
            );
        let msg = Message::parse(reg.as_bytes()).unwrap();
        let owner = shards[0].owner_of(&msg);
        assert!(shards.iter().all(|s| s.owner_of(&msg) == owner));
        // In stateless mode an answer of our own is still sent from here.
        let mut sh = Shard::in_memory(0, &c, ips);
        let out = run(
            &mut sh,
            udp_peer("198.51.100.7:40000"),
            &options("sip:192.0.2.10", "", "z9hG4bK1"),
        );
        let (_, text) = only_transmit(&out);
        assert!(text.starts_with("SIP/2.0 200 OK\r\n"), "{text}");
        assert_eq!(sh.in_flight(), 0);
    }

    #[test]
    fn another_sip_version_gets_505() {
        // RFC 4475 §3.1.2.16 (badvers.dat): answer 505 rather than drop.
        let mut sh = shard(0, 1);
        let req = String::from_utf8(options("sip:127.0.0.1", "", "z9hG4bK1"))
            .unwrap()
            .replace(
                "OPTIONS sip:127.0.0.1 SIP/2.0",
                "OPTIONS sip:127.0.0.1 SIP/7.0",
            );
        let out = run(&mut sh, udp_peer("127.0.0.1:1"), req.as_bytes());
        let (_, text) = only_transmit(&out);
        assert!(
            text.starts_with("SIP/2.0 505 Version Not Supported\r\n"),
            "{text}"
        );
        // A response with another version is dropped.
        let resp = b"SIP/7.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\r\n";
        assert!(run(&mut sh, udp_peer("127.0.0.1:1"), resp).is_empty());
    }

    /// `options(...)` with `line` inserted before the Max-Forwards line.
    fn with_bad_line(req: &[u8], line: &str) -> String {
        String::from_utf8(req.to_vec()).unwrap().replacen(
            "Max-Forwards:",
            &format!("{line}\r\nMax-Forwards:"),
            1,
        )
    }

    #[test]
    fn a_malformed_header_line_gets_400_naming_it() {
        // RFC 3261 §21.4.1: malformed syntax, the reason phrase naming it; the
        // answer is built from the rest of the request like every other 400.
        let mut sh = shard(0, 1);
        let options = options("sip:127.0.0.1", "", "z9hG4bK1");
        let invite = String::from_utf8(options.clone())
            .unwrap()
            .replace("OPTIONS sip", "INVITE sip")
            .replace("CSeq: 7 OPTIONS", "CSeq: 7 INVITE");
        for (req, line) in [
            (&options[..], "Foo bar baz"),
            (invite.as_bytes(), "Foo bar baz"),
            (&options[..], "Foo bar\r\n folded under it"),
            (&options[..], "X-Not;A-Token: 1"),
            (&options[..], "Subject"),
        ] {
            let broken = with_bad_line(req, line);
            let out = run(&mut sh, udp_peer("198.51.100.7:40000"), broken.as_bytes());
            let (dest, text) = only_transmit(&out);
            assert!(
                text.starts_with("SIP/2.0 400 Bad Header Line\r\n"),
                "{line:?}: {text}"
            );
            // §8.2.6.2: Via, From, Call-ID and CSeq as received, To with our tag.
            assert!(
                text.contains("\r\nVia: SIP/2.0/UDP client.example.com:5070;branch=z9hG4bK1\r\n")
            );
            assert!(text.contains("\r\nFrom: <sip:alice@example.com>;tag=a1\r\n"));
            assert!(text.contains("\r\nTo: <sip:127.0.0.1>;tag="));
            assert!(text.contains("\r\nCall-ID: c1@client\r\n"));
            assert!(!text.contains("Foo"));
            // §18.2.2: no rport, so the sent-by port at the source address.
            assert_eq!(dest, udp_dest("198.51.100.7:5070"));
        }
        assert_eq!(sh.engine_stats().local_replies, 5);
        assert_eq!(sh.stats().dropped, 0);
        assert_eq!(sh.in_flight(), 0);
        // A retransmission gets the same answer, To tag included (§8.2.6.2).
        let broken = with_bad_line(&options, "Foo bar baz");
        let a = only_transmit(&run(&mut sh, udp_peer("127.0.0.1:1"), broken.as_bytes())).1;
        let b = only_transmit(&run(&mut sh, udp_peer("127.0.0.1:1"), broken.as_bytes())).1;
        assert_eq!(a, b);
        // RFC 3581 §4: rport sends it to the source port.
        let req = with_bad_line(
            &self::options("sip:127.0.0.1", ";rport", "z9hG4bK2"),
            "Foo bar baz",
        );
        let (dest, _) = only_transmit(&run(
            &mut sh,
            udp_peer("198.51.100.7:40000"),
            req.as_bytes(),
        ));
        assert_eq!(dest, udp_dest("198.51.100.7:40000"));
    }

    #[test]
    fn a_malformed_header_line_in_an_ack_or_a_response_is_dropped() {
        // RFC 3261 §17.2.1, §17.2.3: an ACK is never answered; §18.1.2: nor is a
        // response.
        let mut sh = shard(0, 1);
        let ack = request("ACK", "sip:127.0.0.1", "z9hG4bK1", None);
        let ack = with_bad_line(&ack, "Foo bar baz");
        assert!(run(&mut sh, udp_peer("127.0.0.1:1"), ack.as_bytes()).is_empty());
        let resp = b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP x;branch=z9hG4bK1\r\nFoo bar baz\r\n\
To: <sip:a@b>;tag=1\r\nFrom: <sip:c@d>;tag=2\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n\
Content-Length: 0\r\n\r\n";
        assert!(run(&mut sh, udp_peer("127.0.0.1:1"), resp).is_empty());
        assert_eq!(sh.stats().dropped, 2);
        assert_eq!(sh.engine_stats().local_replies, 0);
        // The control: the same bad line in a request that is not an ACK.
        let req = with_bad_line(&options("sip:127.0.0.1", "", "z9hG4bK1"), "Foo bar baz");
        assert_answered_bad_header_line(&mut sh, &req);
    }

    /// `req` (with a bad header line) gets `400 Bad Header Line`.
    fn assert_answered_bad_header_line(sh: &mut Shard, req: &str) {
        let (_, text) = only_transmit(&run(sh, udp_peer("127.0.0.1:1"), req.as_bytes()));
        assert!(
            text.starts_with("SIP/2.0 400 Bad Header Line\r\n"),
            "{text}"
        );
    }

    #[test]
    fn a_malformed_header_line_that_may_hide_the_via_is_dropped() {
        // §8.2.6.2: a response's Via values are the request's. Without the top Via
        // there is no one to answer; a bad line that may have been a Via would make
        // the answer's Via set another one, so it would go to the wrong place or
        // be discarded there (§18.1.2).
        let mut sh = shard(0, 1);
        let req = String::from_utf8(options("sip:127.0.0.1", "", "z9hG4bK1")).unwrap();
        let second_via = "Via: SIP/2.0/UDP second.example.com;branch=z9hG4bK2\r\n";
        for broken in [
            // The Via itself lost its colon: no Via left.
            req.replace("Via: SIP/2.0/UDP", "Via SIP/2.0/UDP"),
            // … with another one after it: the top one is gone.
            req.replace("Max-Forwards:", &format!("{second_via}Max-Forwards:"))
                .replace("Via: SIP/2.0/UDP client", "Via SIP/2.0/UDP client"),
            // A compact Via and a line with no name to tell what it was, above a
            // good Via, and a broken one below it.
            req.replace("Via:", "v SIP/2.0/UDP a.example.com\r\nVia:"),
            req.replace("Via:", ": SIP/2.0/UDP a.example.com\r\nVia:"),
            with_bad_line(req.as_bytes(), "Via SIP/2.0/UDP b.example.com"),
            // No Via at all, besides the bad line.
            with_bad_line(req.as_bytes(), "Foo bar baz").replace(
                "Via: SIP/2.0/UDP client.example.com:5070;branch=z9hG4bK1\r\n",
                "",
            ),
            // A top Via that does not decode.
            with_bad_line(req.as_bytes(), "Foo bar baz").replace("SIP/2.0/UDP client", "[bad"),
            // More bad lines than are skipped.
            with_bad_line(req.as_bytes(), "a\r\nb\r\nc\r\nd\r\ne"),
        ] {
            assert_eq!(
                Message::parse(broken.as_bytes()).unwrap_err(),
                ParseError::InvalidHeaderLine,
                "{broken}"
            );
            assert!(
                run(&mut sh, udp_peer("127.0.0.1:1"), broken.as_bytes()).is_empty(),
                "{broken}"
            );
        }
        assert_eq!(sh.stats().dropped, 8);
        assert_eq!(sh.engine_stats().local_replies, 0);
        // The control: a bad line that cannot have been a Via, below a good one,
        // and as many bad lines as are skipped.
        for line in ["Via-Not SIP/2.0/UDP b.example.com", "a\r\nb\r\nc\r\nd"] {
            assert_answered_bad_header_line(&mut sh, &with_bad_line(req.as_bytes(), line));
        }
    }

    #[test]
    fn a_malformed_header_line_over_a_stream_is_answered_on_it_in_step() {
        // The framer reads Content-Length past the bad line (RFC 3261 §18.3), so
        // the bad message is cut where it ends: it gets its 400 on the connection
        // and the message behind it is handled as usual.
        let mut sh = shard(0, 1);
        let conn = ConnId { shard: 0, seq: 9 };
        let from = tcp_peer(conn);
        let bad = with_bad_line(&options("sip:127.0.0.1", "", "z9hG4bK1"), "Foo bar baz");
        let bad = bad.replace(
            "Content-Length: 0\r\n\r\n",
            "Content-Length: 5\r\n\r\nhello",
        );
        let mut stream = bad.into_bytes();
        stream.extend_from_slice(&options("sip:127.0.0.1", "", "z9hG4bK2"));
        let mut framer = crate::sip::Framer::new(sh.max_message_size);
        let mut answers = Vec::new();
        while !stream.is_empty() {
            let crate::sip::Frame::Message(n) = framer.frame(&stream).unwrap() else {
                panic!("not a message: {:?}", String::from_utf8_lossy(&stream));
            };
            let mut out = Outbox::new();
            sh.on_stream_message(Instant::now(), from, &stream[..n], &mut out);
            let (dest, text) = only_transmit(&out);
            assert_eq!(dest, tcp_dest(conn));
            answers.push(text.lines().next().unwrap().to_string());
            stream.drain(..n);
        }
        assert_eq!(answers, ["SIP/2.0 400 Bad Header Line", "SIP/2.0 200 OK"]);
    }

    #[test]
    fn oversized_messages_are_dropped() {
        let mut sh = shard(0, 1);
        let mut req = options("sip:127.0.0.1", "", "z9hG4bK1");
        req.resize(sh.max_message_size + 1, b'\n');
        assert!(run(&mut sh, udp_peer("127.0.0.1:1"), &req).is_empty());
    }
}
