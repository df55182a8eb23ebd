//! The addon's stdout and stderr: each line goes to the host log, tagged with the addon, and
//! the last lines are kept for error messages (a panic message, for example).

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

const TAIL_LINES: usize = 8;
const MAX_LINE: usize = 2048;

/// A pipe for one stream (stdout or stderr) of one addon run.
#[derive(Clone)]
pub(crate) struct LogPipe {
    addon: Arc<str>,
    stream: &'static str,
    state: Arc<Mutex<PipeState>>,
}

#[derive(Default)]
struct PipeState {
    partial: Vec<u8>,
    tail: VecDeque<String>,
}

impl LogPipe {
    pub fn new(addon: &str, stream: &'static str) -> Self {
        LogPipe {
            addon: addon.into(),
            stream,
            state: Arc::default(),
        }
    }

    /// The last lines written (including an unterminated one), oldest first.
    pub fn tail(&self) -> Vec<String> {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let mut lines: Vec<String> = state.tail.iter().cloned().collect();
        if !state.partial.is_empty() {
            lines.push(String::from_utf8_lossy(&state.partial).into_owned());
        }
        lines
    }

    fn push(&self, bytes: &[u8]) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        for &b in bytes {
            if b == b'\n' {
                let line = String::from_utf8_lossy(&state.partial).into_owned();
                state.partial.clear();
                tracing::info!(target: "addon", addon = %self.addon, stream = self.stream, "{line}");
                if state.tail.len() == TAIL_LINES {
                    state.tail.pop_front();
                }
                state.tail.push_back(line);
            } else if state.partial.len() < MAX_LINE {
                state.partial.push(b);
            }
        }
    }
}

impl IsTerminal for LogPipe {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogPipe {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl AsyncWrite for LogPipe {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.push(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_lines() {
        let pipe = LogPipe::new("t", "stderr");
        for i in 0..20 {
            pipe.push(format!("line {i}\n").as_bytes());
        }
        pipe.push(b"partial");
        let tail = pipe.tail();
        assert_eq!(tail.len(), TAIL_LINES + 1);
        assert_eq!(tail[0], "line 12");
        assert_eq!(tail[TAIL_LINES], "partial");
    }
}
