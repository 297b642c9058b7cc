//! The stateless proxy, RFC 3261 §16.11 (`--stateless`): a message forwarder with
//! no transactions and no response context.
//!
//! A request is validated (§16.3), its Route set preprocessed (§16.4), one target
//! chosen (§16.5) and forwarded with the same edits as the stateful proxy makes
//! (§16.6: Request-URI, our Via, Record-Route, Max-Forwards, `received`/`rport`),
//! through the same [`Engine`] helpers. The differences §16.11 asks for:
//!
//! - No 100 Trying, no retransmissions of our own: the client's retransmissions are
//!   forwarded like the original, CANCEL and ACK like any other request.
//! - Our Via branch is computed from the request ([`stateless_branch`]), so a
//!   retransmission gets the same branch, and a CANCEL or the ACK of a non-2xx gets
//!   its INVITE's: the next hop's INVITE transaction matches them.
//! - One target only: a registered user is reached at its best binding (highest
//!   `q`, then newest), never forked.
//! - A response whose top Via is ours loses it and goes to the next Via's
//!   `received`/`rport`/sent-by (§18.2.2); §16.7 does not apply, so every response,
//!   100 included, is forwarded (the 100 stops the client's INVITE
//!   retransmissions, which this proxy cannot absorb).
//!
//! Nothing is owned per request, so any shard handles any message except those the
//! location part owns (see [`crate::shard::Shard`]): no mesh hop by branch.
//!
//! REGISTER for one of our domains is the registrar's, a UAS (§10.3), and goes
//! through [`Engine::on_request`] exactly as in stateful mode: its server
//! transaction answers retransmissions with the same response, where a stateless
//! registrar would refuse them (§10.3 step 7: the CSeq is not higher). Requests
//! `--auth all` would challenge need a transaction too; the CLI refuses that
//! combination.

use std::hash::{BuildHasher, Hasher};
use std::time::Instant;

use crate::io::{Dest, Peer};
use crate::mesh::Outbox;
use crate::metrics::DropReason;
use crate::proxy::response_dest;
use crate::registrar::AorKey;
use crate::sip::uri::{SipUri, Uri};
use crate::sip::via::Via;
use crate::sip::{Host, Message, Method};
use crate::txn::key::is_rfc3261_branch;

use super::engine::{binding_target, Answer, Engine, Hop, Target, CAPABILITIES};
use super::next_hop::next_hop;
use super::route::preprocess;
use super::validate::{stateless_loop_hash, validate_request, LOOP_SEPARATOR};

/// Marks a branch this proxy wrote statelessly, where the stateful proxy's carry
/// its shard (`txn::key::BranchGenerator`): `z9hG4bK` `s` 16 hex digits `.` loop
/// part.
pub(crate) const STATELESS_TAG: u8 = b's';

const COOKIE: &[u8] = b"z9hG4bK";
const BRANCH_LEN: usize = COOKIE.len() + 1 + 16 + 1 + 16;

/// Fixed seeds: every shard, every run and every restart computes the same branch
/// for the same request.
const SEEDS: [u64; 4] = [
    0x7374_6174_656c_6573,
    0x7362_7261_6e63_6831,
    0x3136_2e31_3120_7266,
    0x6333_3236_3100_0001,
];

/// The Via branch of a request forwarded statelessly (§16.11).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct StatelessBranch([u8; BRANCH_LEN]);

impl StatelessBranch {
    /// The branch text.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// Our branch for `msg`, whose top Via is `via` (§16.11's recommended procedure).
///
/// The unique part hashes fields a retransmission repeats: with the magic cookie,
/// the received branch and sent-by (together they name the client transaction,
/// §17.2.3); without it, the top Via, From tag, Call-ID, CSeq number and
/// Request-URI. The method is never included, and neither is the To tag, which the
/// ACK of a non-2xx adds: that ACK and a CANCEL get their INVITE's branch. The loop
/// part is [`stateless_loop_hash`] (§16.6 step 8).
pub(crate) fn stateless_branch(msg: &Message<'_>, via: &Via<'_>) -> StatelessBranch {
    let mut h =
        ahash::RandomState::with_seeds(SEEDS[0], SEEDS[1], SEEDS[2], SEEDS[3]).build_hasher();
    match via.branch().filter(|b| is_rfc3261_branch(b)) {
        Some(branch) => {
            h.write_u8(1);
            // Branches match case-insensitively (§17.2.3), so they hash folded.
            write_folded(&mut h, branch);
            match via.sent_by.host {
                Host::Domain(d) => write_folded(&mut h, d.as_bytes()),
                Host::V4(a) => h.write(&a.octets()),
                Host::V6(a) => h.write(&a.octets()),
            }
            h.write_u32(via.sent_by.port.map_or(0, |p| u32::from(p) + 1));
        }
        None => {
            h.write_u8(2);
            let mut field = |b: &[u8]| {
                h.write_usize(b.len());
                h.write(b);
            };
            field(msg.top_via().unwrap_or_default());
            field(msg.from().ok().and_then(|f| f.tag()).unwrap_or_default());
            field(msg.call_id().unwrap_or_default());
            field(&msg.cseq().map(|c| c.seq).unwrap_or(0).to_le_bytes());
            field(msg.request_uri().unwrap_or_default());
        }
    }
    let mut out = [0u8; BRANCH_LEN];
    let (cookie, rest) = out.split_at_mut(COOKIE.len());
    cookie.copy_from_slice(COOKIE);
    let (tag, rest) = rest.split_at_mut(1);
    tag[0] = STATELESS_TAG;
    let (unique, rest) = rest.split_at_mut(16);
    write_hex(unique, h.finish());
    let (sep, lp) = rest.split_at_mut(1);
    sep[0] = LOOP_SEPARATOR;
    lp.copy_from_slice(&stateless_loop_hash(msg));
    StatelessBranch(out)
}

fn write_folded(h: &mut impl Hasher, s: &[u8]) {
    h.write_usize(s.len());
    for b in s {
        h.write_u8(b.to_ascii_lowercase());
    }
}

fn write_hex(out: &mut [u8], mut v: u64) {
    for b in out.iter_mut().rev() {
        *b = b"0123456789abcdef"[(v & 0xf) as usize];
        v >>= 4;
    }
}

/// Why a request to a user of ours was not forwarded.
enum UserMiss {
    /// No live binding, or none reachable.
    NoBinding,
    /// Its binding had nowhere to send to.
    Unsendable,
}

impl Engine {
    /// A request handled statelessly (§16.11). Answers (4xx–5xx, the proxy's own
    /// 200 to OPTIONS) are sent without a transaction; an ACK is never answered.
    pub(crate) fn on_stateless_request(
        &mut self,
        now: Instant,
        from: Peer,
        msg: &Message<'_>,
        out: &mut Outbox,
    ) {
        let Some(method) = msg.method() else {
            return;
        };
        if method == Method::Register && self.register_is_ours(msg) {
            // The registrar's own transaction (see the module comment).
            self.on_request(now, from, msg, out);
            return;
        }
        self.metrics.inc_request_in(&method);
        let via = match msg.via() {
            Ok(v) => v,
            Err(e) => {
                // §16.3 step 1, answered where the request came from.
                let to = response_dest(from, None);
                self.answer(
                    msg,
                    method,
                    to,
                    Answer::new(400, e.reason().as_bytes()),
                    out,
                );
                return;
            }
        };
        let reply_to = response_dest(from, Some(&via));
        let to_me = self.addressed_to_me(msg);
        if let Err(reject) = validate_request(msg, &self.identity, to_me) {
            if method == Method::Ack {
                self.dropped(DropReason::Malformed);
            } else {
                self.reject_stateless(msg, reply_to, reject, out);
            }
            return;
        }
        let plan = match preprocess(msg, &self.identity) {
            Ok(p) => p,
            Err(e) => {
                self.answer(
                    msg,
                    method,
                    reply_to,
                    Answer::new(400, e.reason().as_bytes()),
                    out,
                );
                return;
            }
        };
        // §16.6 step 7: the Route set names the next hop, or §16.5 the target.
        let hop_uri: &[u8] = plan.next.as_ref().map_or(plan.request_uri, |r| r.uri);
        if plan.next.is_none() && to_me && !plan.strict_fixed {
            match method {
                Method::Options => {
                    self.reply_stateless(msg, reply_to, Answer::OK.with(&CAPABILITIES), out)
                }
                _ => self.answer(msg, method, reply_to, Answer::NOT_FOUND, out),
            }
            return;
        }
        let hop_parsed = match (&plan.next, plan.strict_fixed) {
            (None, false) => msg.uri().ok(), // parsed (and memoized) already
            _ => Uri::parse(hop_uri).ok(),
        };
        let Some(Uri::Sip(hop_sip)) = hop_parsed else {
            self.answer(msg, method, reply_to, Answer::NOT_FOUND, out);
            return;
        };
        let fwd = Hop {
            from,
            msg,
            plan: &plan,
            fw: self.forwarding(from, msg, method),
        };
        if self.targets_our_user(msg, &plan, &hop_sip) {
            self.stateless_to_user(now, &fwd, method, &via, &hop_sip, out);
            return;
        }
        let hop = match next_hop(&hop_sip) {
            Ok(h) => h,
            Err(_) => {
                self.answer(msg, method, reply_to, Answer::UNSUPPORTED_URI_SCHEME, out);
                return;
            }
        };
        let Some(addr) = self.resolved_addr(&hop, now, from, out) else {
            let waiting = match hop.host {
                crate::sip::Host::Domain(name) => matches!(
                    self.resolver.lookup(name, now, true),
                    super::resolve::Lookup::Unknown { .. }
                ),
                _ => false,
            };
            if from.transport == crate::config::Transport::Udp && waiting {
                // Asked the resolver: the client's retransmission finds the answer
                // (a stateless proxy cannot wait for it, §16.11).
                return;
            }
            self.answer(msg, method, reply_to, Answer::CANNOT_RESOLVE, out);
            return;
        };
        if !self.may_relay(msg, &plan, addr.ip()) {
            self.answer(msg, method, reply_to, Answer::RELAYING_FORBIDDEN, out);
            return;
        }
        let target = Target {
            request_uri: plan.strict_fixed.then_some(plan.request_uri),
            hop,
            fixed: None,
            route: None,
            resolved: Some(addr),
        };
        let sent = self.send_stateless(&fwd, &via, &target, out);
        self.after_send(sent, msg, method, reply_to, out);
    }

    /// A user of our domains (§16.5): its best binding only (§16.11: one target,
    /// the same for retransmissions, CANCEL and ACK).
    fn stateless_to_user(
        &mut self,
        now: Instant,
        fwd: &Hop<'_, '_>,
        method: Method<'_>,
        via: &Via<'_>,
        uri: &SipUri<'_>,
        out: &mut Outbox,
    ) {
        let (from, msg) = (fwd.from, fwd.msg);
        let reply_to = response_dest(from, Some(via));
        let Ok(aor) = AorKey::from_sip_uri(uri) else {
            self.answer(msg, method, reply_to, Answer::NOT_FOUND, out);
            return;
        };
        let unix = self.unix(now);
        // Sent while the binding is borrowed from the location part: no copy.
        let sent = match self.registrar.location().lookup(&aor, unix).first() {
            None => Err(UserMiss::NoBinding),
            Some(b) => match binding_target(b.contact(), b.path(), &b.source) {
                None => Err(UserMiss::NoBinding),
                Some(t) => self
                    .send_stateless(fwd, via, &t, out)
                    .then_some(())
                    .ok_or(UserMiss::Unsendable),
            },
        };
        match sent {
            Ok(()) => self.after_send(true, msg, method, reply_to, out),
            Err(UserMiss::Unsendable) => self.after_send(false, msg, method, reply_to, out),
            Err(UserMiss::NoBinding) if self.knows_user(uri) => {
                self.answer(msg, method, reply_to, Answer::TEMPORARILY_UNAVAILABLE, out)
            }
            Err(UserMiss::NoBinding) => self.answer(msg, method, reply_to, Answer::NOT_FOUND, out),
        }
    }

    /// Writes `msg` forwarded to `target` with our stateless branch straight into
    /// the outbox (§16.11: to the transport, not through a client transaction).
    fn send_stateless(
        &self,
        fwd: &Hop<'_, '_>,
        via: &Via<'_>,
        target: &Target<'_>,
        out: &mut Outbox,
    ) -> bool {
        let Some(ob) = self.outbound(fwd.from, fwd.msg, target) else {
            return false;
        };
        let branch = stateless_branch(fwd.msg, via);
        out.try_send_with(ob.dest, |b| {
            self.write_branch(fwd, target, &ob, branch.as_bytes(), b)
        })
        .is_ok()
    }

    /// Counts a forwarded request, or answers 503 for one that could not be sent
    /// (no listener for its transport, an unwritable edit).
    fn after_send(
        &mut self,
        sent: bool,
        msg: &Message<'_>,
        method: Method<'_>,
        reply_to: Dest,
        out: &mut Outbox,
    ) {
        if sent {
            self.stats.forwarded_requests += 1;
            self.metrics.inc_request_out(&method);
        } else {
            self.answer(msg, method, reply_to, Answer::SERVICE_UNAVAILABLE, out);
        }
    }

    /// Answers `msg` statelessly, unless it is an ACK, which is never answered
    /// (§17.2.1): that one is dropped.
    fn answer(
        &mut self,
        msg: &Message<'_>,
        method: Method<'_>,
        to: Dest,
        answer: Answer<'_>,
        out: &mut Outbox,
    ) {
        if method == Method::Ack {
            self.dropped(DropReason::Unroutable);
        } else {
            self.reply_stateless(msg, to, answer, out);
        }
    }

    /// A response handled statelessly (§16.11): when its top Via is ours it goes,
    /// minus that Via, to the next one's `received`/`rport`/sent-by (§18.2.2);
    /// anything else is dropped.
    pub(crate) fn on_stateless_response(&mut self, msg: &Message<'_>, out: &mut Outbox) {
        let Some(code) = msg.status() else {
            return;
        };
        self.metrics.inc_response_in(code);
        let Ok(via) = msg.via() else {
            self.dropped(DropReason::Malformed);
            return;
        };
        if self.identity.is_me_at(
            &via.sent_by.host,
            via.sent_by.port,
            via.transport.default_port(),
        ) {
            self.forward_response_stateless(msg, out);
        } else {
            self.dropped(DropReason::Unroutable);
        }
    }
}

#[cfg(test)]
mod tests;
