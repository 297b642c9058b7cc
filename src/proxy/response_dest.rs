//! RFC 3261 §18.2.2: where a response goes.

use std::net::SocketAddr;

use crate::io::{Dest, Peer};
use crate::sip::Via;

/// Where a response to a request from `from` goes (RFC 3261 §18.2.2, RFC 3581 §4).
///
/// Over a connection: back on that connection, or, if it has closed, a new one to
/// the source address and the sent-by port. Over UDP: to the source address (the
/// `received` a server adds whenever sent-by differs from it), at the source port
/// when the client asked for `rport`, otherwise the sent-by port. `maddr`
/// (multicast) is not supported and is ignored.
pub(crate) fn response_dest(from: Peer, via: Option<&Via<'_>>) -> Dest {
    let sent_by_port = via
        .and_then(|v| v.sent_by.port)
        .unwrap_or_else(|| from.transport.default_port());
    match from.conn {
        Some(conn) => Dest::Conn {
            conn,
            transport: from.transport,
            fallback: via.map(|_| SocketAddr::new(from.addr.ip(), sent_by_port)),
        },
        None => {
            let port = match via {
                Some(v) if v.rport().is_none() => sent_by_port,
                // rport asked for, or no usable Via: answer where the request came from.
                _ => from.addr.port(),
            };
            Dest::Udp {
                listener: from.listener,
                to: SocketAddr::new(from.addr.ip(), port),
            }
        }
    }
}
