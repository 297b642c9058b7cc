//! Listening sockets, built with socket2 so buffer sizes and options are ours to set
//! (glommio's own `bind` always sets SO_REUSEPORT and ignores buffer sizes,
//! DESIGN.md §5), plus the probe that finds another process on our ports.

use std::io;
use std::net::{IpAddr, SocketAddr};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::config::{ListenSpec, Transport, UdpConfig};

fn domain_of(addr: &SocketAddr) -> Domain {
    if addr.is_ipv6() {
        Domain::IPV6
    } else {
        Domain::IPV4
    }
}

fn new_socket(spec: &ListenSpec) -> io::Result<Socket> {
    let (ty, proto) = match spec.transport {
        Transport::Udp => (Type::DGRAM, Protocol::UDP),
        Transport::Tcp | Transport::Tls => (Type::STREAM, Protocol::TCP),
    };
    let s = Socket::new(domain_of(&spec.addr), ty, Some(proto))?;
    if spec.addr.is_ipv6() {
        // `[::]:5060` must not claim the IPv4 port that `0.0.0.0:5060` binds.
        s.set_only_v6(true)?;
    }
    s.set_cloexec(true)?;
    Ok(s)
}

/// True when another socket already holds `spec`'s address.
///
/// The probe binds without SO_REUSEPORT: that fails with `EADDRINUSE` whenever any
/// socket (SO_REUSEPORT or not) is bound there. TCP probes set SO_REUSEADDR so that
/// connections in TIME_WAIT from a previous run do not count; a listener still does.
pub(crate) fn in_use(spec: &ListenSpec) -> io::Result<bool> {
    let s = new_socket(spec)?;
    if spec.transport.is_reliable() {
        s.set_reuse_address(true)?;
    }
    match s.bind(&SockAddr::from(spec.addr)) {
        Ok(()) => Ok(false),
        Err(e) if e.kind() == io::ErrorKind::AddrInUse => Ok(true),
        Err(e) => Err(e),
    }
}

/// A UDP socket on `addr` with SO_REUSEPORT and the configured buffer sizes.
pub(crate) fn bind_udp(spec: &ListenSpec, udp: &UdpConfig) -> io::Result<Socket> {
    let s = new_socket(spec)?;
    s.set_reuse_port(true)?;
    // The kernel caps these at net.core.{r,w}mem_max; a smaller buffer than asked is
    // not an error.
    let _ = s.set_recv_buffer_size(udp.rcvbuf);
    let _ = s.set_send_buffer_size(udp.sndbuf);
    s.bind(&SockAddr::from(spec.addr))?;
    Ok(s)
}

/// A listening TCP socket on `addr` with SO_REUSEPORT (and SO_REUSEADDR, for restarts
/// while old connections sit in TIME_WAIT).
pub(crate) fn bind_tcp(spec: &ListenSpec) -> io::Result<Socket> {
    let s = new_socket(spec)?;
    s.set_reuse_port(true)?;
    s.set_reuse_address(true)?;
    s.set_nodelay(true)?;
    s.bind(&SockAddr::from(spec.addr))?;
    s.listen(1024)?;
    Ok(s)
}

/// The addresses of this host's interfaces (for "is this Request-URI us?").
pub(crate) fn interface_ips() -> Vec<IpAddr> {
    let mut out = Vec::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we walk read-only and free once.
    unsafe {
        if libc::getifaddrs(&mut head) != 0 {
            return out;
        }
        let mut cur = head;
        while !cur.is_null() {
            let ifa = &*cur;
            if !ifa.ifa_addr.is_null() {
                match i32::from((*ifa.ifa_addr).sa_family) {
                    libc::AF_INET => {
                        let sin = &*(ifa.ifa_addr as *const libc::sockaddr_in);
                        out.push(IpAddr::from(
                            u32::from_be(sin.sin_addr.s_addr).to_be_bytes(),
                        ));
                    }
                    libc::AF_INET6 => {
                        let sin6 = &*(ifa.ifa_addr as *const libc::sockaddr_in6);
                        out.push(IpAddr::from(sin6.sin6_addr.s6_addr));
                    }
                    _ => {}
                }
            }
            cur = ifa.ifa_next;
        }
        libc::freeifaddrs(head);
    }
    out.sort_unstable();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(s: &str) -> ListenSpec {
        s.parse().unwrap()
    }

    #[test]
    fn probe_sees_a_reuseport_listener() {
        let udp = UdpConfig {
            rcvbuf: 1 << 16,
            sndbuf: 1 << 16,
            mtu: None,
            batch: 1,
        };
        let first = bind_udp(&spec("udp:127.0.0.1:0"), &udp).unwrap();
        let port = first.local_addr().unwrap().as_socket().unwrap().port();
        let taken = spec(&format!("udp:127.0.0.1:{port}"));
        assert!(in_use(&taken).unwrap());
        // Our own REUSEPORT sockets can still share it.
        bind_udp(&taken, &udp).unwrap();

        let l = bind_tcp(&spec("tcp:127.0.0.1:0")).unwrap();
        let port = l.local_addr().unwrap().as_socket().unwrap().port();
        assert!(in_use(&spec(&format!("tcp:127.0.0.1:{port}"))).unwrap());
        drop(l);
        assert!(!in_use(&spec(&format!("tcp:127.0.0.1:{port}"))).unwrap());
    }

    #[test]
    fn loopback_is_an_interface_address() {
        assert!(interface_ips().contains(&"127.0.0.1".parse().unwrap()));
    }
}
