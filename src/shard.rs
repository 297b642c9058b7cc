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
use crate::sip::Message;

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
    Stream { transport: Transport, to: SocketAddr },
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

/// The RFC 3261 §8.1.1.7 magic cookie.
const MAGIC_COOKIE: &[u8] = b"z9hG4bK";

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
    listen_transports: Vec<Transport>,
    max_message_size: usize,
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
            listen_transports: cfg.listen.iter().map(|l| l.transport).collect(),
            max_message_size: cfg.max_message_size,
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
            branch
                .and_then(branch_shard)
                .filter(|&s| s < self.shards)
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

    fn handle(&mut self, _now: Instant, _from: Peer, _msg: &Message<'_>, _out: &mut Outbox) {}
}

/// The top Via's `branch` parameter.
fn top_branch<'a>(_msg: &Message<'a>) -> Option<&'a [u8]> {
    None
}

/// The shard named in a branch this proxy generated: `z9hG4bK` `cs` DIGITS `.` …
/// (provisional; the proxy issue writes these).
pub fn branch_shard(branch: &[u8]) -> Option<ShardId> {
    let rest = branch.strip_prefix(MAGIC_COOKIE)?.strip_prefix(b"cs")?;
    let end = rest.iter().position(|&b| b == b'.')?;
    crate::sip::text::parse_u32(rest.get(..end)?).map(|n| n as usize)
}
