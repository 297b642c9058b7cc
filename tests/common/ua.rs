//! A tiny SIP user agent for the end-to-end tests: blocking std sockets (UDP, or
//! TCP with a listener for requests sent to its Contact), reader threads feeding one
//! queue, and just enough of RFC 3261 to be a caller (§13.2, §17.1.1.3 ACK, §9.1
//! CANCEL), a callee (§13.3, §12.1.1) and a registering phone (§10.2) with digest
//! credentials (§22.2, RFC 7616 §3.4). Messages are parsed with the crate's own
//! parser.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use coresip::digest::{self, Algorithm, QopAuth};
use coresip::sip::framing::{Frame, Framer, PONG};
use coresip::sip::{write_response, Challenge, HeaderName, Message, SipUri};

use super::{DOMAIN, WAIT};

/// How often reader threads look at the `closed` flag.
const POLL: Duration = Duration::from_millis(50);

/// The UA's transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

impl Transport {
    fn via_token(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
        }
    }
}

/// Where a received message came from: responses to a request go back this way
/// (RFC 3261 §18.2.2: the source for UDP, the same connection for TCP).
#[derive(Clone)]
pub enum Link {
    Udp {
        sock: Arc<UdpSocket>,
        peer: SocketAddr,
    },
    Tcp(Arc<Mutex<TcpStream>>),
}

impl Link {
    pub fn send(&self, bytes: &[u8]) {
        match self {
            Link::Udp { sock, peer } => {
                sock.send_to(bytes, peer).unwrap();
            }
            Link::Tcp(s) => s.lock().unwrap().write_all(bytes).unwrap(),
        }
    }

    /// True for a message received on a TCP connection.
    pub fn is_tcp(&self) -> bool {
        matches!(self, Link::Tcp(_))
    }
}

/// A received message.
pub struct Msg {
    pub bytes: Vec<u8>,
    pub link: Link,
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text())
    }
}

fn s(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

impl Msg {
    pub fn parsed(&self) -> Message<'_> {
        Message::parse(&self.bytes)
            .unwrap_or_else(|e| panic!("unparsable message ({e:?}):\n{}", self.text()))
    }

    pub fn text(&self) -> String {
        s(&self.bytes)
    }

    pub fn status(&self) -> Option<u16> {
        self.parsed().status()
    }

    pub fn method(&self) -> Option<String> {
        self.parsed().method().map(|m| s(m.as_bytes()))
    }

    pub fn request_uri(&self) -> String {
        s(self.parsed().request_uri().unwrap())
    }

    /// The first value of `name`, as text.
    pub fn header(&self, name: HeaderName) -> Option<String> {
        self.parsed().header(name).map(s)
    }

    /// Every value of `name` (comma lists split), as text.
    pub fn values(&self, name: HeaderName) -> Vec<String> {
        self.parsed().values(name).map(s).collect()
    }

    pub fn call_id(&self) -> String {
        self.header(HeaderName::CallId).unwrap()
    }

    /// The method named in CSeq.
    pub fn cseq_method(&self) -> String {
        let cseq = self.header(HeaderName::CSeq).unwrap();
        cseq.split_whitespace().nth(1).unwrap().to_string()
    }

    pub fn cseq_number(&self) -> u32 {
        let cseq = self.header(HeaderName::CSeq).unwrap();
        cseq.split_whitespace().next().unwrap().parse().unwrap()
    }

    pub fn to_tag(&self) -> Option<String> {
        self.parsed().to().unwrap().tag().map(s)
    }

    pub fn tag_of_from(&self) -> Option<String> {
        self.parsed().from().unwrap().tag().map(s)
    }

    /// The Record-Route URIs in order.
    pub fn record_routes(&self) -> Vec<String> {
        let m = self.parsed();
        let rr = m.record_routes().map(|r| s(r.unwrap().uri)).collect();
        rr
    }

    /// The URI of the first Contact.
    pub fn contact_uri(&self) -> Option<String> {
        let m = self.parsed();
        let c = m.contacts().next()?.unwrap();
        c.addr().map(|a| s(a.uri))
    }

    /// The body as text.
    pub fn body(&self) -> String {
        s(self.parsed().body())
    }
}

/// One INVITE dialog (or the attempt at one), from this UA's side (RFC 3261 §12).
#[derive(Debug, Clone)]
pub struct Call {
    pub call_id: String,
    pub local_uri: String,
    pub local_tag: String,
    pub remote_uri: String,
    pub remote_tag: Option<String>,
    /// The INVITE's Request-URI (for CANCEL and the ACK of a non-2xx).
    pub request_uri: String,
    /// Where in-dialog requests go (the peer's Contact, §12.1.1 / §12.1.2).
    pub remote_target: String,
    /// Route set, in the order Route headers are written (§12.1.1 / §12.1.2).
    pub route_set: Vec<String>,
    /// The last CSeq number this side used.
    pub local_cseq: u32,
    /// The INVITE's CSeq number and top Via branch.
    pub invite_cseq: u32,
    pub invite_branch: String,
    /// The INVITE as last sent (for retransmitting it).
    pub invite_bytes: Vec<u8>,
}

/// A small SIP UA bound to 127.0.0.1.
/// The request line and CSeq of a request the test UA writes.
struct Line<'a> {
    method: &'a str,
    request_uri: &'a str,
    branch: &'a str,
    cseq: u32,
}

pub struct Ua {
    pub user: String,
    /// The domain of its address of record (default [`DOMAIN`]).
    pub domain: String,
    /// The user part of its Contact when not `user` (baresip writes
    /// `alice-0x55d1…`, Linphone a random suffix).
    pub contact_user: Option<String>,
    pub password: Option<String>,
    /// The digest algorithm picked when a challenge offers several.
    pub algorithm: &'static str,
    pub transport: Transport,
    /// The proxy every out-of-dialog request goes to.
    pub proxy: SocketAddr,
    /// Where this UA is reached: its Via sent-by and Contact address.
    pub local: SocketAddr,
    udp: Option<Arc<UdpSocket>>,
    to_proxy: Option<Arc<Mutex<TcpStream>>>,
    rx: Receiver<Msg>,
    tx: Sender<Msg>,
    seen: HashSet<Vec<u8>>,
    /// How many exact retransmissions [`Ua::recv_within`] skipped.
    pub retransmissions: usize,
    closed: Arc<AtomicBool>,
    counter: u32,
    reg_call_id: String,
    reg_cseq: u32,
}

impl Drop for Ua {
    fn drop(&mut self) {
        // Reader threads stop within POLL and close their sockets.
        self.closed.store(true, Ordering::Relaxed);
        if let Some(c) = &self.to_proxy {
            let _ = c.lock().unwrap().shutdown(std::net::Shutdown::Both);
        }
    }
}

impl Ua {
    /// A UA on a UDP socket of its own, talking to `proxy`.
    pub fn udp(user: &str, proxy: SocketAddr) -> Ua {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(POLL)).unwrap();
        let local = sock.local_addr().unwrap();
        let sock = Arc::new(sock);
        let mut ua = Ua::new(user, Transport::Udp, proxy, local);
        let (reader, tx, closed) = (sock.clone(), ua.tx.clone(), ua.closed.clone());
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            while !closed.load(Ordering::Relaxed) {
                if let Ok((n, peer)) = reader.recv_from(&mut buf) {
                    let link = Link::Udp {
                        sock: reader.clone(),
                        peer,
                    };
                    let msg = Msg {
                        bytes: buf[..n].to_vec(),
                        link,
                    };
                    if tx.send(msg).is_err() {
                        break;
                    }
                }
            }
        });
        ua.udp = Some(sock);
        ua
    }

    /// A UA over TCP: one connection to `proxy` for what it sends, and a listener
    /// (its Contact) for requests the proxy opens connections to deliver.
    pub fn tcp(user: &str, proxy: SocketAddr) -> Ua {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let local = listener.local_addr().unwrap();
        let mut ua = Ua::new(user, Transport::Tcp, proxy, local);
        let (tx, closed) = (ua.tx.clone(), ua.closed.clone());
        std::thread::spawn(move || {
            while !closed.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        conn.set_nonblocking(false).unwrap();
                        spawn_stream_reader(conn, tx.clone(), closed.clone());
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        let conn = TcpStream::connect(proxy).unwrap();
        conn.set_nodelay(true).unwrap();
        ua.to_proxy = Some(spawn_stream_reader(conn, ua.tx.clone(), ua.closed.clone()));
        ua
    }

    /// A UA over TCP the way phones are (Linphone, baresip over TLS): one
    /// connection to `proxy` and no listener. Its Contact names the connection's
    /// own address, where nothing accepts a connection: requests reach it only on
    /// that connection.
    pub fn tcp_client(user: &str, proxy: SocketAddr) -> Ua {
        let conn = TcpStream::connect(proxy).unwrap();
        conn.set_nodelay(true).unwrap();
        let local = conn.local_addr().unwrap();
        let mut ua = Ua::new(user, Transport::Tcp, proxy, local);
        ua.to_proxy = Some(spawn_stream_reader(conn, ua.tx.clone(), ua.closed.clone()));
        ua
    }

    /// Sends from now on over a new connection to the proxy, keeping the old one
    /// open, as baresip and Linphone do for in-dialog requests when the Record-Route
    /// names another address of the proxy than the one they registered through.
    pub fn new_connection(&mut self) {
        assert_eq!(
            self.transport,
            Transport::Tcp,
            "only stream UAs have connections"
        );
        let conn = TcpStream::connect(self.proxy).unwrap();
        conn.set_nodelay(true).unwrap();
        self.to_proxy = Some(spawn_stream_reader(
            conn,
            self.tx.clone(),
            self.closed.clone(),
        ));
    }

    fn new(user: &str, transport: Transport, proxy: SocketAddr, local: SocketAddr) -> Ua {
        let (tx, rx) = mpsc::channel();
        Ua {
            user: user.to_string(),
            domain: DOMAIN.to_string(),
            contact_user: None,
            password: None,
            algorithm: "SHA-256",
            transport,
            proxy,
            local,
            udp: None,
            to_proxy: None,
            rx,
            tx,
            seen: HashSet::new(),
            retransmissions: 0,
            closed: Arc::new(AtomicBool::new(false)),
            counter: 0,
            reg_call_id: format!("reg-{user}-{}", local.port()),
            reg_cseq: 0,
        }
    }

    /// The same UA with its address of record in `domain` (an IP literal such as
    /// `127.0.0.1`, as people set up a proxy and phones on one host).
    pub fn in_domain(mut self, domain: &str) -> Ua {
        self.domain = domain.to_string();
        self
    }

    /// The same UA writing `user` in its Contact instead of its AOR's user.
    pub fn with_contact_user(mut self, user: &str) -> Ua {
        self.contact_user = Some(user.to_string());
        self
    }

    /// The same UA with digest credentials.
    pub fn with_password(mut self, password: &str) -> Ua {
        self.password = Some(password.to_string());
        self
    }

    /// The same UA answering challenges with `algorithm` (`MD5`, `SHA-256`) when
    /// offered.
    pub fn with_algorithm(mut self, algorithm: &'static str) -> Ua {
        self.algorithm = algorithm;
        self
    }

    /// The same UA as if behind a NAT: its Via and Contact name 127.0.0.2 (where
    /// nothing of it listens) while it sends from 127.0.0.1, so the proxy can reach
    /// it only where its requests come from (RFC 3581; the registrar's NAT test).
    pub fn behind_nat(mut self) -> Ua {
        self.local = SocketAddr::from(([127, 0, 0, 2], self.local.port()));
        self
    }

    /// True when `m` came on this (TCP) UA's own connection to the proxy.
    pub fn on_own_connection(&self, m: &Msg) -> bool {
        match (&m.link, &self.to_proxy) {
            (Link::Tcp(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }

    /// `sip:USER@DOMAIN`, this UA's address of record.
    pub fn aor(&self) -> String {
        format!("sip:{}@{}", self.user, self.domain)
    }

    /// The URI this UA registers and writes as its Contact.
    pub fn contact_uri(&self) -> String {
        let user = self.contact_user.as_deref().unwrap_or(&self.user);
        match self.transport {
            Transport::Udp => format!("sip:{user}@{}", self.local),
            Transport::Tcp => format!("sip:{user}@{};transport=tcp", self.local),
        }
    }

    fn unique(&mut self, what: &str) -> String {
        self.counter += 1;
        format!("{what}{}x{}", self.local.port(), self.counter)
    }

    fn branch(&mut self) -> String {
        let u = self.unique("");
        format!("z9hG4bK{u}")
    }

    // ----- sending -----

    /// Sends to the proxy (over UDP, or on the connection to it).
    pub fn send_to_proxy(&self, bytes: &[u8]) {
        self.link_to(self.proxy).send(bytes);
    }

    fn link_to(&self, to: SocketAddr) -> Link {
        match self.transport {
            Transport::Udp => Link::Udp {
                sock: self.udp.clone().unwrap(),
                peer: to,
            },
            Transport::Tcp => {
                assert_eq!(to, self.proxy, "the test UA only connects to the proxy");
                Link::Tcp(self.to_proxy.clone().unwrap())
            }
        }
    }

    /// Sends an in-dialog request to the first hop of `call`'s route set (or to the
    /// remote target without one), the way §12.2.1.1 and §8.1.2 pick it.
    fn send_in_dialog(&self, call: &Call, bytes: &[u8]) {
        let next = call.route_set.first().unwrap_or(&call.remote_target);
        let uri = SipUri::parse(next.as_bytes()).unwrap();
        let wanted = match uri.transport() {
            Some(t) if t.eq_ignore_ascii_case(b"tcp") => Transport::Tcp,
            _ => Transport::Udp,
        };
        assert_eq!(
            wanted, self.transport,
            "{}: the next hop {next} wants another transport",
            self.user
        );
        let ip = uri
            .host
            .ip()
            .expect("the test proxy names itself by address");
        let addr = SocketAddr::new(ip, uri.port_or_default());
        self.link_to(addr).send(bytes);
    }

    /// A request with the usual headers. `to_tag`, `routes` and `extra` lines are
    /// optional; `sdp` adds an offer/answer body.
    fn request(
        &self,
        line: Line<'_>,
        call: &Call,
        to_tag: Option<&str>,
        extra: &[String],
        sdp: bool,
    ) -> Vec<u8> {
        let Line {
            method,
            request_uri,
            branch,
            cseq,
        } = line;
        let mut m = format!("{method} {request_uri} SIP/2.0\r\n");
        m += &format!(
            "Via: SIP/2.0/{} {};branch={branch};rport\r\n",
            self.transport.via_token(),
            self.local
        );
        m += "Max-Forwards: 70\r\n";
        // In-dialog requests carry the route set. CANCEL and the ACK of a non-2xx
        // copy the INVITE's Route headers, and our INVITEs have none: the route set
        // is empty until a 2xx establishes the dialog.
        for r in &call.route_set {
            m += &format!("Route: <{r}>\r\n");
        }
        m += &format!("From: <{}>;tag={}\r\n", call.local_uri, call.local_tag);
        match to_tag {
            Some(t) => m += &format!("To: <{}>;tag={t}\r\n", call.remote_uri),
            None => m += &format!("To: <{}>\r\n", call.remote_uri),
        }
        m += &format!("Call-ID: {}\r\n", call.call_id);
        m += &format!("CSeq: {cseq} {method}\r\n");
        if method == "INVITE" || method == "REGISTER" {
            m += &format!("Contact: <{}>\r\n", self.contact_uri());
        }
        for e in extra {
            m += e;
            m += "\r\n";
        }
        let body = if sdp { self.sdp() } else { String::new() };
        if sdp {
            m += "Content-Type: application/sdp\r\n";
        }
        m += &format!("Content-Length: {}\r\n\r\n{body}", body.len());
        m.into_bytes()
    }

    fn sdp(&self) -> String {
        format!(
            "v=0\r\no={} 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
             m=audio {} RTP/AVP 0\r\n",
            self.user,
            self.local.port()
        )
    }

    // ----- receiving -----

    /// The next message within `limit`, skipping exact retransmissions of earlier
    /// ones (the proxy's Timer A/G retransmissions over UDP).
    pub fn recv_within(&mut self, limit: Duration) -> Option<Msg> {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let m = self.rx.recv_timeout(left).ok()?;
            if self.seen.insert(m.bytes.clone()) {
                return Some(m);
            }
            self.retransmissions += 1;
        }
    }

    /// The next message (at most [`WAIT`]).
    pub fn recv(&mut self) -> Msg {
        let user = self.user.clone();
        self.recv_within(WAIT)
            .unwrap_or_else(|| panic!("{user}: nothing received within {WAIT:?}"))
    }

    /// The next response other than `100 Trying`, which must be `code`.
    pub fn expect_status(&mut self, code: u16) -> Msg {
        loop {
            let m = self.recv();
            match m.status() {
                Some(100) if code != 100 => continue,
                Some(c) if c == code => return m,
                _ => panic!("{}: expected a {code}, got:\n{}", self.user, m.text()),
            }
        }
    }

    /// The next response other than `100 Trying`, whatever its code.
    pub fn recv_final(&mut self) -> Msg {
        loop {
            let m = self.recv();
            match m.status() {
                Some(100) => continue,
                Some(_) => return m,
                None => panic!("{}: expected a response, got:\n{}", self.user, m.text()),
            }
        }
    }

    /// The next message, which must be a `method` request.
    pub fn expect_request(&mut self, method: &str) -> Msg {
        let m = self.recv();
        assert_eq!(
            m.method().as_deref(),
            Some(method),
            "{}: expected a {method}, got:\n{}",
            self.user,
            m.text()
        );
        m
    }

    /// Asserts that nothing new arrives for `d`.
    pub fn expect_silence(&mut self, d: Duration) {
        if let Some(m) = self.recv_within(d) {
            panic!("{}: expected nothing, got:\n{}", self.user, m.text());
        }
    }

    // ----- caller (UAC) -----

    /// Sends an INVITE with an SDP offer to `target` through the proxy.
    pub fn invite(&mut self, target: &str) -> Call {
        let call = Call {
            call_id: self.unique("call"),
            local_uri: self.aor(),
            local_tag: self.unique("tag"),
            remote_uri: target.to_string(),
            remote_tag: None,
            request_uri: target.to_string(),
            remote_target: target.to_string(),
            route_set: Vec::new(),
            local_cseq: 0,
            invite_cseq: 0,
            invite_branch: String::new(),
            invite_bytes: Vec::new(),
        };
        self.reinvite_out_of_dialog(call, &[])
    }

    /// Sends the INVITE of `call` again as a new transaction (CSeq + 1, new branch),
    /// with `extra` header lines: the retry with credentials after a 407 (§22.2).
    pub fn reinvite_out_of_dialog(&mut self, mut call: Call, extra: &[String]) -> Call {
        call.local_cseq += 1;
        call.invite_cseq = call.local_cseq;
        call.invite_branch = self.branch();
        let bytes = self.request(
            Line {
                method: "INVITE",
                request_uri: &call.request_uri,
                branch: &call.invite_branch,
                cseq: call.invite_cseq,
            },
            &call,
            None,
            extra,
            true,
        );
        self.send_to_proxy(&bytes);
        call.invite_bytes = bytes;
        call
    }

    /// Takes the dialog state from a 2xx (or tagged 1xx) to our INVITE: remote tag,
    /// remote target, and the route set as the reversed Record-Route (§12.1.2).
    pub fn establish(&self, call: &mut Call, resp: &Msg) {
        call.remote_tag = resp.to_tag();
        call.remote_target = resp.contact_uri().expect("2xx without Contact");
        call.route_set = resp.record_routes().into_iter().rev().collect();
    }

    /// ACKs a final response to our INVITE: a 2xx with a new transaction along the
    /// route set (§13.2.2.4), anything else hop by hop on the INVITE's branch
    /// (§17.1.1.3).
    pub fn ack(&mut self, call: &mut Call, resp: &Msg) {
        let code = resp.status().unwrap();
        if (200..300).contains(&code) {
            self.establish(call, resp);
            let branch = self.branch();
            let bytes = self.request(
                Line {
                    method: "ACK",
                    request_uri: &call.remote_target,
                    branch: &branch,
                    cseq: call.invite_cseq,
                },
                call,
                call.remote_tag.as_deref(),
                &[],
                false,
            );
            self.send_in_dialog(call, &bytes);
        } else {
            // The ACK's To is the response's, tag included (§17.1.1.3).
            let to_tag = resp.to_tag();
            let m = self.request(
                Line {
                    method: "ACK",
                    request_uri: &call.request_uri,
                    branch: &call.invite_branch,
                    cseq: call.invite_cseq,
                },
                call,
                to_tag.as_deref(),
                &[],
                false,
            );
            self.send_to_proxy(&m);
        }
    }

    /// CANCELs our pending INVITE (§9.1): same Request-URI, Call-ID, From, To, CSeq
    /// number and branch.
    pub fn cancel(&mut self, call: &Call) {
        let bytes = self.request(
            Line {
                method: "CANCEL",
                request_uri: &call.request_uri,
                branch: &call.invite_branch,
                cseq: call.invite_cseq,
            },
            call,
            None,
            &[],
            false,
        );
        self.send_to_proxy(&bytes);
    }

    /// Sends a request inside the dialog (`BYE`, `INFO`, …) along its route set to
    /// its remote target (§12.2.1.1).
    pub fn in_dialog(&mut self, call: &mut Call, method: &str) {
        call.local_cseq += 1;
        let branch = self.branch();
        let bytes = self.request(
            Line {
                method,
                request_uri: &call.remote_target,
                branch: &branch,
                cseq: call.local_cseq,
            },
            call,
            call.remote_tag.as_deref(),
            &[],
            false,
        );
        self.send_in_dialog(call, &bytes);
    }

    // ----- callee (UAS) -----

    /// The callee's side of the dialog an INVITE asks for (§12.1.1): the route set is
    /// the Record-Route as received, the remote target the caller's Contact.
    pub fn accept(&mut self, invite: &Msg) -> Call {
        let m = invite.parsed();
        let from = m.from().unwrap();
        let to = m.to().unwrap();
        Call {
            call_id: invite.call_id(),
            local_uri: s(to.uri),
            local_tag: self.unique("tag"),
            remote_uri: s(from.uri),
            remote_tag: from.tag().map(s),
            request_uri: invite.request_uri(),
            remote_target: invite.contact_uri().expect("INVITE without Contact"),
            route_set: invite.record_routes(),
            local_cseq: 100,
            invite_cseq: invite.cseq_number(),
            invite_branch: String::new(),
            invite_bytes: Vec::new(),
        }
    }

    /// Answers `req` with `code` on the link it came in on. Responses to an INVITE
    /// that may create a dialog (101–299) copy its Record-Route and carry our
    /// Contact (§12.1.1); the 200 carries an SDP answer. `to_tag` is the dialog's
    /// local tag (absent for 100).
    pub fn respond(&self, req: &Msg, code: u16, to_tag: Option<&str>) {
        let m = req.parsed();
        let invite = req.method().as_deref() == Some("INVITE");
        let contact = format!("<{}>", self.contact_uri());
        let rr = req.values(HeaderName::RecordRoute);
        let mut extra: Vec<(&str, &[u8])> = Vec::new();
        if invite && (101..300).contains(&code) {
            extra.extend(rr.iter().map(|v| ("Record-Route", v.as_bytes())));
            extra.push(("Contact", contact.as_bytes()));
        }
        let mut out = Vec::new();
        write_response(
            &m,
            code,
            reason(code).as_bytes(),
            to_tag.map(str::as_bytes),
            &extra,
            &mut out,
        )
        .unwrap();
        if invite && (200..300).contains(&code) {
            let sdp = self.sdp();
            let tail = b"Content-Length: 0\r\n\r\n";
            out.truncate(out.len() - tail.len());
            out.extend_from_slice(
                format!(
                    "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
                    sdp.len()
                )
                .as_bytes(),
            );
        }
        req.link.send(&out);
    }

    // ----- registration (§10.2) -----

    /// Sends a REGISTER for our AOR with `contact` (a Contact value such as
    /// `<sip:…>` or `*`), `expires` (an Expires header value, if any) and `extra`
    /// lines, and returns the final response. Refreshes keep the Call-ID and
    /// increment the CSeq (§10.2.4).
    pub fn register_raw(
        &mut self,
        contact: Option<&str>,
        expires: Option<u32>,
        extra: &[String],
    ) -> Msg {
        self.reg_cseq += 1;
        let branch = self.branch();
        let mut m = format!("REGISTER sip:{} SIP/2.0\r\n", self.domain);
        m += &format!(
            "Via: SIP/2.0/{} {};branch={branch};rport\r\n",
            self.transport.via_token(),
            self.local
        );
        m += "Max-Forwards: 70\r\n";
        m += &format!("From: <{}>;tag=r{}\r\n", self.aor(), self.local.port());
        m += &format!("To: <{}>\r\n", self.aor());
        m += &format!("Call-ID: {}\r\n", self.reg_call_id);
        m += &format!("CSeq: {} REGISTER\r\n", self.reg_cseq);
        if let Some(c) = contact {
            m += &format!("Contact: {c}\r\n");
        }
        if let Some(e) = expires {
            m += &format!("Expires: {e}\r\n");
        }
        for e in extra {
            m += e;
            m += "\r\n";
        }
        m += "Content-Length: 0\r\n\r\n";
        self.send_to_proxy(m.as_bytes());
        loop {
            let r = self.recv();
            match r.status() {
                Some(100) => continue,
                Some(_) if r.cseq_method() == "REGISTER" => return r,
                _ => panic!(
                    "{}: expected a REGISTER response, got:\n{}",
                    self.user,
                    r.text()
                ),
            }
        }
    }

    /// Registers our Contact for `expires` seconds, answering a 401 with
    /// credentials when we have a password. Returns the final response.
    pub fn register(&mut self, expires: u32) -> Msg {
        let contact = format!("<{}>", self.contact_uri());
        let r = self.register_raw(Some(&contact), Some(expires), &[]);
        if r.status() != Some(401) || self.password.is_none() {
            return r;
        }
        let auth = self.authorization(&r, "REGISTER", &format!("sip:{}", self.domain));
        self.register_raw(Some(&contact), Some(expires), &[auth])
    }

    /// The `Authorization` (for a 401) or `Proxy-Authorization` (for a 407) line
    /// answering `challenge` for `method` on `uri` (RFC 3261 §22.2 and §22.3, RFC
    /// 7616 §3.4 with `qop=auth`), with [`Ua::algorithm`] if offered, else the
    /// first challenge's.
    pub fn authorization(&mut self, challenge: &Msg, method: &str, uri: &str) -> String {
        let (header, answer) = match challenge.status() {
            Some(401) => (HeaderName::WwwAuthenticate, "Authorization"),
            Some(407) => (HeaderName::ProxyAuthenticate, "Proxy-Authorization"),
            _ => panic!("not a challenge:\n{}", challenge.text()),
        };
        let password = self.password.clone().expect("no password");
        let cnonce = self.unique("cn");
        let m = challenge.parsed();
        let challenges: Vec<Challenge> = m
            .values(header)
            .map(|v| Challenge::parse(v).unwrap())
            .collect();
        let c = challenges
            .iter()
            .find(|c| c.algorithm() == Some(self.algorithm.as_bytes()))
            .or(challenges.first())
            .expect("no challenge");
        let algorithm = Algorithm::from_param(c.algorithm()).unwrap();
        let realm = c.realm().unwrap();
        let nonce = c.nonce().unwrap();
        let ha1 = digest::ha1(
            algorithm.hash,
            self.user.as_bytes(),
            realm,
            password.as_bytes(),
        );
        let qop = c.offers_qop(b"auth").then_some(QopAuth {
            nc: b"00000001",
            cnonce: cnonce.as_bytes(),
        });
        let response = digest::response(
            algorithm,
            ha1.as_bytes(),
            nonce,
            qop,
            method.as_bytes(),
            uri.as_bytes(),
        )
        .unwrap();
        let mut line = format!(
            "{answer}: Digest username=\"{}\", realm=\"{}\", nonce=\"{}\", uri=\"{uri}\", \
             response=\"{}\", algorithm={}",
            self.user,
            s(realm),
            s(nonce),
            response.as_str(),
            algorithm.name()
        );
        if qop.is_some() {
            line += &format!(", qop=auth, nc=00000001, cnonce=\"{cnonce}\"");
        }
        if let Some(o) = c.opaque() {
            line += &format!(", opaque=\"{}\"", s(o));
        }
        line
    }
}

/// Reads whole messages off a stream (framed by Content-Length, RFC 3261 §18.3)
/// into `tx` on a thread of its own; returns the writing end.
fn spawn_stream_reader(
    conn: TcpStream,
    tx: Sender<Msg>,
    closed: Arc<AtomicBool>,
) -> Arc<Mutex<TcpStream>> {
    conn.set_read_timeout(Some(POLL)).unwrap();
    let writer = Arc::new(Mutex::new(conn.try_clone().unwrap()));
    let link = writer.clone();
    let mut conn = conn;
    std::thread::spawn(move || {
        let mut framer = Framer::new(1 << 16);
        let mut buf = Vec::new();
        let mut chunk = [0u8; 8192];
        while !closed.load(Ordering::Relaxed) {
            loop {
                match framer.frame(&buf) {
                    Ok(Frame::Message(n)) => {
                        let bytes: Vec<u8> = buf.drain(..n).collect();
                        let msg = Msg {
                            bytes,
                            link: Link::Tcp(link.clone()),
                        };
                        if tx.send(msg).is_err() {
                            return;
                        }
                    }
                    Ok(Frame::Ping) => {
                        buf.drain(..4);
                        let _ = link.lock().unwrap().write_all(PONG);
                    }
                    Ok(Frame::KeepAlive(n)) => {
                        buf.drain(..n);
                    }
                    Ok(Frame::NeedMore) => break,
                    Err(e) => panic!("unframable stream ({e:?}): {}", s(&buf)),
                }
            }
            match conn.read(&mut chunk) {
                Ok(0) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => return,
            }
        }
    });
    writer
}

/// A call from `caller` to `callee`'s AOR through the proxy: the proxy's 100, the
/// callee's 180 (when `ringing`) and 200, and the caller's ACK. Returns the dialog
/// from both sides: (caller's, callee's).
pub fn answered_call(caller: &mut Ua, callee: &mut Ua, ringing: bool) -> (Call, Call) {
    let target = callee.aor();
    answered_call_to(caller, &target, callee, ringing)
}

/// [`answered_call`] with the INVITE sent to `target` (a contact, say) rather
/// than the callee's AOR.
pub fn answered_call_to(
    caller: &mut Ua,
    target: &str,
    callee: &mut Ua,
    ringing: bool,
) -> (Call, Call) {
    let mut call = caller.invite(target);
    caller.expect_status(100);
    let invite = callee.expect_request("INVITE");
    let answer = callee.accept(&invite);
    if ringing {
        callee.respond(&invite, 180, Some(&answer.local_tag));
        caller.expect_status(180);
    }
    callee.respond(&invite, 200, Some(&answer.local_tag));
    let ok = caller.expect_status(200);
    caller.ack(&mut call, &ok);
    callee.expect_request("ACK");
    (call, answer)
}

/// `caller` hangs `call` up and `callee` answers the BYE; returns the caller's 200.
pub fn hang_up(caller: &mut Ua, call: &mut Call, callee: &mut Ua) -> Msg {
    caller.in_dialog(call, "BYE");
    let bye = callee.expect_request("BYE");
    callee.respond(&bye, 200, None);
    caller.expect_status(200)
}

/// The reason phrase the test UA writes for `code`.
pub fn reason(code: u16) -> &'static str {
    match code {
        100 => "Trying",
        180 => "Ringing",
        200 => "OK",
        486 => "Busy Here",
        487 => "Request Terminated",
        _ => "Whatever",
    }
}
