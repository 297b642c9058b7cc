//! A simulated clock for the state-machine tests: a real [`TimerWheel`] with a
//! 1 ms tick, driven by a fake `now`, applying the machines' timer actions the way
//! the shard will.

use std::time::{Duration, Instant};

use super::timer::{TimerHandle, TimerWheel};
use super::{Action, Actions, TimerKind, TIMER_LANES};

pub(crate) struct Sim {
    pub t0: Instant,
    pub now: Instant,
    wheel: TimerWheel<TimerKind>,
    lanes: [Option<TimerHandle>; TIMER_LANES],
    /// Every action, with the simulated time in ms at which it was emitted.
    pub log: Vec<(u64, Action)>,
    /// Every timer that fired, with the simulated time in ms.
    pub fired: Vec<(u64, TimerKind)>,
    pub terminated: bool,
}

impl Sim {
    pub(crate) fn new() -> Sim {
        let t0 = Instant::now();
        Sim {
            t0,
            now: t0,
            wheel: TimerWheel::with_config(t0, Duration::from_millis(1), 1024),
            lanes: [None; TIMER_LANES],
            log: Vec::new(),
            fired: Vec::new(),
            terminated: false,
        }
    }

    pub(crate) fn ms(&self) -> u64 {
        (self.now - self.t0).as_millis() as u64
    }

    /// Runs one event (`f` feeds it to the machine) and applies its actions.
    pub(crate) fn feed(&mut self, f: impl FnOnce(&mut Actions)) {
        let mut out = Actions::new();
        f(&mut out);
        self.apply(&out);
    }

    fn apply(&mut self, out: &Actions) {
        assert!(
            !self.terminated || out.is_empty(),
            "action after Terminated: {out:?}"
        );
        for &a in out {
            self.log.push((self.ms(), a));
            match a {
                Action::StartTimer(k, d) => {
                    assert!(!d.is_zero(), "zero timers are not armed: {k:?}");
                    if let Some(h) = self.lanes[k.lane()].take() {
                        assert!(
                            !self.wheel.is_pending(h),
                            "{k:?} started while its lane is armed"
                        );
                    }
                    self.lanes[k.lane()] = Some(self.wheel.insert_after(self.now, d, k).unwrap());
                }
                Action::StopTimer(k) => {
                    if let Some(h) = self.lanes[k.lane()].take() {
                        self.wheel.cancel(h);
                    }
                }
                Action::Terminated => {
                    for h in self.lanes.iter_mut().filter_map(Option::take) {
                        self.wheel.cancel(h);
                    }
                    self.terminated = true;
                }
                _ => {}
            }
        }
    }

    /// Moves the clock to `ms` after the start, 1 ms at a time, feeding every timer
    /// that fires to the machine through `fire`.
    pub(crate) fn run_to(&mut self, ms: u64, mut fire: impl FnMut(TimerKind, &mut Actions)) {
        let target = self.t0 + Duration::from_millis(ms);
        let mut fired = Vec::new();
        while self.now < target {
            self.now += Duration::from_millis(1);
            fired.clear();
            self.wheel.advance(self.now, &mut fired);
            for &k in &fired {
                self.lanes[k.lane()] = None;
                self.fired.push((self.ms(), k));
                let mut out = Actions::new();
                fire(k, &mut out);
                self.apply(&out);
            }
        }
    }

    /// Times (ms) at which `a` was emitted.
    pub(crate) fn times_of(&self, a: Action) -> Vec<u64> {
        self.log
            .iter()
            .filter(|(_, x)| *x == a)
            .map(|(t, _)| *t)
            .collect()
    }

    /// Times (ms) at which timer `k` fired.
    pub(crate) fn fired_at(&self, k: TimerKind) -> Vec<u64> {
        self.fired
            .iter()
            .filter(|(_, x)| *x == k)
            .map(|(t, _)| *t)
            .collect()
    }

    /// Actions other than timer bookkeeping, in order.
    pub(crate) fn effects(&self) -> Vec<Action> {
        self.log
            .iter()
            .map(|&(_, a)| a)
            .filter(|a| !matches!(a, Action::StartTimer(..) | Action::StopTimer(_)))
            .collect()
    }
}
