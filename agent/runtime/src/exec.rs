//! The `exec` interface: programs an addon declared and the job granted, run on the host.
//!
//! A child gets an empty environment except `PATH`, the command's variables and its secrets,
//! runs in `/`, and has its standard error read by a host thread that logs every line (secrets
//! removed) and keeps the last few for the exit status. A monitor thread per child kills it as
//! soon as the job is cancelled or passes its deadline, whatever the addon is doing. Copies
//! between a child and a component (`stdout-to-component`, `stdin-from-component`) run on
//! host threads, so the bytes never enter the addon's memory.

mod pattern;

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::component::Resource;
use wasmtime_wasi::p2::{DynInputStream, DynOutputStream};
use zeroize::Zeroizing;

use crate::bindings::stowaway::addon::exec::{
    self as wit, Command as WitCommand, Stdio as WitStdio,
};
use crate::bindings::stowaway::addon::types::AddonError;
use crate::components::{ContentTarget, StreamWriterHandle};
use crate::file_writer::{CopyError, pump};
use crate::job::JobState;
use crate::limits::Deadline;

pub(crate) use pattern::args_match;

/// A program a job may run, with argument patterns as in an `exec` capability: each pattern
/// matches one argument (`*` inside it matches any characters), a final `**` matches the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecGrant {
    /// Program name (looked up in `PATH`) or absolute path, as the addon names it.
    pub program: String,
    /// Argument patterns.
    pub args: Vec<String>,
}

impl ExecGrant {
    /// Whether this grant covers running `program` with `args`.
    pub fn allows(&self, program: &str, args: &[String]) -> bool {
        self.program == program && args_match(&self.args, args)
    }
}

/// How often a child's monitor looks at it and at the job's cancellation.
const MONITOR_TICK: Duration = Duration::from_millis(10);
/// Bytes of standard error kept for the exit status.
const STDERR_TAIL: usize = 4096;
/// How many bytes the addon may have in flight towards a child's stdin.
const STDIN_BUDGET: usize = 1 << 20;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A process and its exit status once known.
struct Process {
    child: Mutex<Child>,
    exited: Mutex<Option<ExitStatus>>,
    changed: Condvar,
    /// Set when the host killed it because the job was cancelled.
    cancelled: std::sync::atomic::AtomicBool,
}

impl Process {
    fn kill(&self) {
        if lock(&self.exited).is_none() {
            // An error means it already exited; the monitor reaps it either way.
            let _ = lock(&self.child).kill();
        }
    }

    fn status(&self) -> Option<ExitStatus> {
        *lock(&self.exited)
    }
}

/// Polls the child until it exits; kills it once the job is cancelled.
fn monitor(process: Arc<Process>, deadline: Deadline, program: String) {
    let mut killed = false;
    loop {
        let status = lock(&process.child).try_wait();
        match status {
            Ok(Some(status)) => {
                *lock(&process.exited) = Some(status);
                process.changed.notify_all();
                return;
            }
            Ok(None) => {}
            Err(err) => {
                tracing::warn!(%program, "cannot wait for the child: {err}");
                return;
            }
        }
        if !killed && deadline.is_cancelled() {
            tracing::info!(%program, "job cancelled; killing the child");
            process
                .cancelled
                .store(true, std::sync::atomic::Ordering::SeqCst);
            let _ = lock(&process.child).kill();
            killed = true;
        }
        std::thread::sleep(MONITOR_TICK);
    }
}

/// The last lines of a child's standard error.
#[derive(Default)]
struct StderrTail {
    lines: VecDeque<String>,
    bytes: usize,
}

impl StderrTail {
    fn push(&mut self, line: String) {
        self.bytes += line.len() + 1;
        self.lines.push_back(line);
        while self.bytes > STDERR_TAIL && self.lines.len() > 1 {
            if let Some(old) = self.lines.pop_front() {
                self.bytes -= old.len() + 1;
            }
        }
    }

    fn text(&self) -> String {
        let text = self.lines.iter().cloned().collect::<Vec<_>>().join("\n");
        let mut start = text.len().saturating_sub(STDERR_TAIL);
        while !text.is_char_boundary(start) {
            start += 1;
        }
        text[start..].to_owned()
    }
}

/// Replaces every secret value in `line` by `***`.
fn redact(line: &str, secrets: &[Zeroizing<String>]) -> String {
    let mut line = line.to_owned();
    for secret in secrets {
        if !secret.is_empty() {
            line = line.replace(secret.as_str(), "***");
        }
    }
    line
}

fn read_stderr(
    stderr: impl Read,
    tail: Arc<Mutex<StderrTail>>,
    secrets: Vec<Zeroizing<String>>,
    addon: String,
    program: String,
) {
    let mut reader = BufReader::new(stderr);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let raw = String::from_utf8_lossy(&buf);
        let line = redact(raw.trim_end_matches(['\n', '\r']), &secrets);
        tracing::info!(target: "addon", addon = %addon, program = %program, "{line}");
        lock(&tail).push(line);
    }
}

/// A host-side copy between a child and a component.
struct Copy {
    what: String,
    /// Copies into the child's stdin fail with a broken pipe when the child exits early.
    into_child: bool,
    thread: JoinHandle<Result<u64, CopyError>>,
}

/// The resource behind `exec.child`.
pub struct ChildHandle {
    program: String,
    pid: u32,
    process: Arc<Process>,
    stdin: Option<ChildStdin>,
    stdout: Option<ChildStdout>,
    copies: Vec<Copy>,
    stderr: Option<JoinHandle<()>>,
    tail: Arc<Mutex<StderrTail>>,
}

impl Drop for ChildHandle {
    fn drop(&mut self) {
        if self.process.status().is_none() {
            tracing::debug!(program = %self.program, pid = self.pid, "child dropped while running; killing it");
            self.process.kill();
        }
    }
}

/// Finds `program` the way a shell would: an absolute path as is, a bare name in `PATH`.
fn resolve_program(program: &str, path: &str) -> Result<PathBuf, AddonError> {
    if program.contains('/') {
        let candidate = Path::new(program);
        if !candidate.is_absolute() {
            return Err(AddonError::InvalidParameter(format!(
                "program {program:?} must be a bare name or an absolute path"
            )));
        }
        if candidate.is_file() {
            return Ok(candidate.to_path_buf());
        }
        return Err(AddonError::NotFound(format!(
            "program {program} is not installed on this host"
        )));
    }
    std::env::split_paths(path)
        .map(|dir| dir.join(program))
        .find(|p| is_executable(p))
        .ok_or_else(|| {
            AddonError::NotFound(format!(
                "program {program:?} is not installed on this host (not found in PATH)"
            ))
        })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

fn check_env_name(name: &str) -> Result<(), AddonError> {
    if name.is_empty() || name.contains('=') || name.contains('\0') {
        return Err(AddonError::InvalidParameter(format!(
            "{name:?} is not an environment variable name"
        )));
    }
    if name.starts_with("LD_") || name.starts_with("DYLD_") {
        return Err(AddonError::PermissionDenied(format!(
            "environment variable {name} may not be set for a child"
        )));
    }
    Ok(())
}

impl JobState {
    /// Checks `command` against the addon's declaration and the job's grants.
    fn exec_allowed(&self, command: &WitCommand) -> Result<(), AddonError> {
        let shown = show_command(command);
        let declared = self.info.as_ref().is_some_and(|info| {
            info.capabilities
                .iter()
                .any(|c| c.allows_exec(&command.program, &command.args))
        });
        if !declared {
            return Err(AddonError::PermissionDenied(format!(
                "running `{shown}` is not declared in describe().capabilities"
            )));
        }
        if !self
            .exec_grants
            .iter()
            .any(|g| g.allows(&command.program, &command.args))
        {
            return Err(AddonError::PermissionDenied(format!(
                "running `{shown}` is not granted to this job"
            )));
        }
        Ok(())
    }

    fn spawn_child(&mut self, command: WitCommand) -> Result<ChildHandle, AddonError> {
        self.exec_allowed(&command)?;
        let path = std::env::var("PATH").unwrap_or_else(|_| DEFAULT_PATH.to_owned());
        let resolved = resolve_program(&command.program, &path)?;
        let mut cmd = Command::new(&resolved);
        cmd.args(&command.args)
            .env_clear()
            .env("PATH", &path)
            .current_dir("/")
            .stdin(match command.stdin {
                WitStdio::Null => Stdio::null(),
                WitStdio::Pipe => Stdio::piped(),
            })
            .stdout(match command.stdout {
                WitStdio::Null => Stdio::null(),
                WitStdio::Pipe => Stdio::piped(),
            })
            .stderr(Stdio::piped());
        for (name, value) in &command.env {
            check_env_name(name)?;
            cmd.env(name, value);
        }
        let mut secrets = Vec::new();
        for (name, secret) in &command.secret_env {
            check_env_name(name)?;
            let value = self.granted_secret(secret)?;
            let text = String::from_utf8(value.to_vec()).map_err(|_| {
                AddonError::InvalidParameter(format!(
                    "secret {secret:?} is not UTF-8 text and cannot be put into the environment"
                ))
            })?;
            cmd.env(name, &text);
            secrets.push(Zeroizing::new(text));
        }
        // Secrets the child may echo in other forms are not known; the values themselves are.
        for value in self.secrets.values() {
            if let Ok(text) = std::str::from_utf8(value)
                && text.len() >= 4
                && !secrets.iter().any(|s| s.as_str() == text)
            {
                secrets.push(Zeroizing::new(text.to_owned()));
            }
        }

        let mut child = cmd.spawn().map_err(|err| {
            if err.kind() == std::io::ErrorKind::NotFound {
                AddonError::NotFound(format!("program {} cannot be run: {err}", command.program))
            } else {
                AddonError::Io(format!("cannot start {}: {err}", command.program))
            }
        })?;
        let pid = child.id();
        tracing::debug!(addon = %self.addon, program = %command.program, pid, args = ?command.args, "started a child");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let process = Arc::new(Process {
            child: Mutex::new(child),
            exited: Mutex::new(None),
            changed: Condvar::new(),
            cancelled: Default::default(),
        });
        let spawn_thread = |name: &str, f: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(name.to_owned())
                .spawn(f)
                .map_err(|e| AddonError::Internal(format!("cannot start a thread: {e}")))
        };
        {
            let watched = process.clone();
            let deadline = self.deadline.clone();
            let program = command.program.clone();
            if let Err(err) = spawn_thread(
                "stowaway-child",
                Box::new(move || monitor(watched, deadline, program)),
            ) {
                process.kill();
                return Err(err);
            }
        }
        let tail = Arc::new(Mutex::new(StderrTail::default()));
        let stderr = match stderr {
            Some(stderr) => {
                let tail = tail.clone();
                let addon = self.addon.clone();
                let program = command.program.clone();
                let thread = std::thread::Builder::new()
                    .name("stowaway-stderr".into())
                    .spawn(move || read_stderr(stderr, tail, secrets, addon, program));
                match thread {
                    Ok(thread) => Some(thread),
                    Err(e) => {
                        process.kill();
                        return Err(AddonError::Internal(format!("cannot start a thread: {e}")));
                    }
                }
            }
            None => None,
        };
        Ok(ChildHandle {
            program: command.program,
            pid,
            process,
            stdin,
            stdout,
            copies: Vec::new(),
            stderr,
            tail,
        })
    }

    /// A secret's value, when the addon declared it and the job provides it.
    pub(crate) fn granted_secret(&self, name: &str) -> Result<Zeroizing<Vec<u8>>, AddonError> {
        let declared = self
            .info
            .as_ref()
            .is_some_and(|info| info.capabilities.iter().any(|c| c.allows_secret(name)));
        if !declared {
            return Err(AddonError::PermissionDenied(format!(
                "secret {name:?} is not declared in describe().capabilities"
            )));
        }
        self.secrets.get(name).cloned().ok_or_else(|| {
            AddonError::NotFound(format!("secret {name:?} was not provided for this job"))
        })
    }
}

/// `program arg arg`, for messages (arguments are the addon's, never secrets).
fn show_command(command: &WitCommand) -> String {
    std::iter::once(command.program.as_str())
        .chain(command.args.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join(" ")
}

fn start_copy<F>(what: String, into_child: bool, f: F) -> Result<Copy, AddonError>
where
    F: FnOnce() -> Result<u64, CopyError> + Send + 'static,
{
    let thread = std::thread::Builder::new()
        .name("stowaway-copy".into())
        .spawn(f)
        .map_err(|e| AddonError::Internal(format!("cannot start a thread: {e}")))?;
    Ok(Copy {
        what,
        into_child,
        thread,
    })
}

impl wit::Host for JobState {
    fn spawn(
        &mut self,
        command: WitCommand,
    ) -> wasmtime::Result<Result<Resource<ChildHandle>, AddonError>> {
        Ok(match self.spawn_child(command) {
            Ok(child) => Ok(self.table.push(child)?),
            Err(err) => Err(err),
        })
    }
}

impl wit::HostChild for JobState {
    fn id(&mut self, this: Resource<ChildHandle>) -> wasmtime::Result<u32> {
        Ok(self.table.get(&this)?.pid)
    }

    fn stdin(
        &mut self,
        this: Resource<ChildHandle>,
    ) -> wasmtime::Result<Result<Resource<DynOutputStream>, AddonError>> {
        let child = self.table.get_mut(&this)?;
        let Some(stdin) = child.stdin.take() else {
            return Ok(Err(not_piped(&child.program, "standard input")));
        };
        let stdin = match tokio::process::ChildStdin::from_std(stdin) {
            Ok(stdin) => stdin,
            Err(e) => return Ok(Err(AddonError::Io(format!("cannot use the pipe: {e}")))),
        };
        let stream: DynOutputStream = Box::new(wasmtime_wasi::p2::pipe::AsyncWriteStream::new(
            STDIN_BUDGET,
            stdin,
        ));
        Ok(Ok(self.table.push(stream)?))
    }

    fn stdout(
        &mut self,
        this: Resource<ChildHandle>,
    ) -> wasmtime::Result<Result<Resource<DynInputStream>, AddonError>> {
        let child = self.table.get_mut(&this)?;
        let Some(stdout) = child.stdout.take() else {
            return Ok(Err(not_piped(&child.program, "standard output")));
        };
        let stdout = match tokio::process::ChildStdout::from_std(stdout) {
            Ok(stdout) => stdout,
            Err(e) => return Ok(Err(AddonError::Io(format!("cannot use the pipe: {e}")))),
        };
        let stream: DynInputStream =
            Box::new(wasmtime_wasi::p2::pipe::AsyncReadStream::new(stdout));
        Ok(Ok(self.table.push(stream)?))
    }

    fn stdout_to_component(
        &mut self,
        this: Resource<ChildHandle>,
        component: Resource<StreamWriterHandle>,
    ) -> wasmtime::Result<Result<(), AddonError>> {
        let (name, target) = match self.table.get_mut(&component)?.take_for_copy() {
            Ok(taken) => taken,
            Err(err) => return Ok(Err(err)),
        };
        let host_error = self.host_error.clone();
        let child = self.table.get_mut(&this)?;
        let Some(mut stdout) = child.stdout.take() else {
            return Ok(Err(not_piped(&child.program, "standard output")));
        };
        let what = format!(
            "copying the output of {} into component {name}",
            child.program
        );
        let copy = start_copy(what, false, move || {
            pump(&mut stdout, |data| match target.write(data) {
                None => Err(std::io::Error::other(format!(
                    "component {name} was finished before the program's output ended"
                ))),
                Some(Ok(())) => Ok(()),
                Some(Err(err)) => {
                    host_error.record(format!("writing to the repository: {err}"));
                    Err(std::io::Error::other(err.to_string()))
                }
            })
        });
        Ok(copy.map(|copy| child.copies.push(copy)))
    }

    fn stdin_from_component(
        &mut self,
        this: Resource<ChildHandle>,
        name: String,
    ) -> wasmtime::Result<Result<(), AddonError>> {
        let (repository, component) =
            match self.restore_component(&name, stowaway_repository::ComponentKind::Stream) {
                Ok(found) => found,
                Err(err) => return Ok(Err(err)),
            };
        let progress = self.progress.clone();
        let child = self.table.get_mut(&this)?;
        let Some(mut stdin) = child.stdin.take() else {
            return Ok(Err(not_piped(&child.program, "standard input")));
        };
        let mut reader = match repository.open_stream(&component) {
            Ok(reader) => reader,
            Err(err) => {
                let err = AddonError::Io(format!("opening component {name}: {err}"));
                return Ok(Err(err));
            }
        };
        let what = format!("feeding component {name} to {}", child.program);
        let copy = start_copy(what, true, move || {
            // Dropping `stdin` at the end closes the child's input.
            pump(&mut reader, |data| {
                stdin.write_all(data)?;
                if let Some(progress) = &progress {
                    progress.transferred(data.len() as u64);
                }
                Ok(())
            })
        });
        Ok(copy.map(|copy| child.copies.push(copy)))
    }

    fn wait(
        &mut self,
        this: Resource<ChildHandle>,
    ) -> wasmtime::Result<Result<wit::ExitStatus, AddonError>> {
        let deadline = self.deadline.clone();
        let child = self.table.get_mut(&this)?;
        // A pipe nobody reads would keep the child from exiting.
        child.stdin.take();
        let status = {
            let mut exited = lock(&child.process.exited);
            loop {
                if let Some(status) = *exited {
                    break status;
                }
                if deadline.is_cancelled() {
                    // The monitor kills it within a tick; keep waiting for the exit.
                    child
                        .process
                        .cancelled
                        .store(true, std::sync::atomic::Ordering::SeqCst);
                }
                exited = child
                    .process
                    .changed
                    .wait_timeout(exited, MONITOR_TICK * 5)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
        };
        let mut copy_error = None;
        for copy in child.copies.drain(..) {
            let result = copy.thread.join().unwrap_or_else(|_| {
                Err(CopyError::Read(std::io::Error::other(
                    "the copy thread panicked",
                )))
            });
            match result {
                Ok(bytes) => tracing::debug!(what = %copy.what, bytes, "copy complete"),
                // The child stopped reading: its exit status tells why, unless it succeeded.
                Err(CopyError::Write(e))
                    if copy.into_child && e.kind() == std::io::ErrorKind::BrokenPipe =>
                {
                    if status.success() && copy_error.is_none() {
                        copy_error = Some(format!(
                            "{}: {} exited before it read all of its input",
                            copy.what, child.program
                        ));
                    }
                }
                Err(CopyError::Read(e) | CopyError::Write(e)) => {
                    if copy_error.is_none() {
                        copy_error = Some(format!("{}: {e}", copy.what));
                    }
                }
            }
        }
        if let Some(stderr) = child.stderr.take() {
            let _ = stderr.join();
        }
        if child
            .process
            .cancelled
            .load(std::sync::atomic::Ordering::SeqCst)
            && !status.success()
        {
            return Ok(Err(AddonError::Cancelled));
        }
        if let Some(message) = copy_error {
            return Ok(Err(AddonError::Io(message)));
        }
        use std::os::unix::process::ExitStatusExt;
        Ok(Ok(wit::ExitStatus {
            code: status.code(),
            signal: status.signal(),
            stderr_tail: lock(&child.tail).text(),
        }))
    }

    fn kill(&mut self, this: Resource<ChildHandle>) -> wasmtime::Result<()> {
        self.table.get(&this)?.process.kill();
        Ok(())
    }

    fn drop(&mut self, this: Resource<ChildHandle>) -> wasmtime::Result<()> {
        self.table.delete(this)?;
        Ok(())
    }
}

fn not_piped(program: &str, what: &str) -> AddonError {
    AddonError::InvalidParameter(format!(
        "the {what} of {program} is not a pipe or was already taken"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_last_lines_within_the_limit() {
        let mut tail = StderrTail::default();
        for i in 0..1000 {
            tail.push(format!("line {i} {}", "x".repeat(40)));
        }
        let text = tail.text();
        assert!(text.len() <= STDERR_TAIL);
        assert!(text.ends_with(&format!("line 999 {}", "x".repeat(40))));
        assert!(!text.contains("line 0 "));
    }

    #[test]
    fn redaction_removes_every_secret() {
        let secrets = vec![Zeroizing::new("hunter22".to_owned())];
        assert_eq!(
            redact("auth failed for hunter22 (hunter22)", &secrets),
            "auth failed for *** (***)"
        );
    }

    #[test]
    fn programs_resolve_through_path_only_as_bare_names() {
        assert!(resolve_program("sh", DEFAULT_PATH).is_ok());
        assert!(matches!(
            resolve_program("no-such-program-here", DEFAULT_PATH),
            Err(AddonError::NotFound(_))
        ));
        assert!(matches!(
            resolve_program("bin/sh", DEFAULT_PATH),
            Err(AddonError::InvalidParameter(_))
        ));
        assert!(resolve_program("/bin/sh", "").is_ok());
    }

    #[test]
    fn loader_variables_are_refused() {
        assert!(matches!(
            check_env_name("LD_PRELOAD"),
            Err(AddonError::PermissionDenied(_))
        ));
        assert!(check_env_name("PGPASSWORD").is_ok());
        assert!(check_env_name("A=B").is_err());
    }
}
