//! Where a request goes next: the URI that names the next hop (§16.6 step 7) and
//! its transport, host and port (RFC 3263 §4.1–4.2 for explicit transports, ports
//! and IP literals; NAPTR/SRV lookups come with DNS support).

use std::net::SocketAddr;

use crate::io::Transport;
use crate::sip::error::ParseError;
use crate::sip::host::Host;
use crate::sip::text::eq_ic;
use crate::sip::uri::{SipUri, Uri};

/// The next hop of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NextHop<'a> {
    pub transport: Transport,
    /// `maddr` when the URI has one, else its host.
    pub host: Host<'a>,
    pub port: u16,
}

impl NextHop<'_> {
    /// The socket address, when the host is an IP literal (else it needs resolving).
    pub(crate) fn addr(&self) -> Option<SocketAddr> {
        self.host.ip().map(|ip| SocketAddr::new(ip, self.port))
    }
}

/// Why a URI cannot be sent to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum NextHopError {
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
pub(crate) fn next_hop<'a>(uri: &SipUri<'a>) -> Result<NextHop<'a>, NextHopError> {
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
pub(crate) fn next_hop_of(uri: &[u8]) -> Result<NextHop<'_>, NextHopError> {
    match Uri::parse(uri)? {
        Uri::Sip(u) => next_hop(&u),
        _ => Err(NextHopError::NotSip),
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
}
