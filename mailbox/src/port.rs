//! A TCP port that serves each connection as a task of its own, at most a set number at
//! once, and at most a smaller number from any one address of another host (so that one
//! host cannot hold every slot): a connection over either cap is told so and closed at
//! once, and stopping closes the port, then lets every connection finish what it is doing. `dipc`'s port is one
//! ([`serve_mailboxes`]); so is the dhost node's, which tells binary connections from text
//! ones in the connection task it gives.
//!
//! What a port drops (connections over the cap, failed accepts, connections ended for
//! misbehaving) goes to a [`DropLog`], which says at most a few lines a second: hostile
//! traffic cannot flood the log.

use crate::Mailboxes;
use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The built-in default: the most connections open at once from one address of another
/// host.
pub const DEFAULT_MAX_PER_SOURCE: usize = 32;

/// The built-in default: how long a new connection may take to say what it is.
pub const DEFAULT_OPENING: Duration = Duration::from_secs(10);

/// The most turned-away connections kept open a moment, so that their client reads the
/// line saying why before the connection closes; past it, they are closed at once.
const MAX_TURNING_AWAY: usize = 64;

/// How long a turned-away connection is kept open for its client to read why.
const TURN_AWAY_GRACE: Duration = Duration::from_millis(500);

/// The limits of a TCP port.
#[derive(Debug, Clone, Copy)]
pub struct PortLimits {
    /// The most connections open at once.
    pub max_connections: usize,
    /// The most connections open at once from one address of another host (every client
    /// on this host comes from a loopback address: those are not capped apart).
    pub max_per_source: usize,
    /// How long a connection may stay without completing a command or a frame.
    pub idle: Duration,
    /// How long a new connection may take to say what it is: its first byte, and on a
    /// binary connection the magic and the whole keyed handshake (shorter than `idle`: a
    /// client that holds a slot without saying anything is cut off soon).
    pub opening: Duration,
}

impl PortLimits {
    /// `max_connections` and `idle`, with the built-in defaults for the rest.
    pub fn new(max_connections: usize, idle: Duration) -> Self {
        PortLimits {
            max_connections,
            max_per_source: DEFAULT_MAX_PER_SOURCE,
            idle,
            opening: DEFAULT_OPENING.min(idle),
        }
    }
}

/// What a port counts of its connections.
#[derive(Debug, Default)]
pub struct PortCounters {
    /// Connections accepted.
    pub accepted: AtomicU64,
    /// Connections refused: over the cap (in all, or from one address).
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

/// The connections open from each address of another host.
#[derive(Debug, Default)]
struct Sources(Mutex<HashMap<IpAddr, usize>>);

impl Sources {
    /// A slot for a connection from `ip`, unless `max` are open from it already.
    fn take(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<SourceSlot> {
        let ip = ip.to_canonical();
        if ip.is_loopback() {
            return Some(SourceSlot(None));
        }
        let mut open = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(ip).or_insert(0);
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(SourceSlot(Some((self.clone(), ip))))
    }
}

/// A connection's place in its address's count, given back when it ends.
struct SourceSlot(Option<(Arc<Sources>, IpAddr)>);

impl Drop for SourceSlot {
    fn drop(&mut self) {
        if let Some((sources, ip)) = self.0.take() {
            let mut open = sources.0.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(count) = open.get_mut(&ip) {
                *count -= 1;
                if *count == 0 {
                    open.remove(&ip);
                }
            }
        }
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
    let sources = Arc::new(Sources::default());
    let turning_away = Arc::new(Semaphore::new(MAX_TURNING_AWAY));
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
        let turn_away = |stream, why: String| turn_away(stream, why, &turning_away);
        let Some(source) = sources.take(addr.ip(), limits.max_per_source) else {
            counters.refused.fetch_add(1, Ordering::Relaxed);
            log_drop(
                &drops,
                format_args!(
                    "a connection from {addr}: {} connections from its address are open \
                     already",
                    limits.max_per_source
                ),
            );
            // Said to a person at a telnet prompt and to a binary client alike (whose error
            // shows the line).
            turn_away(
                stream,
                format!(
                    "ERR too many connections from {}: {} are open already\r\n",
                    addr.ip(),
                    limits.max_per_source
                ),
            );
            continue;
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
            turn_away(
                stream,
                format!(
                    "ERR too many connections: {} are open already\r\n",
                    limits.max_connections
                ),
            );
            continue;
        };
        let _ = stream.set_nodelay(true);
        let serving = connection(stream, addr);
        let (drops, counters) = (drops.clone(), counters.clone());
        counters.accepted.fetch_add(1, Ordering::Relaxed);
        counters.open.fetch_add(1, Ordering::Relaxed);
        connections.spawn(async move {
            let _permit = (permit, source);
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

/// Tells the client of `stream` `why` it is turned away, and closes: a moment later (its
/// own writes read and dropped meanwhile, so that the close is clean and the client reads
/// the line, even one that wrote first), or at once when many are being turned away.
fn turn_away(stream: TcpStream, why: String, turning_away: &Arc<Semaphore>) {
    let _ = stream.try_write(why.as_bytes());
    let Ok(permit) = turning_away.clone().try_acquire_owned() else {
        return;
    };
    tokio::spawn(async move {
        let _permit = permit;
        let mut stream = stream;
        let _ = stream.shutdown().await;
        let mut sink = [0u8; 512];
        let drain = async {
            while let Ok(n) = stream.read(&mut sink).await {
                if n == 0 {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(TURN_AWAY_GRACE, drain).await;
    });
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
