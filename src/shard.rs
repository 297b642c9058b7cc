//! The sans-IO core of one executor (DESIGN.md §2): bytes and time go in, bytes to
//! send and messages for other shards come out through an [`Outbox`]. Nothing here
//! touches a socket, a clock or an executor, so every behaviour is unit-tested
//! without a network.
//!
//! Ownership (DESIGN.md §3): a request belongs to shard `hash(top Via branch) % N`; a
//! message that arrives on another core is forwarded there over the mesh untouched.

use std::hash::{BuildHasher, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::time::Instant;

use crate::config::{Config, Transport};
use crate::sip::header::HeaderName;
use crate::sip::text::trim;
use crate::sip::via::MAGIC_COOKIE;
use crate::sip::{write_response, Host, Message, Method, ParseError, Uri, Via};

/// Index of a shard (= executor = core), `0..N`.
pub type ShardId = usize;

/// A stream connection, named by the shard that owns it (the one that accepted or
/// opened it) and a number unique within that shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnId {
    pub shard: u16,
    pub seq: u64,
}

/// Where a message came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    pub transport: Transport,
    /// The remote address (the packet's source, or the connection's peer).
    pub addr: SocketAddr,
    /// Index in [`Config::listen`] of the socket the message arrived on. Every core binds
    /// every listener in the same order, so the index names the same local address on
    /// every core. [`Peer::OUTBOUND`] for connections this proxy opened.
    pub listener: u16,
    /// The connection, for TCP and TLS.
    pub conn: Option<ConnId>,
}

impl Peer {
    /// The `listener` of a connection this proxy opened.
    pub const OUTBOUND: u16 = u16::MAX;
}

/// Where a transmit goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dest {
    /// A datagram sent from the UDP socket of listener `listener`.
    Udp { listener: u16, to: SocketAddr },
    /// Bytes on an existing connection. If it has closed meanwhile, open a new one to
    /// `fallback` (RFC 3261 §18.2.2: received address and sent-by port).
    Conn {
        conn: ConnId,
        transport: Transport,
        fallback: Option<SocketAddr>,
    },
    /// Bytes over a pooled (reused or newly opened) connection to `to`.
    Stream {
        transport: Transport,
        to: SocketAddr,
    },
}

/// One message to send: a destination and a range of the outbox buffer.
#[derive(Debug, Clone)]
struct Transmit {
    dest: Dest,
    range: Range<usize>,
}

/// A message between shards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MeshMsg {
    /// Handle this message as if it had arrived on the receiving shard.
    Inbound { peer: Peer, bytes: Vec<u8> },
    /// Write these bytes on connection `conn`, owned by the receiving shard.
    Write {
        conn: ConnId,
        transport: Transport,
        fallback: Option<SocketAddr>,
        bytes: Vec<u8>,
    },
    /// A question for the shard that owns `key` (location lookups, later issues).
    Request { id: u64, key: Vec<u8> },
    /// The answer to a [`MeshMsg::Request`].
    Response { id: u64, value: Vec<u8> },
}

/// What a shard wants done after a call: transmits (in one reused buffer) and mesh
/// messages. The runtime drains it and calls [`Outbox::clear`].
#[derive(Debug, Default)]
pub struct Outbox {
    buf: Vec<u8>,
    transmits: Vec<Transmit>,
    mesh: Vec<(ShardId, MeshMsg)>,
}

impl Outbox {
    /// An empty outbox.
    pub fn new() -> Outbox {
        Outbox::default()
    }

    /// Forgets everything, keeping the allocations.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.transmits.clear();
        self.mesh.clear();
    }

    /// True when there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.transmits.is_empty() && self.mesh.is_empty()
    }

    /// The transmits, in order.
    pub fn transmits(&self) -> impl Iterator<Item = (Dest, &[u8])> + '_ {
        self.transmits
            .iter()
            .map(|t| (t.dest, self.buf.get(t.range.clone()).unwrap_or(&[])))
    }

    /// Takes the mesh messages out.
    pub fn drain_mesh(&mut self) -> std::vec::Drain<'_, (ShardId, MeshMsg)> {
        self.mesh.drain(..)
    }

    /// Appends a transmit whose bytes `write` appends to the buffer.
    pub fn send_with(&mut self, dest: Dest, write: impl FnOnce(&mut Vec<u8>)) {
        let start = self.buf.len();
        write(&mut self.buf);
        self.transmits.push(Transmit {
            dest,
            range: start..self.buf.len(),
        });
    }

    /// Appends a transmit written by `write`, unless it fails (then nothing is kept).
    pub fn try_send_with<E>(
        &mut self,
        dest: Dest,
        write: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
    ) -> Result<(), E> {
        let start = self.buf.len();
        match write(&mut self.buf) {
            Ok(()) => {
                self.transmits.push(Transmit {
                    dest,
                    range: start..self.buf.len(),
                });
                Ok(())
            }
            Err(e) => {
                self.buf.truncate(start);
                Err(e)
            }
        }
    }

    /// Appends a mesh message for shard `to`.
    pub fn mesh(&mut self, to: ShardId, msg: MeshMsg) {
        self.mesh.push((to, msg));
    }
}

/// Counters a shard keeps about itself.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ShardStats {
    /// Messages handled on the shard they arrived on.
    pub local: u64,
    /// Messages forwarded to their owner over the mesh.
    pub forwarded: u64,
    /// Messages handled after a mesh hop.
    pub from_mesh: u64,
    /// Requests answered with 400.
    pub bad_requests: u64,
    /// OPTIONS addressed to the proxy and answered 200.
    pub options_answered: u64,
    /// Messages dropped (unparseable, malformed responses, responses not ours).
    pub dropped: u64,
}

/// The fixed seeds of the ownership hash: every core must agree on it.
const OWNER_SEEDS: [u64; 4] = [
    0x243f_6a88_85a3_08d3,
    0x1319_8a2e_0370_7344,
    0xa409_3822_299f_31d0,
    0x082e_fa98_ec4e_6c89,
];

/// Methods listed in `Allow` when the proxy answers OPTIONS itself: everything it
/// handles or forwards.
pub const ALLOW: &[u8] =
    b"INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, PRACK, UPDATE, INFO, SUBSCRIBE, NOTIFY, REFER, MESSAGE, PUBLISH";
/// Bodies the proxy itself accepts (RFC 3261 §11.2).
pub const ACCEPT: &[u8] = b"application/sdp";
/// Option tags the proxy supports; none yet (the registrar issue adds path/outbound).
pub const SUPPORTED: &[u8] = b"";

/// The sans-IO core of one executor.
#[derive(Debug)]
pub struct Shard {
    id: ShardId,
    shards: usize,
    /// IP addresses this host answers on (for "is this URI us?").
    local_ips: Vec<IpAddr>,
    /// Ports of our listeners.
    local_ports: Vec<u16>,
    domains: Vec<String>,
    max_message_size: usize,
    udp_mtu: usize,
    hasher: ahash::RandomState,
    stats: ShardStats,
}

impl Shard {
    /// The shard `id` of `shards`. `local_ips` are the addresses the host answers on;
    /// wildcard listen addresses are expanded by the caller.
    pub fn new(id: ShardId, cfg: &Config, local_ips: Vec<IpAddr>) -> Shard {
        let mut local_ports: Vec<u16> = cfg.listen.iter().map(|l| l.addr.port()).collect();
        local_ports.sort_unstable();
        local_ports.dedup();
        Shard {
            id,
            shards: cfg.cores.max(1),
            local_ips,
            local_ports,
            domains: cfg.domains.clone(),
            max_message_size: cfg.max_message_size,
            udp_mtu: cfg.udp.mtu,
            hasher: ahash::RandomState::with_seeds(
                OWNER_SEEDS[0],
                OWNER_SEEDS[1],
                OWNER_SEEDS[2],
                OWNER_SEEDS[3],
            ),
            stats: ShardStats::default(),
        }
    }

    /// This shard's index.
    pub fn id(&self) -> ShardId {
        self.id
    }

    /// The counters.
    pub fn stats(&self) -> ShardStats {
        self.stats
    }

    /// Work that has not finished (transactions); shutdown waits for it to drain.
    pub fn in_flight(&self) -> usize {
        0
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
            MeshMsg::Inbound { peer, bytes } => {
                self.stats.from_mesh += 1;
                self.on_message(now, peer, &bytes, true, out);
            }
            // Writes are the runtime's business; requests and responses have no users yet.
            MeshMsg::Write { .. } | MeshMsg::Request { .. } | MeshMsg::Response { .. } => {}
        }
    }

    /// The periodic tick (timer wheel, DESIGN.md §4).
    pub fn on_tick(&mut self, _now: Instant, _out: &mut Outbox) {}

    /// The shard that owns `msg`: for a request the hash of its top Via branch (or of
    /// Call-ID and CSeq number when the branch is not RFC 3261's), for a response the
    /// shard named in our own Via branch. `None` when the message is not ours to handle.
    pub fn owner_of(&self, msg: &Message<'_>) -> Option<ShardId> {
        if self.shards == 1 {
            return Some(0);
        }
        let branch = top_branch(msg);
        if msg.is_request() {
            let mut h = self.hasher.build_hasher();
            match branch {
                Some(b) if b.len() > MAGIC_COOKIE.len() && b.starts_with(MAGIC_COOKIE) => {
                    h.write(b)
                }
                // RFC 2543 peers: fall back to the transaction's other identifiers.
                _ => {
                    h.write(msg.header(HeaderName::CallId).map(trim).unwrap_or(&[]));
                    let cseq = msg.header(HeaderName::CSeq).unwrap_or(&[]);
                    let num = trim(cseq).split(|&b| b == b' ').next().unwrap_or(&[]);
                    h.write(num);
                }
            }
            Some((h.finish() % self.shards as u64) as usize)
        } else {
            branch.and_then(branch_shard).filter(|&s| s < self.shards)
        }
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
            self.stats.dropped += 1;
            return;
        }
        let msg = match Message::parse(bytes) {
            Ok(m) => m,
            Err(_) => {
                // Without a parsed start line and Via there is no one to answer.
                self.stats.dropped += 1;
                return;
            }
        };
        match self.owner_of(&msg) {
            Some(owner) if owner != self.id && !hopped => {
                self.stats.forwarded += 1;
                out.mesh(
                    owner,
                    MeshMsg::Inbound {
                        peer: from,
                        bytes: bytes.to_vec(),
                    },
                );
            }
            Some(_) => {
                if !hopped {
                    self.stats.local += 1;
                }
                self.handle(now, from, &msg, out);
            }
            None => self.stats.dropped += 1,
        }
    }

    fn handle(&mut self, _now: Instant, from: Peer, msg: &Message<'_>, out: &mut Outbox) {
        let Some(method) = msg.method() else {
            // A response: no client transaction of ours exists yet, so it is not ours
            // (RFC 3261 §16.7 / §18.1.2); malformed ones are dropped silently too.
            self.stats.dropped += 1;
            return;
        };
        let via = msg.via().ok();
        if let Err(e) = check_request(msg, method) {
            // An ACK is never answered (RFC 3261 §17.2.3 / §16.7): drop a bad one.
            if method == Method::Ack {
                self.stats.dropped += 1;
                return;
            }
            self.stats.bad_requests += 1;
            self.respond(
                from,
                via.as_ref(),
                msg,
                400,
                e.reason().as_bytes(),
                &[],
                out,
            );
            return;
        }
        match method {
            Method::Options if msg.request_uri().is_some_and(|u| self.is_me(u)) => {
                self.stats.options_answered += 1;
                let extra: [(&str, &[u8]); 3] = [
                    ("Allow", ALLOW),
                    ("Accept", ACCEPT),
                    ("Supported", SUPPORTED),
                ];
                self.respond(from, via.as_ref(), msg, 200, b"OK", &extra, out);
            }
            // Routing other requests is the proxy issue's job.
            _ => self.stats.dropped += 1,
        }
    }

    /// Writes a response to `req` and addresses it (RFC 3261 §18.2.2, RFC 3581 §4).
    #[allow(clippy::too_many_arguments)]
    fn respond(
        &self,
        from: Peer,
        via: Option<&Via<'_>>,
        req: &Message<'_>,
        code: u16,
        reason: &[u8],
        extra: &[(&str, &[u8])],
        out: &mut Outbox,
    ) {
        let tag = self.to_tag(req);
        let dest = response_dest(from, via);
        if let Err(e) = out.try_send_with(dest, |buf| {
            write_response(req, code, reason, Some(&tag), extra, buf)
        }) {
            tracing::debug!(error = %e, code, "response not written");
        }
    }

    /// A To tag for a response this element generates statelessly: the same request
    /// (and its retransmissions) always gets the same tag (RFC 3261 §8.2.6.2, §16.6).
    fn to_tag(&self, req: &Message<'_>) -> [u8; 16] {
        let mut h = self.hasher.build_hasher();
        h.write(req.header(HeaderName::CallId).map(trim).unwrap_or(&[]));
        h.write(req.header(HeaderName::CSeq).map(trim).unwrap_or(&[]));
        h.write(top_branch(req).unwrap_or(&[]));
        let v = h.finish();
        let mut tag = [0u8; 16];
        for (i, b) in tag.iter_mut().enumerate() {
            *b = b"0123456789abcdef"[((v >> (60 - 4 * i)) & 0xf) as usize];
        }
        tag
    }

    /// True when a Request-URI addresses this proxy itself: no user part, the host one
    /// of our addresses or domains, the port (or its default) one we listen on.
    pub fn is_me(&self, request_uri: &[u8]) -> bool {
        let Ok(uri) = Uri::parse(request_uri) else {
            return false;
        };
        let Some(sip) = uri.as_sip() else {
            return false;
        };
        if sip.user.is_some() {
            return false;
        }
        let host_ok = match sip.host {
            Host::Domain(d) => self.domains.iter().any(|ours| ours.eq_ignore_ascii_case(d)),
            Host::V4(_) | Host::V6(_) => {
                sip.host.ip().is_some_and(|ip| self.local_ips.contains(&ip))
            }
        };
        host_ok && self.local_ports.contains(&sip.port_or_default())
    }

    /// How a request of `len` bytes goes to `to` over `transport`: a UDP request
    /// larger than `--udp-mtu` goes over TCP instead (RFC 3261 §18.1.1).
    pub fn request_dest(
        &self,
        transport: Transport,
        to: SocketAddr,
        listener: u16,
        len: usize,
    ) -> Dest {
        match transport {
            Transport::Udp if len > self.udp_mtu => Dest::Stream {
                transport: Transport::Tcp,
                to,
            },
            Transport::Udp => Dest::Udp { listener, to },
            t => Dest::Stream { transport: t, to },
        }
    }
}

/// Checks what a request must carry before anything can be done with it (RFC 3261
/// §8.1.1: Via, To, From, Call-ID, CSeq, Max-Forwards; §8.2.1 and §20.16: the CSeq
/// method equals the Request-Line's). The error names the faulty element.
fn check_request(msg: &Message<'_>, method: Method<'_>) -> Result<(), ParseError> {
    if let Some(uri) = msg.request_uri() {
        Uri::parse(uri).map_err(|_| ParseError::InvalidRequestUri)?;
    }
    let via = msg.via()?;
    if !via.is_sip_2_0() {
        return Err(ParseError::InvalidVia);
    }
    msg.from()?;
    msg.to()?;
    msg.call_id()?;
    let cseq = msg.cseq()?;
    if cseq.method != method {
        return Err(ParseError::CSeqMethodMismatch);
    }
    msg.max_forwards()?;
    Ok(())
}

/// Where a response to a request from `from` goes (RFC 3261 §18.2.2, RFC 3581 §4).
///
/// Over a connection: back on that connection, or, if it has closed, a new one to
/// the source address and the sent-by port. Over UDP: to the source address (the
/// `received` a server adds whenever sent-by differs from it), at the source port
/// when the client asked for `rport`, otherwise the sent-by port. `maddr`
/// (multicast) is not supported and is ignored.
pub fn response_dest(from: Peer, via: Option<&Via<'_>>) -> Dest {
    let sent_by_port = via
        .and_then(|v| v.sent_by.port)
        .unwrap_or_else(|| from.transport.default_port());
    match from.conn {
        Some(conn) => Dest::Conn {
            conn,
            transport: from.transport,
            fallback: via.map(|_| SocketAddr::new(from.addr.ip(), sent_by_port)),
        },
        None => {
            let port = match via {
                Some(v) if v.rport().is_none() => sent_by_port,
                // rport asked for, or no usable Via: answer where the request came from.
                _ => from.addr.port(),
            };
            Dest::Udp {
                listener: from.listener,
                to: SocketAddr::new(from.addr.ip(), port),
            }
        }
    }
}

/// The top Via's `branch` parameter.
fn top_branch<'a>(msg: &Message<'a>) -> Option<&'a [u8]> {
    msg.top_via()
        .and_then(|v| Via::parse(v).ok())
        .and_then(|v| v.branch())
}

/// The shard named in a branch this proxy generated: `z9hG4bK` `cs` DIGITS `.` …
/// (provisional; the proxy issue writes these).
pub fn branch_shard(branch: &[u8]) -> Option<ShardId> {
    let rest = branch.strip_prefix(MAGIC_COOKIE)?.strip_prefix(b"cs")?;
    let end = rest.iter().position(|&b| b == b'.')?;
    crate::sip::text::parse_u32(rest.get(..end)?).map(|n| n as usize)
}
