//! The parser's error type: one variant per message element, so that a proxy can
//! answer `400 Bad Request` with a reason phrase that names the fault.

use thiserror::Error;

/// What is wrong with a SIP message, named by the element that failed to parse.
///
/// [`ParseError::reason`] gives a short phrase suitable for a `400` reason phrase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ParseError {
    // --- framing and start line -------------------------------------------------
    /// The bytes end before the blank line that closes the header section.
    #[error("incomplete message: no end of headers")]
    Incomplete,
    /// The message is empty or holds only CRLFs.
    #[error("empty message")]
    Empty,
    /// The start line is neither a Request-Line nor a Status-Line.
    #[error("invalid start line")]
    InvalidStartLine,
    /// The method is not a token.
    #[error("invalid method")]
    InvalidMethod,
    /// The Request-URI is empty or malformed.
    #[error("invalid Request-URI")]
    InvalidRequestUri,
    /// The SIP-Version is not `SIP/2.0`.
    #[error("unsupported SIP version")]
    BadVersion,
    /// The status code is not three digits in 100..=699.
    #[error("invalid status code")]
    InvalidStatusCode,
    /// The reason phrase holds bytes that are not allowed.
    #[error("invalid reason phrase")]
    InvalidReasonPhrase,
    /// A header line has no colon or its name is not a token.
    #[error("invalid header line")]
    InvalidHeaderLine,
    /// A header value holds a control character (other than HT and folding).
    #[error("invalid header value")]
    InvalidHeaderValue,
    /// The message holds more headers than the parser accepts.
    #[error("too many headers")]
    TooManyHeaders,
    /// The message is larger than the configured maximum.
    #[error("message too large")]
    TooLarge,

    // --- mandatory headers ------------------------------------------------------
    /// No Via header.
    #[error("missing Via")]
    MissingVia,
    /// No From header.
    #[error("missing From")]
    MissingFrom,
    /// No To header.
    #[error("missing To")]
    MissingTo,
    /// No Call-ID header.
    #[error("missing Call-ID")]
    MissingCallId,
    /// No CSeq header.
    #[error("missing CSeq")]
    MissingCSeq,
    /// A header that may appear once appears more than once (e.g. two CSeq).
    #[error("duplicate header")]
    DuplicateHeader,

    // --- typed values -----------------------------------------------------------
    /// A URI is malformed.
    #[error("invalid URI")]
    InvalidUri,
    /// A host (domain, IPv4 or `[IPv6]`) is malformed.
    #[error("invalid host")]
    InvalidHost,
    /// A port is not a number in 0..=65535.
    #[error("invalid port")]
    InvalidPort,
    /// A parameter list (`;name=value`) is malformed.
    #[error("invalid parameter")]
    InvalidParam,
    /// A Via value is malformed.
    #[error("invalid Via")]
    InvalidVia,
    /// A From value is malformed.
    #[error("invalid From")]
    InvalidFrom,
    /// A To value is malformed.
    #[error("invalid To")]
    InvalidTo,
    /// A name-addr or addr-spec (Contact, Route, …) is malformed.
    #[error("invalid name-addr")]
    InvalidNameAddr,
    /// A Contact value is malformed.
    #[error("invalid Contact")]
    InvalidContact,
    /// The Call-ID is empty or holds bytes not allowed in a Call-ID.
    #[error("invalid Call-ID")]
    InvalidCallId,
    /// CSeq is not `number method`, or the number exceeds 2^31 - 1.
    #[error("invalid CSeq")]
    InvalidCSeq,
    /// The CSeq method differs from the Request-Line method.
    #[error("CSeq method mismatch")]
    CSeqMethodMismatch,
    /// Max-Forwards is not a number in 0..=255.
    #[error("invalid Max-Forwards")]
    InvalidMaxForwards,
    /// Expires (header or parameter) is not a number.
    #[error("invalid Expires")]
    InvalidExpires,
    /// Content-Length is not a number, or disagrees with the bytes present.
    #[error("bad Content-Length")]
    BadContentLength,
    /// A stream (TCP/TLS) message has no Content-Length (RFC 3261 §18.3).
    #[error("missing Content-Length")]
    MissingContentLength,
    /// Content-Type is not `type/subtype` with parameters.
    #[error("invalid Content-Type")]
    InvalidContentType,
    /// An option-tag list (Require, Supported, …) is malformed.
    #[error("invalid option tag")]
    InvalidOptionTag,
    /// Authorization / WWW-Authenticate and friends are malformed.
    #[error("invalid auth header")]
    InvalidAuth,
    /// A `q` value is not in 0..=1 with at most three decimals.
    #[error("invalid q-value")]
    InvalidQValue,
}

impl ParseError {
    /// A short text for a `400` reason phrase (`400 Bad Request - invalid CSeq`
    /// style answers are what Kamailio and OpenSIPS operators expect).
    pub fn reason(&self) -> &'static str {
        match self {
            ParseError::Incomplete => "Incomplete Message",
            ParseError::Empty => "Empty Message",
            ParseError::InvalidStartLine => "Bad Start Line",
            ParseError::InvalidMethod => "Bad Method",
            ParseError::InvalidRequestUri => "Bad Request-URI",
            ParseError::BadVersion => "Bad SIP Version",
            ParseError::InvalidStatusCode => "Bad Status Code",
            ParseError::InvalidReasonPhrase => "Bad Reason Phrase",
            ParseError::InvalidHeaderLine => "Bad Header Line",
            ParseError::InvalidHeaderValue => "Bad Header Value",
            ParseError::TooManyHeaders => "Too Many Headers",
            ParseError::TooLarge => "Message Too Large",
            ParseError::MissingVia => "Missing Via",
            ParseError::MissingFrom => "Missing From",
            ParseError::MissingTo => "Missing To",
            ParseError::MissingCallId => "Missing Call-ID",
            ParseError::MissingCSeq => "Missing CSeq",
            ParseError::DuplicateHeader => "Duplicate Header",
            ParseError::InvalidUri => "Bad URI",
            ParseError::InvalidHost => "Bad Host",
            ParseError::InvalidPort => "Bad Port",
            ParseError::InvalidParam => "Bad Parameter",
            ParseError::InvalidVia => "Bad Via",
            ParseError::InvalidFrom => "Bad From",
            ParseError::InvalidTo => "Bad To",
            ParseError::InvalidNameAddr => "Bad Address",
            ParseError::InvalidContact => "Bad Contact",
            ParseError::InvalidCallId => "Bad Call-ID",
            ParseError::InvalidCSeq => "Bad CSeq",
            ParseError::CSeqMethodMismatch => "CSeq Method Mismatch",
            ParseError::InvalidMaxForwards => "Bad Max-Forwards",
            ParseError::InvalidExpires => "Bad Expires",
            ParseError::BadContentLength => "Bad Content-Length",
            ParseError::MissingContentLength => "Missing Content-Length",
            ParseError::InvalidContentType => "Bad Content-Type",
            ParseError::InvalidOptionTag => "Bad Option Tag",
            ParseError::InvalidAuth => "Bad Authorization",
            ParseError::InvalidQValue => "Bad q-value",
        }
    }
}
