//! What a node counts and how it says what it dropped: the counters shared by its threads
//! (printed in its closing summary), and a log of dropped input that hostile traffic
//! cannot flood.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
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
    /// Datagrams refused at the gate, by source address.
    pub rejections: Rejections,
}

/// What was refused from one source address.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    /// Datagrams without a right tag: no key, another key, a forgery.
    pub unauthenticated: u64,
    /// Datagrams whose tag was right, refused as replays (seen before, too old, stale, or
    /// sent to another socket).
    pub replayed: u64,
}

/// The datagrams a node refused at its gate, by source address (the first
/// [`Rejections::MAX_SOURCES`] addresses; the rest counted together).
#[derive(Debug, Default)]
pub struct Rejections {
    inner: Mutex<RejectionTable>,
}

#[derive(Debug, Default)]
struct RejectionTable {
    /// Per source, and the differences of set-up from it said so far (a bit each).
    by_source: BTreeMap<SocketAddr, (Refused, u8)>,
    /// From sources beyond the table's bound.
    others: Refused,
    /// The differences of set-up said for those sources (once for all of them).
    others_said: u8,
}

impl Rejections {
    /// The most source addresses told apart.
    pub const MAX_SOURCES: usize = 256;

    /// Counts a datagram from `from` refused as a replay or as unauthenticated; whether a
    /// difference of set-up from that source (`setup`: a bit that names it, or 0 when the
    /// refusal is not one) is to be said: the first time.
    pub fn count(&self, from: SocketAddr, replay: bool, setup: u8) -> bool {
        let mut table = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let full = table.by_source.len() >= Self::MAX_SOURCES;
        let (refused, said) = match table.by_source.get_mut(&from) {
            Some(entry) => (&mut entry.0, &mut entry.1),
            None if full => {
                let others = &mut table.others;
                *if replay {
                    &mut others.replayed
                } else {
                    &mut others.unauthenticated
                } += 1;
                let say = table.others_said & setup != setup;
                table.others_said |= setup;
                return say;
            }
            None => {
                let entry = table.by_source.entry(from).or_default();
                (&mut entry.0, &mut entry.1)
            }
        };
        *if replay {
            &mut refused.replayed
        } else {
            &mut refused.unauthenticated
        } += 1;
        let say = *said & setup != setup;
        *said |= setup;
        say
    }

    /// What was refused, as an announcement says it: the sources refused most, and the
    /// rest together as `others`.
    pub fn announced(&self) -> Vec<crate::wire::RefusedCounts> {
        let (mut all, _) = self.snapshot();
        all.sort_by_key(|(_, r)| std::cmp::Reverse(r.unauthenticated + r.replayed));
        let listed = crate::wire::MAX_REFUSED_ANNOUNCED - 1;
        let mut shown: Vec<crate::wire::RefusedCounts> = Vec::new();
        let mut others = Refused::default();
        for (i, (source, refused)) in all.into_iter().enumerate() {
            match source {
                Some(source) if i < listed => shown.push(crate::wire::RefusedCounts {
                    source: source.to_string(),
                    unauthenticated: refused.unauthenticated,
                    replayed: refused.replayed,
                }),
                _ => {
                    others.unauthenticated += refused.unauthenticated;
                    others.replayed += refused.replayed;
                }
            }
        }
        if others != Refused::default() {
            shown.push(crate::wire::RefusedCounts {
                source: "others".to_string(),
                unauthenticated: others.unauthenticated,
                replayed: others.replayed,
            });
        }
        shown
    }

    /// What was refused, by source (`None`: the sources beyond the bound), and in all.
    pub fn snapshot(&self) -> (Vec<(Option<SocketAddr>, Refused)>, Refused) {
        let table = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let mut all: Vec<(Option<SocketAddr>, Refused)> = table
            .by_source
            .iter()
            .map(|(addr, (refused, _))| (Some(*addr), *refused))
            .collect();
        if table.others != Refused::default() {
            all.push((None, table.others));
        }
        let total = all.iter().fold(Refused::default(), |sum, (_, r)| Refused {
            unauthenticated: sum.unauthenticated + r.unauthenticated,
            replayed: sum.replayed + r.replayed,
        });
        (all, total)
    }
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
        let (_, refused) = self.rejections.snapshot();
        format!(
            "{} datagrams received ({} malformed, {} overrun, {} unauthenticated, {} \
             replayed), {} sent ({} resent, {} failed), {} calls run ({} repaired), {} lost, \
             {} dropped, {} failed, {} guest traps",
            get(&self.datagrams_received),
            get(&self.datagrams_malformed),
            get(&self.datagrams_overrun),
            refused.unauthenticated,
            refused.replayed,
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
