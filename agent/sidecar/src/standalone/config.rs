//! The standalone sidecar's configuration file (YAML): the storage, the addon, the target, the
//! schedule, the retention and the API, in one file (docs/sidecar.md, "Standalone sidecar").
//!
//! Parsing is strict: unknown fields are refused, and every value is checked while it is
//! read, so that each error names the field's path and its line (`storage: give the
//! repository password ... at line 4 column 3`). Checks that relate two sections (the addon
//! and its target) name the section and the line where it starts.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::tz::TimeZone;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use stowaway_operator::schedule::Schedule;
use stowaway_repository::{CalendarDuration, Count, RetentionPolicy};
use zeroize::Zeroizing;

use crate::api::LoopbackAddr;

/// The built-in addons the standalone sidecar runs.
pub const ADDONS: [&str; 3] = ["volume", "postgres", "mysql"];

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read the configuration {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The file is not a valid configuration: the field's path, what is wrong, the line.
    #[error("{}{message}", file.as_ref().map(|f| format!("{}: ", f.display())).unwrap_or_default())]
    Invalid {
        /// The file, when read from one.
        file: Option<PathBuf>,
        /// What is wrong, where.
        message: String,
    },
}

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    /// Names the target in the repository, the runs and the API's one session.
    pub name: Name,
    /// Host name recorded in the snapshots (default: this host's).
    #[serde(default)]
    pub hostname: Option<String>,
    /// Tags of every snapshot.
    #[serde(default)]
    pub tags: Vec<Tag>,
    /// Where the repository is.
    pub storage: StorageConfig,
    /// The addon and its task parameters.
    pub addon: AddonConfig,
    /// What the addon backs up and restores into.
    pub target: TargetConfig,
    /// When backups run (none: only on demand).
    #[serde(default)]
    pub schedule: Option<ScheduleConfig>,
    /// Which snapshots are kept after each backup (none: all).
    #[serde(default)]
    pub retention: Option<RetentionConfig>,
    /// How the on-demand API is served.
    #[serde(default)]
    pub api: ApiSettings,
}

impl Config {
    /// Reads and checks the file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::from_yaml(&text).map_err(|e| match e {
            ConfigError::Invalid { message, .. } => ConfigError::Invalid {
                file: Some(path.to_path_buf()),
                message,
            },
            other => other,
        })
    }

    /// Parses and checks a configuration.
    pub fn from_yaml(text: &str) -> Result<Config, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            file: None,
            message,
        };
        let config: Config = serde_yaml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        config
            .check()
            .map_err(|(section, message)| invalid(at_section(text, section, &message)))?;
        Ok(config)
    }

    /// Whether the addon is the volume addon (directories, not a server).
    pub fn is_volume(&self) -> bool {
        self.addon.name == "volume"
    }

    /// Checks that relate sections: `(section, message)`.
    fn check(&self) -> Result<(), (&'static str, String)> {
        let t = &self.target;
        if self.is_volume() {
            if t.volumes.is_empty() {
                return Err((
                    "target",
                    "target.volumes: the volume addon needs at least one directory".into(),
                ));
            }
            if t.host.is_some() || t.port.is_some() || t.password_file.is_some() {
                return Err((
                    "target",
                    "target: host, port and passwordFile are for database addons; the volume \
                     addon takes volumes"
                        .into(),
                ));
            }
        } else {
            if !t.volumes.is_empty() {
                return Err((
                    "target",
                    format!(
                        "target.volumes: the {} addon reaches a server: give target.host (and \
                         port, passwordFile), not volumes",
                        self.addon.name
                    ),
                ));
            }
            if t.host.is_none() {
                return Err((
                    "target",
                    format!(
                        "target.host: the {} addon needs the server's host name",
                        self.addon.name
                    ),
                ));
            }
            for reserved in ["host", "port"] {
                if self.addon.params.contains(reserved) {
                    return Err((
                        "addon",
                        format!("addon.params.{reserved}: give the server as target.{reserved}"),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// `message at line N` for a top-level `section` found in `text` (block style).
fn at_section(text: &str, section: &str, message: &str) -> String {
    let prefix = format!("{section}:");
    match text
        .lines()
        .position(|l| l.starts_with(&prefix))
        .map(|i| i + 1)
    {
        Some(line) => format!("{message} (section at line {line})"),
        None => message.to_owned(),
    }
}

/// Reads a scalar as text (a number as written) and parses it with `parse`. The error is
/// raised while the scalar is visited, so that serde_yaml names its path and line.
fn text<'de, D, T>(
    d: D,
    expecting: &'static str,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
{
    struct Text<F>(F, &'static str);
    impl<'de, T, F: FnOnce(&str) -> Result<T, String>> Visitor<'de> for Text<F> {
        type Value = T;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.1)
        }

        fn visit_str<E: de::Error>(self, s: &str) -> Result<T, E> {
            (self.0)(s).map_err(E::custom)
        }

        fn visit_i64<E: de::Error>(self, n: i64) -> Result<T, E> {
            self.visit_str(&n.to_string())
        }

        fn visit_u64<E: de::Error>(self, n: u64) -> Result<T, E> {
            self.visit_str(&n.to_string())
        }
    }
    d.deserialize_any(Text(parse, expecting))
}

/// Reads a mapping as `Raw`, then makes it a `T`. The conversion's error is raised while the
/// mapping is visited, so that serde_yaml names its path and line.
fn checked<'de, D, Raw, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    Raw: Deserialize<'de>,
    T: TryFrom<Raw, Error = String>,
{
    struct Checked<Raw, T>(std::marker::PhantomData<(Raw, T)>);
    impl<'de, Raw, T> Visitor<'de> for Checked<Raw, T>
    where
        Raw: Deserialize<'de>,
        T: TryFrom<Raw, Error = String>,
    {
        type Value = T;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a mapping")
        }

        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
            let raw = Raw::deserialize(de::value::MapAccessDeserializer::new(map))?;
            T::try_from(raw).map_err(de::Error::custom)
        }
    }
    d.deserialize_map(Checked(std::marker::PhantomData))
}

/// A name: lower-case letters, digits and `-`, starting with a letter, at most 40
/// characters (run names add a time and a random part to it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Name(String);

impl Name {
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        text(d, "a name", |s| {
            let ok = !s.is_empty()
                && s.len() <= 40
                && s.starts_with(|c: char| c.is_ascii_lowercase())
                && !s.ends_with('-')
                && s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !ok {
                return Err(format!(
                    "{s:?} is not a name (lower-case letters, digits and '-', starting with a \
                     letter, at most 40 characters)"
                ));
            }
            Ok(Name(s.to_owned()))
        })
    }
}

/// A snapshot tag: no commas (they separate tag lists), no control characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tag(pub String);

impl<'de> Deserialize<'de> for Tag {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        text(d, "a tag", |s| {
            if s.is_empty() || s.contains(',') || s.chars().any(char::is_control) {
                return Err(format!(
                    "{s:?} is not a tag (not empty, no commas, no control characters)"
                ));
            }
            Ok(Tag(s.to_owned()))
        })
    }
}

/// Where the repository's password comes from.
#[derive(Clone)]
pub enum PasswordSource {
    /// A file (one trailing line break removed).
    File(PathBuf),
    /// An environment variable.
    Env(String),
    /// The configuration file itself (`passwordInsecure`).
    Insecure(Zeroizing<String>),
}

impl fmt::Debug for PasswordSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PasswordSource::File(p) => f.debug_tuple("File").field(p).finish(),
            PasswordSource::Env(v) => f.debug_tuple("Env").field(v).finish(),
            PasswordSource::Insecure(_) => f.write_str("Insecure(..)"),
        }
    }
}

impl PasswordSource {
    /// Reads the password.
    pub fn read(&self) -> Result<Zeroizing<String>, String> {
        let password = match self {
            PasswordSource::File(path) => {
                let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
                    format!("cannot read the password file {}: {e}", path.display())
                })?);
                let p = text.strip_suffix('\n').unwrap_or(&text);
                Zeroizing::new(p.strip_suffix('\r').unwrap_or(p).to_owned())
            }
            PasswordSource::Env(var) => Zeroizing::new(
                std::env::var(var)
                    .map_err(|_| format!("the environment variable {var} is not set"))?,
            ),
            PasswordSource::Insecure(p) => p.clone(),
        };
        if password.is_empty() {
            return Err(match self {
                PasswordSource::File(p) => format!("the password file {} is empty", p.display()),
                PasswordSource::Env(v) => format!("the environment variable {v} is empty"),
                PasswordSource::Insecure(_) => "storage.passwordInsecure is empty".into(),
            });
        }
        Ok(password)
    }
}

/// `storage`: the repository.
#[derive(Debug)]
pub struct StorageConfig {
    /// Location, as `--repo` takes it: a path, `file://`, `s3://`, `gs://`, `azblob://`.
    pub url: String,
    /// Storage credentials: a directory of one file per key, or a file of `KEY=value` lines.
    pub credentials: Option<PathBuf>,
    /// The repository password.
    pub password: PasswordSource,
    /// Create the repository when there is none.
    pub initialize: bool,
    /// Never delete or overwrite repository files (then retention cannot forget).
    pub append_only: bool,
}

impl<'de> Deserialize<'de> for StorageConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        checked::<D, RawStorage, StorageConfig>(d)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawStorage {
    url: String,
    #[serde(default)]
    credentials: Option<PathBuf>,
    #[serde(default)]
    password_file: Option<PathBuf>,
    #[serde(default)]
    password_env: Option<String>,
    #[serde(default)]
    password_insecure: Option<String>,
    #[serde(default)]
    initialize: bool,
    #[serde(default)]
    append_only: bool,
}

impl TryFrom<RawStorage> for StorageConfig {
    type Error = String;

    fn try_from(raw: RawStorage) -> Result<Self, String> {
        if raw.url.trim().is_empty() {
            return Err("url: the repository location is empty".into());
        }
        let sources = [
            raw.password_file.is_some(),
            raw.password_env.is_some(),
            raw.password_insecure.is_some(),
        ];
        let password = match (raw.password_file, raw.password_env, raw.password_insecure) {
            _ if sources.iter().filter(|s| **s).count() > 1 => {
                return Err(
                    "give one password source: passwordFile, passwordEnv or passwordInsecure"
                        .into(),
                );
            }
            (Some(file), _, _) => PasswordSource::File(file),
            (_, Some(var), _) if var.is_empty() => {
                return Err("passwordEnv: name an environment variable".into());
            }
            (_, Some(var), _) => PasswordSource::Env(var),
            (_, _, Some(p)) => PasswordSource::Insecure(Zeroizing::new(p)),
            (None, None, None) => {
                return Err(
                    "no repository password: give passwordFile (a mounted secret) or \
                     passwordEnv (a variable's name); passwordInsecure keeps it in this file"
                        .into(),
                );
            }
        };
        Ok(StorageConfig {
            url: raw.url,
            credentials: raw.credentials,
            password,
            initialize: raw.initialize,
            append_only: raw.append_only,
        })
    }
}

/// `addon`: which built-in addon, with what.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AddonConfig {
    /// `volume`, `postgres` or `mysql`.
    #[serde(deserialize_with = "addon_name")]
    pub name: String,
    /// Task parameters, as the CLI's `--param NAME=VALUE`: text, numbers, true/false or a
    /// list of those (one pair per element).
    #[serde(default)]
    pub params: Params,
    /// Memory limit of the addon in MiB (default 256).
    #[serde(default = "default_memory", rename = "memoryLimitMiB")]
    pub memory_limit_mib: u64,
    /// Stop a run after this long (`2h`, `30m`; default: never).
    #[serde(default)]
    pub timeout: Option<Timeout>,
}

/// A run's time limit, above zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeout(pub Duration);

impl<'de> Deserialize<'de> for Timeout {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        text(d, "a duration such as 30m or 2h", |s| {
            let parsed: jiff::SignedDuration = s
                .parse()
                .map_err(|e| format!("{s:?} is not a duration such as 30m or 2h: {e}"))?;
            Duration::try_from(parsed)
                .ok()
                .filter(|d| !d.is_zero())
                .map(Timeout)
                .ok_or_else(|| format!("{s:?}: a duration above zero"))
        })
    }
}

fn default_memory() -> u64 {
    256
}

fn addon_name<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    text(d, "an addon's name", |s| {
        if !ADDONS.contains(&s) {
            return Err(format!(
                "no built-in addon {s:?} (built in: {})",
                ADDONS.join(", ")
            ));
        }
        Ok(s.to_owned())
    })
}

/// Task parameters in order: `NAME=VALUE` pairs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Params(pub Vec<(String, String)>);

impl Params {
    /// Whether `name` is given.
    pub fn contains(&self, name: &str) -> bool {
        self.0.iter().any(|(k, _)| k == name)
    }
}

impl<'de> Deserialize<'de> for Params {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        checked::<D, BTreeMap<String, serde_json::Value>, Params>(d)
    }
}

impl TryFrom<BTreeMap<String, serde_json::Value>> for Params {
    type Error = String;

    fn try_from(map: BTreeMap<String, serde_json::Value>) -> Result<Self, String> {
        let object: serde_json::Map<String, serde_json::Value> = map.into_iter().collect();
        if object.contains_key(stowaway_executor::params::AUTH_SECRET) {
            return Err("authSecret names a Kubernetes Secret: give target.passwordFile".into());
        }
        let task = stowaway_api::common::TaskReference {
            name: "backup".into(),
            params: Some(serde_json::Value::Object(object)),
            ..Default::default()
        };
        let params = stowaway_executor::params::task_params(std::slice::from_ref(&task))
            .map_err(|e| e.to_string())?;
        Ok(Params(params.addon))
    }
}

/// `target`: the directories (volume addon) or the server (database addons).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TargetConfig {
    /// Directories to back up and restore into, each a component named after it.
    #[serde(default, deserialize_with = "volumes")]
    pub volumes: Vec<Volume>,
    /// The database server's host name.
    #[serde(default)]
    pub host: Option<String>,
    /// Its port (default: the addon's).
    #[serde(default)]
    pub port: Option<u16>,
    /// A file holding the password the addon connects with (its `password` secret).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
}

/// One directory of the target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Volume {
    /// Its component name.
    pub name: String,
    /// The directory (absolute).
    pub path: PathBuf,
}

fn volumes<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Volume>, D::Error> {
    struct Volumes;
    impl<'de> Visitor<'de> for Volumes {
        type Value = Vec<Volume>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a list of directories")
        }

        fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<Volume>, A::Error> {
            let mut out: Vec<Volume> = Vec::new();
            while let Some(VolumeEntry(volume)) = seq.next_element()? {
                if let Some(j) = out.iter().position(|v| v.name == volume.name) {
                    return Err(de::Error::custom(format!(
                        "[{}]: the name {:?} is taken by volumes[{j}]: give each a name \
                         ({{name: NAME, path: PATH}})",
                        out.len(),
                        volume.name
                    )));
                }
                out.push(volume);
            }
            Ok(out)
        }
    }
    d.deserialize_seq(Volumes)
}

/// A volume entry: a path, or `{name, path}`.
struct VolumeEntry(Volume);

impl<'de> Deserialize<'de> for VolumeEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = VolumeEntry;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a directory's path, or {name: NAME, path: PATH}")
            }

            fn visit_str<E: de::Error>(self, s: &str) -> Result<VolumeEntry, E> {
                let path = absolute(s).map_err(E::custom)?;
                let base = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                Ok(VolumeEntry(Volume {
                    name: stowaway_executor::run::volume_name(&base),
                    path,
                }))
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<VolumeEntry, A::Error> {
                let (mut name, mut path) = (None::<String>, None::<String>);
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "name" => name = Some(map.next_value()?),
                        "path" => path = Some(map.next_value()?),
                        other => {
                            return Err(de::Error::unknown_field(other, &["name", "path"]));
                        }
                    }
                }
                let path = path.ok_or_else(|| de::Error::missing_field("path"))?;
                let path = absolute(&path).map_err(de::Error::custom)?;
                let name = name.ok_or_else(|| de::Error::missing_field("name"))?;
                if !crate::wire::is_component_name(&name) {
                    return Err(de::Error::custom(format!(
                        "name: {name:?} is not a component name (letters, digits, '.', '_', '-'; \
                         at most {})",
                        crate::wire::MAX_COMPONENT
                    )));
                }
                Ok(VolumeEntry(Volume { name, path }))
            }
        }
        d.deserialize_any(V)
    }
}

fn absolute(s: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(s);
    if !path.is_absolute() {
        return Err(format!("{s:?}: give an absolute path"));
    }
    Ok(path)
}

/// `schedule`: when backups run.
#[derive(Clone, Debug)]
pub struct ScheduleConfig {
    /// The cron schedule in its time zone.
    pub schedule: Schedule,
}

impl<'de> Deserialize<'de> for ScheduleConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        checked::<D, RawSchedule, ScheduleConfig>(d)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawSchedule {
    cron: String,
    #[serde(default)]
    time_zone: Option<String>,
}

impl TryFrom<RawSchedule> for ScheduleConfig {
    type Error = String;

    fn try_from(raw: RawSchedule) -> Result<Self, String> {
        let schedule = Schedule::parse(&raw.cron, raw.time_zone.as_deref())
            .map_err(|e| format!("cron {:?}: {e}", raw.cron))?;
        Ok(ScheduleConfig { schedule })
    }
}

/// `retention`: which snapshots of this target and host are kept after each backup, with
/// the rules of `stowaway forget` (docs/retention.md).
#[derive(Clone, Debug)]
pub struct RetentionConfig {
    /// The policy.
    pub policy: RetentionPolicy,
    /// The zone of its calendar periods.
    pub time_zone: TimeZone,
    /// Whether to prune after forgetting (frees the data of removed snapshots).
    pub prune: bool,
}

impl<'de> Deserialize<'de> for RetentionConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        checked::<D, RawRetention, RetentionConfig>(d)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawRetention {
    #[serde(default, deserialize_with = "count")]
    keep_last: Count,
    #[serde(default, deserialize_with = "count")]
    keep_hourly: Count,
    #[serde(default, deserialize_with = "count")]
    keep_daily: Count,
    #[serde(default, deserialize_with = "count")]
    keep_weekly: Count,
    #[serde(default, deserialize_with = "count")]
    keep_monthly: Count,
    #[serde(default, deserialize_with = "count")]
    keep_yearly: Count,
    #[serde(default, deserialize_with = "within")]
    keep_within: CalendarDuration,
    #[serde(default, deserialize_with = "within")]
    keep_within_hourly: CalendarDuration,
    #[serde(default, deserialize_with = "within")]
    keep_within_daily: CalendarDuration,
    #[serde(default, deserialize_with = "within")]
    keep_within_weekly: CalendarDuration,
    #[serde(default, deserialize_with = "within")]
    keep_within_monthly: CalendarDuration,
    #[serde(default, deserialize_with = "within")]
    keep_within_yearly: CalendarDuration,
    #[serde(default)]
    keep_tags: Vec<String>,
    #[serde(default)]
    time_zone: Option<String>,
    #[serde(default)]
    prune: bool,
}

fn count<'de, D: Deserializer<'de>>(d: D) -> Result<Count, D::Error> {
    text(d, "a count (N, unlimited or -1)", |s| {
        s.parse()
            .map_err(|e: stowaway_repository::RetentionError| e.to_string())
    })
}

fn within<'de, D: Deserializer<'de>>(d: D) -> Result<CalendarDuration, D::Error> {
    text(d, "a duration such as 1y2m3d4h", |s| {
        s.parse()
            .map_err(|e: stowaway_repository::RetentionError| e.to_string())
    })
}

impl TryFrom<RawRetention> for RetentionConfig {
    type Error = String;

    fn try_from(raw: RawRetention) -> Result<Self, String> {
        let time_zone = match raw.time_zone.as_deref() {
            None => TimeZone::UTC,
            Some(name) => {
                TimeZone::get(name).map_err(|_| format!("timeZone: unknown time zone {name:?}"))?
            }
        };
        let policy = RetentionPolicy {
            keep_last: raw.keep_last,
            keep_hourly: raw.keep_hourly,
            keep_daily: raw.keep_daily,
            keep_weekly: raw.keep_weekly,
            keep_monthly: raw.keep_monthly,
            keep_yearly: raw.keep_yearly,
            keep_within: raw.keep_within,
            keep_within_hourly: raw.keep_within_hourly,
            keep_within_daily: raw.keep_within_daily,
            keep_within_weekly: raw.keep_within_weekly,
            keep_within_monthly: raw.keep_within_monthly,
            keep_within_yearly: raw.keep_within_yearly,
            keep_tags: raw
                .keep_tags
                .iter()
                .map(|list| {
                    list.split(',')
                        .map(str::trim)
                        .filter(|t| !t.is_empty())
                        .map(String::from)
                        .collect::<Vec<_>>()
                })
                .filter(|list| !list.is_empty())
                .collect(),
            max_age: None,
        };
        if !policy.has_keep_rules() {
            return Err(
                "no keep rule: give keepLast, keepDaily, keepWithin, … (a policy \
                        without rules would keep everything; leave retention out for that)"
                    .into(),
            );
        }
        Ok(RetentionConfig {
            policy,
            time_zone,
            prune: raw.prune,
        })
    }
}

/// `api`: how the on-demand API is served.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApiSettings {
    /// The Unix socket (default `/var/run/stowaway/sidecar.sock`; `null`: none).
    #[serde(default = "default_socket")]
    pub socket: Option<PathBuf>,
    /// Serve on `127.0.0.1:PORT` too (`0`: a port the system chooses).
    #[serde(default)]
    pub port: Option<u16>,
    /// The loopback address of the TCP listener (default `127.0.0.1`; only loopback
    /// addresses are accepted).
    #[serde(default)]
    pub address: Option<LoopbackIp>,
    /// A file holding the bearer token every request must present.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Whether `POST /v1/restores` may restore into the target.
    #[serde(default)]
    pub allow_restore: bool,
}

impl Default for ApiSettings {
    fn default() -> Self {
        ApiSettings {
            socket: default_socket(),
            port: None,
            address: None,
            token_file: None,
            allow_restore: false,
        }
    }
}

impl ApiSettings {
    /// The TCP listener's address, if any.
    pub fn tcp(&self) -> Option<LoopbackAddr> {
        let port = self.port?;
        let ip = self
            .address
            .map_or(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), |a| a.0);
        LoopbackAddr::new(std::net::SocketAddr::new(ip, port)).ok()
    }
}

fn default_socket() -> Option<PathBuf> {
    Some(PathBuf::from(crate::api::DEFAULT_SOCKET))
}

/// A loopback IP address (`127.0.0.0/8`, `::1`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoopbackIp(pub std::net::IpAddr);

impl<'de> Deserialize<'de> for LoopbackIp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        text(d, "a loopback IP address", |s| {
            let ip: std::net::IpAddr = s
                .parse()
                .map_err(|_| format!("{s:?} is not an IP address"))?;
            if !ip.is_loopback() {
                return Err(format!(
                    "{ip} is not a loopback address: the API is served on 127.0.0.0/8 or ::1 only"
                ));
            }
            Ok(LoopbackIp(ip))
        })
    }
}

#[cfg(test)]
mod tests;
