//! Storage URLs of the command line, parsed into a [`StorageConfig`].
//!
//! | URL | storage |
//! |---|---|
//! | `/path`, `relative/path`, `file:///path` | local directory |
//! | `memory://` | fresh in-memory store |
//! | `s3://bucket/prefix?endpoint=…&region=…&path-style=true` | S3 or S3-compatible |
//! | `gs://bucket/prefix` | Google Cloud Storage |
//! | `azblob://container/prefix?account=…` (also `az://`) | Azure Blob Storage |
//!
//! Query options use `kebab-case` (`snake_case` is accepted too); an unknown option is an
//! error, so a typo never goes unnoticed. Credentials are never taken from the URL.

use crate::config::{
    AzureConfig, GcsConfig, LockMode, ObjectLockConfig, S3Config, ServerSideEncryption,
    SseAlgorithm, StorageConfig,
};
use crate::error::{Error, Result};

impl StorageConfig {
    /// Parses a storage URL (see the module documentation of `stowaway_storage` for the
    /// forms). Unknown schemes fail with [`Error::UnsupportedUrl`], bad options with
    /// [`Error::InvalidConfig`].
    pub fn from_url(url: &str) -> Result<StorageConfig> {
        let unsupported = || Error::UnsupportedUrl {
            url: url.to_owned(),
        };
        let Some((scheme, rest)) = url.split_once("://") else {
            return Ok(StorageConfig::local(url));
        };
        let scheme = scheme.to_ascii_lowercase();
        match scheme.as_str() {
            "file" => {
                let parsed = url::Url::parse(url).map_err(|_| unsupported())?;
                let path = parsed.to_file_path().map_err(|()| unsupported())?;
                Ok(StorageConfig::local(path))
            }
            "memory" if rest.trim_matches('/').is_empty() => Ok(StorageConfig::memory()),
            "s3" | "gs" | "azblob" | "az" => {
                let (location, query) = rest.split_once('?').unwrap_or((rest, ""));
                let (bucket, prefix) = location.split_once('/').unwrap_or((location, ""));
                if bucket.is_empty() {
                    return Err(Error::config(format!("{url}: the bucket name is missing")));
                }
                let prefix = prefix.trim_matches('/').to_owned();
                let options = Query::parse(url, query)?;
                match scheme.as_str() {
                    "s3" => s3(url, bucket, prefix, options),
                    "gs" => gcs(url, bucket, prefix, options),
                    _ => azure(url, bucket, prefix, options),
                }
            }
            _ => Err(unsupported()),
        }
    }
}

fn s3(url: &str, bucket: &str, prefix: String, mut q: Query) -> Result<StorageConfig> {
    let mut s3 = S3Config {
        bucket: bucket.to_owned(),
        prefix,
        endpoint: q.take("endpoint"),
        region: q.take("region"),
        max_connections: q.take_number("max-connections")?,
        insecure_tls: q.take_bool("insecure-tls")?.unwrap_or(false),
        ..S3Config::default()
    };
    if let Some(path_style) = q.take_bool("path-style")? {
        s3.virtual_hosted_style = Some(!path_style);
    }
    if let Some(virtual_hosted) = q.take_bool("virtual-hosted")? {
        s3.virtual_hosted_style = Some(virtual_hosted);
    }
    let kms_key_id = q.take("sse-kms-key-id");
    if let Some(sse) = q.take("sse") {
        let algorithm = match sse.to_ascii_lowercase().as_str() {
            "aes256" | "s3" | "sse-s3" => SseAlgorithm::Aes256,
            "aws:kms" | "kms" | "sse-kms" => SseAlgorithm::Kms,
            other => {
                return Err(Error::config(format!(
                    "{url}: sse={other}: expected AES256 (SSE-S3) or aws:kms (SSE-KMS)"
                )));
            }
        };
        s3.server_side_encryption = Some(ServerSideEncryption {
            algorithm,
            kms_key_id,
        });
    } else if kms_key_id.is_some() {
        s3.server_side_encryption = Some(ServerSideEncryption {
            algorithm: SseAlgorithm::Kms,
            kms_key_id,
        });
    }
    let mode = q.take("object-lock-mode");
    let days = q.take_number::<u32>("object-lock-days")?;
    s3.object_lock = match (mode, days) {
        (None, None) => None,
        (Some(mode), Some(retain_days)) => {
            let mode = match mode.to_ascii_uppercase().as_str() {
                "GOVERNANCE" => LockMode::Governance,
                "COMPLIANCE" => LockMode::Compliance,
                other => {
                    return Err(Error::config(format!(
                        "{url}: object-lock-mode={other}: expected governance or compliance"
                    )));
                }
            };
            Some(ObjectLockConfig { mode, retain_days })
        }
        _ => {
            return Err(Error::config(format!(
                "{url}: object lock needs both object-lock-mode and object-lock-days"
            )));
        }
    };
    q.finish()?;
    Ok(StorageConfig::s3(s3))
}

fn gcs(_url: &str, bucket: &str, prefix: String, mut q: Query) -> Result<StorageConfig> {
    let gcs = GcsConfig {
        bucket: bucket.to_owned(),
        prefix,
        max_connections: q.take_number("max-connections")?,
        secret_name: None,
    };
    q.finish()?;
    Ok(StorageConfig::gcs(gcs))
}

fn azure(_url: &str, container: &str, prefix: String, mut q: Query) -> Result<StorageConfig> {
    let azure = AzureConfig {
        container: container.to_owned(),
        prefix,
        storage_account: q.take("account").unwrap_or_default(),
        endpoint: q.take("endpoint"),
        use_emulator: q.take_bool("use-emulator")?.unwrap_or(false),
        max_connections: q.take_number("max-connections")?,
        secret_name: None,
    };
    q.finish()?;
    Ok(StorageConfig::azure(azure))
}

/// Query options of a URL, consumed one by one; leftovers are an error.
struct Query {
    url: String,
    pairs: Vec<(String, String)>,
}

impl Query {
    fn parse(url: &str, query: &str) -> Result<Query> {
        let mut pairs: Vec<(String, String)> = Vec::new();
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
            let key = key.to_ascii_lowercase().replace('_', "-");
            if pairs.iter().any(|(k, _)| *k == key) {
                return Err(Error::config(format!("{url}: option {key} given twice")));
            }
            pairs.push((key, value.into_owned()));
        }
        Ok(Query {
            url: url.to_owned(),
            pairs,
        })
    }

    fn take(&mut self, key: &str) -> Option<String> {
        let at = self.pairs.iter().position(|(k, _)| k == key)?;
        Some(self.pairs.remove(at).1).filter(|v| !v.is_empty())
    }

    fn take_bool(&mut self, key: &str) -> Result<Option<bool>> {
        match self.take(key).as_deref() {
            None => Ok(None),
            Some("true" | "1" | "yes") => Ok(Some(true)),
            Some("false" | "0" | "no") => Ok(Some(false)),
            Some(other) => Err(Error::config(format!(
                "{}: {key}={other}: expected true or false",
                self.url
            ))),
        }
    }

    fn take_number<T: std::str::FromStr>(&mut self, key: &str) -> Result<Option<T>> {
        match self.take(key) {
            None => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| Error::config(format!("{}: {key}={v}: expected a number", self.url))),
        }
    }

    fn finish(self) -> Result<()> {
        match self.pairs.first() {
            None => Ok(()),
            Some((key, _)) => Err(Error::config(format!("{}: unknown option {key}", self.url))),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::config::Provider;

    #[test]
    fn s3_url_with_options() {
        let config = StorageConfig::from_url(
            "s3://bucket/some/prefix/?endpoint=http://127.0.0.1:9000&region=eu-west-1\
             &path-style=true&max_connections=4&insecure-tls=true&sse=aws:kms\
             &sse-kms-key-id=arn:aws:kms:k&object-lock-mode=governance&object-lock-days=7",
        )
        .expect("parse");
        assert_eq!(config.provider, Provider::S3);
        let s3 = config.s3.expect("s3");
        assert_eq!(s3.bucket, "bucket");
        assert_eq!(s3.prefix, "some/prefix");
        assert_eq!(s3.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(s3.region.as_deref(), Some("eu-west-1"));
        assert_eq!(s3.virtual_hosted_style, Some(false));
        assert_eq!(s3.max_connections, Some(4));
        assert!(s3.insecure_tls);
        let sse = s3.server_side_encryption.expect("sse");
        assert_eq!(sse.algorithm, SseAlgorithm::Kms);
        assert_eq!(sse.kms_key_id.as_deref(), Some("arn:aws:kms:k"));
        assert_eq!(
            s3.object_lock,
            Some(ObjectLockConfig {
                mode: LockMode::Governance,
                retain_days: 7
            })
        );
    }

    #[test]
    fn plain_s3_gs_and_azure_urls() {
        let s3 = StorageConfig::from_url("s3://b")
            .expect("s3")
            .s3
            .expect("s3");
        assert_eq!((s3.bucket.as_str(), s3.prefix.as_str()), ("b", ""));
        assert_eq!(s3.virtual_hosted_style, None);

        let gcs = StorageConfig::from_url("gs://b/p").expect("gs");
        assert_eq!(gcs.provider, Provider::Gcs);
        assert_eq!(gcs.gcs.expect("gcs").prefix, "p");

        let az = StorageConfig::from_url(
            "azblob://container/p/q?use_emulator=true&endpoint=http://127.0.0.1:10000",
        )
        .expect("azblob");
        let az = az.azure.expect("azure");
        assert_eq!(az.container, "container");
        assert_eq!(az.prefix, "p/q");
        assert!(az.use_emulator);
        assert_eq!(az.endpoint.as_deref(), Some("http://127.0.0.1:10000"));
        let az = StorageConfig::from_url("az://c?account=acct").expect("az");
        assert_eq!(az.azure.expect("azure").storage_account, "acct");
    }

    #[test]
    fn local_and_memory_urls() {
        let local = StorageConfig::from_url("/var/backups").expect("path");
        assert_eq!(
            local.local.expect("local").mount_path,
            PathBuf::from("/var/backups")
        );
        let local = StorageConfig::from_url("file:///srv/repo").expect("file url");
        assert_eq!(
            local.local.expect("local").mount_path,
            PathBuf::from("/srv/repo")
        );
        assert_eq!(
            StorageConfig::from_url("memory://")
                .expect("memory")
                .provider,
            Provider::Memory
        );
    }

    #[test]
    fn bad_urls_are_refused_with_the_reason() {
        let err = |url: &str| StorageConfig::from_url(url).expect_err(url).to_string();
        assert_eq!(
            err("s3://b/p?enpoint=http://x"),
            "invalid storage configuration: s3://b/p?enpoint=http://x: unknown option enpoint"
        );
        assert!(err("s3:///p").contains("bucket name is missing"));
        assert!(
            err("s3://b?path-style=maybe").contains("path-style=maybe: expected true or false")
        );
        assert!(err("s3://b?object-lock-days=3").contains("needs both"));
        assert!(
            err("s3://b?object-lock-mode=x&object-lock-days=3")
                .contains("governance or compliance")
        );
        assert!(err("s3://b?max-connections=many").contains("expected a number"));
        assert!(err("s3://b?region=a&region=b").contains("given twice"));
        assert_eq!(err("ftp://host/x"), "unsupported storage URL ftp://host/x");
        assert_eq!(err("memory://x"), "unsupported storage URL memory://x");
    }
}
