//! Stream connections (TCP and TLS): accepting, opening, framing, limits.
//!
//! Each connection is one task on the core that accepted or opened it; it reads,
//! cuts messages with [`Framer`], hands them to the shard, and writes what other
//! tasks and cores queue for it. A slow or silent peer holds only its own task:
//! every wait is bounded by the header, idle or connect timeout.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures_lite::future;
use futures_lite::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use glommio::channels::local_channel::{self, LocalReceiver};
use glommio::net::{TcpListener, TcpStream};
use rustls::pki_types::ServerName;
use smallvec::SmallVec;

use super::core::{ConnEntry, Core};
use crate::io::Transport;
use crate::io::{ConnId, Peer};
use crate::mesh::Outbox;
use crate::sip::framing::{Frame, Framer, PONG};

/// Messages queued for one connection before further ones are dropped.
const WRITE_QUEUE: usize = 256;
/// Bytes read at a time.
const READ_CHUNK: usize = 16 * 1024;
/// Pause after a failed accept (EMFILE and friends) so a persistent error does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(20);

/// Accepts connections on one listener until the task is cancelled at shutdown.
pub(crate) async fn accept_loop(
    core: Rc<Core>,
    listener_idx: u16,
    transport: Transport,
    listener: TcpListener,
) {
    loop {
        let stream = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(error = %e, "accept failed");
                glommio::timer::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let Ok(addr) = stream.peer_addr() else {
            continue;
        };
        let Some(guard) = ConnGuard::admit(&core, addr.ip(), true) else {
            tracing::debug!(%addr, "connection refused: limit reached");
            continue; // dropping the stream closes it
        };
        let _ = stream.set_nodelay(true);
        let id = core.new_conn_id();
        let rx = guard.register(id.seq);
        let peer = Peer {
            transport,
            addr,
            listener: listener_idx,
            conn: Some(id),
        };
        let task_core = Rc::clone(&core);
        let task = async move {
            let core = task_core;
            match transport {
                Transport::Tls => {
                    let Some(server) = core.shared.tls_server.clone() else {
                        return;
                    };
                    let acceptor = futures_rustls::TlsAcceptor::from(server);
                    let limit = core.shared.cfg.tcp.header_timeout;
                    match within(limit, acceptor.accept(stream)).await {
                        Some(Ok(tls)) => serve(&core, tls, peer, rx, true).await,
                        Some(Err(e)) => tracing::debug!(%addr, error = %e, "TLS handshake failed"),
                        None => tracing::debug!(%addr, "TLS handshake timed out"),
                    }
                }
                _ => serve(&core, stream, peer, rx, true).await,
            }
            drop(guard);
        };
        if let Ok(t) = glommio::spawn_local_into(task, core.sip_tq) {
            t.detach();
        }
    }
}

/// Opens a pooled outbound connection to `to` and queues `first` on it.
pub(crate) fn open(core: &Rc<Core>, transport: Transport, to: SocketAddr, first: Vec<u8>) {
    let Some(guard) = ConnGuard::admit(core, to.ip(), false) else {
        tracing::debug!(%to, "outbound connection refused: limit reached");
        return;
    };
    let id = core.new_conn_id();
    let rx = guard.register(id.seq);
    guard.pool_key.set(Some((transport, to)));
    core.pool.borrow_mut().insert((transport, to), id.seq);
    if let Some(entry) = core.conns.borrow().get(&id.seq) {
        let _ = entry.tx.try_send(first);
    }
    let peer = Peer {
        transport,
        addr: to,
        listener: Peer::OUTBOUND,
        conn: Some(id),
    };
    let limit = core.shared.cfg.tcp.connect_timeout;
    let client = core.shared.tls_client.clone();
    let core_rc = guard.core.clone();
    let task = async move {
        let core = core_rc;
        let stream = match within(limit, TcpStream::connect_timeout(to, limit)).await {
            Some(Ok(s)) => s,
            Some(Err(e)) => {
                tracing::debug!(%to, error = %e, "connect failed");
                return;
            }
            None => {
                tracing::debug!(%to, "connect timed out");
                return;
            }
        };
        let _ = stream.set_nodelay(true);
        match transport {
            Transport::Tls => {
                let name = ServerName::IpAddress(to.ip().into());
                let connector = futures_rustls::TlsConnector::from(client);
                match within(limit, connector.connect(name, stream)).await {
                    Some(Ok(tls)) => serve(&core, tls, peer, rx, false).await,
                    Some(Err(e)) => tracing::debug!(%to, error = %e, "TLS handshake failed"),
                    None => tracing::debug!(%to, "TLS handshake timed out"),
                }
            }
            _ => serve(&core, stream, peer, rx, false).await,
        }
        drop(guard);
    };
    if let Ok(t) = glommio::spawn_local_into(task, core.sip_tq) {
        t.detach();
    }
}

/// Runs `f` for at most `limit`; `None` when time ran out.
async fn within<T>(limit: Duration, f: impl std::future::Future<Output = T>) -> Option<T> {
    future::or(async { Some(f.await) }, async {
        glommio::timer::sleep(limit).await;
        None
    })
    .await
}

enum Event {
    Read(io::Result<usize>),
    Write(Option<Vec<u8>>),
    Timeout,
}

/// Reads, frames and dispatches messages; writes queued bytes; enforces the timeouts.
///
/// `inbound`: the peer connected to us, so it must start talking within the header
/// timeout (a silent client is dropped then, not after the idle timeout).
async fn serve<S>(
    core: &Rc<Core>,
    mut stream: S,
    peer: Peer,
    rx: LocalReceiver<Vec<u8>>,
    inbound: bool,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let cfg = &core.shared.cfg;
    let limits = cfg.tcp;
    let mut framer = Framer::new(cfg.max_message_size);
    let mut buf: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    let mut chunk = vec![0u8; READ_CHUNK];
    let mut out = Outbox::new();
    // For mesh messages handled between two of ours (they flush themselves).
    let mut mesh_out = Outbox::new();
    let mut last_activity = Instant::now();
    // When the message now being received started (its header timer).
    let mut started: Option<Instant> = inbound.then(Instant::now);
    let mut seen_bytes = false;
    let own = peer.conn;
    // When each message handled since the last flush was cut from the stream, and
    // whether it caused any send.
    let mut timings: SmallVec<[(Instant, bool); STREAM_BATCH]> = SmallVec::new();
    loop {
        // Cut and handle every complete message in the buffer; what they cause goes
        // out together once the buffer holds no complete message (for this
        // connection, in one write: a peer that sends many messages in one segment,
        // such as a trunk or SIPp multiplexing its calls, gets its answers in one).
        loop {
            let frame = match framer.frame(&buf) {
                Ok(f) => f,
                Err(e) => {
                    // The stream cannot be resynchronised (sip::framing): answer
                    // what came before, then close it.
                    tracing::debug!(addr = %peer.addr, error = %e, "bad stream framing; closing");
                    flush_batch(core, &mut stream, own, &mut out, &mut timings).await;
                    return;
                }
            };
            match frame {
                Frame::NeedMore => break,
                Frame::Ping => {
                    // RFC 5626 §3.5.1: a CRLFCRLF ping is answered with one CRLF.
                    if write_all(&mut stream, PONG, limits.header_timeout)
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                Frame::KeepAlive(_) => {}
                Frame::Message(n) => {
                    core.drain_mesh(&mut mesh_out).await;
                    if let Some(msg) = buf.get(..n) {
                        let now = Instant::now();
                        let before = out.transmit_count();
                        core.shard
                            .borrow_mut()
                            .on_stream_message(now, peer, msg, &mut out);
                        core.schedule_timers();
                        timings.push((now, out.transmit_count() > before));
                    }
                }
            }
            buf.drain(..frame.len().min(buf.len()));
            // A long run of messages is answered in slices, which bounds what
            // waiting for the rest of the run adds to a message's latency.
            if timings.len() >= STREAM_BATCH
                && !flush_batch(core, &mut stream, own, &mut out, &mut timings).await
            {
                return;
            }
        }
        if !flush_batch(core, &mut stream, own, &mut out, &mut timings).await {
            return;
        }
        if buf.is_empty() && seen_bytes {
            // Between messages: only the idle timer runs.
            started = None;
        }
        let deadline = match started {
            Some(t) => t + limits.header_timeout,
            None => last_activity + limits.idle_timeout,
        };
        let now = Instant::now();
        if now >= deadline {
            tracing::debug!(addr = %peer.addr, "connection timed out");
            return;
        }
        let event = future::or(
            async { Event::Read(stream.read(&mut chunk).await) },
            future::or(async { Event::Write(rx.recv().await) }, async {
                glommio::timer::sleep(deadline - now).await;
                Event::Timeout
            }),
        )
        .await;
        match event {
            Event::Read(Ok(0)) | Event::Read(Err(_)) => return,
            Event::Read(Ok(n)) => {
                last_activity = Instant::now();
                seen_bytes = true;
                if started.is_none() {
                    started = Some(last_activity);
                }
                buf.extend_from_slice(chunk.get(..n).unwrap_or(&[]));
            }
            Event::Write(Some(mut bytes)) => {
                // Whatever else is queued for this connection goes in the same write.
                while let Some(Some(more)) = future::poll_once(rx.recv()).await {
                    bytes.extend_from_slice(&more);
                }
                if write_all(&mut stream, &bytes, limits.header_timeout)
                    .await
                    .is_err()
                {
                    return;
                }
            }
            // Every sender is gone: the core dropped this connection.
            Event::Write(None) => return,
            Event::Timeout => {
                tracing::debug!(addr = %peer.addr, "connection timed out");
                return;
            }
        }
    }
}

/// Messages of one read handled before their answers go out.
const STREAM_BATCH: usize = 8;

/// Flushes what the messages in `timings` caused, and records their latency: what is
/// for this very connection goes onto the stream in one write, the rest (mesh
/// messages, other destinations, host names to resolve) to [`Core::flush_keeping`].
/// False when the stream failed.
async fn flush_batch<S>(
    core: &Rc<Core>,
    stream: &mut S,
    own: Option<ConnId>,
    out: &mut Outbox,
    timings: &mut SmallVec<[(Instant, bool); STREAM_BATCH]>,
) -> bool
where
    S: AsyncWrite + Unpin,
{
    let mut mine: Vec<u8> = Vec::new();
    core.flush_keeping(out, own, &mut mine).await;
    if !mine.is_empty()
        && write_all(stream, &mine, core.shared.cfg.tcp.header_timeout)
            .await
            .is_err()
    {
        return false;
    }
    for (at, sent) in timings.drain(..) {
        core.observe_latency(at, usize::from(sent));
    }
    true
}

/// Writes and flushes `bytes`, giving up after `limit` (a peer that does not read).
async fn write_all<S: AsyncWrite + Unpin>(
    stream: &mut S,
    bytes: &[u8],
    limit: Duration,
) -> io::Result<()> {
    let write = async {
        stream.write_all(bytes).await?;
        stream.flush().await
    };
    match within(limit, write).await {
        Some(r) => r,
        None => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "peer is not reading",
        )),
    }
}

/// A slot in the connection limits, released (with the core's bookkeeping) on drop.
struct ConnGuard {
    core: Rc<Core>,
    ip: Option<IpAddr>,
    seq: std::cell::Cell<Option<u64>>,
    pool_key: std::cell::Cell<Option<(Transport, SocketAddr)>>,
}

impl ConnGuard {
    /// Takes a slot, or `None` when the total (or, for inbound connections, the
    /// per-address) limit is reached.
    fn admit(core: &Rc<Core>, ip: IpAddr, inbound: bool) -> Option<ConnGuard> {
        let shared = &core.shared;
        let limits = shared.cfg.tcp;
        if shared.conns_total.fetch_add(1, Ordering::AcqRel) >= limits.max_connections {
            shared.conns_total.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        if inbound {
            let mut map = shared.conns_per_ip.lock().ok()?;
            let n = map.entry(ip).or_insert(0);
            if *n >= limits.max_per_ip {
                drop(map);
                shared.conns_total.fetch_sub(1, Ordering::AcqRel);
                return None;
            }
            *n += 1;
        }
        Some(ConnGuard {
            core: Rc::clone(core),
            ip: inbound.then_some(ip),
            seq: std::cell::Cell::new(None),
            pool_key: std::cell::Cell::new(None),
        })
    }

    /// Registers the connection's write queue with the core.
    fn register(&self, seq: u64) -> LocalReceiver<Vec<u8>> {
        let (tx, rx) = local_channel::new_bounded(WRITE_QUEUE);
        self.core.conns.borrow_mut().insert(seq, ConnEntry { tx });
        self.seq.set(Some(seq));
        rx
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        if let Some(seq) = self.seq.get() {
            self.core.conns.borrow_mut().remove(&seq);
            if let Some(key) = self.pool_key.get() {
                let mut pool = self.core.pool.borrow_mut();
                if pool.get(&key) == Some(&seq) {
                    pool.remove(&key);
                }
            }
        }
        let shared = &self.core.shared;
        shared.conns_total.fetch_sub(1, Ordering::AcqRel);
        if let Some(ip) = self.ip {
            if let Ok(mut map) = shared.conns_per_ip.lock() {
                if let Some(n) = map.get_mut(&ip) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        map.remove(&ip);
                    }
                }
            }
        }
    }
}
