//! `host` and `hostport` (RFC 3261 §25.1): a domain name, an IPv4 address, or an
//! IPv6 reference in brackets.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::error::ParseError;
use super::text::parse_port;

/// A host as written in a URI or Via sent-by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Host<'a> {
    /// A domain name (`hostname`), as written (compare case-insensitively).
    Domain(&'a str),
    /// A dotted-quad IPv4 address.
    V4(Ipv4Addr),
    /// An IPv6 address, written as `[…]` (the brackets are not part of the value).
    V6(Ipv6Addr),
}

impl<'a> Host<'a> {
    /// Parses a `host`: `[IPv6]`, IPv4 dotted quad, or a hostname.
    pub fn parse(s: &'a [u8]) -> Result<Host<'a>, ParseError> {
        match s {
            [] => Err(ParseError::InvalidHost),
            [b'[', inner @ .., b']'] => std::str::from_utf8(inner)
                .ok()
                .and_then(|t| t.parse::<Ipv6Addr>().ok())
                .map(Host::V6)
                .ok_or(ParseError::InvalidHost),
            _ => {
                if s.iter().all(|b| b.is_ascii_digit() || *b == b'.') {
                    // All digits and dots: must be an IPv4 address (a hostname's
                    // top label cannot start with a digit, RFC 3261 §25.1).
                    return std::str::from_utf8(s)
                        .ok()
                        .and_then(|t| t.parse::<Ipv4Addr>().ok())
                        .map(Host::V4)
                        .ok_or(ParseError::InvalidHost);
                }
                if valid_hostname(s) {
                    // valid_hostname admits ASCII only.
                    std::str::from_utf8(s)
                        .map(Host::Domain)
                        .map_err(|_| ParseError::InvalidHost)
                } else {
                    Err(ParseError::InvalidHost)
                }
            }
        }
    }

    /// The address, when the host is an IP literal.
    pub fn ip(&self) -> Option<IpAddr> {
        match *self {
            Host::Domain(_) => None,
            Host::V4(a) => Some(IpAddr::V4(a)),
            Host::V6(a) => Some(IpAddr::V6(a)),
        }
    }

    /// Case-insensitive comparison for domains, value comparison for addresses
    /// (RFC 3261 §19.1.4).
    pub fn same_as(&self, other: &Host<'_>) -> bool {
        match (self, other) {
            (Host::Domain(a), Host::Domain(b)) => a.eq_ignore_ascii_case(b),
            (Host::V4(a), Host::V4(b)) => a == b,
            (Host::V6(a), Host::V6(b)) => a == b,
            _ => false,
        }
    }
}

impl fmt::Display for Host<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Domain(d) => f.write_str(d),
            Host::V4(a) => write!(f, "{a}"),
            Host::V6(a) => write!(f, "[{a}]"),
        }
    }
}

/// `hostname = *( domainlabel "." ) toplabel [ "." ]`, labels of alphanumerics and
/// inner hyphens. Underscores are accepted too: they occur in real deployments
/// (SRV-style names) and every major SIP server tolerates them.
fn valid_hostname(s: &[u8]) -> bool {
    let s = s.strip_suffix(b".").unwrap_or(s);
    if s.is_empty() || s.len() > 253 {
        return false;
    }
    s.split(|&b| b == b'.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && label
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && label[0] != b'-'
            && label[label.len() - 1] != b'-'
    })
}

/// `hostport = host [ ":" port ]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostPort<'a> {
    pub host: Host<'a>,
    pub port: Option<u16>,
}

impl<'a> HostPort<'a> {
    /// Parses `host[:port]`, where an IPv6 host is bracketed.
    pub fn parse(s: &'a [u8]) -> Result<HostPort<'a>, ParseError> {
        let (host, port) = split_host_port(s)?;
        Ok(HostPort {
            host: Host::parse(host)?,
            port: match port {
                Some(p) => Some(parse_port(p).ok_or(ParseError::InvalidPort)?),
                None => None,
            },
        })
    }
}

/// Splits `host[:port]` into its two texts without validating them.
pub fn split_host_port(s: &[u8]) -> Result<(&[u8], Option<&[u8]>), ParseError> {
    if s.first() == Some(&b'[') {
        let close = memchr::memchr(b']', s).ok_or(ParseError::InvalidHost)?;
        let host = &s[..=close];
        match &s[close + 1..] {
            [] => Ok((host, None)),
            [b':', port @ ..] => Ok((host, Some(port))),
            _ => Err(ParseError::InvalidHost),
        }
    } else {
        match memchr::memchr(b':', s) {
            Some(i) => Ok((&s[..i], Some(&s[i + 1..]))),
            None => Ok((s, None)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        assert_eq!(Host::parse(b"example.com"), Ok(Host::Domain("example.com")));
        assert_eq!(
            Host::parse(b"192.0.2.1"),
            Ok(Host::V4(Ipv4Addr::new(192, 0, 2, 1)))
        );
        assert_eq!(
            Host::parse(b"[2001:db8::10]"),
            Ok(Host::V6("2001:db8::10".parse().unwrap()))
        );
        assert!(Host::parse(b"2001:db8::10").is_err());
        assert!(Host::parse(b"256.0.0.1").is_err());
        assert!(Host::parse(b"-bad.com").is_err());
        assert!(Host::parse(b"a b").is_err());
    }

    #[test]
    fn host_ports() {
        let hp = HostPort::parse(b"[2001:db8::10]:5070").unwrap();
        assert_eq!(hp.port, Some(5070));
        assert!(matches!(hp.host, Host::V6(_)));
        let hp = HostPort::parse(b"[::1]").unwrap();
        assert_eq!(hp.port, None);
        assert_eq!(HostPort::parse(b"h:99999"), Err(ParseError::InvalidPort));
        assert_eq!(HostPort::parse(b"h:").unwrap_err(), ParseError::InvalidPort);
    }
}
