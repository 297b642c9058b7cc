//! One executor: its Shard, its sockets, its connections, its ends of the mesh, and
//! the loops that feed them.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::os::unix::io::AsRawFd;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use glommio::net::{TcpListener, UdpSocket};
use glommio::{Latency, Shares, TaskQueueHandle};
use smallvec::SmallVec;

use super::admin::{Reporter, ShardReport, REPORT_EVERY};
use super::mesh::{Receiver as MeshReceiver, Sender as MeshSender};
use super::persist::Persister;
use super::udp_batch::{self, RecvBatch};
use super::{conn, Shared};
use crate::io::{ConnId, Dest, Peer, ShardId, Transport};
use crate::mesh::{MeshMsg, Outbox};
use crate::shard::Shard;

/// What travels between cores: a message for the sans-IO shard, or bytes to write on
/// a connection the receiving core owns (connections live on the core that accepted
/// or opened them).
#[derive(Debug)]
pub(super) enum CoreMsg {
    Shard(MeshMsg),
    Write {
        conn: ConnId,
        transport: Transport,
        fallback: Option<SocketAddr>,
        bytes: Vec<u8>,
    },
}

/// The shard's timer tick (DESIGN.md §4: a 10 ms hashed wheel).
const TICK: Duration = Duration::from_millis(10);

/// How long a stopping core waits, after sending its last binding changes, for
/// the other cores' to arrive before it persists: a mesh delivery takes
/// microseconds; this leaves room for a core busy finishing its own transactions.
const REPLICATION_SETTLE: Duration = Duration::from_millis(50);

/// The longest the timer task sleeps when nothing is due (binding expiries are
/// deadlines of their own): how late a shutdown request is noticed on an idle core.
/// Ticking every [`TICK`] regardless cost an idle core ~1% of its CPU (100 wake-ups
/// a second).
const IDLE_TICK: Duration = Duration::from_secs(1);

/// A connection this core owns, as seen from outside its task.
pub(crate) struct ConnEntry {
    /// Bytes for the connection's task to write.
    pub tx: LocalSender<Vec<u8>>,
}

/// Everything one executor owns.
pub(crate) struct Core {
    /// This core's own `Rc`, for tasks it spawns from `&self` methods.
    me: std::rc::Weak<Core>,
    pub id: ShardId,
    pub shared: Arc<Shared>,
    pub shard: RefCell<Shard>,
    /// UDP sockets by listener index.
    udp: Vec<Option<Rc<UdpSocket>>>,
    mesh: Vec<Option<MeshSender<CoreMsg>>>,
    /// `(from, channel)` for every other core.
    mesh_in: Vec<(ShardId, MeshReceiver<CoreMsg>)>,
    /// Open connections (inbound and outbound) by sequence number.
    pub conns: RefCell<ahash::AHashMap<u64, ConnEntry>>,
    /// Outbound connections by destination, for reuse.
    pub pool: RefCell<ahash::AHashMap<(Transport, SocketAddr), u64>>,
    next_conn: Cell<u64>,
    pub sip_tq: TaskQueueHandle,
    /// When the timer task next runs the shard's timers.
    timer_due: Cell<Instant>,
    /// Wakes the timer task before `timer_due` (room for one: a pending wake is enough).
    timer_kick: LocalSender<()>,
    /// The binding store, written off the SIP task queue.
    persister: Persister,
}

impl Core {
    /// A fresh connection id owned by this core.
    pub(super) fn new_conn_id(&self) -> ConnId {
        let seq = self.next_conn.get();
        self.next_conn.set(seq + 1);
        ConnId {
            shard: self.id as u16,
            seq,
        }
    }

    /// Wakes the timer task when the shard now has a timer due before the task's
    /// planned wake-up (the first transaction on an idle core, say). Called after
    /// every message the shard handles; costs a comparison when nothing changed.
    pub(super) fn schedule_timers(&self) {
        let Some(due) = self.shard.borrow().next_deadline() else {
            return;
        };
        if due < self.timer_due.get() {
            self.timer_due.set(due);
            // Full means a wake is already pending.
            let _ = self.timer_kick.try_send(());
        }
    }

    /// Records the proxy-added latency of a message received at `received` whose
    /// consequences were just handed to the kernel (or to their connections' tasks),
    /// when it had any: every transport and mesh hop included.
    pub(super) fn observe_latency(&self, received: Instant, sends: usize) {
        if sends > 0 {
            self.shard
                .borrow_mut()
                .metrics_mut()
                .observe_forward_latency(received.elapsed());
        }
    }

    /// Sends everything in `out` and clears it.
    /// Mesh messages go first: a binding change reaches the other cores' replicas
    /// before the REGISTER's response reaches the phone (and its next call).
    pub(super) async fn flush(&self, out: &mut Outbox) {
        self.flush_keeping(out, None, &mut Vec::new()).await;
    }

    /// [`Core::flush`], except that the bytes for connection `keep` are appended to
    /// `kept`: a connection's task writes those on the stream it holds itself.
    pub(super) async fn flush_keeping(
        &self,
        out: &mut Outbox,
        keep: Option<ConnId>,
        kept: &mut Vec<u8>,
    ) {
        for (to, msg) in out.drain_mesh() {
            self.send_mesh(to, CoreMsg::Shard(msg)).await;
        }
        // Consecutive datagrams from one socket go to the kernel in one sendmmsg.
        let mut datagrams: SmallVec<[(SocketAddr, &[u8]); 8]> = SmallVec::new();
        let mut from = 0u16;
        for (dest, bytes) in out.transmits() {
            match dest {
                Dest::Udp { listener, to } => {
                    if listener != from && !datagrams.is_empty() {
                        self.send_datagrams(from, &datagrams).await;
                        datagrams.clear();
                    }
                    from = listener;
                    datagrams.push((to, bytes));
                }
                Dest::Conn { conn, .. } if Some(conn) == keep => kept.extend_from_slice(bytes),
                other => {
                    if !datagrams.is_empty() {
                        self.send_datagrams(from, &datagrams).await;
                        datagrams.clear();
                    }
                    self.transmit(other, bytes).await;
                }
            }
        }
        if !datagrams.is_empty() {
            self.send_datagrams(from, &datagrams).await;
        }
        drop(datagrams);
        for name in out.drain_resolve() {
            if let Some(me) = self.me.upgrade() {
                // Boxed to a trait object: the task flushes in turn, and a named
                // future type here would be recursive.
                let task: std::pin::Pin<Box<dyn std::future::Future<Output = ()>>> =
                    Box::pin(resolve_task(me, name));
                glommio::spawn_local(task).detach();
            }
        }
        out.clear();
    }

    /// Sends one message to core `to`. Waits while its channel is full (back-pressure
    /// on whatever produced the message).
    pub(super) async fn send_mesh(&self, to: ShardId, msg: CoreMsg) {
        match self.mesh.get(to).and_then(Option::as_ref) {
            Some(tx) => {
                if tx.send(msg).await.is_err() {
                    tracing::debug!(to, "mesh peer gone; message dropped");
                }
            }
            None => tracing::debug!(to, "no mesh channel; message dropped"),
        }
    }

    /// Sends `datagrams` from the UDP socket of `listener`, as many per system call as
    /// the kernel takes; waits (through glommio) only when the socket's buffer is full.
    /// A response larger than --udp-mtu still goes over UDP: RFC 3261 §18.2.1 moves
    /// only requests to a congestion-controlled transport.
    async fn send_datagrams(&self, listener: u16, datagrams: &[(SocketAddr, &[u8])]) {
        let Some(sock) = self.udp.get(listener as usize).and_then(Option::as_ref) else {
            return;
        };
        let mut rest = datagrams;
        while let Some(&(to, bytes)) = rest.first() {
            let sent = match udp_batch::send_batch(sock.as_raw_fd(), rest) {
                Ok(n) if n > 0 => n,
                Ok(_) => 0,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => 0,
                Err(e) => {
                    // This datagram failed (no route, say); the next ones may not.
                    tracing::debug!(%to, error = %e, "UDP send failed");
                    1
                }
            };
            if sent == 0 {
                // The send buffer is full: wait for room for this one.
                if let Err(e) = sock.send_to(bytes, to).await {
                    tracing::debug!(%to, error = %e, "UDP send failed");
                }
                rest = rest.get(1..).unwrap_or_default();
            } else {
                rest = rest.get(sent..).unwrap_or_default();
            }
        }
    }

    /// Sends `bytes` to `dest`.
    pub(super) async fn transmit(&self, dest: Dest, bytes: &[u8]) {
        match dest {
            Dest::Udp { listener, to } => self.send_datagrams(listener, &[(to, bytes)]).await,
            Dest::Conn {
                conn,
                transport,
                fallback,
            } => {
                if conn.shard as usize != self.id {
                    let msg = CoreMsg::Write {
                        conn,
                        transport,
                        fallback,
                        bytes: bytes.to_vec(),
                    };
                    self.send_mesh(conn.shard as usize, msg).await;
                } else {
                    self.write_own(conn.seq, transport, fallback, bytes.to_vec());
                }
            }
            Dest::Stream { transport, to } => self.stream_send(transport, to, bytes.to_vec()),
        }
    }

    /// Queues `bytes` on connection `seq` of this core; when it has closed, opens a new
    /// connection to `fallback` (RFC 3261 §18.2.2).
    pub(super) fn write_own(
        &self,
        seq: u64,
        transport: Transport,
        fallback: Option<SocketAddr>,
        bytes: Vec<u8>,
    ) {
        let bytes = match self.conns.borrow().get(&seq) {
            Some(entry) => match entry.tx.try_send(bytes) {
                Ok(()) => return,
                Err(e) => {
                    tracing::debug!(seq, error = %e, "connection write queue full or closed");
                    return;
                }
            },
            None => bytes,
        };
        if let Some(to) = fallback {
            self.stream_send(transport, to, bytes);
        }
    }

    /// Sends `bytes` over a pooled connection to `to`, opening one if needed.
    pub(super) fn stream_send(&self, transport: Transport, to: SocketAddr, bytes: Vec<u8>) {
        let existing = self.pool.borrow().get(&(transport, to)).copied();
        if let Some(seq) = existing {
            if let Some(entry) = self.conns.borrow().get(&seq) {
                if entry.tx.try_send(bytes).is_err() {
                    tracing::debug!(%to, "outbound write queue full; message dropped");
                }
                return;
            }
        }
        if let Some(me) = self.me.upgrade() {
            conn::open(&me, transport, to, bytes);
        }
    }

    /// Handles one message from another core.
    async fn on_mesh(&self, msg: CoreMsg, out: &mut Outbox) {
        match msg {
            CoreMsg::Write {
                conn,
                transport,
                fallback,
                bytes,
            } => self.write_own(conn.seq, transport, fallback, bytes),
            CoreMsg::Shard(other) => {
                let received = match &other {
                    MeshMsg::Inbound { received, .. } => Some(*received),
                    _ => None,
                };
                self.shard.borrow_mut().on_mesh(Instant::now(), other, out);
                self.schedule_timers();
                if !out.is_empty() {
                    let sends = out.transmit_count();
                    self.flush(out).await;
                    if let Some(received) = received {
                        self.observe_latency(received, sends);
                    }
                }
            }
        }
    }

    /// Handles the messages other cores have already sent, before a message from
    /// the network: they were sent first. A binding removal another core made
    /// before answering its REGISTER then reaches this core's replica before a
    /// call that follows that answer does, even when the network read would
    /// otherwise run first (a read that succeeds at once never yields to the mesh
    /// tasks). Costs a look at each channel when they are empty.
    pub(super) async fn drain_mesh(&self, out: &mut Outbox) {
        for (_, rx) in &self.mesh_in {
            while let Some(msg) = rx.try_recv() {
                self.on_mesh(msg, out).await;
            }
        }
    }

    /// This core's own `Rc`, for tasks it spawns.
    fn rc(self: &Rc<Self>) -> Rc<Self> {
        Rc::clone(self)
    }
}

/// The executor's main future: sets everything up, runs until shutdown, then gives
/// in-flight work up to `--shutdown-grace` to finish.
pub(crate) async fn core_main(shared: Arc<Shared>) -> Result<(), String> {
    let id = shared.next_core.fetch_add(1, Ordering::AcqRel);
    let ex = glommio::executor();
    let sip_tq = ex.create_task_queue(
        Shares::Static(1000),
        Latency::Matters(Duration::from_millis(2)),
        "sip",
    );
    let bg_tq = ex.create_task_queue(Shares::Static(100), Latency::NotImportant, "background");

    let mesh = match shared.take_mesh(id) {
        Some(ends) => ends,
        None => return Err(format!("core {id}: no mesh ends")),
    };
    let sockets = shared.take_sockets(id);
    let cfg = &shared.cfg;

    let mut udp: Vec<Option<Rc<UdpSocket>>> = (0..cfg.listen.len()).map(|_| None).collect();
    for (i, s) in sockets.udp {
        if let Some(slot) = udp.get_mut(i as usize) {
            *slot = Some(Rc::new(UdpSocket::from(s)));
        }
    }
    let (timer_kick, timer_kicked) = local_channel::new_bounded(1);
    let core = Rc::new_cyclic(|me| Core {
        me: me.clone(),
        id,
        shard: RefCell::new(Shard::new(
            id,
            cfg,
            shared.local_ips.clone(),
            shared.take_services(id),
        )),
        shared: Arc::clone(&shared),
        udp,
        mesh: mesh.senders,
        mesh_in: mesh.receivers,
        conns: RefCell::new(ahash::AHashMap::new()),
        pool: RefCell::new(ahash::AHashMap::new()),
        next_conn: Cell::new(0),
        sip_tq,
        timer_due: Cell::new(Instant::now()),
        timer_kick,
        persister: Persister::new(shared.take_store(id)),
    });

    for i in 0..core.mesh_in.len() {
        glommio::spawn_local_into(mesh_loop(core.rc(), i), sip_tq)
            .map_err(|e| e.to_string())?
            .detach();
    }
    // Listener tasks are kept (not detached) so that dropping them at shutdown
    // cancels them: that is "stop accepting".
    let mut listeners = Vec::new();
    for (i, sock) in core.udp.iter().enumerate() {
        if let Some(sock) = sock {
            let task =
                glommio::spawn_local_into(udp_loop(core.rc(), i as u16, Rc::clone(sock)), sip_tq)
                    .map_err(|e| e.to_string())?;
            listeners.push(task);
        }
    }
    for (i, transport, s) in sockets.stream {
        // SAFETY-free conversion: glommio takes ownership of the listening fd.
        let listener = into_listener(s);
        let task =
            glommio::spawn_local_into(conn::accept_loop(core.rc(), i, transport, listener), sip_tq)
                .map_err(|e| e.to_string())?;
        listeners.push(task);
    }
    glommio::spawn_local_into(persist_loop(core.rc(), cfg.registrar.sync_interval), bg_tq)
        .map_err(|e| e.to_string())?
        .detach();
    if let Some(reporter) = shared.reporter.clone() {
        glommio::spawn_local_into(report_loop(core.rc(), reporter), bg_tq)
            .map_err(|e| e.to_string())?
            .detach();
    }
    super::core_started(&shared);

    let mut out = Outbox::new();
    while !shared.shutdown.load(Ordering::Relaxed) {
        wait_for_timers(&core, &timer_kicked).await;
        core.shard.borrow_mut().on_tick(Instant::now(), &mut out);
        if !out.is_empty() {
            core.flush(&mut out).await;
        }
    }

    // Stop accepting and receiving; let in-flight transactions finish.
    drop(listeners);
    let deadline = Instant::now() + cfg.shutdown_grace;
    while core.shard.borrow().in_flight() > 0 && Instant::now() < deadline {
        glommio::timer::sleep(TICK).await;
        core.shard.borrow_mut().on_tick(Instant::now(), &mut out);
        core.flush(&mut out).await;
    }
    // Nothing registered is lost on a clean stop: the bindings this core accepted
    // for AORs another core persists go to it now, and the other cores' reach
    // this one while it waits.
    core.shard.borrow_mut().flush_replication(&mut out);
    core.flush(&mut out).await;
    if cfg.cores > 1 && !cfg.proxy.stateless {
        glommio::timer::sleep(REPLICATION_SETTLE).await;
    }
    core.persister.persist(&core.shard, false, true).await;
    let s = core.shard.borrow().stats();
    tracing::info!(
        core = id,
        local = s.local,
        forwarded = s.forwarded,
        from_mesh = s.from_mesh,
        dropped = s.dropped,
        "core stopped"
    );
    Ok(())
}

/// Sleeps until the shard's next timer tick, at most [`IDLE_TICK`], or until
/// [`Core::schedule_timers`] asks for an earlier run. Under load a transaction
/// timer is always pending and this wakes every [`TICK`]; an idle core wakes
/// once a second instead of 100 times.
async fn wait_for_timers(core: &Core, kicked: &LocalReceiver<()>) {
    let now = Instant::now();
    let idle = now + IDLE_TICK;
    let due = core
        .shard
        .borrow()
        .next_deadline()
        .map_or(idle, |t| t.min(idle));
    core.timer_due.set(due);
    let wait = due.saturating_duration_since(now);
    if wait.is_zero() {
        return;
    }
    futures_lite::future::or(glommio::timer::sleep(wait), async {
        kicked.recv().await;
    })
    .await;
}

/// Resolves a next hop's host name with the system resolver on glommio's blocking
/// pool (never on the reactor), and hands the answer to the shard.
async fn resolve_task(core: Rc<Core>, name: String) {
    let lookup = name.clone();
    let addrs: Vec<std::net::IpAddr> = glommio::executor()
        .spawn_blocking(move || {
            use std::net::ToSocketAddrs;
            (lookup.as_str(), 0)
                .to_socket_addrs()
                .map(|it| it.map(|a| a.ip()).collect())
                .unwrap_or_default()
        })
        .await;
    if addrs.is_empty() {
        tracing::debug!(%name, "host name did not resolve");
    }
    let mut out = Outbox::new();
    core.shard
        .borrow_mut()
        .on_resolved(Instant::now(), &name, &addrs, &mut out);
    core.schedule_timers();
    core.flush(&mut out).await;
}

/// Background (NotImportant queue): writes and fsyncs the binding changes every
/// `interval` on the blocking pool, so a crash loses at most that much, and
/// compacts the log now and then.
async fn persist_loop(core: Rc<Core>, interval: Duration) {
    let mut since_compact = Duration::ZERO;
    loop {
        glommio::timer::sleep(interval).await;
        since_compact += interval;
        let compact = since_compact >= Duration::from_secs(60);
        if compact {
            since_compact = Duration::ZERO;
        }
        core.persister.persist(&core.shard, compact, false).await;
    }
}

fn into_listener(s: socket2::Socket) -> TcpListener {
    use std::os::unix::io::{FromRawFd, IntoRawFd};
    let fd = s.into_raw_fd();
    // SAFETY: `fd` is a bound, listening TCP socket whose ownership moves here.
    unsafe { TcpListener::from_raw_fd(fd) }
}

/// Inline room for the timings of a batch (`--udp-batch`, 4 by default).
const BATCH_INLINE: usize = 16;

/// Receives datagrams on one UDP socket and feeds them to the shard.
///
/// It waits for a datagram through glommio, then takes what else is queued
/// `--udp-batch` at a time with `recvmmsg`, and sends what each batch produced with
/// `sendmmsg` ([`Core::flush`]) before taking the next: one system call each way per
/// batch instead of per datagram when a burst arrives, the same as before for a
/// datagram that arrives alone.
async fn udp_loop(core: Rc<Core>, listener: u16, sock: Rc<UdpSocket>) {
    let max = core.shared.cfg.max_message_size;
    // One byte more than the limit tells a datagram over the limit from one at it.
    let mut buf = vec![0u8; max + 1];
    // What a batch adds to a datagram's proxy-added latency is the handling of the
    // others: some 3 × 4 µs at the default of 4.
    let mut batch = RecvBatch::new(core.shared.cfg.udp.batch, max + 1);
    let mut pending = Pending::default();
    loop {
        let (n, from) = match sock.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(error = %e, "UDP receive failed");
                continue;
            }
        };
        if let Some(bytes) = buf.get(..n) {
            pending.take(&core, listener, bytes, from).await;
        }
        let mut drained = false;
        loop {
            pending.flush(&core).await;
            glommio::yield_if_needed().await;
            if drained {
                break;
            }
            let taken = match batch.recv(sock.as_raw_fd()) {
                Ok(k) => k,
                Err(e) => {
                    tracing::debug!(error = %e, "UDP receive failed");
                    0
                }
            };
            if taken == 0 {
                break;
            }
            for i in 0..taken {
                if let Some((bytes, from)) = batch.get(i) {
                    pending.take(&core, listener, bytes, from).await;
                }
            }
            // A batch with room to spare found the queue empty a moment ago: asking
            // again would mostly cost a `recvmmsg` that finds nothing. `recv_from`
            // asks instead, as glommio tries a plain `recvmsg` before it arms
            // io_uring after every receive that had to wait (measured at 4,500
            // calls/s: 2.1 → 1.8 `recvmmsg` per call, 0.5 → 0.55 `recvmsg`).
            drained = taken < batch.capacity();
        }
    }
}

/// What the datagrams of a UDP batch caused, waiting for the batch's flush.
#[derive(Default)]
struct Pending {
    out: Outbox,
    /// For the mesh messages handled between two datagrams (they flush themselves).
    mesh_out: Outbox,
    /// When each datagram arrived, and whether it caused any send.
    timings: SmallVec<[(Instant, bool); BATCH_INLINE]>,
}

impl Pending {
    /// Hands one datagram to the shard. Mesh messages that arrived first are
    /// handled first.
    ///
    /// A datagram over --max-message-size (its buffer holds one byte more, so it
    /// shows) is the shard's to drop and count.
    async fn take(&mut self, core: &Core, listener: u16, bytes: &[u8], from: SocketAddr) {
        core.drain_mesh(&mut self.mesh_out).await;
        let received = Instant::now();
        let before = self.out.transmit_count();
        core.shard.borrow_mut().on_datagram(
            received,
            Peer::udp(from, listener),
            bytes,
            &mut self.out,
        );
        core.schedule_timers();
        self.timings
            .push((received, self.out.transmit_count() > before));
    }

    /// Sends what the batch caused and records each datagram's latency.
    async fn flush(&mut self, core: &Core) {
        core.flush(&mut self.out).await;
        for (received, sent) in self.timings.drain(..) {
            core.observe_latency(received, usize::from(sent));
        }
    }
}

/// Receives the messages the core of `mesh_in[index]` sends to this one.
async fn mesh_loop(core: Rc<Core>, index: usize) {
    let Some((from, rx)) = core.mesh_in.get(index) else {
        return;
    };
    let mut out = Outbox::new();
    while let Some(msg) = rx.recv().await {
        core.on_mesh(msg, &mut out).await;
    }
    tracing::debug!(from, "mesh channel closed");
}

/// Sends the shard's snapshot to the admin thread once a second (background queue).
/// Never waits on the admin thread: a report it has no room for is dropped, and the
/// next one supersedes it.
async fn report_loop(core: Rc<Core>, reporter: Reporter) {
    loop {
        let mut snapshot = core.shard.borrow().snapshot();
        // Connections are the runtime's, not the shard's.
        snapshot.connections_open = core.conns.borrow().len() as u64;
        if !reporter.offer(ShardReport {
            shard: core.id,
            snapshot,
        }) {
            tracing::debug!(core = core.id, "metrics snapshot dropped");
        }
        glommio::timer::sleep(REPORT_EVERY).await;
    }
}
