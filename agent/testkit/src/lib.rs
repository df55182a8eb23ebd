//! What the end-to-end tests of the executor and the sidecar share: manifests, Secrets, the
//! addon runtime and the built-in addons' descriptions, and real directory trees to back up
//! and compare byte for byte. Test code only: it panics on failure.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use stowaway_executor::Settings;
use stowaway_operator::addon_registry::BuiltinAddon;
use stowaway_runtime::{Runtime, RuntimeOptions};

/// An object from a YAML manifest.
pub fn yaml<T: serde::de::DeserializeOwned>(text: &str) -> T {
    serde_yaml::from_str(text).expect("test manifest")
}

/// A repository-password Secret (`RESTIC_PASSWORD`) `namespace/name`.
pub fn password_secret(namespace: &str, name: &str, password: &str) -> Secret {
    Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(name.into()),
            namespace: Some(namespace.into()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(
            "RESTIC_PASSWORD".to_owned(),
            ByteString(password.as_bytes().to_vec()),
        )])),
        ..Secret::default()
    }
}

/// The addon runtime, compiling into a cache shared by the tests of `suite`.
pub fn runtime(suite: &str) -> Runtime {
    Runtime::new(RuntimeOptions {
        cache_dir: Some(std::env::temp_dir().join(format!("stowaway-{suite}-tests"))),
        no_cache: false,
    })
    .expect("runtime")
}

/// Executor settings with the real built-in addons.
pub fn settings(runtime: Runtime) -> Settings {
    Settings::new(runtime, stowaway_addons::builtin, || {
        stowaway_addons::builtin_names().collect()
    })
}

/// The built-in addons as they describe themselves, for the operator's addon registry.
pub fn builtin_addons(runtime: Runtime) -> Vec<BuiltinAddon> {
    settings(runtime)
        .builtin_descriptions()
        .expect("describe the built-in addons")
}

/// Writes a tree with nested directories, an empty file, a file of several chunks, a symlink
/// and unusual permissions under `root`.
pub fn make_tree(root: &Path) {
    let write = |rel: &str, data: &[u8]| {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, data).expect("write");
    };
    write("a.txt", b"hello from the volume\n");
    write("empty", b"");
    write("docs/readme.md", b"# docs\n");
    write("docs/deep/er/file.bin", &[7u8; 4096]);
    let mut big = Vec::with_capacity(3 << 20);
    let mut x: u32 = 0x1234_5678;
    while big.len() < 3 << 20 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        big.extend_from_slice(&x.to_le_bytes());
    }
    write("data/big.bin", &big);
    std::os::unix::fs::symlink("docs/readme.md", root.join("link")).expect("symlink");
    std::fs::set_permissions(
        root.join("docs/readme.md"),
        std::fs::Permissions::from_mode(0o600),
    )
    .expect("chmod");
}

/// One entry of [`tree`]: kind (with the modification time for files), mode, and content or
/// link target.
pub type Entry = (String, u32, Vec<u8>);

/// Every entry under `root` (relative path → [`Entry`]), with the paths in `skip` left out.
pub fn tree(root: &Path, skip: &[&str]) -> BTreeMap<String, Entry> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Entry>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .expect("list")
            .map(|e| e.expect("entry").path())
            .collect();
        entries.sort();
        for path in entries {
            let rel = path
                .strip_prefix(root)
                .expect("relative")
                .display()
                .to_string();
            let meta = std::fs::symlink_metadata(&path).expect("lstat");
            let mode = meta.mode() & 0o7777;
            if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&path).expect("readlink");
                out.insert(
                    rel,
                    ("symlink".into(), 0, target.display().to_string().into()),
                );
            } else if meta.is_dir() {
                out.insert(rel, ("dir".into(), mode, Vec::new()));
                walk(root, &path, out);
            } else {
                let content = std::fs::read(&path).expect("read");
                out.insert(rel, (format!("file {}", meta.mtime()), mode, content));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out.retain(|k, _| !skip.iter().any(|s| k == s));
    out
}

/// A fake API server (`kube-fake-client`) with every kind the operator and the executor use
/// registered, statuses as subresources; tests add their objects and extra kinds.
pub fn fake_cluster() -> kube_fake_client::ClientBuilder {
    use stowaway_api::{
        Addon, BackupBatch, BackupConfiguration, BackupSession, BackupStorage, HookTemplate,
        Repository, RestoreSession, RetentionPolicy, Snapshot,
    };
    kube_fake_client::ClientBuilder::new()
        .with_resource::<BackupStorage>()
        .with_status_subresource::<BackupStorage>()
        .with_resource::<Repository>()
        .with_status_subresource::<Repository>()
        .with_resource::<Snapshot>()
        .with_status_subresource::<Snapshot>()
        .with_resource::<BackupConfiguration>()
        .with_status_subresource::<BackupConfiguration>()
        .with_resource::<BackupBatch>()
        .with_status_subresource::<BackupBatch>()
        .with_resource::<BackupSession>()
        .with_status_subresource::<BackupSession>()
        .with_resource::<RestoreSession>()
        .with_status_subresource::<RestoreSession>()
        .with_resource::<RetentionPolicy>()
        .with_resource::<HookTemplate>()
        .with_resource::<Addon>()
        .with_resource::<k8s_openapi::api::events::v1::Event>()
        .with_status_subresource::<k8s_openapi::api::batch::v1::Job>()
}

/// The BackupStorage `store` of `namespace` on the local directory `path`
/// (`deletionPolicy: Delete`).
pub fn local_storage(namespace: &str, path: &Path) -> stowaway_api::BackupStorage {
    yaml(&format!(
        r#"
apiVersion: storage.stowaway.dev/v1alpha1
kind: BackupStorage
metadata: {{name: store, namespace: {namespace}}}
spec:
  storage: {{provider: local, local: {{mountPath: "{}"}}}}
  deletionPolicy: Delete
"#,
        path.display()
    ))
}
