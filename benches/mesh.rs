//! Cross-core mesh: hop latency (ping-pong between two executors) and one-way
//! throughput, for bare `u64`s and for `MeshMsg::Inbound` carrying a typical
//! 600-byte SIP message. Standalone (`cargo bench --bench mesh`), bounded in count.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use coresip::internals::{self as mesh, MeshEnds};
use coresip::io::{Peer, Transport};
use coresip::MeshMsg;
use glommio::{LocalExecutorPoolBuilder, PoolPlacement};

const ROUND_TRIPS: usize = 20_000;
const ONE_WAY: usize = 1_000_000;
const ONE_WAY_MSGS: usize = 200_000;

/// Runs `body(core, mesh)` on two pinned executors joined by a fresh mesh.
fn on_two_cores<T, R>(body: impl Fn(usize, MeshEnds<T>) -> R + Clone + Send + 'static)
where
    T: Send + 'static,
    R: std::future::Future<Output = ()> + 'static,
{
    let slots: Arc<Mutex<Vec<Option<MeshEnds<T>>>>> = Arc::new(Mutex::new(
        mesh::build(2, 4096).into_iter().map(Some).collect(),
    ));
    let next = Arc::new(AtomicUsize::new(0));
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let placement = if cpus >= 2 {
        PoolPlacement::MaxSpread(2, None)
    } else {
        PoolPlacement::Unbound(2)
    };
    LocalExecutorPoolBuilder::new(placement)
        .io_memory(1 << 20)
        .on_all_shards(move || async move {
            let id = next.fetch_add(1, Ordering::SeqCst);
            let m = slots.lock().unwrap()[id].take().unwrap();
            body(id, m).await
        })
        .unwrap()
        .join_all();
}

fn latency() {
    let result = Arc::new(Mutex::new(Vec::<Duration>::new()));
    let out = Arc::clone(&result);
    on_two_cores::<u64, _>(move |id, m| {
        let out = Arc::clone(&out);
        async move {
            let other = 1 - id;
            let tx = m.senders[other].as_ref().unwrap();
            let rx = &m.receivers[0].1;
            if id == 0 {
                let mut rtts = Vec::with_capacity(ROUND_TRIPS);
                for i in 0..ROUND_TRIPS as u64 {
                    let t = Instant::now();
                    tx.send(i).await.unwrap();
                    let back = rx.recv().await.unwrap();
                    assert_eq!(back, i);
                    rtts.push(t.elapsed());
                }
                *out.lock().unwrap() = rtts;
            } else {
                for _ in 0..ROUND_TRIPS {
                    let v = rx.recv().await.unwrap();
                    tx.send(v).await.unwrap();
                }
            }
        }
    });
    let mut rtts = result.lock().unwrap().clone();
    rtts.sort_unstable();
    let pct = |p: usize| rtts[(rtts.len() * p / 100).min(rtts.len() - 1)] / 2;
    println!(
        "mesh hop latency (half round trip, {ROUND_TRIPS} round trips): p50 {:?}  p90 {:?}  p99 {:?}",
        pct(50),
        pct(90),
        pct(99)
    );
}

fn throughput<T: Send + 'static>(
    label: &str,
    n: usize,
    make: impl Fn(usize) -> T + Clone + Send + 'static,
) {
    let elapsed = Arc::new(Mutex::new(Duration::ZERO));
    let out = Arc::clone(&elapsed);
    on_two_cores::<T, _>(move |id, m| {
        let out = Arc::clone(&out);
        let make = make.clone();
        async move {
            if id == 0 {
                let tx = m.senders[1].as_ref().unwrap();
                for i in 0..n {
                    if tx.send(make(i)).await.is_err() {
                        panic!("receiver gone");
                    }
                }
            } else {
                let rx = &m.receivers[0].1;
                let mut t0 = None;
                for _ in 0..n {
                    let _ = rx.recv().await.unwrap();
                    t0.get_or_insert_with(Instant::now);
                }
                *out.lock().unwrap() = t0.map(|t| t.elapsed()).unwrap_or_default();
            }
        }
    });
    let d = *elapsed.lock().unwrap();
    println!(
        "mesh throughput, {label}: {n} messages in {d:?} = {:.0} msgs/s",
        n as f64 / d.as_secs_f64()
    );
}

fn main() {
    latency();
    throughput("u64", ONE_WAY, |i| i as u64);
    let sip = vec![b'x'; 600];
    throughput("MeshMsg::Inbound 600 B", ONE_WAY_MSGS, move |_| {
        MeshMsg::Inbound {
            peer: Peer {
                transport: Transport::Udp,
                addr: "127.0.0.1:5060".parse().unwrap(),
                listener: 0,
                conn: None,
            },
            bytes: sip.clone(),
            received: Instant::now(),
        }
    });
}
