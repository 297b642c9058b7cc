//! The INVITE client transaction, RFC 3261 §17.1.1 (Figure 5).
//!
//! Calling → (1xx) Proceeding → (300–699) Completed → (Timer D) Terminated; a 2xx
//! in Calling or Proceeding passes up and terminates the transaction (the TU — for
//! a proxy, the §16.7 response context — handles 2xx retransmissions and their
//! ACKs end to end).

use std::time::Duration;

use super::{doubled, Action, Actions, Class, ClientEvent, Reliability, TimerKind, Timers};

/// States of Figure 5.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClientInviteState {
    /// Request sent, no response yet; Timer A retransmits (unreliable), Timer B
    /// times out.
    Calling,
    /// A provisional response arrived; retransmissions stop.
    Proceeding,
    /// A 300–699 arrived and was ACKed; Timer D absorbs its retransmissions.
    Completed,
    /// Done.
    Terminated,
}

/// An INVITE client transaction.
#[derive(Debug, Clone)]
pub(crate) struct ClientInvite {
    state: ClientInviteState,
    reliability: Reliability,
    /// The interval Timer A was last armed with.
    timer_a: Duration,
    timer_d: Duration,
}

impl ClientInvite {
    /// Starts the transaction once the caller has sent the INVITE: arms Timer A
    /// (T1, unreliable transports only) and Timer B (64·T1), §17.1.1.2.
    pub(crate) fn new(timers: &Timers, reliability: Reliability, out: &mut Actions) -> Self {
        if !reliability.is_reliable() {
            out.push(Action::StartTimer(TimerKind::A, timers.t1));
        }
        out.push(Action::StartTimer(TimerKind::B, timers.t1_x64()));
        ClientInvite {
            state: ClientInviteState::Calling,
            reliability,
            timer_a: timers.t1,
            timer_d: timers.timer_d(reliability),
        }
    }

    /// The current state.
    #[cfg(test)]
    pub(crate) fn state(&self) -> ClientInviteState {
        self.state
    }

    /// True once the transaction has terminated.
    #[cfg(test)]
    pub(crate) fn is_terminated(&self) -> bool {
        self.state == ClientInviteState::Terminated
    }

    /// Feeds one event; appends the resulting actions to `out`.
    pub(crate) fn on_event(&mut self, event: ClientEvent, out: &mut Actions) {
        use ClientInviteState::*;
        match (self.state, event) {
            (Terminated, _) => {}
            (_, ClientEvent::TransportError) => {
                // §17.1.4: inform the TU and go straight to Terminated.
                out.push(Action::TransportError);
                self.terminate(out);
            }
            (Calling, ClientEvent::Timer(TimerKind::A)) => {
                // §17.1.1.2: retransmit and double A; no T2 cap for INVITE.
                out.push(Action::RetransmitRequest);
                self.timer_a = doubled(self.timer_a, None);
                out.push(Action::StartTimer(TimerKind::A, self.timer_a));
            }
            (Calling, ClientEvent::Timer(TimerKind::B)) => {
                out.push(Action::Timeout(TimerKind::B));
                self.terminate(out);
            }
            (Completed, ClientEvent::Timer(TimerKind::D)) => self.terminate(out),
            // Timers not armed in this state (or already superseded): ignore.
            (_, ClientEvent::Timer(_)) => {}
            (Calling | Proceeding, ClientEvent::Response(code)) => match Class::of(code) {
                Class::Provisional => {
                    if self.state == Calling {
                        // Retransmissions stop; Timer B only applies in Calling.
                        self.stop_calling_timers(out);
                        self.state = Proceeding;
                    }
                    out.push(Action::PassResponse);
                }
                Class::Success => {
                    out.push(Action::PassResponse);
                    self.terminate(out);
                }
                Class::Failure => {
                    if self.state == Calling {
                        self.stop_calling_timers(out);
                    }
                    out.push(Action::SendAck);
                    out.push(Action::PassResponse);
                    if self.timer_d.is_zero() {
                        // Reliable transport: Timer D is zero (§17.1.1.2).
                        self.terminate(out);
                    } else {
                        self.state = Completed;
                        out.push(Action::StartTimer(TimerKind::D, self.timer_d));
                    }
                }
                Class::Invalid => {}
            },
            (Completed, ClientEvent::Response(code)) => {
                // §17.1.1.2: a retransmitted final response gets the ACK again and is
                // not passed up. Anything else (a 1xx or 2xx after the final) is
                // not part of this transaction's life any more.
                if Class::of(code) == Class::Failure {
                    out.push(Action::SendAck);
                }
            }
        }
    }

    fn stop_calling_timers(&self, out: &mut Actions) {
        if !self.reliability.is_reliable() {
            out.push(Action::StopTimer(TimerKind::A));
        }
        out.push(Action::StopTimer(TimerKind::B));
    }

    fn terminate(&mut self, out: &mut Actions) {
        self.state = ClientInviteState::Terminated;
        out.push(Action::Terminated);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::txn::sim::Sim;

    fn start(r: Reliability) -> (Sim, ClientInvite) {
        let mut sim = Sim::new();
        let mut txn = None;
        sim.feed(|out| txn = Some(ClientInvite::new(&Timers::default(), r, out)));
        (sim, txn.unwrap())
    }

    fn run(sim: &mut Sim, txn: &mut ClientInvite, ms: u64) {
        sim.run_to(ms, |k, out| txn.on_event(ClientEvent::Timer(k), out));
    }

    fn respond(sim: &mut Sim, txn: &mut ClientInvite, code: u16) {
        sim.feed(|out| txn.on_event(ClientEvent::Response(code), out));
    }

    #[test]
    fn client_invite_timer_a_doubles() {
        let (mut sim, mut txn) = start(Reliability::Unreliable);
        run(&mut sim, &mut txn, 40_000);
        // T1 = 500 ms, doubling without cap: fires at 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 s.
        assert_eq!(
            sim.times_of(Action::RetransmitRequest),
            [500, 1500, 3500, 7500, 15500, 31500]
        );
        assert!(sim
            .log
            .iter()
            .any(|&(_, a)| a == Action::StartTimer(TimerKind::A, Duration::from_secs(16))));
    }

    #[test]
    fn client_invite_timer_b_timeout() {
        let (mut sim, mut txn) = start(Reliability::Unreliable);
        run(&mut sim, &mut txn, 40_000);
        assert_eq!(sim.times_of(Action::Timeout(TimerKind::B)), [32_000]);
        assert_eq!(sim.times_of(Action::Terminated), [32_000]);
        assert!(txn.is_terminated());
        // After B, Timer A no longer runs (the 63.5 s retransmission never happens).
        assert_eq!(sim.times_of(Action::RetransmitRequest).len(), 6);
    }

    #[test]
    fn client_invite_reliable_has_no_timer_a() {
        let (mut sim, mut txn) = start(Reliability::Reliable);
        run(&mut sim, &mut txn, 40_000);
        assert!(sim.times_of(Action::RetransmitRequest).is_empty());
        assert!(sim.fired_at(TimerKind::A).is_empty());
        assert_eq!(sim.times_of(Action::Timeout(TimerKind::B)), [32_000]);
    }

    #[test]
    fn client_invite_provisional_stops_retransmissions_and_timer_b() {
        let (mut sim, mut txn) = start(Reliability::Unreliable);
        run(&mut sim, &mut txn, 1000);
        respond(&mut sim, &mut txn, 100);
        assert_eq!(txn.state(), ClientInviteState::Proceeding);
        respond(&mut sim, &mut txn, 180);
        run(&mut sim, &mut txn, 120_000);
        assert_eq!(sim.times_of(Action::RetransmitRequest), [500]);
        // §17.1.1.2: Timer B only times out the Calling state; Proceeding waits for
        // the TU (the proxy's Timer C).
        assert!(sim.times_of(Action::Timeout(TimerKind::B)).is_empty());
        assert_eq!(
            sim.effects(),
            [
                Action::RetransmitRequest,
                Action::PassResponse,
                Action::PassResponse
            ]
        );
    }

    #[test]
    fn client_invite_2xx_passes_up_and_terminates() {
        for before in [None, Some(180)] {
            let (mut sim, mut txn) = start(Reliability::Unreliable);
            if let Some(c) = before {
                respond(&mut sim, &mut txn, c);
            }
            respond(&mut sim, &mut txn, 200);
            assert!(txn.is_terminated());
            let effects = sim.effects();
            assert_eq!(
                &effects[effects.len() - 2..],
                [Action::PassResponse, Action::Terminated]
            );
            assert!(!effects.contains(&Action::SendAck), "2xx ACK is the TU's");
        }
    }

    #[test]
    fn client_invite_non_2xx_acked_and_timer_d_unreliable() {
        let (mut sim, mut txn) = start(Reliability::Unreliable);
        run(&mut sim, &mut txn, 100);
        respond(&mut sim, &mut txn, 486);
        assert_eq!(txn.state(), ClientInviteState::Completed);
        assert_eq!(
            sim.effects(),
            [Action::SendAck, Action::PassResponse],
            "ACK sent and response passed up"
        );
        // Retransmitted final response: ACK again, not passed up.
        run(&mut sim, &mut txn, 600);
        respond(&mut sim, &mut txn, 486);
        assert_eq!(
            sim.effects(),
            [Action::SendAck, Action::PassResponse, Action::SendAck]
        );
        // No more request retransmissions in Completed; D = 32 s from the response.
        run(&mut sim, &mut txn, 40_000);
        assert!(sim.times_of(Action::RetransmitRequest).is_empty());
        assert_eq!(sim.fired_at(TimerKind::D), [32_100]);
        assert_eq!(sim.times_of(Action::Terminated), [32_100]);
        assert!(sim.times_of(Action::Timeout(TimerKind::B)).is_empty());
    }

    #[test]
    fn client_invite_timer_d_zero_on_reliable() {
        let (mut sim, mut txn) = start(Reliability::Reliable);
        respond(&mut sim, &mut txn, 180);
        respond(&mut sim, &mut txn, 603);
        assert!(txn.is_terminated());
        assert_eq!(
            sim.effects(),
            [
                Action::PassResponse,
                Action::SendAck,
                Action::PassResponse,
                Action::Terminated
            ]
        );
    }

    #[test]
    fn client_invite_transport_error_informs_tu() {
        let (mut sim, mut txn) = start(Reliability::Unreliable);
        sim.feed(|out| txn.on_event(ClientEvent::TransportError, out));
        assert_eq!(sim.effects(), [Action::TransportError, Action::Terminated]);
        // Terminated absorbs everything.
        let mut out = Actions::new();
        txn.on_event(ClientEvent::Response(200), &mut out);
        txn.on_event(ClientEvent::Timer(TimerKind::B), &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn client_invite_ignores_stray_timers_and_invalid_codes() {
        let (_, mut txn) = start(Reliability::Unreliable);
        let mut out = Actions::new();
        txn.on_event(ClientEvent::Timer(TimerKind::D), &mut out);
        txn.on_event(ClientEvent::Response(99), &mut out);
        txn.on_event(ClientEvent::Response(700), &mut out);
        assert!(out.is_empty());
        assert_eq!(txn.state(), ClientInviteState::Calling);
    }
}
