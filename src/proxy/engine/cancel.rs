//! CANCEL (§16.10, §9.2) and Timer C (§16.8): pending branches are cancelled once they
//! have had a provisional response.

use super::*;

impl Engine {
    /// CANCEL (§16.10): answered 200 at once; every pending branch of the INVITE
    /// it matches is cancelled, and the INVITE's final answer follows (487 from
    /// downstream). With no INVITE to match: 481.
    pub(super) fn on_cancel(
        &mut self,
        now: Instant,
        from: Peer,
        msg: &Message<'_>,
        key: &ServerKeyRef<'_>,
        reply_to: Dest,
        out: &mut Outbox,
    ) {
        let invite = self
            .table
            .find_server(&key.cancelled_invite())
            .map(ServerId);
        let Some(invite) = invite else {
            self.reply_stateless(
                msg,
                reply_to,
                Answer::new(481, b"Call/Transaction Does Not Exist"),
                out,
            );
            return;
        };
        // The CANCEL's own transaction absorbs its retransmissions.
        let ctx = ServerCtx::new(Vec::new(), reply_to, from, now);
        match self
            .table
            .insert_server(key, Reliability::Unreliable, Ctx::Server(ctx))
        {
            Ok(id) => {
                self.metrics.inc_transaction_created();
                self.respond(now, ServerId(id), msg, Answer::OK, out)
            }
            Err(_) => self.reply_stateless(msg, reply_to, Answer::OK, out),
        }
        let Some(s) = self.table.server_mut(invite) else {
            return;
        };
        s.cancelled = true;
        let branches = s.branches.clone();
        for b in branches {
            self.cancel_branch(now, b, out);
        }
    }

    /// Sends CANCEL on branch `id` if it is still pending, or marks it to be sent
    /// when its first provisional arrives (§9.1).
    pub(super) fn cancel_branch(&mut self, now: Instant, id: ClientId, out: &mut Outbox) {
        let Some(c) = self.table.client_mut(id) else {
            return;
        };
        if !c.is_invite || c.final_code.is_some() || c.cancel == CancelState::Sent {
            return;
        }
        if !c.provisional {
            c.cancel = CancelState::Pending;
            return;
        }
        c.cancel = CancelState::Sent;
        let (dest, server, upstream) = (c.dest, c.server, c.upstream);
        let Ok(req) = Message::parse(&c.request) else {
            return;
        };
        let mut cancel = Vec::with_capacity(400);
        if writer::write_cancel(&req, &mut cancel).is_err() {
            return;
        }
        // The CANCEL carries the INVITE's branch (§9.1); copied out so the table
        // can be changed below.
        let Some(branch) = req.via().ok().and_then(|v| v.branch()) else {
            return;
        };
        let branch: SmallVec<[u8; 64]> = SmallVec::from_slice(branch);
        let key = ClientKeyRef::new(&branch, Method::Cancel);
        let ctx = ClientCtx::new(server, dest, upstream, false, true);
        let reliability = match dest {
            Dest::Udp { .. } => Reliability::Unreliable,
            _ => Reliability::Reliable,
        };
        out.send_with(dest, |b| b.extend_from_slice(&cancel));
        self.metrics.inc_request_out(&Method::Cancel);
        if let Ok(cid) = self
            .table
            .insert_client(now, &key, reliability, Ctx::Client(ctx), &mut self.wheel)
            .map(ClientId)
        {
            self.metrics.inc_transaction_created();
            if let Some(cc) = self.table.client_mut(cid) {
                cc.request = cancel;
            }
        }
    }

    /// Sends CANCEL on every branch of `server` except `except`.
    pub(super) fn cancel_others(
        &mut self,
        now: Instant,
        server: ServerId,
        except: ClientId,
        out: &mut Outbox,
    ) {
        let Some(branches) = self.table.server(server).map(|s| s.branches.clone()) else {
            return;
        };
        for b in branches.into_iter().filter(|&b| b != except) {
            self.cancel_branch(now, b, out);
        }
    }

    /// Timer C (§16.8): a branch that has rung gets a CANCEL and counts as 408; one
    /// that has not behaves as if it got 408.
    pub(super) fn timer_c(&mut self, now: Instant, id: ClientId, out: &mut Outbox) {
        self.metrics.inc_transaction_timed_out();
        let provisional = self.table.client(id).is_some_and(|c| c.provisional);
        if provisional {
            self.cancel_branch(now, id, out);
        }
        self.branch_failed(now, id, 408, out);
    }
}
