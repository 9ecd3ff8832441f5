//! What a node counts and how it says what it dropped: the counters shared by its threads
//! (printed in its closing summary), and a log of dropped input that hostile traffic
//! cannot flood.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

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
    /// Calls by function id.
    pub functions: Labelled<FunctionCounts>,
    /// Traps and restarts by guest.
    pub guests: Labelled<GuestCounts>,
    /// Calls run and dropped by the peer they came from.
    pub peer_calls: Labelled<PeerCalls>,
    /// What this node received of each peer's stream, as of its last announcement.
    pub peers: Mutex<Vec<dhost_protocol::wire::StreamCounts>>,
    /// The connections of the node's TCP port.
    pub tcp: Arc<PortCounters>,
    /// How long this node's guests waited for the replies to their calls.
    pub round_trips: RoundTrips,
}

/// The TCP port's connections: accepted, refused over the cap, open now.
pub use dhost_mailbox::port::PortCounters;

/// The calls of one function id.
#[derive(Debug, Default)]
pub struct FunctionCounts {
    /// Calls that came for it, from peers' streams, the TCP port or this node's guests.
    pub received: AtomicU64,
    /// Calls a local guest or plugin ran.
    pub run: AtomicU64,
    /// Calls dropped: no guest serves it, refused by a jail, arguments that do not fit.
    pub dropped: AtomicU64,
    /// Calls this node's guests sent to the group.
    pub sent: AtomicU64,
}

impl FunctionCounts {
    /// The label under which calls to functions no local guest serves count: labels for
    /// them would let any sender grow the table.
    pub const NOT_SERVED: &'static str = "(not served)";
}

/// The calls that came from one peer (by its name; a sender that never announced itself
/// by its id), from its stream or over the TCP port, and what became of them here.
#[derive(Debug, Default)]
pub struct PeerCalls {
    /// Calls a local guest or plugin ran.
    pub run: AtomicU64,
    /// Calls dropped: no guest serves them, refused by a jail, arguments that do not fit,
    /// failed or trapped in the guest, or the guest was not there to take them.
    pub dropped: AtomicU64,
}

impl PeerCalls {
    /// The label of calls from this node's own guests and plugins.
    pub const THIS_NODE: &'static str = "(this node)";

    /// Counts `run` calls run and `dropped` dropped.
    pub fn add(&self, run: u64, dropped: u64) {
        for (counter, n) in [(&self.run, run), (&self.dropped, dropped)] {
            if n > 0 {
                Stats::add(counter, n);
            }
        }
    }
}

/// The failures of one guest.
#[derive(Debug, Default)]
pub struct GuestCounts {
    /// Traps (and broken limits).
    pub traps: AtomicU64,
    /// Restarts after a trap.
    pub restarts: AtomicU64,
}

/// Counters by label (a function id, a guest's name), at most [`Labelled::MAX_LABELS`]
/// of them: beyond, everything counts under [`Labelled::OTHERS`], so that input from the
/// network cannot grow the table without bound.
#[derive(Debug)]
pub struct Labelled<T> {
    table: Mutex<BTreeMap<String, Arc<T>>>,
}

impl<T: Default> Default for Labelled<T> {
    fn default() -> Self {
        Labelled {
            table: Mutex::default(),
        }
    }
}

impl<T: Default> Labelled<T> {
    /// The most labels kept apart.
    pub const MAX_LABELS: usize = 1024;

    /// The label of what is counted together beyond [`Self::MAX_LABELS`].
    pub const OTHERS: &'static str = "(others)";

    /// The counters of `label` (made on first use). Take it once per run of calls, not
    /// per call: it locks the table.
    pub fn of(&self, label: &str) -> Arc<T> {
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(counts) = table.get(label) {
            return counts.clone();
        }
        let label = if table.len() < Self::MAX_LABELS {
            label
        } else {
            Self::OTHERS
        };
        table.entry(label.to_string()).or_default().clone()
    }

    /// Every label and its counters, sorted by label.
    pub fn snapshot(&self) -> Vec<(String, Arc<T>)> {
        let table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        table.iter().map(|(l, c)| (l.clone(), c.clone())).collect()
    }
}

/// The round trips of calls with replies, in a histogram whose buckets go from 50 µs to
/// about 26 s, doubling.
#[derive(Debug, Clone)]
pub struct RoundTrips(pub prometheus_client::metrics::histogram::Histogram);

impl Default for RoundTrips {
    fn default() -> Self {
        RoundTrips(prometheus_client::metrics::histogram::Histogram::new(
            prometheus_client::metrics::histogram::exponential_buckets(50e-6, 2.0, 20),
        ))
    }
}

impl RoundTrips {
    /// Counts one call that took `took`.
    pub fn observe(&self, took: std::time::Duration) {
        self.0.observe(took.as_secs_f64());
    }
}

/// What was refused from one source address.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Refusals {
    /// Datagrams without a right tag: no key, another key, a forgery.
    pub unauthenticated: u64,
    /// Datagrams whose tag was right, refused as replays (seen before, too old, stale, or
    /// sent to another socket).
    pub replayed: u64,
}

impl std::ops::AddAssign for Refusals {
    fn add_assign(&mut self, other: Refusals) {
        self.unauthenticated += other.unauthenticated;
        self.replayed += other.replayed;
    }
}

/// The datagrams a node refused at its gate, by source address (the first
/// [`Rejections::MAX_SOURCES`] addresses; the rest counted together).
#[derive(Debug, Default)]
pub struct Rejections {
    inner: Mutex<RejectionTable>,
}

#[derive(Debug, Default)]
struct RejectionTable {
    /// Per source.
    by_source: BTreeMap<SocketAddr, SourceRefusals>,
    /// From the sources beyond the table's bound, together.
    others: SourceRefusals,
}

/// What was refused from one source (or from the sources beyond the bound).
#[derive(Debug, Default)]
struct SourceRefusals {
    refused: Refusals,
    /// The differences of set-up from it said so far (a bit each).
    said: u8,
}

impl Rejections {
    /// The most source addresses told apart.
    pub const MAX_SOURCES: usize = 256;

    /// Counts a datagram from `from` refused as a replay or as unauthenticated; whether a
    /// difference of set-up from that source (`setup`: a bit that names it, or 0 when the
    /// refusal is not one) is to be said: the first time.
    pub fn count(&self, from: SocketAddr, replay: bool, setup: u8) -> bool {
        let mut guard = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let table = &mut *guard;
        let full = table.by_source.len() >= Self::MAX_SOURCES;
        let source = if full && !table.by_source.contains_key(&from) {
            &mut table.others
        } else {
            table.by_source.entry(from).or_default()
        };
        *if replay {
            &mut source.refused.replayed
        } else {
            &mut source.refused.unauthenticated
        } += 1;
        let say = source.said & setup != setup;
        source.said |= setup;
        say
    }

    /// What was refused, as an announcement says it: the sources refused most, and the
    /// rest together as `others`.
    pub fn announced(&self) -> Vec<dhost_protocol::wire::RefusedCounts> {
        let (mut all, _) = self.snapshot();
        all.sort_by_key(|(_, r)| std::cmp::Reverse(r.unauthenticated + r.replayed));
        let listed = dhost_protocol::wire::MAX_REFUSED_ANNOUNCED - 1;
        let mut shown: Vec<dhost_protocol::wire::RefusedCounts> = Vec::new();
        let mut others = Refusals::default();
        for (source, refused) in all {
            match source {
                Some(source) if shown.len() < listed => {
                    shown.push(dhost_protocol::wire::RefusedCounts {
                        source: source.to_string(),
                        unauthenticated: refused.unauthenticated,
                        replayed: refused.replayed,
                    })
                }
                _ => others += refused,
            }
        }
        if others != Refusals::default() {
            shown.push(dhost_protocol::wire::RefusedCounts {
                source: "others".to_string(),
                unauthenticated: others.unauthenticated,
                replayed: others.replayed,
            });
        }
        shown
    }

    /// What was refused, by source (`None`: the sources beyond the bound), and in all.
    pub fn snapshot(&self) -> (Vec<(Option<SocketAddr>, Refusals)>, Refusals) {
        let table = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let mut all: Vec<(Option<SocketAddr>, Refusals)> = table
            .by_source
            .iter()
            .map(|(addr, source)| (Some(*addr), source.refused))
            .collect();
        if table.others.refused != Refusals::default() {
            all.push((None, table.others.refused));
        }
        let mut total = Refusals::default();
        for (_, refused) in &all {
            total += *refused;
        }
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

/// The log of dropped input, which says at most a few lines a second (the mailbox crate's,
/// where the TCP port it belongs to is).
pub use dhost_mailbox::port::DropLog;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_counted_by_source_and_set_up_said_once() {
        let rejections = Rejections::default();
        let source = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
        assert!(rejections.count(source(1), false, 1), "said the first time");
        assert!(!rejections.count(source(1), false, 1), "not again");
        assert!(
            rejections.count(source(1), false, 4),
            "another difference: said"
        );
        assert!(
            !rejections.count(source(1), true, 0),
            "a replay is never said here"
        );
        for port in 2..=Rejections::MAX_SOURCES as u16 {
            rejections.count(source(port), false, 0);
        }
        // Beyond the bound: counted together, and said once for all of them.
        let beyond = Rejections::MAX_SOURCES as u16 + 1;
        assert!(rejections.count(source(beyond), false, 1));
        assert!(!rejections.count(source(beyond + 1), false, 1));
        rejections.count(source(beyond + 2), true, 0);
        let (all, total) = rejections.snapshot();
        assert_eq!(all.len(), Rejections::MAX_SOURCES + 1);
        let others = all.iter().find(|(addr, _)| addr.is_none()).expect("others");
        assert_eq!(
            others.1,
            Refusals {
                unauthenticated: 2,
                replayed: 1
            }
        );
        assert_eq!(
            total,
            Refusals {
                unauthenticated: 3 + 255 + 2,
                replayed: 2
            }
        );
        let announced = rejections.announced();
        assert_eq!(announced.len(), dhost_protocol::wire::MAX_REFUSED_ANNOUNCED);
        assert_eq!(announced[0].source, "127.0.0.1:1");
        assert_eq!(announced.last().map(|r| r.source.as_str()), Some("others"));
    }
}
