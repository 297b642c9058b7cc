//! Startup of the registrar, its store and authentication: loaded once, before
//! the executors start, and handed to the shards one by one.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use super::store;
use crate::auth::nonce::NonceSecret;
use crate::auth::users::UserStore;
use crate::auth::{AuthConfig, Authenticator};
use crate::config::{AuthMode, Config};
use crate::proxy::{registrar_config, AuthSetup, Services};
use crate::registrar::Registrar;

use super::RunError;

/// Seconds since the UNIX epoch.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Everything but the per-shard [`Authenticator`], which is not `Sync`: each core
/// builds its own from these.
pub(crate) struct AuthParts {
    users: Arc<UserStore>,
    secret: NonceSecret,
    mode: AuthMode,
    realm: String,
    config: AuthConfig,
}

/// What startup loaded: per core its services and its binding store (the store
/// stays with the runtime, which writes it off the SIP task queue), and the
/// authentication every core builds its own from.
pub(crate) struct Loaded {
    pub services: Vec<Services>,
    pub stores: Vec<store::ShardStore>,
    pub auth: Option<AuthParts>,
}

/// Loads the bindings of every shard and the users file.
pub(crate) fn load(cfg: &Config) -> Result<Loaded, RunError> {
    let dir = cfg.data_dir.join("registrar");
    let loaded = store::open(&dir, cfg.cores, unix_now()).map_err(RunError::Store)?;
    for w in &loaded.warnings {
        tracing::warn!("{w}");
    }
    let bindings: usize = loaded.locations.iter().map(|l| l.len()).sum();
    tracing::info!(bindings, dir = %dir.display(), "registrar store loaded");

    let auth = match (&cfg.registrar.users, cfg.registrar.auth) {
        (_, AuthMode::None) => None,
        (None, _) => {
            tracing::warn!("no --users file: nobody is asked to authenticate");
            None
        }
        (Some(path), mode) => {
            let users = UserStore::load(path).map_err(RunError::Users)?;
            let secret = super::secrets::nonce_secret(&cfg.data_dir.join("nonce.key"))
                .map_err(RunError::Secret)?;
            let realm = if cfg.registrar.realm.is_empty() {
                cfg.domains
                    .first()
                    .cloned()
                    .unwrap_or_else(|| "coresip".into())
            } else {
                cfg.registrar.realm.clone()
            };
            tracing::info!(users = users.len(), %realm, ?mode, "digest authentication on");
            Some(AuthParts {
                users: Arc::new(users),
                secret,
                mode,
                realm,
                config: AuthConfig {
                    nonce_ttl: cfg.registrar.nonce_ttl.as_secs().max(1),
                    algorithms: cfg.registrar.digest_algorithms,
                    ..AuthConfig::default()
                },
            })
        }
    };

    let rc = registrar_config(cfg);
    let mut services = Vec::with_capacity(cfg.cores);
    for location in loaded.locations {
        let registrar = Registrar::with_location(rc.clone(), location)
            .map_err(|e| RunError::Executor(e.to_string()))?;
        services.push(Services {
            registrar,
            journal: true,
            auth: None,
        });
    }
    Ok(Loaded {
        services,
        stores: loaded.stores,
        auth,
    })
}

impl AuthParts {
    /// The authentication of one shard.
    pub(crate) fn for_shard(&self) -> AuthSetup {
        AuthSetup {
            authenticator: Authenticator::new(Arc::clone(&self.users), &self.secret, self.config),
            users: Arc::clone(&self.users),
            mode: self.mode,
            realm: self.realm.clone(),
        }
    }
}
