//! The INVITE server transaction, RFC 3261 §17.2.1 (Figure 7).
//!
//! Proceeding → (300–699 from TU) Completed → (ACK) Confirmed → (Timer I)
//! Terminated; a 2xx from the TU is sent and terminates the transaction (RFC 3261
//! as written; RFC 6026's Accepted state is not implemented — the TU retransmits
//! 2xx and matches its ACK).
//!
//! Whether and when to send `100 Trying` is the TU's policy (§17.2.1 wants one
//! within 200 ms unless the TU answers sooner; a proxy sends it at once, §16.2);
//! the machine retransmits the most recent provisional when the INVITE is
//! retransmitted.

use std::time::Duration;

use super::{doubled, Action, Actions, Class, Reliability, ServerEvent, TimerKind, Timers};

/// States of Figure 7.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ServerInviteState {
    /// INVITE received; provisional responses may be sent.
    Proceeding,
    /// A 300–699 was sent; Timer G retransmits it, Timer H waits for the ACK.
    Completed,
    /// The ACK arrived; Timer I absorbs its retransmissions.
    Confirmed,
    /// Done.
    Terminated,
}

/// An INVITE server transaction.
#[derive(Debug, Clone)]
pub(crate) struct ServerInvite {
    state: ServerInviteState,
    reliability: Reliability,
    /// Whether a provisional has been sent (so there is one to retransmit).
    sent_provisional: bool,
    timer_g: Duration,
    t2: Duration,
    timer_h: Duration,
    timer_i: Duration,
}

impl ServerInvite {
    /// Creates the transaction for a new INVITE, which the caller passes to the TU.
    /// No timer runs in Proceeding.
    pub(crate) fn new(timers: &Timers, reliability: Reliability) -> Self {
        ServerInvite {
            state: ServerInviteState::Proceeding,
            reliability,
            sent_provisional: false,
            timer_g: timers.t1,
            t2: timers.t2,
            timer_h: timers.t1_x64(),
            timer_i: timers.timer_i(reliability),
        }
    }

    /// The current state.
    #[cfg(test)]
    pub(crate) fn state(&self) -> ServerInviteState {
        self.state
    }

    /// True once the transaction has terminated.
    #[cfg(test)]
    pub(crate) fn is_terminated(&self) -> bool {
        self.state == ServerInviteState::Terminated
    }

    /// Feeds one event; appends the resulting actions to `out`. A `TuResponse`
    /// that yields no [`Action::SendResponse`] was refused (the transaction is past
    /// the point where the TU may respond).
    pub(crate) fn on_event(&mut self, event: ServerEvent, out: &mut Actions) {
        use ServerInviteState::*;
        match (self.state, event) {
            (Terminated, _) => {}
            (_, ServerEvent::TransportError) => {
                // §17.2.4.
                out.push(Action::TransportError);
                self.terminate(out);
            }
            (Proceeding, ServerEvent::Request) => {
                // §17.2.1: retransmit the most recent provisional, if any.
                if self.sent_provisional {
                    out.push(Action::RetransmitResponse);
                }
            }
            (Completed, ServerEvent::Request) => out.push(Action::RetransmitResponse),
            // Confirmed absorbs request and ACK retransmissions.
            (Confirmed, ServerEvent::Request | ServerEvent::Ack) => {}
            (Proceeding, ServerEvent::TuResponse(code)) => match Class::of(code) {
                Class::Provisional => {
                    self.sent_provisional = true;
                    out.push(Action::SendResponse);
                }
                Class::Success => {
                    out.push(Action::SendResponse);
                    self.terminate(out);
                }
                Class::Failure => {
                    out.push(Action::SendResponse);
                    self.state = Completed;
                    if !self.reliability.is_reliable() {
                        out.push(Action::StartTimer(TimerKind::G, self.timer_g));
                    }
                    out.push(Action::StartTimer(TimerKind::H, self.timer_h));
                }
                Class::Invalid => {}
            },
            (_, ServerEvent::TuResponse(_)) => {}
            (Completed, ServerEvent::Timer(TimerKind::G)) => {
                // §17.2.1: retransmit, G = min(2G, T2).
                out.push(Action::RetransmitResponse);
                self.timer_g = doubled(self.timer_g, Some(self.t2));
                out.push(Action::StartTimer(TimerKind::G, self.timer_g));
            }
            (Completed, ServerEvent::Timer(TimerKind::H)) => {
                // The ACK never came: a transaction failure for the TU.
                out.push(Action::Timeout(TimerKind::H));
                self.terminate(out);
            }
            (Completed, ServerEvent::Ack) => {
                if !self.reliability.is_reliable() {
                    out.push(Action::StopTimer(TimerKind::G));
                }
                out.push(Action::StopTimer(TimerKind::H));
                if self.timer_i.is_zero() {
                    self.terminate(out);
                } else {
                    self.state = Confirmed;
                    out.push(Action::StartTimer(TimerKind::I, self.timer_i));
                }
            }
            (Confirmed, ServerEvent::Timer(TimerKind::I)) => self.terminate(out),
            (_, ServerEvent::Timer(_)) => {}
            // An ACK in Proceeding matches no response of ours (a 2xx ACK has its
            // own branch): nothing to do.
            (Proceeding, ServerEvent::Ack) => {}
        }
    }

    fn terminate(&mut self, out: &mut Actions) {
        self.state = ServerInviteState::Terminated;
        out.push(Action::Terminated);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::txn::sim::Sim;

    fn start(r: Reliability) -> (Sim, ServerInvite) {
        (Sim::new(), ServerInvite::new(&Timers::default(), r))
    }

    fn run(sim: &mut Sim, txn: &mut ServerInvite, ms: u64) {
        sim.run_to(ms, |k, out| txn.on_event(ServerEvent::Timer(k), out));
    }

    fn ev(sim: &mut Sim, txn: &mut ServerInvite, e: ServerEvent) {
        sim.feed(|out| txn.on_event(e, out));
    }

    #[test]
    fn server_invite_retransmission_before_provisional_is_absorbed() {
        let (mut sim, mut txn) = start(Reliability::Unreliable);
        ev(&mut sim, &mut txn, ServerEvent::Request);
        assert!(sim.effects().is_empty());
    }

    #[test]
    fn server_invite_retransmission_resends_last_provisional() {
        let (mut sim, mut txn) = start(Reliability::Unreliable);
        ev(&mut sim, &mut txn, ServerEvent::TuResponse(100));
        ev(&mut sim, &mut txn, ServerEvent::Request);
        ev(&mut sim, &mut txn, ServerEvent::TuResponse(180));
        ev(&mut sim, &mut txn, ServerEvent::Request);
        assert_eq!(
            sim.effects(),
            [
                Action::SendResponse,
                Action::RetransmitResponse,
                Action::SendResponse,
                Action::RetransmitResponse
            ]
        );
        assert_eq!(txn.state(), ServerInviteState::Proceeding);
    }

    #[test]
    fn server_invite_2xx_terminates() {
        let (mut sim, mut txn) = start(Reliability::Unreliable);
        ev(&mut sim, &mut txn, ServerEvent::TuResponse(180));
        ev(&mut sim, &mut txn, ServerEvent::TuResponse(200));
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
    fn server_invite_timer_g_capped_at_t2() {
        let (mut sim, mut txn) = start(Reliability::Unreliable);
        ev(&mut sim, &mut txn, ServerEvent::TuResponse(486));
        assert_eq!(txn.state(), ServerInviteState::Completed);
        run(&mut sim, &mut txn, 20_000);
        // Intervals 0.5, 1, 2, 4, 4, 4 s.
        assert_eq!(
            sim.times_of(Action::RetransmitResponse),
            [500, 1500, 3500, 7500, 11500, 15500, 19500]
        );
    }

    #[test]
    fn server_invite_timer_h_timeout_without_ack() {
        let (mut sim, mut txn) = start(Reliability::Unreliable);
        run(&mut sim, &mut txn, 1000);
        ev(&mut sim, &mut txn, ServerEvent::TuResponse(500));
        run(&mut sim, &mut txn, 40_000);
        assert_eq!(sim.times_of(Action::Timeout(TimerKind::H)), [33_000]);
        assert_eq!(sim.times_of(Action::Terminated), [33_000]);
        // G retransmitted until H: last one at 1 + 31.5 = 32.5 s.
        assert_eq!(
            sim.times_of(Action::RetransmitResponse).last(),
            Some(&32_500)
        );
    }

    #[test]
    fn server_invite_timer_h_on_reliable_without_timer_g() {
        let (mut sim, mut txn) = start(Reliability::Reliable);
        ev(&mut sim, &mut txn, ServerEvent::TuResponse(404));
        run(&mut sim, &mut txn, 40_000);
        assert!(sim.times_of(Action::RetransmitResponse).is_empty());
        assert_eq!(sim.times_of(Action::Timeout(TimerKind::H)), [32_000]);
    }

    #[test]
    fn server_invite_completed_retransmits_final_on_request() {
        let (mut sim, mut txn) = start(Reliability::Unreliable);
        ev(&mut sim, &mut txn, ServerEvent::TuResponse(180));
        ev(&mut sim, &mut txn, ServerEvent::TuResponse(486));
        ev(&mut sim, &mut txn, ServerEvent::Request);
        // A late TU response is refused.
        ev(&mut sim, &mut txn, ServerEvent::TuResponse(200));
        assert_eq!(
            sim.effects(),
            [
                Action::SendResponse,
                Action::SendResponse,
                Action::RetransmitResponse
            ]
        );
    }

    #[test]
    fn server_invite_ack_confirms_and_timer_i_unreliable() {
        let (mut sim, mut txn) = start(Reliability::Unreliable);
        ev(&mut sim, &mut txn, ServerEvent::TuResponse(486));
        run(&mut sim, &mut txn, 2000);
        ev(&mut sim, &mut txn, ServerEvent::Ack);
        assert_eq!(txn.state(), ServerInviteState::Confirmed);
        // ACK and INVITE retransmissions absorbed in Confirmed; G stopped.
        ev(&mut sim, &mut txn, ServerEvent::Ack);
        ev(&mut sim, &mut txn, ServerEvent::Request);
        run(&mut sim, &mut txn, 60_000);
        assert_eq!(sim.times_of(Action::RetransmitResponse), [500, 1500]);
        assert_eq!(sim.fired_at(TimerKind::I), [7_000]);
        assert_eq!(sim.times_of(Action::Terminated), [7_000]);
        assert!(sim.fired_at(TimerKind::H).is_empty());
    }

    #[test]
    fn server_invite_timer_i_zero_on_reliable() {
        let (mut sim, mut txn) = start(Reliability::Reliable);
        ev(&mut sim, &mut txn, ServerEvent::TuResponse(486));
        ev(&mut sim, &mut txn, ServerEvent::Ack);
        assert!(txn.is_terminated());
        assert_eq!(sim.effects(), [Action::SendResponse, Action::Terminated]);
    }

    #[test]
    fn server_invite_transport_error_informs_tu() {
        let (mut sim, mut txn) = start(Reliability::Unreliable);
        ev(&mut sim, &mut txn, ServerEvent::TuResponse(486));
        ev(&mut sim, &mut txn, ServerEvent::TransportError);
        assert_eq!(
            sim.effects(),
            [
                Action::SendResponse,
                Action::TransportError,
                Action::Terminated
            ]
        );
    }
}
