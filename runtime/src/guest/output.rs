//! A guest's stdout and stderr: passed to the node's own, unprefixed, a whole line at a
//! time, and made printable: what could drive the operator's terminal or forge a line of
//! the node's log (escape sequences, carriage returns, bidirectional controls, bytes that
//! are not UTF-8) is shown escaped ([`dhost_protocol::printable::bytes`]); line feeds and tabs are
//! kept.
//!
//! Guests run one at a time, but their output would still interleave mid-line with other
//! guests' and with the node's log if every `write` went straight through (Rust's `eprintln!`
//! alone may issue several writes for one line). A [`GuestOutput`] keeps the unfinished line
//! of one guest and writes complete lines in one piece; the unfinished rest goes out when the
//! guest flushes (a prompt such as `Username: `), when the current call into the guest
//! returns ([`GuestOutput::flush_partial`]), or when it grows past [`MAX_PENDING`].

use bytes::Bytes;
use std::io::{self, Write};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError, StreamResult};

/// The longest unfinished line kept before it is written anyway.
pub(crate) const MAX_PENDING: usize = 64 * 1024;

/// Which of the node's streams a guest stream goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The node's stdout.
    Stdout,
    /// The node's stderr.
    Stderr,
}

/// One guest stream (its stdout or its stderr), shared by every handle WASI makes of it.
#[derive(Debug, Clone)]
pub struct GuestOutput {
    target: Target,
    pending: Arc<Mutex<Vec<u8>>>,
    /// Whether `pending` holds anything: checked after every call into the guest, which
    /// usually wrote nothing, without taking the lock.
    has_pending: Arc<AtomicBool>,
}

impl GuestOutput {
    /// A stream that goes to `target`.
    pub fn new(target: Target) -> Self {
        GuestOutput {
            target,
            pending: Arc::default(),
            has_pending: Arc::default(),
        }
    }

    fn pending(&self) -> MutexGuard<'_, Vec<u8>> {
        // A poisoned buffer is still a buffer of bytes.
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes `bytes`, writing every line they complete.
    fn write_bytes(&self, bytes: &[u8]) -> io::Result<()> {
        let mut pending = self.pending();
        pending.extend_from_slice(bytes);
        let complete = match pending.iter().rposition(|&b| b == b'\n') {
            Some(last) => last + 1,
            None if pending.len() > MAX_PENDING => pending.len(),
            None => {
                self.has_pending.store(true, Ordering::Release);
                return Ok(());
            }
        };
        let result = self.emit(&pending[..complete]);
        pending.drain(..complete);
        self.has_pending
            .store(!pending.is_empty(), Ordering::Release);
        result
    }

    /// Writes whatever is pending, complete line or not.
    pub fn flush_partial(&self) -> io::Result<()> {
        if !self.has_pending.load(Ordering::Acquire) {
            return Ok(());
        }
        let mut pending = self.pending();
        self.has_pending.store(false, Ordering::Release);
        if pending.is_empty() {
            return Ok(());
        }
        let result = self.emit(&pending);
        pending.clear();
        result
    }

    fn emit(&self, bytes: &[u8]) -> io::Result<()> {
        let shown = dhost_protocol::printable::bytes(bytes);
        let bytes = shown.as_bytes();
        match self.target {
            Target::Stdout => {
                let mut out = io::stdout().lock();
                out.write_all(bytes)?;
                out.flush()
            }
            Target::Stderr => io::stderr().lock().write_all(bytes),
        }
    }
}

fn stream_error(error: io::Error) -> StreamError {
    StreamError::LastOperationFailed(error.into())
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        match self.target {
            Target::Stdout => std::io::IsTerminal::is_terminal(&io::stdout()),
            Target::Stderr => std::io::IsTerminal::is_terminal(&io::stderr()),
        }
    }
}

impl StdoutStream for GuestOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl OutputStream for GuestOutput {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.write_bytes(&bytes).map_err(stream_error)
    }

    fn flush(&mut self) -> StreamResult<()> {
        self.flush_partial().map_err(stream_error)
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(MAX_PENDING)
    }
}

#[async_trait::async_trait]
impl Pollable for GuestOutput {
    async fn ready(&mut self) {}
}

impl AsyncWrite for GuestOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(self.write_bytes(buf).map(|()| buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.flush_partial())
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.flush_partial())
    }
}
