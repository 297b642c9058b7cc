//! The non-INVITE client transaction, RFC 3261 §17.1.2 (Figure 6).
//!
//! Trying → (1xx) Proceeding → (200–699) Completed → (Timer K) Terminated. Timer E
//! retransmits (doubling to T2 in Trying, T2 in Proceeding), Timer F times out.
//!
//! RFC 4320 §4.2: a transaction-stateful proxy must not answer a non-INVITE with
//! 408 when this transaction times out; the [`Action::Timeout`] only tells the TU.

use std::time::Duration;

use super::{doubled, Action, Actions, Class, ClientEvent, Reliability, TimerKind, Timers};

/// States of Figure 6.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClientNonInviteState {
    /// Request sent, no response yet.
    Trying,
    /// A provisional response arrived; retransmissions continue every T2.
    Proceeding,
    /// A final response arrived; Timer K absorbs its retransmissions.
    Completed,
    /// Done.
    Terminated,
}

/// A non-INVITE client transaction.
#[derive(Debug, Clone)]
pub(crate) struct ClientNonInvite {
    state: ClientNonInviteState,
    reliability: Reliability,
    /// The interval Timer E was last armed with.
    timer_e: Duration,
    t2: Duration,
    timer_k: Duration,
}

impl ClientNonInvite {
    /// Starts the transaction once the caller has sent the request: arms Timer E
    /// (T1, unreliable transports only) and Timer F (64·T1), §17.1.2.2.
    pub(crate) fn new(timers: &Timers, reliability: Reliability, out: &mut Actions) -> Self {
        if !reliability.is_reliable() {
            out.push(Action::StartTimer(TimerKind::E, timers.t1));
        }
        out.push(Action::StartTimer(TimerKind::F, timers.t1_x64()));
        ClientNonInvite {
            state: ClientNonInviteState::Trying,
            reliability,
            timer_e: timers.t1,
            t2: timers.t2,
            timer_k: timers.timer_k(reliability),
        }
    }

    /// The current state.
    #[cfg(test)]
    pub(crate) fn state(&self) -> ClientNonInviteState {
        self.state
    }

    /// True once the transaction has terminated.
    #[cfg(test)]
    pub(crate) fn is_terminated(&self) -> bool {
        self.state == ClientNonInviteState::Terminated
    }

    /// Feeds one event; appends the resulting actions to `out`.
    pub(crate) fn on_event(&mut self, event: ClientEvent, out: &mut Actions) {
        use ClientNonInviteState::*;
        match (self.state, event) {
            (Terminated, _) => {}
            (_, ClientEvent::TransportError) => {
                // §17.1.4.
                out.push(Action::TransportError);
                self.terminate(out);
            }
            (Trying | Proceeding, ClientEvent::Timer(TimerKind::E)) => {
                out.push(Action::RetransmitRequest);
                // §17.1.2.2: min(2E, T2) in Trying, T2 in Proceeding.
                self.timer_e = if self.state == Trying {
                    doubled(self.timer_e, Some(self.t2))
                } else {
                    self.t2
                };
                out.push(Action::StartTimer(TimerKind::E, self.timer_e));
            }
            (Trying | Proceeding, ClientEvent::Timer(TimerKind::F)) => {
                out.push(Action::Timeout(TimerKind::F));
                self.terminate(out);
            }
            (Completed, ClientEvent::Timer(TimerKind::K)) => self.terminate(out),
            (_, ClientEvent::Timer(_)) => {}
            (Trying | Proceeding, ClientEvent::Response(code)) => match Class::of(code) {
                Class::Provisional => {
                    self.state = Proceeding;
                    out.push(Action::PassResponse);
                }
                Class::Success | Class::Failure => {
                    if !self.reliability.is_reliable() {
                        out.push(Action::StopTimer(TimerKind::E));
                    }
                    out.push(Action::StopTimer(TimerKind::F));
                    out.push(Action::PassResponse);
                    if self.timer_k.is_zero() {
                        self.terminate(out);
                    } else {
                        self.state = Completed;
                        out.push(Action::StartTimer(TimerKind::K, self.timer_k));
                    }
                }
                Class::Invalid => {}
            },
            // §17.1.2.2: response retransmissions are absorbed in Completed.
            (Completed, ClientEvent::Response(_)) => {}
        }
    }

    fn terminate(&mut self, out: &mut Actions) {
        self.state = ClientNonInviteState::Terminated;
        out.push(Action::Terminated);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::txn::sim::Sim;

    fn start(r: Reliability) -> (Sim, ClientNonInvite) {
        let mut sim = Sim::new();
        let mut txn = None;
        sim.feed(|out| txn = Some(ClientNonInvite::new(&Timers::default(), r, out)));
        (sim, txn.unwrap())
    }

    fn run(sim: &mut Sim, txn: &mut ClientNonInvite, ms: u64) {
        sim.run_to(ms, |k, out| txn.on_event(ClientEvent::Timer(k), out));
    }

    fn respond(sim: &mut Sim, txn: &mut ClientNonInvite, code: u16) {
        sim.feed(|out| txn.on_event(ClientEvent::Response(code), out));
    }

    #[test]
    fn client_non_invite_timer_e_doubles_to_t2() {
        let (mut sim, mut txn) = start(Reliability::Unreliable);
        run(&mut sim, &mut txn, 20_000);
        // Intervals 0.5, 1, 2, 4, 4, 4 … s.
        assert_eq!(
            sim.times_of(Action::RetransmitRequest),
            [500, 1500, 3500, 7500, 11500, 15500, 19500]
        );
    }

    #[test]
    fn client_non_invite_timer_e_is_t2_in_proceeding() {
        let (mut sim, mut txn) = start(Reliability::Unreliable);
        run(&mut sim, &mut txn, 600);
        respond(&mut sim, &mut txn, 100);
        assert_eq!(txn.state(), ClientNonInviteState::Proceeding);
        run(&mut sim, &mut txn, 15_000);
        // E still armed for 1 s from 0.5 s → fires at 1.5 s, then every T2.
        assert_eq!(
            sim.times_of(Action::RetransmitRequest),
            [500, 1500, 5500, 9500, 13500]
        );
    }

    #[test]
    fn client_non_invite_timer_f_timeout() {
        for r in [Reliability::Unreliable, Reliability::Reliable] {
            let (mut sim, mut txn) = start(r);
            run(&mut sim, &mut txn, 300);
            respond(&mut sim, &mut txn, 100); // F keeps running in Proceeding
            run(&mut sim, &mut txn, 40_000);
            assert_eq!(sim.times_of(Action::Timeout(TimerKind::F)), [32_000]);
            assert_eq!(sim.times_of(Action::Terminated), [32_000]);
        }
    }

    #[test]
    fn client_non_invite_reliable_has_no_timer_e() {
        let (mut sim, mut txn) = start(Reliability::Reliable);
        run(&mut sim, &mut txn, 20_000);
        assert!(sim.times_of(Action::RetransmitRequest).is_empty());
    }

    #[test]
    fn client_non_invite_timer_k_unreliable() {
        let (mut sim, mut txn) = start(Reliability::Unreliable);
        run(&mut sim, &mut txn, 700);
        respond(&mut sim, &mut txn, 404);
        assert_eq!(txn.state(), ClientNonInviteState::Completed);
        // Response retransmissions absorbed.
        respond(&mut sim, &mut txn, 404);
        respond(&mut sim, &mut txn, 200);
        run(&mut sim, &mut txn, 10_000);
        assert_eq!(sim.fired_at(TimerKind::K), [5_700]);
        assert_eq!(
            sim.effects(),
            [
                Action::RetransmitRequest,
                Action::PassResponse,
                Action::Terminated
            ]
        );
        // No retransmissions after the final response, no F timeout.
        assert_eq!(sim.times_of(Action::RetransmitRequest), [500]);
        assert!(sim.fired_at(TimerKind::F).is_empty());
    }

    #[test]
    fn client_non_invite_timer_k_zero_on_reliable() {
        let (mut sim, mut txn) = start(Reliability::Reliable);
        respond(&mut sim, &mut txn, 200);
        assert!(txn.is_terminated());
        assert_eq!(sim.effects(), [Action::PassResponse, Action::Terminated]);
    }

    #[test]
    fn client_non_invite_transport_error_informs_tu() {
        let (mut sim, mut txn) = start(Reliability::Unreliable);
        respond(&mut sim, &mut txn, 100);
        sim.feed(|out| txn.on_event(ClientEvent::TransportError, out));
        assert_eq!(
            sim.effects(),
            [
                Action::PassResponse,
                Action::TransportError,
                Action::Terminated
            ]
        );
    }
}
