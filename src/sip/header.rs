//! Header names: case-insensitive lookup of full and compact forms (RFC 3261 §7.3.3,
//! §20) into a one-byte id, so that the rest of the stack compares integers.

use super::text::eq_ic;

macro_rules! header_names {
    ($( $variant:ident => $canon:literal $(, compact $c:literal)? $(, list $list:literal)? ;)*) => {
        /// A known header name, or [`HeaderName::Other`] for an extension header
        /// (kept raw: its text is in the message).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u8)]
        #[non_exhaustive]
        pub enum HeaderName {
            $( $variant, )*
            /// Any header this parser does not know by name.
            Other,
        }

        impl HeaderName {
            /// The canonical (long) spelling.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( HeaderName::$variant => $canon, )*
                    HeaderName::Other => "",
                }
            }

            /// True when the header's grammar is a comma-separated list, so that
            /// one line may carry several values (RFC 3261 §7.3.1).
            pub fn is_list(self) -> bool {
                match self {
                    $( HeaderName::$variant => false $( || $list )?, )*
                    HeaderName::Other => false,
                }
            }

            fn from_compact(c: u8) -> HeaderName {
                match c.to_ascii_lowercase() {
                    $( $( $c => HeaderName::$variant, )? )*
                    _ => HeaderName::Other,
                }
            }

            fn from_long(name: &[u8]) -> HeaderName {
                $( if name.len() == $canon.len() && eq_ic(name, $canon.as_bytes()) {
                    return HeaderName::$variant;
                } )*
                HeaderName::Other
            }
        }
    };
}

header_names! {
    Via => "Via", compact b'v', list true;
    From => "From", compact b'f';
    To => "To", compact b't';
    CallId => "Call-ID", compact b'i';
    CSeq => "CSeq";
    Contact => "Contact", compact b'm', list true;
    MaxForwards => "Max-Forwards";
    Route => "Route", list true;
    RecordRoute => "Record-Route", list true;
    ContentLength => "Content-Length", compact b'l';
    ContentType => "Content-Type", compact b'c';
    ContentEncoding => "Content-Encoding", compact b'e', list true;
    Expires => "Expires";
    MinExpires => "Min-Expires";
    Require => "Require", list true;
    ProxyRequire => "Proxy-Require", list true;
    Supported => "Supported", compact b'k', list true;
    Unsupported => "Unsupported", list true;
    Allow => "Allow", list true;
    Accept => "Accept", list true;
    AcceptEncoding => "Accept-Encoding", list true;
    AcceptLanguage => "Accept-Language", list true;
    Authorization => "Authorization";
    ProxyAuthorization => "Proxy-Authorization";
    WwwAuthenticate => "WWW-Authenticate";
    ProxyAuthenticate => "Proxy-Authenticate";
    AuthenticationInfo => "Authentication-Info";
    Path => "Path", list true;
    ServiceRoute => "Service-Route", list true;
    Event => "Event", compact b'o';
    AllowEvents => "Allow-Events", compact b'u', list true;
    SubscriptionState => "Subscription-State";
    Subject => "Subject", compact b's';
    ReferTo => "Refer-To", compact b'r';
    ReferredBy => "Referred-By", compact b'b';
    SessionExpires => "Session-Expires", compact b'x';
    MinSe => "Min-SE";
    Identity => "Identity", compact b'y';
    IdentityInfo => "Identity-Info", compact b'n';
    AcceptContact => "Accept-Contact", compact b'a', list true;
    RejectContact => "Reject-Contact", compact b'j', list true;
    RequestDisposition => "Request-Disposition", compact b'd', list true;
    Date => "Date";
    Timestamp => "Timestamp";
    UserAgent => "User-Agent";
    Server => "Server";
    Organization => "Organization";
    Priority => "Priority";
    Warning => "Warning", list true;
    RetryAfter => "Retry-After";
    ReplyTo => "Reply-To";
    InReplyTo => "In-Reply-To", list true;
    MimeVersion => "MIME-Version";
    ErrorInfo => "Error-Info", list true;
    AlertInfo => "Alert-Info", list true;
    CallInfo => "Call-Info", list true;
    ContentDisposition => "Content-Disposition";
    ContentLanguage => "Content-Language", list true;
    RSeq => "RSeq";
    RAck => "RAck";
    SipEtag => "SIP-ETag";
    SipIfMatch => "SIP-If-Match";
}

impl HeaderName {
    /// Looks up a header name as received (any case, full or compact form).
    #[inline]
    pub fn from_bytes(name: &[u8]) -> HeaderName {
        if name.len() == 1 {
            HeaderName::from_compact(name[0])
        } else {
            HeaderName::from_long(name)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_forms() {
        // RFC 3261 §7.3.3 and the compact forms registered since.
        for (c, h) in [
            ("v", HeaderName::Via),
            ("F", HeaderName::From),
            ("t", HeaderName::To),
            ("i", HeaderName::CallId),
            ("m", HeaderName::Contact),
            ("l", HeaderName::ContentLength),
            ("c", HeaderName::ContentType),
            ("k", HeaderName::Supported),
            ("s", HeaderName::Subject),
            ("e", HeaderName::ContentEncoding),
            ("o", HeaderName::Event),
            ("u", HeaderName::AllowEvents),
            ("r", HeaderName::ReferTo),
            ("b", HeaderName::ReferredBy),
            ("x", HeaderName::SessionExpires),
            ("y", HeaderName::Identity),
            ("q", HeaderName::Other),
        ] {
            assert_eq!(HeaderName::from_bytes(c.as_bytes()), h, "{c}");
        }
    }

    #[test]
    fn long_forms_any_case() {
        assert_eq!(HeaderName::from_bytes(b"cAlL-iD"), HeaderName::CallId);
        assert_eq!(HeaderName::from_bytes(b"CSEQ"), HeaderName::CSeq);
        assert_eq!(
            HeaderName::from_bytes(b"Record-route"),
            HeaderName::RecordRoute
        );
        assert_eq!(HeaderName::from_bytes(b"X-Custom"), HeaderName::Other);
        assert!(HeaderName::Via.is_list());
        assert!(!HeaderName::CSeq.is_list());
        assert_eq!(HeaderName::CallId.as_str(), "Call-ID");
    }
}
