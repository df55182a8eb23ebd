//! The small HTTP/1.1 server side shared by the health endpoint, the admission webhook and the
//! sidecar's on-demand API: one request per connection, a head of at most 8 KiB, a body of at
//! most 4 MiB (by `content-length`), read within 10 seconds ([`Limits`] changes these).

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
    /// The header fields, names in lower case, in the order received.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Request {
    /// The value of the first header field named `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Limits of [`read_request_with`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest request head (request line and header fields).
    pub max_head: usize,
    /// Largest body.
    pub max_body: usize,
    /// Time to read the whole request.
    pub timeout: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_head: MAX_HEAD,
            max_body: MAX_BODY,
            timeout: Duration::from_secs(10),
        }
    }
}

/// Why no request was read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReadError {
    /// The request did not arrive in time.
    #[error("no complete request within {0:?}")]
    Timeout(Duration),
    /// The peer closed the connection (or it failed) before a complete request.
    #[error("the connection ended before a complete request")]
    Closed,
    /// The request line or a header field is not HTTP/1.1.
    #[error("malformed request: {0}")]
    Malformed(&'static str),
    /// The head is longer than [`Limits::max_head`].
    #[error("request head over {limit} bytes")]
    HeadTooLarge {
        /// The limit.
        limit: usize,
    },
    /// `content-length` is over [`Limits::max_body`] (the body was not read).
    #[error("request body of {length} bytes over the limit of {limit} bytes")]
    BodyTooLarge {
        /// The announced length.
        length: usize,
        /// The limit.
        limit: usize,
    },
    /// A body sent without `content-length` (chunked transfer coding is not supported).
    #[error("send the body with a content-length (chunked transfer coding is not supported)")]
    LengthRequired,
}

/// Reads one request; `None` when the peer sent nothing usable in time (the caller just
/// closes the connection).
pub async fn read_request<S: AsyncRead + Unpin>(stream: &mut S) -> Option<Request> {
    read_request_with(stream, Limits::default()).await.ok()
}

/// Reads one request within `limits`, saying why when there is none.
pub async fn read_request_with<S: AsyncRead + Unpin>(
    stream: &mut S,
    limits: Limits,
) -> Result<Request, ReadError> {
    tokio::time::timeout(limits.timeout, read(stream, limits))
        .await
        .map_err(|_| ReadError::Timeout(limits.timeout))?
}

async fn read<S: AsyncRead + Unpin>(stream: &mut S, limits: Limits) -> Result<Request, ReadError> {
    let mut data = Vec::with_capacity(1024);
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        if data.len() > limits.max_head {
            return Err(ReadError::HeadTooLarge {
                limit: limits.max_head,
            });
        }
        let n = stream.read(&mut buf).await.map_err(|_| ReadError::Closed)?;
        if n == 0 {
            return Err(ReadError::Closed);
        }
        data.extend_from_slice(&buf[..n]);
    };
    if head_end > limits.max_head {
        return Err(ReadError::HeadTooLarge {
            limit: limits.max_head,
        });
    }
    let head = String::from_utf8_lossy(&data[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines
        .next()
        .ok_or(ReadError::Malformed("no request line"))?
        .split_whitespace();
    let (Some(method), Some(target), Some(version)) = (first.next(), first.next(), first.next())
    else {
        return Err(ReadError::Malformed(
            "the request line is not METHOD PATH VERSION",
        ));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(ReadError::Malformed("not HTTP/1.x"));
    }
    let method = method.to_owned();
    let path = target.split('?').next().unwrap_or_default().to_owned();
    let mut headers = Vec::new();
    for line in lines {
        let (name, value) = line
            .split_once(':')
            .ok_or(ReadError::Malformed("a header field without a colon"))?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
    }
    let mut request = Request {
        method,
        path,
        headers,
        body: Vec::new(),
    };
    if request.header("transfer-encoding").is_some() {
        return Err(ReadError::LengthRequired);
    }
    let length = match request.header("content-length") {
        Some(v) => v
            .parse::<usize>()
            .map_err(|_| ReadError::Malformed("content-length is not a number"))?,
        None => 0,
    };
    if length > limits.max_body {
        return Err(ReadError::BodyTooLarge {
            length,
            limit: limits.max_body,
        });
    }
    let mut body = data.split_off(head_end + 4);
    while body.len() < length {
        let n = stream.read(&mut buf).await.map_err(|_| ReadError::Closed)?;
        if n == 0 {
            return Err(ReadError::Closed);
        }
        body.extend_from_slice(&buf[..n]);
    }
    body.truncate(length);
    request.body = body;
    Ok(request)
}

/// Writes a response and closes the write side.
pub async fn respond<S: AsyncWrite + Unpin>(
    stream: &mut S,
    status: &str,
    content_type: &str,
    body: &[u8],
) -> std::io::Result<()> {
    respond_with(stream, status, &[], content_type, body).await
}

/// Writes a response with extra header fields and closes the write side.
pub async fn respond_with<S: AsyncWrite + Unpin>(
    stream: &mut S,
    status: &str,
    headers: &[(&str, &str)],
    content_type: &str,
    body: &[u8],
) -> std::io::Result<()> {
    let mut head = format!("HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\n");
    for (name, value) in headers {
        head.push_str(name);
        head.push_str(": ");
        head.push_str(value);
        head.push_str("\r\n");
    }
    head.push_str(&format!(
        "content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    ));
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
                headers: vec![
                    ("host".into(), "x".into()),
                    ("content-length".into(), "5".into())
                ],
                body: b"hello".to_vec()
            }
        );
        assert_eq!(request.header("Content-Length"), Some("5"));
        let mut short = &b"POST / HTTP/1.1\r\ncontent-length: 10\r\n\r\nabc"[..];
        assert_eq!(read_request(&mut short).await, None, "a body cut short");
        let mut huge = &b"POST / HTTP/1.1\r\ncontent-length: 99999999\r\n\r\n"[..];
        assert_eq!(read_request(&mut huge).await, None, "over the body limit");
    }

    #[tokio::test]
    async fn says_why_a_request_was_refused() {
        let limits = Limits {
            max_head: 64,
            max_body: 4,
            timeout: Duration::from_secs(1),
        };
        let read = |raw: &'static [u8]| async move {
            let mut input = raw;
            read_request_with(&mut input, limits).await
        };
        assert_eq!(
            read(b"POST / HTTP/1.1\r\ncontent-length: 5\r\n\r\nhello").await,
            Err(ReadError::BodyTooLarge {
                length: 5,
                limit: 4
            })
        );
        assert_eq!(
            read(b"POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n").await,
            Err(ReadError::LengthRequired)
        );
        assert_eq!(
            read(b"POST / HTTP/1.1\r\ncontent-length: x\r\n\r\n").await,
            Err(ReadError::Malformed("content-length is not a number"))
        );
        assert_eq!(
            read(b"GET /\r\n\r\n").await,
            Err(ReadError::Malformed(
                "the request line is not METHOD PATH VERSION"
            ))
        );
        assert_eq!(
            read(b"GET / HTTP/1.1\r\nx-long: 0123456789012345678901234567890123456789012345678901234567890123456789\r\n\r\n").await,
            Err(ReadError::HeadTooLarge { limit: 64 })
        );
        assert_eq!(read(b"GET / HTTP/1.1\r\n").await, Err(ReadError::Closed));
        let (_client, mut server) = tokio::io::duplex(64);
        let slow = Limits {
            timeout: Duration::from_millis(50),
            ..limits
        };
        assert_eq!(
            read_request_with(&mut server, slow).await,
            Err(ReadError::Timeout(Duration::from_millis(50)))
        );
    }

    #[tokio::test]
    async fn writes_extra_header_fields() {
        let mut out = Vec::new();
        respond_with(
            &mut out,
            "401 Unauthorized",
            &[("www-authenticate", "Bearer")],
            "application/json",
            b"{}",
        )
        .await
        .expect("respond");
        assert_eq!(
            String::from_utf8(out).expect("utf-8"),
            "HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\nwww-authenticate: Bearer\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}"
        );
    }
}
