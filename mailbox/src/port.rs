//! A TCP port that serves each connection as a task of its own, at most a set number at
//! once: a connection over the cap is told so and closed at once, and stopping closes the
//! port, then lets every connection finish what it is doing. `dipc`'s port is one
//! ([`serve_mailboxes`]); so is the dhost node's, which tells binary connections from text
//! ones in the connection task it gives.
//!
//! What a port drops (connections over the cap, failed accepts, connections ended for
//! misbehaving) goes to a [`DropLog`], which says at most a few lines a second: hostile
//! traffic cannot flood the log.

use crate::Mailboxes;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The limits of a TCP port.
#[derive(Debug, Clone, Copy)]
pub struct PortLimits {
    /// The most connections open at once.
    pub max_connections: usize,
    /// How long a connection may stay without completing a command or a frame.
    pub idle: Duration,
}

/// What a port counts of its connections.
#[derive(Debug, Default)]
pub struct PortCounters {
    /// Connections accepted.
    pub accepted: AtomicU64,
    /// Connections refused: over the cap.
    pub refused: AtomicU64,
    /// Connections open now.
    pub open: AtomicU64,
}

/// A log of dropped input that says every drop, up to a number per second, and then how
/// many it left unsaid.
#[derive(Debug)]
pub struct DropLog {
    window: Instant,
    said: u32,
    unsaid: u64,
}

impl DropLog {
    /// Lines said per second at most.
    const PER_SECOND: u32 = 20;

    /// An empty log.
    pub fn new() -> Self {
        DropLog {
            window: Instant::now(),
            said: 0,
            unsaid: 0,
        }
    }

    /// Logs one drop, unless too many were said this second.
    pub fn dropped(&mut self, reason: std::fmt::Arguments<'_>) {
        if self.window.elapsed() >= Duration::from_secs(1) {
            if self.unsaid > 0 {
                tracing::warn!("... and {} more dropped in the last second", self.unsaid);
            }
            *self = DropLog::new();
        }
        if self.said < Self::PER_SECOND {
            self.said += 1;
            tracing::warn!("dropped {reason}");
        } else {
            self.unsaid += 1;
        }
    }
}

impl Default for DropLog {
    fn default() -> Self {
        Self::new()
    }
}

/// A [`DropLog`] shared by the tasks of a port.
pub type SharedDropLog = Arc<Mutex<DropLog>>;

/// Logs one drop in a shared log.
pub fn log_drop(drops: &Mutex<DropLog>, reason: std::fmt::Arguments<'_>) {
    drops
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .dropped(reason);
}

/// Counts a connection open while it lives (a task that panics still counts it closed).
struct OpenConnection(Arc<PortCounters>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Accepts connections on `listener` until `stop` is cancelled, and serves each with
/// `connection(stream, addr)` in a task of its own; an error it returns says why the
/// connection ended, for `drops`. Then closes the port, waits for every connection to
/// finish, and returns.
pub async fn serve<C, F>(
    listener: TcpListener,
    limits: PortLimits,
    stop: CancellationToken,
    drops: SharedDropLog,
    counters: Arc<PortCounters>,
    connection: C,
) where
    C: Fn(TcpStream, SocketAddr) -> F,
    F: Future<Output = Result<(), String>> + Send + 'static,
{
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let connections = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stop.cancelled() => break,
        };
        let (stream, addr) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of descriptors, most likely: wait a little rather than spin.
                log_drop(&drops, format_args!("a connection: cannot accept it: {e}"));
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            counters.refused.fetch_add(1, Ordering::Relaxed);
            log_drop(
                &drops,
                format_args!(
                    "a connection from {addr}: {} connections are open already (--max-connections)",
                    limits.max_connections
                ),
            );
            // Say so to a person at a telnet prompt; a binary client sees the close.
            let _ = stream.try_write(b"ERR too many connections\r\n");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let serving = connection(stream, addr);
        let (drops, counters) = (drops.clone(), counters.clone());
        counters.accepted.fetch_add(1, Ordering::Relaxed);
        counters.open.fetch_add(1, Ordering::Relaxed);
        connections.spawn(async move {
            let _permit = permit;
            let _open = OpenConnection(counters);
            if let Err(why) = serving.await {
                log_drop(&drops, format_args!("the connection from {addr}: {why}"));
            }
        });
    }
    drop(listener);
    connections.close();
    connections.wait().await;
}

/// Serves `boxes` over the text protocol on `listener` (`dipc`), until `stop` is cancelled.
pub async fn serve_mailboxes(
    listener: TcpListener,
    boxes: Arc<Mailboxes>,
    limits: PortLimits,
    stop: CancellationToken,
) {
    let drops = SharedDropLog::default();
    let connection_stop = stop.clone();
    let counters = Arc::default();
    serve(listener, limits, stop, drops, counters, move |stream, _| {
        let (boxes, stop) = (boxes.clone(), connection_stop.clone());
        async move { crate::protocol::serve(stream, &boxes, limits.idle, &stop).await }
    })
    .await;
}
