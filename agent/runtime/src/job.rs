//! One addon run: its store data, what it was granted, and the `host.job` resource.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use stowaway_repository::{Backup, ComponentKind, ComponentRecord, Repository};
use wasmtime::component::{Resource, ResourceTable};
use wasmtime_wasi::p2::bindings::io::poll::Pollable as PollableRes;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use zeroize::Zeroizing;

use crate::bindings::stowaway::addon::host;
use crate::bindings::stowaway::addon::types::{
    AddonError, Attributes, ComponentInfo, LogLevel, Progress,
};
use crate::info::AddonInfo;
use crate::limits::{CancelToken, Deadline, JobLimits, Limiter};
use crate::volumes::GrantedVolume;

/// What a job may use and how it is limited.
pub struct JobSpec {
    /// Identifier shown to the addon (the session name in Kubernetes).
    pub id: String,
    /// Parameters, checked against the addon's declaration before the run.
    pub parameters: Vec<(String, String)>,
    /// Secrets by name; the addon only reads those it declared.
    pub secrets: BTreeMap<String, Zeroizing<Vec<u8>>>,
    /// Directories granted to the addon, by volume name.
    pub volumes: Vec<VolumeGrant>,
    /// Programs the addon may run (if it also declares them).
    pub exec: Vec<crate::exec::ExecGrant>,
    /// Endpoints the addon may connect to (if it also declares them).
    pub connect: Vec<crate::network::Endpoint>,
    /// Memory, deadline, grace period.
    pub limits: JobLimits,
    /// Cancels the job from outside.
    pub cancel: CancelToken,
    /// Receives the addon's progress reports.
    pub progress: Option<Arc<dyn ProgressSink>>,
}

impl JobSpec {
    /// A job with an id and nothing granted.
    pub fn new(id: impl Into<String>) -> Self {
        JobSpec {
            id: id.into(),
            parameters: Vec::new(),
            secrets: BTreeMap::new(),
            volumes: Vec::new(),
            exec: Vec::new(),
            connect: Vec::new(),
            limits: JobLimits::default(),
            cancel: CancelToken::new(),
            progress: None,
        }
    }
}

/// A directory granted to an addon under a volume name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeGrant {
    /// Volume name, `[A-Za-z0-9._-]+`.
    pub name: String,
    /// Directory on the host.
    pub path: PathBuf,
}

/// Progress reported by an addon.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddonProgress {
    /// What the addon is doing.
    pub phase: String,
    /// Items done (files, tables, ...).
    pub items_done: u64,
    /// Items in all, when known.
    pub items_total: Option<u64>,
    /// Bytes done, as the addon counts them.
    pub bytes_done: u64,
    /// Bytes in all, when known.
    pub bytes_total: Option<u64>,
}

/// Receives progress reports of a running addon.
pub trait ProgressSink: Send + Sync {
    /// Called for each report (addons report a few times per second at most).
    fn report(&self, progress: &AddonProgress);

    /// Called as restored bytes are handed to the addon.
    fn transferred(&self, _bytes: u64) {}
}

/// Progress reports closer together than this are dropped.
const PROGRESS_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

/// The resource behind `host.job`; there is one per run and its state lives in [`JobState`].
pub struct JobHandle;

/// What the job does.
pub(crate) enum Mode {
    /// Only `describe` is called.
    Describe,
    /// Writing a snapshot's components.
    Backup {
        backup: Arc<Backup>,
        names: BTreeSet<String>,
        finished: Vec<ComponentRecord>,
    },
    /// Reading a snapshot's components.
    Restore {
        repository: Repository,
        components: Vec<ComponentRecord>,
    },
}

/// The data of one store: WASI state, resources, limits and the job itself.
pub(crate) struct JobState {
    pub wasi: WasiCtx,
    pub table: ResourceTable,
    pub limiter: Limiter,
    pub deadline: Deadline,
    pub addon: String,
    pub info: Option<Arc<AddonInfo>>,
    pub id: String,
    pub parameters: Vec<(String, String)>,
    pub secrets: BTreeMap<String, Zeroizing<Vec<u8>>>,
    pub progress: Option<Arc<dyn ProgressSink>>,
    /// When the last progress report was passed on (reports are rate-limited).
    pub last_progress: Option<std::time::Instant>,
    pub volumes: Vec<GrantedVolume>,
    pub exec_grants: Vec<crate::exec::ExecGrant>,
    pub mode: Mode,
    /// The first failure of the host underneath the addon (storage, repository); reported
    /// instead of whatever the addon made of it.
    pub host_error: HostError,
}

/// Shared slot for the first host-side failure of a job.
#[derive(Clone, Default)]
pub(crate) struct HostError(Arc<Mutex<Option<String>>>);

impl HostError {
    pub fn record(&self, message: String) {
        let mut slot = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if slot.is_none() {
            tracing::debug!(%message, "host error during addon run");
            *slot = Some(message);
        }
    }

    pub fn take(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

impl JobState {
    pub fn new(
        wasi: WasiCtx,
        addon: String,
        info: Option<Arc<AddonInfo>>,
        spec_id: String,
        limits: JobLimits,
        cancel: CancelToken,
        mode: Mode,
    ) -> Self {
        JobState {
            wasi,
            table: ResourceTable::new(),
            limiter: Limiter {
                memory_bytes: usize::try_from(limits.memory_bytes).unwrap_or(usize::MAX),
                exceeded: false,
            },
            deadline: Deadline {
                limits,
                started: std::time::Instant::now(),
                cancel,
            },
            addon,
            info,
            id: spec_id,
            parameters: Vec::new(),
            secrets: BTreeMap::new(),
            progress: None,
            last_progress: None,
            volumes: Vec::new(),
            exec_grants: Vec::new(),
            mode,
            host_error: HostError::default(),
        }
    }

    /// Records a host failure and turns it into the error the addon sees.
    pub fn host_failure(&self, what: &str, err: impl std::fmt::Display) -> AddonError {
        let message = format!("{what}: {err}");
        self.host_error.record(message.clone());
        AddonError::Io(message)
    }

    fn backup_mode(&mut self) -> Result<(&Arc<Backup>, &mut BTreeSet<String>), AddonError> {
        match &mut self.mode {
            Mode::Backup { backup, names, .. } => Ok((backup, names)),
            _ => Err(AddonError::Unsupported(
                "components can only be created during a backup".into(),
            )),
        }
    }

    pub(crate) fn restore_component(
        &self,
        name: &str,
        kind: ComponentKind,
    ) -> Result<(Repository, ComponentRecord), AddonError> {
        let Mode::Restore {
            repository,
            components,
        } = &self.mode
        else {
            return Err(AddonError::Unsupported(
                "components can only be opened during a restore".into(),
            ));
        };
        let component = components.iter().find(|c| c.name == name).ok_or_else(|| {
            AddonError::NotFound(format!("component {name:?} is not being restored"))
        })?;
        if component.kind != kind {
            return Err(AddonError::InvalidParameter(format!(
                "component {name:?} is a {}, not a {}",
                kind_name(component.kind),
                kind_name(kind)
            )));
        }
        Ok((repository.clone(), component.clone()))
    }

    /// Registers a finished component of a backup.
    pub fn finished_component(&mut self, record: ComponentRecord) -> ComponentInfo {
        let info = crate::entry::component_info(&record);
        if let Mode::Backup { finished, .. } = &mut self.mode {
            finished.push(record);
        }
        info
    }
}

fn kind_name(kind: ComponentKind) -> &'static str {
    match kind {
        ComponentKind::Stream => "stream",
        ComponentKind::Tree => "tree",
    }
}

/// Component names: `[A-Za-z0-9._-]+`, at most 128 bytes, not `.` or `..`.
pub(crate) fn valid_component_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

impl WasiView for JobState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl crate::bindings::stowaway::addon::types::Host for JobState {}

impl host::Host for JobState {
    fn log(
        &mut self,
        level: LogLevel,
        message: String,
        fields: Attributes,
    ) -> wasmtime::Result<()> {
        let message = truncate(&message, 4096);
        let fields = fields
            .iter()
            .map(|(k, v)| format!("{k}={}", truncate(v, 512)))
            .collect::<Vec<_>>()
            .join(" ");
        let addon = self.addon.as_str();
        match level {
            LogLevel::Trace => tracing::trace!(target: "addon", addon, fields, "{message}"),
            LogLevel::Debug => tracing::debug!(target: "addon", addon, fields, "{message}"),
            LogLevel::Info => tracing::info!(target: "addon", addon, fields, "{message}"),
            LogLevel::Warn => tracing::warn!(target: "addon", addon, fields, "{message}"),
            LogLevel::Error => tracing::error!(target: "addon", addon, fields, "{message}"),
        }
        Ok(())
    }
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

impl host::HostJob for JobState {
    fn id(&mut self, _: Resource<JobHandle>) -> wasmtime::Result<String> {
        Ok(self.id.clone())
    }

    fn parameters(&mut self, _: Resource<JobHandle>) -> wasmtime::Result<Attributes> {
        Ok(self.parameters.clone())
    }

    fn secret(
        &mut self,
        _: Resource<JobHandle>,
        name: String,
    ) -> wasmtime::Result<Result<Vec<u8>, AddonError>> {
        Ok(self.granted_secret(&name).map(|value| value.to_vec()))
    }

    fn report_progress(&mut self, _: Resource<JobHandle>, p: Progress) -> wasmtime::Result<()> {
        let now = std::time::Instant::now();
        if self
            .last_progress
            .is_some_and(|last| now.duration_since(last) < PROGRESS_INTERVAL)
        {
            return Ok(());
        }
        self.last_progress = Some(now);
        if let Some(sink) = &self.progress {
            sink.report(&AddonProgress {
                phase: truncate(&p.phase, 64).to_owned(),
                items_done: p.items_done,
                items_total: p.items_total,
                bytes_done: p.bytes_done,
                bytes_total: p.bytes_total,
            });
        }
        Ok(())
    }

    fn is_cancelled(&mut self, _: Resource<JobHandle>) -> wasmtime::Result<bool> {
        Ok(self.deadline.is_cancelled())
    }

    fn subscribe_cancel(
        &mut self,
        _: Resource<JobHandle>,
    ) -> wasmtime::Result<Resource<PollableRes>> {
        let res = self.table.push(CancelPollable(self.deadline.clone()))?;
        wasmtime_wasi::p2::subscribe(&mut self.table, res)
    }

    fn create_stream(
        &mut self,
        _: Resource<JobHandle>,
        name: String,
        media_type: String,
    ) -> wasmtime::Result<Result<Resource<crate::components::StreamWriterHandle>, AddonError>> {
        let (backup, names) = match self.backup_mode() {
            Ok(mode) => mode,
            Err(err) => return Ok(Err(err)),
        };
        if let Err(err) = claim_name(names, &name) {
            return Ok(Err(err));
        }
        let writer = match backup.stream(&name, &media_type) {
            Ok(writer) => writer,
            Err(err) => return Ok(Err(self.host_failure("starting a stream component", err))),
        };
        let handle =
            crate::components::StreamWriterHandle::new(name, writer, self.host_error.clone());
        Ok(Ok(self.table.push(handle)?))
    }

    fn create_tree(
        &mut self,
        _: Resource<JobHandle>,
        name: String,
    ) -> wasmtime::Result<Result<Resource<crate::components::TreeWriterHandle>, AddonError>> {
        let (backup, names) = match self.backup_mode() {
            Ok(mode) => mode,
            Err(err) => return Ok(Err(err)),
        };
        if let Err(err) = claim_name(names, &name) {
            return Ok(Err(err));
        }
        let writer = match backup.tree(&name) {
            Ok(writer) => writer,
            Err(err) => return Ok(Err(self.host_failure("starting a tree component", err))),
        };
        let handle =
            crate::components::TreeWriterHandle::new(name, writer, self.host_error.clone());
        Ok(Ok(self.table.push(handle)?))
    }

    fn components(&mut self, _: Resource<JobHandle>) -> wasmtime::Result<Vec<ComponentInfo>> {
        Ok(match &self.mode {
            Mode::Restore { components, .. } => components
                .iter()
                .map(crate::entry::component_info)
                .collect(),
            _ => Vec::new(),
        })
    }

    fn open_stream(
        &mut self,
        _: Resource<JobHandle>,
        name: String,
    ) -> wasmtime::Result<Result<Resource<wasmtime_wasi::p2::DynInputStream>, AddonError>> {
        let (repository, component) = match self.restore_component(&name, ComponentKind::Stream) {
            Ok(found) => found,
            Err(err) => return Ok(Err(err)),
        };
        let reader = match repository.open_stream(&component) {
            Ok(reader) => reader,
            Err(err) => {
                return Ok(Err(
                    self.host_failure(&format!("opening component {name}"), err)
                ));
            }
        };
        let stream: wasmtime_wasi::p2::DynInputStream =
            Box::new(crate::components::ReaderStream::new(
                reader,
                self.host_error.clone(),
                self.progress.clone(),
            ));
        Ok(Ok(self.table.push(stream)?))
    }

    fn open_tree(
        &mut self,
        _: Resource<JobHandle>,
        name: String,
    ) -> wasmtime::Result<Result<Resource<crate::components::TreeReaderHandle>, AddonError>> {
        let (repository, component) = match self.restore_component(&name, ComponentKind::Tree) {
            Ok(found) => found,
            Err(err) => return Ok(Err(err)),
        };
        let reader = match repository.open_tree(&component) {
            Ok(reader) => reader,
            Err(err) => {
                return Ok(Err(
                    self.host_failure(&format!("opening component {name}"), err)
                ));
            }
        };
        let handle = crate::components::TreeReaderHandle::new(
            reader,
            self.host_error.clone(),
            self.progress.clone(),
        );
        Ok(Ok(self.table.push(handle)?))
    }

    fn drop(&mut self, rep: Resource<JobHandle>) -> wasmtime::Result<()> {
        self.table.delete(rep)?;
        Ok(())
    }
}

fn claim_name(names: &mut BTreeSet<String>, name: &str) -> Result<(), AddonError> {
    if !valid_component_name(name) {
        return Err(AddonError::InvalidParameter(format!(
            "component name {name:?} is not [A-Za-z0-9._-]+ (at most 128 bytes)"
        )));
    }
    if !names.insert(name.to_owned()) {
        return Err(AddonError::InvalidParameter(format!(
            "component {name:?} was already created in this snapshot"
        )));
    }
    Ok(())
}

/// Ready once the job is cancelled or past its deadline.
struct CancelPollable(Deadline);

#[async_trait::async_trait]
impl wasmtime_wasi::p2::Pollable for CancelPollable {
    async fn ready(&mut self) {
        while !self.0.is_cancelled() {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn component_names() {
        for ok in ["data", "db.sql", "vol-1", "A_b"] {
            assert!(valid_component_name(ok), "{ok}");
        }
        for bad in ["", ".", "..", "a/b", "a b", "é", &"x".repeat(129)] {
            assert!(!valid_component_name(bad), "{bad}");
        }
    }
}
