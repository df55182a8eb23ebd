//! The small HTTP/1.1 server side shared by the health endpoint and the admission webhook:
//! one request per connection, a head of at most 8 KiB, a body of at most 4 MiB (by
//! `content-length`), read within 10 seconds.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

const MAX_HEAD: usize = 8 * 1024;
const MAX_BODY: usize = 4 * 1024 * 1024;

/// A request.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Request {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The body.
    pub body: Vec<u8>,
}

/// Reads one request; `None` when the peer sent nothing usable in time (the caller just
/// closes the connection).
pub async fn read_request<S: AsyncRead + Unpin>(stream: &mut S) -> Option<Request> {
    tokio::time::timeout(Duration::from_secs(10), read(stream))
        .await
        .ok()
        .flatten()
}

async fn read<S: AsyncRead + Unpin>(stream: &mut S) -> Option<Request> {
    let mut data = Vec::with_capacity(1024);
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        if data.len() > MAX_HEAD {
            return None;
        }
        let n = stream.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        data.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&data[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split_whitespace();
    let method = first.next()?.to_owned();
    let path = first.next()?.split('?').next()?.to_owned();
    let length = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    if length > MAX_BODY {
        return None;
    }
    let mut body = data.split_off(head_end + 4);
    while body.len() < length {
        let n = stream.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&buf[..n]);
    }
    body.truncate(length);
    Some(Request { method, path, body })
}

/// Writes a response and closes the write side.
pub async fn respond<S: AsyncWrite + Unpin>(
    stream: &mut S,
    status: &str,
    content_type: &str,
    body: &[u8],
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_head_and_body_by_content_length() {
        let raw =
            b"POST /validate?timeout=10s HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello";
        let mut input = &raw[..];
        let request = read_request(&mut input).await.expect("request");
        assert_eq!(
            request,
            Request {
                method: "POST".into(),
                path: "/validate".into(),
                body: b"hello".to_vec()
            }
        );
        let mut short = &b"POST / HTTP/1.1\r\ncontent-length: 10\r\n\r\nabc"[..];
        assert_eq!(read_request(&mut short).await, None, "a body cut short");
        let mut huge = &b"POST / HTTP/1.1\r\ncontent-length: 99999999\r\n\r\n"[..];
        assert_eq!(read_request(&mut huge).await, None, "over the body limit");
    }
}
