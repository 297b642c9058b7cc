//! The Via header (RFC 3261 §20.42, §18.2): one `via-parm` decoded into its sent
//! protocol, sent-by and parameters, plus the `rport` extension (RFC 3581 §4).
//!
//! ```text
//! via-parm      = sent-protocol LWS sent-by *( SEMI via-params )
//! sent-protocol = protocol-name SLASH protocol-version SLASH transport
//! sent-by       = host [ COLON port ]
//! ```
//!
//! `SLASH`, `SEMI` and `COLON` allow white space on both sides, and a folded value
//! keeps its `CRLF SP`, so `SIP  /\r\n 2.0 / UDP  host : 5060 ;branch=…` is a valid
//! via-parm (RFC 4475 §3.1.1.1).

use std::fmt;
use std::net::IpAddr;

use memchr::memchr;

use super::error::ParseError;
use super::header::HeaderName;
use super::host::{parse_ipv4, split_host_port, Host, HostPort};
use super::message::Message;
use super::params::{Param, Params};
use super::text::{eq_ic, is_lws, is_token, is_token_str, parse_port, trim, trim_start};

/// The magic cookie that marks an RFC 3261 branch (§8.1.1.7).
pub const MAGIC_COOKIE: &[u8] = b"z9hG4bK";

/// The transport of a Via's sent-protocol (compared case-insensitively).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport<'a> {
    Udp,
    Tcp,
    Tls,
    Sctp,
    /// WebSocket (RFC 7118 §5.1).
    Ws,
    /// Secure WebSocket (RFC 7118 §5.1).
    Wss,
    /// Any other token, as written (RFC 4475 §3.1.1.10 `UNKNOWN`).
    Other(&'a [u8]),
}

impl<'a> Transport<'a> {
    /// Classifies a transport token. The caller checks that it is a token.
    pub fn from_bytes(s: &'a [u8]) -> Transport<'a> {
        // Every known name is letters only, and for a letter `b | 0x20` is its
        // lower case while no other byte maps onto a lower-case letter: the
        // case-insensitive compare is one OR per byte.
        let lower = |i: usize| s.get(i).map_or(0, |&b| b | 0x20);
        match (s.len(), lower(0), lower(1), lower(2), lower(3)) {
            (3, b'u', b'd', b'p', _) => Transport::Udp,
            (3, b't', b'c', b'p', _) => Transport::Tcp,
            (3, b't', b'l', b's', _) => Transport::Tls,
            (4, b's', b'c', b't', b'p') => Transport::Sctp,
            (2, b'w', b's', _, _) => Transport::Ws,
            (3, b'w', b's', b's', _) => Transport::Wss,
            _ => Transport::Other(s),
        }
    }

    /// The canonical (upper-case) name, or the text as written for `Other`.
    pub fn as_bytes(&self) -> &'a [u8] {
        match *self {
            Transport::Udp => b"UDP",
            Transport::Tcp => b"TCP",
            Transport::Tls => b"TLS",
            Transport::Sctp => b"SCTP",
            Transport::Ws => b"WS",
            Transport::Wss => b"WSS",
            Transport::Other(s) => s,
        }
    }

    /// True for transports that deliver reliably, so that the transaction layer
    /// skips retransmissions (RFC 3261 §17.1.1.2).
    pub fn is_reliable(&self) -> bool {
        !matches!(self, Transport::Udp | Transport::Other(_))
    }

    /// The port a sent-by without one implies (RFC 3261 §18.2.2, §19.1.2; RFC 7118
    /// keeps the SIP defaults for WS/WSS).
    pub fn default_port(&self) -> u16 {
        match self {
            Transport::Tls | Transport::Wss => 5061,
            _ => 5060,
        }
    }
}

impl fmt::Display for Transport<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(self.as_bytes()))
    }
}

/// One decoded via-parm.
///
/// [`Via::parse`] checks the sent-protocol, the sent-by, the `generic-param`
/// grammar of every parameter, and the parameters whose accessors cannot fail:
/// `branch` (a token), `ttl` (0..=255) and `rport` (flag or port). `received` and
/// `maddr` are decoded on access, because only some paths read them.
///
/// The same pass over the parameters keeps the first `branch`, `received`,
/// `maddr`, `rport` and `ttl` it meets, so their accessors do not search the list
/// again.
#[derive(Debug, Clone, Copy)]
pub struct Via<'a> {
    /// `protocol-name`, normally `SIP`.
    pub protocol: &'a [u8],
    /// `protocol-version`, normally `2.0`.
    pub version: &'a [u8],
    /// The transport the message was (or will be) sent over.
    pub transport: Transport<'a>,
    /// Where responses go, unless `received` / `rport` / `maddr` say otherwise.
    pub sent_by: HostPort<'a>,
    /// The parameters, from the first `;`.
    pub params: Params<'a>,
    /// The parameters the accessors return, as the first occurrence of each has
    /// them (what [`Params::get`] finds).
    known: KnownParams<'a>,
}

/// The first occurrence of each parameter [`Via`] has an accessor for: `None` when
/// absent, `Some(None)` for a flag.
#[derive(Debug, Clone, Copy, Default)]
struct KnownParams<'a> {
    branch: Option<Option<&'a [u8]>>,
    received: Option<Option<&'a [u8]>>,
    maddr: Option<Option<&'a [u8]>>,
    /// Checked by [`Via::parse`]: a flag or a port.
    rport: Option<Option<u16>>,
    /// Checked by [`Via::parse`]: 0..=255.
    ttl: Option<u8>,
}

impl<'a> KnownParams<'a> {
    /// Checks `p` if it is one of the parameters [`Via::parse`] must check, and
    /// keeps it if it is the first of its name.
    /// `token_value` is what [`Item::token_value`] says of `p`.
    ///
    /// [`Item::token_value`]: super::params::Item::token_value
    #[inline]
    fn note(&mut self, p: Param<'a>, token_value: bool) -> Result<(), ParseError> {
        let name = p.name;
        if eq_ic(name, b"branch") {
            // via-branch = "branch" EQUAL token
            if !(token_value || p.value.is_some_and(is_token_str)) {
                return Err(ParseError::InvalidVia);
            }
            self.branch.get_or_insert(p.value);
        } else if eq_ic(name, b"received") {
            self.received.get_or_insert(p.value);
        } else if eq_ic(name, b"maddr") {
            self.maddr.get_or_insert(p.value);
        } else if eq_ic(name, b"rport") {
            // RFC 3581 §4: response-port = "rport" [EQUAL 1*DIGIT]
            let port = match p.value {
                Some(v) => Some(parse_port(v).ok_or(ParseError::InvalidPort)?),
                None => None,
            };
            self.rport.get_or_insert(port);
        } else if eq_ic(name, b"ttl") {
            let ttl = p.value.and_then(parse_ttl).ok_or(ParseError::InvalidVia)?;
            self.ttl.get_or_insert(ttl);
        }
        Ok(())
    }
}

impl<'a> Via<'a> {
    /// Decodes ONE via-parm (a value of [`Message::values`] for [`HeaderName::Via`]).
    ///
    /// [`HeaderName::Via`]: super::header::HeaderName::Via
    pub fn parse(value: &'a [u8]) -> Result<Via<'a>, ParseError> {
        let s = trim(value);
        let (protocol, version, s) = match s {
            // What nearly every element writes, read without the token scans;
            // the general path would split it the same way.
            [b'S', b'I', b'P', b'/', b'2', b'.', b'0', b'/', rest @ ..] => (
                s.get(..3).unwrap_or_default(),
                s.get(4..7).unwrap_or_default(),
                trim_start(rest),
            ),
            _ => {
                let (protocol, s) = take_token(s).ok_or(ParseError::InvalidVia)?;
                let s = expect_slash(s)?;
                let (version, s) = take_token(s).ok_or(ParseError::InvalidVia)?;
                (protocol, version, expect_slash(s)?)
            }
        };
        let (transport, s) = take_token(s).ok_or(ParseError::InvalidVia)?;
        // sent-protocol LWS sent-by: the white space is mandatory.
        if !s.first().is_some_and(|&b| is_lws(b)) {
            return Err(ParseError::InvalidVia);
        }
        let end = memchr(b';', s).unwrap_or(s.len());
        let sent_by = parse_sent_by(trim(&s[..end]))?;
        let params = Params::new(&s[end..]);

        // One pass: the generic-param grammar of every item, and the checks of
        // the parameters with infallible accessors. A grammar fault anywhere wins
        // over a bad `rport` value (InvalidPort) earlier in the list, so the first
        // such fault waits until the whole list is known to be well formed.
        let mut known = KnownParams::default();
        let mut fault = Ok(());
        let mut items = params;
        while let Some(item) = items.next_item() {
            let p = item.check().map_err(|_| ParseError::InvalidVia)?;
            if fault.is_ok() {
                fault = known.note(p, item.token_value);
            }
        }
        fault?;

        Ok(Via {
            protocol,
            version,
            transport: Transport::from_bytes(transport),
            sent_by,
            params,
            known,
        })
    }

    /// True for `SIP/2.0` (compared case-insensitively, RFC 3261 §7.1).
    pub fn is_sip_2_0(&self) -> bool {
        eq_ic(self.protocol, b"SIP") && self.version == b"2.0"
    }

    /// The `branch` parameter (RFC 3261 §8.1.1.7).
    pub fn branch(&self) -> Option<&'a [u8]> {
        self.known.branch.flatten()
    }

    /// True when the branch starts with the RFC 3261 magic cookie `z9hG4bK`. The
    /// comparison is case-sensitive: a branch from an RFC 2543 element that happens
    /// to start with another casing is not an RFC 3261 transaction id (§17.2.3).
    pub fn has_magic_cookie(&self) -> bool {
        self.branch().is_some_and(|b| b.starts_with(MAGIC_COOKIE))
    }

    /// The `received` parameter (RFC 3261 §18.2.1): the source address the previous
    /// hop saw. Both `received=2001:db8::1` (the RFC 3261 grammar) and the
    /// bracketed `received=[2001:db8::1]` found in the wild are accepted.
    pub fn received(&self) -> Option<Result<IpAddr, ParseError>> {
        let v = self.known.received.flatten()?;
        let text = match v {
            [b'[', inner @ .., b']'] => inner,
            _ => v,
        };
        // The dotted quad every IPv4 hop writes, without the generic parser; what
        // it rejects gets the full IpAddr parse, which decides as it did alone.
        if let Some(a) = parse_ipv4(text) {
            return Some(Ok(IpAddr::V4(a)));
        }
        Some(
            std::str::from_utf8(text)
                .ok()
                .and_then(|t| t.parse::<IpAddr>().ok())
                .ok_or(ParseError::InvalidHost),
        )
    }

    /// The `rport` parameter (RFC 3581 §4): `Some(None)` for the bare flag a client
    /// sends to ask for symmetric response routing, `Some(Some(port))` once a
    /// server has filled it in.
    pub fn rport(&self) -> Option<Option<u16>> {
        self.known.rport
    }

    /// The `maddr` parameter (RFC 3261 §18.2.2): a host to send responses to.
    pub fn maddr(&self) -> Option<Result<Host<'a>, ParseError>> {
        self.known.maddr.flatten().map(Host::parse)
    }

    /// The `ttl` parameter (multicast, 0..=255).
    pub fn ttl(&self) -> Option<u8> {
        self.known.ttl
    }

    /// The sent-by port, or the transport's default when none is written.
    pub fn port_or_default(&self) -> u16 {
        self.sent_by
            .port
            .unwrap_or_else(|| self.transport.default_port())
    }
}

impl<'a> Message<'a> {
    /// Every via-parm, top first, decoded (the top one is [`Message::via`]'s).
    pub fn vias(&self) -> impl Iterator<Item = Result<Via<'a>, ParseError>> + '_ {
        let mut top = true;
        self.values(HeaderName::Via).map(move |v| {
            if std::mem::take(&mut top) {
                self.via()
            } else {
                Via::parse(v)
            }
        })
    }

    /// The topmost Via value, decoded ([`ParseError::MissingVia`] when there is none).
    pub fn via(&self) -> Result<Via<'a>, ParseError> {
        *self
            .memo()
            .via
            .get_or_init(|| Via::parse(self.top_via().ok_or(ParseError::MissingVia)?))
    }
}

/// Splits a leading token off `s`; `None` when `s` does not start with one.
fn take_token(s: &[u8]) -> Option<(&[u8], &[u8])> {
    let n = s.iter().take_while(|&&b| is_token(b)).count();
    if n == 0 {
        None
    } else {
        Some(s.split_at(n))
    }
}

/// `SLASH = SWS "/" SWS`.
fn expect_slash(s: &[u8]) -> Result<&[u8], ParseError> {
    match trim_start(s) {
        [b'/', rest @ ..] => Ok(trim_start(rest)),
        _ => Err(ParseError::InvalidVia),
    }
}

/// `sent-by = host [ COLON port ]`, with `COLON = SWS ":" SWS`.
fn parse_sent_by(s: &[u8]) -> Result<HostPort<'_>, ParseError> {
    if s.is_empty() {
        return Err(ParseError::InvalidVia);
    }
    let close = match s.first() {
        Some(b'[') => memchr(b']', s),
        _ => None,
    };
    let (host, port) = match close {
        // `[v6] : port` — split_host_port wants the colon right after `]`.
        Some(close) => {
            let (host, rest) = s.split_at(close + 1);
            match trim_start(rest) {
                [] => (host, None),
                [b':', port @ ..] => (host, Some(port)),
                _ => return Err(ParseError::InvalidHost),
            }
        }
        _ => split_host_port(s)?,
    };
    Ok(HostPort {
        host: Host::parse(trim(host))?,
        port: match port {
            Some(p) => Some(parse_port(trim(p)).ok_or(ParseError::InvalidPort)?),
            None => None,
        },
    })
}

/// `ttl = 1*3DIGIT ; 0 to 255`.
fn parse_ttl(v: &[u8]) -> Option<u8> {
    if v.len() > 3 {
        return None;
    }
    parse_port(v).and_then(|n| u8::try_from(n).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::header::HeaderName;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn via(s: &str) -> Via<'_> {
        Via::parse(s.as_bytes()).unwrap()
    }

    fn err(s: &str) -> ParseError {
        Via::parse(s.as_bytes()).unwrap_err()
    }

    #[test]
    fn plain_via_parm() {
        let v = via("SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds");
        assert_eq!(v.protocol, b"SIP");
        assert_eq!(v.version, b"2.0");
        assert!(v.is_sip_2_0());
        assert_eq!(v.transport, Transport::Udp);
        assert_eq!(v.sent_by.host, Host::Domain("pc33.atlanta.example.com"));
        assert_eq!(v.sent_by.port, None);
        assert_eq!(v.port_or_default(), 5060);
        assert_eq!(v.branch(), Some(&b"z9hG4bK776asdhds"[..]));
        assert!(v.has_magic_cookie());
        assert_eq!(v.received(), None);
        assert_eq!(v.rport(), None);
        assert_eq!(v.ttl(), None);
        assert!(v.maddr().is_none());
    }

    #[test]
    fn no_params_and_port() {
        let v = via("SIP/2.0/TLS 192.0.2.4:5071");
        assert!(v.params.is_empty());
        assert_eq!(v.sent_by.host, Host::V4(Ipv4Addr::new(192, 0, 2, 4)));
        assert_eq!(v.sent_by.port, Some(5071));
        assert_eq!(v.branch(), None);
        assert!(!v.has_magic_cookie());
        let v = via("SIP/2.0/TLS h");
        assert_eq!(v.port_or_default(), 5061);
    }

    #[test]
    fn odd_whitespace_around_slashes_colon_and_semicolons() {
        // RFC 4475 §3.1.1.1 (wsinv), with the folding as received.
        let v = via("SIP  /   2.0\r\n /UDP\r\n    192.0.2.2;branch=390skdjuw");
        assert_eq!(v.transport, Transport::Udp);
        assert!(v.is_sip_2_0());
        assert_eq!(v.sent_by.host, Host::V4(Ipv4Addr::new(192, 0, 2, 2)));
        assert_eq!(v.branch(), Some(&b"390skdjuw"[..]));
        assert!(!v.has_magic_cookie());

        let v = via("SIP  / 2.0  / TCP     spindle.example.com   ;\r\n  branch  =   z9hG4bK9ikj8");
        assert_eq!(v.transport, Transport::Tcp);
        assert_eq!(v.sent_by.host, Host::Domain("spindle.example.com"));
        assert_eq!(v.branch(), Some(&b"z9hG4bK9ikj8"[..]));

        let v = via("SIP  /    2.0   / UDP  192.168.255.111   ; branch=\r\n z9hG4bK30239");
        assert_eq!(v.branch(), Some(&b"z9hG4bK30239"[..]));

        // COLON = SWS ":" SWS in sent-by.
        let v = via("SIP/2.0/UDP host.example.com : 5062 ;branch=z9hG4bK1");
        assert_eq!(v.sent_by.port, Some(5062));
        let v = via("SIP/2.0/UDP [2001:db8::9] :5062");
        assert_eq!(v.sent_by.port, Some(5062));
    }

    #[test]
    fn rfc4475_tortuous_invite_vias() {
        // RFC 4475 §3.1.1.1: "Via  :" then a compact "v:" carrying two via-parms.
        let msg = b"INVITE sip:vivekg@chair-dnrc.example.com;unknownparam SIP/2.0\r\n\
Via  : SIP  /   2.0\r\n /UDP\r\n    192.0.2.2;branch=390skdjuw\r\n\
v:  SIP  / 2.0  / TCP     spindle.example.com   ;\r\n  branch  =   z9hG4bK9ikj8  ,\r\n SIP  /    2.0   / UDP  192.168.255.111   ; branch=\r\n z9hG4bK30239\r\n\
Content-Length: 0\r\n\r\n";
        let m = Message::parse(msg).unwrap();
        let top = m.via().unwrap();
        assert_eq!(top.branch(), Some(&b"390skdjuw"[..]));
        let all: Vec<Via<'_>> = m
            .values(HeaderName::Via)
            .map(|v| Via::parse(v).unwrap())
            .collect();
        assert_eq!(all.len(), 3);
        assert_eq!(all[1].sent_by.host, Host::Domain("spindle.example.com"));
        assert_eq!(all[2].branch(), Some(&b"z9hG4bK30239"[..]));
        assert_eq!(
            all[2].sent_by.host,
            Host::V4(Ipv4Addr::new(192, 168, 255, 111))
        );
    }

    #[test]
    fn transports_any_case_and_unknown() {
        // RFC 4475 §3.1.1.10
        assert_eq!(via("SIP/2.0/udp h").transport, Transport::Udp);
        assert_eq!(via("SIP/2.0/Tcp h").transport, Transport::Tcp);
        assert_eq!(via("SIP/2.0/SCTP h").transport, Transport::Sctp);
        assert_eq!(via("SIP/2.0/TLS h").transport, Transport::Tls);
        assert_eq!(via("SIP/2.0/WS h").transport, Transport::Ws);
        assert_eq!(via("SIP/2.0/wss h").transport, Transport::Wss);
        let v = via("SIP/2.0/UNKNOWN t4.example.com;branch=z9hG4bKasd0f3en");
        assert_eq!(v.transport, Transport::Other(b"UNKNOWN"));
        assert_eq!(v.transport.as_bytes(), b"UNKNOWN");
        assert!(!v.transport.is_reliable());
        assert!(Transport::Tcp.is_reliable());
        assert!(!Transport::Udp.is_reliable());
        // Other protocol names and versions are tokens and parse; the caller decides.
        let v = via("sip/3.0/UDP h");
        assert_eq!(v.version, b"3.0");
        assert!(!v.is_sip_2_0());
        assert!(via("sip/2.0/UDP h").is_sip_2_0());
    }

    /// The common `SIP/2.0/` prefix is read without the token scans; the parts
    /// must come out as the general path splits them, as slices of the value.
    #[test]
    fn sent_protocol_fast_and_general_paths_agree() {
        for s in [
            "SIP/2.0/UDP h",
            "SIP/2.0/ UDP h",
            "SIP/2.0/\r\n UDP h",
            "SIP /2.0/UDP h",
            "sip/2.0/UDP h",
            "SIP/2.0 /UDP h",
            "SIP/2.01/UDP h",
        ] {
            let v = via(s);
            assert_eq!(v.protocol.as_ptr(), s.as_ptr(), "{s:?}");
            assert!(v.protocol.eq_ignore_ascii_case(b"SIP"), "{s:?}");
            assert!(v.version.starts_with(b"2.0"), "{s:?}");
            assert_eq!(v.transport, Transport::Udp, "{s:?}");
        }
        assert_eq!(
            via("SIP/2.0/UDP h").version.as_ptr(),
            "SIP/2.0/UDP h"[4..].as_ptr()
        );
        assert_eq!(err("SIP/2.0/"), ParseError::InvalidVia);
        assert_eq!(err("SIP/2.0//UDP h"), ParseError::InvalidVia);
        assert_eq!(err("SIP/2.0/UDP"), ParseError::InvalidVia);
    }

    #[test]
    fn transport_names_compare_case_insensitively_and_exactly() {
        for (s, t) in [
            (&b"udp"[..], Transport::Udp),
            (b"TcP", Transport::Tcp),
            (b"tls", Transport::Tls),
            (b"sCtP", Transport::Sctp),
            (b"Ws", Transport::Ws),
            (b"wsS", Transport::Wss),
        ] {
            assert_eq!(Transport::from_bytes(s), t);
        }
        // Bytes that OR 0x20 onto a letter only when they are that letter.
        for s in [
            &b"UD"[..],
            b"UDPX",
            b"U\x04P",
            b"UDp\x00",
            b"SCT",
            b"W",
            b"WSSS",
            b"U@P",
        ] {
            assert_eq!(Transport::from_bytes(s), Transport::Other(s), "{s:?}");
        }
        for b in 0..=u8::MAX {
            let s = [b, b'D', b'P'];
            let udp = Transport::from_bytes(&s) == Transport::Udp;
            assert_eq!(udp, b.eq_ignore_ascii_case(&b'u'), "{b:#04x}");
        }
    }

    #[test]
    fn ipv6_sent_by() {
        let v = via("SIP/2.0/UDP [2001:db8::9:1]:6050;branch=z9hG4bKas3-111");
        assert_eq!(
            v.sent_by.host,
            Host::V6("2001:db8::9:1".parse::<Ipv6Addr>().unwrap())
        );
        assert_eq!(v.sent_by.port, Some(6050));
        let v = via("SIP/2.0/UDP [2001:db8::9:1];branch=z9hG4bKas3");
        assert_eq!(v.sent_by.port, None);
        assert!(matches!(v.sent_by.host, Host::V6(_)));
        // Unbracketed IPv6 is not a host.
        assert_eq!(err("SIP/2.0/UDP 2001:db8::9:1"), ParseError::InvalidHost);
        assert_eq!(err("SIP/2.0/UDP [2001:db8::9:1"), ParseError::InvalidHost);
        assert_eq!(err("SIP/2.0/UDP [2001:db8::zz]"), ParseError::InvalidHost);
        assert_eq!(err("SIP/2.0/UDP [::1]x"), ParseError::InvalidHost);
    }

    #[test]
    fn received_v4_and_v6_bracketed_or_not() {
        let v = via("SIP/2.0/UDP h;received=192.0.2.5");
        assert_eq!(
            v.received(),
            Some(Ok(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 5))))
        );
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        let v = via("SIP/2.0/UDP h;received=2001:db8::1");
        assert_eq!(v.received(), Some(Ok(v6)));
        let v = via("SIP/2.0/UDP h;received=[2001:db8::1]");
        assert_eq!(v.received(), Some(Ok(v6)));
        let v = via("SIP/2.0/UDP h;received=host.example.com");
        assert_eq!(v.received(), Some(Err(ParseError::InvalidHost)));
        let v = via("SIP/2.0/UDP h;received=300.1.1.1");
        assert_eq!(v.received(), Some(Err(ParseError::InvalidHost)));
    }

    #[test]
    fn rport_flag_and_value() {
        // RFC 3581 §4
        assert_eq!(
            via("SIP/2.0/UDP h;rport;branch=z9hG4bK1").rport(),
            Some(None)
        );
        assert_eq!(
            via("SIP/2.0/UDP h;received=192.0.2.1;rport=9988").rport(),
            Some(Some(9988))
        );
        assert_eq!(via("SIP/2.0/UDP h;RPORT = 1").rport(), Some(Some(1)));
        assert_eq!(err("SIP/2.0/UDP h;rport=99999"), ParseError::InvalidPort);
        assert_eq!(err("SIP/2.0/UDP h;rport=x"), ParseError::InvalidPort);
        assert_eq!(err("SIP/2.0/UDP h;rport="), ParseError::InvalidVia);
    }

    #[test]
    fn maddr_and_ttl() {
        let v = via("SIP/2.0/UDP h;maddr=224.2.0.1;ttl=16");
        assert_eq!(v.maddr(), Some(Ok(Host::V4(Ipv4Addr::new(224, 2, 0, 1)))));
        assert_eq!(v.ttl(), Some(16));
        assert_eq!(via("SIP/2.0/UDP h;ttl=0").ttl(), Some(0));
        assert_eq!(via("SIP/2.0/UDP h;ttl=255").ttl(), Some(255));
        assert_eq!(err("SIP/2.0/UDP h;ttl=256"), ParseError::InvalidVia);
        assert_eq!(err("SIP/2.0/UDP h;ttl=0001"), ParseError::InvalidVia);
        assert_eq!(err("SIP/2.0/UDP h;ttl=-1"), ParseError::InvalidVia);
        assert_eq!(err("SIP/2.0/UDP h;ttl"), ParseError::InvalidVia);
        let v = via("SIP/2.0/UDP h;maddr=bad_host-");
        assert_eq!(v.maddr(), Some(Err(ParseError::InvalidHost)));
    }

    /// The accessors answer from the parse's single pass what a search of the
    /// list answers: the first occurrence of each name counts.
    #[test]
    fn accessors_agree_with_a_search_of_the_list() {
        for s in [
            "SIP/2.0/UDP h;branch=z9hG4bK1;BRANCH=z9hG4bK2;rport;rport=5;ttl=3;ttl=4",
            "SIP/2.0/UDP h;received;received=192.0.2.1;maddr;maddr=224.0.0.1",
            "SIP/2.0/UDP h;received=192.0.2.1;received;maddr=h1;maddr=h2;rport=7;rport",
            "SIP/2.0/UDP h;x=1;Received=[2001:db8::1];MADDR=[::1];TTL=0;RPort",
            "SIP/2.0/UDP h",
        ] {
            let v = via(s);
            let p = v.params;
            assert_eq!(v.branch(), p.value(b"branch"), "{s}");
            assert_eq!(v.rport(), p.get(b"rport").map(|r| r.and_then(parse_port)));
            assert_eq!(v.ttl(), p.value(b"ttl").and_then(parse_ttl), "{s}");
            let received = p.value(b"received").map(|r| {
                let r = r.strip_prefix(b"[").and_then(|r| r.strip_suffix(b"]"));
                let text = std::str::from_utf8(r.unwrap_or(p.value(b"received").unwrap()));
                text.unwrap()
                    .parse::<IpAddr>()
                    .map_err(|_| ParseError::InvalidHost)
            });
            assert_eq!(v.received(), received, "{s}");
            assert_eq!(v.maddr(), p.value(b"maddr").map(Host::parse), "{s}");
        }
        let v = via("SIP/2.0/UDP h;received;received=192.0.2.1;maddr;maddr=h");
        assert_eq!(v.received(), None);
        assert_eq!(v.maddr(), None);
        let v = via("SIP/2.0/UDP h;rport=7;rport");
        assert_eq!(v.rport(), Some(Some(7)));
    }

    #[test]
    fn grammar_faults_win_over_a_bad_rport() {
        // The generic-param check covers the whole list before rport's value is
        // reported, wherever the two faults are.
        assert_eq!(err("SIP/2.0/UDP h;rport=x;a b=1"), ParseError::InvalidVia);
        assert_eq!(err("SIP/2.0/UDP h;rport=x;;"), ParseError::InvalidVia);
        assert_eq!(
            err("SIP/2.0/UDP h;rport=x;ttl=300"),
            ParseError::InvalidPort
        );
        assert_eq!(err("SIP/2.0/UDP h;ttl=300;rport=x"), ParseError::InvalidVia);
        assert_eq!(err("SIP/2.0/UDP h;branch;rport=x"), ParseError::InvalidVia);
    }

    #[test]
    fn magic_cookie_is_case_sensitive() {
        assert!(via("SIP/2.0/UDP h;branch=z9hG4bK").has_magic_cookie());
        assert!(!via("SIP/2.0/UDP h;branch=Z9HG4BK776").has_magic_cookie());
        assert!(!via("SIP/2.0/UDP h;branch=z9hG4b").has_magic_cookie());
        // The parameter name itself is case-insensitive.
        assert!(via("SIP/2.0/UDP h;BRANCH=z9hG4bKx").has_magic_cookie());
    }

    #[test]
    fn malformed_via_parms() {
        assert_eq!(err(""), ParseError::InvalidVia);
        assert_eq!(err("SIP/2.0"), ParseError::InvalidVia);
        assert_eq!(err("SIP/2.0/UDP"), ParseError::InvalidVia);
        assert_eq!(err("SIP/2.0/UDP "), ParseError::InvalidVia);
        assert_eq!(err("SIP 2.0/UDP h"), ParseError::InvalidVia);
        assert_eq!(err("SIP//UDP h"), ParseError::InvalidVia);
        assert_eq!(err("SIP/2.0/UDP;branch=1"), ParseError::InvalidVia);
        assert_eq!(err("SIP/2.0/UDP ;branch=1"), ParseError::InvalidVia);
        assert_eq!(err("SIP/2.0/UDP h:70000"), ParseError::InvalidPort);
        assert_eq!(err("SIP/2.0/UDP h:"), ParseError::InvalidPort);
        assert_eq!(err("SIP/2.0/UDP h x"), ParseError::InvalidHost);
        assert_eq!(err("SIP/2.0/UDP -h"), ParseError::InvalidHost);
        // RFC 4475 §3.1.2.1 (badinv01): empty parameters.
        assert_eq!(err("SIP/2.0/UDP 192.0.2.15;;"), ParseError::InvalidVia);
        assert_eq!(err(";"), ParseError::InvalidVia);
        assert_eq!(err("SIP/2.0/UDP h;branch="), ParseError::InvalidVia);
        assert_eq!(err("SIP/2.0/UDP h;branch"), ParseError::InvalidVia);
        assert_eq!(err("SIP/2.0/UDP h;branch=\"q\""), ParseError::InvalidVia);
        // A valid gen-value, but not a token.
        assert_eq!(
            err("SIP/2.0/UDP h;branch=z9hG4bK:1"),
            ParseError::InvalidVia
        );
        assert_eq!(err("SIP/2.0/UDP h;branch=[::1]"), ParseError::InvalidVia);
        assert_eq!(err("SIP/2.0/UDP h;a b=1"), ParseError::InvalidVia);
    }

    #[test]
    fn rfc4475_badinv01_top_via_fails() {
        let msg = b"INVITE sip:user@example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.15;;,;,,\r\n\
Content-Length: 0\r\n\r\n";
        let m = Message::parse(msg).unwrap();
        assert_eq!(m.via().unwrap_err(), ParseError::InvalidVia);
        assert!(m.values(HeaderName::Via).any(|v| Via::parse(v).is_err()));
    }

    #[test]
    fn message_via_missing() {
        let m = Message::parse(b"OPTIONS sip:x SIP/2.0\r\nl: 0\r\n\r\n").unwrap();
        assert_eq!(m.via().unwrap_err(), ParseError::MissingVia);
    }

    #[test]
    fn long_branch_and_received_from_rfc4475_longreq() {
        // RFC 4475 §3.1.1.7
        let branch = format!("very{}branchvalue", "long".repeat(50));
        let s = format!("SIP/2.0/TCP\r\n host.example.com;received=192.0.2.5;\r\n branch={branch}");
        let v = Via::parse(s.as_bytes()).unwrap();
        assert_eq!(v.transport, Transport::Tcp);
        assert_eq!(v.branch(), Some(branch.as_bytes()));
        assert_eq!(
            v.received(),
            Some(Ok(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 5))))
        );
    }
}
