//! The message-level check a proxy or UA core runs once per message before acting on
//! it (RFC 3261 §8.1.1, §8.2.2, §16.3 step 1, §18.3, §20): the mandatory headers are
//! there exactly once, and every value the core reads decodes.
//!
//! [`Message::parse`] only frames a message; [`Message::check`] decodes each header
//! the core depends on once, with the typed decoders of the sibling modules, and
//! allocates nothing.
//!
//! # What to do with a message that fails
//!
//! - A **response** that fails is dropped silently: nothing answers a response
//!   (RFC 3261 §16.7, §18.1.2; RFC 4475 §3.1.2.5 and §3.1.2.19 say "discard").
//! - A **request** that fails is answered `400 Bad Request` with
//!   [`ParseError::reason`] as reason phrase when [`ParseError::is_answerable`]
//!   says so: the top Via is sound, so [`write_response`] can address the answer
//!   (RFC 3261 §8.2.6, §18.2.2). Otherwise it is dropped silently.
//! - A request that fails [`Message::parse`] has no parsed form to build a response
//!   from; it is dropped (UDP) or its connection closed (stream, RFC 4475 §3.1.2.3).
//!   Two faults are salvaged instead: another SIP-Version (505), and header lines
//!   that are not headers, which [`Message::parse_skipping_bad_lines`] leaves out
//!   to answer the rest `400` (see `Shard::on_message`).
//!
//! [`write_response`]: super::writer::write_response

use super::error::ParseError;
use super::header::HeaderName;
use super::message::{Message, StartLine};
use super::name_addr::NameAddr;
use super::text::trim;
use super::uri::Uri;
use super::via::Via;

/// Headers that may appear at most once (their grammar is not a comma list,
/// RFC 3261 §7.3.1), as bits of a mask. Content-Length is among them: two values
/// are a framing error (RFC 4475 §3.3.9).
#[inline]
fn singleton_bit(name: HeaderName) -> u16 {
    match name {
        HeaderName::From => 1 << 0,
        HeaderName::To => 1 << 1,
        HeaderName::CallId => 1 << 2,
        HeaderName::CSeq => 1 << 3,
        HeaderName::MaxForwards => 1 << 4,
        HeaderName::ContentLength => 1 << 5,
        HeaderName::ContentType => 1 << 6,
        _ => 0,
    }
}

impl<'a> Message<'a> {
    /// Checks what a proxy or UA core needs before processing the message.
    ///
    /// In this order, so that the first fault found is the one that decides between
    /// answering and dropping (see the module docs):
    ///
    /// 1. at least one Via, and every via-parm decodes, `received` and `maddr`
    ///    included ([`ParseError::MissingVia`], [`ParseError::InvalidVia`]);
    /// 2. From, To, Call-ID and CSeq present ([`ParseError::MissingFrom`], …);
    /// 3. none of From, To, Call-ID, CSeq, Max-Forwards, Content-Length,
    ///    Content-Type repeated ([`ParseError::DuplicateHeader`]; RFC 4475 §3.3.8,
    ///    §3.3.9);
    /// 4. for a request, the Request-URI is a URI and, if SIP, carries no
    ///    `?headers` (not allowed there by RFC 3261 §19.1.1 Table 1; rejecting
    ///    rather than ignoring them is what RFC 4475 §3.1.2.11 calls acceptable,
    ///    and it keeps them out of anything forwarded)
    ///    ([`ParseError::InvalidRequestUri`]); for a response, the status code is
    ///    in 100..=699;
    /// 5. From and To decode, their URIs included ([`ParseError::InvalidFrom`],
    ///    [`ParseError::InvalidTo`]), Call-ID and CSeq decode, and a request's CSeq
    ///    method equals its Request-Line method (RFC 3261 §8.1.1.5, which holds for
    ///    ACK and CANCEL too: §17.1.1.3, §9.1) ([`ParseError::CSeqMethodMismatch`]);
    /// 6. a request's Max-Forwards, when present, is a number in 0..=255 (RFC 4475
    ///    §3.1.2.4 lets an element ignore a bad one; a proxy must not, since it
    ///    decrements it), and its Route values are name-addrs with URIs
    ///    ([`ParseError::InvalidNameAddr`]);
    /// 7. Contact values (and their URIs), Expires and Content-Type decode when
    ///    present ([`ParseError::InvalidContact`], [`ParseError::InvalidExpires`],
    ///    [`ParseError::InvalidContentType`]).
    ///
    /// Content-Length agreeing with the bytes present is already guaranteed by
    /// [`Message::parse`]. Not checked, because a proxy does not act on them: the
    /// Contact `q` parameter, Date, Accept, Require (the proxy reads
    /// Proxy-Require itself), authorization headers, extension headers.
    pub fn check(&self) -> Result<(), ParseError> {
        // One pass over the header index (integer compares only).
        let mut seen = 0u16;
        let mut repeated = false;
        let mut has_via = false;
        for h in self.headers() {
            let bit = singleton_bit(h.name);
            repeated |= seen & bit != 0;
            seen |= bit;
            has_via |= h.name == HeaderName::Via;
        }

        // 1. Via first: it decides whether the fault can be answered.
        if !has_via {
            return Err(ParseError::MissingVia);
        }
        // via = "Via" HCOLON via-parm *(COMMA via-parm): a line holds at least one.
        if self
            .all(HeaderName::Via)
            .any(|h| trim(self.value(h)).is_empty())
        {
            return Err(ParseError::InvalidVia);
        }
        // The top one is the decoding every later reader shares.
        for via in self.vias() {
            check_via(via)?;
        }

        // 2. The rest of the mandatory set (RFC 3261 §8.1.1).
        for (name, err) in [
            (HeaderName::From, ParseError::MissingFrom),
            (HeaderName::To, ParseError::MissingTo),
            (HeaderName::CallId, ParseError::MissingCallId),
            (HeaderName::CSeq, ParseError::MissingCSeq),
        ] {
            if seen & singleton_bit(name) == 0 {
                return Err(err);
            }
        }

        // 3.
        if repeated {
            return Err(ParseError::DuplicateHeader);
        }

        // 4.
        let request_method = match *self.start_line() {
            StartLine::Request { method, .. } => {
                match self.uri() {
                    Ok(Uri::Sip(u)) if u.headers.is_some() => {
                        return Err(ParseError::InvalidRequestUri)
                    }
                    Ok(_) => {}
                    Err(_) => return Err(ParseError::InvalidRequestUri),
                }
                Some(method)
            }
            StartLine::Response { code, .. } => {
                if !(100..=699).contains(&code) {
                    return Err(ParseError::InvalidStatusCode);
                }
                None
            }
        };

        // 5.
        // Decoded once here for every later reader (Message::from_uri, to_uri).
        self.from_uri().map_err(|_| ParseError::InvalidFrom)?;
        self.to_uri().map_err(|_| ParseError::InvalidTo)?;
        self.call_id()?;
        let cseq = self.cseq()?;
        if let Some(method) = request_method {
            if cseq.method != method {
                return Err(ParseError::CSeqMethodMismatch);
            }

            // 6.
            self.max_forwards()?;
            for route in self.routes() {
                check_address(route, ParseError::InvalidNameAddr)?;
            }
        }

        // 7.
        for uri in self.contact_uris() {
            uri?;
        }
        self.expires()?;
        self.content_type()?;
        Ok(())
    }
}

/// One decoded via-parm, plus the parameters [`Via::parse`] leaves to their accessors but a
/// proxy reads when it routes a response back (RFC 3261 §18.2.2). Every fault is
/// reported as [`ParseError::InvalidVia`], so that the error names the header.
fn check_via(via: Result<Via<'_>, ParseError>) -> Result<(), ParseError> {
    let via = via.map_err(|_| ParseError::InvalidVia)?;
    if matches!(via.received(), Some(Err(_))) || matches!(via.maddr(), Some(Err(_))) {
        return Err(ParseError::InvalidVia);
    }
    Ok(())
}

/// An address header and its URI; any fault becomes `err`, which names the header.
fn check_address(
    addr: Result<NameAddr<'_>, ParseError>,
    err: ParseError,
) -> Result<(), ParseError> {
    addr.map_err(|_| err)?.parse_uri().map_err(|_| err)?;
    Ok(())
}

impl ParseError {
    /// For a request that failed [`Message::check`]: true when it should be
    /// answered `400 Bad Request` (reason phrase [`ParseError::reason`]), false when
    /// it should be dropped silently.
    ///
    /// A 400 goes where the top Via says (RFC 3261 §18.2.2) and copies the Via
    /// lines (§8.2.6.2), so a request whose Via is missing or malformed cannot be
    /// answered; [`Message::check`] examines Via before anything else, so any other
    /// fault it reports comes with a usable Via.
    ///
    /// Only meaningful for errors of [`Message::check`]: an error of
    /// [`Message::parse`] leaves no parsed request to answer from (RFC 4475
    /// §3.1.2.3: discard the datagram, or close the stream).
    ///
    /// Responses are never answered, whatever the error.
    pub fn is_answerable(&self) -> bool {
        !matches!(self, ParseError::MissingVia | ParseError::InvalidVia)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPTIONS: &str = "OPTIONS sip:bob@example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.example.com;branch=z9hG4bK776asdhds\r\n\
Max-Forwards: 70\r\n\
To: <sip:bob@example.com>\r\n\
From: Alice <sip:alice@example.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710\r\n\
CSeq: 63104 OPTIONS\r\n\
Content-Length: 0\r\n\r\n";

    /// `OPTIONS` with `from` replaced by `to` (which must occur once).
    fn edited(from: &str, to: &str) -> String {
        assert_eq!(OPTIONS.matches(from).count(), 1, "{from}");
        OPTIONS.replacen(from, to, 1)
    }

    fn check(msg: &str) -> Result<(), ParseError> {
        Message::parse(msg.as_bytes()).unwrap().check()
    }

    #[test]
    fn minimal_request_passes() {
        assert_eq!(check(OPTIONS), Ok(()));
    }

    #[test]
    fn via_is_checked_first() {
        // No Via and no From: the Via fault wins, and it cannot be answered.
        let m = edited(
            "Via: SIP/2.0/UDP pc33.example.com;branch=z9hG4bK776asdhds\r\n",
            "",
        )
        .replace("From: Alice <sip:alice@example.com>;tag=1928301774\r\n", "");
        assert_eq!(check(&m), Err(ParseError::MissingVia));
        assert!(!ParseError::MissingVia.is_answerable());
        let m = edited("Max-Forwards: 70\r\n", "Via: SIP/2.0/UDP h:x\r\n")
            .replace("From: Alice <sip:alice@example.com>;tag=1928301774\r\n", "");
        assert_eq!(check(&m), Err(ParseError::InvalidVia));
        assert!(!ParseError::InvalidVia.is_answerable());
        assert!(ParseError::MissingFrom.is_answerable());
    }

    #[test]
    fn every_via_value_and_line_is_decoded() {
        // A bad second value on the same line, and on a later line.
        let m = edited(
            ";branch=z9hG4bK776asdhds\r\n",
            ";branch=z9hG4bK1, SIP/2.0/UDP\r\n",
        );
        assert_eq!(check(&m), Err(ParseError::InvalidVia));
        let m = edited(
            "Max-Forwards: 70\r\n",
            "Max-Forwards: 70\r\nv: SIP/2.0/UDP [::1\r\n",
        );
        assert_eq!(check(&m), Err(ParseError::InvalidVia));
        // An empty Via line holds no via-parm.
        let m = edited("Max-Forwards: 70\r\n", "Max-Forwards: 70\r\nVia:\r\n");
        assert_eq!(check(&m), Err(ParseError::InvalidVia));
        // received and maddr, which Via::parse leaves to their accessors.
        let m = edited("z9hG4bK776asdhds", "z9hG4bK1;received=pc33.example.com");
        assert_eq!(check(&m), Err(ParseError::InvalidVia));
        let m = edited("z9hG4bK776asdhds", "z9hG4bK1;maddr=-bad-");
        assert_eq!(check(&m), Err(ParseError::InvalidVia));
        let m = edited(
            "z9hG4bK776asdhds",
            "z9hG4bK1;maddr=224.0.1.75;received=192.0.2.1",
        );
        assert_eq!(check(&m), Ok(()));
    }

    #[test]
    fn mandatory_headers_in_order() {
        let m = edited("From: Alice <sip:alice@example.com>;tag=1928301774\r\n", "");
        assert_eq!(check(&m), Err(ParseError::MissingFrom));
        let m = edited("To: <sip:bob@example.com>\r\n", "");
        assert_eq!(check(&m), Err(ParseError::MissingTo));
        let m = edited("Call-ID: a84b4c76e66710\r\n", "");
        assert_eq!(check(&m), Err(ParseError::MissingCallId));
        let m = edited("CSeq: 63104 OPTIONS\r\n", "");
        assert_eq!(check(&m), Err(ParseError::MissingCSeq));
        // Max-Forwards and Content-Length are optional here (RFC 3261 §8.1.1.6 is a
        // UAC obligation; a datagram may omit Content-Length, §18.3).
        let m = edited("Max-Forwards: 70\r\n", "").replace("Content-Length: 0\r\n", "");
        assert_eq!(check(&m), Ok(()));
    }

    #[test]
    fn singletons_appear_once_in_any_spelling() {
        for extra in [
            "f: <sip:x@example.com>;tag=2\r\n",
            "t: <sip:y@example.com>\r\n",
            "i: other\r\n",
            "CSEQ: 63104 OPTIONS\r\n",
            "Max-Forwards: 70\r\n",
            "l: 0\r\n",
            "Content-Type: text/plain\r\nc: text/plain\r\n",
        ] {
            let m = edited(
                "Content-Length: 0\r\n",
                &format!("{extra}Content-Length: 0\r\n"),
            );
            assert_eq!(check(&m), Err(ParseError::DuplicateHeader), "{extra}");
        }
        // List headers may repeat.
        let m = edited(
            "Content-Length: 0\r\n",
            "Contact: <sip:a@h>\r\nContact: <sip:b@h>\r\nContent-Length: 0\r\n",
        );
        assert_eq!(check(&m), Ok(()));
    }

    #[test]
    fn request_uri_must_be_a_uri_without_headers() {
        let m = edited("sip:bob@example.com SIP", "sip:bob@exa$mple.com SIP");
        assert_eq!(check(&m), Err(ParseError::InvalidRequestUri));
        let m = edited(
            "sip:bob@example.com SIP",
            "sip:bob@example.com?Subject=x SIP",
        );
        assert_eq!(check(&m), Err(ParseError::InvalidRequestUri));
        // tel: and other schemes are the proxy's business (416), not a 400.
        let m = edited("sip:bob@example.com SIP", "tel:+1-201-555-0123 SIP");
        assert_eq!(check(&m), Ok(()));
        let m = edited("sip:bob@example.com SIP", "urn:service:sos SIP");
        assert_eq!(check(&m), Ok(()));
    }

    #[test]
    fn address_headers_and_their_uris() {
        let m = edited("<sip:alice@example.com>", "<sip:alice@exa mple.com>");
        assert_eq!(check(&m), Err(ParseError::InvalidFrom));
        let m = edited("<sip:alice@example.com>", "<sip:alice@-example.com>");
        assert_eq!(check(&m), Err(ParseError::InvalidFrom));
        let m = edited(
            "To: <sip:bob@example.com>",
            "To: <sip:bob@example.com:99999>",
        );
        assert_eq!(check(&m), Err(ParseError::InvalidTo));
        let m = edited("Call-ID: a84b4c76e66710", "Call-ID: a b");
        assert_eq!(check(&m), Err(ParseError::InvalidCallId));
        let m = edited("63104 OPTIONS", "2147483648 OPTIONS");
        assert_eq!(check(&m), Err(ParseError::InvalidCSeq));
    }

    #[test]
    fn cseq_method_equals_request_method() {
        let m = edited("63104 OPTIONS", "63104 options");
        assert_eq!(check(&m), Err(ParseError::CSeqMethodMismatch));
        // ACK and CANCEL carry their own method in CSeq (RFC 3261 §17.1.1.3, §9.1).
        for method in ["ACK", "CANCEL"] {
            let m = edited("OPTIONS sip", &format!("{method} sip"));
            assert_eq!(check(&m), Err(ParseError::CSeqMethodMismatch), "{method}");
            let m = m.replace("63104 OPTIONS", &format!("63104 {method}"));
            assert_eq!(check(&m), Ok(()), "{method}");
        }
    }

    #[test]
    fn request_max_forwards_and_route() {
        let m = edited("Max-Forwards: 70", "Max-Forwards: 256");
        assert_eq!(check(&m), Err(ParseError::InvalidMaxForwards));
        let m = edited("Max-Forwards: 70", "Max-Forwards: 0");
        assert_eq!(check(&m), Ok(()));
        let route = |r: &str| edited("Max-Forwards: 70\r\n", &format!("Max-Forwards: 70\r\n{r}"));
        let ok = route("Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\n");
        assert_eq!(check(&ok), Ok(()));
        // Route needs the name-addr form, and a URI inside it.
        let bad = route("Route: sip:p1.example.com;lr\r\n");
        assert_eq!(check(&bad), Err(ParseError::InvalidNameAddr));
        let bad = route("Route: <sip:p1.example.com;lr>, <sip:[::1;lr>\r\n");
        assert_eq!(check(&bad), Err(ParseError::InvalidNameAddr));
    }

    #[test]
    fn contact_expires_content_type() {
        let add = |h: &str| {
            edited(
                "Content-Length: 0\r\n",
                &format!("{h}Content-Length: 0\r\n"),
            )
        };
        assert_eq!(check(&add("Contact: *\r\n")), Ok(()));
        assert_eq!(
            check(&add("m: <sip:a@h>;expires=60, sip:b@h;q=0.5\r\n")),
            Ok(())
        );
        assert_eq!(
            check(&add("Contact: <sip:a@h>, <sip:b@h:x>\r\n")),
            Err(ParseError::InvalidContact)
        );
        assert_eq!(
            check(&add("Contact: <sip:a@h>;;\r\n")),
            Err(ParseError::InvalidContact)
        );
        assert_eq!(check(&add("Expires: 3600\r\n")), Ok(()));
        assert_eq!(
            check(&add("Expires: soon\r\n")),
            Err(ParseError::InvalidExpires)
        );
        assert_eq!(check(&add("Content-Type: application/sdp\r\n")), Ok(()));
        assert_eq!(
            check(&add("Content-Type: sdp\r\n")),
            Err(ParseError::InvalidContentType)
        );
    }

    #[test]
    fn responses_skip_request_only_checks() {
        let resp = OPTIONS
            .replacen("OPTIONS sip:bob@example.com SIP/2.0", "SIP/2.0 200 OK", 1)
            .replace("Max-Forwards: 70", "Max-Forwards: many");
        // CSeq method is whatever the request's was; Max-Forwards means nothing.
        assert_eq!(check(&resp), Ok(()));
        let resp = resp.replace("63104 OPTIONS", "63104 INVITE");
        assert_eq!(check(&resp), Ok(()));
        let bad = resp.replace("Call-ID: a84b4c76e66710\r\n", "");
        assert_eq!(check(&bad), Err(ParseError::MissingCallId));
        let bad = resp.replace("CSeq: 63104 INVITE", "CSeq: INVITE");
        assert_eq!(check(&bad), Err(ParseError::InvalidCSeq));
    }
}
