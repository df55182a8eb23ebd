//! What an addon is granted for a session's target: the directories it sees, the programs it
//! may run, the endpoint it may connect to, the secrets it may read, and its parameters.
//!
//! - A **PersistentVolumeClaim** is mounted by the Job at the target root; it becomes the
//!   volume [`VOLUME`] (KubeStash's component name for a standalone PVC), read-only for a
//!   backup.
//! - Any other target (neither a claim nor a workload) is **reached over the network** (a
//!   database): the addon's `host` and `port` parameters name the endpoint, which is the only
//!   one it may connect to. For an
//!   `AppBinding` target (KubeStash's way to describe a database) they default to its
//!   `spec.clientConfig` (service or URL), and its `spec.secret` names the credentials; for
//!   another target (a KubeDB database object) `host` defaults to the Service of its name,
//!   `<name>.<namespace>.svc`.
//!   The task parameter `authSecret` names (or overrides) that Secret; a secret the addon
//!   declares (`password`) is read from the key of that name, or from KubeStash's keys
//!   (`POSTGRES_PASSWORD`, `MYSQL_ROOT_PASSWORD`); the addon's `user` parameter defaults to
//!   the key `username` (or `POSTGRES_USER`).
//! - A **workload** (Deployment, StatefulSet, DaemonSet) has its volumes mounted one directory
//!   per volume under the volumes directory (`Settings::volumes_dir`,
//!   `/stowaway/volumes/<volume-name>`): read-only by the injected sidecar for backups,
//!   writable by the operator's restore Job. Each directory is granted as the volume of its
//!   name, so the snapshot's components are named after the pod's volumes. A BackupSession's
//!   `stowaway.dev/components` annotation (on-demand backups) and a RestoreSession's
//!   components select volumes; by default every volume is backed up. A workload's
//!   **database addon** (one that declares a `host` parameter) is reached over the network
//!   instead, on `127.0.0.1` unless `host` is given: the sidecar shares the pod's network
//!   namespace with the database ([`for_addon`]).
//!
//! A built-in addon may run the programs it declares; nothing else is granted.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use stowaway_api::common::TypedObjectReference;
use stowaway_operator::storage_access::SecretData;
use stowaway_runtime::{AddonInfo, Capability, Endpoint, ExecGrant, VolumeGrant};
use zeroize::Zeroizing;

use crate::cluster::{namespace_or, secret_data};
use crate::error::{ExecuteError, Result};
use crate::params::TaskParams;

/// Name of the volume (and so of the component) of a PersistentVolumeClaim target.
pub const VOLUME: &str = "dump";

/// API group of KubeStash's AppBinding.
pub const APP_BINDING_GROUP: &str = "appcatalog.appscode.com";

/// On a BackupSession: the components (for a workload, the volumes) to back up, joined by
/// `,` (set by the sidecar's on-demand API; empty or absent: all).
pub const COMPONENTS_ANNOTATION: &str = "stowaway.dev/components";

/// How the executor reaches a target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TargetKind {
    /// A PersistentVolumeClaim, mounted at the target root.
    Volume,
    /// A workload's volumes, mounted one directory each under the volumes directory.
    Workload,
    /// Over the network (a database); `app_binding` when the target is an AppBinding.
    Network {
        /// The AppBinding `(namespace, name)` to read the endpoint and Secret from.
        app_binding: Option<(String, String)>,
    },
}

/// `Kind name` of a target, for messages.
pub fn label(target: Option<&TypedObjectReference>) -> String {
    target.map_or_else(|| "(none)".to_owned(), |t| format!("{} {}", t.kind, t.name))
}

/// How the executor reaches `target` (the session's namespace is `namespace`).
pub fn kind_of(target: Option<&TypedObjectReference>, namespace: &str) -> Result<TargetKind> {
    let Some(target) = target else {
        return Ok(TargetKind::Network { app_binding: None });
    };
    let group = target.api_group.as_deref().unwrap_or("");
    match (group, target.kind.as_str()) {
        ("" | "core" | "v1", "PersistentVolumeClaim") => Ok(TargetKind::Volume),
        ("apps", "Deployment" | "StatefulSet" | "DaemonSet") => Ok(TargetKind::Workload),
        (APP_BINDING_GROUP, "AppBinding") => Ok(TargetKind::Network {
            app_binding: Some((
                namespace_or(target.namespace.as_ref(), namespace),
                target.name.clone(),
            )),
        }),
        _ => Ok(TargetKind::Network { app_binding: None }),
    }
}

/// How the executor reaches a target with a given addon: a workload's addon that works over
/// the network (it declares a `host` parameter: a database addon) reaches the database on
/// localhost, in the pod the sidecar shares with it; the volume addon gets the pod's volumes.
pub fn for_addon(kind: TargetKind, info: &AddonInfo) -> TargetKind {
    match kind {
        TargetKind::Workload if info.parameters.iter().any(|p| p.name == "host") => {
            TargetKind::Network { app_binding: None }
        }
        other => other,
    }
}

/// The host a network addon connects to when no parameter or AppBinding names one: a
/// workload's database listens on localhost in the pod its sidecar shares; a database object
/// (KubeDB's kinds) is served by a Service of its name.
pub fn default_host(target: &TypedObjectReference, namespace: &str) -> String {
    let group = target.api_group.as_deref().unwrap_or("");
    if group == "apps"
        && matches!(
            target.kind.as_str(),
            "Deployment" | "StatefulSet" | "DaemonSet"
        )
    {
        return "127.0.0.1".to_owned();
    }
    let ns = namespace_or(target.namespace.as_ref(), namespace);
    format!("{}.{ns}.svc", target.name)
}

/// What one addon run is granted, and its parameters.
#[derive(Default)]
pub struct Grants {
    /// Parameters for the addon.
    pub parameters: Vec<(String, String)>,
    /// Directories, by volume name.
    pub volumes: Vec<VolumeGrant>,
    /// Programs.
    pub exec: Vec<ExecGrant>,
    /// Endpoints.
    pub connect: Vec<Endpoint>,
    /// Secrets by the name the addon declares.
    pub secrets: BTreeMap<String, Zeroizing<Vec<u8>>>,
}

impl std::fmt::Debug for Grants {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grants")
            .field("parameters", &self.parameters)
            .field("volumes", &self.volumes)
            .field("exec", &self.exec)
            .field("connect", &self.connect)
            .field("secrets", &self.secrets.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// The grants for backing up the PersistentVolumeClaim mounted at `root` (read-only: the
/// runtime opens volumes of a backup read-only).
pub fn volume_backup(root: &Path, info: &AddonInfo, params: TaskParams) -> Result<Grants> {
    check_dir(root)?;
    Ok(Grants {
        volumes: vec![VolumeGrant {
            name: VOLUME.to_owned(),
            path: root.to_path_buf(),
        }],
        exec: declared_exec(info),
        parameters: params.addon,
        ..Grants::default()
    })
}

/// The grants for restoring tree components into directories: `(component, directory)`.
pub fn volume_restore(
    directories: Vec<(String, std::path::PathBuf)>,
    info: &AddonInfo,
    params: TaskParams,
) -> Grants {
    Grants {
        volumes: directories
            .into_iter()
            .map(|(name, path)| VolumeGrant { name, path })
            .collect(),
        exec: declared_exec(info),
        parameters: params.addon,
        ..Grants::default()
    }
}

/// The volumes of a workload mounted under `dir`: its subdirectories `(name, path)`, sorted
/// by name. A missing or empty directory is an error naming it (`target` labels the
/// workload).
pub fn workload_volumes(dir: &Path, target: &str) -> Result<Vec<(String, PathBuf)>> {
    let not_mounted = |what: String| ExecuteError::Target {
        target: target.to_owned(),
        message: format!(
            "{what}: the Stowaway sidecar (or the restore Job) must mount the workload's \
             volumes there, one directory per volume named after it"
        ),
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(not_mounted(format!(
                "the volumes directory {} does not exist",
                dir.display()
            )));
        }
        Err(source) => {
            return Err(ExecuteError::Io {
                what: "cannot list the volumes directory",
                path: dir.to_path_buf(),
                source,
            });
        }
    };
    let mut volumes = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| ExecuteError::Io {
            what: "cannot list the volumes directory",
            path: dir.to_path_buf(),
            source,
        })?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        // Volume names are DNS labels: hidden entries are not volumes.
        if name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        if std::fs::metadata(&path).is_ok_and(|m| m.is_dir()) {
            volumes.push((name, path));
        }
    }
    if volumes.is_empty() {
        return Err(not_mounted(format!(
            "no volume is mounted under {}",
            dir.display()
        )));
    }
    volumes.sort();
    Ok(volumes)
}

/// The volumes among `available` that `wanted` names (all when `wanted` is empty), in the
/// order of `available`. A name that is not a volume is an error listing the volumes.
pub fn select_volumes(
    available: Vec<(String, PathBuf)>,
    wanted: &[String],
    target: &str,
) -> Result<Vec<(String, PathBuf)>> {
    let unknown: Vec<&str> = wanted
        .iter()
        .filter(|w| !available.iter().any(|(name, _)| name == *w))
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() {
        return Err(ExecuteError::Target {
            target: target.to_owned(),
            message: format!(
                "no volume {} (the workload's volumes: {})",
                unknown.join(", "),
                available
                    .iter()
                    .map(|(name, _)| name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        });
    }
    Ok(available
        .into_iter()
        .filter(|(name, _)| wanted.is_empty() || wanted.contains(name))
        .collect())
}

/// The components a BackupSession's [`COMPONENTS_ANNOTATION`] asks for (empty: all).
pub fn wanted_components(annotations: &BTreeMap<String, String>) -> Vec<String> {
    let mut wanted: Vec<String> = Vec::new();
    for c in annotations
        .get(COMPONENTS_ANNOTATION)
        .into_iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
    {
        if !c.is_empty() && !wanted.iter().any(|w| w == c) {
            wanted.push(c.to_owned());
        }
    }
    wanted
}

/// The grants for backing up the volumes of a workload mounted under `dir` (those `wanted`
/// names, or all), each read-only as the volume of its name.
pub fn workload_backup(
    dir: &Path,
    wanted: &[String],
    target: &str,
    info: &AddonInfo,
    params: TaskParams,
) -> Result<Grants> {
    let volumes = select_volumes(workload_volumes(dir, target)?, wanted, target)?;
    Ok(Grants {
        volumes: volumes
            .into_iter()
            .map(|(name, path)| VolumeGrant { name, path })
            .collect(),
        exec: declared_exec(info),
        parameters: params.addon,
        ..Grants::default()
    })
}

/// The target root must be a directory (the Job mounts the claim there).
pub fn check_dir(root: &Path) -> Result<()> {
    match std::fs::metadata(root) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(ExecuteError::Target {
            target: "PersistentVolumeClaim".into(),
            message: format!("{} is not a directory", root.display()),
        }),
        Err(source) => Err(ExecuteError::Io {
            what: "the target's volume is not mounted at",
            path: root.to_path_buf(),
            source,
        }),
    }
}

/// The grants for a target reached over the network: endpoint and credentials from the
/// AppBinding and the `authSecret` parameter (read in `namespace`).
pub async fn network(
    client: &kube::Client,
    namespace: &str,
    target: Option<&TypedObjectReference>,
    app_binding: Option<&(String, String)>,
    info: &AddonInfo,
    mut params: TaskParams,
) -> Result<Grants> {
    let target_label = label(target);
    let mut secret_ref: Option<(String, String)> = None;
    if let Some((ns, name)) = app_binding {
        let object = read_app_binding(client, ns, name).await?;
        let found =
            app_binding_endpoint(&object.data, ns).map_err(|message| ExecuteError::Target {
                target: target_label.clone(),
                message,
            })?;
        if let Some(host) = found.host {
            params.set_default("host", host);
        }
        if let Some(port) = found.port {
            params.set_default("port", port.to_string());
        }
        secret_ref = found.secret.map(|s| (ns.clone(), s));
    } else if let Some(target) = target
        && info.parameters.iter().any(|p| p.name == "host")
    {
        params.set_default("host", default_host(target, namespace));
    }
    if let Some(name) = &params.auth_secret {
        secret_ref = Some((namespace.to_owned(), name.clone()));
    }
    let mut secrets = BTreeMap::new();
    if let Some((ns, name)) = &secret_ref {
        let data = secret_data(client, ns, name)
            .await?
            .ok_or_else(|| ExecuteError::Target {
                target: target_label.clone(),
                message: format!("Secret {ns}/{name} (database credentials) not found"),
            })?;
        secrets =
            credentials(info, &data, &mut params).map_err(|message| ExecuteError::Target {
                target: target_label.clone(),
                message: format!("Secret {ns}/{name}: {message}"),
            })?;
    }
    let connect = endpoint(info, &params).map_err(|message| ExecuteError::Target {
        target: target_label.clone(),
        message,
    })?;
    Ok(Grants {
        exec: declared_exec(info),
        connect,
        secrets,
        parameters: params.addon,
        volumes: Vec::new(),
    })
}

/// The programs a built-in addon declares (every addon the executor runs is built in).
pub fn declared_exec(info: &AddonInfo) -> Vec<ExecGrant> {
    info.capabilities
        .iter()
        .filter_map(|c| match c {
            Capability::Exec { program, args } => Some(ExecGrant {
                program: program.clone(),
                args: args.clone(),
            }),
            _ => None,
        })
        .collect()
}

/// Keys a declared secret is read from, in order.
fn secret_keys(name: &str) -> Vec<&str> {
    match name {
        "password" => vec![
            "password",
            "POSTGRES_PASSWORD",
            "MYSQL_ROOT_PASSWORD",
            "MARIADB_ROOT_PASSWORD",
        ],
        other => vec![other],
    }
}

/// The secrets `info` declares, from `data`; the `user` parameter from the Secret's user
/// name when the addon takes one and none was given. Errors name the missing keys.
fn credentials(
    info: &AddonInfo,
    data: &SecretData,
    params: &mut TaskParams,
) -> std::result::Result<BTreeMap<String, Zeroizing<Vec<u8>>>, String> {
    let mut secrets = BTreeMap::new();
    for capability in &info.capabilities {
        let Capability::Secret { name } = capability else {
            continue;
        };
        let keys = secret_keys(name);
        let value = keys.iter().find_map(|k| data.get(*k)).ok_or_else(|| {
            format!(
                "no key {} (addon {} reads the secret {name:?})",
                keys.join(" or "),
                info.label()
            )
        })?;
        let mut value = Zeroizing::new(value.clone());
        while value.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            value.pop();
        }
        secrets.insert(name.clone(), value);
    }
    if info.parameters.iter().any(|p| p.name == "user")
        && let Some(user) = ["username", "POSTGRES_USER"]
            .iter()
            .find_map(|k| data.get(*k))
            .and_then(|v| std::str::from_utf8(v).ok())
    {
        params.set_default("user", user.trim_end());
    }
    Ok(secrets)
}

/// The endpoint an addon that declares network access may reach: its `host` and `port`
/// parameters (or their defaults).
pub fn endpoint(
    info: &AddonInfo,
    params: &TaskParams,
) -> std::result::Result<Vec<Endpoint>, String> {
    if !info
        .capabilities
        .iter()
        .any(|c| matches!(c, Capability::Connect { .. }))
    {
        return Ok(Vec::new());
    }
    let value = |name: &str| {
        params.get(name).map(str::to_owned).or_else(|| {
            info.parameters
                .iter()
                .find(|p| p.name == name)
                .and_then(|p| p.default.clone())
        })
    };
    let (Some(host), Some(port)) = (value("host"), value("port")) else {
        return Err(format!(
            "addon {} connects to a server: give its host and port as task parameters \
             (or target an AppBinding)",
            info.label()
        ));
    };
    let port: u16 = port
        .trim()
        .parse()
        .map_err(|_| format!("parameter port: {port:?} is not a TCP port"))?;
    Ok(vec![Endpoint::new(host, port)])
}

async fn read_app_binding(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> Result<DynamicObject> {
    let gvk = GroupVersionKind::gvk(APP_BINDING_GROUP, "v1alpha1", "AppBinding");
    let resource = ApiResource::from_gvk_with_plural(&gvk, "appbindings");
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
    api.get_opt(name)
        .await
        .map_err(|e| ExecuteError::kube(format!("reading AppBinding {namespace}/{name}"), e))?
        .ok_or_else(|| ExecuteError::NotFound {
            kind: "AppBinding",
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            hint: String::new(),
        })
}

/// What an AppBinding says about reaching its database.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AppBindingEndpoint {
    /// Host name.
    pub host: Option<String>,
    /// Port.
    pub port: Option<u16>,
    /// Name of the Secret with the credentials (in the AppBinding's namespace).
    pub secret: Option<String>,
}

/// Reads an AppBinding's `spec.clientConfig` (a `service` — `<name>.<namespace>.svc` and its
/// `port` — or a `url` such as `postgres://db.example:5432/app` or `tcp(db:3306)/`) and
/// `spec.secret.name`. `data` is the object's JSON without `metadata`.
pub fn app_binding_endpoint(
    data: &serde_json::Value,
    namespace: &str,
) -> std::result::Result<AppBindingEndpoint, String> {
    let spec = &data["spec"];
    let config = &spec["clientConfig"];
    let mut found = AppBindingEndpoint {
        secret: spec["secret"]["name"].as_str().map(str::to_owned),
        ..AppBindingEndpoint::default()
    };
    if let Some(service) = config["service"].as_object() {
        let name = service
            .get("name")
            .and_then(|n| n.as_str())
            .ok_or("spec.clientConfig.service.name: required")?;
        found.host = Some(format!("{name}.{namespace}.svc"));
        found.port = match service.get("port") {
            Some(p) => Some(
                p.as_u64()
                    .and_then(|p| u16::try_from(p).ok())
                    .ok_or_else(|| format!("spec.clientConfig.service.port: {p} is not a port"))?,
            ),
            None => None,
        };
    } else if let Some(url) = config["url"].as_str() {
        let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
        let rest = rest
            .strip_prefix("tcp(")
            .map_or(rest, |r| r.split(')').next().unwrap_or(r));
        let authority = rest.split(['/', '?']).next().unwrap_or("");
        let authority = authority.rsplit('@').next().unwrap_or(authority);
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (
                h,
                Some(
                    p.parse::<u16>()
                        .map_err(|_| format!("spec.clientConfig.url: {p:?} is not a port"))?,
                ),
            ),
            None => (authority, None),
        };
        if host.is_empty() {
            return Err(format!("spec.clientConfig.url: no host in {url:?}"));
        }
        found.host = Some(host.to_owned());
        found.port = port;
    } else {
        return Err("spec.clientConfig: neither service nor url is set".into());
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use stowaway_runtime::{Parameter, ParameterType};

    use super::*;

    fn target(group: &str, kind: &str) -> TypedObjectReference {
        TypedObjectReference {
            api_group: Some(group.into()),
            kind: kind.into(),
            namespace: None,
            name: "x".into(),
        }
    }

    #[test]
    fn target_kinds() {
        assert_eq!(
            kind_of(Some(&target("", "PersistentVolumeClaim")), "demo").expect("pvc"),
            TargetKind::Volume
        );
        for kind in ["Deployment", "StatefulSet", "DaemonSet"] {
            assert_eq!(
                kind_of(Some(&target("apps", kind)), "demo").expect("workload"),
                TargetKind::Workload,
                "{kind}"
            );
        }
        assert_eq!(
            kind_of(Some(&target("example.com", "Deployment")), "demo").expect("other"),
            TargetKind::Network { app_binding: None },
            "only the apps group's workloads"
        );
        assert_eq!(
            kind_of(Some(&target(APP_BINDING_GROUP, "AppBinding")), "demo").expect("binding"),
            TargetKind::Network {
                app_binding: Some(("demo".into(), "x".into()))
            }
        );
        assert_eq!(
            kind_of(None, "demo").expect("none"),
            TargetKind::Network { app_binding: None }
        );
    }

    #[test]
    fn app_binding_service_and_urls() {
        let service = serde_json::json!({"spec": {
            "clientConfig": {"service": {"name": "pg", "port": 5432, "scheme": "postgresql"}},
            "secret": {"name": "pg-auth"},
        }});
        assert_eq!(
            app_binding_endpoint(&service, "db").expect("service"),
            AppBindingEndpoint {
                host: Some("pg.db.svc".into()),
                port: Some(5432),
                secret: Some("pg-auth".into()),
            }
        );
        for (url, host, port) in [
            (
                "postgres://u:p@db.example:6543/app?sslmode=disable",
                "db.example",
                Some(6543),
            ),
            ("tcp(mysql.db.svc:3306)/", "mysql.db.svc", Some(3306)),
            ("db.example", "db.example", None),
        ] {
            let value = serde_json::json!({"spec": {"clientConfig": {"url": url}}});
            let found = app_binding_endpoint(&value, "db").expect(url);
            assert_eq!(found.host.as_deref(), Some(host), "{url}");
            assert_eq!(found.port, port, "{url}");
            assert_eq!(found.secret, None);
        }
        let bad = serde_json::json!({"spec": {"clientConfig": {"url": "pg://db:http/"}}});
        assert_eq!(
            app_binding_endpoint(&bad, "db").expect_err("port"),
            "spec.clientConfig.url: \"http\" is not a port"
        );
        let none = serde_json::json!({"spec": {}});
        assert!(app_binding_endpoint(&none, "db").is_err());
    }

    fn postgres_like() -> AddonInfo {
        let text = |name: &str, default: Option<&str>| Parameter {
            name: name.into(),
            kind: ParameterType::Text,
            description: String::new(),
            default: default.map(str::to_owned),
        };
        AddonInfo {
            name: "postgres".into(),
            version: "0.1.0".into(),
            description: String::new(),
            target_kinds: vec!["postgres".into()],
            operations: Vec::new(),
            parameters: vec![
                text("host", None),
                text("port", Some("5432")),
                text("user", Some("postgres")),
            ],
            capabilities: vec![
                Capability::Exec {
                    program: "pg_dumpall".into(),
                    args: vec!["**".into()],
                },
                Capability::Connect {
                    host: "*".into(),
                    port: 0,
                },
                Capability::Secret {
                    name: "password".into(),
                },
            ],
        }
    }

    #[test]
    fn a_workloads_database_addon_reaches_localhost() {
        let deployment = TypedObjectReference {
            api_group: Some("apps".into()),
            kind: "StatefulSet".into(),
            namespace: None,
            name: "pg".into(),
        };
        assert_eq!(
            for_addon(TargetKind::Workload, &postgres_like()),
            TargetKind::Network { app_binding: None }
        );
        assert_eq!(default_host(&deployment, "db"), "127.0.0.1");
        let mut volume_like = postgres_like();
        volume_like.parameters.retain(|p| p.name != "host");
        assert_eq!(
            for_addon(TargetKind::Workload, &volume_like),
            TargetKind::Workload,
            "the volume addon gets the pod's volumes"
        );
        assert_eq!(
            for_addon(TargetKind::Volume, &postgres_like()),
            TargetKind::Volume
        );
        let kubedb = TypedObjectReference {
            api_group: Some("kubedb.com".into()),
            kind: "Postgres".into(),
            namespace: None,
            name: "pg".into(),
        };
        assert_eq!(default_host(&kubedb, "db"), "pg.db.svc");
    }

    #[test]
    fn credentials_from_kubestash_keys() {
        let info = postgres_like();
        let data: SecretData = [
            ("POSTGRES_USER", "app\n"),
            ("POSTGRES_PASSWORD", "s3cret\n"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.as_bytes().to_vec()))
        .collect();
        let mut params = TaskParams::default();
        let secrets = credentials(&info, &data, &mut params).expect("credentials");
        assert_eq!(
            secrets.get("password").map(|v| v.as_slice()),
            Some(&b"s3cret"[..])
        );
        assert_eq!(params.get("user"), Some("app"));

        let mut given = TaskParams::default();
        given.set_default("user", "admin");
        credentials(&info, &data, &mut given).expect("credentials");
        assert_eq!(given.get("user"), Some("admin"), "a given user is kept");

        let err = credentials(&info, &SecretData::new(), &mut TaskParams::default())
            .expect_err("no password");
        assert_eq!(
            err,
            "no key password or POSTGRES_PASSWORD or MYSQL_ROOT_PASSWORD or \
             MARIADB_ROOT_PASSWORD (addon postgres 0.1.0 reads the secret \"password\")"
        );
    }

    #[test]
    fn endpoint_from_params_and_defaults() {
        let info = postgres_like();
        let mut params = TaskParams::default();
        let err = endpoint(&info, &params).expect_err("no host");
        assert!(err.contains("give its host and port"), "{err}");
        params.set_default("host", "pg.db.svc");
        assert_eq!(
            endpoint(&info, &params).expect("default port"),
            vec![Endpoint::new("pg.db.svc", 5432)]
        );
        params.addon.push(("port".into(), "x".into()));
        assert_eq!(
            endpoint(&info, &params).expect_err("bad port"),
            "parameter port: \"x\" is not a TCP port"
        );
        let grants = declared_exec(&info);
        assert_eq!(grants.len(), 1);
        assert_eq!(grants[0].program, "pg_dumpall");
    }

    #[test]
    fn workload_volumes_are_the_subdirectories_and_components_select_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let label = "Deployment web";
        let missing = dir.path().join("volumes");
        let err = workload_volumes(&missing, label).expect_err("missing");
        assert!(matches!(err, ExecuteError::Target { .. }), "{err}");
        assert_eq!(
            err.to_string(),
            format!(
                "target Deployment web: the volumes directory {} does not exist: the Stowaway \
                 sidecar (or the restore Job) must mount the workload's volumes there, one \
                 directory per volume named after it",
                missing.display()
            )
        );
        std::fs::create_dir(&missing).expect("mkdir");
        std::fs::write(missing.join("not-a-volume"), b"x").expect("file");
        std::fs::create_dir(missing.join(".hidden")).expect("hidden");
        let err = workload_volumes(&missing, label).expect_err("empty");
        assert!(
            err.to_string().contains(&format!(
                "no volume is mounted under {}: the Stowaway sidecar",
                missing.display()
            )),
            "{err}"
        );
        for name in ["logs", "data"] {
            std::fs::create_dir(missing.join(name)).expect("volume");
        }
        let found = workload_volumes(&missing, label).expect("volumes");
        assert_eq!(
            found,
            vec![
                ("data".to_owned(), missing.join("data")),
                ("logs".to_owned(), missing.join("logs")),
            ]
        );
        let all = select_volumes(found.clone(), &[], label).expect("all");
        assert_eq!(all, found);
        let one = select_volumes(found.clone(), &["logs".to_owned()], label).expect("one");
        assert_eq!(one, vec![("logs".to_owned(), missing.join("logs"))]);
        let err = select_volumes(found, &["logs".into(), "cache".into(), "tmp".into()], label)
            .expect_err("unknown");
        assert_eq!(
            err.to_string(),
            "target Deployment web: no volume cache, tmp (the workload's volumes: data, logs)"
        );
        assert_eq!(err.reason(), "TargetNotAccessible");
    }

    #[test]
    fn the_components_annotation_lists_volumes() {
        let annotations = BTreeMap::from([(
            COMPONENTS_ANNOTATION.to_owned(),
            " data, ,logs,data".to_owned(),
        )]);
        assert_eq!(wanted_components(&annotations), vec!["data", "logs"]);
        assert!(wanted_components(&BTreeMap::new()).is_empty());
    }

    #[test]
    fn the_target_root_must_be_a_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        check_dir(dir.path()).expect("dir");
        let missing = dir.path().join("missing");
        let err = check_dir(&missing).expect_err("missing");
        assert!(
            err.to_string()
                .starts_with("the target's volume is not mounted at"),
            "{err}"
        );
        let file = dir.path().join("file");
        std::fs::write(&file, b"x").expect("write");
        assert!(
            check_dir(&file)
                .expect_err("file")
                .to_string()
                .contains("is not a directory")
        );
    }
}
