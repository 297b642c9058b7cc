//! Forwarding (§16.6): one client transaction per branch, the Request-URI, Max-
//! Forwards, our Via and Record-Route (with the flow token), the outbound listener;
//! ACKs for 2xx relayed without a transaction.

use super::*;

impl Engine {
    /// Sends `msg` to every target (§16.6), each in its own client transaction.
    pub(super) fn fork(
        &mut self,
        rq: Req<'_, '_>,
        plan: &RoutePlan<'_>,
        targets: &[Target<'_>],
        out: &mut Outbox,
    ) {
        let Req { now, id, from, msg } = rq;
        let method = msg.method().unwrap_or(Method::Options);
        let Some(upstream) = self.table.server(id).map(|s| s.reply_to) else {
            return;
        };
        let shared = Branching {
            hop: Hop {
                from,
                msg,
                plan,
                fw: self.forwarding(from, msg, method),
            },
            loop_hash: loop_hash(msg),
            upstream,
            method,
        };
        let mut sent = 0;
        for target in targets {
            match self.send_branch(now, id, &shared, target, out) {
                Some(client) => {
                    sent += 1;
                    if let Some(s) = self.table.server_mut(id) {
                        s.branches.push(client);
                    }
                }
                None => continue,
            }
        }
        if sent == 0 {
            self.respond(now, id, msg, Answer::SERVICE_UNAVAILABLE, out);
        } else if sent > 1 {
            self.metrics.inc_fork(sent);
        }
    }

    /// Writes and sends one branch; returns its client transaction.
    pub(super) fn send_branch(
        &mut self,
        now: Instant,
        server: ServerId,
        shared: &Branching<'_, '_>,
        target: &Target<'_>,
        out: &mut Outbox,
    ) -> Option<ClientId> {
        let Branching {
            hop,
            ref loop_hash,
            upstream,
            method,
        } = *shared;
        let (from, msg) = (hop.from, hop.msg);
        let b = self.branches.next_branch();
        let ob = self.outbound(from, msg, target)?;
        let (transport, dest) = (ob.transport, ob.dest);
        let mut branch = [0u8; 45];
        branch[..28].copy_from_slice(b.as_bytes());
        branch[28] = crate::proxy::validate::LOOP_SEPARATOR;
        branch[29..].copy_from_slice(loop_hash);

        let mut bytes = Vec::with_capacity(msg.as_bytes().len() + 256);
        self.write_branch(&hop, target, &ob, &branch, &mut bytes)
            .ok()?;
        let key = ClientKeyRef::new(&branch, method);
        let is_invite = method == Method::Invite;
        let ctx = ClientCtx::new(server, dest, upstream, is_invite, false);
        let client = self
            .table
            .insert_client(
                now,
                &key,
                reliability_of(transport),
                Ctx::Client(ctx),
                &mut self.wheel,
            )
            .map(ClientId)
            .ok()?;
        out.send_with(dest, |b| b.extend_from_slice(&bytes));
        self.metrics.inc_transaction_created();
        self.metrics.inc_request_out(&method);
        if let Some(c) = self.table.client_mut(client) {
            c.request = bytes;
        }
        if is_invite {
            // §16.6 step 11.
            self.table.set_timer(
                now,
                client.txn(),
                TimerKind::C,
                Some(self.cfg.timers.timer_c),
                &mut self.wheel,
            );
        }
        self.stats.forwarded_requests += 1;
        Some(client)
    }

    /// Where a request to `target` goes (§16.6 step 10): its transport,
    /// destination and the listener it leaves from.
    pub(in crate::proxy) fn outbound(
        &self,
        from: Peer,
        msg: &Message<'_>,
        target: &Target<'_>,
    ) -> Option<Outbound<'_>> {
        let (transport, dest, index, listener) = match target.fixed {
            Some(f) => {
                let l = self.listeners.get(f.listener as usize)?;
                (f.transport, f.dest, f.listener as usize, l)
            }
            None => {
                let to = target.resolved.or_else(|| target.hop.addr())?;
                // §18.1.1: a request that would not fit a UDP datagram goes over
                // TCP, when --udp-mtu asks for it. Off by default, as Kamailio's
                // `udp_mtu`: a phone that listens on UDP only (most, behind NAT
                // all) would never get a large INVITE.
                let estimate = msg.as_bytes().len() + 300;
                let transport = match (target.hop.transport, self.cfg.udp_mtu) {
                    (Transport::Udp, Some(mtu)) if estimate > mtu => Transport::Tcp,
                    (t, _) => t,
                };
                let (idx, l) = self.outbound_listener(from, transport, to)?;
                let dest = match transport {
                    Transport::Udp => Dest::Udp {
                        listener: idx as u16,
                        to,
                    },
                    t => Dest::Stream { transport: t, to },
                };
                (transport, dest, idx, l)
            }
        };
        Some(Outbound {
            transport,
            dest,
            index,
            listener,
        })
    }

    /// Writes `msg` as forwarded to `target` (§16.6 steps 2–9): Request-URI, our
    /// Via with `branch`, Record-Route, Max-Forwards, Route removal, `received` and
    /// `rport` on the previous hop's Via.
    pub(in crate::proxy) fn write_branch(
        &self,
        hop: &Hop<'_, '_>,
        target: &Target<'_>,
        ob: &Outbound<'_>,
        branch: &[u8],
        bytes: &mut Vec<u8>,
    ) -> Result<(), WriteError> {
        let Hop {
            from,
            msg,
            plan,
            ref fw,
        } = *hop;
        let (out_idx, out_listener) = (ob.index, ob.listener);
        let inbound = self.listeners.get(from.listener as usize);
        let via = our_via(ob.transport, out_listener, branch);

        // §16.6 step 4: record-route dialog-creating requests; twice when the
        // request changes transport or interface (RFC 5658), ours outbound first.
        let mut rr_out = SmallVec::<[u8; 96]>::new();
        let mut rr_in = SmallVec::<[u8; 96]>::new();
        let record = fw.record;
        if record {
            // A NATed caller or callee: its flow rides in our Record-Route so the
            // rest of the dialog reaches it (RFC 5626 §5.3).
            let caller = fw.caller;
            let callee = target.fixed.and_then(|f| f.flow());
            let mut token = SmallVec::<[u8; 96]>::new();
            if caller.is_some() || callee.is_some() {
                let key = &self.cfg.flow_key;
                let tag = msg.from().ok().and_then(|f| f.tag());
                flows::Token::new(key, caller, callee, tag).encode(key, &mut token);
            }
            rr_value(&mut rr_out, out_listener, &token);
            if let Some(inb) = inbound {
                if from.listener as usize != out_idx {
                    rr_value(&mut rr_in, inb, &token);
                }
            }
        }
        let rr_storage: [&[u8]; 2] = [&rr_out, &rr_in];
        let rr: &[&[u8]] = match (record, rr_in.is_empty()) {
            (false, _) => &[],
            (true, true) => &rr_storage[..1],
            (true, false) => &rr_storage[..],
        };

        let edits = RequestEdits {
            request_uri: target.request_uri,
            via: Some(&via),
            record_route: rr,
            max_forwards: Some(fw.max_forwards),
            remove_first_routes: plan.ours,
            remove_last_route: plan.strict_fixed,
            via_received: fw.via_received,
            route_preload: target.route,
        };
        writer::forward_request(msg, &edits, bytes)
    }

    /// What every branch of `msg` shares, decoded once per request rather than once
    /// per branch: §16.6 steps 3 and 4 and the receiving transport's §18.2.1 /
    /// RFC 3581 edits to the previous hop's Via.
    pub(in crate::proxy) fn forwarding(
        &self,
        from: Peer,
        msg: &Message<'_>,
        method: Method<'_>,
    ) -> Forwarding {
        let via_received = msg.via().ok().map(|v| {
            let rport = v.rport().map(|_| from.addr.port());
            let differs = v.sent_by.host.ip() != Some(from.addr.ip());
            ViaReceived {
                received: (differs || rport.is_some()).then_some(from.addr.ip()),
                rport,
            }
        });
        let record = self.cfg.record_route
            && method != Method::Register
            && msg.to().ok().and_then(|t| t.tag()).is_none();
        Forwarding {
            max_forwards: next_max_forwards(msg),
            via_received,
            record,
            // A NATed caller, or one on a TCP or TLS connection (reached on that
            // connection for the rest of the dialog, as its callee is).
            caller: (record && (from.transport.is_reliable() || nat_detected(msg, from)))
                .then(|| Flow::of_peer(&from)),
        }
    }

    /// The listener a request to `to` over `transport` leaves from: the one it
    /// arrived on when it fits, else the first of the right transport and family.
    pub(super) fn outbound_listener(
        &self,
        from: Peer,
        transport: Transport,
        to: SocketAddr,
    ) -> Option<(usize, &Listener)> {
        let fits = |l: &Listener| l.transport == transport && l.local.is_ipv4() == to.is_ipv4();
        let inbound = from.listener as usize;
        if let Some(l) = self.listeners.get(inbound).filter(|l| fits(l)) {
            return Some((inbound, l));
        }
        self.listeners.iter().enumerate().find(|(_, l)| fits(l))
    }

    /// An ACK: for a non-2xx final it belongs to the INVITE's server transaction;
    /// otherwise (a 2xx's ACK, its own transaction) it is relayed statelessly along
    /// its Route set (§16.4, §16.11).
    pub(super) fn on_ack(
        &mut self,
        now: Instant,
        from: Peer,
        msg: &Message<'_>,
        key: &ServerKeyRef<'_>,
        out: &mut Outbox,
    ) {
        if let Some(id) = self.table.find_server(key).map(ServerId) {
            self.server_event(now, id, ServerEvent::Ack, out);
            return;
        }
        if msg.check().is_err() {
            self.dropped(DropReason::Malformed);
            return;
        }
        self.relay_stateless(from, msg, out);
    }

    /// Forwards a request without a transaction (ACK for 2xx): Route processing,
    /// our Via, Max-Forwards. Never answered; dropped where it cannot go.
    pub(super) fn relay_stateless(&mut self, from: Peer, msg: &Message<'_>, out: &mut Outbox) {
        let Ok(plan) = preprocess(msg, &self.identity) else {
            self.dropped(DropReason::Malformed);
            return;
        };
        let hop_uri = plan.next.as_ref().map_or(plan.request_uri, |r| r.uri);
        let hop = match Uri::parse(hop_uri) {
            Ok(Uri::Sip(u)) => next_hop(&u).ok(),
            _ => None,
        };
        let branch = self.branches.next_branch();
        // Through our Record-Route to a NATed end: its flow; else the next hop.
        let (transport, dest, l) = match self.flow_of_route(msg, &plan) {
            Some(f) => {
                let Some(l) = self.listeners.get(f.listener as usize) else {
                    self.dropped(DropReason::Unroutable);
                    return;
                };
                (f.transport, f.dest(), l)
            }
            None => {
                let Some((hop, to)) = hop.and_then(|h| h.addr().map(|a| (h, a))) else {
                    self.dropped(DropReason::Malformed);
                    return;
                };
                if !self.may_relay(msg, &plan, to.ip()) {
                    self.dropped(DropReason::Malformed);
                    return;
                }
                let Some((idx, l)) = self.outbound_listener(from, hop.transport, to) else {
                    self.dropped(DropReason::Malformed);
                    return;
                };
                let dest = match hop.transport {
                    Transport::Udp => Dest::Udp {
                        listener: idx as u16,
                        to,
                    },
                    t => Dest::Stream { transport: t, to },
                };
                (hop.transport, dest, l)
            }
        };
        let via = our_via(transport, l, branch.as_bytes());
        let edits = RequestEdits {
            request_uri: plan.strict_fixed.then_some(plan.request_uri),
            via: Some(&via),
            max_forwards: Some(next_max_forwards(msg)),
            remove_first_routes: plan.ours,
            remove_last_route: plan.strict_fixed,
            ..RequestEdits::default()
        };
        if out
            .try_send_with(dest, |b| writer::forward_request(msg, &edits, b))
            .is_ok()
        {
            self.stats.stateless_relays += 1;
            if let Some(m) = msg.method() {
                self.metrics.inc_request_out(&m);
            }
        }
    }
}

/// §16.6 step 3: one less than received, or 70 when the request had none.
pub(super) fn next_max_forwards(msg: &Message<'_>) -> u8 {
    msg.max_forwards()
        .ok()
        .flatten()
        .map_or(70, |m| m.saturating_sub(1))
}

/// Our Via value (§16.6 step 8): `SIP/2.0/TRANSPORT host:port;branch=…`.
pub(super) fn our_via(transport: Transport, l: &Listener, branch: &[u8]) -> SmallVec<[u8; 128]> {
    let mut via = SmallVec::new();
    via.extend_from_slice(b"SIP/2.0/");
    via.extend_from_slice(transport.via_token().as_bytes());
    via.push(b' ');
    via.extend_from_slice(l.advertised.as_bytes());
    via.extend_from_slice(b";branch=");
    via.extend_from_slice(branch);
    via
}

/// Our Record-Route value for listener `l`: `<sip:[TOKEN@]HOST:PORT;transport=…;lr>`.
pub(super) fn rr_value(out: &mut SmallVec<[u8; 96]>, l: &Listener, flow_token: &[u8]) {
    out.extend_from_slice(b"<sip:");
    if !flow_token.is_empty() {
        out.extend_from_slice(flow_token);
        out.push(b'@');
    }
    out.extend_from_slice(l.advertised.as_bytes());
    if l.transport != Transport::Udp {
        out.extend_from_slice(b";transport=");
        out.extend_from_slice(l.transport.as_str().as_bytes());
    }
    out.extend_from_slice(b";lr>");
}
