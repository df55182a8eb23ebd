//! Running programs on the host (`stowaway:addon/exec`, interface 0.1.1).
//!
//! An addon may run only the programs it declares as [`Capability::Exec`](crate::Capability)
//! and the job grants. The child runs on the host with an environment holding only `PATH`,
//! the variables set here, and the secrets named with [`Command::secret_env`] (whose values
//! never pass through the addon). Its standard error goes to the host's log; its last lines
//! come back in [`ExitStatus::stderr_tail`].
//!
//! ```no_run
//! use stowaway_addon::exec::{Command, Stdio};
//! # fn f(job: &stowaway_addon::Job) -> Result<(), stowaway_addon::AddonError> {
//! // A short command, output captured:
//! let version = Command::new("pg_dump").arg("--version").output()?.checked("pg_dump")?;
//! // A long one, output copied by the host straight into a stream component:
//! let component = job.create_stream("dump.sql", "application/sql")?;
//! let child = Command::new("pg_dumpall")
//!     .args(["--host", "db", "--port", "5432"])
//!     .secret_env("PGPASSWORD", "password")
//!     .stdout(Stdio::Pipe)
//!     .spawn()?;
//! child.stdout_to_component(&component)?;
//! child.wait()?.check("pg_dumpall")?;
//! stowaway_addon::StreamWriter::finish(component, &[])?;
//! # Ok(()) }
//! ```

use std::io::Read;

use crate::AddonError;
use crate::bindings::stowaway::addon::exec as wit;
use crate::io::InputReader;

pub use wit::{Child, ExitStatus, Stdio};

/// Most bytes [`Command::output`] keeps of a program's standard output.
pub const OUTPUT_LIMIT: usize = 16 << 20;

/// A program to run, built step by step.
#[derive(Debug, Clone)]
pub struct Command {
    inner: wit::Command,
}

impl Command {
    /// Runs `program` (a name looked up in the host's `PATH`, or an absolute path), with no
    /// arguments, standard input and output connected to nothing.
    pub fn new(program: impl Into<String>) -> Self {
        Command {
            inner: wit::Command {
                program: program.into(),
                args: Vec::new(),
                env: Vec::new(),
                secret_env: Vec::new(),
                stdin: Stdio::Null,
                stdout: Stdio::Null,
            },
        }
    }

    /// Adds an argument.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.inner.args.push(arg.into());
        self
    }

    /// Adds arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.inner.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets an environment variable.
    pub fn env(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.inner.env.push((name.into(), value.into()));
        self
    }

    /// Sets environment variable `name` to the value of secret `secret`, inside the host.
    pub fn secret_env(mut self, name: impl Into<String>, secret: impl Into<String>) -> Self {
        self.inner.secret_env.push((name.into(), secret.into()));
        self
    }

    /// Connects standard input (default: [`Stdio::Null`]).
    pub fn stdin(mut self, stdio: Stdio) -> Self {
        self.inner.stdin = stdio;
        self
    }

    /// Connects standard output (default: [`Stdio::Null`]).
    pub fn stdout(mut self, stdio: Stdio) -> Self {
        self.inner.stdout = stdio;
        self
    }

    /// The program name.
    pub fn program(&self) -> &str {
        &self.inner.program
    }

    /// Starts the program.
    pub fn spawn(&self) -> Result<Child, AddonError> {
        wit::spawn(&self.inner)
    }

    /// Runs the program to the end with standard input empty, and returns its status and
    /// standard output (at most [`OUTPUT_LIMIT`] bytes; more is an error).
    pub fn output(&self) -> Result<Output, AddonError> {
        let mut command = self.inner.clone();
        command.stdout = Stdio::Pipe;
        command.stdin = Stdio::Null;
        let child = wit::spawn(&command)?;
        let mut stdout = Vec::new();
        let mut reader = InputReader::new(child.stdout()?).take(OUTPUT_LIMIT as u64 + 1);
        reader.read_to_end(&mut stdout)?;
        if stdout.len() > OUTPUT_LIMIT {
            child.kill();
            let _ = child.wait();
            return Err(AddonError::Io(format!(
                "{} wrote more than {OUTPUT_LIMIT} bytes to its standard output",
                self.inner.program
            )));
        }
        drop(reader);
        let status = child.wait()?;
        Ok(Output { status, stdout })
    }
}

/// What [`Command::output`] returns.
#[derive(Debug, Clone)]
pub struct Output {
    /// How the program ended.
    pub status: ExitStatus,
    /// Its standard output.
    pub stdout: Vec<u8>,
}

impl Output {
    /// The standard output as text (invalid UTF-8 replaced), when the program succeeded;
    /// otherwise the error of [`ExitStatus::check`].
    pub fn checked(self, program: &str) -> Result<String, AddonError> {
        self.status.check(program)?;
        Ok(String::from_utf8_lossy(&self.stdout).into_owned())
    }
}

impl ExitStatus {
    /// Whether the program exited with status 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// `exit status N` or `killed by signal N`.
    pub fn describe(&self) -> String {
        match (self.code, self.signal) {
            (Some(code), _) => format!("exit status {code}"),
            (None, Some(signal)) => format!("killed by signal {signal}"),
            (None, None) => "unknown exit status".into(),
        }
    }

    /// The last non-empty lines of standard error, joined with `; `, at most `max` lines.
    pub fn stderr_lines(&self, max: usize) -> String {
        let lines: Vec<&str> = self
            .stderr_tail
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        lines[lines.len().saturating_sub(max)..].join("; ")
    }

    /// `Ok` when the program succeeded; otherwise [`AddonError::Io`] with the program's
    /// name, its status and the last lines of its standard error.
    pub fn check(&self, program: &str) -> Result<(), AddonError> {
        if self.success() {
            return Ok(());
        }
        let stderr = self.stderr_lines(3);
        Err(AddonError::Io(if stderr.is_empty() {
            format!("{program} failed ({})", self.describe())
        } else {
            format!("{program} failed ({}): {stderr}", self.describe())
        }))
    }
}

impl Command {
    /// Backup: runs the program with its standard output copied by the host into a new
    /// stream component `name` (the bytes never enter the addon's memory), and finishes the
    /// component with `attributes` when the program succeeds. A program that fails leaves
    /// the component unfinished (not recorded) and returns `on_failure`'s error.
    pub fn run_into_component(
        self,
        job: &crate::Job,
        name: &str,
        media_type: &str,
        attributes: &crate::Attributes,
        on_failure: impl FnOnce(&ExitStatus) -> AddonError,
    ) -> Result<crate::ComponentInfo, AddonError> {
        job.check_cancelled()?;
        let component = job.create_stream(name, media_type)?;
        let child = self.stdout(Stdio::Pipe).spawn()?;
        child.stdout_to_component(&component)?;
        let status = child.wait()?;
        if !status.success() {
            return Err(on_failure(&status));
        }
        crate::StreamWriter::finish(component, attributes)
    }

    /// Restore: runs the program with stream component `name` copied by the host into its
    /// standard input. Returns the exit status when the program succeeds, `on_failure`'s
    /// error otherwise.
    pub fn run_from_component(
        self,
        job: &crate::Job,
        name: &str,
        on_failure: impl FnOnce(&ExitStatus) -> AddonError,
    ) -> Result<ExitStatus, AddonError> {
        job.check_cancelled()?;
        let child = self.stdin(Stdio::Pipe).spawn()?;
        child.stdin_from_component(name)?;
        let status = child.wait()?;
        if !status.success() {
            return Err(on_failure(&status));
        }
        Ok(status)
    }
}

/// What a database client's error message means, for [`explain_client_failure`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Meaning {
    /// The server refused the user's credentials.
    Credentials,
    /// The user may not do what was asked.
    Permission,
    /// The server could not be reached.
    Unreachable,
    /// A database or other object does not exist.
    Missing,
}

/// The server a client program talked to, for [`explain_client_failure`].
#[derive(Debug, Clone, Copy)]
pub struct ClientContext<'a> {
    /// `PostgreSQL at db:5432`, `the server at db:3306`.
    pub at: &'a str,
    /// The user the program connected as.
    pub user: &'a str,
    /// Whether the job provided a password.
    pub password_given: bool,
    /// Where a password comes from, for the hint when none was given
    /// (`--secret password=FILE or PGPASSWORD`).
    pub password_source: &'a str,
}

/// Turns a failed client program into an error a person can act on: the first rule with a
/// needle found in the last lines of standard error (case-insensitive) gives the kind;
/// anything else is [`AddonError::Io`] with the program's status and message.
pub fn explain_client_failure(
    program: &str,
    status: &ExitStatus,
    context: ClientContext<'_>,
    rules: &[(Meaning, &[&str])],
) -> AddonError {
    let stderr = status.stderr_lines(3);
    let lower = stderr.to_lowercase();
    let at = context.at;
    let meaning = rules
        .iter()
        .find(|(_, needles)| needles.iter().any(|n| lower.contains(&n.to_lowercase())))
        .map(|(meaning, _)| *meaning);
    match meaning {
        Some(Meaning::Credentials) => {
            let hint = if context.password_given {
                "check the password".to_owned()
            } else {
                format!("no password was given ({})", context.password_source)
            };
            AddonError::PermissionDenied(format!(
                "{at} refused user {:?}: {stderr} ({hint})",
                context.user
            ))
        }
        Some(Meaning::Permission) => {
            AddonError::PermissionDenied(format!("{program} against {at}: {stderr}"))
        }
        Some(Meaning::Unreachable) => {
            AddonError::Unavailable(format!("cannot reach {at}: {stderr}"))
        }
        Some(Meaning::Missing) => AddonError::NotFound(format!("{program} against {at}: {stderr}")),
        None => match status.check(program) {
            Err(AddonError::Io(message)) => AddonError::Io(format!("{message} ({at})")),
            Err(other) => other,
            Ok(()) => AddonError::Internal(format!("{program} succeeded but was reported failed")),
        },
    }
}
