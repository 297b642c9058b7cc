//! Digest authentication for the registrar and the proxy (RFC 3261 §22 with
//! RFC 7616 and RFC 8760): MD5 and SHA-256, `qop=auth` (and the RFC 2069 form
//! without `qop`, which RFC 3261 §22.4 keeps servers accepting), stateless
//! nonces and nonce-count replay protection. No I/O, no clock: the caller passes
//! the time in seconds since the UNIX epoch.
//!
//! Per request:
//!
//! ```text
//! match auth.check(now, &req, kind, realm) {
//!     Authorized { user }   => go on as `user`
//!     Challenge(state)      => answer with auth.challenge(now, realm, kind, state)
//!     Forbidden             => 403
//!     BadRequest(why)       => 400
//! }
//! ```
//!
//! Failed attempts (wrong password, unknown user) are answered the way Kamailio's
//! stock configuration does, with a new challenge — but only
//! [`AuthConfig::max_rechallenges`] times in a row, then with 403, so a client
//! that keeps retrying bad credentials stops. The count travels inside the
//! (MAC-protected) nonce, so this needs no state. It is loop protection, not
//! brute-force protection: a client that sends no credentials gets a fresh
//! count. Unknown users and wrong passwords get the same answers; only a user
//! stored with an HA1 for one algorithm, answering with the other, is offered
//! that one algorithm in a new challenge (which shows that the user exists).
//!
//! `stale=true` answers credentials whose digest is right but whose nonce is
//! expired, not ours (e.g. issued before a restart with a new secret) or whose
//! nonce-count was seen before: the client retries without asking the user.

pub mod digest;
pub(crate) mod nonce;
pub(crate) mod users;

use std::cell::RefCell;
use std::sync::Arc;

use smallvec::SmallVec;

use crate::sip::text::eq_ic;
use crate::sip::{Credentials, Message, Method, ParseError, Uri};

use self::digest::{Algorithm, QopAuth};
pub use self::nonce::NonceSecret;
use self::nonce::{NcTracker, NonceCheck, NonceInfo, NonceIssuer};
use self::users::Hashes;
pub use self::users::UserStore;
pub(crate) use self::users::{Algorithms, AlgorithmsError};

/// Which pair of headers an authentication uses (RFC 3261 §22.2, §22.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthKind {
    /// User agent server / registrar: 401, `WWW-Authenticate`, `Authorization`.
    Www,
    /// Proxy: 407, `Proxy-Authenticate`, `Proxy-Authorization`.
    Proxy,
}

impl AuthKind {
    /// The kind coresip uses for `method`: 401 for REGISTER (the registrar is the
    /// UAS), 407 for everything else (the proxy).
    pub fn for_method(method: Method<'_>) -> AuthKind {
        match method {
            Method::Register => AuthKind::Www,
            _ => AuthKind::Proxy,
        }
    }

    /// The status code of the challenge.
    pub const fn status(self) -> u16 {
        match self {
            AuthKind::Www => 401,
            AuthKind::Proxy => 407,
        }
    }

    /// The reason phrase of the challenge (RFC 3261 §21.4.2, §21.4.8).
    pub const fn reason(self) -> &'static [u8] {
        match self {
            AuthKind::Www => b"Unauthorized",
            AuthKind::Proxy => b"Proxy Authentication Required",
        }
    }

    /// The header the challenge goes in.
    pub const fn challenge_header(self) -> &'static str {
        match self {
            AuthKind::Www => "WWW-Authenticate",
            AuthKind::Proxy => "Proxy-Authenticate",
        }
    }
}

/// True for requests that may be challenged: not ACK or CANCEL, which cannot be
/// resubmitted with credentials (RFC 3261 §22.1).
pub(crate) fn is_challengeable(method: Method<'_>) -> bool {
    !matches!(method, Method::Ack | Method::Cancel)
}

/// Tuning of an [`Authenticator`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthConfig {
    /// Seconds after which a nonce is stale (`--nonce-ttl`). Default 300, as
    /// Kamailio's `nonce_expire`.
    pub nonce_ttl: u64,
    /// How many times in a row failed credentials are answered with a new
    /// challenge before 403. Default 2: the first wrong attempt and one retry.
    pub max_rechallenges: u8,
    /// Accept credentials without `qop` (RFC 2069; RFC 3261 §22.4 item 8 says
    /// servers must). They have no nonce-count, so within the nonce's TTL they
    /// can be replayed. Default true.
    pub allow_rfc2069: bool,
    /// Require the credentials' `uri` to equal the Request-URI, byte for byte or
    /// by RFC 3261 §19.1.4 comparison (RFC 7616 §3.4.6). RFC 3261 §22.4 item 6
    /// allows them to differ after forwarding by a proxy in front of us; turn
    /// this off behind such a proxy. Default true.
    pub check_uri: bool,
    /// The algorithms offered, in this order, and accepted
    /// (`--digest-algorithms`). Default MD5 alone.
    pub algorithms: Algorithms,
    /// Nonces whose count is remembered at once (per shard).
    pub max_tracked_nonces: usize,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            nonce_ttl: 300,
            max_rechallenges: 2,
            allow_rfc2069: true,
            check_uri: true,
            algorithms: Algorithms::DEFAULT,
            max_tracked_nonces: 65_536,
        }
    }
}

/// What a new challenge must say. Comes out of [`Authenticator::check`] and goes
/// into [`Authenticator::challenge`]; `default()` is a first challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ChallengeState {
    /// `stale=true`: the client knew the password but its nonce expired (or its
    /// nonce-count was replayed); it retries without asking the user (RFC 7616
    /// §3.3).
    pub stale: bool,
    /// Failed attempts so far, carried in the new nonce.
    pub failures: u8,
    /// Offer only these algorithms instead of the configured ones: the user is
    /// known but can only be verified with these (an HA1 entry).
    pub only: Option<Hashes>,
}

/// Why credentials are answered with 400.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadCredentials {
    /// The message is a response, or not a request we can authenticate.
    NotARequest,
    /// An Authorization / Proxy-Authorization header does not parse.
    Malformed(ParseError),
    /// `username`, `nonce`, `uri` or `response` is missing, or with `qop` the
    /// `nc` or `cnonce` (RFC 7616 §3.4).
    MissingParam,
    /// A `qop` other than `auth`: only `auth` is offered.
    UnsupportedQop,
    /// No `qop` and [`AuthConfig::allow_rfc2069`] is off.
    QopRequired,
    /// `uri` is not the Request-URI (RFC 7616 §3.4.6).
    UriMismatch,
}

/// The verdict on a request's credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthOutcome<'a> {
    /// Valid credentials of `user` (the `username` as sent, borrowed from the
    /// message).
    Authorized {
        /// The authenticated user.
        user: &'a [u8],
    },
    /// Answer 401 / 407 with [`Authenticator::challenge`].
    Challenge(ChallengeState),
    /// Answer 403: credentials failed more than
    /// [`AuthConfig::max_rechallenges`] times in a row.
    Forbidden,
    /// Answer 400.
    BadRequest(BadCredentials),
}

/// Checks digest credentials and writes challenges. One per shard (the
/// nonce-count tracker and the nonce counter are per shard, behind `RefCell` and
/// `Cell`, so methods take `&self`); the user store is shared.
#[derive(Debug)]
pub struct Authenticator {
    users: Arc<UserStore>,
    nonces: NonceIssuer,
    nc: RefCell<NcTracker>,
    config: AuthConfig,
}

impl Authenticator {
    /// An authenticator over `users`, with nonces keyed by `secret`.
    pub fn new(users: Arc<UserStore>, secret: &NonceSecret, config: AuthConfig) -> Authenticator {
        Authenticator {
            users,
            nonces: NonceIssuer::new(secret, config.nonce_ttl),
            nc: RefCell::new(NcTracker::new(config.max_tracked_nonces, config.nonce_ttl)),
            config,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &AuthConfig {
        &self.config
    }

    /// Checks the credentials `req` carries for `realm` in the headers of `kind`,
    /// at `now` (seconds since the UNIX epoch).
    ///
    /// Credentials for other realms (other proxies' Proxy-Authorization, RFC 3261
    /// §22.3) and of other schemes are ignored. Call after transaction matching:
    /// a retransmission repeats its nonce-count and would be taken for a replay.
    pub fn check<'a>(
        &self,
        now: u64,
        req: &Message<'a>,
        kind: AuthKind,
        realm: &[u8],
    ) -> AuthOutcome<'a> {
        match self.check_inner(now, req, kind, realm) {
            Ok(user) => AuthOutcome::Authorized { user },
            Err(outcome) => outcome,
        }
    }

    fn check_inner<'a>(
        &self,
        now: u64,
        req: &Message<'a>,
        kind: AuthKind,
        realm: &[u8],
    ) -> Result<&'a [u8], AuthOutcome<'a>> {
        use AuthOutcome::{BadRequest, Challenge};
        let (Some(method), Some(request_uri)) = (req.method(), req.request_uri()) else {
            return Err(BadRequest(BadCredentials::NotARequest));
        };
        let creds = match kind {
            AuthKind::Www => ours(req.authorizations(), realm),
            AuthKind::Proxy => ours(req.proxy_authorizations(), realm),
        }
        .map_err(|e| BadRequest(BadCredentials::Malformed(e)))?;
        let Some(c) = creds else {
            return Err(Challenge(ChallengeState::default()));
        };

        let (Some(user), Some(nonce), Some(uri), Some(response)) =
            (c.username(), c.nonce(), c.uri(), c.response())
        else {
            return Err(BadRequest(BadCredentials::MissingParam));
        };
        let qop = match c.qop() {
            Some(q) if eq_ic(q, b"auth") => {
                // The hash covers nc as written; `nc()` has checked it is 8 hex.
                let (Some(nc_text), Some(nc), Some(cnonce)) =
                    (c.param("nc").map(|p| p.value), c.nc(), c.cnonce())
                else {
                    return Err(BadRequest(BadCredentials::MissingParam));
                };
                Some((
                    QopAuth {
                        nc: nc_text,
                        cnonce,
                    },
                    nc,
                ))
            }
            Some(_) => return Err(BadRequest(BadCredentials::UnsupportedQop)),
            None if self.config.allow_rfc2069 => None,
            None => return Err(BadRequest(BadCredentials::QopRequired)),
        };
        if self.config.check_uri && !same_uri(uri, request_uri) {
            return Err(BadRequest(BadCredentials::UriMismatch));
        }
        // Only what we offer: a `-sess` or unknown algorithm gets a new challenge
        // so the client can pick one of ours.
        let algorithm = match Algorithm::from_param(c.algorithm()) {
            Some(a) if !a.session && self.config.algorithms.set().contains(a.hash) => a,
            _ => return Err(Challenge(ChallengeState::default())),
        };

        // A nonce that is not ours (forged, for another realm, or from a secret
        // lost in a restart) is still checked: a valid digest for it shows the
        // client knows the password, and RFC 7616 §3.3 answers that with
        // stale=true, so phones recover without asking the user.
        let (info, usable) = match self.nonces.verify(now, realm, nonce) {
            NonceCheck::Fresh(i) => (Some(i), true),
            NonceCheck::Stale(i) => (Some(i), false),
            NonceCheck::Invalid => (None, false),
        };
        let failures = info.map_or(0, |i| i.failures);

        // userhash (RFC 7616 §3.4.4) is never offered, so such a username
        // names no user we know.
        let hashes = if c.userhash() {
            Hashes::NONE
        } else {
            self.users.hashes(user, realm)
        };
        if hashes.is_empty() {
            return Err(self.failed(info));
        }
        if !hashes.contains(algorithm.hash) {
            let offer = hashes.intersect(self.config.algorithms.set());
            if offer.is_empty() {
                return Err(self.failed(info));
            }
            return Err(Challenge(ChallengeState {
                stale: false,
                failures,
                only: Some(offer),
            }));
        }
        let expected = self.users.ha1(user, realm, algorithm.hash).and_then(|ha1| {
            digest::response(
                algorithm,
                ha1.as_bytes(),
                nonce,
                qop.map(|(q, _)| q),
                method.as_bytes(),
                uri,
            )
        });
        if !expected.is_some_and(|e| e.matches(response)) {
            return Err(self.failed(info));
        }

        // RFC 7616 §3.3: stale=true only once the response proves the password.
        let stale_challenge = Challenge(ChallengeState {
            stale: true,
            ..ChallengeState::default()
        });
        let Some(info) = info.filter(|_| usable) else {
            return Err(stale_challenge);
        };
        if let Some((_, nc)) = qop {
            // Replayed or forgotten nonce-count: the client knows the password,
            // so a stale challenge lets it go on with a new nonce.
            if self.nc.borrow_mut().check(now, &info, nc).is_err() {
                return Err(stale_challenge);
            }
        }
        Ok(user)
    }

    /// The answer to one more failed attempt with a nonce that carried
    /// `info.failures` earlier ones. With a nonce that is not ours the count is
    /// unknown: a first challenge.
    fn failed<'a>(&self, info: Option<NonceInfo>) -> AuthOutcome<'a> {
        let Some(info) = info else {
            return AuthOutcome::Challenge(ChallengeState::default());
        };
        let failures = info.failures.saturating_add(1);
        if failures > self.config.max_rechallenges {
            AuthOutcome::Forbidden
        } else {
            AuthOutcome::Challenge(ChallengeState {
                failures,
                ..ChallengeState::default()
            })
        }
    }

    /// The challenge header values for a 401 / 407 at `now`: one per algorithm,
    /// in the configured order (RFC 8760 §2.4, RFC 7616 §3.7: preferred first),
    /// all with the same new nonce and `qop="auth"` (RFC 3261 §22.4 item 8:
    /// servers MUST always send qop).
    pub fn challenge(
        &self,
        now: u64,
        realm: &[u8],
        kind: AuthKind,
        state: ChallengeState,
    ) -> Challenges {
        let nonce = self.nonces.issue(now, realm, state.failures);
        let offer = self.config.algorithms;
        // A user verifiable with fewer algorithms is offered just those, in the
        // configured order (`only` is always within the offer).
        let only = state.only.filter(|o| !o.is_empty()).unwrap_or(offer.set());
        let mut out = Challenges {
            kind,
            buf: SmallVec::new(),
            ends: [0; 2],
            count: 0,
        };
        for (slot, hash) in out
            .ends
            .iter_mut()
            .zip(offer.iter().filter(|&h| only.contains(h)))
        {
            let b = &mut out.buf;
            b.extend_from_slice(b"Digest realm=\"");
            for &c in realm {
                // quoted-pair for the two characters a quoted-string cannot hold.
                if c == b'"' || c == b'\\' {
                    b.push(b'\\');
                }
                b.push(c);
            }
            b.extend_from_slice(b"\", nonce=\"");
            b.extend_from_slice(nonce.as_bytes());
            b.extend_from_slice(b"\", algorithm=");
            b.extend_from_slice(
                Algorithm {
                    hash,
                    session: false,
                }
                .name()
                .as_bytes(),
            );
            b.extend_from_slice(b", qop=\"auth\"");
            if state.stale {
                b.extend_from_slice(b", stale=true");
            }
            *slot = b.len();
            out.count += 1;
        }
        out
    }
}

/// The first Digest credentials for `realm`; a header that does not parse is an
/// error (400), since it may be the one meant for us.
fn ours<'a>(
    all: impl Iterator<Item = Result<Credentials<'a>, ParseError>>,
    realm: &[u8],
) -> Result<Option<Credentials<'a>>, ParseError> {
    for c in all {
        let c = c?;
        if c.is_digest() && c.realm() == Some(realm) {
            return Ok(Some(c));
        }
    }
    Ok(None)
}

/// The digest `uri` designates the Request-URI: the same text, or equal by URI
/// comparison (RFC 3261 §19.1.4), as Kamailio tolerates clients that rewrite
/// case or parameter order.
fn same_uri(digest_uri: &[u8], request_uri: &[u8]) -> bool {
    digest_uri == request_uri
        || matches!(
            (Uri::parse(digest_uri), Uri::parse(request_uri)),
            (Ok(a), Ok(b)) if a.same_as(&b)
        )
}

/// The challenge header values of one 401 / 407, as made by
/// [`Authenticator::challenge`]. Short realms stay on the stack.
#[derive(Debug, Clone)]
pub struct Challenges {
    kind: AuthKind,
    buf: SmallVec<[u8; 320]>,
    ends: [usize; 2],
    count: usize,
}

impl Challenges {
    /// 401 or 407.
    pub fn status(&self) -> u16 {
        self.kind.status()
    }

    /// The reason phrase.
    pub fn reason(&self) -> &'static [u8] {
        self.kind.reason()
    }

    /// `WWW-Authenticate` or `Proxy-Authenticate`.
    pub fn header_name(&self) -> &'static str {
        self.kind.challenge_header()
    }

    /// The header values, preferred first.
    pub fn values(&self) -> impl Iterator<Item = &[u8]> + '_ {
        let mut start = 0;
        self.ends.iter().take(self.count).map(move |&end| {
            let v = self.buf.get(start..end).unwrap_or_default();
            start = end;
            v
        })
    }

    /// `(name, value)` pairs for [`crate::sip::write_response`]'s
    /// `extra_headers`.
    pub fn headers(&self) -> impl Iterator<Item = (&'static str, &[u8])> + '_ {
        let name = self.header_name();
        self.values().map(move |v| (name, v))
    }
}

#[cfg(test)]
mod tests;
