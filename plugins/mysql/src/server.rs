//! The server side: connection settings, reachability, versions of server and tools, and
//! what the client's messages mean.

use std::time::Duration;

use stowaway_addon::exec::{ClientContext, Command, ExitStatus, Meaning, explain_client_failure};
use stowaway_addon::{AddonError, Job};

/// A MySQL or MariaDB version: which product, major, minor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version {
    pub mariadb: bool,
    pub major: u32,
    pub minor: u32,
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let product = if self.mariadb { "MariaDB" } else { "MySQL" };
        write!(f, "{product} {}.{}", self.major, self.minor)
    }
}

/// `10.11.14` → (10, 11).
fn major_minor(text: &str) -> Option<(u32, u32)> {
    let mut parts = text.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// The server's `SELECT VERSION()`: `10.11.14-MariaDB-0+deb12u2`, `8.0.36`.
pub fn parse_server_version(text: &str) -> Option<Version> {
    let (major, minor) = major_minor(text.trim())?;
    Some(Version {
        mariadb: text.contains("MariaDB"),
        major,
        minor,
    })
}

/// A client's `--version` line:
/// `mariadb-dump  Ver 10.19 Distrib 10.11.14-MariaDB, for debian-linux-gnu (x86_64)`,
/// `mariadb-dump from 11.4.2-MariaDB, client 10.19 for Linux (x86_64)`,
/// `mysqldump  Ver 8.0.36 for Linux on x86_64 (MySQL Community Server - GPL)`.
pub fn parse_tool_version(line: &str) -> Option<Version> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let after = |key: &str| {
        words
            .iter()
            .position(|w| *w == key)
            .and_then(|i| words.get(i + 1))
    };
    let version = after("Distrib")
        .or_else(|| after("from"))
        .or_else(|| after("Ver"))?;
    let (major, minor) = major_minor(version)?;
    Some(Version {
        mariadb: line.contains("MariaDB"),
        major,
        minor,
    })
}

/// Whether a dump tool of `tool` version can dump a server of `server` version: refuses a
/// MySQL tool older than a MySQL server and servers older than 5.5; returns a warning when the
/// products differ.
pub fn check_fit(
    tool: Version,
    server: Version,
    endpoint: &str,
) -> Result<Option<String>, AddonError> {
    if (server.major, server.minor) < (5, 5) {
        return Err(AddonError::Unsupported(format!(
            "{server} at {endpoint} is older than this addon supports (5.5 or later)"
        )));
    }
    if !tool.mariadb && !server.mariadb && (tool.major, tool.minor) < (server.major, server.minor) {
        return Err(AddonError::Unsupported(format!(
            "the server at {endpoint} runs {server}, but the dump tool here is {tool}; \
             install the MySQL {}.{} client tools",
            server.major, server.minor
        )));
    }
    if tool.mariadb != server.mariadb {
        return Ok(Some(format!(
            "dumping {server} at {endpoint} with the {tool} tools; matching client tools are safer"
        )));
    }
    Ok(None)
}

/// How to reach the server.
pub struct Server {
    pub host: String,
    pub port: u16,
    pub user: String,
    /// Whether the job provides secret `password` (sent as MYSQL_PWD, inside the host).
    has_password: bool,
    /// The client programs found on the host: (dump tool, client).
    pub dump_tool: String,
    pub client: String,
}

impl Server {
    /// Reads the connection parameters of `job` and finds the client tools.
    pub fn from_job(job: &Job) -> Result<Server, AddonError> {
        let host = job.param_required("host")?;
        let port = job.param_port("port", 3306)?;
        Ok(Server {
            host,
            port,
            user: job.param("user").unwrap_or_else(|| "root".into()),
            has_password: job.secret("password").is_ok(),
            dump_tool: String::new(),
            client: String::new(),
        })
    }

    /// `host:port` for messages.
    pub fn endpoint(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// Picks the first installed tool of each pair and returns the dump tool's version.
    pub fn find_tools(&mut self) -> Result<(Version, String), AddonError> {
        let mut found = None;
        for tool in ["mariadb-dump", "mysqldump"] {
            match tool_version(tool) {
                Ok(version) => {
                    found = Some((tool, version));
                    break;
                }
                Err(AddonError::NotFound(_)) => continue,
                Err(other) => return Err(other),
            }
        }
        let Some((tool, (version, line))) = found else {
            return Err(AddonError::NotFound(
                "neither mariadb-dump nor mysqldump is installed on this host; install the \
                 MariaDB or MySQL client tools (Debian: mariadb-client)"
                    .into(),
            ));
        };
        self.dump_tool = tool.into();
        self.client = if tool == "mariadb-dump" {
            "mariadb"
        } else {
            "mysql"
        }
        .into();
        Ok((version, line))
    }

    /// `program` with the connection options and environment.
    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new(program)
            .arg(format!("--host={}", self.host))
            .arg(format!("--port={}", self.port))
            .arg(format!("--user={}", self.user))
            .arg("--protocol=TCP");
        if self.has_password {
            command = command.secret_env("MYSQL_PWD", "password");
        }
        command
    }

    /// Runs SQL through the client and returns its tab-separated output without headers.
    pub fn query(&self, sql: &str) -> Result<String, AddonError> {
        let output = self
            .command(&self.client)
            .args(["--batch", "--skip-column-names", "-e", sql])
            .output()?;
        if !output.status.success() {
            return Err(self.explain(&self.client, &output.status));
        }
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    }

    /// The server's version.
    pub fn version(&self) -> Result<Version, AddonError> {
        let text = self.query("SELECT VERSION()")?;
        parse_server_version(&text).ok_or_else(|| {
            AddonError::Unsupported(format!(
                "the server at {} reported the version {text:?}, which this addon cannot read",
                self.endpoint()
            ))
        })
    }

    /// Checks that the server answers on its port (refused when the job does not grant it).
    pub fn check_reachable(&self) -> Result<(), AddonError> {
        stowaway_addon::net::check_reachable(&self.host, self.port, Duration::from_secs(10))
            .map_err(|e| match e {
                AddonError::Unavailable(m) => {
                    AddonError::Unavailable(format!("the MySQL server is not reachable: {m}"))
                }
                other => other,
            })
    }

    /// Turns a failed client program into an error a person can act on.
    pub fn explain(&self, program: &str, status: &ExitStatus) -> AddonError {
        let at = format!("the server at {}", self.endpoint());
        let context = ClientContext {
            at: &at,
            user: &self.user,
            password_given: self.has_password,
            password_source: "--secret password=FILE or MYSQL_PWD",
        };
        let rules: &[(Meaning, &[&str])] = &[
            (
                Meaning::Credentials,
                &["ERROR 1045", "Access denied for user"],
            ),
            (Meaning::Permission, &["ERROR 1044", "ERROR 1227"]),
            (
                Meaning::Unreachable,
                &["ERROR 2002", "ERROR 2003", "ERROR 2005", "Can't connect"],
            ),
            (Meaning::Missing, &["ERROR 1049", "Unknown database"]),
        ];
        explain_client_failure(program, status, context, rules)
    }
}

/// The version of client `program`, or not-found when it is not installed.
fn tool_version(program: &str) -> Result<(Version, String), AddonError> {
    let text = Command::new(program)
        .arg("--version")
        .output()?
        .checked(program)?;
    let line = text.lines().next().unwrap_or_default().trim().to_owned();
    let version = parse_tool_version(&line).ok_or_else(|| {
        AddonError::Unsupported(format!(
            "cannot read the version of {program} from {line:?}"
        ))
    })?;
    Ok((version, line))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        let maria = parse_tool_version(
            "mariadb-dump  Ver 10.19 Distrib 10.11.14-MariaDB, for debian-linux-gnu (x86_64)",
        )
        .unwrap();
        assert_eq!((maria.mariadb, maria.major, maria.minor), (true, 10, 11));
        let maria11 =
            parse_tool_version("mariadb-dump from 11.4.2-MariaDB, client 10.19 for Linux (x86_64)")
                .unwrap();
        assert_eq!((maria11.major, maria11.minor), (11, 4));
        let mysql = parse_tool_version(
            "mysqldump  Ver 8.0.36 for Linux on x86_64 (MySQL Community Server - GPL)",
        )
        .unwrap();
        assert_eq!((mysql.mariadb, mysql.major, mysql.minor), (false, 8, 0));
        let server = parse_server_version("10.11.14-MariaDB-0+deb12u2").unwrap();
        assert_eq!((server.mariadb, server.major, server.minor), (true, 10, 11));
        assert_eq!(
            parse_server_version("8.4.2").unwrap().to_string(),
            "MySQL 8.4"
        );
        assert!(parse_server_version("garbage").is_none());
    }

    #[test]
    fn fit() {
        let v = |mariadb, major, minor| Version {
            mariadb,
            major,
            minor,
        };
        assert_eq!(
            check_fit(v(true, 10, 11), v(true, 10, 11), "db").unwrap(),
            None
        );
        assert_eq!(
            check_fit(v(false, 8, 0), v(false, 5, 7), "db").unwrap(),
            None
        );
        assert!(
            check_fit(v(true, 10, 11), v(false, 8, 0), "db")
                .unwrap()
                .is_some()
        );
        let err = check_fit(v(false, 5, 7), v(false, 8, 0), "db").unwrap_err();
        assert!(
            matches!(&err, AddonError::Unsupported(m) if m.contains("install the MySQL 8.0 client tools")),
            "{err:?}"
        );
        assert!(check_fit(v(true, 10, 11), v(false, 5, 1), "db").is_err());
    }
}
