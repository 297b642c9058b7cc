//! Request intake (RFC 3261 §16.3) and the auth gate: a request is validated, matched
//! to its server transaction, authenticated when it must be (§22), and handed to the
//! registrar, answered locally, or routed.

use super::*;

impl Engine {
    /// A request owned by this shard arrived from `from`.
    pub(crate) fn on_request(
        &mut self,
        now: Instant,
        from: Peer,
        msg: &Message<'_>,
        out: &mut Outbox,
    ) {
        let Some(method) = msg.method() else {
            return;
        };
        self.metrics.inc_request_in(&method);
        let via = match msg.via() {
            Ok(v) => v,
            Err(e) => {
                // §16.3 step 1 with a Via nobody can route by: the 400 goes back to
                // where the request came from, as Kamailio's sanity checks do. An
                // ACK is never answered.
                if method == Method::Ack {
                    self.dropped(DropReason::Malformed);
                } else {
                    let to = crate::proxy::response_dest(from, None);
                    self.reply_stateless(msg, to, Answer::new(400, e.reason().as_bytes()), out);
                }
                return;
            }
        };
        let Some(key) = server_key(msg, &via, method) else {
            self.dropped(DropReason::Malformed);
            return;
        };
        let reply_to = crate::proxy::response_dest(from, Some(&via));

        if method == Method::Ack {
            self.on_ack(now, from, msg, &key, out);
            return;
        }
        // A retransmission (§17.2.3): the transaction answers it.
        if let Some(id) = self.table.find_server(&key).map(ServerId) {
            self.metrics.inc_retransmission_absorbed();
            self.server_event(now, id, ServerEvent::Request, out);
            return;
        }
        if method == Method::Cancel {
            self.on_cancel(now, from, msg, &key, reply_to, out);
            return;
        }

        let to_me = self.addressed_to_me(msg);
        if let Err(reject) = validate_request(msg, &self.identity, to_me) {
            self.reject_stateless(msg, reply_to, reject, out);
            return;
        }

        let reliability = reliability_of(from.transport);
        // A REGISTER for one of our domains is answered before this call returns, so
        // nothing would ever read a copy of it (the copy is for answering a proxied
        // request later: its branches' outcome, a timeout, a DNS answer).
        let local_register = method == Method::Register && self.register_is_ours(msg);
        let request = if local_register {
            Vec::new()
        } else {
            msg.as_bytes().to_vec()
        };
        let ctx = ServerCtx::new(request, reply_to, from, now);
        let id = match self
            .table
            .insert_server(&key, reliability, Ctx::Server(ctx))
        {
            Ok(id) => {
                self.metrics.inc_transaction_created();
                ServerId(id)
            }
            Err(TableError::Full) => {
                self.stats.table_full += 1;
                self.reply_stateless(
                    msg,
                    reply_to,
                    Answer::SERVICE_UNAVAILABLE.with(&[("Retry-After", RETRY_AFTER)]),
                    out,
                );
                return;
            }
            Err(TableError::Exists(id)) => {
                self.server_event(now, ServerId(id), ServerEvent::Request, out);
                return;
            }
            Err(TableError::Ack) => return,
        };
        if method == Method::Invite {
            // §16.2: a stateful proxy answers INVITE with 100 at once so the
            // client stops retransmitting.
            self.respond(now, id, msg, Answer::TRYING, out);
        }
        if local_register {
            self.on_register(now, id, from, msg, out);
            return;
        }
        let authenticated = match self.authenticate_request(now, id, msg, method, out) {
            Some(a) => a,
            None => return,
        };
        if let Some(s) = self.table.server_mut(id) {
            s.authenticated = authenticated;
        }
        self.route_request(Req { now, id, from, msg }, to_me, authenticated, out);
    }

    /// True when the Request-URI names the proxy itself (no user part, §16.5).
    pub(in crate::proxy) fn addressed_to_me(&self, msg: &Message<'_>) -> bool {
        msg.uri().ok().is_some_and(|u| {
            u.as_sip()
                .is_some_and(|s| s.user.is_none() && self.identity.is_me(s))
        })
    }

    /// True when a REGISTER's Request-URI names one of our domains (RFC 3261
    /// §10.3 step 1); others are proxied like any request.
    pub(in crate::proxy) fn register_is_ours(&self, msg: &Message<'_>) -> bool {
        msg.uri()
            .ok()
            .and_then(|u| u.as_sip().map(|s| self.registrar.is_our_domain(&s.host)))
            .unwrap_or(false)
    }

    /// A REGISTER for one of our domains (RFC 3261 §10.3): on the shard that owns
    /// its AOR, or with replication on any shard.
    pub(super) fn on_register(
        &mut self,
        now: Instant,
        id: ServerId,
        from: Peer,
        msg: &Message<'_>,
        out: &mut Outbox,
    ) {
        let unix = self.unix(now);
        // Steps 3–4: authenticate, and the user may only register its own AOR.
        if let Some(auth) = self.auth.as_ref().filter(|a| a.mode != AuthMode::None) {
            let realm = auth.realm.clone();
            match auth
                .authenticator
                .check(unix, msg, AuthKind::Www, realm.as_bytes())
            {
                AuthOutcome::Authorized { user } => {
                    let own = msg
                        .to_uri()
                        .ok()
                        .and_then(|u| u.as_sip().map(|s| s.user_is(user)))
                        .unwrap_or(false);
                    if !own {
                        self.metrics.inc_auth_failure();
                        self.respond(
                            now,
                            id,
                            msg,
                            Answer::new(403, b"Forbidden (AOR Mismatch)"),
                            out,
                        );
                        return;
                    }
                }
                other => {
                    self.answer_auth_failure(now, id, msg, AuthKind::Www, other, out);
                    return;
                }
            }
        }
        let source = Source {
            addr: from.addr,
            transport: from.transport,
            conn: from.conn,
            listener: from.listener,
            nat: nat_detected(msg, from),
        };
        let Some(s) = self.table.server_mut(id) else {
            return;
        };
        let mut resp = std::mem::take(&mut s.last_response);
        resp.clear();
        let version = self.version(now);
        match self
            .registrar
            .on_register(unix, version, msg, source, &mut resp)
        {
            RegisterOutcome::Answered { status, changes } => {
                if let Some(journal) = &mut self.journal {
                    // The AOR's owner persists it (`replica`): here, or when the
                    // change reaches it. A REGISTER's changes are all its AOR's.
                    let location = self.registrar.location();
                    if changes.first().is_some_and(|c| location.owns(c.aor())) {
                        journal.extend_from_slice(&changes);
                    }
                }
                if self.replicating {
                    self.queue_replication(now, changes);
                }
                self.metrics.inc_registration();
                if let Some(s) = self.table.server_mut(id) {
                    s.last_response = resp;
                    s.final_sent = true;
                }
                self.server_event(now, id, ServerEvent::TuResponse(status), out);
            }
            RegisterOutcome::ForeignDomain | RegisterOutcome::NotRegister => {
                self.respond(now, id, msg, Answer::new(403, b"Not Our Domain"), out);
            }
        }
    }

    /// `--auth all`: an out-of-dialog request from one of our domains must carry
    /// valid Proxy-Authorization (RFC 3261 §22.3). Returns whether the sender is an
    /// authenticated local user, or `None` when the request has been answered.
    pub(super) fn authenticate_request(
        &mut self,
        now: Instant,
        id: ServerId,
        msg: &Message<'_>,
        method: Method<'_>,
        out: &mut Outbox,
    ) -> Option<bool> {
        let Some(auth) = self.auth.as_ref().filter(|a| a.mode == AuthMode::All) else {
            return Some(false);
        };
        let in_dialog = msg.to().ok().and_then(|t| t.tag()).is_some();
        let local_sender = msg
            .from_uri()
            .ok()
            .and_then(|u| {
                u.as_sip().map(|s| {
                    self.identity
                        .is_our_domain(&s.host, s.port, s.port_or_default())
                })
            })
            .unwrap_or(false);
        if in_dialog || !local_sender || !crate::auth::is_challengeable(method) {
            return Some(false);
        }
        let realm = auth.realm.clone();
        let unix = self.unix(now);
        match auth
            .authenticator
            .check(unix, msg, AuthKind::Proxy, realm.as_bytes())
        {
            AuthOutcome::Authorized { .. } => Some(true),
            other => {
                self.answer_auth_failure(now, id, msg, AuthKind::Proxy, other, out);
                None
            }
        }
    }

    /// 401/407 with fresh challenges, 403 or 400, for failed credentials.
    pub(super) fn answer_auth_failure(
        &mut self,
        now: Instant,
        id: ServerId,
        msg: &Message<'_>,
        kind: AuthKind,
        outcome: AuthOutcome<'_>,
        out: &mut Outbox,
    ) {
        let Some(auth) = self.auth.as_ref() else {
            return;
        };
        match outcome {
            AuthOutcome::Challenge(state) => {
                let unix = self.unix(now);
                let ch = auth
                    .authenticator
                    .challenge(unix, auth.realm.as_bytes(), kind, state);
                let headers: SmallVec<[(&str, Vec<u8>); 2]> =
                    ch.headers().map(|(n, v)| (n, v.to_vec())).collect();
                let extra: SmallVec<[(&str, &[u8]); 2]> =
                    headers.iter().map(|(n, v)| (*n, v.as_slice())).collect();
                self.metrics.inc_auth_challenge();
                self.respond(
                    now,
                    id,
                    msg,
                    Answer::new(ch.status(), ch.reason()).with(&extra),
                    out,
                );
            }
            AuthOutcome::Forbidden => {
                self.metrics.inc_auth_failure();
                self.respond(now, id, msg, Answer::FORBIDDEN, out);
            }
            AuthOutcome::BadRequest(_) => {
                self.metrics.inc_auth_failure();
                self.respond(now, id, msg, Answer::new(400, b"Bad Credentials"), out);
            }
            AuthOutcome::Authorized { .. } => {}
        }
    }

    /// Requests addressed to the proxy itself.
    pub(super) fn handle_local(
        &mut self,
        now: Instant,
        id: ServerId,
        msg: &Message<'_>,
        method: Method<'_>,
        out: &mut Outbox,
    ) {
        match method {
            Method::Options => self.respond(now, id, msg, Answer::OK.with(&CAPABILITIES), out),
            _ => self.respond(now, id, msg, Answer::NOT_FOUND, out),
        }
    }
}
