//! Building the `object_store` backend of a [`StorageConfig`].

use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey, Checksum};
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::limit::LimitStore;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, RetryConfig};

use crate::config::{
    AzureConfig, GcsConfig, LocalConfig, Provider, S3Config, SseAlgorithm, StorageConfig,
    StorageOptions,
};
use crate::credentials::Credentials;
use crate::error::{Error, Result};
use crate::object_lock::{LockClient, LockConnector, Signer};

/// Concurrent requests to a cloud backend when `maxConnections` is not set.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 8;

/// The well-known account key of the Azurite emulator (public, documented by Microsoft).
const AZURITE_ACCOUNT: &str = "devstoreaccount1";
const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// A built backend: the store, the key prefix inside it, and a description without secrets.
pub(crate) struct Backend {
    pub(crate) store: Arc<dyn ObjectStore>,
    pub(crate) prefix: String,
    pub(crate) description: String,
    pub(crate) lock: Option<LockClient>,
}

/// HTTP retries inside `object_store`: a few quick ones per request. The storage layer
/// retries whole operations on top (see `retry.rs`).
fn http_retry() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            base: 2.0,
        },
        max_retries: 3,
        retry_timeout: Duration::from_secs(60),
    }
}

pub(crate) fn build(config: &StorageConfig, options: &StorageOptions) -> Result<Backend> {
    let credentials = match &options.credentials {
        Some(path) => Credentials::load(path)?,
        None => Credentials::default(),
    };
    build_with(config, options, &credentials)
}

/// [`build`] with credentials given in memory (`options.credentials` is not read).
pub(crate) fn build_with(
    config: &StorageConfig,
    options: &StorageOptions,
    credentials: &Credentials,
) -> Result<Backend> {
    let missing = |block: &str| {
        Error::config(format!(
            "provider {block} needs a `{block}` block in the storage configuration"
        ))
    };
    let mut backend = match config.provider {
        Provider::Memory => Backend {
            store: Arc::new(InMemory::new()),
            prefix: String::new(),
            description: "memory://".to_owned(),
            lock: None,
        },
        Provider::Local => local(config.local.as_ref().ok_or_else(|| missing("local"))?)?,
        Provider::S3 => s3(
            config.s3.as_ref().ok_or_else(|| missing("s3"))?,
            credentials,
            options,
        )?,
        Provider::Gcs => gcs(
            config.gcs.as_ref().ok_or_else(|| missing("gcs"))?,
            credentials,
            None,
        )?,
        Provider::Azure => azure(
            config.azure.as_ref().ok_or_else(|| missing("azure"))?,
            credentials,
        )?,
    };
    let limit = match config.provider {
        Provider::S3 | Provider::Gcs | Provider::Azure => {
            Some(config.max_connections().unwrap_or(DEFAULT_MAX_CONNECTIONS))
        }
        Provider::Local | Provider::Memory => config.max_connections(),
    };
    if let Some(limit) = limit {
        if limit == 0 {
            return Err(Error::config("maxConnections must be at least 1"));
        }
        backend.store = Arc::new(LimitStore::new(backend.store, limit as usize));
    }
    Ok(backend)
}

fn local(config: &LocalConfig) -> Result<Backend> {
    let mut path = config.mount_path.clone();
    if let Some(sub) = config.sub_path.as_deref().filter(|s| !s.is_empty()) {
        if std::path::Path::new(sub)
            .components()
            .any(|c| !matches!(c, std::path::Component::Normal(_)))
        {
            return Err(Error::config(format!(
                "local.subPath {sub:?} must be a relative path without `..`"
            )));
        }
        path.push(sub);
    }
    let key = path.display().to_string();
    std::fs::create_dir_all(&path).map_err(|source| Error::Permanent {
        key: key.clone(),
        source: object_store::Error::Generic {
            store: "LocalFileSystem",
            source: Box::new(source),
        },
    })?;
    let fs = LocalFileSystem::new_with_prefix(&path)
        .map_err(|source| Error::from_object_store(&key, source))?
        .with_fsync(true)
        .with_automatic_cleanup(true);
    Ok(Backend {
        store: Arc::new(fs),
        prefix: String::new(),
        description: format!("file://{key}"),
        lock: None,
    })
}

/// `scheme://host[:port]` of an endpoint, for messages: no user info, path or query.
fn safe_endpoint(endpoint: &str) -> String {
    match url::Url::parse(endpoint) {
        Ok(url) => {
            let host = url.host_str().unwrap_or("?");
            match url.port() {
                Some(port) => format!("{}://{host}:{port}", url.scheme()),
                None => format!("{}://{host}", url.scheme()),
            }
        }
        Err(_) => "<invalid endpoint>".to_owned(),
    }
}

fn client_options(endpoint: Option<&url::Url>, insecure_tls: bool) -> ClientOptions {
    let mut options = ClientOptions::new()
        .with_allow_invalid_certificates(insecure_tls)
        .with_connect_timeout(Duration::from_secs(10))
        .with_timeout(Duration::from_secs(300));
    if endpoint.is_some_and(|e| e.scheme() == "http") {
        options = options.with_allow_http(true);
    }
    options
}

fn parse_endpoint(what: &str, endpoint: &str) -> Result<url::Url> {
    let url = url::Url::parse(endpoint.trim_end_matches('/'))
        .map_err(|e| Error::config(format!("{what} {endpoint:?}: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(Error::config(format!(
            "{what} {endpoint:?}: expected http(s)://host[:port]"
        )));
    }
    Ok(url)
}

fn s3(config: &S3Config, credentials: &Credentials, options: &StorageOptions) -> Result<Backend> {
    if config.bucket.is_empty() {
        return Err(Error::config("s3.bucket is empty"));
    }
    let mut builder = AmazonS3Builder::from_env().with_bucket_name(&config.bucket);
    let endpoint = match config.endpoint.as_deref().filter(|e| !e.is_empty()) {
        Some(e) => Some(e.to_owned()),
        None => builder.get_config_value(&AmazonS3ConfigKey::Endpoint),
    };
    let endpoint = endpoint
        .map(|e| parse_endpoint("s3.endpoint", &e))
        .transpose()?;
    if let Some(region) = config.region.as_deref().filter(|r| !r.is_empty()) {
        builder = builder.with_region(region);
    }
    let region = builder
        .get_config_value(&AmazonS3ConfigKey::Region)
        .or_else(|| builder.get_config_value(&AmazonS3ConfigKey::DefaultRegion))
        .unwrap_or_else(|| "us-east-1".to_owned());
    builder = builder.with_region(&region);

    let virtual_hosted = config.virtual_hosted_style.unwrap_or(endpoint.is_none());
    // object_store expects a virtual-hosted endpoint to name the bucket already.
    let bucket_url = match (&endpoint, virtual_hosted) {
        (Some(e), false) => {
            let mut url = e.clone();
            url.set_path(&format!("{}/", config.bucket));
            url
        }
        (Some(e), true) => {
            let host = e.host_str().unwrap_or_default();
            let mut url = e.clone();
            url.set_host(Some(&format!("{}.{host}", config.bucket)))
                .map_err(|err| Error::config(format!("s3.bucket as a host name: {err}")))?;
            url.set_path("/");
            url
        }
        (None, true) => parse_endpoint(
            "s3 bucket URL",
            &format!("https://{}.s3.{region}.amazonaws.com", config.bucket),
        )?,
        (None, false) => parse_endpoint(
            "s3 bucket URL",
            &format!("https://s3.{region}.amazonaws.com/{}/", config.bucket),
        )?,
    };
    if let Some(e) = &endpoint {
        let store_endpoint = if virtual_hosted {
            bucket_url.as_str().trim_end_matches('/').to_owned()
        } else {
            e.as_str().trim_end_matches('/').to_owned()
        };
        builder = builder.with_endpoint(store_endpoint);
    }
    builder = builder.with_virtual_hosted_style_request(virtual_hosted);

    if let Some(id) = credentials.get("AWS_ACCESS_KEY_ID") {
        let secret = credentials.get("AWS_SECRET_ACCESS_KEY").ok_or_else(|| {
            Error::config("the credentials have AWS_ACCESS_KEY_ID but no AWS_SECRET_ACCESS_KEY")
        })?;
        builder = builder
            .with_access_key_id(id)
            .with_secret_access_key(secret);
        if let Some(token) = credentials.get("AWS_SESSION_TOKEN") {
            builder = builder.with_token(token);
        }
    }
    let mut client = client_options(endpoint.as_ref(), config.insecure_tls);
    if let Some(pem) = credentials.get("CA_CERT_DATA") {
        let cert = object_store::Certificate::from_pem(pem.as_bytes())
            .map_err(|e| Error::config(format!("CA_CERT_DATA: {e}")))?;
        client = client.with_root_certificate(cert);
    }
    builder = builder
        .with_client_options(client.clone())
        .with_retry(http_retry());

    if let Some(sse) = &config.server_side_encryption {
        let key = |k: &str| {
            k.parse::<AmazonS3ConfigKey>()
                .map_err(|e| Error::config(format!("{k}: {e}")))
        };
        builder = match (sse.algorithm, sse.kms_key_id.as_deref()) {
            (SseAlgorithm::Aes256, _) => {
                builder.with_config(key("aws_server_side_encryption")?, "AES256")
            }
            (SseAlgorithm::Kms, Some(id)) => builder.with_sse_kms_encryption(id),
            (SseAlgorithm::Kms, None) => {
                builder.with_config(key("aws_server_side_encryption")?, "aws:kms")
            }
        };
    }

    let signer = config.object_lock.map(|_| Signer::new(region.clone()));
    if let Some(signer) = &signer {
        // S3 wants a checksum on every upload with a retention.
        builder = builder
            .with_checksum_algorithm(Checksum::SHA256)
            .with_http_connector(LockConnector {
                signer: Arc::clone(signer),
            });
    }
    let store = builder
        .build()
        .map_err(|e| Error::config(format!("s3://{}: {e}", config.bucket)))?;
    let lock = match (signer, config.object_lock) {
        (Some(signer), Some(lock_config)) => {
            if lock_config.retain_days == 0 {
                return Err(Error::config("s3.objectLock.retainDays must be at least 1"));
            }
            signer.set_credentials(Arc::clone(store.credentials()));
            Some(LockClient::new(&client, signer, bucket_url, lock_config)?)
        }
        _ => None,
    };
    if options.multipart.part_size < crate::config::S3_MIN_PART_SIZE {
        return Err(Error::config(format!(
            "multipart part size {} is below the S3 minimum of 5 MiB",
            options.multipart.part_size
        )));
    }
    let mut description = format!("s3://{}", config.bucket);
    if let Some(e) = &endpoint {
        description = format!("{description} at {}", safe_endpoint(e.as_str()));
    }
    Ok(Backend {
        store: Arc::new(store),
        prefix: config.prefix.trim_matches('/').to_owned(),
        description,
        lock,
    })
}

pub(crate) fn gcs(
    config: &GcsConfig,
    credentials: &Credentials,
    connector: Option<Box<dyn FnOnce(GoogleCloudStorageBuilder) -> GoogleCloudStorageBuilder>>,
) -> Result<Backend> {
    if config.bucket.is_empty() {
        return Err(Error::config("gcs.bucket is empty"));
    }
    let mut builder = GoogleCloudStorageBuilder::from_env()
        .with_bucket_name(&config.bucket)
        .with_client_options(client_options(None, false))
        .with_retry(http_retry());
    if let Some(key) = credentials.get("GOOGLE_SERVICE_ACCOUNT_JSON_KEY") {
        builder = builder.with_service_account_key(key);
    }
    if let Some(f) = connector {
        builder = f(builder);
    }
    let store = builder
        .build()
        .map_err(|e| Error::config(format!("gs://{}: {e}", config.bucket)))?;
    Ok(Backend {
        store: Arc::new(store),
        prefix: config.prefix.trim_matches('/').to_owned(),
        description: format!("gs://{}", config.bucket),
        lock: None,
    })
}

/// Lets unit tests put a recording HTTP connector under a GCS store.
#[cfg(test)]
pub(crate) fn gcs_with_connector(
    config: &GcsConfig,
    credentials: &Credentials,
    connector: impl object_store::client::HttpConnector,
) -> Result<Backend> {
    gcs(
        config,
        credentials,
        Some(Box::new(move |b: GoogleCloudStorageBuilder| {
            b.with_http_connector(connector)
        })),
    )
}

fn azure(config: &AzureConfig, credentials: &Credentials) -> Result<Backend> {
    if config.container.is_empty() {
        return Err(Error::config("azure.container is empty"));
    }
    let mut builder = MicrosoftAzureBuilder::from_env()
        .with_container_name(&config.container)
        .with_retry(http_retry());
    let env_account = || {
        ["AZURE_STORAGE_ACCOUNT_NAME", "AZURE_STORAGE_ACCOUNT"]
            .iter()
            .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
    };
    let account = Some(config.storage_account.clone())
        .filter(|a| !a.is_empty())
        .or_else(env_account)
        .or_else(|| config.use_emulator.then(|| AZURITE_ACCOUNT.to_owned()))
        .ok_or_else(|| {
            Error::config("azure.storageAccount is empty and AZURE_STORAGE_ACCOUNT_NAME is not set")
        })?;
    builder = builder.with_account(&account);
    let endpoint = match config.endpoint.as_deref().filter(|e| !e.is_empty()) {
        Some(e) => Some(parse_endpoint("azure.endpoint", e)?),
        None if config.use_emulator => {
            Some(parse_endpoint("azure.endpoint", "http://127.0.0.1:10000")?)
        }
        None => None,
    };
    if let Some(e) = &endpoint {
        // Azurite serves accounts path-style: http://host:port/<account>/<container>.
        let account_url = if config.use_emulator {
            format!("{}/{account}", e.as_str().trim_end_matches('/'))
        } else {
            e.as_str().trim_end_matches('/').to_owned()
        };
        builder = builder.with_endpoint(account_url);
    }
    builder = builder.with_client_options(client_options(endpoint.as_ref(), false));
    if let Some(key) = credentials.get("AZURE_ACCOUNT_KEY") {
        builder = builder.with_access_key(key);
    } else if config.use_emulator && std::env::var("AZURE_STORAGE_ACCOUNT_KEY").is_err() {
        builder = builder.with_access_key(AZURITE_KEY);
    }
    let store = builder
        .build()
        .map_err(|e| Error::config(format!("azblob://{}: {e}", config.container)))?;
    let mut description = format!("azblob://{}", config.container);
    match &endpoint {
        Some(e) => description = format!("{description} at {}", safe_endpoint(e.as_str())),
        None => description = format!("{description} in account {account}"),
    }
    Ok(Backend {
        store: Arc::new(store),
        prefix: config.prefix.trim_matches('/').to_owned(),
        description,
        lock: None,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use async_trait::async_trait;
    use object_store::client::{
        HttpClient, HttpConnector, HttpError, HttpRequest, HttpResponse, HttpResponseBody,
        HttpService,
    };

    use super::*;

    #[test]
    fn endpoints_in_descriptions_lose_user_info_and_paths() {
        assert_eq!(
            safe_endpoint("https://user:pass@minio.example:9000/x?sig=1"),
            "https://minio.example:9000"
        );
        assert_eq!(safe_endpoint("not a url"), "<invalid endpoint>");
    }

    #[test]
    fn configuration_errors_name_the_field() {
        let err = |config: StorageConfig| {
            build(&config, &StorageOptions::default())
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert!(err(StorageConfig::s3(S3Config::default())).contains("s3.bucket is empty"));
        assert!(
            err(StorageConfig::s3(S3Config {
                bucket: "b".into(),
                endpoint: Some("ftp://x".into()),
                ..S3Config::default()
            }))
            .contains("expected http(s)://host[:port]")
        );
        let mut no_block = StorageConfig::memory();
        no_block.provider = Provider::Gcs;
        assert!(err(no_block).contains("needs a `gcs` block"));
        let escape = StorageConfig {
            local: Some(LocalConfig {
                mount_path: "/tmp".into(),
                sub_path: Some("../etc".into()),
                max_connections: None,
            }),
            ..StorageConfig::local("/tmp")
        };
        assert!(err(escape).contains("without `..`"));
    }

    /// One recorded request: method, URI, `Authorization` header.
    type Recorded = (String, String, Option<String>);

    /// Answers the OAuth token request and records every request.
    #[derive(Debug, Default, Clone)]
    struct Recorder(Arc<Mutex<Vec<Recorded>>>);

    #[async_trait]
    impl HttpService for Recorder {
        async fn call(&self, req: HttpRequest) -> std::result::Result<HttpResponse, HttpError> {
            let auth = req
                .headers()
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let uri = req.uri().to_string();
            if let Ok(mut log) = self.0.lock() {
                log.push((req.method().to_string(), uri.clone(), auth));
            }
            let (status, body) = if uri.contains("oauth2") || uri.contains("token") {
                (
                    200,
                    r#"{"access_token":"test-token","expires_in":3600,"token_type":"Bearer"}"#,
                )
            } else {
                (404, "")
            };
            let response = http::Response::builder()
                .status(status)
                .header("content-type", "application/json")
                .body(HttpResponseBody::from(bytes::Bytes::from_static(
                    body.as_bytes(),
                )))
                .map_err(|e| HttpError::new(object_store::client::HttpErrorKind::Unknown, e))?;
            Ok(response)
        }
    }

    impl HttpConnector for Recorder {
        fn connect(&self, _: &ClientOptions) -> object_store::Result<HttpClient> {
            Ok(HttpClient::new(self.clone()))
        }
    }

    /// A throwaway RSA key made for this test only (`openssl genrsa 2048`).
    const TEST_KEY: &str = include_str!("../tests/data/gcs-test-key.pem");

    #[tokio::test]
    async fn gcs_requests_are_authorized_with_the_service_account_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = serde_json::json!({
            "type": "service_account",
            "project_id": "test-project",
            "private_key_id": "test-key-id",
            "private_key": TEST_KEY,
            "client_email": "stowaway@test-project.iam.gserviceaccount.com",
            "token_uri": "https://oauth2.googleapis.com/token",
        });
        std::fs::write(
            dir.path().join("GOOGLE_SERVICE_ACCOUNT_JSON_KEY"),
            key.to_string(),
        )
        .expect("write secret");
        let credentials = Credentials::load(dir.path()).expect("credentials");
        let recorder = Recorder::default();
        let config = GcsConfig {
            bucket: "bucket".into(),
            prefix: "team-a".into(),
            ..GcsConfig::default()
        };
        let backend =
            gcs_with_connector(&config, &credentials, recorder.clone()).expect("gcs backend");
        assert_eq!(backend.description, "gs://bucket");
        let storage = crate::Storage::from_backend(backend, &StorageOptions::default())
            .with_retry(crate::RetryPolicy::none());
        assert_eq!(storage.describe(), "gs://bucket/team-a");
        let err = storage.get("config").await.expect_err("404");
        assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
        let log = recorder.0.lock().expect("log").clone();
        // The object name is one percent-encoded path segment (GCS JSON API style).
        let get = log
            .iter()
            .find(|(m, uri, _)| {
                m == "GET" && uri == "https://storage.googleapis.com/bucket/team%2Da%2Fconfig"
            })
            .unwrap_or_else(|| panic!("no GET of the object in {log:?}"));
        // Signed: a JWT bearer token whose issuer is the service account of the secret.
        let auth = get.2.as_deref().unwrap_or_default();
        let jwt = auth
            .strip_prefix("Bearer ")
            .unwrap_or_else(|| panic!("unsigned request: {log:?}"));
        let claims = jwt.split('.').nth(1).expect("JWT claims");
        use base64::Engine as _;
        let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(claims)
            .expect("base64url");
        let claims: serde_json::Value = serde_json::from_slice(&claims).expect("claims JSON");
        assert_eq!(
            claims["iss"],
            "stowaway@test-project.iam.gserviceaccount.com"
        );
        assert_eq!(jwt.split('.').count(), 3, "header.claims.signature");
    }
}
