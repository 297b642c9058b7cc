//! TLS configuration (rustls with the `ring` provider, DESIGN.md §5): the server
//! certificate from `--tls-cert`/`--tls-key` or one generated on first start, and
//! the roots outbound connections verify their peers against.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use crate::config::Config;

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {what}")]
    File { path: PathBuf, what: String },
    #[error("TLS setup: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("generating a self-signed certificate: {0}")]
    Generate(String),
}

fn file_err(path: &Path, what: impl ToString) -> TlsError {
    TlsError::File {
        path: path.to_path_buf(),
        what: what.to_string(),
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// File names of the generated certificate inside `--data-dir`.
pub(crate) const GENERATED_CERT: &str = "tls-selfsigned-cert.pem";
/// File name of the generated key inside `--data-dir`.
pub(crate) const GENERATED_KEY: &str = "tls-selfsigned-key.pem";

/// The server side. Without `--tls-cert`/`--tls-key`, loads the certificate generated
/// into `--data-dir` by an earlier start, or generates one now and logs it.
pub(crate) fn server_config(cfg: &Config) -> Result<Arc<ServerConfig>, TlsError> {
    let (cert_path, key_path) = match (&cfg.tls.cert, &cfg.tls.key) {
        (Some(c), Some(k)) => (c.clone(), k.clone()),
        _ => {
            let cert = cfg.data_dir.join(GENERATED_CERT);
            let key = cfg.data_dir.join(GENERATED_KEY);
            if !cert.exists() || !key.exists() {
                generate(cfg, &cert, &key)?;
                tracing::warn!(
                    cert = %cert.display(),
                    "no --tls-cert/--tls-key given: generated a self-signed TLS certificate"
                );
            } else {
                tracing::info!(cert = %cert.display(), "using the self-signed TLS certificate");
            }
            (cert, key)
        }
    };
    let certs = CertificateDer::pem_file_iter(&cert_path)
        .map_err(|e| file_err(&cert_path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_err(&cert_path, e))?;
    if certs.is_empty() {
        return Err(file_err(&cert_path, "no certificate in the file"));
    }
    let key = PrivateKeyDer::from_pem_file(&key_path).map_err(|e| file_err(&key_path, e))?;
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    Ok(Arc::new(config))
}

fn generate(cfg: &Config, cert: &Path, key: &Path) -> Result<(), TlsError> {
    let mut names: Vec<String> = vec!["localhost".into()];
    names.extend(cfg.domains.iter().cloned());
    for l in &cfg.listen {
        if !l.addr.ip().is_unspecified() {
            names.push(l.addr.ip().to_string());
        }
    }
    names.sort();
    names.dedup();
    let ck =
        rcgen::generate_simple_self_signed(names).map_err(|e| TlsError::Generate(e.to_string()))?;
    fs::create_dir_all(&cfg.data_dir).map_err(|e| file_err(&cfg.data_dir, e))?;
    super::secrets::write_private(key, ck.key_pair.serialize_pem().as_bytes())
        .map_err(|e| file_err(key, e))?;
    fs::write(cert, ck.cert.pem()).map_err(|e| file_err(cert, e))?;
    Ok(())
}

/// The client side: peers are verified against `--tls-ca` when given, otherwise the
/// system's roots.
pub(crate) fn client_config(cfg: &Config) -> Result<Arc<ClientConfig>, TlsError> {
    let mut roots = RootCertStore::empty();
    match &cfg.tls.ca {
        Some(path) => {
            for c in CertificateDer::pem_file_iter(path).map_err(|e| file_err(path, e))? {
                let c = c.map_err(|e| file_err(path, e))?;
                roots.add(c).map_err(|e| file_err(path, e))?;
            }
            if roots.is_empty() {
                return Err(file_err(path, "no CA certificate in the file"));
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _ignored) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                tracing::warn!("no system root certificates found: outbound TLS will fail to verify peers (use --tls-ca)");
            }
        }
    }
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_is_generated_once_and_reused() {
        let dir = std::env::temp_dir().join(format!("coresip-tls-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let mut cfg = Config::for_tests();
        cfg.data_dir = dir.clone();
        server_config(&cfg).unwrap();
        let first = fs::read(dir.join(GENERATED_CERT)).unwrap();
        server_config(&cfg).unwrap();
        assert_eq!(fs::read(dir.join(GENERATED_CERT)).unwrap(), first);
        // The generated certificate serves as a CA for a client that trusts it.
        cfg.tls.ca = Some(dir.join(GENERATED_CERT));
        client_config(&cfg).unwrap();
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn missing_files_name_the_path() {
        let mut cfg = Config::for_tests();
        cfg.tls.cert = Some("/nonexistent/cert.pem".into());
        cfg.tls.key = Some("/nonexistent/key.pem".into());
        let err = server_config(&cfg).unwrap_err().to_string();
        assert!(err.contains("/nonexistent/cert.pem"), "{err}");
    }
}
