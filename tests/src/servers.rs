//! Test servers: started on a free port of 127.0.0.1, killed on drop.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use stowaway_storage::{AzureConfig, S3Config, StorageConfig, StorageOptions};

/// Set (to anything but `0` or empty) to fail instead of skipping when a server is missing.
pub const REQUIRE_ENV: &str = "STOWAWAY_REQUIRE_SERVERS";
/// Path of `moto_server` (default: the venv of `scripts/servers.sh`, then `$PATH`).
pub const MOTO_ENV: &str = "STOWAWAY_MOTO";
/// Path of `azurite-blob` (default: the npm prefix of `scripts/servers.sh`, then `$PATH`).
pub const AZURITE_ENV: &str = "STOWAWAY_AZURITE";

const DEFAULT_PREFIX: &str = "/opt/stowaway-test";
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// Whether a missing server must fail the test run.
pub fn servers_required() -> bool {
    std::env::var(REQUIRE_ENV).is_ok_and(|v| !v.is_empty() && v != "0")
}

/// A path from the environment variable `env`, if it is set and not empty.
pub(crate) fn env_path(env: &str) -> Option<PathBuf> {
    std::env::var_os(env)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// `name` in a directory of `$PATH`.
pub(crate) fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    })
}

/// Finds a server program: `$env`, else `default`, else `name` on `$PATH`.
fn find_program(env: &str, default: &str, name: &str) -> Option<PathBuf> {
    if let Some(path) = env_path(env) {
        return Some(path).filter(|p| p.is_file());
    }
    let default = PathBuf::from(default);
    if default.is_file() {
        return Some(default);
    }
    on_path(name)
}

/// The program, or `None` after a loud message; panics when servers are required.
pub(crate) fn program_or_skip(env: &str, default: &str, name: &str) -> Option<PathBuf> {
    if let Some(path) = find_program(env, default, name) {
        return Some(path);
    }
    skip(&format!(
        "{name} not found (set {env} or run `bash scripts/servers.sh install`)"
    ))
}

/// `None` after a loud `SKIPPED` line saying `message`; a panic instead when servers are
/// required.
pub(crate) fn skip<T>(message: &str) -> Option<T> {
    if servers_required() {
        panic!("{message}; {REQUIRE_ENV} is set, so this is an error");
    }
    eprintln!("\n*** SKIPPED: {message}. Set {REQUIRE_ENV}=1 to make this fail. ***\n");
    None
}

/// A free TCP port on 127.0.0.1 (free when asked; the server binds it right after).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port on 127.0.0.1: {e}"))
}

/// A running server process; killed and reaped when dropped.
#[derive(Debug)]
pub struct Server {
    name: &'static str,
    child: Child,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Server {
    /// Starts `program` with the arguments `args(port, data_dir)` and waits until the port
    /// accepts connections. Retries on another port if the process exits early (a port
    /// taken in between).
    pub fn start(
        name: &'static str,
        program: &Path,
        args: impl Fn(u16, &Path) -> Vec<String>,
    ) -> Server {
        Server::launch(
            name,
            |port, dir| {
                let mut command = Command::new(program);
                command.args(args(port, dir)).current_dir(dir);
                command
            },
            |_| true,
        )
    }

    /// Spawns `command(port, dir)` (`dir` is a fresh temporary directory that holds the
    /// log) with its output going to the log, and waits until the port accepts connections
    /// and `ready(port)` holds. Retries on another port if the process exits early.
    pub(crate) fn launch(
        name: &'static str,
        command: impl Fn(u16, &Path) -> Command,
        ready: impl Fn(u16) -> bool,
    ) -> Server {
        let mut last_log = String::new();
        for _ in 0..3 {
            let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir for {name}: {e}"));
            let log = dir.path().join("server.log");
            let port = free_port();
            let out =
                std::fs::File::create(&log).unwrap_or_else(|e| panic!("log file for {name}: {e}"));
            let err = out
                .try_clone()
                .unwrap_or_else(|e| panic!("log file for {name}: {e}"));
            let mut command = command(port, dir.path());
            let child = command
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err)
                .spawn()
                .unwrap_or_else(|e| {
                    panic!("starting {name} ({}): {e}", command.get_program().display())
                });
            let mut server = Server {
                name,
                child,
                port,
                log,
                _dir: dir,
            };
            if server.wait_ready(&ready) {
                return server;
            }
            last_log = server.log_text();
        }
        panic!("{name} did not start; its last log:\n{last_log}");
    }

    /// Waits until the port accepts connections and `ready` holds; false if the process
    /// exited.
    fn wait_ready(&mut self, ready: impl Fn(u16) -> bool) -> bool {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() && ready(self.port) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "{} was not ready on 127.0.0.1:{} within {STARTUP_TIMEOUT:?}; log:\n{}",
            self.name,
            self.port,
            self.log_text()
        );
    }

    /// Sends `signal` and waits up to `grace` for the server to exit (dropping it kills it if
    /// it has not).
    pub(crate) fn stop(&mut self, signal: rustix::process::Signal, grace: Duration) {
        if !matches!(self.child.try_wait(), Ok(None)) {
            return;
        }
        let pid = rustix::process::Pid::from_child(&self.child);
        if rustix::process::kill_process(pid, signal).is_err() {
            return;
        }
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The server's output so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request over a fresh connection; returns the status and the body.
pub fn http_request(port: u16, head: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .unwrap_or_else(|e| panic!("connecting to 127.0.0.1:{port}: {e}"));
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    stream
        .write_all(head.as_bytes())
        .unwrap_or_else(|e| panic!("sending to 127.0.0.1:{port}: {e}"));
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// The moto S3 server (`moto_server` from PyPI).
#[derive(Debug)]
pub struct Moto {
    server: Server,
    credentials: tempfile::TempDir,
}

impl Moto {
    /// Starts moto, or returns `None` (loudly) when it is not installed.
    pub fn start() -> Option<Moto> {
        let default = format!("{DEFAULT_PREFIX}/venv/bin/moto_server");
        let program = program_or_skip(MOTO_ENV, &default, "moto_server")?;
        let server = Server::start("moto_server", &program, |port, _| {
            vec![
                "-H".into(),
                "127.0.0.1".into(),
                "-p".into(),
                port.to_string(),
            ]
        });
        // Credentials as a mounted Kubernetes Secret: one file per key.
        let credentials = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        for (key, value) in [
            ("AWS_ACCESS_KEY_ID", "stowaway-test"),
            ("AWS_SECRET_ACCESS_KEY", "stowaway-test-secret"),
        ] {
            std::fs::write(credentials.path().join(key), value)
                .unwrap_or_else(|e| panic!("writing {key}: {e}"));
        }
        Some(Moto {
            server,
            credentials,
        })
    }

    /// The server.
    pub fn server(&self) -> &Server {
        &self.server
    }

    /// Creates a bucket, optionally with S3 Object Lock (and so versioning) enabled.
    pub fn create_bucket(&self, bucket: &str, object_lock: bool) {
        let lock = if object_lock {
            "x-amz-bucket-object-lock-enabled: true\r\n"
        } else {
            ""
        };
        let port = self.server.port();
        let (status, body) = http_request(
            port,
            &format!(
                "PUT /{bucket} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\n\
                 {lock}Connection: close\r\n\r\n"
            ),
        );
        assert_eq!(status, 200, "creating bucket {bucket}: {body}");
    }

    /// Path-style configuration of `bucket`/`prefix` on this server.
    pub fn config(&self, bucket: &str, prefix: &str) -> StorageConfig {
        StorageConfig::s3(S3Config {
            endpoint: Some(self.server.endpoint()),
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
            region: Some("us-east-1".to_owned()),
            secret_name: Some("moto-credentials".to_owned()),
            ..S3Config::default()
        })
    }

    /// Options with the credentials of this server (as a Secret directory).
    pub fn options(&self) -> StorageOptions {
        StorageOptions {
            credentials: Some(self.credentials.path().to_owned()),
            ..StorageOptions::default()
        }
    }

    /// The credentials directory (files `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`).
    pub fn credentials_dir(&self) -> &Path {
        self.credentials.path()
    }
}

/// The Azurite blob emulator (`azurite-blob` from npm).
#[derive(Debug)]
pub struct Azurite {
    server: Server,
}

/// Azurite's well-known development account and key (public, documented by Microsoft).
const AZURITE_ACCOUNT: &str = "devstoreaccount1";
const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

impl Azurite {
    /// Starts Azurite (blob service, in memory), or returns `None` (loudly) when it is not
    /// installed.
    pub fn start() -> Option<Azurite> {
        let default = format!("{DEFAULT_PREFIX}/azurite/node_modules/.bin/azurite-blob");
        let program = program_or_skip(AZURITE_ENV, &default, "azurite-blob")?;
        let server = Server::start("azurite-blob", &program, |port, _| {
            [
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                &port.to_string(),
                "--inMemoryPersistence",
                "--skipApiVersionCheck",
                "--disableTelemetry",
                "--loose",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect()
        });
        Some(Azurite { server })
    }

    /// The server.
    pub fn server(&self) -> &Server {
        &self.server
    }

    /// Creates a container (a request signed with the emulator's shared key).
    pub fn create_container(&self, container: &str) {
        use base64::Engine as _;
        let engine = base64::engine::general_purpose::STANDARD;
        let date = jiff::Timestamp::now()
            .strftime("%a, %d %b %Y %H:%M:%S GMT")
            .to_string();
        let version = "2021-08-06";
        let to_sign = format!(
            "PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:{version}\n\
             /{AZURITE_ACCOUNT}/{AZURITE_ACCOUNT}/{container}\nrestype:container"
        );
        let key = engine
            .decode(AZURITE_KEY)
            .unwrap_or_else(|e| panic!("emulator key: {e}"));
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key);
        let signature = engine.encode(ring::hmac::sign(&key, to_sign.as_bytes()).as_ref());
        let port = self.server.port();
        let (status, body) = http_request(
            port,
            &format!(
                "PUT /{AZURITE_ACCOUNT}/{container}?restype=container HTTP/1.1\r\n\
                 Host: 127.0.0.1:{port}\r\nContent-Length: 0\r\nx-ms-date: {date}\r\n\
                 x-ms-version: {version}\r\n\
                 Authorization: SharedKey {AZURITE_ACCOUNT}:{signature}\r\n\
                 Connection: close\r\n\r\n"
            ),
        );
        assert_eq!(status, 201, "creating container {container}: {body}");
    }

    /// Configuration of `container`/`prefix` on this emulator.
    pub fn config(&self, container: &str, prefix: &str) -> StorageConfig {
        StorageConfig::azure(AzureConfig {
            container: container.to_owned(),
            prefix: prefix.to_owned(),
            endpoint: Some(self.server.endpoint()),
            use_emulator: true,
            ..AzureConfig::default()
        })
    }
}
