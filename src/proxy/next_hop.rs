//! Where a request goes next: the URI that names the next hop (§16.6 step 7) and
//! its transport, host and port (RFC 3263 §4.1–4.2 for explicit transports, ports
//! and IP literals; NAPTR/SRV lookups come with DNS support).

use std::net::{IpAddr, SocketAddr};

use crate::config::Transport;
use crate::sip::error::ParseError;
use crate::sip::host::Host;
use crate::sip::text::eq_ic;
use crate::sip::uri::{SipUri, Uri};

/// The next hop of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NextHop<'a> {
    pub transport: Transport,
    /// `maddr` when the URI has one, else its host.
    pub host: Host<'a>,
    pub port: u16,
}

impl NextHop<'_> {
    /// The socket address, when the host is an IP literal (else it needs resolving).
    pub fn addr(&self) -> Option<SocketAddr> {
        self.host.ip().map(|ip| SocketAddr::new(ip, self.port))
    }
}

/// Why a URI cannot be sent to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NextHopError {
    /// Not a SIP or SIPS URI (a tel: URI needs a Route or a translation first).
    #[error("not a SIP URI")]
    NotSip,
    /// A `transport=` the proxy does not speak (SCTP, WS).
    #[error("unsupported transport")]
    UnsupportedTransport,
    /// The URI or its `maddr` is malformed.
    #[error("malformed URI")]
    Malformed(#[from] ParseError),
}

/// The next hop for `uri` (the first Route value if it is a loose router, else
/// the Request-URI — the caller picks, §16.6 step 7).
///
/// Transport: the `transport` parameter; `sips` means TLS (§26.2.2: a SIPS URI
/// over `transport=tcp` is TLS too); otherwise UDP (RFC 3263 §4.1 for a numeric
/// host or explicit port). Host: `maddr` overrides the host (§19.1.1). Port: as
/// written, else the transport's default.
pub fn next_hop<'a>(uri: &SipUri<'a>) -> Result<NextHop<'a>, NextHopError> {
    let proto = match uri.transport() {
        None if uri.secure => Transport::Tls,
        None => Transport::Udp,
        Some(t) if eq_ic(t, b"udp") && !uri.secure => Transport::Udp,
        Some(t) if eq_ic(t, b"tcp") => {
            if uri.secure {
                Transport::Tls
            } else {
                Transport::Tcp
            }
        }
        Some(t) if eq_ic(t, b"tls") => Transport::Tls,
        Some(_) => return Err(NextHopError::UnsupportedTransport),
    };
    let host = match uri.maddr() {
        Some(m) => Host::parse(m)?,
        None => uri.host,
    };
    Ok(NextHop {
        transport: proto,
        host,
        port: uri.port.unwrap_or(proto.default_port()),
    })
}

/// [`next_hop`] for a URI given as text.
pub fn next_hop_of(uri: &[u8]) -> Result<NextHop<'_>, NextHopError> {
    match Uri::parse(uri)? {
        Uri::Sip(u) => next_hop(&u),
        _ => Err(NextHopError::NotSip),
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
    fn transport_selection() {
        // RFC 3263 §4.1 / RFC 3261 §19.1.2 defaults.
        let h = next_hop_of(b"sip:bob@192.0.2.1").unwrap();
        assert_eq!((h.transport, h.port), (Transport::Udp, 5060));
        let h = next_hop_of(b"sip:bob@192.0.2.1:5070;transport=TCP").unwrap();
        assert_eq!((h.transport, h.port), (Transport::Tcp, 5070));
        let h = next_hop_of(b"sips:bob@192.0.2.1").unwrap();
        assert_eq!((h.transport, h.port), (Transport::Tls, 5061));
        let h = next_hop_of(b"sips:bob@192.0.2.1;transport=tcp").unwrap();
        assert_eq!(h.transport, Transport::Tls);
        assert_eq!(
            next_hop_of(b"sip:bob@192.0.2.1;transport=sctp"),
            Err(NextHopError::UnsupportedTransport)
        );
        assert_eq!(next_hop_of(b"tel:+1555"), Err(NextHopError::NotSip));
    }

    #[test]
    fn maddr_overrides_host() {
        let h = next_hop_of(b"sip:bob@example.test;maddr=[2001:db8::1]").unwrap();
        assert_eq!(h.addr(), Some("[2001:db8::1]:5060".parse().unwrap()));
        let h = next_hop_of(b"sip:bob@example.test").unwrap();
        assert_eq!(h.addr(), None);
    }

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
