//! S3 Object Lock: retention headers on uploads, and the object lock requests
//! `object_store` does not offer (read retention, extend retention, delete a version).
//!
//! `object_store` 0.14 cannot send arbitrary headers on a put (`Attributes` has no lock
//! attributes; `PutOptions::extensions` reach the HTTP layer but no backend reads them).
//! So the S3 store is built with [`LockConnector`], a wrapper around `object_store`'s own
//! reqwest client: a put whose extensions carry a [`Retention`] gets the two
//! `x-amz-object-lock-*` headers and is signed again with `object_store`'s public
//! [`AwsAuthorizer`] and the store's own credential provider (S3 refuses unsigned `x-amz-*`
//! headers). The same signer and client send the few requests of this module.

use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use base64::Engine as _;
use bytes::Bytes;
use md5::Digest as _;
use object_store::ClientOptions;
use object_store::aws::{AwsAuthorizer, AwsCredentialProvider};
use object_store::client::{
    HttpClient, HttpConnector, HttpError, HttpErrorKind, HttpRequest, HttpRequestBody,
    HttpResponse, HttpService, ReqwestConnector,
};

use crate::config::{LockMode, ObjectLockConfig};
use crate::error::{Error, Result, is_transient_status};

/// Request extension: upload this object with this retention.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Retention {
    pub(crate) mode: LockMode,
    /// Seconds since the Unix epoch.
    pub(crate) until: i64,
    /// Base64 MD5 of the body of a single-request upload: S3 wants `Content-MD5` (or a
    /// checksum) on uploads with a retention, and the connector cannot read the body.
    pub(crate) content_md5: Option<String>,
}

impl Retention {
    /// The retention of an object uploaded now under `config`.
    pub(crate) fn from_now(config: &ObjectLockConfig) -> Retention {
        let now = jiff::Timestamp::now().as_second();
        Retention {
            mode: config.mode,
            until: now.saturating_add(i64::from(config.retain_days) * 86_400 + 1),
            content_md5: None,
        }
    }

    /// The same retention for an upload of `body` in one request.
    pub(crate) fn with_body(self, body: &[u8]) -> Retention {
        Retention {
            content_md5: Some(
                base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(body)),
            ),
            ..self
        }
    }

    /// The date as the `x-amz-object-lock-retain-until-date` header wants it.
    pub(crate) fn until_header(&self) -> String {
        format_until(self.until)
    }

    pub(crate) fn until_timestamp(&self) -> jiff::Timestamp {
        jiff::Timestamp::from_second(self.until).unwrap_or(jiff::Timestamp::MAX)
    }
}

fn format_until(seconds: i64) -> String {
    match jiff::Timestamp::from_second(seconds) {
        Ok(ts) => ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        Err(_) => "9999-12-31T23:59:59Z".to_owned(),
    }
}

/// The object lock state of one object, as S3 reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRetention {
    /// The retention mode, if the object has one.
    pub mode: Option<LockMode>,
    /// Until when the object version cannot be deleted.
    pub retain_until: Option<jiff::Timestamp>,
    /// The object's current version id (buckets with object lock are versioned).
    pub version_id: Option<String>,
}

/// Credentials and region for signing, filled in once the S3 store is built.
#[derive(Debug)]
pub(crate) struct Signer {
    credentials: OnceLock<AwsCredentialProvider>,
    region: String,
}

impl Signer {
    pub(crate) fn new(region: String) -> Arc<Signer> {
        Arc::new(Signer {
            credentials: OnceLock::new(),
            region,
        })
    }

    pub(crate) fn set_credentials(&self, provider: AwsCredentialProvider) {
        // Set once, right after the store is built; a second call changes nothing.
        let _ = self.credentials.set(provider);
    }

    /// Signs `request` (again), covering all its headers.
    async fn sign(
        &self,
        request: &mut HttpRequest,
    ) -> std::result::Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let provider = self
            .credentials
            .get()
            .ok_or("object lock signer used before the store was built")?;
        let credential = provider.get_credential().await?;
        let authorizer = AwsAuthorizer::new(&credential, "s3", &self.region);
        let digest = request
            .headers()
            .get("x-amz-content-sha256")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        match digest.as_deref() {
            Some("UNSIGNED-PAYLOAD") => authorizer
                .with_sign_payload(false)
                .try_authorize(request, None)?,
            Some(hex_digest) if hex_digest.len() == 64 => {
                let digest = hex::decode(hex_digest)?;
                authorizer.try_authorize(request, Some(&digest))?
            }
            _ => authorizer.try_authorize(request, None)?,
        }
        Ok(())
    }
}

/// The HTTP connector of an S3 store with object lock.
#[derive(Debug)]
pub(crate) struct LockConnector {
    pub(crate) signer: Arc<Signer>,
}

impl HttpConnector for LockConnector {
    fn connect(&self, options: &ClientOptions) -> object_store::Result<HttpClient> {
        let inner = ReqwestConnector::default().connect(options)?;
        Ok(HttpClient::new(LockService {
            inner,
            signer: Arc::clone(&self.signer),
        }))
    }
}

#[derive(Debug)]
struct LockService {
    inner: HttpClient,
    signer: Arc<Signer>,
}

/// Whether the request creates an object: `PutObject` or `CreateMultipartUpload`.
fn creates_object(request: &HttpRequest) -> bool {
    let query = request.uri().query().unwrap_or("");
    let has = |name: &str| {
        query
            .split('&')
            .any(|p| p == name || p.starts_with(&format!("{name}=")))
    };
    match *request.method() {
        http::Method::PUT => !has("partNumber") && !has("retention") && !has("tagging"),
        http::Method::POST => has("uploads"),
        _ => false,
    }
}

#[async_trait]
impl HttpService for LockService {
    async fn call(&self, mut request: HttpRequest) -> std::result::Result<HttpResponse, HttpError> {
        let retention = request.extensions().get::<Retention>().cloned();
        if let Some(retention) = retention.filter(|_| creates_object(&request)) {
            let headers = request.headers_mut();
            headers.insert(
                "x-amz-object-lock-mode",
                http::HeaderValue::from_static(retention.mode.as_str()),
            );
            let until = http::HeaderValue::from_str(&retention.until_header())
                .map_err(|e| HttpError::new(HttpErrorKind::Unknown, e))?;
            headers.insert("x-amz-object-lock-retain-until-date", until);
            // S3 (and moto) want Content-MD5 or a checksum on uploads with a retention.
            if let Some(md5) = &retention.content_md5 {
                let md5 = http::HeaderValue::from_str(md5)
                    .map_err(|e| HttpError::new(HttpErrorKind::Unknown, e))?;
                request.headers_mut().insert("content-md5", md5);
            }
            if request.headers().contains_key(http::header::AUTHORIZATION) {
                self.signer
                    .sign(&mut request)
                    .await
                    .map_err(|e| HttpError::new_boxed(HttpErrorKind::Unknown, e))?;
            }
        }
        self.inner.execute(request).await
    }
}

/// Direct S3 requests for object lock maintenance.
#[derive(Debug)]
pub(crate) struct LockClient {
    http: HttpClient,
    signer: Arc<Signer>,
    /// `https://host/bucket/` (path-style) or `https://bucket.host/` (virtual-hosted).
    bucket_url: url::Url,
    pub(crate) config: ObjectLockConfig,
    /// Whether requests are signed (false with `skip_signature`).
    sign: bool,
}

impl LockClient {
    pub(crate) fn new(
        options: &ClientOptions,
        signer: Arc<Signer>,
        bucket_url: url::Url,
        config: ObjectLockConfig,
    ) -> Result<LockClient> {
        let http = ReqwestConnector::default()
            .connect(options)
            .map_err(|e| Error::config(format!("S3 object lock client: {e}")))?;
        Ok(LockClient {
            http,
            signer,
            bucket_url,
            config,
            sign: true,
        })
    }

    fn object_url(&self, path: &str, query: &str) -> Result<url::Url> {
        let mut url = self.bucket_url.clone();
        {
            let mut segments = url
                .path_segments_mut()
                .map_err(|()| Error::config(format!("bad S3 bucket URL {}", self.bucket_url)))?;
            segments.pop_if_empty();
            segments.extend(path.split('/'));
        }
        url.set_query((!query.is_empty()).then_some(query));
        Ok(url)
    }

    async fn send(
        &self,
        key: &str,
        method: http::Method,
        url: url::Url,
        headers: &[(&'static str, String)],
        body: Bytes,
    ) -> Result<HttpResponse> {
        let failed = |message: String, transient: bool| {
            let source = object_store::Error::Generic {
                store: "S3",
                source: message.into(),
            };
            if transient {
                Error::Transient {
                    key: key.to_owned(),
                    source,
                }
            } else {
                Error::Permanent {
                    key: key.to_owned(),
                    source,
                }
            }
        };
        let mut builder = http::Request::builder()
            .method(method.clone())
            .uri(url.as_str());
        for (name, value) in headers {
            builder = builder.header(*name, value.as_str());
        }
        let mut request: HttpRequest = builder
            .body(HttpRequestBody::from(body))
            .map_err(|e| failed(format!("building {method} request: {e}"), false))?;
        if self.sign {
            self.signer
                .sign(&mut request)
                .await
                .map_err(|e| failed(format!("signing {method} request: {e}"), true))?;
        }
        let response = self
            .http
            .execute(request)
            .await
            .map_err(|e| failed(format!("{method} {key}: {e}"), true))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        if status == http::StatusCode::NOT_FOUND {
            return Err(Error::NotFound {
                key: key.to_owned(),
            });
        }
        let body = response.into_body().bytes().await.unwrap_or_default();
        let body = String::from_utf8_lossy(&body);
        Err(failed(
            format!("{method} {key}: HTTP {status}: {}", body.trim()),
            is_transient_status(status.as_u16()),
        ))
    }

    /// Reads an object's retention from a `HEAD` request.
    pub(crate) async fn retention(&self, key: &str, path: &str) -> Result<ObjectRetention> {
        let url = self.object_url(path, "")?;
        let response = self
            .send(key, http::Method::HEAD, url, &[], Bytes::new())
            .await?;
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let mode = match header("x-amz-object-lock-mode").as_deref() {
            Some("GOVERNANCE") => Some(LockMode::Governance),
            Some("COMPLIANCE") => Some(LockMode::Compliance),
            _ => None,
        };
        let retain_until = header("x-amz-object-lock-retain-until-date")
            .and_then(|d| d.parse::<jiff::Timestamp>().ok());
        Ok(ObjectRetention {
            mode,
            retain_until,
            version_id: header("x-amz-version-id"),
        })
    }

    /// `PutObjectRetention` on the current version of an object.
    pub(crate) async fn put_retention(
        &self,
        key: &str,
        path: &str,
        mode: LockMode,
        until: jiff::Timestamp,
    ) -> Result<()> {
        let url = self.object_url(path, "retention")?;
        let body = format!(
            "<Retention xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Mode>{}</Mode>\
             <RetainUntilDate>{}</RetainUntilDate></Retention>",
            mode.as_str(),
            format_until(until.as_second()),
        );
        let md5 = base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(&body));
        let headers = [
            ("content-md5", md5),
            ("content-type", "application/xml".to_owned()),
        ];
        self.send(key, http::Method::PUT, url, &headers, Bytes::from(body))
            .await?;
        Ok(())
    }

    /// Deletes one version of an object for good (refused by S3 while it is retained).
    pub(crate) async fn delete_version(&self, key: &str, path: &str, version: &str) -> Result<()> {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("versionId", version)
            .finish();
        let url = self.object_url(path, &query)?;
        self.send(key, http::Method::DELETE, url, &[], Bytes::new())
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_dates_are_whole_seconds_in_utc() {
        assert_eq!(format_until(0), "1970-01-01T00:00:00Z");
        let r = Retention::from_now(&ObjectLockConfig {
            mode: LockMode::Governance,
            retain_days: 1,
        });
        let header = r.until_header();
        let until: jiff::Timestamp = header.parse().expect("RFC 3339");
        let ahead = until.as_second() - jiff::Timestamp::now().as_second();
        assert!((86_400..=86_402).contains(&ahead), "{ahead}");
        assert!(header.ends_with('Z') && !header.contains('.'));
    }

    /// Records the requests it is given and answers 200.
    #[derive(Debug, Clone, Default)]
    struct Recorder(Arc<std::sync::Mutex<Vec<http::HeaderMap>>>);

    #[async_trait]
    impl HttpService for Recorder {
        async fn call(&self, req: HttpRequest) -> std::result::Result<HttpResponse, HttpError> {
            if let Ok(mut log) = self.0.lock() {
                log.push(req.headers().clone());
            }
            http::Response::builder()
                .status(200)
                .body(object_store::client::HttpResponseBody::from(Bytes::new()))
                .map_err(|e| HttpError::new(HttpErrorKind::Unknown, e))
        }
    }

    #[tokio::test]
    async fn uploads_with_a_retention_get_lock_headers_and_a_new_signature() {
        let signer = Signer::new("us-east-1".to_owned());
        signer.set_credentials(Arc::new(object_store::StaticCredentialProvider::new(
            object_store::aws::AwsCredential {
                key_id: "AKIDEXAMPLE".into(),
                secret_key: "secret".into(),
                token: None,
            },
        )));
        let recorder = Recorder::default();
        let service = LockService {
            inner: HttpClient::new(recorder.clone()),
            signer,
        };
        let body = Bytes::from_static(b"hello");
        let old_auth = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260101/us-east-1/s3/aws4_request, \
                        SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=00";
        let request = |with_retention: bool| {
            let mut req = http::Request::builder()
                .method(http::Method::PUT)
                .uri("http://127.0.0.1:9000/bucket/data/ab/x")
                .header(
                    "x-amz-content-sha256",
                    "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
                )
                .header("x-amz-date", "20260101T000000Z")
                .header("authorization", old_auth)
                .body(HttpRequestBody::from(body.clone()))
                .expect("request");
            if with_retention {
                req.extensions_mut().insert(
                    Retention {
                        mode: LockMode::Compliance,
                        until: 1_800_000_000,
                        content_md5: None,
                    }
                    .with_body(b"hello"),
                );
            }
            req
        };
        service.call(request(true)).await.expect("call");
        service.call(request(false)).await.expect("call");
        let log = recorder.0.lock().expect("log").clone();
        let locked = &log[0];
        let header = |h: &http::HeaderMap, name: &str| {
            h.get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        assert_eq!(header(locked, "x-amz-object-lock-mode"), "COMPLIANCE");
        assert_eq!(
            header(locked, "x-amz-object-lock-retain-until-date"),
            "2027-01-15T08:00:00Z"
        );
        assert_eq!(header(locked, "content-md5"), "XUFAKrxLKna5cZ2REBfFkg==");
        let auth = header(locked, "authorization");
        assert!(
            auth.contains(
                "SignedHeaders=content-md5;x-amz-content-sha256;x-amz-date;\
                 x-amz-object-lock-mode;x-amz-object-lock-retain-until-date"
            ) || auth.contains(
                "SignedHeaders=content-md5;host;x-amz-content-sha256;x-amz-date;\
                 x-amz-object-lock-mode;x-amz-object-lock-retain-until-date"
            ),
            "{auth}"
        );
        assert_ne!(auth, old_auth);
        // Without a retention the request passes untouched.
        let plain = &log[1];
        assert_eq!(header(plain, "authorization"), old_auth);
        assert!(plain.get("x-amz-object-lock-mode").is_none());
    }

    #[test]
    fn only_object_creating_requests_get_lock_headers() {
        let req = |method: http::Method, uri: &str| {
            http::Request::builder()
                .method(method)
                .uri(uri)
                .body(HttpRequestBody::empty())
                .expect("request")
        };
        let base = "http://127.0.0.1:9000/bucket/data/ab";
        assert!(creates_object(&req(http::Method::PUT, base)));
        assert!(creates_object(&req(
            http::Method::POST,
            &format!("{base}?uploads")
        )));
        assert!(!creates_object(&req(
            http::Method::PUT,
            &format!("{base}?partNumber=1&uploadId=x")
        )));
        assert!(!creates_object(&req(
            http::Method::POST,
            &format!("{base}?uploadId=x")
        )));
        assert!(!creates_object(&req(http::Method::GET, base)));
        assert!(!creates_object(&req(http::Method::DELETE, base)));
    }
}
