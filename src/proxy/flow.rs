//! Flow tokens in Record-Route (the idea of RFC 5626 §5.3): when a dialog's caller
//! or callee sits behind a NAT, the address in its Contact cannot be reached, so
//! the user part of our Record-Route URI carries the flow (transport, source
//! address, connection) it is reachable on. A request that later comes back
//! through that Route value from the other side goes to the flow instead of the
//! Request-URI. Tokens carry a MAC under a per-process key: nobody can forge one
//! to make the proxy send somewhere of their choosing.

use std::hash::{BuildHasher, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use smallvec::SmallVec;

use crate::io::Transport;
use crate::io::{ConnId, Dest, Peer};

/// Where a UA behind a NAT is reachable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Flow {
    pub transport: Transport,
    pub addr: SocketAddr,
    /// The connection, for TCP and TLS.
    pub conn: Option<ConnId>,
    /// Our listener the flow arrived on (the UDP socket to answer from).
    pub listener: u16,
}

impl Flow {
    /// The flow a message arrived on.
    pub(crate) fn of_peer(p: &Peer) -> Flow {
        Flow {
            transport: p.transport,
            addr: p.addr,
            conn: p.conn,
            listener: p.listener,
        }
    }

    /// Where to send on this flow: the UDP source address, or the connection with
    /// a new one to the source address as fallback (RFC 3261 §18.2.2).
    pub(crate) fn dest(&self) -> Dest {
        match (self.transport, self.conn) {
            (Transport::Udp, _) => Dest::Udp {
                listener: self.listener,
                to: self.addr,
            },
            (t, Some(conn)) => Dest::Conn {
                conn,
                transport: t,
                fallback: Some(self.addr),
            },
            (t, None) => Dest::Stream {
                transport: t,
                to: self.addr,
            },
        }
    }
}

/// The key tokens are authenticated with; the same on every shard of a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FlowKey(pub [u64; 4]);

impl FlowKey {
    fn mac(&self, text: &[u8]) -> u64 {
        let mut h = ahash::RandomState::with_seeds(self.0[0], self.0[1], self.0[2], self.0[3])
            .build_hasher();
        h.write(text);
        h.finish()
    }

    /// A keyed 32-bit hash of a From tag (an absent tag hashes as the empty one).
    fn tag_hash(&self, tag: Option<&[u8]>) -> u32 {
        let mut h = ahash::RandomState::with_seeds(self.0[3], self.0[2], self.0[1], self.0[0])
            .build_hasher();
        h.write(tag.unwrap_or_default());
        h.finish() as u32
    }
}

/// What our Record-Route carries for one dialog: the flows of its two ends (`caller`
/// the side that sent the dialog-creating request, `callee` the side it reached;
/// either absent when that end is reached at its Contact) and a keyed hash of the
/// caller's From tag, which tells the direction of a later request.
///
/// The direction is read from the request's From tag, not from the flow it
/// arrived on: a phone sends its in-dialog requests to the Record-Route address,
/// which is often not the address it registered through (a wildcard listener
/// advertises one interface address), so they come on a new connection that
/// matches neither end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Token {
    pub caller: Option<Flow>,
    pub callee: Option<Flow>,
    caller_tag: u32,
}

impl Token {
    /// The token of a dialog created by a request whose From tag is `caller_tag`.
    pub(crate) fn new(
        key: &FlowKey,
        caller: Option<Flow>,
        callee: Option<Flow>,
        caller_tag: Option<&[u8]>,
    ) -> Token {
        Token {
            caller,
            callee,
            caller_tag: key.tag_hash(caller_tag),
        }
    }

    /// Writes `f` CALLER `.` CALLEE `.` TAG `.` MAC, all lowercase hex.
    pub(crate) fn encode(&self, key: &FlowKey, out: &mut SmallVec<[u8; 96]>) {
        let start = out.len();
        out.push(b'f');
        encode_flow(self.caller.as_ref(), out);
        out.push(b'.');
        encode_flow(self.callee.as_ref(), out);
        out.push(b'.');
        push_hex(out, u64::from(self.caller_tag), 8);
        let mac = key.mac(&out[start..]);
        out.push(b'.');
        push_hex(out, mac, 16);
    }

    /// Reads a token written by [`Token::encode`]: `None` when it is not one or its
    /// MAC is wrong.
    pub(crate) fn decode(key: &FlowKey, token: &[u8]) -> Option<Token> {
        let rest = token.strip_prefix(b"f")?;
        let dot = token.iter().rposition(|&b| b == b'.')?;
        let (signed, mac) = (token.get(..dot)?, token.get(dot + 1..)?);
        if mac.len() != 16 || hex(mac)? != key.mac(signed) {
            return None;
        }
        let mut parts = rest.get(..dot - 1)?.split(|&b| b == b'.');
        let caller = decode_flow(parts.next()?)?;
        let callee = decode_flow(parts.next()?)?;
        let tag = parts.next().filter(|t| t.len() == 8).and_then(hex)?;
        if parts.next().is_some() {
            return None;
        }
        Some(Token {
            caller,
            callee,
            caller_tag: u32::try_from(tag).ok()?,
        })
    }

    /// The flow a request of this dialog whose From tag is `from_tag` goes to: the
    /// callee's when the caller sent it, the caller's otherwise (the callee's own
    /// tag, or any of several callees' after forking, RFC 3261 §12.1.1).
    pub(crate) fn next_flow(&self, key: &FlowKey, from_tag: Option<&[u8]>) -> Option<Flow> {
        if key.tag_hash(from_tag) == self.caller_tag {
            self.callee
        } else {
            self.caller
        }
    }
}

fn encode_flow(f: Option<&Flow>, out: &mut SmallVec<[u8; 96]>) {
    let Some(f) = f else {
        out.push(b'n');
        return;
    };
    out.push(match f.transport {
        Transport::Udp => b'u',
        Transport::Tcp => b't',
        Transport::Tls => b's',
    });
    push_hex(out, u64::from(f.listener), 4);
    match f.addr.ip() {
        IpAddr::V4(ip) => {
            out.push(b'4');
            push_hex(out, u64::from(u32::from(ip)), 8);
        }
        IpAddr::V6(ip) => {
            out.push(b'6');
            let v = u128::from(ip);
            push_hex(out, (v >> 64) as u64, 16);
            push_hex(out, v as u64, 16);
        }
    }
    push_hex(out, u64::from(f.addr.port()), 4);
    if let Some(c) = f.conn {
        out.push(b'c');
        push_hex(out, u64::from(c.shard), 4);
        push_hex(out, c.seq, 16);
    }
}

fn decode_flow(s: &[u8]) -> Option<Option<Flow>> {
    if s == b"n" {
        return Some(None);
    }
    let transport = match s.first()? {
        b'u' => Transport::Udp,
        b't' => Transport::Tcp,
        b's' => Transport::Tls,
        _ => return None,
    };
    let listener = u16::try_from(hex(s.get(1..5)?)?).ok()?;
    let (ip, rest): (IpAddr, &[u8]) = match s.get(5)? {
        b'4' => (
            IpAddr::V4(Ipv4Addr::from(u32::try_from(hex(s.get(6..14)?)?).ok()?)),
            s.get(14..)?,
        ),
        b'6' => {
            let hi = u128::from(hex(s.get(6..22)?)?);
            let lo = u128::from(hex(s.get(22..38)?)?);
            (IpAddr::V6(Ipv6Addr::from(hi << 64 | lo)), s.get(38..)?)
        }
        _ => return None,
    };
    let port = u16::try_from(hex(rest.get(..4)?)?).ok()?;
    let conn = match rest.get(4..)? {
        [] => None,
        [b'c', c @ ..] if c.len() == 20 => Some(ConnId {
            shard: u16::try_from(hex(c.get(..4)?)?).ok()?,
            seq: hex(c.get(4..)?)?,
        }),
        _ => return None,
    };
    Some(Some(Flow {
        transport,
        addr: SocketAddr::new(ip, port),
        conn,
        listener,
    }))
}

fn push_hex(out: &mut SmallVec<[u8; 96]>, v: u64, digits: usize) {
    for i in (0..digits).rev() {
        out.push(b"0123456789abcdef"[((v >> (4 * i)) & 0xf) as usize]);
    }
}

fn hex(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 16 {
        return None;
    }
    s.iter().try_fold(0u64, |acc, &b| {
        let d = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            _ => return None,
        };
        Some(acc << 4 | u64::from(d))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: FlowKey = FlowKey([1, 2, 3, 4]);

    fn udp(addr: &str) -> Flow {
        Flow {
            transport: Transport::Udp,
            addr: addr.parse().unwrap(),
            conn: None,
            listener: 0,
        }
    }

    #[test]
    fn round_trip_v4_v6_and_connections() {
        let a = udp("198.51.100.7:40000");
        let b = Flow {
            transport: Transport::Tls,
            addr: "[2001:db8::7]:51000".parse().unwrap(),
            conn: Some(ConnId { shard: 1, seq: 99 }),
            listener: 3,
        };
        for (x, y) in [(Some(a), Some(b)), (Some(a), None), (None, Some(b))] {
            let tok = Token::new(&KEY, x, y, Some(b"caller-tag"));
            let mut t = SmallVec::new();
            tok.encode(&KEY, &mut t);
            assert!(t.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'.'));
            assert_eq!(Token::decode(&KEY, &t), Some(tok));
        }
    }

    #[test]
    fn forged_or_other_key_tokens_are_refused() {
        let mut t = SmallVec::new();
        Token::new(&KEY, Some(udp("198.51.100.7:40000")), None, None).encode(&KEY, &mut t);
        assert!(Token::decode(&FlowKey([9, 9, 9, 9]), &t).is_none());
        let mut forged = t.to_vec();
        forged[8] = if forged[8] == b'0' { b'1' } else { b'0' };
        assert!(Token::decode(&KEY, &forged).is_none());
        assert!(Token::decode(&KEY, b"alice").is_none());
        assert!(Token::decode(&KEY, b"f").is_none());
    }

    #[test]
    fn the_direction_comes_from_the_from_tag() {
        let a = udp("198.51.100.7:40000");
        let b = udp("203.0.113.9:5060");
        let tok = Token::new(&KEY, Some(a), Some(b), Some(b"alice-tag"));
        // The caller's requests go to the callee, whatever flow they came on.
        assert_eq!(tok.next_flow(&KEY, Some(b"alice-tag")), Some(b));
        // The callee's (its own tag in From) go to the caller.
        assert_eq!(tok.next_flow(&KEY, Some(b"bob-tag")), Some(a));
        // An end without a flow is reached by the Request-URI.
        let one = Token::new(&KEY, Some(a), None, Some(b"alice-tag"));
        assert_eq!(one.next_flow(&KEY, Some(b"alice-tag")), None);
        assert_eq!(one.next_flow(&KEY, Some(b"bob-tag")), Some(a));
    }
}
