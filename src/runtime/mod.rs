//! All the I/O (DESIGN.md §1, §2): one pinned glommio executor per core, each owning
//! a [`Shard`](crate::shard::Shard), every listener bound on every core with
//! SO_REUSEPORT, and a lock-free mesh between the cores. This module only moves bytes
//! and time in and out of the shards.

pub(crate) mod admin;
mod conn;
mod core;
pub(crate) mod mesh;
mod persist;
pub(crate) mod secrets;
mod services;
pub(crate) mod sockets;
mod steering;
pub(crate) mod store;
#[cfg(test)]
mod store_tests;
pub(crate) mod tls;
mod udp_batch;

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use glommio::{LocalExecutorPoolBuilder, PoolPlacement};

use crate::config::{Config, ListenSpec, Transport};

/// io_uring registered buffer memory per executor (DESIGN.md §5).
const IO_MEMORY: usize = 1 << 20;
/// Locked memory each executor needs: its registered buffers plus the rings.
const MEMLOCK_PER_CORE: u64 = 2 << 20;
/// Messages a mesh channel holds before senders wait.
const MESH_CAPACITY: usize = 4096;

/// Why the proxy could not run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(
        "another process already listens on {0} (SO_REUSEPORT would split the traffic with it)"
    )]
    PortInUse(ListenSpec),
    #[error("cannot bind {0}: {1}")]
    Bind(ListenSpec, std::io::Error),
    #[error("RLIMIT_MEMLOCK is {have} KiB and cannot be raised to the {need} KiB io_uring needs; raise it (ulimit -l, LimitMEMLOCK= in systemd)")]
    Memlock { have: u64, need: u64 },
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("registrar store: {0}")]
    Store(store::StoreError),
    #[error("{0}")]
    Users(crate::auth::users::UsersError),
    #[error("nonce secret: {0}")]
    Secret(crate::auth::nonce::SecretError),
    #[error(transparent)]
    Admin(#[from] admin::AdminError),
    #[error("executor: {0}")]
    Executor(String),
}

/// The sockets one core takes when it starts.
#[derive(Default)]
struct CoreSockets {
    /// (listener index, socket) of the UDP listeners.
    udp: Vec<(u16, socket2::Socket)>,
    /// (listener index, transport, socket) of the TCP and TLS listeners.
    stream: Vec<(u16, Transport, socket2::Socket)>,
}

/// What every core reads; set up before the executors start.
pub(crate) struct Shared {
    pub cfg: Config,
    sockets: Mutex<Vec<Option<CoreSockets>>>,
    pub tls_server: Option<Arc<rustls::ServerConfig>>,
    pub tls_client: Arc<rustls::ClientConfig>,
    pub local_ips: Vec<IpAddr>,
    /// Set by SIGTERM/SIGINT.
    pub shutdown: Arc<AtomicBool>,
    mesh: Mutex<Vec<Option<mesh::MeshEnds<core::CoreMsg>>>>,
    /// Each core's registrar and its binding store, taken when it starts.
    services: Mutex<Vec<Option<crate::proxy::Services>>>,
    stores: Mutex<Vec<Option<store::ShardStore>>>,
    auth: Option<services::AuthParts>,
    /// Hands out core indices as executors start.
    next_core: AtomicUsize,
    /// Cores that have started (the last one says "ready").
    started: AtomicUsize,
    /// Stream connections open, all cores.
    pub conns_total: AtomicUsize,
    /// Inbound stream connections open per source address, all cores. Touched only
    /// when a connection opens or closes, never per message.
    pub conns_per_ip: Mutex<ahash::AHashMap<IpAddr, usize>>,
    /// Where cores send their metrics snapshots; `None` when the admin thread has
    /// nothing to do (no --metrics, --stats-interval 0s).
    pub reporter: Option<admin::Reporter>,
}

impl Shared {
    fn take_mesh(&self, core: usize) -> Option<mesh::MeshEnds<core::CoreMsg>> {
        self.mesh
            .lock()
            .ok()
            .and_then(|mut v| v.get_mut(core).and_then(Option::take))
    }

    /// The binding store of `core` (`None` when it keeps bindings in memory).
    pub(crate) fn take_store(&self, core: usize) -> Option<store::ShardStore> {
        self.stores
            .lock()
            .ok()
            .and_then(|mut v| v.get_mut(core).and_then(Option::take))
    }

    /// The registrar, journal and authentication of `core`.
    pub(crate) fn take_services(&self, core: usize) -> crate::proxy::Services {
        let mut s = self
            .services
            .lock()
            .ok()
            .and_then(|mut v| v.get_mut(core).and_then(Option::take))
            .unwrap_or_else(|| crate::proxy::Services::in_memory(&self.cfg));
        s.auth = self.auth.as_ref().map(services::AuthParts::for_shard);
        s
    }

    fn take_sockets(&self, core: usize) -> CoreSockets {
        self.sockets
            .lock()
            .ok()
            .and_then(|mut v| v.get_mut(core).and_then(Option::take))
            .unwrap_or_default()
    }
}

/// Runs the proxy until SIGTERM or SIGINT.
pub fn run(cfg: Config) -> Result<(), RunError> {
    let shutdown = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, Arc::clone(&shutdown))
            .map_err(|e| RunError::Executor(format!("installing signal handlers: {e}")))?;
    }
    run_until(cfg, shutdown)
}

/// Runs the proxy until `shutdown` becomes true.
pub(crate) fn run_until(cfg: Config, shutdown: Arc<AtomicBool>) -> Result<(), RunError> {
    raise_memlock(cfg.cores as u64 * MEMLOCK_PER_CORE)?;

    for spec in &cfg.listen {
        match sockets::in_use(spec) {
            Ok(true) => return Err(RunError::PortInUse(*spec)),
            Ok(false) => {}
            Err(e) => return Err(RunError::Bind(*spec, e)),
        }
    }
    let mut per_core: Vec<Option<CoreSockets>> = Vec::with_capacity(cfg.cores);
    for _ in 0..cfg.cores {
        let mut cs = CoreSockets::default();
        for (i, spec) in cfg.listen.iter().enumerate() {
            let i = i as u16;
            match spec.transport {
                Transport::Udp => cs.udp.push((
                    i,
                    sockets::bind_udp(spec, &cfg.udp).map_err(|e| RunError::Bind(*spec, e))?,
                )),
                t => cs.stream.push((
                    i,
                    t,
                    sockets::bind_tcp(spec).map_err(|e| RunError::Bind(*spec, e))?,
                )),
            }
        }
        per_core.push(Some(cs));
    }
    steer_responses(&cfg, &per_core);

    let tls_server = if cfg.listen.iter().any(|l| l.transport == Transport::Tls) {
        Some(tls::server_config(&cfg)?)
    } else {
        None
    };
    let tls_client = tls::client_config(&cfg)?;

    let mut local_ips = sockets::interface_ips();
    for l in &cfg.listen {
        if !l.addr.ip().is_unspecified() && !local_ips.contains(&l.addr.ip()) {
            local_ips.push(l.addr.ip());
        }
    }

    let loaded = services::load(&cfg)?;
    // Started before the executors so that a taken metrics port stops startup; dropped
    // (stopped and joined) when this function returns, after the executors.
    let admin = if cfg.metrics.is_some() || !cfg.stats_interval.is_zero() {
        Some(admin::Admin::start(
            cfg.cores,
            cfg.metrics,
            cfg.stats_interval,
        )?)
    } else {
        None
    };
    let reporter = admin.as_ref().map(admin::Admin::reporter);

    let cores = cfg.cores;
    let shared = Arc::new(Shared {
        services: Mutex::new(loaded.services.into_iter().map(Some).collect()),
        stores: Mutex::new(loaded.stores.into_iter().map(Some).collect()),
        auth: loaded.auth,
        cfg,
        sockets: Mutex::new(per_core),
        tls_server,
        tls_client,
        local_ips,
        shutdown,
        mesh: Mutex::new(
            mesh::build(cores, MESH_CAPACITY)
                .into_iter()
                .map(Some)
                .collect(),
        ),
        next_core: AtomicUsize::new(0),
        started: AtomicUsize::new(0),
        conns_total: AtomicUsize::new(0),
        conns_per_ip: Mutex::new(ahash::AHashMap::new()),
        reporter,
    });

    let handles = LocalExecutorPoolBuilder::new(PoolPlacement::MaxSpread(cores, None))
        .name("coresip")
        .io_memory(IO_MEMORY)
        .on_all_shards({
            let shared = Arc::clone(&shared);
            move || core::core_main(shared)
        })
        .map_err(|e| RunError::Executor(e.to_string()))?;
    let mut failure = None;
    for r in handles.join_all() {
        match r {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failure = Some(e),
            Err(e) => failure = Some(e.to_string()),
        }
    }
    match failure {
        Some(e) => Err(RunError::Executor(e)),
        None => {
            tracing::info!("stopped");
            Ok(())
        }
    }
}

/// Attaches the response-steering program (see [`steering`]) to every UDP
/// listener's SO_REUSEPORT group, once all cores' sockets are bound in core order.
/// Without it (an old kernel, more than 256 cores, a stateless proxy that has no
/// transactions to find) responses still work, one mesh hop away.
fn steer_responses(cfg: &Config, per_core: &[Option<CoreSockets>]) {
    if cfg.cores < 2 || cfg.cores > steering::MAX_CORES || cfg.proxy.stateless {
        return;
    }
    let Some(Some(first)) = per_core.first() else {
        return;
    };
    for (i, sock) in &first.udp {
        if let Err(e) = steering::attach(sock) {
            let spec = cfg.listen.get(*i as usize).map(ToString::to_string);
            tracing::warn!(listener = ?spec, error = %e, "UDP response steering not available");
        }
    }
}

/// Called by each core once its sockets are up; the last one logs readiness.
fn core_started(shared: &Shared) {
    let n = shared.started.fetch_add(1, Ordering::AcqRel) + 1;
    if n == shared.cfg.cores {
        let listen: Vec<String> = shared.cfg.listen.iter().map(|l| l.to_string()).collect();
        tracing::info!(
            cores = n,
            listen = %listen.join(" "),
            "ready"
        );
    }
}

/// Makes sure the process may lock `need` bytes (io_uring's registered buffers count
/// against RLIMIT_MEMLOCK; below 512 KiB glommio refuses to start, DESIGN.md §5).
fn raise_memlock(need: u64) -> Result<(), RunError> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain libc calls on a local struct.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) } != 0 {
        return Ok(()); // cannot tell: let the executor report it
    }
    if lim.rlim_cur == libc::RLIM_INFINITY || lim.rlim_cur >= need {
        return Ok(());
    }
    let want = libc::rlimit {
        rlim_cur: need,
        rlim_max: if lim.rlim_max == libc::RLIM_INFINITY {
            lim.rlim_max
        } else {
            lim.rlim_max.max(need)
        },
    };
    // SAFETY: as above. Raising the hard limit works only with CAP_SYS_RESOURCE.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &want) } == 0 {
        tracing::info!(kib = need >> 10, "raised RLIMIT_MEMLOCK");
        return Ok(());
    }
    Err(RunError::Memlock {
        have: lim.rlim_cur >> 10,
        need: need >> 10,
    })
}
