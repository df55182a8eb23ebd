//! What a job run from the command line is granted: secrets, programs, network endpoints.
//!
//! The person at the command line is the configuration, so the defaults are generous for the
//! addons built into this binary and strict for the others:
//!
//! - **secrets**: `--secret NAME=FILE`; else `STOWAWAY_SECRET_<NAME>`; else the client tools'
//!   usual variable for the target kind (`PGPASSWORD` for postgres, `MYSQL_PWD` for mysql);
//! - **programs**: `--allow-exec 'PROGRAM [ARG-PATTERN...]'`; without it, a built-in addon gets
//!   the programs it declares, another addon none;
//! - **network**: `--allow-connect HOST:PORT`; without it, the target's endpoint, that is the
//!   addon's `host` and `port` parameters, when the addon declares that it connects.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, bail};
use stowaway_runtime::{AddonInfo, Capability, Endpoint, ExecGrant};
use zeroize::Zeroizing;

/// Grant options shared by the commands that run an addon.
#[derive(Debug, Default, clap::Args)]
pub(crate) struct GrantArgs {
    /// Secret NAME read from FILE (repeatable), such as `password=/run/secrets/db`. One
    /// trailing newline is removed.
    #[arg(long = "secret", value_name = "NAME=FILE", value_parser = parse_secret)]
    pub secrets: Vec<(String, PathBuf)>,
    /// Let the addon run PROGRAM with arguments matching the patterns (repeatable): each
    /// pattern matches one argument (`*` inside matches anything), a final `**` the rest.
    /// Default: the programs a built-in addon declares.
    #[arg(long = "allow-exec", value_name = "'PROGRAM [PATTERN...]'")]
    pub exec: Vec<String>,
    /// Let the addon connect to HOST:PORT (repeatable). Default: the addon's `host` and `port`
    /// parameters, when it declares network access.
    #[arg(long = "allow-connect", value_name = "HOST:PORT", value_parser = Endpoint::parse)]
    pub connect: Vec<Endpoint>,
}

fn parse_secret(s: &str) -> Result<(String, PathBuf), String> {
    match s.split_once('=') {
        Some((name, file)) if !name.is_empty() && !file.is_empty() => {
            Ok((name.to_owned(), PathBuf::from(file)))
        }
        _ => Err(format!("expected NAME=FILE, got {s:?}")),
    }
}

/// The usual environment variable of a target kind's client tools for a secret.
const TOOL_ENV: &[(&str, &str, &str)] = &[
    ("postgres", "password", "PGPASSWORD"),
    ("mysql", "password", "MYSQL_PWD"),
    ("mariadb", "password", "MYSQL_PWD"),
];

/// What a job is granted.
pub(crate) struct Grants {
    pub secrets: BTreeMap<String, Zeroizing<Vec<u8>>>,
    pub exec: Vec<ExecGrant>,
    pub connect: Vec<Endpoint>,
}

impl GrantArgs {
    /// The grants for `info`'s addon run with `params`; `builtin` when it is built in.
    pub fn grants(
        &self,
        info: &AddonInfo,
        builtin: bool,
        params: &[(String, String)],
    ) -> anyhow::Result<Grants> {
        Ok(Grants {
            secrets: self.secrets(info)?,
            exec: self.exec(info, builtin)?,
            connect: self.connect(info, params)?,
        })
    }

    fn secrets(&self, info: &AddonInfo) -> anyhow::Result<BTreeMap<String, Zeroizing<Vec<u8>>>> {
        let mut secrets = BTreeMap::new();
        for (name, file) in &self.secrets {
            if !info.capabilities.iter().any(|c| c.allows_secret(name)) {
                bail!(
                    "addon {} does not use a secret named {name:?} (it declares: {})",
                    info.label(),
                    declared_secrets(info)
                );
            }
            let mut value =
                Zeroizing::new(std::fs::read(file).with_context(|| {
                    format!("cannot read secret {name} from {}", file.display())
                })?);
            if value.ends_with(b"\n") {
                value.pop();
                if value.ends_with(b"\r") {
                    value.pop();
                }
            }
            secrets.insert(name.clone(), value);
        }
        for capability in &info.capabilities {
            let Capability::Secret { name } = capability else {
                continue;
            };
            if secrets.contains_key(name) {
                continue;
            }
            let own = format!(
                "STOWAWAY_SECRET_{}",
                name.to_ascii_uppercase().replace('-', "_")
            );
            let tool = TOOL_ENV
                .iter()
                .find(|(kind, secret, _)| {
                    secret == name && info.target_kinds.iter().any(|k| k == kind)
                })
                .map(|(_, _, var)| *var);
            for var in std::iter::once(own.as_str()).chain(tool) {
                if let Some(value) = std::env::var_os(var) {
                    use std::os::unix::ffi::OsStrExt;
                    tracing::debug!(secret = %name, from = var, "secret taken from the environment");
                    secrets.insert(name.clone(), Zeroizing::new(value.as_bytes().to_vec()));
                    break;
                }
            }
        }
        Ok(secrets)
    }

    fn exec(&self, info: &AddonInfo, builtin: bool) -> anyhow::Result<Vec<ExecGrant>> {
        if self.exec.is_empty() {
            if !builtin {
                return Ok(Vec::new());
            }
            return Ok(info
                .capabilities
                .iter()
                .filter_map(|c| match c {
                    Capability::Exec { program, args } => Some(ExecGrant {
                        program: program.clone(),
                        args: args.clone(),
                    }),
                    _ => None,
                })
                .collect());
        }
        self.exec
            .iter()
            .map(|text| {
                let mut words = text.split_whitespace().map(str::to_owned);
                let program = words
                    .next()
                    .with_context(|| format!("--allow-exec {text:?}: no program"))?;
                Ok(ExecGrant {
                    program,
                    args: words.collect(),
                })
            })
            .collect()
    }

    fn connect(
        &self,
        info: &AddonInfo,
        params: &[(String, String)],
    ) -> anyhow::Result<Vec<Endpoint>> {
        if !self.connect.is_empty() {
            return Ok(self.connect.clone());
        }
        if !info
            .capabilities
            .iter()
            .any(|c| matches!(c, Capability::Connect { .. }))
        {
            return Ok(Vec::new());
        }
        let value = |name: &str| {
            params
                .iter()
                .rev()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .or_else(|| {
                    info.parameters
                        .iter()
                        .find(|p| p.name == name)
                        .and_then(|p| p.default.clone())
                })
        };
        let (Some(host), Some(port)) = (value("host"), value("port")) else {
            return Ok(Vec::new());
        };
        let port: u16 = port
            .trim()
            .parse()
            .with_context(|| format!("parameter port: {port:?} is not a TCP port"))?;
        Ok(vec![Endpoint::new(host, port)])
    }
}

fn declared_secrets(info: &AddonInfo) -> String {
    let names: Vec<&str> = info
        .capabilities
        .iter()
        .filter_map(|c| match c {
            Capability::Secret { name } => Some(name.as_str()),
            _ => None,
        })
        .collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}
