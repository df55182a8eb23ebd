//! The operator's HTTP endpoint: `/metrics`, `/healthz` (the process serves) and `/readyz`
//! (it holds the leader Lease, or stands by ready to take it over).
//!
//! A deliberately small HTTP/1.1 responder: one request per connection, GET only, a request
//! head of at most 8 KiB read within 5 seconds.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::metrics::Metrics;

/// What the endpoint reports.
#[derive(Clone, Debug, Default)]
pub struct Health {
    /// The counters.
    pub metrics: Arc<Metrics>,
    /// Set once the controllers run (or the replica stands by for the Lease).
    pub ready: Arc<AtomicBool>,
}

/// Serves `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, health: Health) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let health = health.clone();
        tokio::spawn(async move {
            if let Err(e) = answer(stream, &health).await {
                tracing::debug!(error = %e, "health endpoint: connection failed");
            }
        });
    }
}

async fn answer(mut stream: TcpStream, health: &Health) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    let read = async {
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 8192 {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        Ok::<(), std::io::Error>(())
    };
    if tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .is_err()
    {
        return Ok(());
    }
    let line = head.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = path.split('?').next().unwrap_or("");
    let (status, content_type, body) = match (method, path) {
        ("GET", "/metrics") => (
            "200 OK",
            "text/plain; version=0.0.4",
            health.metrics.render(),
        ),
        ("GET", "/healthz") => ("200 OK", "text/plain", "ok\n".to_owned()),
        ("GET", "/readyz") if health.ready.load(Ordering::Relaxed) => {
            ("200 OK", "text/plain", "ready\n".to_owned())
        }
        ("GET", "/readyz") => (
            "503 Service Unavailable",
            "text/plain",
            "not ready\n".to_owned(),
        ),
        ("GET", _) => ("404 Not Found", "text/plain", "not found\n".to_owned()),
        _ => (
            "405 Method Not Allowed",
            "text/plain",
            "only GET\n".to_owned(),
        ),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn get(addr: std::net::SocketAddr, request: &str) -> String {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut response = String::new();
        stream.read_to_string(&mut response).await.expect("read");
        response
    }

    #[tokio::test]
    async fn serves_metrics_health_and_readiness_over_loopback() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let health = Health::default();
        health
            .metrics
            .session_finished("backup", "Succeeded", None, Some(10));
        tokio::spawn(serve(listener, health.clone()));

        let r = get(addr, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
        let r = get(addr, "GET /readyz HTTP/1.1\r\n\r\n").await;
        assert!(r.starts_with("HTTP/1.1 503 "), "{r}");
        health.ready.store(true, Ordering::Relaxed);
        let r = get(addr, "GET /readyz HTTP/1.1\r\n\r\n").await;
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
        let r = get(addr, "GET /metrics HTTP/1.1\r\n\r\n").await;
        assert!(
            r.contains("stowaway_session_bytes_total{kind=\"backup\"} 10"),
            "{r}"
        );
        assert!(r.contains("content-type: text/plain; version=0.0.4"), "{r}");
        let r = get(addr, "POST /metrics HTTP/1.1\r\n\r\n").await;
        assert!(r.starts_with("HTTP/1.1 405 "), "{r}");
        let r = get(addr, "GET /nope HTTP/1.1\r\n\r\n").await;
        assert!(r.starts_with("HTTP/1.1 404 "), "{r}");
    }
}
