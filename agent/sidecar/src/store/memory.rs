//! A [`SessionStore`] in memory: sessions are recorded, never run; tests move them along
//! with [`MemoryStore::update_backup`].

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use jiff::Timestamp;
use stowaway_api::backup_session::BackupSessionPhase;
use stowaway_api::restore_session::RestorePhase;

use super::{SessionStore, StoreError, latest, missing_components, unknown_session};
use crate::names;
use crate::wire::{
    BackupInfo, BackupRequest, RestoreInfo, RestoreRequest, SnapshotInfo, newest_first,
};

/// Sessions and snapshots of one configuration, in memory.
#[derive(Debug)]
pub struct MemoryStore {
    configuration: String,
    sessions: Vec<String>,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    backups: BTreeMap<String, BackupInfo>,
    snapshots: Vec<SnapshotInfo>,
    restores: Vec<(String, RestoreRequest, Timestamp)>,
}

impl MemoryStore {
    /// A store for the configuration `configuration` with these sessions (the first is the
    /// default).
    pub fn new(configuration: &str, sessions: &[&str]) -> MemoryStore {
        MemoryStore {
            configuration: configuration.to_owned(),
            sessions: sessions.iter().map(|s| (*s).to_owned()).collect(),
            state: Mutex::default(),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Nothing in here can be left half-changed by a panic.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every BackupSession, by name.
    pub fn backups(&self) -> Vec<BackupInfo> {
        self.state().backups.values().cloned().collect()
    }

    /// Changes the BackupSession `name` (as the operator and executor would); `false` when
    /// there is none.
    pub fn update_backup(&self, name: &str, change: impl FnOnce(&mut BackupInfo)) -> bool {
        match self.state().backups.get_mut(name) {
            Some(info) => {
                change(info);
                true
            }
            None => false,
        }
    }

    /// Adds a snapshot of the target.
    pub fn add_snapshot(&self, snapshot: SnapshotInfo) {
        self.state().snapshots.push(snapshot);
    }

    /// The restores created: (name, request with the snapshot resolved).
    pub fn restores(&self) -> Vec<(String, RestoreRequest)> {
        self.state()
            .restores
            .iter()
            .map(|(name, request, _)| (name.clone(), request.clone()))
            .collect()
    }
}

#[async_trait::async_trait]
impl SessionStore for MemoryStore {
    async fn create_backup(&self, request: &BackupRequest) -> Result<String, StoreError> {
        let known: Vec<&str> = self.sessions.iter().map(String::as_str).collect();
        let session = match &request.session {
            Some(s) if known.contains(&s.as_str()) => s.clone(),
            Some(s) => return Err(unknown_session(&self.configuration, Some(s), &known)),
            None => known
                .first()
                .map(|s| (*s).to_owned())
                .ok_or_else(|| unknown_session(&self.configuration, None, &known))?,
        };
        let now = Timestamp::now();
        let mut state = self.state();
        let name = loop {
            let name = names::backup_name(
                &self.configuration,
                &session,
                now.as_second(),
                &names::random_suffix(),
            );
            if !state.backups.contains_key(&name) {
                break name;
            }
        };
        state.backups.insert(
            name.clone(),
            BackupInfo {
                name: name.clone(),
                session,
                phase: BackupSessionPhase::Pending,
                trigger: Some(names::ON_DEMAND.to_owned()),
                tag: request.tag.clone(),
                components: request.components.clone(),
                created: Some(now),
                duration: None,
                size: None,
                snapshots: Vec::new(),
                error: None,
            },
        );
        Ok(name)
    }

    async fn backup(&self, name: &str) -> Result<BackupInfo, StoreError> {
        self.state()
            .backups
            .get(name)
            .cloned()
            .ok_or_else(|| StoreError::NotFound {
                kind: "BackupSession",
                name: name.to_owned(),
            })
    }

    async fn snapshots(&self) -> Result<Vec<SnapshotInfo>, StoreError> {
        let mut snapshots = self.state().snapshots.clone();
        newest_first(&mut snapshots);
        Ok(snapshots)
    }

    async fn create_restore(&self, request: &RestoreRequest) -> Result<String, StoreError> {
        let mut state = self.state();
        let snapshot = if request.snapshot == "latest" {
            latest(&state.snapshots)
        } else {
            state.snapshots.iter().find(|s| s.name == request.snapshot)
        }
        .ok_or_else(|| StoreError::NotFound {
            kind: "Snapshot",
            name: request.snapshot.clone(),
        })?;
        if let Some(e) = missing_components(snapshot, &request.components) {
            return Err(e);
        }
        let resolved = RestoreRequest {
            snapshot: snapshot.name.clone(),
            components: request.components.clone(),
        };
        let now = Timestamp::now();
        let name = names::restore_name(
            &self.configuration,
            now.as_second(),
            &names::random_suffix(),
        );
        state.restores.push((name.clone(), resolved, now));
        Ok(name)
    }

    /// A restore the store recorded, always `Pending` (nothing runs it).
    async fn restore(&self, name: &str) -> Result<RestoreInfo, StoreError> {
        self.state()
            .restores
            .iter()
            .find(|(n, _, _)| n == name)
            .map(|(name, request, created)| RestoreInfo {
                name: name.clone(),
                snapshot: Some(request.snapshot.clone()),
                phase: RestorePhase::Pending,
                components: request.components.clone(),
                created: Some(*created),
                duration: None,
                error: None,
            })
            .ok_or_else(|| StoreError::NotFound {
                kind: "RestoreSession",
                name: name.to_owned(),
            })
    }
}
