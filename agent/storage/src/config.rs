//! Where a repository is stored ([`StorageConfig`]) and how the client talks to it
//! ([`StorageOptions`]).
//!
//! [`StorageConfig`] has the shape of KubeStash's `BackupStorage.spec.storage`, so the
//! operator can deserialize that block into it unchanged; fields KubeStash does not have are
//! Stowaway extensions and optional. Credentials are never part of it: `secretName` names a
//! Kubernetes Secret, whose mounted files are read from [`StorageOptions::credentials`].

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One storage location: KubeStash's `BackupStorage.spec.storage`.
///
/// ```
/// let json = r#"{"provider": "s3", "s3": {"endpoint": "https://minio.example:9000",
///     "bucket": "backups", "prefix": "team-a", "secretName": "minio-creds"}}"#;
/// let config: stowaway_storage::StorageConfig = serde_json::from_str(json).unwrap();
/// assert_eq!(config.s3.unwrap().bucket, "backups");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StorageConfig {
    /// Which of the blocks below is used.
    pub provider: Provider,
    /// Amazon S3 or an S3-compatible server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3Config>,
    /// Google Cloud Storage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gcs: Option<GcsConfig>,
    /// Azure Blob Storage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azure: Option<AzureConfig>,
    /// A mounted volume (hostPath, NFS, PVC) or a local directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<LocalConfig>,
}

/// The storage provider (`spec.storage.provider`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// A local directory or mounted volume.
    Local,
    /// Amazon S3 or an S3-compatible server.
    S3,
    /// Google Cloud Storage.
    Gcs,
    /// Azure Blob Storage.
    Azure,
    /// A fresh in-memory store (Stowaway extension, for tests and dry runs).
    Memory,
}

/// `spec.storage.s3`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct S3Config {
    /// Service URL including the scheme (`https://s3.us-west-1.amazonaws.com`,
    /// `http://minio.ns.svc:9000`); empty for AWS, where the region decides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Bucket name.
    pub bucket: String,
    /// Directory inside the bucket.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub prefix: String,
    /// Region (else `AWS_REGION` / `AWS_DEFAULT_REGION`, else `us-east-1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Secret with `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` (and optionally
    /// `AWS_SESSION_TOKEN`, `CA_CERT_DATA`); empty means credentials from the environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
    /// At most this many concurrent requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<u32>,
    /// Skip TLS certificate verification.
    #[serde(default, rename = "insecureTLS", skip_serializing_if = "is_false")]
    pub insecure_tls: bool,
    /// Stowaway extension: address the bucket as `https://<bucket>.<endpoint host>` instead of
    /// `https://<endpoint host>/<bucket>`. Default: virtual-hosted on AWS (no endpoint),
    /// path-style with a custom endpoint (MinIO, Ceph, moto).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virtual_hosted_style: Option<bool>,
    /// Stowaway extension: server-side encryption of new objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_side_encryption: Option<ServerSideEncryption>,
    /// Stowaway extension: S3 Object Lock retention for new repository files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_lock: Option<ObjectLockConfig>,
}

/// Server-side encryption of S3 objects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerSideEncryption {
    /// `AES256` (SSE-S3) or `aws:kms` (SSE-KMS).
    pub algorithm: SseAlgorithm,
    /// KMS key id or ARN for SSE-KMS (else the bucket's or AWS-managed key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
}

/// The `x-amz-server-side-encryption` algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SseAlgorithm {
    /// SSE-S3: keys managed by S3.
    #[serde(rename = "AES256")]
    Aes256,
    /// SSE-KMS: keys in AWS KMS.
    #[serde(rename = "aws:kms")]
    Kms,
}

/// S3 Object Lock retention applied to every new repository file except locks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectLockConfig {
    /// `GOVERNANCE` or `COMPLIANCE`.
    pub mode: LockMode,
    /// Days from the upload until the object may be deleted.
    pub retain_days: u32,
}

/// An S3 Object Lock retention mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum LockMode {
    /// Users with `s3:BypassGovernanceRetention` may still delete.
    Governance,
    /// Nobody, not even the root account, can delete before the date.
    Compliance,
}

impl LockMode {
    /// The header value (`GOVERNANCE`, `COMPLIANCE`).
    pub fn as_str(self) -> &'static str {
        match self {
            LockMode::Governance => "GOVERNANCE",
            LockMode::Compliance => "COMPLIANCE",
        }
    }
}

/// `spec.storage.gcs`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GcsConfig {
    /// Bucket name.
    pub bucket: String,
    /// Directory inside the bucket.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub prefix: String,
    /// At most this many concurrent requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<u32>,
    /// Secret with `GOOGLE_SERVICE_ACCOUNT_JSON_KEY` (and `GOOGLE_PROJECT_ID`); empty means
    /// credentials from the environment (workload identity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
}

/// `spec.storage.azure`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AzureConfig {
    /// Storage account name (else `AZURE_STORAGE_ACCOUNT_NAME` / `AZURE_STORAGE_ACCOUNT`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub storage_account: String,
    /// Container name.
    pub container: String,
    /// Directory inside the container.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub prefix: String,
    /// At most this many concurrent requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<u32>,
    /// Secret with `AZURE_ACCOUNT_KEY`; empty means credentials from the environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
    /// Stowaway extension: blob service URL (default `https://<account>.blob.core.windows.net`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Stowaway extension: talk to the Azurite emulator (account `devstoreaccount1` and its
    /// well-known key unless given; endpoint default `http://127.0.0.1:10000`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub use_emulator: bool,
}

/// `spec.storage.local`: a volume mounted at `mountPath` (the volume source fields of the
/// KubeStash block are for the operator and ignored here).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LocalConfig {
    /// Where the volume is mounted.
    pub mount_path: PathBuf,
    /// Directory inside the volume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_path: Option<String>,
    /// At most this many concurrent requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<u32>,
}

impl StorageConfig {
    /// A local directory.
    pub fn local(path: impl Into<PathBuf>) -> StorageConfig {
        StorageConfig {
            provider: Provider::Local,
            local: Some(LocalConfig {
                mount_path: path.into(),
                ..LocalConfig::default()
            }),
            ..StorageConfig::empty(Provider::Local)
        }
    }

    /// A fresh in-memory store.
    pub fn memory() -> StorageConfig {
        StorageConfig::empty(Provider::Memory)
    }

    /// An S3 bucket and prefix.
    pub fn s3(s3: S3Config) -> StorageConfig {
        StorageConfig {
            s3: Some(s3),
            ..StorageConfig::empty(Provider::S3)
        }
    }

    /// A GCS bucket and prefix.
    pub fn gcs(gcs: GcsConfig) -> StorageConfig {
        StorageConfig {
            gcs: Some(gcs),
            ..StorageConfig::empty(Provider::Gcs)
        }
    }

    /// An Azure container and prefix.
    pub fn azure(azure: AzureConfig) -> StorageConfig {
        StorageConfig {
            azure: Some(azure),
            ..StorageConfig::empty(Provider::Azure)
        }
    }

    fn empty(provider: Provider) -> StorageConfig {
        StorageConfig {
            provider,
            s3: None,
            gcs: None,
            azure: None,
            local: None,
        }
    }

    /// The `maxConnections` of the selected provider block.
    pub fn max_connections(&self) -> Option<u32> {
        match self.provider {
            Provider::S3 => self.s3.as_ref().and_then(|c| c.max_connections),
            Provider::Gcs => self.gcs.as_ref().and_then(|c| c.max_connections),
            Provider::Azure => self.azure.as_ref().and_then(|c| c.max_connections),
            Provider::Local => self.local.as_ref().and_then(|c| c.max_connections),
            Provider::Memory => None,
        }
    }
}

/// How the client uses the storage: safety mode, limits, retries, credentials. Not part of
/// KubeStash's BackupStorage; the CLI fills it from global options.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct StorageOptions {
    /// Refuse to delete or overwrite anything outside `locks/` ([`crate::Error::AppendOnly`]).
    pub append_only: bool,
    /// Upload bandwidth limit in bytes per second.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit_upload: Option<u64>,
    /// Download bandwidth limit in bytes per second.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit_download: Option<u64>,
    /// Retries of transient failures.
    pub retry: RetryPolicy,
    /// When and how large objects are uploaded in parts.
    pub multipart: MultipartPolicy,
    /// The mounted Secret named by `secretName`: a directory with one file per key (as
    /// Kubernetes mounts a Secret) or a file of `KEY=value` lines. Its values take
    /// precedence over the environment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credentials: Option<PathBuf>,
}

/// Retries of transient failures with jittered exponential backoff: attempt `n` (from 1)
/// waits a random time in `[0, min(max_backoff, initial_backoff * 2^(n-1))]` first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RetryPolicy {
    /// Attempts in total, including the first (1 = no retries).
    pub max_attempts: u32,
    /// Upper bound of the first wait, in milliseconds.
    pub initial_backoff_ms: u64,
    /// Upper bound of any wait, in milliseconds.
    pub max_backoff_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 6,
            initial_backoff_ms: 200,
            max_backoff_ms: 10_000,
        }
    }
}

impl RetryPolicy {
    /// No retries: every error is returned at once.
    pub fn none() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        }
    }

    /// Many quick retries (1 ms .. 20 ms), for tests that inject faults.
    pub fn fast(max_attempts: u32) -> RetryPolicy {
        RetryPolicy {
            max_attempts,
            initial_backoff_ms: 1,
            max_backoff_ms: 20,
        }
    }

    /// The upper bound of the wait before attempt `attempt` (2 = the first retry).
    pub fn backoff_cap(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(2).min(30);
        let cap = self.initial_backoff_ms.saturating_mul(1u64 << exp);
        Duration::from_millis(cap.min(self.max_backoff_ms))
    }
}

/// Multipart uploads: objects larger than `threshold` bytes are uploaded in parts of
/// `partSize` bytes, `concurrency` parts at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct MultipartPolicy {
    /// Objects larger than this use a multipart upload.
    pub threshold: u64,
    /// Size of each part but the last (S3 requires at least 5 MiB).
    pub part_size: u64,
    /// Parts uploaded at the same time.
    pub concurrency: usize,
}

/// Smallest part S3 accepts (except the last one).
pub const S3_MIN_PART_SIZE: u64 = 5 * 1024 * 1024;

impl Default for MultipartPolicy {
    fn default() -> Self {
        MultipartPolicy {
            threshold: 16 * 1024 * 1024,
            part_size: 8 * 1024 * 1024,
            concurrency: 4,
        }
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubestash_backup_storage_spec_deserializes() {
        // spec.storage of a KubeStash BackupStorage, as `kubectl get -o json` prints it.
        let json = r#"{
            "provider": "s3",
            "s3": {
                "endpoint": "https://s3.us-west-1.amazonaws.com",
                "bucket": "kubestash-demo",
                "prefix": "demo",
                "region": "us-west-1",
                "secretName": "s3-secret",
                "maxConnections": 8,
                "insecureTLS": true
            }
        }"#;
        let config: StorageConfig = serde_json::from_str(json).expect("parse");
        assert_eq!(config.provider, Provider::S3);
        let s3 = config.s3.as_ref().expect("s3 block");
        assert_eq!(s3.bucket, "kubestash-demo");
        assert_eq!(s3.prefix, "demo");
        assert_eq!(s3.region.as_deref(), Some("us-west-1"));
        assert_eq!(s3.secret_name.as_deref(), Some("s3-secret"));
        assert_eq!(s3.max_connections, Some(8));
        assert!(s3.insecure_tls);
        assert_eq!(config.max_connections(), Some(8));

        let json = r#"{"provider": "local", "local": {"mountPath": "/safe/data",
            "subPath": "team-a", "hostPath": {"path": "/data/backups"}}}"#;
        let config: StorageConfig = serde_json::from_str(json).expect("parse local");
        let local = config.local.expect("local block");
        assert_eq!(local.mount_path, PathBuf::from("/safe/data"));
        assert_eq!(local.sub_path.as_deref(), Some("team-a"));

        let json = r#"{"provider": "azure", "azure": {"storageAccount": "acct",
            "container": "c", "prefix": "p", "maxConnections": 4, "secretName": "az"}}"#;
        let config: StorageConfig = serde_json::from_str(json).expect("parse azure");
        assert_eq!(config.azure.expect("azure").storage_account, "acct");

        let json = r#"{"provider": "gcs", "gcs": {"bucket": "b", "prefix": "p",
            "maxConnections": 5, "secretName": "gcs"}}"#;
        let config: StorageConfig = serde_json::from_str(json).expect("parse gcs");
        assert_eq!(config.gcs.expect("gcs").max_connections, Some(5));
    }

    #[test]
    fn stowaway_extensions_round_trip() {
        let config = StorageConfig::s3(S3Config {
            bucket: "b".into(),
            server_side_encryption: Some(ServerSideEncryption {
                algorithm: SseAlgorithm::Kms,
                kms_key_id: Some("key-1".into()),
            }),
            object_lock: Some(ObjectLockConfig {
                mode: LockMode::Compliance,
                retain_days: 30,
            }),
            ..S3Config::default()
        });
        let json = serde_json::to_value(&config).expect("serialize");
        assert_eq!(json["s3"]["serverSideEncryption"]["algorithm"], "aws:kms");
        assert_eq!(json["s3"]["objectLock"]["mode"], "COMPLIANCE");
        assert_eq!(json["s3"]["objectLock"]["retainDays"], 30);
        let back: StorageConfig = serde_json::from_value(json).expect("deserialize");
        assert_eq!(back, config);
    }

    #[test]
    fn backoff_grows_to_the_cap() {
        let p = RetryPolicy {
            max_attempts: 10,
            initial_backoff_ms: 100,
            max_backoff_ms: 1000,
        };
        assert_eq!(p.backoff_cap(2), Duration::from_millis(100));
        assert_eq!(p.backoff_cap(3), Duration::from_millis(200));
        assert_eq!(p.backoff_cap(5), Duration::from_millis(800));
        assert_eq!(p.backoff_cap(6), Duration::from_millis(1000));
        assert_eq!(p.backoff_cap(60), Duration::from_millis(1000));
    }
}
