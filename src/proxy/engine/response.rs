//! Response processing (§16.7): matching a branch, forwarding provisionals and 2xx at
//! once, keeping the best final response (§16.7 step 6) with the challenges of every
//! 401/407 (step 7), serial forking's next group, and responses no transaction claims.

use super::*;

impl Engine {
    /// A response owned by this shard arrived.
    pub(crate) fn on_response(
        &mut self,
        now: Instant,
        from: Peer,
        msg: &Message<'_>,
        out: &mut Outbox,
    ) {
        let _ = from;
        let Some(code) = msg.status() else {
            return;
        };
        self.metrics.inc_response_in(code);
        let (Ok(via), Ok(cseq)) = (msg.via(), msg.cseq()) else {
            self.dropped(DropReason::Malformed);
            return;
        };
        let Some(branch) = via.branch() else {
            self.dropped(DropReason::Malformed);
            return;
        };
        let key = ClientKeyRef::new(branch, cseq.method);
        let Some(id) = self.table.find_client(&key).map(ClientId) else {
            // §16.7: no transaction claims it (a 2xx retransmission after the
            // INVITE transaction ended): forward statelessly if the Via was ours.
            if self.identity.is_me_at(
                &via.sent_by.host,
                via.sent_by.port,
                via.transport.default_port(),
            ) {
                self.forward_response_stateless(msg, out);
            } else {
                self.dropped(DropReason::Malformed);
            }
            return;
        };
        let mut actions = Actions::new();
        self.table.client_event(
            now,
            id.txn(),
            ClientEvent::Response(code),
            &mut self.wheel,
            &mut actions,
        );
        for a in actions {
            match a {
                Action::PassResponse => self.on_branch_response(now, id, code, msg, out),
                Action::SendAck => self.send_ack(id, msg, out),
                Action::Terminated => self.branch_terminated(id),
                other => self.client_action(now, id, other, out),
            }
        }
    }

    /// Sends `msg` without its top Via to `dest`, outside any server transaction's
    /// state (stateless, or a further 2xx after the final response), and counts it.
    pub(super) fn relay_response(&mut self, dest: Dest, msg: &Message<'_>, out: &mut Outbox) {
        if out
            .try_send_with(dest, |b| writer::forward_response(msg, b))
            .is_ok()
        {
            self.stats.forwarded_responses += 1;
            self.metrics.inc_response_out(msg.status().unwrap_or(0));
        }
    }

    /// Forwards a response to the element named by its second Via (§16.7 step 9,
    /// §18.2.2) without a transaction.
    pub(in crate::proxy) fn forward_response_stateless(
        &mut self,
        msg: &Message<'_>,
        out: &mut Outbox,
    ) {
        let Some(next) = msg.values(HeaderName::Via).nth(1) else {
            self.dropped(DropReason::Malformed);
            return;
        };
        let Ok(via) = Via::parse(next) else {
            self.dropped(DropReason::Malformed);
            return;
        };
        let Some(dest) = self.via_dest(&via) else {
            self.dropped(DropReason::Malformed);
            return;
        };
        self.relay_response(dest, msg, out);
    }

    /// Where a response goes by a Via value alone (§18.2.2, RFC 3581): `received`
    /// and `rport` when present, else sent-by.
    pub(super) fn via_dest(&self, via: &Via<'_>) -> Option<Dest> {
        let ip = match via.received() {
            Some(Ok(ip)) => ip,
            _ => via.sent_by.host.ip()?,
        };
        let port = via
            .rport()
            .flatten()
            .or(via.sent_by.port)
            .unwrap_or(via.transport.default_port());
        let to = SocketAddr::new(ip, port);
        let transport = match via.transport {
            crate::sip::via::Transport::Tcp => Transport::Tcp,
            crate::sip::via::Transport::Tls => Transport::Tls,
            _ => Transport::Udp,
        };
        match transport {
            Transport::Udp => {
                let idx = self.listeners.iter().position(|l| {
                    l.transport == Transport::Udp && l.local.is_ipv4() == to.is_ipv4()
                })?;
                Some(Dest::Udp {
                    listener: idx as u16,
                    to,
                })
            }
            t => Some(Dest::Stream { transport: t, to }),
        }
    }

    /// §16.7 for a response a branch passed up.
    pub(super) fn on_branch_response(
        &mut self,
        now: Instant,
        id: ClientId,
        code: u16,
        msg: &Message<'_>,
        out: &mut Outbox,
    ) {
        let Some(c) = self.table.client_mut(id) else {
            return;
        };
        let server = c.server;
        let upstream = c.upstream;
        let is_invite = c.is_invite;
        if c.is_cancel {
            // The response to a CANCEL we generated: absorbed (§16.10).
            return;
        }
        if code < 200 {
            c.provisional = true;
            let send_cancel = c.cancel == CancelState::Pending;
            if is_invite && code > 100 {
                // §16.7 step 2: a provisional resets Timer C.
                self.table.set_timer(
                    now,
                    id.txn(),
                    TimerKind::C,
                    Some(self.cfg.timers.timer_c),
                    &mut self.wheel,
                );
            }
            if send_cancel {
                if let Some(c) = self.table.client_mut(id) {
                    c.cancel = CancelState::None;
                }
                self.cancel_branch(now, id, out);
            }
            // 100 is hop-by-hop (§16.7 step 5): never forwarded.
            if code > 100 {
                self.forward_upstream(now, server, upstream, code, msg, out);
            }
            return;
        }
        if c.final_code.is_some() {
            // Timer C already settled this branch (408); a late 487 changes nothing.
            return;
        }
        c.final_code = Some(code);
        if is_invite {
            self.table
                .set_timer(now, id.txn(), TimerKind::C, None, &mut self.wheel);
        }
        if (200..300).contains(&code) {
            // §16.7 step 5/10: every 2xx goes upstream at once; the other branches
            // are cancelled (first: the 2xx ends the server transaction, and with it
            // the list of branches).
            if is_invite {
                self.cancel_others(now, server, id, out);
            }
            self.forward_upstream(now, server, upstream, code, msg, out);
            return;
        }
        // A final non-2xx: a candidate for the best response (§16.7 step 6).
        if let Some(s) = self.table.server_mut(server) {
            if matches!(code, 401 | 407) {
                collect_challenges(msg, &mut s.challenges);
            }
            if better(code, s.best.as_ref().map(|b| b.0)) {
                s.best = Some((code, msg.as_bytes().to_vec()));
            }
        }
        if code >= 600 && is_invite {
            self.cancel_others(now, server, id, out);
        }
        self.maybe_finish(now, server, out);
    }

    /// Forwards `msg` (minus our Via) to the server transaction's client.
    pub(super) fn forward_upstream(
        &mut self,
        now: Instant,
        server: ServerId,
        upstream: Dest,
        code: u16,
        msg: &Message<'_>,
        out: &mut Outbox,
    ) {
        let live = self
            .table
            .server(server)
            .is_some_and(|s| !s.final_sent || (200..300).contains(&code));
        if !live {
            // The server transaction has ended: only a further 2xx (another fork
            // branch answered) still goes upstream, statelessly.
            if (200..300).contains(&code) {
                self.relay_response(upstream, msg, out);
            }
            return;
        }
        let Some(s) = self.table.server_mut(server) else {
            return;
        };
        if s.final_sent {
            // A second 2xx while the transaction lingers.
            self.relay_response(upstream, msg, out);
            return;
        }
        let mut resp = std::mem::take(&mut s.last_response);
        resp.clear();
        if writer::forward_response(msg, &mut resp).is_err() {
            s.last_response = resp;
            return;
        }
        if code >= 200 {
            s.final_sent = true;
        }
        s.last_response = resp;
        self.stats.forwarded_responses += 1;
        self.server_event(now, server, ServerEvent::TuResponse(code), out);
    }

    /// When every branch has a final answer, sends the best one upstream (§16.7
    /// step 6): 503 becomes 500, collected challenges ride on a 401/407, and with no
    /// answer at all the proxy answers 408.
    pub(super) fn maybe_finish(&mut self, now: Instant, server: ServerId, out: &mut Outbox) {
        let Some(s) = self.table.server(server) else {
            return;
        };
        if s.final_sent {
            return;
        }
        let pending = s
            .branches
            .iter()
            .any(|&b| self.table.client(b).is_some_and(|c| c.final_code.is_none()));
        if pending {
            return;
        }
        let best = s.best.as_ref().map(|(code, _)| *code);
        let request = s.request.clone();
        let Ok(req) = Message::parse(&request) else {
            return;
        };
        // Serial forking (§16.6): a group that failed without a 6xx hands over to
        // the next one, unless the request was cancelled.
        if let (Some(start), false, false) =
            (s.next_group, s.cancelled, best.is_some_and(|c| c >= 600))
        {
            let from = s.from;
            if let (Ok(plan), Some(uri)) = (
                preprocess(&req, &self.identity),
                match req.uri() {
                    Ok(Uri::Sip(s)) => Some(s),
                    _ => None,
                },
            ) {
                let rq = Req {
                    now,
                    id: server,
                    from,
                    msg: &req,
                };
                self.route_to_user(rq, &plan, &uri, start, out);
                return;
            }
        }
        match best {
            Some(503) | None => {
                let (code, reason): (u16, &[u8]) = if best.is_some() {
                    (500, b"Server Internal Error")
                } else {
                    (408, b"Request Timeout")
                };
                self.respond(now, server, &req, Answer::new(code, reason), out);
            }
            Some(code) => {
                let Some(s) = self.table.server_mut(server) else {
                    return;
                };
                let Some((_, bytes)) = s.best.take() else {
                    return;
                };
                let Ok(resp) = Message::parse(&bytes) else {
                    return;
                };
                let mut outb = std::mem::take(&mut s.last_response);
                outb.clear();
                let extra = if matches!(code, 401 | 407) {
                    own_challenges_removed(&resp, &s.challenges)
                } else {
                    Vec::new()
                };
                if writer::forward_response_with(&resp, &extra, &mut outb).is_err() {
                    return;
                }
                s.last_response = outb;
                s.final_sent = true;
                self.stats.forwarded_responses += 1;
                self.server_event(now, server, ServerEvent::TuResponse(code), out);
            }
        }
    }

    pub(super) fn send_ack(&mut self, id: ClientId, resp: &Message<'_>, out: &mut Outbox) {
        let Some(c) = self.table.client(id) else {
            return;
        };
        let Ok(req) = Message::parse(&c.request) else {
            return;
        };
        let dest = c.dest;
        if out
            .try_send_with(dest, |b| writer::write_ack(&req, resp, b))
            .is_ok()
        {
            self.metrics.inc_request_out(&Method::Ack);
        }
    }

    pub(super) fn branch_terminated(&mut self, id: ClientId) {
        self.table.remove(id.txn(), &mut self.wheel);
    }

    /// Client actions other than passing a response up.
    pub(super) fn client_action(
        &mut self,
        now: Instant,
        id: ClientId,
        a: Action,
        out: &mut Outbox,
    ) {
        match a {
            Action::RetransmitRequest => {
                if let Some(c) = self.table.client(id) {
                    let dest = c.dest;
                    out.send_with(dest, |b| b.extend_from_slice(&c.request));
                }
            }
            Action::Timeout(TimerKind::C) => self.timer_c(now, id, out),
            // §16.8 (B, F): the branch behaves as if it had a 408; §16.9: a
            // transport error counts as 503.
            Action::Timeout(_) => {
                self.metrics.inc_transaction_timed_out();
                self.branch_failed(now, id, 408, out);
            }
            Action::TransportError => self.branch_failed(now, id, 503, out),
            Action::Terminated => self.branch_terminated(id),
            _ => {}
        }
    }

    pub(super) fn branch_failed(
        &mut self,
        now: Instant,
        id: ClientId,
        code: u16,
        out: &mut Outbox,
    ) {
        let Some(c) = self.table.client_mut(id) else {
            return;
        };
        if c.is_cancel || c.final_code.is_some() {
            return;
        }
        c.final_code = Some(code);
        let server = c.server;
        if let Some(s) = self.table.server_mut(server) {
            if code == 503 && s.best.is_none() {
                // Remembered as a 503 so that it turns into 500 (§16.9, §16.7 step 6).
                s.best = Some((503, Vec::new()));
            }
        }
        self.maybe_finish(now, server, out);
    }
}

/// §16.7 step 6: is `code` a better final response than `best`? 6xx beats
/// everything; otherwise the lower class wins; within 4xx, prefer 401/407 (so the
/// caller can authenticate) over other 4xx; a 503 (which becomes 500) loses to any
/// other answer.
pub(super) fn better(code: u16, best: Option<u16>) -> bool {
    let Some(best) = best else {
        return true;
    };
    let rank = |c: u16| -> (u8, u8) {
        let class = match c / 100 {
            6 => 0,
            3 => 1,
            4 => 2,
            5 => 3,
            _ => 4,
        };
        let within = match c {
            401 | 407 => 0,
            503 => 2,
            _ => 1,
        };
        (class, within)
    };
    rank(code) < rank(best)
}

/// Appends the WWW-Authenticate / Proxy-Authenticate lines of `resp`.
pub(super) fn collect_challenges(resp: &Message<'_>, into: &mut Vec<u8>) {
    for h in resp.headers() {
        if matches!(
            h.name,
            HeaderName::WwwAuthenticate | HeaderName::ProxyAuthenticate
        ) {
            let line = &resp.buf()[h.line_range()];
            into.extend_from_slice(line);
            if !line.ends_with(b"\n") {
                into.extend_from_slice(b"\r\n");
            }
        }
    }
}

/// The collected challenge lines minus the ones `resp` already carries.
pub(super) fn own_challenges_removed(resp: &Message<'_>, all: &[u8]) -> Vec<u8> {
    let mut mine = Vec::new();
    collect_challenges(resp, &mut mine);
    let mut out = Vec::new();
    for line in all.split_inclusive(|&b| b == b'\n') {
        let present = mine.split_inclusive(|&b| b == b'\n').any(|m| m == line);
        if !present {
            out.extend_from_slice(line);
        }
    }
    out
}
