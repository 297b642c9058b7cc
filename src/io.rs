//! The vocabulary every layer shares, at the bottom of the module graph: transports,
//! where a message came from ([`Peer`]) and where one goes ([`Dest`]), connections,
//! and the [`Outbox`] a sans-IO part fills for the runtime. Nothing here parses SIP
//! or touches a socket.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;

/// A SIP transport (RFC 3261 §18; the Via transport token).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
    Tls,
}

impl Transport {
    /// True for transports that run over a connection (TCP, TLS).
    pub fn is_reliable(self) -> bool {
        !matches!(self, Transport::Udp)
    }

    /// The port a sent-by or URI without a port means (RFC 3261 §18.2.2, §19.1.2).
    pub fn default_port(self) -> u16 {
        match self {
            Transport::Udp | Transport::Tcp => 5060,
            Transport::Tls => 5061,
        }
    }

    /// The Via transport token (RFC 3261 §20.42).
    pub fn via_token(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
        }
    }

    /// The lowercase name used on the command line and in `transport=`.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

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
    /// Index in `Config::listen` of the socket the message arrived on. Every core binds
    /// every listener in the same order, so the index names the same local address on
    /// every core. [`Peer::OUTBOUND`] for connections this proxy opened.
    pub listener: u16,
    /// The connection, for TCP and TLS.
    pub conn: Option<ConnId>,
}

impl Peer {
    /// The `listener` of a connection this proxy opened.
    pub const OUTBOUND: u16 = u16::MAX;

    /// A datagram's source `addr`, received on UDP listener `listener`.
    pub fn udp(addr: SocketAddr, listener: u16) -> Peer {
        Peer {
            transport: Transport::Udp,
            addr,
            listener,
            conn: None,
        }
    }
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

/// What a shard wants done after a call: transmits (in one reused buffer) and mesh
/// messages. The runtime drains it and calls [`Outbox::clear`].
#[derive(Debug)]
pub struct Outbox<M> {
    buf: Vec<u8>,
    transmits: Vec<Transmit>,
    mesh: Vec<(ShardId, M)>,
    /// Host names to resolve; the answers come back through `Shard::on_resolved`.
    resolve: Vec<String>,
}

impl<M> Default for Outbox<M> {
    fn default() -> Self {
        Outbox {
            buf: Vec::new(),
            transmits: Vec::new(),
            mesh: Vec::new(),
            resolve: Vec::new(),
        }
    }
}

impl<M> Outbox<M> {
    /// An empty outbox.
    pub fn new() -> Self {
        Self::default()
    }

    /// Forgets everything, keeping the allocations.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.transmits.clear();
        self.mesh.clear();
        self.resolve.clear();
    }

    /// True when there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.transmits.is_empty() && self.mesh.is_empty() && self.resolve.is_empty()
    }

    /// Asks the runtime to resolve `name` (A/AAAA through the system resolver).
    pub fn resolve(&mut self, name: &str) {
        self.resolve.push(name.to_string());
    }

    /// Takes the names to resolve out.
    pub fn drain_resolve(&mut self) -> std::vec::Drain<'_, String> {
        self.resolve.drain(..)
    }

    /// How many transmits there are.
    pub fn transmit_count(&self) -> usize {
        self.transmits.len()
    }

    /// The transmits, in order.
    pub fn transmits(&self) -> impl Iterator<Item = (Dest, &[u8])> + '_ {
        self.transmits
            .iter()
            .map(|t| (t.dest, self.buf.get(t.range.clone()).unwrap_or(&[])))
    }

    /// Takes the mesh messages out.
    pub fn drain_mesh(&mut self) -> std::vec::Drain<'_, (ShardId, M)> {
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
    pub fn mesh(&mut self, to: ShardId, msg: M) {
        self.mesh.push((to, msg));
    }
}

/// An IP network, `ADDR/PREFIX`, for `--relay`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

/// A malformed `ADDR/PREFIX`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected ADDR/PREFIX (e.g. 10.0.0.0/8 or 2001:db8::/32), got {0:?}")]
pub struct CidrError(pub String);

impl std::str::FromStr for Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Cidr, CidrError> {
        let err = || CidrError(s.to_string());
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a.parse().map_err(|_| err())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p.parse::<u8>().ok().filter(|&p| p <= max).ok_or_else(err)?,
            None => max,
        };
        Ok(Cidr { addr, prefix })
    }
}

impl Cidr {
    /// True when `ip` is inside the network (an IPv4-mapped IPv6 address counts as
    /// its IPv4 address).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_contains() {
        let n: Cidr = "127.0.0.0/8".parse().unwrap();
        assert!(n.contains("127.1.2.3".parse().unwrap()));
        assert!(n.contains("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!n.contains("128.0.0.1".parse().unwrap()));
        let n: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(n.contains("2001:db8:1::5".parse().unwrap()));
        assert!(!n.contains("2001:db9::5".parse().unwrap()));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("8.8.8.8".parse().unwrap()));
        let one: Cidr = "192.0.2.1".parse().unwrap();
        assert!(one.contains("192.0.2.1".parse().unwrap()));
        assert!(!one.contains("192.0.2.2".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("nope/8".parse::<Cidr>().is_err());
    }
}
