//! A loaded addon: its compiled component, its description, and the runs of its jobs.
//!
//! Each run gets a fresh `Store` (no state survives between jobs) on the calling thread, with
//! a memory limiter, an epoch deadline checked every tick, and a WASI context that grants
//! only the job's volumes and endpoints: no environment, no arguments.

use std::sync::Arc;

use stowaway_repository::{Backup, ComponentRecord, Repository};
use wasmtime::component::Component;
use wasmtime::{Store, UpdateDeadline};
use wasmtime_wasi::{FsPerms, WasiCtx};

use crate::bindings::{self, AddonPre, stowaway::addon::types::AddonError};
use crate::engine::Runtime;
use crate::error::{Error, Failure, Result};
use crate::exec::ExecGrant;
use crate::info::{AddonInfo, Capability, Operation};
use crate::job::{JobSpec, JobState, Mode};
use crate::limits::{CancelReason, Interrupted, JobLimits};
use crate::logpipe::LogPipe;
use crate::network::AllowedAddrs;
use crate::volumes::GrantedVolume;

/// What a backup run produced: the finished components, in the order they were finished, and
/// the snapshot attributes the addon returned. Nothing is in the repository's snapshot list
/// until the caller commits these.
#[derive(Debug, Clone)]
pub struct BackupOutput {
    /// Finished components.
    pub components: Vec<ComponentRecord>,
    /// Attributes for the snapshot.
    pub attributes: Vec<(String, String)>,
}

/// A compiled addon, ready to run jobs. Cheap to share between threads.
pub struct Addon {
    runtime: Runtime,
    origin: String,
    digest: String,
    pre: AddonPre<JobState>,
    info: Arc<AddonInfo>,
}

impl std::fmt::Debug for Addon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Addon")
            .field("origin", &self.origin)
            .field("digest", &self.digest)
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

const WASM_MAGIC: &[u8] = b"\0asm";
const CORE_MODULE_VERSION: &[u8] = &[1, 0, 0, 0];

impl Addon {
    pub(crate) fn load(runtime: &Runtime, wasm: &[u8], origin: &str) -> Result<Addon> {
        let invalid = |reason: String| Error::InvalidComponent {
            origin: origin.to_owned(),
            reason,
        };
        if wasm.len() < 8 || &wasm[..4] != WASM_MAGIC {
            return Err(invalid(
                "the file does not start with the WebAssembly magic bytes".into(),
            ));
        }
        if &wasm[4..8] == CORE_MODULE_VERSION {
            return Err(invalid(
                "this is a core WebAssembly module, not a component; build the addon with \
                 `cargo build --target wasm32-wasip2`"
                    .into(),
            ));
        }
        let digest = hex::encode(ring::digest::digest(&ring::digest::SHA256, wasm));
        let engine = &runtime.inner.engine;
        let component = match &runtime.inner.cache {
            Some(cache) => cache.load_or_compile(engine, wasm, &digest),
            None => Component::new(engine, wasm),
        }
        .map_err(|e| invalid(format!("{e:#}")))?;
        check_interface(engine, &component, origin)?;
        let pre = runtime
            .inner
            .linker
            .instantiate_pre(&component)
            .map_err(|e| Error::UnsupportedInterface {
                origin: origin.to_owned(),
                found: format!("an import this host does not provide ({e:#})"),
                supported: crate::bindings::VERSION.into(),
            })?;
        let pre = AddonPre::new(pre).map_err(|e| Error::UnsupportedInterface {
            origin: origin.to_owned(),
            found: format!("a world without the addon exports ({e:#})"),
            supported: crate::bindings::VERSION.into(),
        })?;
        let mut addon = Addon {
            runtime: runtime.clone(),
            origin: origin.to_owned(),
            digest,
            pre,
            info: Arc::new(AddonInfo {
                name: origin.to_owned(),
                version: String::new(),
                description: String::new(),
                target_kinds: Vec::new(),
                operations: Vec::new(),
                parameters: Vec::new(),
                capabilities: Vec::new(),
            }),
        };
        addon.info = Arc::new(addon.describe()?);
        Ok(addon)
    }

    /// What the addon says about itself.
    pub fn info(&self) -> &AddonInfo {
        &self.info
    }

    /// SHA-256 of the component, lower-case hex.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// Where the addon came from.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    fn label(&self) -> String {
        if self.info.version.is_empty() {
            self.origin.clone()
        } else {
            self.info.label()
        }
    }

    fn describe(&self) -> Result<AddonInfo> {
        let limits = JobLimits {
            deadline: Some(std::time::Duration::from_secs(10)),
            grace: std::time::Duration::ZERO,
            ..JobLimits::default()
        };
        let (mut store, pipes) =
            self.store(JobSpec::new("describe"), limits, Mode::Describe, false)?;
        let deadline = store.data().deadline.clone();
        let pre = &self.pre;
        let store_ref = &mut store;
        let result = drive(deadline, async move {
            let addon = pre.instantiate_async(&mut *store_ref).await?;
            addon
                .stowaway_addon_metadata()
                .call_describe(&mut *store_ref)
                .await
        });
        let info = match result {
            Ok(info) => AddonInfo::from(info),
            Err(err) => {
                return Err(Error::Addon {
                    addon: self.origin.clone(),
                    failure: classify_trap(&mut store, &pipes, err),
                });
            }
        };
        crate::info::validate(&info).map_err(|reason| Error::InvalidDescription {
            origin: self.origin.clone(),
            reason,
        })?;
        Ok(info)
    }

    /// Runs the addon's backup for `spec` into `backup`. Blocks the calling thread until the
    /// addon returns, fails, or is stopped; call it from a thread of its own (for example
    /// `tokio::task::spawn_blocking`). On success the caller commits the components.
    pub fn backup(&self, spec: JobSpec, backup: Arc<Backup>) -> Result<BackupOutput> {
        let mode = Mode::Backup {
            backup,
            names: Default::default(),
            finished: Vec::new(),
        };
        let (attributes, mode) = self.run(Operation::Backup, spec, mode)?;
        let components = match mode {
            Mode::Backup { finished, .. } => finished,
            _ => Vec::new(),
        };
        Ok(BackupOutput {
            components,
            attributes,
        })
    }

    /// Runs the addon's restore of `components` from `repository`, with the job's volumes
    /// granted read-write. Blocks like [`Addon::backup`]. Returns the addon's attributes (for
    /// example a count of warnings).
    pub fn restore(
        &self,
        spec: JobSpec,
        repository: Repository,
        components: Vec<ComponentRecord>,
    ) -> Result<Vec<(String, String)>> {
        let mode = Mode::Restore {
            repository,
            components,
        };
        Ok(self.run(Operation::Restore, spec, mode)?.0)
    }

    /// Runs `backup.run` or `restore.run` in a fresh store (volumes writable for a restore);
    /// returns the addon's attributes and the job's final mode.
    fn run(
        &self,
        operation: Operation,
        spec: JobSpec,
        mode: Mode,
    ) -> Result<(Vec<(String, String)>, Mode)> {
        self.require(operation)?;
        let limits = spec.limits.clone();
        let writable = operation == Operation::Restore;
        let (mut store, pipes) = self.store(spec, limits, mode, writable)?;
        let deadline = store.data().deadline.clone();
        let pre = &self.pre;
        let store_ref = &mut store;
        let result = drive(deadline, async move {
            let addon = pre.instantiate_async(&mut *store_ref).await?;
            let job = store_ref.data_mut().table.push(crate::job::JobHandle)?;
            match operation {
                Operation::Backup => {
                    addon
                        .stowaway_addon_backup()
                        .call_run(&mut *store_ref, job)
                        .await
                }
                Operation::Restore => {
                    addon
                        .stowaway_addon_restore()
                        .call_run(&mut *store_ref, job)
                        .await
                }
            }
        });
        let attributes = self.outcome(&mut store, &pipes, result)?;
        let mode = std::mem::replace(&mut store.data_mut().mode, Mode::Describe);
        Ok((attributes, mode))
    }

    fn require(&self, op: Operation) -> Result<()> {
        if self.info.operations.contains(&op) {
            return Ok(());
        }
        Err(Error::PermissionDenied {
            addon: self.label(),
            reason: format!(
                "it does not implement {op:?} (describe() lists {:?})",
                self.info.operations
            ),
        })
    }

    /// A fresh store for one run, with only what `spec` grants and the addon declared.
    fn store(
        &self,
        spec: JobSpec,
        limits: JobLimits,
        mode: Mode,
        writable: bool,
    ) -> Result<(Store<JobState>, Pipes)> {
        let label = self.label();
        let setup = |reason: String| Error::Setup {
            addon: label.clone(),
            reason,
        };
        let parameters = if matches!(mode, Mode::Describe) {
            Vec::new()
        } else {
            crate::params::resolve(&self.info, &spec.parameters).map_err(|reason| {
                Error::InvalidParameter {
                    addon: label.clone(),
                    reason,
                }
            })?
        };

        let pipes = Pipes {
            stdout: LogPipe::new(&label, "stdout"),
            stderr: LogPipe::new(&label, "stderr"),
        };
        let mut wasi = WasiCtx::builder();
        wasi.allow_blocking_current_thread(true)
            .stdout(pipes.stdout.clone())
            .stderr(pipes.stderr.clone());
        let mut volumes = Vec::with_capacity(spec.volumes.len());
        for grant in &spec.volumes {
            if !crate::job::valid_component_name(&grant.name) {
                return Err(setup(format!(
                    "volume name {:?} is not [A-Za-z0-9._-]+",
                    grant.name
                )));
            }
            if volumes.iter().any(|v: &GrantedVolume| v.name == grant.name) {
                return Err(setup(format!("volume {:?} is granted twice", grant.name)));
            }
            if !self
                .info
                .capabilities
                .iter()
                .any(|c| c.allows_volume(&grant.name, writable))
            {
                return Err(Error::PermissionDenied {
                    addon: label.clone(),
                    reason: format!(
                        "it does not declare {} access to volumes, but the job grants volume {:?}",
                        if writable { "write" } else { "read" },
                        grant.name
                    ),
                });
            }
            let volume = GrantedVolume::open(&grant.name, &grant.path, writable).map_err(|e| {
                setup(format!(
                    "cannot open volume {:?} at {}: {e}",
                    grant.name,
                    grant.path.display()
                ))
            })?;
            let perms = if writable {
                FsPerms::ReadWrite
            } else {
                FsPerms::ReadOnly
            };
            wasi.preopened_dir(&grant.path, volume.guest_path(), perms)
                .map_err(|e| setup(format!("cannot grant {}: {e:#}", grant.path.display())))?;
            volumes.push(volume);
        }

        let exec_grants = self.exec_grants(&spec, &label)?;
        let allowed = self.connect_grants(&spec, &label)?;
        if !allowed.is_empty() {
            let check = allowed.clone();
            wasi.allow_tcp(true)
                .allow_udp(false)
                .allow_ip_name_lookup(true)
                .socket_addr_check(move |addr, usage| {
                    let ok = check.allows(addr, usage);
                    if !ok {
                        tracing::info!(%addr, ?usage, "refused a socket address the job does not grant");
                    }
                    Box::pin(async move { ok })
                });
        } else {
            wasi.allow_udp(false).allow_ip_name_lookup(false);
        }

        let mut state = JobState::new(
            wasi.build(),
            label.clone(),
            Some(self.info.clone()),
            spec.id,
            limits,
            spec.cancel,
            mode,
        );
        state.parameters = parameters;
        state.secrets = spec.secrets;
        state.progress = spec.progress;
        state.volumes = volumes;
        state.exec_grants = exec_grants;

        let mut store = Store::new(&self.runtime.inner.engine, state);
        store.limiter(|s| &mut s.limiter);
        store.set_epoch_deadline(1);
        // Every tick: yield to the job's executor (so the watchdog in `drive` runs), cancel at
        // the deadline, interrupt after the grace period.
        store.epoch_deadline_callback(|ctx| match ctx.data().deadline.tick() {
            Ok(()) => Ok(UpdateDeadline::Yield(1)),
            Err(interrupted) => Err(wasmtime::Error::new(interrupted)),
        });
        Ok((store, pipes))
    }

    /// The job's program grants. Each must be covered by a declaration: a configuration that
    /// grants what the addon never asked for is a mistake worth stopping at.
    fn exec_grants(&self, spec: &JobSpec, label: &str) -> Result<Vec<ExecGrant>> {
        for grant in &spec.exec {
            let declared = self.info.capabilities.iter().any(
                |c| matches!(c, Capability::Exec { program, .. } if *program == grant.program),
            );
            if !declared {
                return Err(Error::PermissionDenied {
                    addon: label.to_owned(),
                    reason: format!(
                        "the job grants running {:?}, which it does not declare",
                        grant.program
                    ),
                });
            }
        }
        Ok(spec.exec.clone())
    }

    /// The job's network grants, resolved. Each must be covered by a declaration.
    fn connect_grants(&self, spec: &JobSpec, label: &str) -> Result<AllowedAddrs> {
        for endpoint in &spec.connect {
            if !self
                .info
                .capabilities
                .iter()
                .any(|c| c.allows_connect(&endpoint.host, endpoint.port))
            {
                return Err(Error::PermissionDenied {
                    addon: label.to_owned(),
                    reason: format!(
                        "the job grants connecting to {endpoint}, which it does not declare"
                    ),
                });
            }
        }
        AllowedAddrs::resolve(&spec.connect).map_err(|reason| Error::Setup {
            addon: label.to_owned(),
            reason,
        })
    }

    /// Turns the result of a run into ours, naming what went wrong.
    fn outcome<T>(
        &self,
        store: &mut Store<JobState>,
        pipes: &Pipes,
        result: wasmtime::Result<std::result::Result<T, AddonError>>,
    ) -> Result<T> {
        let failure = match result {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(err)) => {
                let state = store.data();
                match (&err, state.deadline.cancel.since(), state.host_error.take()) {
                    (_, _, Some(host)) => Failure::Host(host),
                    (AddonError::Cancelled, Some((_, CancelReason::Deadline)), _) => {
                        Failure::Timeout(state.deadline.limits.deadline.unwrap_or_default())
                    }
                    (AddonError::Cancelled, _, _) => Failure::Cancelled,
                    _ => addon_failure(err),
                }
            }
            Err(err) => classify_trap(store, pipes, err),
        };
        Err(Error::Addon {
            addon: self.label(),
            failure,
        })
    }
}

/// Runs `call` to completion on a current-thread executor of its own, next to a watchdog that
/// cancels the job at its deadline and, once the grace period is over, abandons the call even
/// when the addon is blocked inside a host call (a sleep, a wait on a pollable) where the epoch
/// interruption cannot reach it. The store is not used again after an abandoned call, except to
/// read why it stopped.
fn drive<T: Send>(
    deadline: crate::limits::Deadline,
    call: impl std::future::Future<Output = wasmtime::Result<T>> + Send,
) -> wasmtime::Result<T> {
    // A thread of its own: the caller may itself be inside a tokio runtime (a blocking task),
    // where starting another executor is not allowed.
    std::thread::scope(|scope| {
        let job = scope.spawn(move || {
            let executor = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| wasmtime::format_err!("cannot start the job's executor: {e}"))?;
            executor.block_on(async move {
                let watchdog = async {
                    loop {
                        tokio::time::sleep(crate::engine::EPOCH_TICK * 5).await;
                        if let Err(interrupted) = deadline.tick() {
                            return interrupted;
                        }
                    }
                };
                tokio::select! {
                    result = call => result,
                    interrupted = watchdog => Err(wasmtime::Error::new(interrupted)),
                }
            })
        });
        job.join()
            .unwrap_or_else(|_| Err(wasmtime::format_err!("the job's thread panicked")))
    })
}

/// The stdout and stderr pipes of one run.
struct Pipes {
    stdout: LogPipe,
    stderr: LogPipe,
}

fn classify_trap(store: &mut Store<JobState>, pipes: &Pipes, err: wasmtime::Error) -> Failure {
    let state = store.data();
    if let Some(interrupted) = err.downcast_ref::<Interrupted>() {
        return match interrupted.reason {
            CancelReason::Deadline => {
                Failure::Timeout(state.deadline.limits.deadline.unwrap_or_default())
            }
            CancelReason::Requested => Failure::Cancelled,
        };
    }
    if state.limiter.exceeded {
        return Failure::OutOfMemory {
            limit: state.deadline.limits.memory_bytes,
        };
    }
    if let Some(host) = state.host_error.take() {
        return Failure::Host(host);
    }
    let mut message = match err.downcast_ref::<wasmtime::Trap>() {
        Some(trap) => trap.to_string(),
        None => format!("{err:#}"),
    };
    let tail: Vec<String> = pipes
        .stderr
        .tail()
        .into_iter()
        .chain(pipes.stdout.tail())
        .filter(|l| !l.trim().is_empty())
        .collect();
    // Rust panics print "panicked at file:line:" and the message on the next line.
    let last_output = match tail.iter().rposition(|l| l.contains("panicked at")) {
        Some(i) => Some(tail[i..tail.len().min(i + 2)].join(" ")),
        None => tail.last().cloned(),
    };
    if let Some(output) = last_output {
        message = format!("{message}; the addon's last output: {}", output.trim());
    }
    Failure::Trap(message)
}

fn addon_failure(err: AddonError) -> Failure {
    let (kind, message) = match err {
        AddonError::InvalidParameter(m) => ("invalid-parameter", m),
        AddonError::PermissionDenied(m) => ("permission-denied", m),
        AddonError::NotFound(m) => ("not-found", m),
        AddonError::Unavailable(m) => ("unavailable", m),
        AddonError::Cancelled => ("cancelled", String::new()),
        AddonError::Io(m) => ("io", m),
        AddonError::Unsupported(m) => ("unsupported", m),
        AddonError::Corrupt(m) => ("corrupt", m),
        AddonError::Internal(m) => ("internal", m),
    };
    Failure::Failed {
        kind: kind.into(),
        message,
    }
}

/// Refuses components built against another interface line, before anything runs.
fn check_interface(engine: &wasmtime::Engine, component: &Component, origin: &str) -> Result<()> {
    let ty = component.component_type();
    let exports: Vec<String> = ty
        .exports(engine)
        .map(|(name, _)| name.to_owned())
        .collect();
    let ours: Vec<&String> = exports
        .iter()
        .filter(|name| name.starts_with("stowaway:addon/"))
        .collect();
    if ours.is_empty() {
        return Err(Error::InvalidComponent {
            origin: origin.to_owned(),
            reason: format!(
                "it exports none of the stowaway:addon interfaces (exports: {}); is it a Stowaway addon?",
                if exports.is_empty() {
                    "none".to_owned()
                } else {
                    exports.join(", ")
                }
            ),
        });
    }
    for name in ours {
        let version = name.split_once('@').map(|(_, v)| v).unwrap_or("");
        let mut parts = version.split('.').map(|p| p.parse::<u64>().ok());
        let line = (parts.next().flatten(), parts.next().flatten());
        if line != (Some(bindings::LINE.0), Some(bindings::LINE.1)) {
            return Err(Error::UnsupportedInterface {
                origin: origin.to_owned(),
                found: name.clone(),
                supported: format!("{}.{}.x", bindings::LINE.0, bindings::LINE.1),
            });
        }
    }
    Ok(())
}
