//! RFC 3261 §17 transactions, without I/O.
//!
//! Each of the four state machines ([`ClientInvite`], [`ClientNonInvite`],
//! [`ServerInvite`], [`ServerNonInvite`]) is a small plain struct: events go in
//! through `on_event`, [`Action`]s come out into a caller-provided [`Actions`]
//! buffer. The machines hold no message bytes, no sockets and no clock: they ask
//! for timers as `(TimerKind, Duration)` and the caller arms its shard's
//! [`timer::TimerWheel`], then feeds expired timers back as events. The caller
//! (the proxy core) keeps the bytes to (re)send — the request, the last response —
//! and builds the ACK for a non-2xx response.
//!
//! Machines take no `now`: every timer they need is relative to the event that arms
//! it, so time only matters where the wheel is armed ([`table`] and the shard).
//!
//! [`key`] computes the §17.1.3 / §17.2.3 matching keys and the shard of a branch;
//! [`table`] is a per-shard transaction table tying keys, machines and timers.

pub(crate) mod client_invite;
pub(crate) mod client_non_invite;
pub(crate) mod key;
pub(crate) mod server_invite;
pub(crate) mod server_non_invite;
pub(crate) mod table;
pub(crate) mod timer;

use std::time::Duration;

use smallvec::SmallVec;

pub(crate) use client_invite::ClientInvite;
pub(crate) use client_non_invite::ClientNonInvite;
pub(crate) use server_invite::ServerInvite;
pub(crate) use server_non_invite::ServerNonInvite;
pub(crate) use timer::TimerWheel;

/// Whether the transport carrying a transaction retransmits by itself (TCP, TLS,
/// SCTP, WebSocket) or not (UDP). RFC 3261 §17.1.1.2, §17.1.2.2, §17.2.1, §17.2.2:
/// on reliable transports the retransmission timers A, E, G are not used and the
/// wait timers D, I, J, K are zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reliability {
    /// UDP: the transaction layer retransmits.
    Unreliable,
    /// TCP, TLS, SCTP, WS(S): the transport does.
    Reliable,
}

impl From<crate::sip::via::Transport<'_>> for Reliability {
    /// The reliability of a Via transport (UDP and unknown transports are not).
    fn from(t: crate::sip::via::Transport<'_>) -> Self {
        if t.is_reliable() {
            Reliability::Reliable
        } else {
            Reliability::Unreliable
        }
    }
}

impl Reliability {
    /// True for [`Reliability::Reliable`].
    pub fn is_reliable(self) -> bool {
        self == Reliability::Reliable
    }
}

/// The §17 timer base values (RFC 3261 Appendix A), plus the proxy's Timer C.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers {
    /// RTT estimate; default 500 ms.
    pub t1: Duration,
    /// Maximum retransmit interval for non-INVITE requests and INVITE responses;
    /// default 4 s.
    pub t2: Duration,
    /// Maximum time a message remains in the network; default 5 s.
    pub t4: Duration,
    /// Proxy INVITE transaction timeout (§16.6 step 11); must exceed 3 minutes;
    /// default 180 s.
    pub timer_c: Duration,
}

impl Default for Timers {
    fn default() -> Self {
        Timers {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
            timer_c: Duration::from_secs(180),
        }
    }
}

/// A rejected [`Timers`] configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TimersError {
    /// T1 must be non-zero: every other timer is a multiple of it.
    #[error("T1 must be greater than zero")]
    ZeroT1,
    /// T2 caps the doubling that starts at T1.
    #[error("T2 must not be smaller than T1")]
    T2BelowT1,
    /// RFC 3261 §16.6 step 11: Timer C MUST be larger than 3 minutes (the default
    /// and the issue accept exactly 3 minutes).
    #[error("Timer C must be at least 3 minutes")]
    TimerCTooShort,
}

impl Timers {
    /// Validates a configuration taken from flags.
    pub fn validate(&self) -> Result<(), TimersError> {
        if self.t1.is_zero() {
            return Err(TimersError::ZeroT1);
        }
        if self.t2 < self.t1 {
            return Err(TimersError::T2BelowT1);
        }
        if self.timer_c < Duration::from_secs(180) {
            return Err(TimersError::TimerCTooShort);
        }
        Ok(())
    }

    /// 64·T1: Timers B, F, H, and J on unreliable transports.
    pub fn t1_x64(&self) -> Duration {
        self.t1.saturating_mul(64)
    }

    /// Timer D: at least 32 s on unreliable transports, zero on reliable ones
    /// (§17.1.1.2). We use max(32 s, 64·T1) so that a raised T1 still covers the
    /// server's Timer H retransmission window.
    pub fn timer_d(&self, r: Reliability) -> Duration {
        match r {
            Reliability::Reliable => Duration::ZERO,
            Reliability::Unreliable => self.t1_x64().max(Duration::from_secs(32)),
        }
    }

    /// Timer I: T4 on unreliable transports, zero on reliable ones (§17.2.1).
    pub fn timer_i(&self, r: Reliability) -> Duration {
        match r {
            Reliability::Reliable => Duration::ZERO,
            Reliability::Unreliable => self.t4,
        }
    }

    /// Timer J: 64·T1 on unreliable transports, zero on reliable ones (§17.2.2).
    pub fn timer_j(&self, r: Reliability) -> Duration {
        match r {
            Reliability::Reliable => Duration::ZERO,
            Reliability::Unreliable => self.t1_x64(),
        }
    }

    /// Timer K: T4 on unreliable transports, zero on reliable ones (§17.1.2.2).
    pub fn timer_k(&self, r: Reliability) -> Duration {
        match r {
            Reliability::Reliable => Duration::ZERO,
            Reliability::Unreliable => self.t4,
        }
    }
}

/// The RFC 3261 timers (Appendix A). C is armed by the proxy (§16.6 step 11),
/// never by these state machines; it is here so one wheel payload type serves both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum TimerKind {
    /// Client INVITE request retransmission.
    A,
    /// Client INVITE transaction timeout.
    B,
    /// Proxy INVITE transaction timeout.
    C,
    /// Client INVITE wait for response retransmissions.
    D,
    /// Client non-INVITE request retransmission.
    E,
    /// Client non-INVITE transaction timeout.
    F,
    /// Server INVITE response retransmission.
    G,
    /// Server INVITE wait for ACK.
    H,
    /// Server INVITE wait for ACK retransmissions.
    I,
    /// Server non-INVITE wait for request retransmissions.
    J,
    /// Client non-INVITE wait for response retransmissions.
    K,
}

/// How many timers of one transaction can be armed at once: see [`TimerKind::lane`].
pub(crate) const TIMER_LANES: usize = 3;

impl TimerKind {
    /// A transaction never has two timers of the same lane armed at once, so a
    /// caller can keep one [`TimerHandle`] per lane: 0 for retransmission timers
    /// (A, E, G), 1 for lifetime timers (B, F, H, then D, K, I, J once the earlier
    /// one has been stopped), 2 for the proxy's Timer C.
    pub(crate) fn lane(self) -> usize {
        match self {
            TimerKind::A | TimerKind::E | TimerKind::G => 0,
            TimerKind::B
            | TimerKind::D
            | TimerKind::F
            | TimerKind::H
            | TimerKind::I
            | TimerKind::J
            | TimerKind::K => 1,
            TimerKind::C => 2,
        }
    }
}

/// What a state machine asks its caller to do, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// Client: retransmit the request (Timer A or E fired).
    RetransmitRequest,
    /// Client INVITE: send an ACK for the non-2xx final response just received
    /// (§17.1.1.3); the caller builds it from the request and that response.
    SendAck,
    /// Client: pass the response just received up to the TU.
    PassResponse,
    /// Server: send the TU's response now, and keep it as the response to
    /// retransmit (§17.2.1 most recent provisional; the final one).
    SendResponse,
    /// Server: resend the last response sent (request retransmission absorbed, or
    /// Timer G fired).
    RetransmitResponse,
    /// Arm a timer to fire after the duration; replaces any timer of the same lane.
    StartTimer(TimerKind, Duration),
    /// Disarm a timer.
    StopTimer(TimerKind),
    /// Inform the TU that the transaction timed out (Timer B, F or H fired).
    Timeout(TimerKind),
    /// Inform the TU of a transport error (§17.1.4, §17.2.4).
    TransportError,
    /// The transaction has ended: drop it and every timer it still has armed
    /// (machines do not emit `StopTimer` before this).
    Terminated,
}

/// The output buffer of one event: never more than a handful of actions, so it
/// never leaves the stack.
pub(crate) type Actions = SmallVec<[Action; 8]>;

/// An event for a client transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClientEvent {
    /// A response matching the transaction (§17.1.3), by status code.
    Response(u16),
    /// A timer armed by this transaction fired.
    Timer(TimerKind),
    /// The transport failed to send the request or an ACK.
    /// (RFC 3261 §17.1.4, §17.2.4; the machines and their tests handle it, but the
    /// runtime does not report send failures to transactions yet.)
    #[cfg_attr(not(test), allow(dead_code))]
    TransportError,
}

/// An event for a server transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ServerEvent {
    /// A retransmission of the request that created the transaction (§17.2.3).
    Request,
    /// An ACK matching an INVITE server transaction (§17.2.3).
    Ack,
    /// The TU hands a response, by status code, to the transaction to send.
    TuResponse(u16),
    /// A timer armed by this transaction fired.
    Timer(TimerKind),
    /// The transport failed to send a response.
    /// (RFC 3261 §17.1.4, §17.2.4; the machines and their tests handle it, but the
    /// runtime does not report send failures to transactions yet.)
    #[cfg_attr(not(test), allow(dead_code))]
    TransportError,
}

/// Response classes as the machines see them; anything outside 100–699 is not a
/// response they act on (the parser rejects those first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    Provisional,
    Success,
    Failure,
    Invalid,
}

impl Class {
    pub(crate) fn of(status: u16) -> Class {
        match status {
            100..=199 => Class::Provisional,
            200..=299 => Class::Success,
            300..=699 => Class::Failure,
            _ => Class::Invalid,
        }
    }
}

/// Doubles a retransmission interval, capped at `cap` (T2) when given.
pub(crate) fn doubled(interval: Duration, cap: Option<Duration>) -> Duration {
    let d = interval.saturating_mul(2);
    match cap {
        Some(c) => d.min(c),
        None => d,
    }
}

#[cfg(test)]
pub(crate) mod sim;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timers_defaults_are_rfc_values() {
        let t = Timers::default();
        assert_eq!(t.t1, Duration::from_millis(500));
        assert_eq!(t.t2, Duration::from_secs(4));
        assert_eq!(t.t4, Duration::from_secs(5));
        assert_eq!(t.t1_x64(), Duration::from_secs(32));
        assert_eq!(t.validate(), Ok(()));
    }

    #[test]
    fn reliability_of_via_transport() {
        use crate::sip::via::Transport;
        assert_eq!(Reliability::from(Transport::Udp), Reliability::Unreliable);
        assert_eq!(Reliability::from(Transport::Tcp), Reliability::Reliable);
        assert_eq!(Reliability::from(Transport::Tls), Reliability::Reliable);
    }

    #[test]
    fn timers_validate() {
        let t = Timers::default();
        let bad_c = Timers {
            timer_c: Duration::from_secs(179),
            ..t
        };
        assert_eq!(bad_c.validate(), Err(TimersError::TimerCTooShort));
        let bad_t1 = Timers {
            t1: Duration::ZERO,
            ..t
        };
        assert_eq!(bad_t1.validate(), Err(TimersError::ZeroT1));
        let bad_t2 = Timers {
            t2: Duration::from_millis(100),
            ..t
        };
        assert_eq!(bad_t2.validate(), Err(TimersError::T2BelowT1));
    }

    #[test]
    fn timer_d_at_least_32s_unreliable_zero_reliable() {
        let t = Timers::default();
        assert_eq!(t.timer_d(Reliability::Unreliable), Duration::from_secs(32));
        assert_eq!(t.timer_d(Reliability::Reliable), Duration::ZERO);
        let small = Timers {
            t1: Duration::from_millis(100),
            ..t
        };
        assert_eq!(
            small.timer_d(Reliability::Unreliable),
            Duration::from_secs(32)
        );
        let big = Timers {
            t1: Duration::from_secs(1),
            ..t
        };
        assert_eq!(
            big.timer_d(Reliability::Unreliable),
            Duration::from_secs(64)
        );
    }

    #[test]
    fn timers_i_j_k_zero_on_reliable() {
        let t = Timers::default();
        let r = Reliability::Reliable;
        assert_eq!(t.timer_i(r), Duration::ZERO);
        assert_eq!(t.timer_j(r), Duration::ZERO);
        assert_eq!(t.timer_k(r), Duration::ZERO);
        let u = Reliability::Unreliable;
        assert_eq!(t.timer_i(u), t.t4);
        assert_eq!(t.timer_j(u), Duration::from_secs(32));
        assert_eq!(t.timer_k(u), t.t4);
    }
}
