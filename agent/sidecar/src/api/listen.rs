//! The listeners: TCP on a loopback address only, and a Unix socket file.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use tokio::net::{TcpListener, UnixListener, UnixStream};

/// Mode of the socket file: the pod's containers share a group (`fsGroup`), others nothing.
const SOCKET_MODE: u32 = 0o660;

/// Why the API could not start listening.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BindError {
    /// The address is not a loopback address.
    #[error(
        "{0} is not a loopback address: the on-demand API listens on 127.0.0.1 (or ::1) only, so that nothing outside the pod can reach it"
    )]
    NotLoopback(String),
    /// Neither a TCP address nor a socket is configured.
    #[error("the on-demand API needs a TCP port or a socket path")]
    NoListener,
    /// The TCP address could not be bound.
    #[error("listening on {addr}: {source}")]
    Tcp {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The socket could not be created.
    #[error("creating the socket {}: {source}", path.display())]
    Socket {
        /// Its path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Something other than a socket is in the socket's place.
    #[error("{} exists and is not a socket: not replacing it", path.display())]
    NotASocket {
        /// Its path.
        path: PathBuf,
    },
    /// A live server already listens on the socket.
    #[error("{} is in use by another server (another sidecar in this pod?)", path.display())]
    SocketInUse {
        /// Its path.
        path: PathBuf,
    },
}

/// A TCP address on the loopback interface (`127.0.0.0/8` or `::1`); no other can be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoopbackAddr(SocketAddr);

impl LoopbackAddr {
    /// `127.0.0.1:port` (port 0: the system chooses).
    pub fn port(port: u16) -> LoopbackAddr {
        LoopbackAddr(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port))
    }

    /// `addr`, if it is a loopback address.
    pub fn new(addr: SocketAddr) -> Result<LoopbackAddr, BindError> {
        if addr.ip().is_loopback() {
            Ok(LoopbackAddr(addr))
        } else {
            Err(BindError::NotLoopback(addr.to_string()))
        }
    }

    /// The address.
    pub fn addr(&self) -> SocketAddr {
        self.0
    }
}

impl FromStr for LoopbackAddr {
    type Err = BindError;

    /// `PORT`, `127.0.0.1:PORT` or `[::1]:PORT`.
    fn from_str(s: &str) -> Result<LoopbackAddr, BindError> {
        if let Ok(port) = s.parse::<u16>() {
            return Ok(LoopbackAddr::port(port));
        }
        let addr = s
            .parse::<SocketAddr>()
            .map_err(|_| BindError::NotLoopback(s.to_owned()))?;
        LoopbackAddr::new(addr)
    }
}

impl std::fmt::Display for LoopbackAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

pub(super) async fn bind_tcp(addr: LoopbackAddr) -> Result<TcpListener, BindError> {
    TcpListener::bind(addr.0)
        .await
        .map_err(|source| BindError::Tcp {
            addr: addr.0,
            source,
        })
}

/// Creates the socket at `path` with mode 0660, replacing a stale socket file (one nothing
/// listens on), never another kind of file or a live socket.
pub(super) async fn bind_socket(path: &Path) -> Result<UnixListener, BindError> {
    let socket_error = |source| BindError::Socket {
        path: path.to_owned(),
        source,
    };
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if UnixStream::connect(path).await.is_ok() {
                return Err(BindError::SocketInUse {
                    path: path.to_owned(),
                });
            }
            tracing::info!(path = %path.display(), "removing a stale socket");
            std::fs::remove_file(path).map_err(socket_error)?;
        }
        Ok(_) => {
            return Err(BindError::NotASocket {
                path: path.to_owned(),
            });
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(socket_error(e)),
    }
    let listener = UnixListener::bind(path).map_err(socket_error)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(SOCKET_MODE))
        .map_err(socket_error)?;
    Ok(listener)
}

/// Removes the socket file when the server stops (if it is still a socket).
pub(super) fn remove_socket(path: &Path) {
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket())
        && let Err(e) = std::fs::remove_file(path)
    {
        tracing::warn!(path = %path.display(), error = %e, "could not remove the socket");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_addresses_are_accepted() {
        assert_eq!(
            "8089".parse::<LoopbackAddr>().expect("port").addr(),
            "127.0.0.1:8089".parse::<SocketAddr>().expect("addr")
        );
        assert!("127.0.0.1:1".parse::<LoopbackAddr>().is_ok());
        assert!("127.1.2.3:1".parse::<LoopbackAddr>().is_ok());
        assert!("[::1]:1".parse::<LoopbackAddr>().is_ok());
        for bad in ["0.0.0.0:80", "10.0.0.1:80", "[::]:80", "localhost:80", "x"] {
            let err = bad.parse::<LoopbackAddr>().expect_err(bad);
            assert!(matches!(err, BindError::NotLoopback(_)), "{bad}: {err}");
        }
        let err = LoopbackAddr::new("192.168.1.1:8089".parse().expect("addr")).expect_err("lan");
        assert!(
            err.to_string()
                .starts_with("192.168.1.1:8089 is not a loopback address"),
            "{err}"
        );
    }
}
