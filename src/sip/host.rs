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
                if let Some(a) = parse_ipv4(s) {
                    return Ok(Host::V4(a));
                }
                if s.iter().all(|b| b.is_ascii_digit() || *b == b'.') {
                    // All digits and dots but no dotted quad: a hostname's top
                    // label cannot start with a digit (RFC 3261 §25.1).
                    return Err(ParseError::InvalidHost);
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
/// (SRV-style names) and every major SIP server tolerates them. At most 253
/// bytes, labels of 1 to 63 (RFC 1035 §2.3.4). One table-driven scan per label.
fn valid_hostname(s: &[u8]) -> bool {
    let s = s.strip_suffix(b".").unwrap_or(s);
    if s.is_empty() || s.len() > 253 {
        return false;
    }
    let mut rest = s;
    loop {
        let n = rest.iter().take_while(|&&b| is_label_char(b)).count();
        let (label, after) = rest.split_at(n);
        match label {
            [] | [b'-', ..] | [.., b'-'] => return false,
            _ if n > 63 => return false,
            _ => {}
        }
        match after {
            [] => return true,
            [b'.', more @ ..] => rest = more,
            _ => return false,
        }
    }
}

/// Alphanumerics, `-` and `_`: the bytes of a hostname label.
#[inline(always)]
fn is_label_char(b: u8) -> bool {
    LABEL_CHAR[usize::from(b)]
}

static LABEL_CHAR: [bool; 256] = {
    let mut table = [false; 256];
    let mut i = 0;
    while i < table.len() {
        let b = i as u8;
        table[i] = b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
        i += 1;
    }
    table
};

/// A dotted-quad IPv4 address, accepted and rejected exactly as `core::net`'s
/// `Ipv4Addr::from_str` does: four decimal octets of one to three digits, each at
/// most 255, with no leading zero (`01` could be read as octal, RFC 6943 §3.1.1),
/// and nothing else. The generic parser behind `from_str` costs several times
/// more, and the sent-by and `received` of every Via go through here.
#[inline(always)]
pub(crate) fn parse_ipv4(s: &[u8]) -> Option<Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut rest = s;
    for (i, octet) in octets.iter_mut().enumerate() {
        if i > 0 {
            rest = rest.strip_prefix(b".")?;
        }
        let (value, len) = match *rest {
            [a @ b'0'..=b'9', b @ b'0'..=b'9', c @ b'0'..=b'9', ..] if a != b'0' => {
                let v = u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10;
                (v + u16::from(c - b'0'), 3)
            }
            [a @ b'0'..=b'9', b @ b'0'..=b'9', ..] if a != b'0' => {
                (u16::from(a - b'0') * 10 + u16::from(b - b'0'), 2)
            }
            [a @ b'0'..=b'9', ..] => (u16::from(a - b'0'), 1),
            _ => return None,
        };
        // A fourth digit, or a digit after a leading zero, is left in `rest`, where
        // only a dot (or the end, after the fourth octet) may follow.
        rest = rest.get(len..)?;
        *octet = u8::try_from(value).ok()?;
    }
    rest.is_empty().then_some(Ipv4Addr::from(octets))
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

    /// Strings made of the given octet texts joined by dots, from one to five
    /// octets: every shape `parse_ipv4` must accept or reject.
    fn dotted(octets: &[&str], n: usize, out: &mut Vec<String>, prefix: String) {
        if n == 0 {
            return;
        }
        for o in octets {
            let s = if prefix.is_empty() {
                (*o).to_string()
            } else {
                format!("{prefix}.{o}")
            };
            out.push(s.clone());
            dotted(octets, n - 1, out, s);
        }
    }

    #[test]
    fn ipv4_parser_matches_core_net() {
        let octets = [
            "", "0", "00", "000", "0000", "1", "01", "001", "10", "99", "100", "199", "249", "255",
            "256", "260", "300", "999", "0255", "1000", "a", "1a", "+1", " 1",
        ];
        let mut cases = Vec::new();
        dotted(&octets, 4, &mut cases, String::new());
        dotted(&["0", "1", "255", "256", ""], 5, &mut cases, String::new());
        cases.extend(
            [
                "",
                ".",
                "..",
                "...",
                "....",
                "1.2.3.4.",
                ".1.2.3.4",
                "1..2.3",
                "1.2.3.4\n",
            ]
            .map(String::from),
        );
        for s in &cases {
            assert_eq!(
                parse_ipv4(s.as_bytes()),
                s.parse::<Ipv4Addr>().ok(),
                "{s:?}"
            );
        }
        // And every string of up to seven bytes over digits, zero and dots.
        crate::sip::text::for_each_string(b"0129.", 7, |buf| {
            let text = std::str::from_utf8(buf).unwrap();
            assert_eq!(parse_ipv4(buf), text.parse::<Ipv4Addr>().ok(), "{text:?}");
        });
    }

    #[test]
    fn ipv4_hosts() {
        assert_eq!(Host::parse(b"0.0.0.0"), Ok(Host::V4(Ipv4Addr::UNSPECIFIED)));
        assert_eq!(
            Host::parse(b"255.255.255.255"),
            Ok(Host::V4(Ipv4Addr::BROADCAST))
        );
        for bad in [
            &b"01.2.3.4"[..],
            b"1.2.3.04",
            b"1.2.3",
            b"1.2.3.4.5",
            b"1.2.3.256",
            b"1.2.3.1000",
            b"1..3.4",
            b"1.2.3.4.",
            b"123",
        ] {
            assert_eq!(Host::parse(bad), Err(ParseError::InvalidHost), "{bad:?}");
        }
    }

    /// The label-splitting check the one-pass `valid_hostname` replaced.
    fn valid_hostname_by_labels(s: &[u8]) -> bool {
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

    #[test]
    fn hostname_check_matches_label_split() {
        crate::sip::text::for_each_string(b"a1-_. ", 7, |buf| {
            assert_eq!(
                valid_hostname(buf),
                valid_hostname_by_labels(buf),
                "{:?}",
                String::from_utf8_lossy(buf)
            );
        });
        // Length limits: 63-byte labels, 253-byte names (a trailing dot aside).
        let label = |n: usize| "a".repeat(n);
        for name in [
            label(63),
            label(64),
            format!("{}.{}", label(63), label(63)),
            format!("{}.{}.{}.{}", label(63), label(63), label(63), label(61)),
            format!("{}.{}.{}.{}.", label(63), label(63), label(63), label(61)),
            format!("{}.{}.{}.{}", label(63), label(63), label(63), label(62)),
            format!("x.{}-", label(10)),
        ] {
            assert_eq!(
                valid_hostname(name.as_bytes()),
                valid_hostname_by_labels(name.as_bytes()),
                "{name}"
            );
        }
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
