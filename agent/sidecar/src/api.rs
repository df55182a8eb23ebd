//! The on-demand API: a small HTTP/1.1 server on `127.0.0.1:PORT` and on a Unix socket in a
//! volume the pod's containers share, with the same routes on both (docs/sidecar.md).
//!
//! Requests from outside the pod are impossible by construction: the TCP listener binds a
//! loopback address only ([`LoopbackAddr`] refuses any other), which exists only in the pod's
//! own network namespace, and the socket is a file in a volume only the pod mounts.
//!
//! Each connection carries one request (read with the limits of
//! [`stowaway_operator::http`]); connections are served concurrently, at most
//! [`ApiConfig::max_connections`] at once, and a bad request ends only its own connection.

mod listen;
mod response;
mod routes;

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use stowaway_operator::http::{self, Limits, ReadError};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::Semaphore;

pub use self::listen::{BindError, LoopbackAddr};
use self::response::Response;
use crate::store::SessionStore;
use crate::token::Token;

/// Where the socket is unless configured otherwise (in the directory the sidecar injector
/// shares with the application containers, `stowaway_operator::injection::SOCKET_DIR`).
pub const DEFAULT_SOCKET: &str = "/var/run/stowaway/sidecar.sock";
/// The TCP port unless configured otherwise (the injector's default `STOWAWAY_API_PORT`).
pub const DEFAULT_PORT: u16 = 8089;
/// Largest request body.
pub const MAX_BODY: usize = 64 * 1024;

/// How the API is served.
#[derive(Debug)]
pub struct ApiConfig {
    /// The loopback address of the TCP listener (none: no TCP listener).
    pub tcp: Option<LoopbackAddr>,
    /// Path of the Unix socket (none: no socket), created with mode 0660.
    pub socket: Option<PathBuf>,
    /// The bearer token every request must present (none: no token needed).
    pub token: Option<Token>,
    /// Whether `POST /v1/restores` may create RestoreSessions.
    pub allow_restore: bool,
    /// Limits of one request.
    pub limits: Limits,
    /// Connections served at once; more wait to be accepted.
    pub max_connections: usize,
}

impl Default for ApiConfig {
    fn default() -> ApiConfig {
        ApiConfig {
            tcp: None,
            socket: Some(PathBuf::from(DEFAULT_SOCKET)),
            token: None,
            allow_restore: false,
            limits: Limits {
                max_body: MAX_BODY,
                ..Limits::default()
            },
            max_connections: 64,
        }
    }
}

/// What every connection's handler shares.
struct Shared {
    store: Arc<dyn SessionStore>,
    token: Option<Token>,
    allow_restore: bool,
    limits: Limits,
}

/// The bound listeners, ready to serve.
pub struct Server {
    tcp: Option<TcpListener>,
    unix: Option<(UnixListener, PathBuf)>,
    permits: Arc<Semaphore>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("tcp", &self.tcp_addr())
            .field("socket", &self.socket_path())
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Binds the listeners of `config`; at least one must be configured.
    pub async fn bind(
        config: ApiConfig,
        store: Arc<dyn SessionStore>,
    ) -> Result<Server, BindError> {
        if config.tcp.is_none() && config.socket.is_none() {
            return Err(BindError::NoListener);
        }
        let tcp = match config.tcp {
            Some(addr) => Some(listen::bind_tcp(addr).await?),
            None => None,
        };
        let unix = match config.socket {
            Some(path) => Some((listen::bind_socket(&path).await?, path)),
            None => None,
        };
        Ok(Server {
            tcp,
            unix,
            permits: Arc::new(Semaphore::new(config.max_connections.max(1))),
            shared: Arc::new(Shared {
                store,
                token: config.token,
                allow_restore: config.allow_restore,
                limits: config.limits,
            }),
        })
    }

    /// The TCP listener's address (with the port the system chose for port 0).
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The socket's path.
    pub fn socket_path(&self) -> Option<&Path> {
        self.unix.as_ref().map(|(_, p)| p.as_path())
    }

    /// Serves until the task is dropped.
    pub async fn serve(self) {
        self.serve_until(std::future::pending()).await;
    }

    /// Serves until `shutdown` completes, then removes the socket file. Requests already
    /// accepted are answered.
    pub async fn serve_until(self, shutdown: impl Future<Output = ()>) {
        tracing::info!(tcp = ?self.tcp_addr(), socket = ?self.socket_path(), "on-demand API serving");
        let Server {
            tcp,
            unix,
            permits,
            shared,
        } = self;
        tokio::pin!(shutdown);
        loop {
            let permit = tokio::select! {
                () = &mut shutdown => break,
                p = permits.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => break,
                },
            };
            let accepted = tokio::select! {
                () = &mut shutdown => break,
                r = accept_tcp(tcp.as_ref()) => r.map(|s| Box::new(s) as Box<dyn Stream>),
                r = accept_unix(unix.as_ref().map(|(l, _)| l)) => r.map(|s| Box::new(s) as Box<dyn Stream>),
            };
            match accepted {
                Ok(stream) => {
                    let shared = shared.clone();
                    tokio::spawn(async move {
                        if let Err(e) = connection(stream, &shared).await {
                            tracing::debug!(error = %e, "on-demand API: connection failed");
                        }
                        drop(permit);
                    });
                }
                Err(e) => {
                    // Out of file descriptors and the like: wait a little instead of spinning.
                    tracing::warn!(error = %e, "on-demand API: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        if let Some((_, path)) = &unix {
            listen::remove_socket(path);
        }
    }
}

/// A connection of either listener.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

async fn accept_tcp(listener: Option<&TcpListener>) -> std::io::Result<tokio::net::TcpStream> {
    match listener {
        Some(l) => l.accept().await.map(|(s, _)| s),
        None => std::future::pending().await,
    }
}

async fn accept_unix(listener: Option<&UnixListener>) -> std::io::Result<tokio::net::UnixStream> {
    match listener {
        Some(l) => l.accept().await.map(|(s, _)| s),
        None => std::future::pending().await,
    }
}

/// Reads one request, answers it, closes.
async fn connection(mut stream: Box<dyn Stream>, shared: &Shared) -> std::io::Result<()> {
    let request = match http::read_request_with(&mut stream, shared.limits).await {
        Ok(request) => request,
        Err(ReadError::Closed) => return Ok(()),
        Err(e) => {
            let unread = match e {
                ReadError::BodyTooLarge { length, .. } => length,
                _ => 0,
            };
            Response::from_read_error(&e).write(&mut stream).await?;
            // The peer may still be sending the body: read it (up to a bound) so that closing
            // does not reset the connection before the peer reads the answer.
            response::drain(&mut stream, unread).await;
            return Ok(());
        }
    };
    let response = routes::handle(&request, shared).await;
    tracing::debug!(
        method = %request.method,
        path = %request.path,
        status = response.status,
        "on-demand API request"
    );
    response.write(&mut stream).await
}

#[cfg(test)]
mod tests {
    use stowaway_operator::injection::{SOCKET_DIR, SidecarSettings};

    #[test]
    fn defaults_match_what_the_injector_sets_up() {
        assert_eq!(super::DEFAULT_SOCKET, format!("{SOCKET_DIR}/sidecar.sock"));
        assert_eq!(super::DEFAULT_PORT, SidecarSettings::default().api_port);
    }
}
