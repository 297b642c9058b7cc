//! Target determination (§16.5): Route processing and the relay policy, the location
//! service (with the contact reached where it registered from), flow tokens, and
//! requests parked while a host name resolves.

use super::*;

impl Engine {
    /// §16.4–§16.6 for a new request whose server transaction is `id`.
    pub(super) fn route_request(
        &mut self,
        rq: Req<'_, '_>,
        to_me: bool,
        authenticated: bool,
        out: &mut Outbox,
    ) {
        let Req { now, id, from, msg } = rq;
        let plan = match preprocess(msg, &self.identity) {
            Ok(p) => p,
            Err(e) => {
                self.respond(now, id, msg, Answer::new(400, e.reason().as_bytes()), out);
                return;
            }
        };
        let method = msg.method().unwrap_or(Method::Options);

        // The Route set names the next hop (§16.6 step 7), or the request is for
        // the Request-URI's owner (§16.5).
        let hop_uri: &[u8] = match &plan.next {
            Some(r) => r.uri,
            None => plan.request_uri,
        };
        if plan.next.is_none() && to_me && !plan.strict_fixed {
            self.handle_local(now, id, msg, method, out);
            return;
        }
        // Without a Route to follow the hop is the received Request-URI, which
        // intake has parsed already (the message memoizes it).
        let hop_parsed = match (&plan.next, plan.strict_fixed) {
            (None, false) => msg.uri().ok(),
            _ => Uri::parse(hop_uri).ok(),
        };
        let Some(Uri::Sip(hop_sip)) = hop_parsed else {
            // A tel: (or other) Request-URI with no Route to follow.
            self.respond(now, id, msg, Answer::NOT_FOUND, out);
            return;
        };
        if self.targets_our_user(msg, &plan, &hop_sip) {
            // A user of ours: the location service names the targets (§16.5).
            self.route_to_user(rq, &plan, &hop_sip, 0, out);
            return;
        }
        let hop = match next_hop(&hop_sip) {
            Ok(h) => h,
            Err(_) => {
                self.respond(now, id, msg, Answer::UNSUPPORTED_URI_SCHEME, out);
                return;
            }
        };
        let addr = match (hop.addr(), hop.host) {
            (Some(a), _) => a,
            (None, crate::sip::Host::Domain(name)) => {
                match self.resolver.lookup(name, now, hop_v4(from)) {
                    Lookup::Found(ip) => SocketAddr::new(ip, hop.port),
                    Lookup::Failed => {
                        // §16.9 / RFC 3263 §4.3: no address to try.
                        self.respond(now, id, msg, Answer::CANNOT_RESOLVE, out);
                        return;
                    }
                    Lookup::Unknown { ask } => {
                        // Parked: routed again by `on_resolved`.
                        self.resolver.wait(name, id.txn());
                        if ask {
                            out.resolve(name);
                        }
                        return;
                    }
                }
            }
            (None, _) => {
                self.respond(now, id, msg, Answer::CANNOT_RESOLVE, out);
                return;
            }
        };
        if !authenticated && !self.may_relay(msg, &plan, addr.ip()) {
            self.respond(now, id, msg, Answer::RELAYING_FORBIDDEN, out);
            return;
        }
        let target = Target {
            request_uri: plan.strict_fixed.then_some(plan.request_uri),
            hop,
            fixed: self.flow_of_route(msg, &plan).map(|f| Fixed::of_flow(&f)),
            route: None,
            resolved: Some(addr),
        };
        self.fork(rq, &plan, &[target], out);
    }

    /// Target determination for a user of one of our domains (§16.5): the live
    /// bindings of the AOR from position `start` of the lookup order (highest q
    /// first), all at once or, with `--fork serial|auto`, one contact or one
    /// q-group at a time (§16.6). None: 480 when the user exists in the users file,
    /// else 404.
    pub(super) fn route_to_user(
        &mut self,
        rq: Req<'_, '_>,
        plan: &RoutePlan<'_>,
        uri: &crate::sip::SipUri<'_>,
        start: usize,
        out: &mut Outbox,
    ) {
        let Req { now, id, from, msg } = rq;
        let unix = self.unix(now);
        let Ok(aor) = AorKey::from_sip_uri(uri) else {
            self.respond(now, id, msg, Answer::NOT_FOUND, out);
            return;
        };
        // Copied out of the location part: the forwarding below changes the engine.
        let mut texts: Vec<u8> = Vec::new();
        let mut found: SmallVec<[Found; 4]> = SmallVec::new();
        // One lookup: the group to ring is counted, then copied, from the same list.
        let all = self.lookup(&aor, unix);
        let total = all.len();
        let rank = |b: &crate::registrar::Binding| b.q().map_or(1000, |q| q.thousandths());
        let first_q = all.get(start).map(|b| rank(b));
        let group = all
            .iter()
            .skip(start)
            .take_while(|b| match self.cfg.fork {
                ForkMode::Parallel => true,
                ForkMode::Auto => Some(rank(b)) == first_q,
                ForkMode::Serial => false,
            })
            .count()
            .max(1);
        let mut next = start + group;
        for b in all.iter().skip(start).take(group) {
            let c = texts.len()..texts.len() + b.contact().len();
            texts.extend_from_slice(b.contact());
            let p = texts.len()..texts.len() + b.path().len();
            texts.extend_from_slice(b.path());
            found.push((c, p, b.source));
        }
        drop(all);
        if next >= total {
            next = 0;
        }
        if let Some(s) = self.table.server_mut(id) {
            s.next_group = (next > 0).then_some(next);
        }
        if found.is_empty() && start > 0 {
            // The bindings changed while the earlier groups rang: finish with what
            // they answered.
            self.maybe_finish(now, id, out);
            return;
        }
        if found.is_empty() {
            if self.wait_for_location(now, id) {
                return;
            }
            if self.knows_user(uri) {
                self.respond(now, id, msg, Answer::TEMPORARILY_UNAVAILABLE, out);
            } else {
                self.respond(now, id, msg, Answer::NOT_FOUND, out);
            }
            return;
        }
        let mut targets: SmallVec<[Target<'_>; 4]> = SmallVec::new();
        for (c, p, source) in &found {
            let Some(mut target) = binding_target(&texts[c.clone()], &texts[p.clone()], source)
            else {
                continue;
            };
            target.resolved = self.resolved_addr(&target.hop, now, from, out);
            targets.push(target);
        }
        if targets.is_empty() {
            self.respond(now, id, msg, Answer::TEMPORARILY_UNAVAILABLE, out);
            return;
        }
        self.fork(rq, plan, &targets, out);
    }

    /// True when target determination goes to the location service (§16.5): no
    /// Route value is left and the Request-URI names one of our domains. A
    /// request in a dialog we record-routed (our Route and a To tag) is routed by
    /// its Request-URI, the peer's Contact (§16.4, §12.2.1.1), unless that URI
    /// names this proxy itself and the location service is the only way on.
    pub(in crate::proxy) fn targets_our_user(
        &self,
        msg: &Message<'_>,
        plan: &RoutePlan<'_>,
        uri: &crate::sip::SipUri<'_>,
    ) -> bool {
        if plan.next.is_some()
            || !self
                .identity
                .is_our_domain(&uri.host, uri.port, uri.port_or_default())
        {
            return false;
        }
        let in_our_dialog = plan.ours > 0 && msg.to().ok().and_then(|t| t.tag()).is_some();
        !in_our_dialog || self.identity.is_me(uri)
    }

    /// True when `uri`'s user is in the users file: an unregistered user of ours is
    /// 480, anyone else 404.
    pub(in crate::proxy) fn knows_user(&self, uri: &crate::sip::SipUri<'_>) -> bool {
        self.auth.as_ref().is_some_and(|a| {
            uri.user
                .is_some_and(|u| a.users.knows(u, a.realm.as_bytes()))
        })
    }

    /// The flow a request routed through our Record-Route must go to: the end of
    /// the dialog it did not come from (told by its From tag), when that end sits
    /// behind a NAT or on a connection and the Request-URI (its Contact) would not
    /// reach it.
    pub(in crate::proxy) fn flow_of_route(
        &self,
        msg: &Message<'_>,
        plan: &RoutePlan<'_>,
    ) -> Option<Flow> {
        if plan.next.is_some() {
            return None;
        }
        let key = &self.cfg.flow_key;
        let token = flows::Token::decode(key, plan.ours_user?)?;
        let from = msg.from().ok()?;
        token.next_flow(key, from.tag())
    }

    /// The relay policy: coresip is never an open relay. A request may go to a
    /// foreign destination when that destination is inside `--relay`, or when it is
    /// in a dialog this proxy record-routed (it carries our Route and a To tag, the
    /// way Kamailio's `loose_route()` lets in-dialog requests through).
    pub(in crate::proxy) fn may_relay(
        &self,
        msg: &Message<'_>,
        plan: &RoutePlan<'_>,
        ip: IpAddr,
    ) -> bool {
        if self.cfg.relay.iter().any(|c| c.contains(ip)) {
            return true;
        }
        plan.ours > 0 && msg.to().ok().and_then(|t| t.tag()).is_some()
    }

    /// The address of a next hop: its IP literal, or its host name from the
    /// resolver cache (asking for it when unknown, without waiting).
    pub(in crate::proxy) fn resolved_addr(
        &self,
        hop: &NextHop<'_>,
        now: Instant,
        from: Peer,
        out: &mut Outbox,
    ) -> Option<SocketAddr> {
        match (hop.addr(), hop.host) {
            (Some(a), _) => Some(a),
            (None, crate::sip::Host::Domain(name)) => {
                match self.resolver.lookup(name, now, hop_v4(from)) {
                    Lookup::Found(ip) => Some(SocketAddr::new(ip, hop.port)),
                    Lookup::Unknown { ask: true } => {
                        out.resolve(name);
                        None
                    }
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// The system resolver answered for `name` (no addresses: it failed): the
    /// requests that waited for it are routed again.
    pub(crate) fn on_resolved(
        &mut self,
        now: Instant,
        name: &str,
        addrs: &[IpAddr],
        out: &mut Outbox,
    ) {
        for id in self
            .resolver
            .answer(name, addrs, now)
            .into_iter()
            .map(ServerId)
        {
            self.route_again(now, id, out);
        }
    }

    /// Routes the request of server transaction `id` once more, after what it
    /// waited for (a host name, the other shards' bindings) arrived; nothing when
    /// it has been answered or cancelled meanwhile.
    pub(super) fn route_again(&mut self, now: Instant, id: ServerId, out: &mut Outbox) {
        let Some(s) = self.table.server(id) else {
            return;
        };
        if s.final_sent || s.cancelled {
            return;
        }
        let (from, authenticated, request) = (s.from, s.authenticated, s.request.clone());
        let Ok(msg) = Message::parse(&request) else {
            return;
        };
        let rq = Req {
            now,
            id,
            from,
            msg: &msg,
        };
        self.route_request(rq, false, authenticated, out);
    }
}

/// Where a registered contact is reached: back where its REGISTER came from, over
/// the same connection for TCP and TLS (RFC 5626 §5.2's flow; RFC 3261 §10.3 keeps
/// the source for NAT). When the connection has closed, a new one goes to
/// `fallback` (the Contact's address, where a phone not behind a NAT listens), or
/// else to the source address.
pub(super) fn registered_dest(s: &Source, fallback: Option<SocketAddr>) -> Fixed {
    let transport = s.transport;
    let dest = match (transport, s.conn) {
        (Transport::Udp, _) => Dest::Udp {
            listener: s.listener,
            to: s.addr,
        },
        (t, Some(conn)) => Dest::Conn {
            conn,
            transport: t,
            fallback: Some(fallback.unwrap_or(s.addr)),
        },
        // No connection (a binding reloaded after a restart).
        (t, None) => Dest::Stream {
            transport: t,
            to: fallback.unwrap_or(s.addr),
        },
    };
    Fixed {
        transport,
        dest,
        listener: s.listener,
    }
}

/// Does a REGISTER come from behind a NAT? The test of Kamailio's
/// `nat_uac_test`: the top Via names another address than the packet's source
/// (for UDP also another port, RFC 3581), or a Contact names a private address
/// while the source is public.
pub(super) fn nat_detected(msg: &Message<'_>, from: Peer) -> bool {
    let via_differs = match msg.via() {
        Ok(v) => {
            v.sent_by.host.ip() != Some(from.addr.ip())
                || (from.transport == Transport::Udp
                    && v.sent_by.port.unwrap_or(5060) != from.addr.port())
        }
        Err(_) => true,
    };
    // The Contacts are decoded only when the Via has not already decided.
    via_differs
        || (!is_private(from.addr.ip())
            && msg.contact_uris().any(|u| {
                u.ok()
                    .flatten()
                    .and_then(|u| u.as_sip().and_then(|s| s.host.ip()))
                    .is_some_and(is_private)
            }))
}

/// RFC 1918, RFC 6598 (CGN) and IPv6 unique-local addresses.
pub(super) fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => {
            let o = a.octets();
            a.is_private() || (o[0] == 100 && (o[1] & 0xc0) == 64)
        }
        IpAddr::V6(a) => (a.segments()[0] & 0xfe00) == 0xfc00,
    }
}

/// Which address family to prefer for a next hop: the one the request came in on.
pub(super) fn hop_v4(from: Peer) -> bool {
    from.addr.is_ipv4()
}

/// The URI of the first value of a Route/Path list.
pub(super) fn first_route_uri(list: &[u8]) -> Option<&[u8]> {
    let first = crate::sip::text::CommaList::new(list).next()?;
    crate::sip::NameAddr::parse(first).ok().map(|n| n.uri)
}
