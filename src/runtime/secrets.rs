//! Secrets kept in `--data-dir` across restarts: read at start, or made and written
//! once (readable by the owner only, renamed into place so a crash never leaves half
//! a key). The auth and TLS code decide what a secret is; this module owns the files.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::auth::nonce::{decode_secret, NonceSecret, SecretError};

/// The nonce secret kept in `path` (64 hex digits and an optional newline), or a new
/// random one written there when the file does not exist, so that nonces issued
/// before a restart stay valid after it. Missing parent directories are made.
pub(crate) fn nonce_secret(path: &Path) -> Result<NonceSecret, SecretError> {
    let io_err = |source| SecretError::Io {
        path: path.to_path_buf(),
        source,
    };
    match std::fs::read(path) {
        Ok(text) => {
            return decode_secret(&text).ok_or_else(|| SecretError::Corrupt {
                path: path.to_path_buf(),
            })
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(e)),
    }
    let secret = NonceSecret::generate()?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io_err)?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    write_private(&tmp, &secret.encode()).map_err(io_err)?;
    std::fs::rename(&tmp, path).map_err(io_err)?;
    Ok(secret)
}

/// Creates (or truncates) `path` readable by its owner only, and syncs it.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    // `mode` only applies to a file this call creates; a left-over file keeps its
    // old permissions, so set them explicitly.
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::nonce::{NonceCheck, NonceIssuer, SECRET_LEN};

    const REALM: &[u8] = b"example.com";

    fn temp_path(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("coresip-nonce-test-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir.join("sub").join("nonce.key")
    }

    #[test]
    fn secret_file_is_created_private_and_reloaded() {
        let path = temp_path("create");
        let a = nonce_secret(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let b = nonce_secret(&path).unwrap();
        assert_eq!(a.encode(), b.encode());
        // A nonce issued before the "restart" verifies after it.
        let n = NonceIssuer::new(&a, 300).issue(1_000, REALM, 0);
        assert!(matches!(
            NonceIssuer::new(&b, 300).verify(1_000, REALM, n.as_bytes()),
            NonceCheck::Fresh(_)
        ));
        let _ = std::fs::remove_dir_all(path.parent().unwrap().parent().unwrap());
    }

    #[test]
    fn corrupt_secret_file_names_the_path() {
        let path = temp_path("corrupt");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, b"not hex at all\n").unwrap();
        let err = nonce_secret(&path).unwrap_err();
        assert!(matches!(err, SecretError::Corrupt { .. }));
        let shown = err.to_string();
        assert!(shown.contains(&path.display().to_string()), "{shown}");
        // Truncated: one digit short.
        std::fs::write(&path, [b'a'; SECRET_LEN * 2 - 1]).unwrap();
        assert!(matches!(
            nonce_secret(&path),
            Err(SecretError::Corrupt { .. })
        ));
        let _ = std::fs::remove_dir_all(path.parent().unwrap().parent().unwrap());
    }
}
