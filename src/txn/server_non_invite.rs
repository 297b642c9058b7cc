//! The non-INVITE server transaction, RFC 3261 §17.2.2 (Figure 8).
//!
//! Trying → (1xx from TU) Proceeding → (200–699 from TU) Completed → (Timer J)
//! Terminated.
//!
//! RFC 4320 §4.1, applied where it is a local rule: a provisional other than 100
//! to a non-INVITE is refused (no [`Action::SendResponse`]). Its timing rule for
//! 100 over UDP and §4.2's "no 408" are the TU's policy.

use std::time::Duration;

use super::{Action, Actions, Class, Reliability, ServerEvent, TimerKind, Timers};

/// States of Figure 8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ServerNonInviteState {
    /// Request received, nothing sent; retransmissions are absorbed.
    Trying,
    /// A provisional was sent; retransmissions get it again.
    Proceeding,
    /// A final response was sent; retransmissions get it again until Timer J.
    Completed,
    /// Done.
    Terminated,
}

/// A non-INVITE server transaction.
#[derive(Debug, Clone)]
pub(crate) struct ServerNonInvite {
    state: ServerNonInviteState,
    timer_j: Duration,
}

impl ServerNonInvite {
    /// Creates the transaction for a new request, which the caller passes to the TU.
    pub(crate) fn new(timers: &Timers, reliability: Reliability) -> Self {
        ServerNonInvite {
            state: ServerNonInviteState::Trying,
            timer_j: timers.timer_j(reliability),
        }
    }

    /// The current state.
    #[cfg(test)]
    pub(crate) fn state(&self) -> ServerNonInviteState {
        self.state
    }

    /// True once the transaction has terminated.
    #[cfg(test)]
    pub(crate) fn is_terminated(&self) -> bool {
        self.state == ServerNonInviteState::Terminated
    }

    /// Feeds one event; appends the resulting actions to `out`. A `TuResponse`
    /// that yields no [`Action::SendResponse`] was refused.
    pub(crate) fn on_event(&mut self, event: ServerEvent, out: &mut Actions) {
        use ServerNonInviteState::*;
        match (self.state, event) {
            (Terminated, _) => {}
            (_, ServerEvent::TransportError) => {
                // §17.2.4.
                out.push(Action::TransportError);
                self.terminate(out);
            }
            // §17.2.2: retransmissions in Trying are discarded.
            (Trying, ServerEvent::Request) => {}
            (Proceeding | Completed, ServerEvent::Request) => out.push(Action::RetransmitResponse),
            (Trying | Proceeding, ServerEvent::TuResponse(code)) => match Class::of(code) {
                // RFC 4320 §4.1.
                Class::Provisional if code != 100 => {}
                Class::Provisional => {
                    self.state = Proceeding;
                    out.push(Action::SendResponse);
                }
                Class::Success | Class::Failure => {
                    out.push(Action::SendResponse);
                    if self.timer_j.is_zero() {
                        self.terminate(out);
                    } else {
                        self.state = Completed;
                        out.push(Action::StartTimer(TimerKind::J, self.timer_j));
                    }
                }
                Class::Invalid => {}
            },
            // §17.2.2: further TU responses in Completed are discarded.
            (Completed, ServerEvent::TuResponse(_)) => {}
            (Completed, ServerEvent::Timer(TimerKind::J)) => self.terminate(out),
            (_, ServerEvent::Timer(_)) => {}
            // ACK never matches a non-INVITE transaction (§17.2.3).
            (_, ServerEvent::Ack) => {}
        }
    }

    fn terminate(&mut self, out: &mut Actions) {
        self.state = ServerNonInviteState::Terminated;
        out.push(Action::Terminated);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::txn::sim::Sim;

    fn start(r: Reliability) -> (Sim, ServerNonInvite) {
        (Sim::new(), ServerNonInvite::new(&Timers::default(), r))
    }

    fn run(sim: &mut Sim, txn: &mut ServerNonInvite, ms: u64) {
        sim.run_to(ms, |k, out| txn.on_event(ServerEvent::Timer(k), out));
    }

    fn ev(sim: &mut Sim, txn: &mut ServerNonInvite, e: ServerEvent) {
        sim.feed(|out| txn.on_event(e, out));
    }

    #[test]
    fn server_non_invite_trying_absorbs_retransmissions() {
        let (mut sim, mut txn) = start(Reliability::Unreliable);
        ev(&mut sim, &mut txn, ServerEvent::Request);
        ev(&mut sim, &mut txn, ServerEvent::Request);
        assert!(sim.effects().is_empty());
        assert_eq!(txn.state(), ServerNonInviteState::Trying);
    }

    #[test]
    fn server_non_invite_proceeding_resends_provisional() {
        let (mut sim, mut txn) = start(Reliability::Unreliable);
        ev(&mut sim, &mut txn, ServerEvent::TuResponse(100));
        assert_eq!(txn.state(), ServerNonInviteState::Proceeding);
        ev(&mut sim, &mut txn, ServerEvent::Request);
        assert_eq!(
            sim.effects(),
            [Action::SendResponse, Action::RetransmitResponse]
        );
    }

    #[test]
    fn server_non_invite_rfc4320_refuses_non_100_provisional() {
        let (mut sim, mut txn) = start(Reliability::Unreliable);
        ev(&mut sim, &mut txn, ServerEvent::TuResponse(180));
        assert!(sim.effects().is_empty());
        assert_eq!(txn.state(), ServerNonInviteState::Trying);
    }

    #[test]
    fn server_non_invite_timer_j_unreliable() {
        let (mut sim, mut txn) = start(Reliability::Unreliable);
        run(&mut sim, &mut txn, 250);
        ev(&mut sim, &mut txn, ServerEvent::TuResponse(200));
        assert_eq!(txn.state(), ServerNonInviteState::Completed);
        run(&mut sim, &mut txn, 1000);
        ev(&mut sim, &mut txn, ServerEvent::Request);
        // Late TU responses are discarded.
        ev(&mut sim, &mut txn, ServerEvent::TuResponse(500));
        run(&mut sim, &mut txn, 40_000);
        assert_eq!(sim.fired_at(TimerKind::J), [32_250]);
        assert_eq!(
            sim.effects(),
            [
                Action::SendResponse,
                Action::RetransmitResponse,
                Action::Terminated
            ]
        );
        // No response retransmission without a request retransmission (no Timer G
        // for non-INVITE).
        assert_eq!(sim.times_of(Action::RetransmitResponse), [1000]);
    }

    #[test]
    fn server_non_invite_timer_j_zero_on_reliable() {
        let (mut sim, mut txn) = start(Reliability::Reliable);
        ev(&mut sim, &mut txn, ServerEvent::TuResponse(100));
        ev(&mut sim, &mut txn, ServerEvent::TuResponse(404));
        assert!(txn.is_terminated());
        assert_eq!(
            sim.effects(),
            [
                Action::SendResponse,
                Action::SendResponse,
                Action::Terminated
            ]
        );
    }

    #[test]
    fn server_non_invite_transport_error_informs_tu() {
        let (mut sim, mut txn) = start(Reliability::Unreliable);
        ev(&mut sim, &mut txn, ServerEvent::TuResponse(100));
        ev(&mut sim, &mut txn, ServerEvent::TransportError);
        assert_eq!(
            sim.effects(),
            [
                Action::SendResponse,
                Action::TransportError,
                Action::Terminated
            ]
        );
        let mut out = Actions::new();
        txn.on_event(ServerEvent::Request, &mut out);
        assert!(out.is_empty());
    }
}
