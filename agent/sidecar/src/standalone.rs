//! The standalone sidecar (`stowaway sidecar --config FILE`): backups without Kubernetes, for
//! Docker Compose or a VM. One YAML file ([`config`]) names the repository, the addon, the
//! target, the schedule, the retention and the API.
//!
//! | concept | module |
//! |---|---|
//! | the configuration file | [`config`] |
//! | the time the schedule sees (real, or moved by hand in tests) | [`clock`] |
//! | the cron schedule, catch-up after a downtime | [`scheduler`] |
//! | backups, retention and restores against the repository | [`work`] |
//! | the runs, one at a time, behind the on-demand API | [`crate::store::LocalStore`] |
//!
//! [`Standalone::start`] opens everything (and fails early: repository password, addon,
//! directories, listeners); [`Standalone::run_until`] serves the same on-demand API as the
//! in-cluster sidecar, runs the schedule, and on shutdown cancels the running run (nothing of
//! it is committed), waits for it, and removes the socket.

pub mod clock;
pub mod config;
pub mod scheduler;
pub mod work;

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use stowaway_executor::Settings;
use stowaway_repository::{InitOptions, Repository, Target};
use stowaway_runtime::VolumeGrant;
use stowaway_storage::{Storage, StorageOptions};
use tokio::sync::watch;

use self::clock::Clock;
use self::config::{Config, PasswordSource};
use self::scheduler::{Scheduler, last_scheduled};
use self::work::{PASSWORD_SECRET, RepositoryWork, WorkSetup};
use crate::api::{ApiConfig, BindError, Server};
use crate::store::LocalStore;
use crate::token::{Token, TokenError};

/// Why the standalone sidecar cannot start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The storage location cannot be used.
    #[error("storage {url}: {source}")]
    Storage {
        /// The location configured.
        url: String,
        /// Why.
        source: stowaway_storage::Error,
    },
    /// The repository password cannot be read.
    #[error("storage: {0}")]
    Password(String),
    /// The repository cannot be opened or created.
    #[error("repository {location}: {source}{hint}")]
    Repository {
        /// Where it is.
        location: String,
        /// Why.
        source: stowaway_repository::Error,
        /// What to do (starts with `: ` when not empty).
        hint: &'static str,
    },
    /// The addon cannot be loaded, or its parameters do not fit it.
    #[error("addon {name}: {message}")]
    Addon {
        /// The addon.
        name: String,
        /// Why.
        message: String,
    },
    /// The target cannot be reached.
    #[error("target: {0}")]
    Target(String),
    /// The API's token cannot be read.
    #[error("api.tokenFile: {0}")]
    Token(#[from] TokenError),
    /// The API's listeners cannot be bound.
    #[error("api: {0}")]
    Bind(#[from] BindError),
}

/// A standalone sidecar, ready to run.
pub struct Standalone {
    store: LocalStore,
    server: Server,
    scheduler: Option<Scheduler>,
}

impl std::fmt::Debug for Standalone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Standalone")
            .field("store", &self.store)
            .field("server", &self.server)
            .field("scheduler", &self.scheduler)
            .finish()
    }
}

impl Standalone {
    /// Opens the repository (creating it when `storage.initialize` says so), loads the addon,
    /// checks the target and binds the API; nothing runs until [`Standalone::run_until`].
    pub async fn start(
        config: Config,
        settings: &Settings,
        clock: Arc<dyn Clock>,
    ) -> Result<Standalone, StartError> {
        let repo = open_repository(&config).await?;
        let location = repo.storage().describe();
        let addon_error = |message: String| StartError::Addon {
            name: config.addon.name.clone(),
            message,
        };
        let addon = settings
            .load_addon(&config.addon.name)
            .map_err(|e| addon_error(e.to_string()))?;
        let info = addon.info().clone();
        let mut params = config.addon.params.0.clone();
        if let Some(host) = &config.target.host {
            params.push(("host".into(), host.clone()));
        }
        if let Some(port) = config.target.port {
            params.push(("port".into(), port.to_string()));
        }
        for (name, _) in &params {
            if !info.parameters.iter().any(|p| &p.name == name) {
                return Err(addon_error(format!(
                    "no parameter {name:?} (it takes: {})",
                    info.parameters
                        .iter()
                        .map(|p| p.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        }
        let task_params = stowaway_executor::params::TaskParams {
            addon: params.clone(),
            auth_secret: None,
        };
        let connect =
            stowaway_executor::target::endpoint(&info, &task_params).map_err(StartError::Target)?;
        if let Some(path) = &config.target.password_file {
            if !info
                .capabilities
                .iter()
                .any(|c| c.allows_secret(PASSWORD_SECRET))
            {
                return Err(StartError::Target(format!(
                    "passwordFile: the {} addon reads no password",
                    info.name
                )));
            }
            std::fs::metadata(path)
                .map_err(|e| StartError::Target(format!("passwordFile {}: {e}", path.display())))?;
        }
        let mut volumes = Vec::new();
        for volume in &config.target.volumes {
            let path = std::fs::canonicalize(&volume.path)
                .ok()
                .filter(|p| p.is_dir())
                .ok_or_else(|| {
                    StartError::Target(format!(
                        "volume {}: {} is not a directory",
                        volume.name,
                        volume.path.display()
                    ))
                })?;
            volumes.push(VolumeGrant {
                name: volume.name.clone(),
                path,
            });
        }
        let hostname = config
            .hostname
            .clone()
            .unwrap_or_else(stowaway_repository::hostname);
        let target = Target {
            kind: info
                .target_kinds
                .first()
                .cloned()
                .unwrap_or_else(|| info.name.clone()),
            name: config.name.as_str().to_owned(),
        };
        let work = WorkSetup {
            repo,
            location,
            addon,
            params,
            exec: stowaway_executor::target::declared_exec(&info),
            connect,
            password_file: config.target.password_file.clone(),
            volumes,
            memory_bytes: config.addon.memory_limit_mib.saturating_mul(1024 * 1024),
            timeout: config.addon.timeout.map(|t| t.0),
            target,
            hostname,
            tags: config.tags.iter().map(|t| t.0.clone()).collect(),
            retention: config.retention.clone(),
            clock: clock.clone(),
        };
        let last = match &config.schedule {
            Some(_) => {
                let snapshots =
                    work.repo
                        .snapshots()
                        .await
                        .map_err(|source| StartError::Repository {
                            location: work.location.clone(),
                            source,
                            hint: "",
                        })?;
                last_scheduled(
                    snapshots
                        .iter()
                        .filter(|s| s.target == work.target && s.hostname == work.hostname)
                        .flat_map(|s| s.tags.iter()),
                )
            }
            None => None,
        };
        tracing::info!(
            name = config.name.as_str(),
            addon = %info.label(),
            repository = %work.location,
            hostname = %work.hostname,
            "standalone sidecar configured"
        );
        let work = RepositoryWork::new(work);
        let store = LocalStore::new(config.name.as_str(), Arc::new(work), clock.clone());
        let api = ApiConfig {
            tcp: config.api.tcp(),
            socket: config.api.socket.clone(),
            token: config
                .api
                .token_file
                .as_deref()
                .map(Token::from_file)
                .transpose()?,
            allow_restore: config.api.allow_restore,
            ..ApiConfig::default()
        };
        let server = Server::bind(api, Arc::new(store.clone())).await?;
        let scheduler = config
            .schedule
            .map(|s| Scheduler::new(s.schedule, clock, last));
        Ok(Standalone {
            store,
            server,
            scheduler,
        })
    }

    /// The runs.
    pub fn store(&self) -> &LocalStore {
        &self.store
    }

    /// The TCP listener's address.
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.server.tcp_addr()
    }

    /// The socket's path.
    pub fn socket_path(&self) -> Option<&Path> {
        self.server.socket_path()
    }

    /// Runs the schedule, the runs and the API until `shutdown` completes; then stops the
    /// schedule, cancels the running run and fails those waiting, waits for the running one
    /// to end (a backup is committed whole or not at all), and stops the API (removing the
    /// socket).
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) {
        let Standalone {
            store,
            server,
            scheduler,
        } = self;
        let (stop_schedule, schedule_stopped) = watch::channel(false);
        let (stop_api, api_stopped) = watch::channel(false);
        let worker = tokio::spawn({
            let store = store.clone();
            async move { store.work().await }
        });
        let api = tokio::spawn(server.serve_until(stopped(api_stopped)));
        let schedule =
            scheduler.map(|s| tokio::spawn(s.run(store.clone(), stopped(schedule_stopped))));
        shutdown.await;
        tracing::info!("stopping");
        let _ = stop_schedule.send(true);
        if let Some(schedule) = schedule
            && let Err(e) = schedule.await
        {
            tracing::error!(error = %e, "the schedule task failed");
        }
        store.stop();
        if let Err(e) = worker.await {
            tracing::error!(error = %e, "the worker task failed");
        }
        let _ = stop_api.send(true);
        if let Err(e) = api.await {
            tracing::error!(error = %e, "the API task failed");
        }
        tracing::info!("stopped");
    }
}

/// Completes once `stop` says so (or its sender is gone).
async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Opens the repository, creating it when there is none and `initialize` is set.
async fn open_repository(config: &Config) -> Result<Repository, StartError> {
    let storage_config = &config.storage;
    let options = StorageOptions {
        append_only: storage_config.append_only,
        credentials: storage_config.credentials.clone(),
        ..StorageOptions::default()
    };
    let storage = Storage::from_url_with(&storage_config.url, &options).map_err(|source| {
        StartError::Storage {
            url: storage_config.url.clone(),
            source,
        }
    })?;
    let location = storage.describe();
    if let PasswordSource::Insecure(_) = storage_config.password {
        tracing::warn!("the repository password is in the configuration file (passwordInsecure)");
    }
    let password = storage_config
        .password
        .read()
        .map_err(StartError::Password)?;
    let repository_error = |source, hint| StartError::Repository {
        location: location.clone(),
        source,
        hint,
    };
    match Repository::open(storage.clone(), &password).await {
        Ok(repo) => Ok(repo),
        Err(stowaway_repository::Error::NotARepository { .. }) if storage_config.initialize => {
            tracing::info!(%location, "no repository there: creating one (storage.initialize)");
            Repository::init(storage, &password, InitOptions::default())
                .await
                .map_err(|e| repository_error(e, ""))
        }
        Err(e @ stowaway_repository::Error::NotARepository { .. }) => Err(repository_error(
            e,
            ": create it with `stowaway init`, or set storage.initialize: true",
        )),
        Err(e) => Err(repository_error(e, "")),
    }
}
