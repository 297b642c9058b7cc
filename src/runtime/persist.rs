//! One core's binding store, written and synced off the SIP task queue. The shard
//! only journals its binding changes (`Shard::take_journal`); every
//! `--sync-interval` this core takes the journal and hands the writing and the
//! fsync to glommio's blocking pool, so a slow or full disk never delays a SIP
//! message (DESIGN.md §4: persistence is background work). Compaction encodes the
//! snapshot here, where the location part lives, and writes it there too.

use std::cell::RefCell;
use std::time::{Duration, Instant};

use super::store::ShardStore;
use crate::shard::Shard;

/// Log size past which a shard's binding log is folded into a snapshot.
const COMPACT_AFTER: u64 = 8 << 20;

/// A test hook: `CORESIP_TEST_STORE_STALL_MS=N` makes every write of the store
/// take N ms longer, as a slow disk would (tests/e2e_runtime.rs shows SIP traffic
/// is not held up by it). Read once per core at start.
const STALL_VAR: &str = "CORESIP_TEST_STORE_STALL_MS";

/// The store of one core, lent to the blocking pool while a write runs.
pub(crate) struct Persister {
    store: RefCell<Option<ShardStore>>,
    /// Whether this core has a store at all (the slot is empty during a write).
    present: bool,
    stall: Duration,
}

impl Persister {
    pub(crate) fn new(store: Option<ShardStore>) -> Persister {
        let stall = std::env::var(STALL_VAR)
            .ok()
            .and_then(|v| v.parse().ok())
            .map_or(Duration::ZERO, Duration::from_millis);
        Persister {
            present: store.is_some(),
            store: RefCell::new(store),
            stall,
        }
    }

    /// One round: the journal written to the log and synced, or with `compact`,
    /// once the log is large, the log replaced by a snapshot of the location part.
    /// With `wait`, waits for a round still running first (shutdown); otherwise a
    /// running round means this one is skipped, and its journal waits for the next.
    pub(crate) async fn persist(&self, shard: &RefCell<Shard>, compact: bool, wait: bool) {
        if !self.present {
            // Nothing persists here; the journal stays off (`Services::journal`).
            return;
        }
        let mut store = loop {
            if let Some(s) = self.store.borrow_mut().take() {
                break s;
            }
            if !wait {
                return;
            }
            glommio::timer::sleep(Duration::from_millis(10)).await;
        };
        let (changes, snapshot) = {
            let mut sh = shard.borrow_mut();
            let changes = sh.take_journal();
            let snapshot = (compact && store.log_len() > COMPACT_AFTER).then(|| {
                let unix = sh.unix(Instant::now());
                store.snapshot(unix, sh.engine().registrar().location())
            });
            (changes, snapshot)
        };
        let stall = self.stall;
        let (store, result) = glommio::executor()
            .spawn_blocking(move || {
                if !stall.is_zero() {
                    std::thread::sleep(stall);
                }
                let result = match snapshot {
                    // The snapshot holds what the journal said, and more.
                    Some(bytes) => store.compact_to(&bytes),
                    None => {
                        store.record(&changes);
                        store.sync()
                    }
                };
                (store, result)
            })
            .await;
        if let Err(e) = result {
            // The records stay queued in the store for the next round.
            tracing::error!(error = %e, "registrar store write failed");
        }
        self.store.replace(Some(store));
    }
}
