//! Replies the proxy writes itself: final responses through the server transaction,
//! stateless rejections (400, 505), and the actions of server transactions.

use super::*;

impl Engine {
    /// Writes a response of our own to the request of server transaction `id` and
    /// hands it to the transaction.
    pub(super) fn respond(
        &mut self,
        now: Instant,
        id: ServerId,
        req: &Message<'_>,
        answer: Answer<'_>,
        out: &mut Outbox,
    ) {
        let code = answer.code;
        let tag = self.to_tag(req);
        let Some(s) = self.table.server_mut(id) else {
            return;
        };
        if s.final_sent && code >= 200 {
            return;
        }
        let mut resp = std::mem::take(&mut s.last_response);
        resp.clear();
        if answer.write(req, &tag, &mut resp).is_err() {
            s.last_response = resp;
            return;
        }
        if code >= 200 {
            s.final_sent = true;
        }
        s.last_response = resp;
        if code > 100 {
            self.stats.local_replies += 1;
        }
        self.server_event(now, id, ServerEvent::TuResponse(code), out);
    }

    /// Feeds `event` to server transaction `id` and carries out what it asks.
    pub(super) fn server_event(
        &mut self,
        now: Instant,
        id: ServerId,
        event: ServerEvent,
        out: &mut Outbox,
    ) {
        let mut actions = Actions::new();
        self.table
            .server_event(now, id.txn(), event, &mut self.wheel, &mut actions);
        self.server_actions(now, id, &actions, out);
    }

    pub(super) fn server_actions(
        &mut self,
        now: Instant,
        id: ServerId,
        actions: &[Action],
        out: &mut Outbox,
    ) {
        for a in actions {
            match a {
                Action::SendResponse | Action::RetransmitResponse => {
                    if let Some(s) = self.table.server(id) {
                        if !s.last_response.is_empty() {
                            let dest = s.reply_to;
                            out.send_with(dest, |b| b.extend_from_slice(&s.last_response));
                            let code = s
                                .last_response
                                .get(8..11)
                                .and_then(crate::sip::text::parse_u32)
                                .unwrap_or(0);
                            self.metrics.inc_response_out(code as u16);
                        }
                    }
                }
                Action::Terminated => {
                    if let Some(Ctx::Server(s)) = self.table.remove(id.txn(), &mut self.wheel) {
                        self.metrics
                            .observe_transaction_duration(now.saturating_duration_since(s.created));
                    }
                }
                _ => {}
            }
        }
    }

    pub(in crate::proxy) fn dropped(&mut self, reason: DropReason) {
        self.stats.dropped += 1;
        self.metrics.inc_dropped(reason);
    }

    /// Answers a request without creating a transaction: validation failures
    /// (their retransmissions are answered the same way) and overload.
    pub(in crate::proxy) fn reject_stateless(
        &mut self,
        msg: &Message<'_>,
        to: Dest,
        r: Reject,
        out: &mut Outbox,
    ) {
        let reason = r.reason().as_bytes();
        if r == Reject::BadExtension {
            let mut tags = SmallVec::<[u8; 64]>::new();
            for t in unsupported_proxy_require(msg) {
                if !tags.is_empty() {
                    tags.extend_from_slice(b", ");
                }
                tags.extend_from_slice(t);
            }
            self.reply_stateless(
                msg,
                to,
                Answer::new(r.code(), reason).with(&[("Unsupported", &tags)]),
                out,
            );
        } else {
            self.reply_stateless(msg, to, Answer::new(r.code(), reason), out);
        }
    }

    /// 505 for a request whose SIP-Version this proxy does not speak (RFC 3261
    /// §21.5.7): `msg` is the request with its version rewritten.
    pub(crate) fn reply_version_not_supported(
        &mut self,
        from: Peer,
        msg: &Message<'_>,
        out: &mut Outbox,
    ) {
        let via = msg.via().ok();
        let to = crate::proxy::response_dest(from, via.as_ref());
        self.reply_stateless(msg, to, Answer::VERSION_NOT_SUPPORTED, out);
    }

    /// 400 for a request that failed [`Message::parse`] with `fault` (RFC 3261
    /// §21.4.1, the reason phrase naming it): `msg` is what could be salvaged of it
    /// (see [`Message::parse_skipping_bad_lines`]), with a usable top Via.
    pub(crate) fn reply_unparsable(
        &mut self,
        from: Peer,
        msg: &Message<'_>,
        fault: crate::sip::ParseError,
        out: &mut Outbox,
    ) {
        let via = msg.via().ok();
        let to = crate::proxy::response_dest(from, via.as_ref());
        self.reply_stateless(msg, to, Answer::new(400, fault.reason().as_bytes()), out);
    }

    pub(in crate::proxy) fn reply_stateless(
        &mut self,
        msg: &Message<'_>,
        to: Dest,
        answer: Answer<'_>,
        out: &mut Outbox,
    ) {
        let tag = self.to_tag(msg);
        if out
            .try_send_with(to, |b| answer.write(msg, &tag, b))
            .is_ok()
        {
            self.stats.local_replies += 1;
            self.metrics.inc_response_out(answer.code);
        }
    }

    /// A To tag for responses this proxy generates: the same request (and its
    /// retransmissions) always gets the same tag (§8.2.6.2).
    pub(super) fn to_tag(&self, req: &Message<'_>) -> [u8; 16] {
        let mut h = self.tags.build_hasher();
        h.write(req.call_id().unwrap_or_default());
        h.write_u32(req.cseq().map(|c| c.seq).unwrap_or(0));
        h.write(req.top_via().unwrap_or_default());
        let v = h.finish();
        let mut tag = [0u8; 16];
        for (i, b) in tag.iter_mut().enumerate() {
            *b = b"0123456789abcdef"[((v >> (60 - 4 * i)) & 0xf) as usize];
        }
        tag
    }
}

/// The server transaction key of a request (§17.2.3): branch + sent-by + method,
/// or the pre-3261 fields when the branch lacks the cookie.
pub(super) fn server_key<'a>(
    msg: &Message<'a>,
    via: &Via<'a>,
    method: Method<'a>,
) -> Option<ServerKeyRef<'a>> {
    if let Some(k) = ServerKeyRef::from_via(via, method) {
        return Some(k);
    }
    let fields = LegacyFields {
        request_uri: msg.request_uri()?,
        to_tag: msg.to().ok().and_then(|t| t.tag()).unwrap_or_default(),
        from_tag: msg.from().ok().and_then(|t| t.tag()).unwrap_or_default(),
        call_id: msg.call_id().ok()?,
        cseq: msg.cseq().ok()?.seq,
        top_via: msg.top_via()?,
    };
    Some(ServerKeyRef::legacy(fields, method))
}

pub(super) fn reliability_of(t: Transport) -> Reliability {
    if t.is_reliable() {
        Reliability::Reliable
    } else {
        Reliability::Unreliable
    }
}
