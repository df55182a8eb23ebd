//! Network grants: the TCP endpoints an addon may connect to through `wasi:sockets`.
//!
//! A job's granted endpoints are resolved when the job starts; every socket address the
//! addon then uses is checked against the resolved set. Only outgoing TCP connections are
//! allowed (and the implicit bind that precedes them): no listening, no UDP. Name lookups are
//! allowed only when at least one endpoint is granted.

use std::collections::BTreeSet;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;

use wasmtime_wasi::sockets::SocketAddrUse;

/// A host and port an addon may connect to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Endpoint {
    /// Host name or IP address.
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl Endpoint {
    /// An endpoint.
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        Endpoint {
            host: host.into(),
            port,
        }
    }

    /// Parses `HOST:PORT` (IPv6 addresses in brackets: `[::1]:5432`).
    pub fn parse(text: &str) -> Result<Endpoint, String> {
        let (host, port) = text
            .rsplit_once(':')
            .ok_or_else(|| format!("{text:?} is not HOST:PORT"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port: u16 = port
            .parse()
            .map_err(|_| format!("{text:?}: {port:?} is not a port number"))?;
        if host.is_empty() || port == 0 {
            return Err(format!("{text:?} is not HOST:PORT"));
        }
        Ok(Endpoint::new(host, port))
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// The socket addresses of the granted endpoints.
#[derive(Debug, Clone, Default)]
pub(crate) struct AllowedAddrs(Arc<BTreeSet<SocketAddr>>);

impl AllowedAddrs {
    /// Resolves every endpoint; a name that does not resolve is an error naming it.
    pub fn resolve(endpoints: &[Endpoint]) -> Result<AllowedAddrs, String> {
        let mut addrs = BTreeSet::new();
        for endpoint in endpoints {
            let resolved = (endpoint.host.as_str(), endpoint.port)
                .to_socket_addrs()
                .map_err(|e| format!("cannot resolve the granted endpoint {endpoint}: {e}"))?;
            addrs.extend(resolved);
        }
        Ok(AllowedAddrs(Arc::new(addrs)))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether the addon may use `addr` for `usage`.
    pub fn allows(&self, addr: SocketAddr, usage: SocketAddrUse) -> bool {
        match usage {
            SocketAddrUse::TcpConnect => self.0.contains(&addr),
            // The implicit bind of a connect asks for the wildcard address and port 0.
            SocketAddrUse::TcpBind => {
                !self.0.is_empty() && addr.ip().is_unspecified() && addr.port() == 0
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_host_port() {
        assert_eq!(
            Endpoint::parse("db:5432").unwrap(),
            Endpoint::new("db", 5432)
        );
        assert_eq!(
            Endpoint::parse("[::1]:3306").unwrap(),
            Endpoint::new("::1", 3306)
        );
        assert_eq!(Endpoint::new("::1", 3306).to_string(), "[::1]:3306");
        assert!(Endpoint::parse("db").is_err());
        assert!(Endpoint::parse("db:http").is_err());
        assert!(Endpoint::parse(":5432").is_err());
    }

    #[test]
    fn only_granted_connects_and_their_implicit_bind() {
        let allowed = AllowedAddrs::resolve(&[Endpoint::new("127.0.0.1", 5432)]).unwrap();
        let granted: SocketAddr = "127.0.0.1:5432".parse().unwrap();
        let other: SocketAddr = "127.0.0.1:5433".parse().unwrap();
        assert!(allowed.allows(granted, SocketAddrUse::TcpConnect));
        assert!(!allowed.allows(other, SocketAddrUse::TcpConnect));
        assert!(allowed.allows("0.0.0.0:0".parse().unwrap(), SocketAddrUse::TcpBind));
        assert!(!allowed.allows("0.0.0.0:80".parse().unwrap(), SocketAddrUse::TcpBind));
        assert!(!allowed.allows(granted, SocketAddrUse::TcpListen));
        assert!(!allowed.allows(granted, SocketAddrUse::UdpSend));
        let none = AllowedAddrs::default();
        assert!(!none.allows("0.0.0.0:0".parse().unwrap(), SocketAddrUse::TcpBind));
    }

    #[test]
    fn names_resolve_to_all_their_addresses() {
        let allowed = AllowedAddrs::resolve(&[Endpoint::new("localhost", 5432)]).unwrap();
        assert!(allowed.allows("127.0.0.1:5432".parse().unwrap(), SocketAddrUse::TcpConnect));
        assert!(AllowedAddrs::resolve(&[Endpoint::new("no-such-host.invalid", 1)]).is_err());
    }
}
