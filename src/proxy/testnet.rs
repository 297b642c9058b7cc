//! The simulated network the proxy core's tests share: the proxy at [`PROXY`]
//! (UDP and TCP), a UAC and a UAS, the domain `example.test`, bindings in memory.

use std::net::SocketAddr;
use std::time::Instant;

use crate::io::Transport;
use crate::io::{Dest, Peer};
use crate::mesh::Outbox;
use crate::registrar::{Registrar, RegistrarConfig};

use super::{Engine, Identity, Listener, ProxyConfig, Services};

pub(crate) const PROXY: &str = "192.0.2.10:5060";
pub(crate) const UAC: &str = "198.51.100.1:5060";
pub(crate) const UAS: &str = "203.0.113.5:5060";

/// The proxy core under test, its clock starting at `now`.
pub(crate) fn engine(now: Instant, cfg: ProxyConfig) -> Engine {
    let proxy: SocketAddr = PROXY.parse().unwrap();
    let identity = Identity::new(&[(proxy.ip(), proxy.port())], &[], &["example.test".into()]);
    let listeners = vec![
        Listener::new(Transport::Udp, proxy, &[]),
        Listener::new(Transport::Tcp, proxy, &[]),
    ];
    let services = Services {
        registrar: Registrar::new(RegistrarConfig {
            domains: vec!["example.test".into()],
            ..RegistrarConfig::default()
        })
        .unwrap(),
        journal: false,
        auth: None,
    };
    let start = super::engine::Start {
        seed: 7,
        now,
        unix_now: 1_800_000_000,
    };
    Engine::new(0, start, cfg, identity, listeners, services)
}

/// A UDP peer at `addr`.
pub(crate) fn peer(addr: &str) -> Peer {
    Peer {
        transport: Transport::Udp,
        addr: addr.parse().unwrap(),
        listener: 0,
        conn: None,
    }
}

/// Sending to `addr` from the UDP listener.
pub(crate) fn udp(addr: &str) -> Dest {
    Dest::Udp {
        listener: 0,
        to: addr.parse().unwrap(),
    }
}

/// What the proxy sent, as (destination, text).
pub(crate) fn collect(out: &Outbox) -> Vec<(Dest, String)> {
    out.transmits()
        .map(|(d, b)| (d, String::from_utf8(b.to_vec()).unwrap()))
        .collect()
}
