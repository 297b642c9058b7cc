//! The cross-core mesh (DESIGN.md §4): one bounded lock-free channel per ordered pair
//! of cores, glommio `shared_channel`s, whose receivers are woken through the
//! executor's eventfd — no `try_recv` + `yield_now` polling.
//!
//! The whole matrix is built before the executors start, so each core is told which
//! row (its senders) and column (its receivers) are its own; core indices are ours,
//! not the order in which executors happen to start.

use glommio::channels::shared_channel::{self, ConnectedReceiver, ConnectedSender};
use glommio::channels::shared_channel::{SharedReceiver, SharedSender};

/// One core's ends of the mesh, before connecting.
pub struct MeshEnds<T: Send + 'static> {
    /// `senders[to]`: the channel to core `to` (`None` for itself).
    pub senders: Vec<Option<SharedSender<T>>>,
    /// `(from, channel)` for every other core.
    pub receivers: Vec<(usize, SharedReceiver<T>)>,
}

/// The connected ends a core uses.
pub struct Mesh<T: Send + 'static> {
    /// `senders[to]`: the channel to core `to` (`None` for itself).
    pub senders: Vec<Option<ConnectedSender<T>>>,
    /// `(from, channel)` for every other core.
    pub receivers: Vec<(usize, ConnectedReceiver<T>)>,
}

/// Builds the channels of an `n`-core mesh, each holding up to `capacity` messages;
/// element `i` of the result belongs to core `i`.
pub fn build<T: Send + 'static>(n: usize, capacity: usize) -> Vec<MeshEnds<T>> {
    let mut ends: Vec<MeshEnds<T>> = (0..n)
        .map(|_| MeshEnds {
            senders: (0..n).map(|_| None).collect(),
            receivers: Vec::with_capacity(n.saturating_sub(1)),
        })
        .collect();
    for from in 0..n {
        for to in 0..n {
            if from == to {
                continue;
            }
            let (tx, rx) = shared_channel::new_bounded(capacity);
            ends[from].senders[to] = Some(tx);
            ends[to].receivers.push((from, rx));
        }
    }
    ends
}

impl<T: Send + 'static> MeshEnds<T> {
    /// Connects every end on the calling executor. All the connects run at once: a
    /// sender's connect completes only when its receiver connects on the other core,
    /// which may itself be waiting for ours.
    pub async fn connect(self) -> Mesh<T> {
        let senders: Vec<_> = self
            .senders
            .into_iter()
            .map(|s| s.map(|s| glommio::spawn_local(s.connect())))
            .collect();
        let receivers: Vec<_> = self
            .receivers
            .into_iter()
            .map(|(from, r)| (from, glommio::spawn_local(r.connect())))
            .collect();
        let mut mesh = Mesh {
            senders: Vec::with_capacity(senders.len()),
            receivers: Vec::with_capacity(receivers.len()),
        };
        for s in senders {
            mesh.senders.push(match s {
                Some(task) => Some(task.await),
                None => None,
            });
        }
        for (from, task) in receivers {
            mesh.receivers.push((from, task.await));
        }
        mesh
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use glommio::{LocalExecutorPoolBuilder, PoolPlacement};
    use std::sync::{Arc, Mutex};

    #[test]
    fn every_ordered_pair_has_a_channel() {
        let ends = build::<u32>(3, 4);
        for (i, e) in ends.iter().enumerate() {
            assert!(e.senders[i].is_none());
            assert_eq!(e.senders.iter().filter(|s| s.is_some()).count(), 2);
            let mut from: Vec<usize> = e.receivers.iter().map(|(f, _)| *f).collect();
            from.sort_unstable();
            assert_eq!(from, (0..3).filter(|&f| f != i).collect::<Vec<_>>());
        }
    }

    #[test]
    fn messages_cross_between_two_executors() {
        let slots: Arc<Mutex<Vec<Option<MeshEnds<u64>>>>> =
            Arc::new(Mutex::new(build(2, 128).into_iter().map(Some).collect()));
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let handles = LocalExecutorPoolBuilder::new(PoolPlacement::Unbound(2))
            .io_memory(1 << 20)
            .on_all_shards(move || async move {
                let id = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let ends = slots.lock().unwrap()[id].take().unwrap();
                let mesh = ends.connect().await;
                let other = 1 - id;
                for i in 0..100u64 {
                    mesh.senders[other].as_ref().unwrap().send(i).await.unwrap();
                }
                let (from, rx) = &mesh.receivers[0];
                assert_eq!(*from, other);
                let mut sum = 0;
                for _ in 0..100 {
                    sum += rx.recv().await.unwrap();
                }
                sum
            })
            .unwrap();
        for r in handles.join_all() {
            assert_eq!(r.unwrap(), 4950);
        }
    }
}
