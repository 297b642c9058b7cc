//! The cross-core mesh (DESIGN.md §4): one bounded lock-free channel per ordered pair
//! of cores, whose receiver is woken through its executor (a foreign wake: the
//! executor's eventfd) — no `try_recv` + `yield_now` polling.
//!
//! Not glommio's `shared_channel`: its receiver, after taking each message, wakes
//! the sending core whenever that core has gone to sleep, whether or not anything
//! there waits for room. A message to an idle core then cost two cross-core
//! wake-ups instead of one (measured on the 2-core VM: about 50 µs of CPU per hop).
//! Here the receiver wakes a sender only when one is waiting for room, and a
//! sender wakes the receiver only when its task waits for a message.
//!
//! The whole matrix is built before the executors start, so each core is told which
//! row (its senders) and column (its receivers) are its own; core indices are ours,
//! not the order in which executors happen to start.

use std::future::poll_fn;
use std::sync::Arc;
use std::task::Poll;

use atomic_waker::AtomicWaker;
use crossbeam_channel::{TryRecvError, TrySendError};

/// The tasks waiting on one direction between two cores.
#[derive(Default)]
struct Waiting {
    /// The receiving task, while it waits for a message.
    receiver: AtomicWaker,
    /// A sending task, while it waits for room.
    sender: AtomicWaker,
}

/// The sending end of one mesh channel.
pub struct Sender<T> {
    /// `None` only while dropping: the channel ends before the receiver is woken.
    tx: Option<crossbeam_channel::Sender<T>>,
    waiting: Arc<Waiting>,
}

/// The receiving end of one mesh channel.
pub struct Receiver<T> {
    /// `None` only while dropping.
    rx: Option<crossbeam_channel::Receiver<T>>,
    waiting: Arc<Waiting>,
}

impl<T> Sender<T> {
    /// Sends `item`, waiting while the channel is full (back-pressure on whatever
    /// produced it). `Err(item)` when the receiving core is gone.
    pub async fn send(&self, item: T) -> Result<(), T> {
        let Some(tx) = &self.tx else {
            return Err(item);
        };
        let mut item = Some(item);
        poll_fn(|cx| {
            // Full: wait for room, registered before trying once more (room may
            // have appeared in between).
            let mut registered = false;
            loop {
                let Some(v) = item.take() else {
                    return Poll::Ready(Ok(()));
                };
                match tx.try_send(v) {
                    Ok(()) => {
                        self.waiting.receiver.wake();
                        return Poll::Ready(Ok(()));
                    }
                    Err(TrySendError::Disconnected(v)) => return Poll::Ready(Err(v)),
                    Err(TrySendError::Full(v)) => {
                        item = Some(v);
                        if registered {
                            return Poll::Pending;
                        }
                        self.waiting.sender.register(cx.waker());
                        registered = true;
                    }
                }
            }
        })
        .await
    }
}

impl<T> Receiver<T> {
    /// The next message; `None` once every sender is gone and the channel is empty.
    pub async fn recv(&self) -> Option<T> {
        poll_fn(|cx| match self.take() {
            Some(r) => Poll::Ready(r),
            None => {
                self.waiting.receiver.register(cx.waker());
                // A message may have arrived before the registration.
                match self.take() {
                    Some(r) => Poll::Ready(r),
                    None => Poll::Pending,
                }
            }
        })
        .await
    }

    /// A message already waiting, if any (never waits).
    pub fn try_recv(&self) -> Option<T> {
        self.take().flatten()
    }

    /// A message or the end of the channel, or `None` when it is merely empty.
    fn take(&self) -> Option<Option<T>> {
        let rx = self.rx.as_ref()?;
        match rx.try_recv() {
            Ok(v) => {
                // Room now: a sender waiting for it may go on.
                self.waiting.sender.wake();
                Some(Some(v))
            }
            Err(TryRecvError::Disconnected) => Some(None),
            Err(TryRecvError::Empty) => None,
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        // A waiting receiver sees the end of the channel.
        drop(self.tx.take());
        self.waiting.receiver.wake();
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        // A sender waiting for room learns that none will come.
        drop(self.rx.take());
        self.waiting.sender.wake();
    }
}

fn channel<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    let (tx, rx) = crossbeam_channel::bounded(capacity);
    let waiting = Arc::new(Waiting::default());
    (
        Sender {
            tx: Some(tx),
            waiting: Arc::clone(&waiting),
        },
        Receiver {
            rx: Some(rx),
            waiting,
        },
    )
}

/// One core's ends of the mesh.
pub struct MeshEnds<T: Send + 'static> {
    /// `senders[to]`: the channel to core `to` (`None` for itself).
    pub senders: Vec<Option<Sender<T>>>,
    /// `(from, channel)` for every other core.
    pub receivers: Vec<(usize, Receiver<T>)>,
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
            let (tx, rx) = channel(capacity);
            ends[from].senders[to] = Some(tx);
            ends[to].receivers.push((from, rx));
        }
    }
    ends
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

    /// Runs `body(core, its ends)` on two executors joined by a `capacity` mesh;
    /// the results in core order.
    fn on_two_executors<R, F>(capacity: usize, body: fn(usize, MeshEnds<u64>) -> F) -> Vec<R>
    where
        R: Send + 'static,
        F: std::future::Future<Output = R> + 'static,
    {
        let slots: Arc<Mutex<Vec<Option<MeshEnds<u64>>>>> = Arc::new(Mutex::new(
            build(2, capacity).into_iter().map(Some).collect(),
        ));
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut results: Vec<(usize, R)> = LocalExecutorPoolBuilder::new(PoolPlacement::Unbound(2))
            .io_memory(1 << 20)
            .on_all_shards(move || async move {
                let id = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let mesh = slots.lock().unwrap()[id].take().unwrap();
                (id, body(id, mesh).await)
            })
            .unwrap()
            .join_all()
            .into_iter()
            .map(|r| r.unwrap())
            .collect();
        results.sort_by_key(|(id, _)| *id);
        results.into_iter().map(|(_, r)| r).collect()
    }

    #[test]
    fn messages_cross_between_two_executors() {
        let sums = on_two_executors(128, |id, mesh| async move {
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
        });
        assert_eq!(sums, [4950, 4950]);
    }

    #[test]
    fn a_full_channel_holds_the_sender_until_there_is_room() {
        // Capacity 4, 2,000 messages: the sender waits for room again and again and
        // is woken by the receiver each time; everything arrives, in order.
        let done = on_two_executors(4, |id, mut mesh| async move {
            if id == 0 {
                let tx = mesh.senders[1].take().unwrap();
                for i in 0..2000u64 {
                    tx.send(i).await.unwrap();
                }
                // Dropping the sender ends the channel for the receiver.
                drop(tx);
                true
            } else {
                let (_, rx) = mesh.receivers.pop().unwrap();
                let mut expected = 0;
                while let Some(v) = rx.recv().await {
                    assert_eq!(v, expected);
                    expected += 1;
                    if expected % 100 == 0 {
                        glommio::timer::sleep(std::time::Duration::from_millis(1)).await;
                    }
                }
                expected == 2000
            }
        });
        assert_eq!(done, [true, true]);
    }

    #[test]
    fn sending_to_a_core_that_is_gone_fails() {
        let mut ends = build::<u32>(2, 1);
        let tx = ends[0].senders[1].take().unwrap();
        drop(ends.pop());
        let r = futures_lite::future::block_on(tx.send(7));
        assert_eq!(r, Err(7));
    }
}
