//! The client of the on-demand API, used by `stowaway trigger` from any container of the pod.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};
use zeroize::Zeroizing;

use crate::wire::{
    BackupInfo, BackupRequest, Created, ErrorBody, RestoreInfo, RestoreRequest, SnapshotInfo,
    SnapshotList,
};

/// Largest answer read.
const MAX_ANSWER: usize = 16 * 1024 * 1024;

/// Where the sidecar listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// Its Unix socket.
    Socket(PathBuf),
    /// Its loopback TCP address.
    Tcp(SocketAddr),
}

impl Endpoint {
    /// `http://127.0.0.1:PORT` (also `localhost` or `[::1]`; a trailing `/` is fine). Only
    /// loopback addresses: the sidecar listens on no other, and the token must not leave the
    /// pod.
    pub fn from_url(url: &str) -> Result<Endpoint, ClientError> {
        let bad = |why: &str| ClientError::BadUrl {
            url: url.to_owned(),
            why: why.to_owned(),
        };
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| bad("only http:// (the sidecar listens on the pod's loopback)"))?;
        let authority = rest.trim_end_matches('/');
        if authority.contains('/') {
            return Err(bad("no path: the URL is http://127.0.0.1:PORT"));
        }
        let addr = match authority.strip_prefix("localhost:") {
            Some(port) => port
                .parse::<u16>()
                .map(|p| SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), p))
                .map_err(|_| bad("the port is not a number"))?,
            None => authority
                .parse::<SocketAddr>()
                .map_err(|_| bad("expected http://127.0.0.1:PORT"))?,
        };
        if !addr.ip().is_loopback() {
            return Err(bad(
                "not a loopback address: the sidecar is reached from inside its pod only",
            ));
        }
        Ok(Endpoint::Tcp(addr))
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Socket(path) => write!(f, "{}", path.display()),
            Endpoint::Tcp(addr) => write!(f, "http://{addr}"),
        }
    }
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The socket file does not exist.
    #[error(
        "no sidecar socket at {}: is the sidecar running in this pod? (its socket volume must be mounted in this container; else --socket PATH or --url http://127.0.0.1:PORT)",
        path.display()
    )]
    NoSocket {
        /// The path tried.
        path: PathBuf,
    },
    /// Nothing accepts connections there.
    #[error("nothing listens on {endpoint}: is the sidecar running in this pod?")]
    Refused {
        /// Where.
        endpoint: Endpoint,
    },
    /// The socket's permissions keep this process out.
    #[error(
        "permission denied on {}: the socket is open to the sidecar's user and group only (mode 0660); run this container as that user or in that group",
        path.display()
    )]
    PermissionDenied {
        /// The socket.
        path: PathBuf,
    },
    /// The connection failed.
    #[error("talking to the sidecar at {endpoint}: {source}")]
    Io {
        /// Where.
        endpoint: Endpoint,
        /// The cause.
        source: std::io::Error,
    },
    /// No answer in time.
    #[error("the sidecar at {endpoint} did not answer within {timeout:?}")]
    Timeout {
        /// Where.
        endpoint: Endpoint,
        /// How long we waited.
        timeout: Duration,
    },
    /// The answer is not the API's.
    #[error("the sidecar's answer is not understood: {0}")]
    Protocol(String),
    /// The API answered with an error.
    #[error("{message} (HTTP {status}, {code})")]
    Api {
        /// HTTP status.
        status: u16,
        /// The error code, such as `backup_not_found`.
        code: String,
        /// Its message.
        message: String,
    },
    /// The `--url` is not a loopback `http://` URL.
    #[error("{url}: {why}")]
    BadUrl {
        /// The URL.
        url: String,
        /// What is wrong.
        why: String,
    },
}

/// A client of one sidecar.
pub struct Client {
    endpoint: Endpoint,
    token: Option<Zeroizing<String>>,
    timeout: Duration,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("endpoint", &self.endpoint)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Client {
    /// A client of the sidecar at `endpoint`, without a token, waiting 30 s per call.
    pub fn new(endpoint: Endpoint) -> Client {
        Client {
            endpoint,
            token: None,
            timeout: Duration::from_secs(30),
        }
    }

    /// Sends `Authorization: Bearer <token>` (white space around it is dropped).
    pub fn with_token(mut self, token: &str) -> Client {
        self.token = Some(Zeroizing::new(token.trim().to_owned()));
        self
    }

    /// Waits at most `timeout` for each answer.
    pub fn with_timeout(mut self, timeout: Duration) -> Client {
        self.timeout = timeout;
        self
    }

    /// `POST /v1/backups`.
    pub async fn create_backup(&self, request: &BackupRequest) -> Result<Created, ClientError> {
        self.call("POST", "/v1/backups", Some(to_json(request)?))
            .await
    }

    /// `GET /v1/backups/NAME`.
    pub async fn backup(&self, name: &str) -> Result<BackupInfo, ClientError> {
        if name.is_empty() || name.contains(['/', '?', '#', ' ', '%']) {
            return Err(ClientError::Api {
                status: 404,
                code: "backup_not_found".into(),
                message: format!("BackupSession {name:?} not found"),
            });
        }
        self.call("GET", &format!("/v1/backups/{name}"), None).await
    }

    /// `GET /v1/snapshots`.
    pub async fn snapshots(&self) -> Result<Vec<SnapshotInfo>, ClientError> {
        let list: SnapshotList = self.call("GET", "/v1/snapshots", None).await?;
        Ok(list.snapshots)
    }

    /// `POST /v1/restores`.
    pub async fn create_restore(&self, request: &RestoreRequest) -> Result<Created, ClientError> {
        self.call("POST", "/v1/restores", Some(to_json(request)?))
            .await
    }

    /// `GET /v1/restores/NAME`.
    pub async fn restore(&self, name: &str) -> Result<RestoreInfo, ClientError> {
        if name.is_empty() || name.contains(['/', '?', '#', ' ', '%']) {
            return Err(ClientError::Api {
                status: 404,
                code: "restore_not_found".into(),
                message: format!("RestoreSession {name:?} not found"),
            });
        }
        self.call("GET", &format!("/v1/restores/{name}"), None)
            .await
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<T, ClientError> {
        let mut head =
            format!("{method} {path} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n");
        if let Some(token) = &self.token {
            head.push_str(&format!("authorization: Bearer {}\r\n", token.as_str()));
        }
        let body = body.unwrap_or_default();
        if method == "POST" {
            head.push_str(&format!(
                "content-type: application/json\r\ncontent-length: {}\r\n",
                body.len()
            ));
        }
        head.push_str("\r\n");
        let mut request = Zeroizing::new(head.into_bytes());
        request.extend_from_slice(&body);
        let answer = tokio::time::timeout(self.timeout, self.exchange(&request))
            .await
            .map_err(|_| ClientError::Timeout {
                endpoint: self.endpoint.clone(),
                timeout: self.timeout,
            })??;
        parse_answer(&answer)
    }

    async fn exchange(&self, request: &[u8]) -> Result<Vec<u8>, ClientError> {
        let io = |source: std::io::Error| ClientError::Io {
            endpoint: self.endpoint.clone(),
            source,
        };
        match &self.endpoint {
            Endpoint::Socket(path) => {
                let stream = UnixStream::connect(path)
                    .await
                    .map_err(|e| match e.kind() {
                        std::io::ErrorKind::NotFound => {
                            ClientError::NoSocket { path: path.clone() }
                        }
                        std::io::ErrorKind::ConnectionRefused => ClientError::Refused {
                            endpoint: self.endpoint.clone(),
                        },
                        std::io::ErrorKind::PermissionDenied => {
                            ClientError::PermissionDenied { path: path.clone() }
                        }
                        _ => io(e),
                    })?;
                exchange(stream, request).await.map_err(io)
            }
            Endpoint::Tcp(addr) => {
                let stream = TcpStream::connect(addr).await.map_err(|e| match e.kind() {
                    std::io::ErrorKind::ConnectionRefused => ClientError::Refused {
                        endpoint: self.endpoint.clone(),
                    },
                    _ => io(e),
                })?;
                exchange(stream, request).await.map_err(io)
            }
        }
    }
}

fn to_json(value: &impl serde::Serialize) -> Result<Vec<u8>, ClientError> {
    serde_json::to_vec(value).map_err(|e| ClientError::Protocol(e.to_string()))
}

/// Sends the request, reads the answer to the end (the server closes after one).
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    request: &[u8],
) -> std::io::Result<Vec<u8>> {
    stream.write_all(request).await?;
    stream.flush().await?;
    let mut answer = Vec::new();
    let mut limited = (&mut stream).take(MAX_ANSWER as u64 + 1);
    limited.read_to_end(&mut answer).await?;
    if answer.len() > MAX_ANSWER {
        return Err(std::io::Error::other(format!(
            "the answer is larger than {MAX_ANSWER} bytes"
        )));
    }
    Ok(answer)
}

/// The body of a 2xx answer as `T`, or the API's error.
fn parse_answer<T: DeserializeOwned>(answer: &[u8]) -> Result<T, ClientError> {
    let protocol = |why: &str| ClientError::Protocol(why.to_owned());
    let head_end = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| protocol("no complete HTTP answer (did the sidecar close early?)"))?;
    let head = std::str::from_utf8(&answer[..head_end]).map_err(|_| protocol("not HTTP"))?;
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| protocol("no HTTP status line"))?;
    let mut body = &answer[head_end + 4..];
    let length = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok());
    if let Some(length) = length {
        body = body
            .get(..length)
            .ok_or_else(|| protocol("the answer is shorter than its content-length"))?;
    }
    if (200..300).contains(&status) {
        return serde_json::from_slice(body)
            .map_err(|e| ClientError::Protocol(format!("HTTP {status}: {e}")));
    }
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(e) => Err(ClientError::Api {
            status,
            code: e.error.code,
            message: e.error.message,
        }),
        Err(_) => Err(ClientError::Protocol(format!(
            "HTTP {status}: {}",
            String::from_utf8_lossy(body).trim()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_loopback_http_only() {
        let tcp = |s: &str| Endpoint::Tcp(s.parse().expect("addr"));
        assert_eq!(
            Endpoint::from_url("http://127.0.0.1:8089").expect("url"),
            tcp("127.0.0.1:8089")
        );
        assert_eq!(
            Endpoint::from_url("http://localhost:8089/").expect("url"),
            tcp("127.0.0.1:8089")
        );
        assert_eq!(
            Endpoint::from_url("http://[::1]:1").expect("url"),
            tcp("[::1]:1")
        );
        for bad in [
            "https://127.0.0.1:8089",
            "http://10.1.2.3:8089",
            "http://example.com:80",
            "http://127.0.0.1:8089/v1",
            "127.0.0.1:8089",
        ] {
            assert!(
                matches!(Endpoint::from_url(bad), Err(ClientError::BadUrl { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn answers_are_parsed() {
        let ok = b"HTTP/1.1 202 Accepted\r\ncontent-length: 14\r\n\r\n{\"name\":\"a\"}\n\n";
        let created: Created = parse_answer(ok).expect("created");
        assert_eq!(created.name, "a");
        let err = b"HTTP/1.1 404 Not Found\r\n\r\n{\"error\":{\"code\":\"backup_not_found\",\"message\":\"BackupSession x not found\"}}";
        let e = parse_answer::<Created>(err).expect_err("404");
        assert_eq!(
            e.to_string(),
            "BackupSession x not found (HTTP 404, backup_not_found)"
        );
        let e = parse_answer::<Created>(b"HTTP/1.1 500 Oops\r\n\r\nboom").expect_err("500");
        assert_eq!(
            e.to_string(),
            "the sidecar's answer is not understood: HTTP 500: boom"
        );
        assert!(matches!(
            parse_answer::<Created>(b"HTTP/1.1 200 OK\r\n"),
            Err(ClientError::Protocol(_))
        ));
    }
}
