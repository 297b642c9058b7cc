//! Who "this proxy" is: the addresses that name it in a Request-URI, a Route or a
//! Record-Route value (RFC 3261 §16.4), and the domains it is responsible for
//! (§16.5). Kamailio calls the first check `myself`.

use std::net::IpAddr;

use crate::sip::host::Host;
use crate::sip::uri::SipUri;

/// The proxy's own addresses and served domains.
#[derive(Debug, Clone, Default)]
pub(crate) struct Identity {
    /// Every (address, port) the proxy receives on; a listener on an unspecified
    /// address contributes every local address.
    addrs: Vec<(IpAddr, u16)>,
    /// The ports of all listeners, for URIs naming one of our domains.
    ports: Vec<u16>,
    /// Served domains, lowercased (`--domain`).
    domains: Vec<String>,
    /// The served domains that are IP literals (`127.0.0.1`, `[::1]`).
    domain_ips: Vec<IpAddr>,
}

impl Identity {
    /// `listeners` are the bound (address, port) pairs; `local_ips` the host's
    /// interface addresses, standing in for an unspecified listen address.
    pub(crate) fn new(
        listeners: &[(IpAddr, u16)],
        local_ips: &[IpAddr],
        domains: &[String],
    ) -> Self {
        let mut addrs = Vec::new();
        let mut ports = Vec::new();
        for &(ip, port) in listeners {
            if ip.is_unspecified() {
                for &l in local_ips {
                    if l.is_ipv4() == ip.is_ipv4() || ip.is_ipv6() {
                        addrs.push((l, port));
                    }
                }
            } else {
                addrs.push((ip, port));
            }
            ports.push(port);
        }
        addrs.sort();
        addrs.dedup();
        ports.sort();
        ports.dedup();
        let domain_ips = domains
            .iter()
            .filter_map(|d| Host::parse(d.as_bytes()).ok().and_then(|h| h.ip()))
            .collect();
        Identity {
            addrs,
            ports,
            domains: domains.iter().map(|d| d.to_ascii_lowercase()).collect(),
            domain_ips,
        }
    }

    /// True when `uri` addresses this proxy: its host is one of our addresses with
    /// one of our ports (the scheme's default when absent), or one of our domains
    /// with no port or one of ours. The user part is not looked at: a Route value
    /// or Record-Route URI of ours never has one, and callers decide what a user
    /// part means.
    pub(crate) fn is_me(&self, uri: &SipUri<'_>) -> bool {
        self.is_me_at(&uri.host, uri.port, uri.port_or_default())
    }

    /// The test behind [`Identity::is_me`], for a host and port from anywhere (a
    /// Via sent-by, say): `default_port` stands in for an absent `port`.
    pub(crate) fn is_me_at(&self, host: &Host<'_>, port: Option<u16>, default_port: u16) -> bool {
        let p = port.unwrap_or(default_port);
        match host {
            Host::Domain(d) => {
                self.is_our_domain_name(d) && (port.is_none() || self.ports.contains(&p))
            }
            host => host
                .ip()
                .is_some_and(|ip| self.addrs.binary_search(&(ip, p)).is_ok()),
        }
    }

    /// True when a URI's host and port name a domain this proxy serves (target
    /// determination, §16.5: its users are found in the location service): one of
    /// the `--domain` names (any port), or an IP given as a `--domain` or one of
    /// our own addresses, with no port or one of our ports. Operators and
    /// benchmarks serve a bare IP as their domain with the phones on the same
    /// host: `sip:bob@127.0.0.1:54790` is then a phone's Contact, somebody else.
    pub(crate) fn is_our_domain(
        &self,
        host: &Host<'_>,
        port: Option<u16>,
        default_port: u16,
    ) -> bool {
        match host {
            Host::Domain(d) => self.is_our_domain_name(d),
            h => h.ip().is_some_and(|ip| {
                let our_port = port.map_or(true, |p| self.ports.contains(&p));
                (our_port && self.domain_ips.contains(&ip))
                    || self.is_me_at(host, port, default_port)
            }),
        }
    }

    fn is_our_domain_name(&self, d: &str) -> bool {
        let d = d.strip_suffix('.').unwrap_or(d);
        self.domains.iter().any(|ours| ours.eq_ignore_ascii_case(d))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::uri::Uri;

    fn sip(s: &str) -> SipUri<'_> {
        match Uri::parse(s.as_bytes()).unwrap() {
            Uri::Sip(u) => u,
            _ => panic!("not sip"),
        }
    }

    fn ident() -> Identity {
        Identity::new(
            &[
                ("0.0.0.0".parse().unwrap(), 5060),
                ("127.0.0.1".parse().unwrap(), 5070),
            ],
            &["10.0.0.5".parse().unwrap(), "127.0.0.1".parse().unwrap()],
            &["Example.TEST".to_string()],
        )
    }

    #[test]
    fn myself_by_address_and_port() {
        let id = ident();
        assert!(id.is_me(&sip("sip:10.0.0.5;lr")));
        assert!(id.is_me(&sip("sip:127.0.0.1:5070;lr")));
        assert!(!id.is_me(&sip("sip:10.0.0.5:5080;lr")));
        assert!(!id.is_me(&sip("sip:10.0.0.6;lr")));
        // sips defaults to 5061, which is not ours here.
        assert!(!id.is_me(&sip("sips:10.0.0.5;lr")));
    }

    #[test]
    fn myself_by_domain() {
        let id = ident();
        assert!(id.is_me(&sip("sip:example.test;lr")));
        assert!(id.is_me(&sip("sip:EXAMPLE.test.:5070;lr")));
        assert!(!id.is_me(&sip("sip:example.test:9999;lr")));
        assert!(id.is_our_domain(&Host::Domain("example.TEST"), Some(9), 5060));
        let ours = Host::V4("10.0.0.5".parse().unwrap());
        assert!(id.is_our_domain(&ours, None, 5060));
        // Our address at a port we do not listen on is another element.
        assert!(!id.is_our_domain(&ours, Some(5099), 5060));
        assert!(!id.is_our_domain(&Host::Domain("other.test"), None, 5060));
    }

    #[test]
    fn ip_domain_at_a_port_not_ours_is_somebody_else() {
        // `--domain 127.0.0.1` with the phones on the same host: their Contacts
        // share the IP at ports of their own.
        let id = Identity::new(
            &[("0.0.0.0".parse().unwrap(), 5060)],
            &["127.0.0.1".parse().unwrap()],
            &["127.0.0.1".to_string(), "203.0.113.9".to_string()],
        );
        let lo = Host::V4("127.0.0.1".parse().unwrap());
        assert!(id.is_our_domain(&lo, None, 5060));
        assert!(id.is_our_domain(&lo, Some(5060), 5060));
        assert!(!id.is_our_domain(&lo, Some(54790), 5060));
        // An IP domain that is not a local address (a public IP in front of a NAT):
        // ours with no port or one of our ports.
        let public = Host::V4("203.0.113.9".parse().unwrap());
        assert!(id.is_our_domain(&public, None, 5060));
        assert!(id.is_our_domain(&public, Some(5060), 5060));
        assert!(!id.is_our_domain(&public, Some(5062), 5060));
    }

    #[test]
    fn ipv6_domain_is_written_in_brackets() {
        let id = Identity::new(
            &[(
                "[::]:5060".parse::<std::net::SocketAddr>().unwrap().ip(),
                5060,
            )],
            &[],
            &["[::1]".to_string()],
        );
        let v6 = Host::V6("::1".parse().unwrap());
        assert!(id.is_our_domain(&v6, None, 5060));
        assert!(!id.is_our_domain(&v6, Some(40000), 5060));
    }
}
