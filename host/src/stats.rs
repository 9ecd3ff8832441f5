//! What a node counts and how it says what it dropped: the counters shared by its threads
//! (printed in its closing summary), and a log of dropped input that hostile traffic
//! cannot flood.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Counters of what the node received, ran, sent and dropped, shared by its threads.
#[derive(Debug, Default)]
pub struct Stats {
    /// Datagrams received from the group (well-formed or not).
    pub datagrams_received: AtomicU64,
    /// Datagrams dropped because they could not be decoded.
    pub datagrams_malformed: AtomicU64,
    /// Datagrams dropped because the event loop was too far behind (repaired later, as
    /// any datagram lost on the way).
    pub datagrams_overrun: AtomicU64,
    /// Bytes of datagrams waiting for the event loop (a gauge, not a count): the network
    /// thread drops datagrams (as overrun) rather than let it grow past a bound.
    pub queued_bytes: AtomicU64,
    /// Datagrams sent to the group (resends not included).
    pub datagrams_sent: AtomicU64,
    /// Datagrams resent because a receiver asked.
    pub datagrams_resent: AtomicU64,
    /// Datagrams that could not be sent.
    pub send_errors: AtomicU64,
    /// Calls run by a local guest (multicast, or from the TCP port).
    pub calls_delivered: AtomicU64,
    /// Calls received in a repair (after a gap was seen).
    pub calls_repaired: AtomicU64,
    /// Calls lost for good: their senders no longer held them when asked.
    pub calls_lost: AtomicU64,
    /// Calls from the TCP port answered with a failure.
    pub calls_failed: AtomicU64,
    /// Calls dropped: unknown function id, arguments that do not fit, refused by a jail.
    pub calls_dropped: AtomicU64,
    /// Guest traps.
    pub traps: AtomicU64,
}

impl Stats {
    /// Adds one to `counter`.
    pub fn bump(counter: &AtomicU64) {
        Self::add(counter, 1);
    }

    /// Adds `n` to `counter`.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// A one-line summary for the log.
    pub fn summary(&self) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        format!(
            "{} datagrams received ({} malformed, {} overrun), {} sent ({} resent, {} \
             failed), {} calls run ({} repaired), {} lost, {} dropped, {} failed, {} guest \
             traps",
            get(&self.datagrams_received),
            get(&self.datagrams_malformed),
            get(&self.datagrams_overrun),
            get(&self.datagrams_sent),
            get(&self.datagrams_resent),
            get(&self.send_errors),
            get(&self.calls_delivered),
            get(&self.calls_repaired),
            get(&self.calls_lost),
            get(&self.calls_dropped),
            get(&self.calls_failed),
            get(&self.traps),
        )
    }
}

/// A log of dropped input that says every drop, up to a number per second, and then how
/// many it left unsaid: hostile traffic cannot flood the log.
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
