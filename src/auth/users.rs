//! The user store behind `--users FILE`.
//!
//! One entry per line; blank lines and lines starting with `#` are ignored, and
//! surrounding whitespace (and a CR of CRLF files) is trimmed:
//!
//! ```text
//! alice:secret                                  # user:password, any realm
//! bob:example.com:4b3c1f0e9e0b37d9d3c2ad5c1c9a0f2e   # user:realm:HA1, MD5
//! bob:example.com:<64 hex digits>               # user:realm:HA1, SHA-256
//! ```
//!
//! * `user:password` — valid in every realm; both MD5 and SHA-256 work, because
//!   HA1 is computed for the realm asked about. The password is everything after
//!   the first `:`, so it may contain `:` itself — except that a line of the form
//!   `user:x:<32 or 64 hex digits>` is read as `user:realm:HA1`.
//! * `user:realm:HA1` — HA1 = H(user ":" realm ":" password) in hex (RFC 7616
//!   §3.4.2): 32 digits for MD5, 64 for SHA-256. Only that algorithm can be
//!   verified for that user in that realm; give both lines to allow both. An
//!   HA1 entry wins over a password entry for the same user and realm.
//!
//! Users and realms are compared exactly (case-sensitively), as the quoted
//! strings of RFC 7616 §3.4 they are written as. The same (user, realm,
//! algorithm) twice is an error, as is a line of any other shape.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use super::digest::{ha1, Hash, HexDigest};

/// What is wrong with one line of a users file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineError {
    /// Neither `user:password` nor `user:realm:HA1`.
    Malformed,
    /// The user part is empty.
    EmptyUser,
    /// The password (or realm) part is empty.
    EmptyPassword,
    /// The user or realm holds whitespace or a `"` (neither could be written in
    /// a quoted-string by every client) or a control character.
    BadName,
    /// An earlier line already gives this user (and realm and algorithm).
    Duplicate {
        /// The earlier line.
        first: usize,
    },
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LineError::Malformed => f.write_str(
                "expected user:password or user:realm:HA1 (HA1 = 32 hex digits for MD5, 64 for SHA-256)",
            ),
            LineError::EmptyUser => f.write_str("empty user name"),
            LineError::EmptyPassword => f.write_str("empty password or realm"),
            LineError::BadName => {
                f.write_str("user and realm must not contain whitespace, '\"' or control characters")
            }
            LineError::Duplicate { first } => write!(f, "duplicate of line {first}"),
        }
    }
}

/// Why a users file could not be loaded. Its `Display` starts with the path (and
/// line), like a compiler's: `users.txt:7: expected user:password or …`.
#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    /// The file could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A line is not a valid entry.
    #[error("{}:{line}: {kind}", path.display())]
    Line {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        kind: LineError,
    },
}

/// How a user's secret is kept.
#[derive(Clone, PartialEq, Eq)]
enum Secret {
    Password(Box<[u8]>),
    /// Lowercase hex; its length tells the hash.
    Ha1(Box<[u8]>),
}

#[derive(Clone)]
struct Entry {
    /// `None` for a `user:password` line: any realm.
    realm: Option<Box<[u8]>>,
    secret: Secret,
    line: usize,
}

impl Entry {
    fn hash(&self) -> Option<Hash> {
        match &self.secret {
            Secret::Password(_) => None,
            Secret::Ha1(h) => Hash::from_hex_len(h.len()),
        }
    }
}

/// Users and their secrets, looked up by (user, realm) without allocating.
#[derive(Clone, Default)]
pub struct UserStore {
    users: HashMap<Box<[u8]>, Vec<Entry>, ahash::RandomState>,
}

impl fmt::Debug for UserStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the secrets.
        f.debug_struct("UserStore")
            .field("users", &self.users.len())
            .finish()
    }
}

impl UserStore {
    /// Reads and parses the users file at `path`.
    pub fn load(path: &Path) -> Result<UserStore, UsersError> {
        let text = std::fs::read(path).map_err(|source| UsersError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        UserStore::parse(&text).map_err(|(line, kind)| UsersError::Line {
            path: path.to_path_buf(),
            line,
            kind,
        })
    }

    /// Parses the text of a users file; an error gives the 1-based line number.
    pub fn parse(text: &[u8]) -> Result<UserStore, (usize, LineError)> {
        let mut store = UserStore::default();
        for (i, line) in text.split(|&b| b == b'\n').enumerate() {
            let n = i + 1;
            let line = line.trim_ascii();
            if line.is_empty() || line.first() == Some(&b'#') {
                continue;
            }
            let (user, entry) = parse_line(line, n).map_err(|e| (n, e))?;
            let entries = store.users.entry(user.into()).or_default();
            if let Some(first) = entries
                .iter()
                .find(|e| e.realm == entry.realm && e.hash() == entry.hash())
            {
                return Err((n, LineError::Duplicate { first: first.line }));
            }
            entries.push(entry);
        }
        Ok(store)
    }

    /// Number of distinct users.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// True when there are no users.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// HA1 of `user` in `realm` for `hash`: the stored one for that realm and
    /// hash, else one computed from the user's password. `None` when the user is
    /// unknown, or known only by an HA1 of another realm or hash.
    pub fn ha1(&self, user: &[u8], realm: &[u8], hash: Hash) -> Option<HexDigest> {
        let entries = self.users.get(user)?;
        let stored = entries.iter().find_map(|e| match &e.secret {
            Secret::Ha1(h) if e.realm.as_deref() == Some(realm) && e.hash() == Some(hash) => {
                Some(h)
            }
            _ => None,
        });
        if let Some(h) = stored {
            return HexDigest::from_hex(h);
        }
        entries.iter().find_map(|e| match &e.secret {
            Secret::Password(p) => Some(ha1(hash, user, realm, p)),
            Secret::Ha1(_) => None,
        })
    }

    /// True when `user` can authenticate in `realm` (the proxy answers 480 rather
    /// than 404 for a known user with no binding).
    pub fn knows(&self, user: &[u8], realm: &[u8]) -> bool {
        self.hashes(user, realm) != Hashes::NONE
    }

    /// The hashes `user` can be verified with in `realm` (empty when unknown).
    pub fn hashes(&self, user: &[u8], realm: &[u8]) -> Hashes {
        let mut set = Hashes::NONE;
        for e in self.users.get(user).into_iter().flatten() {
            match (&e.secret, e.hash()) {
                (Secret::Password(_), _) => set = Hashes::ALL,
                (Secret::Ha1(_), Some(h)) if e.realm.as_deref() == Some(realm) => set = set.with(h),
                _ => {}
            }
        }
        set
    }
}

/// A set of [`Hash`]es.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Hashes(u8);

impl Hashes {
    /// The empty set.
    pub const NONE: Hashes = Hashes(0);
    /// MD5 and SHA-256.
    pub const ALL: Hashes = Hashes(0b11);

    const fn bit(h: Hash) -> u8 {
        match h {
            Hash::Md5 => 1,
            Hash::Sha256 => 2,
        }
    }

    /// This set plus `h`.
    pub const fn with(self, h: Hash) -> Hashes {
        Hashes(self.0 | Hashes::bit(h))
    }

    /// True when `h` is in the set.
    pub const fn contains(self, h: Hash) -> bool {
        self.0 & Hashes::bit(h) != 0
    }

    /// The hashes in both sets.
    pub const fn intersect(self, other: Hashes) -> Hashes {
        Hashes(self.0 & other.0)
    }

    /// True for the empty set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The members, preferred first: SHA-256, then MD5 (RFC 8760 §2.4).
    pub fn iter(self) -> impl Iterator<Item = Hash> {
        [Hash::Sha256, Hash::Md5]
            .into_iter()
            .filter(move |&h| self.contains(h))
    }
}

/// The digest algorithms a challenge offers, in the order they are written
/// (`--digest-algorithms`), and the ones credentials are accepted with. RFC 7616
/// §3.7 has the server list its preferred one first. The default is MD5 alone,
/// as in Kamailio: stock phones answer the first challenge only, many know only
/// MD5, and some reject the whole response when any challenge in it names
/// another algorithm (libre 1.x, under baresip 1.0: "Function not implemented").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Algorithms {
    order: [Hash; 2],
    len: u8,
}

/// Why a `--digest-algorithms` list was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AlgorithmsError {
    /// No algorithm named.
    #[error("names no algorithm (use md5, sha-256 or both)")]
    Empty,
    /// A name other than `md5` or `sha-256`.
    #[error("unknown algorithm {0:?} (use md5 or sha-256)")]
    Unknown(String),
    /// The same algorithm twice.
    #[error("names {0:?} twice")]
    Duplicate(String),
}

impl Algorithms {
    /// MD5 alone.
    pub const DEFAULT: Algorithms = Algorithms::only(Hash::Md5);

    /// Only `h`.
    pub const fn only(h: Hash) -> Algorithms {
        Algorithms {
            order: [h, h],
            len: 1,
        }
    }

    /// The algorithms in offer order.
    pub fn iter(self) -> impl Iterator<Item = Hash> {
        self.order.into_iter().take(usize::from(self.len))
    }

    /// The algorithms as a set.
    pub fn set(self) -> Hashes {
        self.iter().fold(Hashes::NONE, Hashes::with)
    }
}

impl Default for Algorithms {
    fn default() -> Self {
        Algorithms::DEFAULT
    }
}

impl std::str::FromStr for Algorithms {
    type Err = AlgorithmsError;

    /// A comma-separated list of `md5` and `sha-256` (any case), preferred first.
    fn from_str(s: &str) -> Result<Algorithms, AlgorithmsError> {
        let mut order = [Hash::Md5; 2];
        let mut len = 0usize;
        for name in s.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let h = if name.eq_ignore_ascii_case("md5") {
                Hash::Md5
            } else if name.eq_ignore_ascii_case("sha-256") || name.eq_ignore_ascii_case("sha256") {
                Hash::Sha256
            } else {
                return Err(AlgorithmsError::Unknown(name.to_string()));
            };
            if order[..len].contains(&h) {
                return Err(AlgorithmsError::Duplicate(name.to_string()));
            }
            // Two distinct hashes exist, so a third name is a duplicate above.
            order[len] = h;
            len += 1;
        }
        if len == 0 {
            return Err(AlgorithmsError::Empty);
        }
        if len == 1 {
            order[1] = order[0];
        }
        Ok(Algorithms {
            order,
            len: len as u8,
        })
    }
}

impl fmt::Display for Algorithms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, h) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(match h {
                Hash::Md5 => "md5",
                Hash::Sha256 => "sha-256",
            })?;
        }
        Ok(())
    }
}

/// A user or realm that every client can put in a quoted-string unescaped.
fn is_name(s: &[u8]) -> bool {
    s.iter().all(|&b| b > b' ' && b != b'"' && b != 0x7f)
}

fn parse_line(line: &[u8], n: usize) -> Result<(&[u8], Entry), LineError> {
    let (user, rest) = split_colon(line).ok_or(LineError::Malformed)?;
    if user.is_empty() {
        return Err(LineError::EmptyUser);
    }
    if !is_name(user) {
        return Err(LineError::BadName);
    }
    if rest.is_empty() {
        return Err(LineError::EmptyPassword);
    }
    // user:realm:HA1 when the part after the last ':' is an HA1.
    if let Some((realm, hex)) = rsplit_colon(rest) {
        if Hash::from_hex_len(hex.len()).is_some() && hex.iter().all(u8::is_ascii_hexdigit) {
            if realm.is_empty() {
                return Err(LineError::EmptyPassword);
            }
            if !is_name(realm) {
                return Err(LineError::BadName);
            }
            return Ok((
                user,
                Entry {
                    realm: Some(realm.into()),
                    secret: Secret::Ha1(hex.to_ascii_lowercase().into()),
                    line: n,
                },
            ));
        }
    }
    Ok((
        user,
        Entry {
            realm: None,
            secret: Secret::Password(rest.into()),
            line: n,
        },
    ))
}

fn split_colon(s: &[u8]) -> Option<(&[u8], &[u8])> {
    let i = memchr::memchr(b':', s)?;
    Some((s.get(..i)?, s.get(i + 1..)?))
}

fn rsplit_colon(s: &[u8]) -> Option<(&[u8], &[u8])> {
    let i = memchr::memrchr(b':', s)?;
    Some((s.get(..i)?, s.get(i + 1..)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MD5_HA1: &str = "939e7578ed9e3c518a452acee763bce9"; // Mufasa:testrealm@host.com:Circle Of Life

    fn store(text: &str) -> UserStore {
        UserStore::parse(text.as_bytes()).unwrap()
    }

    fn err(text: &str) -> (usize, LineError) {
        UserStore::parse(text.as_bytes()).unwrap_err()
    }

    #[test]
    fn password_entry_gives_both_hashes_in_any_realm() {
        let s = store("alice:secret\n");
        for realm in [&b"a.example"[..], b"b.example"] {
            assert_eq!(
                s.ha1(b"alice", realm, Hash::Md5).unwrap().as_bytes(),
                ha1(Hash::Md5, b"alice", realm, b"secret").as_bytes()
            );
            assert_eq!(
                s.ha1(b"alice", realm, Hash::Sha256).unwrap().as_bytes(),
                ha1(Hash::Sha256, b"alice", realm, b"secret").as_bytes()
            );
            assert_eq!(s.hashes(b"alice", realm), Hashes::ALL);
        }
    }

    #[test]
    fn ha1_entry_only_for_its_realm_and_hash() {
        let s = store(&format!("Mufasa:testrealm@host.com:{MD5_HA1}\n"));
        let h = s.ha1(b"Mufasa", b"testrealm@host.com", Hash::Md5).unwrap();
        assert_eq!(h, MD5_HA1);
        assert_eq!(
            h.as_bytes(),
            ha1(
                Hash::Md5,
                b"Mufasa",
                b"testrealm@host.com",
                b"Circle Of Life"
            )
            .as_bytes()
        );
        assert!(s
            .ha1(b"Mufasa", b"testrealm@host.com", Hash::Sha256)
            .is_none());
        assert!(s.ha1(b"Mufasa", b"other", Hash::Md5).is_none());
        assert_eq!(
            s.hashes(b"Mufasa", b"testrealm@host.com"),
            Hashes::NONE.with(Hash::Md5)
        );
        assert_eq!(s.hashes(b"Mufasa", b"other"), Hashes::NONE);
    }

    #[test]
    fn uppercase_ha1_is_stored_lowercase() {
        let s = store(&format!("u:r:{}\n", MD5_HA1.to_ascii_uppercase()));
        assert_eq!(s.ha1(b"u", b"r", Hash::Md5).unwrap(), MD5_HA1);
    }

    #[test]
    fn md5_and_sha256_ha1_lines_for_one_user() {
        let sha = ha1(Hash::Sha256, b"u", b"r", b"pw");
        let md5 = ha1(Hash::Md5, b"u", b"r", b"pw");
        let s = store(&format!("u:r:{}\nu:r:{}\n", sha.as_str(), md5.as_str()));
        assert_eq!(s.len(), 1);
        assert_eq!(s.hashes(b"u", b"r"), Hashes::ALL);
        assert_eq!(
            s.ha1(b"u", b"r", Hash::Sha256).unwrap().as_bytes(),
            sha.as_bytes()
        );
        assert_eq!(
            s.ha1(b"u", b"r", Hash::Md5).unwrap().as_bytes(),
            md5.as_bytes()
        );
    }

    #[test]
    fn ha1_entry_wins_over_password_for_its_realm() {
        let s = store(&format!("u:pw\nu:r:{MD5_HA1}\n"));
        assert_eq!(s.ha1(b"u", b"r", Hash::Md5).unwrap(), MD5_HA1);
        assert_eq!(
            s.ha1(b"u", b"other", Hash::Md5).unwrap().as_bytes(),
            ha1(Hash::Md5, b"u", b"other", b"pw").as_bytes()
        );
    }

    #[test]
    fn password_may_hold_colons() {
        let s = store("u:a:b:c\n");
        assert_eq!(
            s.ha1(b"u", b"r", Hash::Md5).unwrap().as_bytes(),
            ha1(Hash::Md5, b"u", b"r", b"a:b:c").as_bytes()
        );
    }

    #[test]
    fn comments_blank_lines_whitespace_and_crlf() {
        let s = store("# users\n\n   \r\n  alice:pw  \r\n\t# bob:x\nbob:pw2");
        assert_eq!(s.len(), 2);
        assert!(s.ha1(b"alice", b"r", Hash::Md5).is_some());
        assert!(s.ha1(b"bob", b"r", Hash::Md5).is_some());
        assert!(s.ha1(b"# bob", b"r", Hash::Md5).is_none());
    }

    #[test]
    fn unknown_user() {
        let s = store("alice:pw\n");
        assert!(s.ha1(b"bob", b"r", Hash::Md5).is_none());
        assert!(s.ha1(b"Alice", b"r", Hash::Md5).is_none());
        assert_eq!(s.hashes(b"bob", b"r"), Hashes::NONE);
    }

    #[test]
    fn malformed_lines_report_their_number() {
        assert_eq!(err("a:pw\n\n# c\nnocolon\n"), (4, LineError::Malformed));
        assert_eq!(err(":pw\n"), (1, LineError::EmptyUser));
        assert_eq!(err("a:pw\nb:\n"), (2, LineError::EmptyPassword));
        assert_eq!(err(&format!("a::{MD5_HA1}")), (1, LineError::EmptyPassword));
        assert_eq!(err("a b:pw\n"), (1, LineError::BadName));
        assert_eq!(
            err(&format!("a:re\"alm:{MD5_HA1}")),
            (1, LineError::BadName)
        );
        assert_eq!(
            err("a:pw\nb:pw\na:other\n"),
            (3, LineError::Duplicate { first: 1 })
        );
        assert_eq!(
            err(&format!("a:r:{MD5_HA1}\na:r:{MD5_HA1}\n")),
            (2, LineError::Duplicate { first: 1 })
        );
    }

    fn temp_file(name: &str, text: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("coresip-users-{}-{name}", std::process::id()));
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn load_error_names_file_and_line() {
        let p = temp_file("bad.txt", "# users\nalice:pw\n\nthis line is wrong\n");
        let e = UserStore::load(&p).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "{}:4: expected user:password or user:realm:HA1 (HA1 = 32 hex digits for MD5, 64 for SHA-256)",
                p.display()
            )
        );
        assert!(matches!(
            e,
            UsersError::Line {
                line: 4,
                kind: LineError::Malformed,
                ..
            }
        ));
        let _ = std::fs::remove_file(&p);
    }

    #[test]
    fn load_missing_file_names_it() {
        let p = std::env::temp_dir().join(format!("coresip-users-{}-missing", std::process::id()));
        let e = UserStore::load(&p).unwrap_err();
        assert!(matches!(e, UsersError::Io { .. }));
        assert!(
            e.to_string().starts_with(&format!("{}: ", p.display())),
            "{e}"
        );
    }

    #[test]
    fn load_good_file() {
        let p = temp_file("good.txt", "alice:pw\n");
        assert_eq!(UserStore::load(&p).unwrap().len(), 1);
        let _ = std::fs::remove_file(&p);
    }

    #[test]
    fn shipped_example_parses() {
        let text = include_str!("../../deploy/users.example");
        let s = store(text);
        assert!(!s.is_empty());
    }

    #[test]
    fn debug_hides_secrets() {
        let s = format!("{:?}", store("alice:topsecret\n"));
        assert!(!s.contains("topsecret"), "{s}");
    }
}
