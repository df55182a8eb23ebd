//! The server side: connection settings, reachability, versions, and what psql's messages
//! mean.

use std::time::Duration;

use stowaway_addon::exec::{ClientContext, Command, ExitStatus, Meaning, explain_client_failure};
use stowaway_addon::{AddonError, Job};

/// Oldest server the supported client tools can dump (pg_dump 15 and later: 9.2).
const OLDEST_SERVER: u32 = 9;

/// How to reach the server.
pub struct Server {
    pub host: String,
    pub port: u16,
    pub user: String,
    /// Database to connect to for checks and administration.
    pub maintenance_db: String,
    pub sslmode: String,
    /// Whether the job provides secret `password` (sent as PGPASSWORD, inside the host).
    has_password: bool,
}

impl Server {
    /// Reads the connection parameters of `job`.
    pub fn from_job(job: &Job) -> Result<Server, AddonError> {
        let host = job.param_required("host")?;
        let port = job.param_port("port", 5432)?;
        Ok(Server {
            host,
            port,
            user: job.param("user").unwrap_or_else(|| "postgres".into()),
            maintenance_db: job.param("database").unwrap_or_else(|| "postgres".into()),
            sslmode: job.param("sslmode").unwrap_or_else(|| "prefer".into()),
            has_password: job.secret("password").is_ok(),
        })
    }

    /// `host:port` for messages.
    pub fn endpoint(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// `program` with the connection options and environment.
    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new(program)
            .arg(format!("--host={}", self.host))
            .arg(format!("--port={}", self.port))
            .arg(format!("--username={}", self.user))
            .arg("--no-password")
            .env("PGSSLMODE", self.sslmode.as_str())
            .env("PGCONNECT_TIMEOUT", "10")
            .env("PGAPPNAME", "stowaway");
        if self.has_password {
            command = command.secret_env("PGPASSWORD", "password");
        }
        command
    }

    /// Runs one SQL command through psql in `db` and returns its unaligned output.
    pub fn query(&self, db: &str, sql: &str) -> Result<String, AddonError> {
        let output = self
            .command("psql")
            .args(["-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1"])
            .arg(format!("--dbname={db}"))
            .args(["-c", sql])
            .output()?;
        if !output.status.success() {
            return Err(self.explain("psql", &output.status));
        }
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    }

    /// Turns a failed client program into an error a person can act on.
    pub fn explain(&self, program: &str, status: &ExitStatus) -> AddonError {
        let at = format!("PostgreSQL at {}", self.endpoint());
        let context = ClientContext {
            at: &at,
            user: &self.user,
            password_given: self.has_password,
            password_source: "--secret password=FILE or PGPASSWORD",
        };
        let rules: &[(Meaning, &[&str])] = &[
            (
                Meaning::Credentials,
                &[
                    "password authentication failed",
                    "no password supplied",
                    "pg_hba.conf",
                ],
            ),
            (
                Meaning::Permission,
                &["permission denied", "must be superuser"],
            ),
            (
                Meaning::Unreachable,
                &[
                    "could not connect",
                    "connection refused",
                    "timeout expired",
                    "could not translate host name",
                ],
            ),
            (Meaning::Missing, &["does not exist"]),
        ];
        explain_client_failure(program, status, context, rules)
    }

    /// Checks that the server answers on its port (refused when the job does not grant it).
    pub fn check_reachable(&self) -> Result<(), AddonError> {
        stowaway_addon::net::check_reachable(&self.host, self.port, Duration::from_secs(10))
            .map_err(|e| match e {
                AddonError::Unavailable(m) => {
                    AddonError::Unavailable(format!("PostgreSQL is not reachable: {m}"))
                }
                other => other,
            })
    }

    /// The server's version number (`server_version_num`, e.g. 150018).
    pub fn version_num(&self) -> Result<u32, AddonError> {
        let text = self.query(&self.maintenance_db, "SHOW server_version_num")?;
        text.trim().parse().map_err(|_| {
            AddonError::Unsupported(format!(
                "PostgreSQL at {} reported the version {text:?}, which is not a number",
                self.endpoint()
            ))
        })
    }
}

/// The major version of a client tool, from `TOOL --version`.
pub fn tool_major(program: &str) -> Result<(u32, String), AddonError> {
    let output = Command::new(program)
        .arg("--version")
        .output()
        .map_err(|e| match e {
            AddonError::NotFound(m) => AddonError::NotFound(format!(
                "{m}; install the PostgreSQL client tools (Debian: postgresql-client)"
            )),
            other => other,
        })?;
    let text = output.checked(program)?;
    let line = text.lines().next().unwrap_or_default().trim().to_owned();
    parse_tool_major(&line)
        .map(|major| (major, line.clone()))
        .ok_or_else(|| {
            AddonError::Unsupported(format!(
                "cannot read the version of {program} from {line:?}"
            ))
        })
}

/// `pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)` → 15; `pg_dump (PostgreSQL) 9.6.24` → 9.
fn parse_tool_major(line: &str) -> Option<u32> {
    let version = line
        .split_whitespace()
        .find(|w| w.starts_with(|c: char| c.is_ascii_digit()))?;
    version
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// The major version of a `server_version_num` (90624 → 9, 150018 → 15).
pub fn server_major(version_num: u32) -> u32 {
    version_num / 10000
}

/// Whether a dump tool of major `tool` can dump a server of major `server`.
pub fn check_fit(
    tool: u32,
    tool_line: &str,
    server: u32,
    endpoint: &str,
) -> Result<(), AddonError> {
    if server < OLDEST_SERVER {
        return Err(AddonError::Unsupported(format!(
            "PostgreSQL {server} at {endpoint} is older than this addon supports (9.2 or later)"
        )));
    }
    if tool < server {
        return Err(AddonError::Unsupported(format!(
            "the server at {endpoint} runs PostgreSQL {server}, but the client tools here are \
             older ({tool_line}); pg_dump cannot dump a newer server: install the PostgreSQL \
             {server} client tools"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_versions() {
        assert_eq!(
            parse_tool_major("pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"),
            Some(15)
        );
        assert_eq!(parse_tool_major("pg_dumpall (PostgreSQL) 9.6.24"), Some(9));
        assert_eq!(parse_tool_major("psql (PostgreSQL) 17beta1"), Some(17));
        assert_eq!(parse_tool_major("nothing here"), None);
    }

    #[test]
    fn server_versions_and_fit() {
        assert_eq!(server_major(150018), 15);
        assert_eq!(server_major(90624), 9);
        assert!(check_fit(15, "pg_dump 15", 15, "db:5432").is_ok());
        assert!(check_fit(16, "pg_dump 16", 12, "db:5432").is_ok());
        let err = check_fit(15, "pg_dump (PostgreSQL) 15.18", 16, "db:5432").unwrap_err();
        assert!(
            matches!(&err, AddonError::Unsupported(m) if m.contains("install the PostgreSQL 16 client tools")),
            "{err:?}"
        );
        assert!(matches!(
            check_fit(15, "pg_dump 15", 8, "db:5432"),
            Err(AddonError::Unsupported(_))
        ));
    }
}
