//! What an addon says about itself, as host-side types (the generated bindings stay private).

use serde::Serialize;

use crate::bindings::stowaway::addon::types as wit;

/// An addon's description (`metadata.describe`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct AddonInfo {
    /// Short lower-case name.
    pub name: String,
    /// Semantic version.
    pub version: String,
    /// One line for people.
    pub description: String,
    /// Kinds of target the addon backs up.
    pub target_kinds: Vec<String>,
    /// Operations it implements.
    pub operations: Vec<Operation>,
    /// Parameters it accepts.
    pub parameters: Vec<Parameter>,
    /// Capabilities it may use.
    pub capabilities: Vec<Capability>,
}

impl AddonInfo {
    /// `name version`, as used in messages.
    pub fn label(&self) -> String {
        format!("{} {}", self.name, self.version)
    }
}

/// An operation an addon implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Operation {
    /// Writes snapshots.
    Backup,
    /// Reads snapshots back.
    Restore,
}

/// Type of a parameter value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ParameterType {
    /// Free text.
    Text,
    /// A signed 64-bit integer.
    Integer,
    /// `true` or `false`.
    Boolean,
    /// Values one per line.
    TextList,
    /// A duration such as `30s`.
    Duration,
}

/// A parameter an addon accepts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Parameter {
    /// Name.
    pub name: String,
    /// Value type.
    #[serde(rename = "type")]
    pub kind: ParameterType,
    /// One line for people.
    pub description: String,
    /// Value used when none is given; `None` makes the parameter required.
    pub default: Option<String>,
}

/// A capability an addon declares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Capability {
    /// Access to volumes (`*` = every granted volume).
    Volume {
        /// Volume name or `*`.
        name: String,
        /// Write access (restore).
        writable: bool,
    },
    /// Outgoing TCP connections.
    Connect {
        /// Host name or address.
        host: String,
        /// Port.
        port: u16,
    },
    /// Running a program.
    Exec {
        /// Program name or path.
        program: String,
        /// Argument patterns.
        args: Vec<String>,
    },
    /// Reading a named secret.
    Secret {
        /// Secret name.
        name: String,
    },
}

impl Capability {
    /// Whether this declaration covers access to volume `name` (writable or not).
    pub fn allows_volume(&self, volume: &str, write: bool) -> bool {
        matches!(self, Capability::Volume { name, writable }
            if (name == "*" || name == volume) && (*writable || !write))
    }

    /// Whether this declaration covers running `program` with `args`.
    pub fn allows_exec(&self, program: &str, args: &[String]) -> bool {
        matches!(self, Capability::Exec { program: declared, args: patterns }
            if declared == program && crate::exec::args_match(patterns, args))
    }

    /// Whether this declaration covers connecting to `host:port` (`*` and port 0 match any).
    pub fn allows_connect(&self, host: &str, port: u16) -> bool {
        matches!(self, Capability::Connect { host: h, port: p }
            if (h == "*" || h.eq_ignore_ascii_case(host)) && (*p == 0 || *p == port))
    }

    /// Whether this declaration covers reading secret `secret`.
    pub fn allows_secret(&self, secret: &str) -> bool {
        matches!(self, Capability::Secret { name } if name == secret)
    }
}

impl std::fmt::Display for Capability {
    /// `volume data (read-only)`, `connect db:5432`, `exec pg_dump **`, `secret password`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Capability::Volume { name, writable } => {
                let name = if name == "*" { "(any granted)" } else { name };
                let access = if *writable { "read-write" } else { "read-only" };
                write!(f, "volume {name} ({access})")
            }
            Capability::Connect { host, port } => match (host.as_str(), port) {
                ("*", 0) => write!(f, "connect (the endpoints the job grants)"),
                (host, 0) => write!(f, "connect {host} (any port the job grants)"),
                (host, port) => write!(f, "connect {host}:{port}"),
            },
            Capability::Exec { program, args } => {
                write!(f, "exec {program}")?;
                for arg in args {
                    write!(f, " {arg}")?;
                }
                Ok(())
            }
            Capability::Secret { name } => write!(f, "secret {name}"),
        }
    }
}

impl From<wit::AddonInfo> for AddonInfo {
    fn from(info: wit::AddonInfo) -> Self {
        AddonInfo {
            name: info.name,
            version: info.version,
            description: info.description,
            target_kinds: info.target_kinds,
            operations: info
                .operations
                .into_iter()
                .map(|op| match op {
                    wit::Operation::Backup => Operation::Backup,
                    wit::Operation::Restore => Operation::Restore,
                })
                .collect(),
            parameters: info.parameters.into_iter().map(Parameter::from).collect(),
            capabilities: info
                .capabilities
                .into_iter()
                .map(Capability::from)
                .collect(),
        }
    }
}

impl From<wit::Parameter> for Parameter {
    fn from(p: wit::Parameter) -> Self {
        Parameter {
            name: p.name,
            kind: match p.type_ {
                wit::ParameterType::Text => ParameterType::Text,
                wit::ParameterType::Integer => ParameterType::Integer,
                wit::ParameterType::Boolean => ParameterType::Boolean,
                wit::ParameterType::TextList => ParameterType::TextList,
                wit::ParameterType::Duration => ParameterType::Duration,
            },
            description: p.description,
            default: p.default,
        }
    }
}

impl From<wit::Capability> for Capability {
    fn from(c: wit::Capability) -> Self {
        match c {
            wit::Capability::Volume(v) => Capability::Volume {
                name: v.name,
                writable: v.writable,
            },
            wit::Capability::Connect(e) => Capability::Connect {
                host: e.host,
                port: e.port,
            },
            wit::Capability::Exec(e) => Capability::Exec {
                program: e.program,
                args: e.args,
            },
            wit::Capability::Secret(name) => Capability::Secret { name },
        }
    }
}

/// Checks what the host relies on: a usable name, unique parameter names.
pub(crate) fn validate(info: &AddonInfo) -> Result<(), String> {
    if info.name.is_empty()
        || !info
            .name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(format!(
            "describe() returned the name {:?}; names are [a-z0-9-]+",
            info.name
        ));
    }
    let mut seen = std::collections::BTreeSet::new();
    for p in &info.parameters {
        if !seen.insert(p.name.as_str()) {
            return Err(format!("describe() lists parameter {:?} twice", p.name));
        }
        if let Some(default) = &p.default {
            crate::params::check_value(p, default)
                .map_err(|reason| format!("describe() gives a bad default: {reason}"))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_read_as_text() {
        let shown: Vec<String> = [
            Capability::Volume {
                name: "*".into(),
                writable: false,
            },
            Capability::Connect {
                host: "*".into(),
                port: 0,
            },
            Capability::Connect {
                host: "db".into(),
                port: 5432,
            },
            Capability::Exec {
                program: "pg_dump".into(),
                args: vec!["--host=*".into(), "**".into()],
            },
            Capability::Secret {
                name: "password".into(),
            },
        ]
        .iter()
        .map(ToString::to_string)
        .collect();
        assert_eq!(
            shown,
            [
                "volume (any granted) (read-only)",
                "connect (the endpoints the job grants)",
                "connect db:5432",
                "exec pg_dump --host=* **",
                "secret password"
            ]
        );
    }

    #[test]
    fn exec_and_connect_declarations_match() {
        let exec = Capability::Exec {
            program: "pg_dump".into(),
            args: vec!["--host=*".into(), "**".into()],
        };
        assert!(exec.allows_exec("pg_dump", &["--host=db".into(), "x".into()]));
        assert!(!exec.allows_exec("pg_dump", &["--port=1".into()]));
        assert!(!exec.allows_exec("psql", &["--host=db".into()]));
        let any = Capability::Connect {
            host: "*".into(),
            port: 0,
        };
        assert!(any.allows_connect("db", 5432));
        let one = Capability::Connect {
            host: "DB".into(),
            port: 5432,
        };
        assert!(one.allows_connect("db", 5432));
        assert!(!one.allows_connect("db", 5433));
        assert!(!one.allows_connect("other", 5432));
    }

    #[test]
    fn volume_capability_checks_name_and_write() {
        let any_rw = Capability::Volume {
            name: "*".into(),
            writable: true,
        };
        let data_ro = Capability::Volume {
            name: "data".into(),
            writable: false,
        };
        assert!(any_rw.allows_volume("x", true));
        assert!(data_ro.allows_volume("data", false));
        assert!(!data_ro.allows_volume("data", true));
        assert!(!data_ro.allows_volume("other", false));
        assert!(
            !Capability::Secret {
                name: "data".into()
            }
            .allows_volume("data", false)
        );
    }
}
