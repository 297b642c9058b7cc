//! The authenticator end to end: challenge → a phone's answer → verdict.

use super::digest::{ha1, Hash};
use super::*;
use crate::sip::Challenge;

const REALM: &str = "example.com";
const T0: u64 = 1_700_000_000;

fn users() -> Arc<UserStore> {
    let md5_only = ha1(Hash::Md5, b"carol", REALM.as_bytes(), b"carol-pw");
    let text = format!(
        "alice:alice-pw\nbob:bob-pw\ncarol:{REALM}:{}\n",
        md5_only.as_str()
    );
    Arc::new(UserStore::parse(text.as_bytes()).unwrap())
}

fn auth_with(config: AuthConfig) -> Authenticator {
    Authenticator::new(users(), &NonceSecret::from_bytes([42; 32]), config)
}

/// SHA-256 offered first, then MD5: most tests here exercise both algorithms;
/// the default (MD5 alone) has tests of its own.
fn test_config() -> AuthConfig {
    AuthConfig {
        algorithms: "sha-256,md5".parse().unwrap(),
        ..AuthConfig::default()
    }
}

fn auth() -> Authenticator {
    auth_with(test_config())
}

/// What a phone takes from one challenge header.
#[derive(Debug, Clone)]
struct Offer {
    realm: String,
    nonce: String,
    algorithm: String,
    stale: bool,
}

fn offers(ch: &Challenges) -> Vec<Offer> {
    ch.values()
        .map(|v| {
            let c = Challenge::parse(v).unwrap();
            assert!(c.is_digest());
            assert!(c.offers_qop(b"auth"));
            let s = |b: Option<&[u8]>| String::from_utf8(b.unwrap().to_vec()).unwrap();
            Offer {
                realm: s(c.realm()),
                nonce: s(c.nonce()),
                algorithm: s(c.algorithm()),
                stale: c.stale(),
            }
        })
        .collect()
}

/// The request a phone sends, with `header` (if any) as its only auth header.
fn request(method: &str, ruri: &str, header: Option<(&str, String)>) -> String {
    let mut m = format!(
        "{method} {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK1\r\n\
From: <sip:alice@example.com>;tag=1\r\nTo: <sip:alice@example.com>\r\nCall-ID: c1\r\n\
CSeq: 1 {method}\r\nMax-Forwards: 70\r\n"
    );
    if let Some((name, value)) = header {
        m.push_str(&format!("{name}: {value}\r\n"));
    }
    m.push_str("Content-Length: 0\r\n\r\n");
    m
}

/// How a phone answers `offer`: credentials computed the RFC 7616 way.
struct Answer<'a> {
    user: &'a str,
    password: &'a str,
    method: &'a str,
    uri: &'a str,
    nc: u32,
    qop: bool,
}

impl Answer<'_> {
    fn new<'a>(user: &'a str, password: &'a str) -> Answer<'a> {
        Answer {
            user,
            password,
            method: "REGISTER",
            uri: "sip:example.com",
            nc: 1,
            qop: true,
        }
    }

    fn header(&self, offer: &Offer) -> String {
        let alg = Algorithm::from_param(Some(offer.algorithm.as_bytes())).unwrap();
        let ha1 = ha1(
            alg.hash,
            self.user.as_bytes(),
            offer.realm.as_bytes(),
            self.password.as_bytes(),
        );
        let nc = format!("{:08x}", self.nc);
        let cnonce = "0a4f113b";
        let qop = self.qop.then_some(QopAuth {
            nc: nc.as_bytes(),
            cnonce: cnonce.as_bytes(),
        });
        let resp = digest::response(
            alg,
            ha1.as_bytes(),
            offer.nonce.as_bytes(),
            qop,
            self.method.as_bytes(),
            self.uri.as_bytes(),
        )
        .unwrap();
        let mut h = format!(
            "Digest username=\"{}\", realm=\"{}\", nonce=\"{}\", uri=\"{}\", response=\"{}\", algorithm={}",
            self.user, offer.realm, offer.nonce, self.uri, resp.as_str(), offer.algorithm
        );
        if self.qop {
            h.push_str(&format!(", qop=auth, nc={nc}, cnonce=\"{cnonce}\""));
        }
        h
    }
}

fn check<'a>(a: &Authenticator, now: u64, msg: &'a str, kind: AuthKind) -> AuthOutcome<'a> {
    let m = Message::parse(msg.as_bytes()).unwrap();
    a.check(now, &m, kind, REALM.as_bytes())
}

/// A REGISTER answering `offer`, checked at `now`.
fn answer(a: &Authenticator, now: u64, offer: &Offer, ans: &Answer<'_>) -> AuthOutcome<'static> {
    let msg = request(
        ans.method,
        "sip:example.com",
        Some(("Authorization", ans.header(offer))),
    );
    let msg: &'static str = Box::leak(msg.into_boxed_str());
    check(a, now, msg, AuthKind::Www)
}

fn first_offer(a: &Authenticator, now: u64, state: ChallengeState) -> Offer {
    offers(&a.challenge(now, REALM.as_bytes(), AuthKind::Www, state)).remove(0)
}

fn authorized(user: &str) -> AuthOutcome<'_> {
    AuthOutcome::Authorized {
        user: user.as_bytes(),
    }
}

fn challenge(stale: bool, failures: u8) -> AuthOutcome<'static> {
    AuthOutcome::Challenge(ChallengeState {
        stale,
        failures,
        only: None,
    })
}

#[test]
fn request_without_credentials_is_challenged() {
    let a = auth();
    let msg = request("REGISTER", "sip:example.com", None);
    assert_eq!(check(&a, T0, &msg, AuthKind::Www), challenge(false, 0));
}

#[test]
fn challenge_offers_sha256_then_md5_with_one_nonce() {
    // RFC 8760 §2.4 / RFC 7616 §3.7: several challenges, preferred first.
    let ch = auth().challenge(
        T0,
        REALM.as_bytes(),
        AuthKind::Www,
        ChallengeState::default(),
    );
    assert_eq!(ch.status(), 401);
    assert_eq!(ch.reason(), b"Unauthorized");
    let o = offers(&ch);
    assert_eq!(o.len(), 2);
    assert_eq!(o[0].algorithm, "SHA-256");
    assert_eq!(o[1].algorithm, "MD5");
    assert_eq!(o[0].nonce, o[1].nonce);
    assert!(o.iter().all(|o| o.realm == REALM && !o.stale));
    let headers: Vec<_> = ch.headers().collect();
    assert!(headers.iter().all(|(n, _)| *n == "WWW-Authenticate"));
    assert_eq!(
        headers[1].1,
        format!(
            "Digest realm=\"example.com\", nonce=\"{}\", algorithm=MD5, qop=\"auth\"",
            o[1].nonce
        )
        .as_bytes()
    );
}

#[test]
fn default_challenge_offers_md5_alone() {
    // Stock phones answer the first challenge, and libre 1.x (baresip 1.0) fails
    // on a 401 with any non-MD5 challenge in it: MD5 alone by default, as Kamailio.
    let a = auth_with(AuthConfig::default());
    let ch = a.challenge(
        T0,
        REALM.as_bytes(),
        AuthKind::Www,
        ChallengeState::default(),
    );
    let o = offers(&ch);
    assert_eq!(o.len(), 1);
    assert_eq!(o[0].algorithm, "MD5");
    let alice = Answer::new("alice", "alice-pw");
    assert_eq!(answer(&a, T0 + 1, &o[0], &alice), authorized("alice"));
    // SHA-256 is not accepted unless configured: a new challenge.
    let sha = Offer {
        algorithm: "SHA-256".into(),
        ..o[0].clone()
    };
    assert_eq!(
        answer(&a, T0 + 1, &sha, &Answer { nc: 2, ..alice }),
        challenge(false, 0)
    );
}

#[test]
fn md5_first_then_sha256_when_configured() {
    let a = auth_with(AuthConfig {
        algorithms: "md5,sha-256".parse().unwrap(),
        ..test_config()
    });
    let o = offers(&a.challenge(
        T0,
        REALM.as_bytes(),
        AuthKind::Www,
        ChallengeState::default(),
    ));
    assert_eq!(o.len(), 2);
    assert_eq!(o[0].algorithm, "MD5");
    assert_eq!(o[1].algorithm, "SHA-256");
    // One nonce for both: the second answer takes the next nonce-count.
    for (nc, offer) in (1..).zip(&o) {
        let ans = Answer {
            nc,
            ..Answer::new("alice", "alice-pw")
        };
        assert_eq!(
            answer(&a, T0 + 1, offer, &ans),
            authorized("alice"),
            "{}",
            offer.algorithm
        );
    }
}

#[test]
fn configured_order_and_set_are_the_offer() {
    let sha_only = auth_with(AuthConfig {
        algorithms: "SHA-256".parse().unwrap(),
        ..test_config()
    });
    let o = offers(&sha_only.challenge(
        T0,
        REALM.as_bytes(),
        AuthKind::Www,
        ChallengeState::default(),
    ));
    assert_eq!(o.len(), 1);
    assert_eq!(o[0].algorithm, "SHA-256");
    // carol's MD5 HA1 cannot be verified with the one algorithm offered.
    let carol = Answer::new("carol", "carol-pw");
    assert_eq!(
        answer(&sha_only, T0, &o[0], &carol),
        AuthOutcome::Challenge(ChallengeState {
            failures: 1,
            ..ChallengeState::default()
        })
    );
}

#[test]
fn algorithms_list_parses_in_order() {
    let a: Algorithms = "md5, SHA-256".parse().unwrap();
    assert_eq!(a.iter().collect::<Vec<_>>(), [Hash::Md5, Hash::Sha256]);
    assert_eq!(a.to_string(), "md5,sha-256");
    let b: Algorithms = "sha256".parse().unwrap();
    assert_eq!(b.iter().collect::<Vec<_>>(), [Hash::Sha256]);
    assert_eq!(b.set(), Hashes::NONE.with(Hash::Sha256));
    assert_eq!("".parse::<Algorithms>(), Err(AlgorithmsError::Empty));
    assert!(matches!(
        "md5,sha-512".parse::<Algorithms>(),
        Err(AlgorithmsError::Unknown(n)) if n == "sha-512"
    ));
    assert!(matches!(
        "md5,MD5".parse::<Algorithms>(),
        Err(AlgorithmsError::Duplicate(_))
    ));
    assert_eq!(Algorithms::default(), "md5".parse().unwrap());
}

#[test]
fn proxy_challenge_uses_407_and_proxy_authenticate() {
    let ch = auth().challenge(
        T0,
        REALM.as_bytes(),
        AuthKind::Proxy,
        ChallengeState::default(),
    );
    assert_eq!(ch.status(), 407);
    assert_eq!(ch.reason(), b"Proxy Authentication Required");
    assert!(ch.headers().all(|(n, _)| n == "Proxy-Authenticate"));
}

#[test]
fn stale_challenge_says_stale_true() {
    let a = auth();
    let state = ChallengeState {
        stale: true,
        ..Default::default()
    };
    assert!(first_offer(&a, T0, state).stale);
}

#[test]
fn challenge_escapes_the_realm() {
    let a = auth();
    let ch = a.challenge(T0, br#"a"b\c"#, AuthKind::Www, ChallengeState::default());
    let v = ch.values().next().unwrap();
    assert!(
        v.starts_with(br#"Digest realm="a\"b\\c", "#),
        "{}",
        String::from_utf8_lossy(v)
    );
    assert!(Challenge::parse(v).is_ok());
}

#[test]
fn challenge_config_limits_the_algorithms() {
    let a = auth_with(AuthConfig {
        algorithms: Algorithms::only(Hash::Md5),
        ..test_config()
    });
    let ch = a.challenge(
        T0,
        REALM.as_bytes(),
        AuthKind::Www,
        ChallengeState::default(),
    );
    let o = offers(&ch);
    assert_eq!(o.len(), 1);
    assert_eq!(o[0].algorithm, "MD5");
}

#[test]
fn round_trip_sha256() {
    let a = auth();
    let offer = first_offer(&a, T0, ChallengeState::default());
    assert_eq!(offer.algorithm, "SHA-256");
    assert_eq!(
        answer(&a, T0 + 1, &offer, &Answer::new("alice", "alice-pw")),
        authorized("alice")
    );
}

#[test]
fn round_trip_md5() {
    let a = auth();
    let ch = a.challenge(
        T0,
        REALM.as_bytes(),
        AuthKind::Www,
        ChallengeState::default(),
    );
    let md5 = offers(&ch).remove(1);
    assert_eq!(
        answer(&a, T0, &md5, &Answer::new("bob", "bob-pw")),
        authorized("bob")
    );
}

#[test]
fn round_trip_proxy_authorization_for_invite() {
    let a = auth();
    let ch = a.challenge(
        T0,
        REALM.as_bytes(),
        AuthKind::Proxy,
        ChallengeState::default(),
    );
    let offer = offers(&ch).remove(0);
    let ans = Answer {
        method: "INVITE",
        uri: "sip:bob@example.com",
        ..Answer::new("alice", "alice-pw")
    };
    let msg = request(
        "INVITE",
        "sip:bob@example.com",
        Some(("Proxy-Authorization", ans.header(&offer))),
    );
    assert_eq!(check(&a, T0, &msg, AuthKind::Proxy), authorized("alice"));
    // The same credentials in Authorization do not answer a proxy challenge.
    let msg = request(
        "INVITE",
        "sip:bob@example.com",
        Some(("Authorization", ans.header(&offer))),
    );
    assert_eq!(check(&a, T0, &msg, AuthKind::Proxy), challenge(false, 0));
}

#[test]
fn response_covers_the_method() {
    let a = auth();
    let offer = first_offer(&a, T0, ChallengeState::default());
    // Computed for INVITE, sent on a REGISTER.
    let header = Answer {
        method: "INVITE",
        ..Answer::new("alice", "alice-pw")
    }
    .header(&offer);
    let msg = request(
        "REGISTER",
        "sip:example.com",
        Some(("Authorization", header)),
    );
    assert_eq!(check(&a, T0, &msg, AuthKind::Www), challenge(false, 1));
}

#[test]
fn rfc2069_credentials_without_qop() {
    let offer = first_offer(&auth(), T0, ChallengeState::default());
    let ans = Answer {
        qop: false,
        ..Answer::new("alice", "alice-pw")
    };
    assert_eq!(answer(&auth(), T0, &offer, &ans), authorized("alice"));
    let strict = auth_with(AuthConfig {
        allow_rfc2069: false,
        ..test_config()
    });
    assert_eq!(
        answer(&strict, T0, &offer, &ans),
        AuthOutcome::BadRequest(BadCredentials::QopRequired)
    );
}

#[test]
fn expired_nonce_with_right_password_is_stale() {
    let a = auth();
    let offer = first_offer(&a, T0, ChallengeState::default());
    let ans = Answer::new("alice", "alice-pw");
    assert_eq!(answer(&a, T0 + 300, &offer, &ans), authorized("alice"));
    let ans = Answer { nc: 2, ..ans };
    assert_eq!(answer(&a, T0 + 301, &offer, &ans), challenge(true, 0));
}

#[test]
fn expired_nonce_with_wrong_password_is_not_stale() {
    // RFC 7616 §3.3: stale=true only when the digest itself is valid.
    let a = auth();
    let offer = first_offer(&a, T0, ChallengeState::default());
    assert_eq!(
        answer(&a, T0 + 1_000, &offer, &Answer::new("alice", "wrong")),
        challenge(false, 1)
    );
}

#[test]
fn tampered_nonce_is_never_authorized() {
    let a = auth();
    let mut offer = first_offer(&a, T0, ChallengeState::default());
    // Pretend it was issued later, to dodge expiry: the MAC no longer matches.
    let mut n = offer.nonce.into_bytes();
    n[15] = if n[15] == b'f' { b'e' } else { b'f' };
    offer.nonce = String::from_utf8(n).unwrap();
    // A valid digest over the forged nonce proves the password: stale=true
    // (RFC 7616 §3.3 "the nonce is invalid but with a valid digest").
    assert_eq!(
        answer(&a, T0, &offer, &Answer::new("alice", "alice-pw")),
        challenge(true, 0)
    );
    // Otherwise a first challenge: the forged nonce's failure count is void.
    assert_eq!(
        answer(&a, T0, &offer, &Answer::new("alice", "wrong")),
        challenge(false, 0)
    );
    assert_eq!(
        answer(&a, T0, &offer, &Answer::new("mallory", "x")),
        challenge(false, 0)
    );
}

#[test]
fn failure_count_of_a_forged_nonce_is_ignored() {
    // A nonce claiming many failures, but not ours: never Forbidden.
    let other = Authenticator::new(
        users(),
        &NonceSecret::from_bytes([1; 32]),
        AuthConfig::default(),
    );
    let offer = first_offer(
        &other,
        T0,
        ChallengeState {
            failures: 9,
            ..Default::default()
        },
    );
    assert_eq!(
        answer(&auth(), T0, &offer, &Answer::new("alice", "wrong")),
        challenge(false, 0)
    );
}

#[test]
fn nonce_from_a_lost_secret_is_stale() {
    // The secret was not persisted and the process restarted.
    let other = Authenticator::new(
        users(),
        &NonceSecret::from_bytes([1; 32]),
        AuthConfig::default(),
    );
    let offer = first_offer(&other, T0, ChallengeState::default());
    assert_eq!(
        answer(&auth(), T0, &offer, &Answer::new("alice", "alice-pw")),
        challenge(true, 0)
    );
}

#[test]
fn replayed_nonce_count_is_refused() {
    let a = auth();
    let offer = first_offer(&a, T0, ChallengeState::default());
    let ans = Answer::new("alice", "alice-pw");
    assert_eq!(answer(&a, T0, &offer, &ans), authorized("alice"));
    // The same request again: a replay. The client knows the password, so it is
    // sent on to a new nonce with stale=true.
    assert_eq!(answer(&a, T0 + 1, &offer, &ans), challenge(true, 0));
    // A lower count too; a higher one is the client going on.
    let ans = Answer { nc: 5, ..ans };
    assert_eq!(answer(&a, T0 + 2, &offer, &ans), authorized("alice"));
    let ans = Answer { nc: 4, ..ans };
    assert_eq!(answer(&a, T0 + 3, &offer, &ans), challenge(true, 0));
}

#[test]
fn wrong_password_is_rechallenged_then_forbidden() {
    let a = auth();
    let bad = Answer::new("alice", "wrong");
    let offer = first_offer(&a, T0, ChallengeState::default());
    let AuthOutcome::Challenge(state) = answer(&a, T0, &offer, &bad) else {
        panic!("expected a challenge");
    };
    assert_eq!(
        state,
        ChallengeState {
            stale: false,
            failures: 1,
            only: None
        }
    );
    let offer = first_offer(&a, T0, state);
    let AuthOutcome::Challenge(state) = answer(&a, T0, &offer, &bad) else {
        panic!("expected a challenge");
    };
    assert_eq!(state.failures, 2);
    let offer = first_offer(&a, T0, state);
    assert_eq!(answer(&a, T0, &offer, &bad), AuthOutcome::Forbidden);
    // The right password on the last nonce still works.
    assert_eq!(
        answer(&a, T0, &offer, &Answer::new("alice", "alice-pw")),
        authorized("alice")
    );
}

#[test]
fn no_rechallenges_means_forbidden_at_once() {
    let a = auth_with(AuthConfig {
        max_rechallenges: 0,
        ..test_config()
    });
    let offer = first_offer(&a, T0, ChallengeState::default());
    assert_eq!(
        answer(&a, T0, &offer, &Answer::new("alice", "wrong")),
        AuthOutcome::Forbidden
    );
}

#[test]
fn unknown_user_is_answered_like_a_wrong_password() {
    let a = auth();
    let offer = first_offer(&a, T0, ChallengeState::default());
    assert_eq!(
        answer(&a, T0, &offer, &Answer::new("mallory", "x")),
        challenge(false, 1)
    );
    let offer = first_offer(
        &a,
        T0,
        ChallengeState {
            failures: 2,
            ..Default::default()
        },
    );
    assert_eq!(
        answer(&a, T0, &offer, &Answer::new("mallory", "x")),
        AuthOutcome::Forbidden
    );
}

#[test]
fn user_with_md5_ha1_only_is_offered_md5() {
    let a = auth();
    let offer = first_offer(&a, T0, ChallengeState::default());
    assert_eq!(offer.algorithm, "SHA-256");
    let carol = Answer::new("carol", "carol-pw");
    let AuthOutcome::Challenge(state) = answer(&a, T0, &offer, &carol) else {
        panic!("expected a challenge");
    };
    assert_eq!(state.only, Some(Hashes::NONE.with(Hash::Md5)));
    assert_eq!(state.failures, 0);
    let ch = a.challenge(T0, REALM.as_bytes(), AuthKind::Www, state);
    let o = offers(&ch);
    assert_eq!(o.len(), 1);
    assert_eq!(o[0].algorithm, "MD5");
    assert_eq!(answer(&a, T0, &o[0], &carol), authorized("carol"));
}

#[test]
fn algorithm_not_offered_gets_a_challenge() {
    let a = auth();
    for alg in ["MD5-sess", "SHA-512-256", "SHA-256-sess"] {
        let offer = first_offer(&a, T0, ChallengeState::default());
        let header = Answer::new("alice", "alice-pw")
            .header(&Offer {
                algorithm: "SHA-256".into(),
                ..offer
            })
            .replace("algorithm=SHA-256", &format!("algorithm={alg}"));
        let msg = request(
            "REGISTER",
            "sip:example.com",
            Some(("Authorization", header)),
        );
        assert_eq!(
            check(&a, T0, &msg, AuthKind::Www),
            challenge(false, 0),
            "{alg}"
        );
    }
    let md5_only = auth_with(AuthConfig {
        algorithms: Algorithms::only(Hash::Md5),
        ..test_config()
    });
    let offer = Offer {
        algorithm: "SHA-256".into(),
        ..first_offer(&md5_only, T0, ChallengeState::default())
    };
    assert_eq!(
        answer(&md5_only, T0, &offer, &Answer::new("alice", "alice-pw")),
        challenge(false, 0)
    );
}

#[test]
fn absent_algorithm_means_md5() {
    let a = auth();
    let ch = a.challenge(
        T0,
        REALM.as_bytes(),
        AuthKind::Www,
        ChallengeState::default(),
    );
    let md5 = offers(&ch).remove(1);
    let header = Answer::new("alice", "alice-pw")
        .header(&md5)
        .replace(", algorithm=MD5", "");
    let msg = request(
        "REGISTER",
        "sip:example.com",
        Some(("Authorization", header)),
    );
    assert_eq!(check(&a, T0, &msg, AuthKind::Www), authorized("alice"));
}

#[test]
fn uri_must_designate_the_request_uri() {
    let a = auth();
    let offer = first_offer(&a, T0, ChallengeState::default());
    let ans = Answer {
        uri: "sip:evil.example.org",
        ..Answer::new("alice", "alice-pw")
    };
    assert_eq!(
        answer(&a, T0, &offer, &ans),
        AuthOutcome::BadRequest(BadCredentials::UriMismatch)
    );
    let lax = auth_with(AuthConfig {
        check_uri: false,
        ..test_config()
    });
    assert_eq!(answer(&lax, T0, &offer, &ans), authorized("alice"));
}

#[test]
fn equivalent_uri_is_accepted() {
    // RFC 3261 §19.1.4: host case does not matter; the hash covers `uri` as sent.
    let a = auth();
    let offer = first_offer(&a, T0, ChallengeState::default());
    let ans = Answer {
        uri: "sip:EXAMPLE.com",
        ..Answer::new("alice", "alice-pw")
    };
    assert_eq!(answer(&a, T0, &offer, &ans), authorized("alice"));
}

#[test]
fn credentials_for_another_realm_are_ignored() {
    let a = auth();
    let mut offer = first_offer(&a, T0, ChallengeState::default());
    offer.realm = "other.org".into();
    assert_eq!(
        answer(&a, T0, &offer, &Answer::new("alice", "alice-pw")),
        challenge(false, 0)
    );
}

#[test]
fn our_credentials_are_found_among_others() {
    // RFC 3261 §22.3: each proxy looks for the Proxy-Authorization of its realm.
    let a = auth();
    let offer = first_offer(&a, T0, ChallengeState::default());
    let ours = Answer::new("alice", "alice-pw").header(&offer);
    let msg = format!(
        "REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK2\r\n\
Authorization: Bearer abc.def\r\n\
Authorization: Digest username=\"x\", realm=\"upstream.net\", nonce=\"n\", uri=\"sip:example.com\", response=\"00\"\r\n\
Authorization: {ours}\r\nContent-Length: 0\r\n\r\n"
    );
    assert_eq!(check(&a, T0, &msg, AuthKind::Www), authorized("alice"));
}

#[test]
fn malformed_credentials_are_a_bad_request() {
    let a = auth();
    let msg = request(
        "REGISTER",
        "sip:example.com",
        Some(("Authorization", "Digest username=\"a\", nc=zz".into())),
    );
    assert_eq!(
        check(&a, T0, &msg, AuthKind::Www),
        AuthOutcome::BadRequest(BadCredentials::Malformed(ParseError::InvalidAuth))
    );
}

#[test]
fn missing_parameters_are_a_bad_request() {
    let a = auth();
    let offer = first_offer(&a, T0, ChallengeState::default());
    let full = Answer::new("alice", "alice-pw").header(&offer);
    let params = [
        "username=\"alice\", ",
        &format!("nonce=\"{}\", ", offer.nonce),
        "uri=\"sip:example.com\", ",
        ", nc=00000001",
        ", cnonce=\"0a4f113b\"",
    ];
    for p in params {
        assert!(full.contains(p), "{p}");
        let msg = request(
            "REGISTER",
            "sip:example.com",
            Some(("Authorization", full.replace(p, ""))),
        );
        assert_eq!(
            check(&a, T0, &msg, AuthKind::Www),
            AuthOutcome::BadRequest(BadCredentials::MissingParam),
            "without {p}"
        );
    }
    let start = full.find("response=").unwrap();
    let end = start + full[start..].find(", ").unwrap() + 2;
    let without_response = format!("{}{}", &full[..start], &full[end..]);
    let msg = request(
        "REGISTER",
        "sip:example.com",
        Some(("Authorization", without_response)),
    );
    assert_eq!(
        check(&a, T0, &msg, AuthKind::Www),
        AuthOutcome::BadRequest(BadCredentials::MissingParam)
    );
}

#[test]
fn qop_auth_int_is_not_accepted() {
    let a = auth();
    let offer = first_offer(&a, T0, ChallengeState::default());
    let header = Answer::new("alice", "alice-pw")
        .header(&offer)
        .replace("qop=auth", "qop=auth-int");
    let msg = request(
        "REGISTER",
        "sip:example.com",
        Some(("Authorization", header)),
    );
    assert_eq!(
        check(&a, T0, &msg, AuthKind::Www),
        AuthOutcome::BadRequest(BadCredentials::UnsupportedQop)
    );
}

#[test]
fn userhash_is_not_supported() {
    let a = auth();
    let offer = first_offer(&a, T0, ChallengeState::default());
    let header = Answer::new("alice", "alice-pw").header(&offer) + ", userhash=true";
    let msg = request(
        "REGISTER",
        "sip:example.com",
        Some(("Authorization", header)),
    );
    assert_eq!(check(&a, T0, &msg, AuthKind::Www), challenge(false, 1));
}

#[test]
fn uppercase_response_hex_is_accepted() {
    let a = auth();
    let offer = first_offer(&a, T0, ChallengeState::default());
    let header = Answer::new("alice", "alice-pw").header(&offer);
    let start = header.find("response=\"").unwrap() + 10;
    let end = start + header[start..].find('"').unwrap();
    let header = format!(
        "{}{}{}",
        &header[..start],
        header[start..end].to_ascii_uppercase(),
        &header[end..]
    );
    let msg = request(
        "REGISTER",
        "sip:example.com",
        Some(("Authorization", header)),
    );
    assert_eq!(check(&a, T0, &msg, AuthKind::Www), authorized("alice"));
}

#[test]
fn responses_are_not_checked() {
    let a = auth();
    let msg = "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK3\r\nContent-Length: 0\r\n\r\n";
    assert_eq!(
        check(&a, T0, msg, AuthKind::Www),
        AuthOutcome::BadRequest(BadCredentials::NotARequest)
    );
}

#[test]
fn kind_and_challengeable_methods() {
    assert_eq!(AuthKind::for_method(Method::Register), AuthKind::Www);
    assert_eq!(AuthKind::for_method(Method::Invite), AuthKind::Proxy);
    assert_eq!(AuthKind::for_method(Method::Message), AuthKind::Proxy);
    assert!(is_challengeable(Method::Invite));
    assert!(is_challengeable(Method::Register));
    assert!(!is_challengeable(Method::Ack));
    assert!(!is_challengeable(Method::Cancel));
}

#[test]
fn nonce_survives_a_restart_with_a_persisted_secret() {
    let dir = std::env::temp_dir().join(format!("coresip-auth-restart-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let path = dir.join("nonce.key");
    let before = Authenticator::new(
        users(),
        &crate::runtime::secrets::nonce_secret(&path).unwrap(),
        AuthConfig::default(),
    );
    let offer = first_offer(&before, T0, ChallengeState::default());
    drop(before);
    let after = Authenticator::new(
        users(),
        &crate::runtime::secrets::nonce_secret(&path).unwrap(),
        AuthConfig::default(),
    );
    assert_eq!(
        answer(&after, T0 + 10, &offer, &Answer::new("alice", "alice-pw")),
        authorized("alice")
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn challenge_goes_into_a_401_response() {
    // The integration the registrar does: write_response with the challenge
    // headers, then a phone reads them back from the response.
    let a = auth();
    let req = request("REGISTER", "sip:example.com", None);
    let req = Message::parse(req.as_bytes()).unwrap();
    let AuthOutcome::Challenge(state) = a.check(T0, &req, AuthKind::Www, REALM.as_bytes()) else {
        panic!("expected a challenge");
    };
    let ch = a.challenge(T0, REALM.as_bytes(), AuthKind::Www, state);
    let extra: Vec<_> = ch.headers().collect();
    let mut out = Vec::new();
    crate::sip::write_response(
        &req,
        ch.status(),
        ch.reason(),
        Some(b"t1"),
        &extra,
        &mut out,
    )
    .unwrap();
    let resp = Message::parse(&out).unwrap();
    assert_eq!(resp.status(), Some(401));
    let got: Vec<_> = resp.www_authenticates().map(|c| c.unwrap()).collect();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].algorithm(), Some(&b"SHA-256"[..]));
    assert_eq!(got[1].algorithm(), Some(&b"MD5"[..]));
    let offer = Offer {
        realm: REALM.into(),
        nonce: String::from_utf8(got[0].nonce().unwrap().to_vec()).unwrap(),
        algorithm: "SHA-256".into(),
        stale: false,
    };
    assert_eq!(
        answer(&a, T0 + 2, &offer, &Answer::new("alice", "alice-pw")),
        authorized("alice")
    );
}
