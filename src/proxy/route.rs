//! Route information preprocessing, RFC 3261 §16.4: undo a strict router's
//! rewrite, and take this proxy's own values off the top of the Route set.

use crate::sip::error::ParseError;
use crate::sip::name_addr::NameAddr;
use crate::sip::uri::Uri;
use crate::sip::Message;

use super::identity::Identity;

/// What §16.4 decided; the forwarder turns it into writer edits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RoutePlan<'a> {
    /// The Request-URI to process the request with: the received one, or the last
    /// Route value when the previous hop was a strict router.
    pub request_uri: &'a [u8],
    /// The previous hop was a strict router: the last Route value becomes the
    /// Request-URI and leaves the Route set.
    pub strict_fixed: bool,
    /// How many leading Route values named this proxy (two after double
    /// record-routing); they are removed.
    pub ours: u8,
    /// The user part of the first of our Route values: a flow token we put into
    /// our Record-Route (see [`super::flow`]).
    pub ours_user: Option<&'a [u8]>,
    /// The first Route value left, which names the next hop (§16.6 step 7).
    pub next: Option<NameAddr<'a>>,
}

impl RoutePlan<'_> {
    /// True when the request carried a Route set that pointed through this proxy,
    /// i.e. it is being routed rather than targeted (§16.5 applies only when no
    /// Route value is left).
    #[cfg(test)]
    pub(crate) fn has_route(&self) -> bool {
        self.next.is_some()
    }
}

/// Applies §16.4 to a validated request.
pub(crate) fn preprocess<'a>(
    msg: &Message<'a>,
    ident: &Identity,
) -> Result<RoutePlan<'a>, ParseError> {
    let mut request_uri = msg.request_uri().ok_or(ParseError::InvalidStartLine)?;
    let mut routes = msg.routes();
    let Some(first) = routes.next().transpose()? else {
        return Ok(RoutePlan {
            request_uri,
            strict_fixed: false,
            ours: 0,
            ours_user: None,
            next: None,
        });
    };
    let mut strict_fixed = false;
    // A Request-URI of ours without a user part is a Record-Route value we placed
    // (ours never carry a user): the sender was a strict router, and the last Route
    // value is the Request-URI it replaced.
    if let Ok(Uri::Sip(u)) = msg.uri() {
        if u.user.is_none() && ident.is_me(&u) {
            let mut last = first;
            for r in msg.routes().skip(1) {
                last = r?;
            }
            request_uri = last.uri;
            strict_fixed = true;
        }
    }

    // One pass over the Route values, leaving out the last one when it was the
    // strict router's Request-URI (only then were they walked before, to find it).
    let mut usable = std::iter::once(Ok(first)).chain(routes).peekable();
    let mut ours = 0u8;
    let mut ours_user = None;
    let mut next = None;
    while let Some(r) = usable.next() {
        let r = r?;
        if strict_fixed && usable.peek().is_none() {
            break;
        }
        let (mine, user) = match r.parse_uri()? {
            Uri::Sip(u) => (ident.is_me(&u), u.user),
            _ => (false, None),
        };
        if mine && next.is_none() && ours < u8::MAX {
            if ours == 0 {
                ours_user = user;
            }
            ours += 1;
        } else {
            next = Some(r);
            break;
        }
    }
    Ok(RoutePlan {
        request_uri,
        strict_fixed,
        ours,
        ours_user,
        next,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ident() -> Identity {
        Identity::new(&[("192.0.2.10".parse().unwrap(), 5060)], &[], &[])
    }

    fn msg(ruri: &str, routes: &str) -> Vec<u8> {
        format!(
            "BYE {ruri} SIP/2.0\r\n{routes}Via: SIP/2.0/UDP 198.51.100.1;branch=z9hG4bK1\r\n\
             To: <sip:bob@example.test>;tag=b\r\nFrom: <sip:alice@example.test>;tag=a\r\n\
             Call-ID: c1\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n"
        )
        .into_bytes()
    }

    #[test]
    fn loose_route_removes_our_value() {
        // RFC 3261 §16.4 / §16.12.1.
        let b = msg(
            "sip:bob@203.0.113.5",
            "Route: <sip:192.0.2.10;lr>, <sip:198.51.100.9;lr>\r\n",
        );
        let m = Message::parse(&b).unwrap();
        let p = preprocess(&m, &ident()).unwrap();
        assert_eq!(p.ours, 1);
        assert!(!p.strict_fixed);
        assert_eq!(p.request_uri, b"sip:bob@203.0.113.5");
        assert_eq!(p.next.unwrap().uri, b"sip:198.51.100.9;lr");
    }

    #[test]
    fn double_record_route_values_both_removed() {
        let b = msg(
            "sip:bob@203.0.113.5",
            "Route: <sip:192.0.2.10;lr>\r\nRoute: <sip:192.0.2.10:5060;transport=tcp;lr>\r\n",
        );
        let m = Message::parse(&b).unwrap();
        let p = preprocess(&m, &ident()).unwrap();
        assert_eq!(p.ours, 2);
        assert!(p.next.is_none());
    }

    #[test]
    fn strict_router_rewrite_undone() {
        // RFC 3261 §16.4: the Request-URI holds our Record-Route URI; the real
        // Request-URI is the last Route value.
        let b = msg(
            "sip:192.0.2.10;lr",
            "Route: <sip:198.51.100.9;lr>, <sip:bob@203.0.113.5>\r\n",
        );
        let m = Message::parse(&b).unwrap();
        let p = preprocess(&m, &ident()).unwrap();
        assert!(p.strict_fixed);
        assert_eq!(p.request_uri, b"sip:bob@203.0.113.5");
        assert_eq!(p.ours, 0);
        assert_eq!(p.next.unwrap().uri, b"sip:198.51.100.9;lr");
    }

    #[test]
    fn strict_router_with_only_the_request_uri_left_and_with_our_own_values() {
        // The last Route value is the replaced Request-URI and never a hop, even
        // when it is the only one left.
        let b = msg("sip:192.0.2.10;lr", "Route: <sip:bob@203.0.113.5>\r\n");
        let m = Message::parse(&b).unwrap();
        let p = preprocess(&m, &ident()).unwrap();
        assert!(p.strict_fixed);
        assert_eq!(p.request_uri, b"sip:bob@203.0.113.5");
        assert_eq!((p.ours, p.next), (0, None));

        // Our own values ahead of the next hop are still ours to remove.
        let b = msg(
            "sip:192.0.2.10;lr",
            "Route: <sip:192.0.2.10;lr>\r\nRoute: <sip:198.51.100.9;lr>, <sip:bob@203.0.113.5>\r\n",
        );
        let m = Message::parse(&b).unwrap();
        let p = preprocess(&m, &ident()).unwrap();
        assert!(p.strict_fixed);
        assert_eq!(p.request_uri, b"sip:bob@203.0.113.5");
        assert_eq!(p.ours, 1);
        assert_eq!(p.next.unwrap().uri, b"sip:198.51.100.9;lr");
    }

    #[test]
    fn foreign_route_is_next_hop() {
        let b = msg("sip:bob@203.0.113.5", "Route: <sip:198.51.100.9;lr>\r\n");
        let m = Message::parse(&b).unwrap();
        let p = preprocess(&m, &ident()).unwrap();
        assert_eq!(p.ours, 0);
        assert!(p.has_route());
    }
}
