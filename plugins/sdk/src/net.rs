//! Network checks for addons that talk to servers.
//!
//! An addon may open TCP connections only to the endpoints the job grants (and the addon
//! declares as [`Capability::Connect`](crate::Capability)); the host refuses every other
//! address. [`check_reachable`] tells the three cases apart before any real work starts: the
//! endpoint is not granted, nothing answers there, or it answers.

use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use crate::AddonError;

/// Opens (and closes) a TCP connection to `host:port`, trying each address the name resolves
/// to. [`AddonError::PermissionDenied`] when the host refuses the address (not granted),
/// [`AddonError::Unavailable`] when nothing answers within `timeout` or the name does not
/// resolve.
pub fn check_reachable(host: &str, port: u16, timeout: Duration) -> Result<(), AddonError> {
    let endpoint = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let addrs: Vec<_> = (host, port)
        .to_socket_addrs()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::PermissionDenied => AddonError::PermissionDenied(format!(
                "looking up {host} is not allowed: the job grants no network access"
            )),
            // WASI reports a lookup the host does not allow as a non-recoverable failure.
            _ => AddonError::Unavailable(format!(
                "cannot resolve {host}: {e} (name lookups need a network grant for the job)"
            )),
        })?
        .collect();
    let mut last = None;
    for addr in &addrs {
        // A connect with timeout can report success for a refused connection under WASI
        // (the error is only visible later), so the result is confirmed with the peer address.
        let attempt = TcpStream::connect_timeout(addr, timeout).and_then(|s| s.peer_addr());
        match attempt {
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                return Err(AddonError::PermissionDenied(format!(
                    "connecting to {endpoint} is not granted to this job"
                )));
            }
            // The deferred error of a refused connect surfaces as "not connected".
            Err(e) if e.kind() == std::io::ErrorKind::NotConnected => {
                last = Some(std::io::Error::new(
                    std::io::ErrorKind::ConnectionRefused,
                    "connection refused",
                ));
            }
            Err(e) => last = Some(e),
        }
    }
    Err(AddonError::Unavailable(match last {
        Some(e) => format!("cannot reach {endpoint}: {e}"),
        None => format!("cannot reach {endpoint}: the name resolves to no address"),
    }))
}
