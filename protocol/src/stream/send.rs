//! The sender's side of a stream, as a state machine without I/O: numbering datagrams,
//! the retransmit buffer, the receivers' positions and windows, whether there is room to
//! send, which datagrams a status asks to be resent, and when to send a heartbeat.
//!
//! [`super::send_side::SendSide`] puts the batching and the queue in front of the window
//! around it, and the node drives that from the threads that send and hear statuses;
//! the tests drive it with made-up clocks.

use super::StreamConfig;
use crate::membership::PEER_EXPIRY;
use crate::wire::{self, Position, Status};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The window assumed for a receiver until its first status says what it can take.
pub const INITIAL_WINDOW: u64 = 256 * 1024;

/// The smallest window a receiver may ask for (smaller figures are raised to it).
pub const MIN_WINDOW: u64 = 16 * 1024;

/// How long a receiver that lags may stay silent (no status) and still be waited for: a
/// receiver paused longer (stopped, or held up by a guest of its own) no longer
/// holds the window back, until it reports again.
pub const STALL_AFTER: Duration = PEER_EXPIRY;

/// The most receivers a sender keeps track of.
const MAX_RECEIVERS: usize = 4096;

/// The most datagrams one status makes the sender resend.
pub const MAX_RESENDS_PER_STATUS: usize = 256;

/// The most datagrams one status makes the sender look at (resent or not).
const MAX_EXAMINED_PER_STATUS: usize = 4 * MAX_RESENDS_PER_STATUS;

/// A datagram is resent at most once within this time, however many receivers ask.
pub const RESEND_HOLDOFF: Duration = Duration::from_millis(5);

/// The first heartbeat after the last datagram sent, while a receiver lags; then the
/// pause doubles, up to [`HEARTBEAT_MAX`].
pub const HEARTBEAT_FIRST: Duration = Duration::from_millis(5);

/// The longest pause between heartbeats while a receiver lags.
pub const HEARTBEAT_MAX: Duration = Duration::from_secs(1);

/// A sent datagram, kept for resending.
#[derive(Debug)]
struct Kept {
    /// The datagram, numbered (shared, so that it is sent without holding a lock).
    bytes: Arc<Vec<u8>>,
    /// How many bytes of the stream came before it.
    offset: u64,
    /// When it was first sent.
    sent_at: Instant,
    /// When it was last sent (first, or resent).
    last_sent: Instant,
}

/// What a sender knows of one receiver.
#[derive(Debug, Clone, Copy)]
pub struct Receiver {
    /// Where it sends from (its announcements and statuses).
    pub addr: SocketAddr,
    /// It has run every datagram below this number.
    pub delivered: u64,
    /// How many bytes beyond `delivered` it can take.
    pub window: u64,
    /// When it was last heard from (a status, an announcement, a heartbeat).
    pub heard: Instant,
    /// Whether it has sent a status yet.
    pub reported: bool,
    /// Since when its silence counts: its last status, or when it started to lag.
    pub quiet_since: Instant,
    /// Whether it lagged without a word for [`STALL_AFTER`]: it is not waited for.
    pub stalled: bool,
}

/// What became of a receiver as time passed.
#[derive(Debug, Clone, Copy)]
pub enum Review {
    /// Not heard from for [`PEER_EXPIRY`]: forgotten.
    Gone(u64, Receiver),
    /// It lags and has said nothing for [`STALL_AFTER`]: no longer waited for.
    Stalled(u64, Receiver),
}

/// Why a status was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StatusRefused {
    /// It comes from a node that has not announced itself (or has expired).
    #[error("a status from a node that is not a peer")]
    NotAPeer,
    /// It is about another sender's stream.
    #[error("a status about another stream ({0:016x})")]
    OtherStream(u64),
    /// It comes from another address than the peer's announcements.
    #[error("a status from {0}, not from the address the peer announces itself from")]
    WrongAddress(SocketAddr),
    /// It claims to have run datagrams this node never sent.
    #[error("a status claiming datagram {claimed}, but this node has sent only up to {sent}")]
    Impossible {
        /// The position claimed.
        claimed: u64,
        /// The last datagram sent.
        sent: u64,
    },
}

/// What to do about a status.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Repair {
    /// The datagrams to resend, by number, in order.
    pub resend: Vec<u64>,
    /// Whether it asked for datagrams this node no longer holds (or never sent): answer
    /// with the position, so that the receiver counts them lost (or forgets them).
    pub position: bool,
    /// Whether it asked for more than one status may have resent (the rest is left for the
    /// receiver's next request).
    pub truncated: bool,
    /// Whether the window may have opened.
    pub opened: bool,
}

/// The sender's side of its stream.
#[derive(Debug)]
pub struct SendStream {
    id: u64,
    config: StreamConfig,
    /// The number of the next datagram.
    next: u64,
    /// The datagrams `next - kept.len()` to `next - 1`.
    kept: VecDeque<Kept>,
    kept_bytes: u64,
    /// How many bytes of the stream were sent (the offset of `next`).
    sent_bytes: u64,
    receivers: HashMap<u64, Receiver>,
    /// When the next heartbeat is due, while one may be needed, and the pause after it.
    heartbeat: Option<(Instant, Duration)>,
    /// Bytes that may be resent now (refilled over time: a resend budget).
    resend_budget: f64,
    budget_at: Instant,
}

impl SendStream {
    /// The stream of the node with id `id`, as `config` says.
    pub fn new(id: u64, config: StreamConfig, now: Instant) -> Self {
        SendStream {
            id,
            config,
            next: 1,
            kept: VecDeque::new(),
            kept_bytes: 0,
            sent_bytes: 0,
            receivers: HashMap::new(),
            heartbeat: None,
            resend_budget: 0.0,
            budget_at: now,
        }
    }

    /// Whether this stream repairs and paces (not `--unreliable`).
    pub fn is_reliable(&self) -> bool {
        self.config.window.is_some()
    }

    /// The number of the next datagram.
    pub fn next(&self) -> u64 {
        self.next
    }

    /// The oldest datagram kept.
    pub fn oldest(&self) -> u64 {
        self.next - self.kept.len() as u64
    }

    /// Where the stream stands.
    pub fn position(&self) -> Position {
        Position {
            next: self.next,
            oldest: self.oldest(),
        }
    }

    /// The receivers known, by id.
    #[cfg(test)]
    fn receivers(&self) -> &HashMap<u64, Receiver> {
        &self.receivers
    }

    /// The byte offset of datagram `seq`: where it starts in the stream (`next`: the end).
    fn offset(&self, seq: u64) -> u64 {
        let oldest = self.oldest();
        if seq >= self.next {
            self.sent_bytes
        } else if seq < oldest {
            // Before what is kept: it cannot be resent, so it holds nothing back.
            self.kept.front().map_or(self.sent_bytes, |k| k.offset)
        } else {
            self.kept[(seq - oldest) as usize].offset
        }
    }

    /// The position of the slowest receiver waited for, if any.
    fn slowest(&self) -> Option<u64> {
        self.waited_for().map(|r| r.delivered).min()
    }

    /// The receivers the window waits for: all but those stalled.
    fn waited_for(&self) -> impl Iterator<Item = &Receiver> {
        self.receivers.values().filter(|r| !r.stalled)
    }

    /// How many bytes were sent beyond the slowest live receiver's position, and how many
    /// may be.
    pub fn in_flight(&self) -> (u64, u64) {
        let Some(window) = self.config.window else {
            return (0, u64::MAX);
        };
        let Some(slowest) = self.slowest() else {
            return (0, window);
        };
        let allowed = self.waited_for().map(|r| r.window).fold(window, u64::min);
        (self.sent_bytes - self.offset(slowest), allowed)
    }

    /// Whether a datagram of `len` bytes may be sent now: it fits in the window, or nothing
    /// is in flight (so that a window smaller than a datagram never stops the stream).
    pub fn has_room(&self, len: usize) -> bool {
        let (in_flight, allowed) = self.in_flight();
        in_flight == 0 || in_flight.saturating_add(len as u64) <= allowed
    }

    /// Numbers `datagram` (packed with a sequenced header), keeps it for resending, and
    /// returns it to be sent (then call [`Self::evict`]).
    pub fn record(&mut self, mut datagram: Vec<u8>, now: Instant) -> Arc<Vec<u8>> {
        let seq = self.next;
        wire::stamp(&mut datagram, seq);
        // Receivers that had everything start to lag now: their silence counts from here.
        for receiver in self.receivers.values_mut() {
            if receiver.delivered >= seq {
                receiver.quiet_since = now;
            }
        }
        self.next += 1;
        let len = datagram.len() as u64;
        let bytes = Arc::new(datagram);
        self.kept.push_back(Kept {
            bytes: bytes.clone(),
            offset: self.sent_bytes,
            sent_at: now,
            last_sent: now,
        });
        self.kept_bytes += len;
        self.sent_bytes += len;
        self.heartbeat = Some((now + HEARTBEAT_FIRST, HEARTBEAT_FIRST));
        bytes
    }

    /// Forgets kept datagrams that every live receiver has and that are beyond the
    /// buffer's size or age (an unreliable stream keeps none).
    pub fn evict(&mut self, now: Instant) {
        let needed = if self.is_reliable() {
            self.slowest().unwrap_or(self.next)
        } else {
            self.next
        };
        let mut oldest = self.oldest();
        while let Some(front) = self.kept.front() {
            let too_much = self.kept_bytes > self.config.keep_bytes
                || now.saturating_duration_since(front.sent_at) > self.config.keep_age;
            if oldest >= needed || !too_much {
                break;
            }
            self.kept_bytes -= front.bytes.len() as u64;
            self.kept.pop_front();
            oldest += 1;
        }
    }

    /// A node announced itself from `addr`: it is a live receiver, which starts at the
    /// current position if it is new.
    pub fn heard(&mut self, id: u64, addr: SocketAddr, now: Instant) {
        if id == self.id {
            return;
        }
        if !self.receivers.contains_key(&id) && self.receivers.len() >= MAX_RECEIVERS {
            return;
        }
        let next = self.next;
        let receiver = self.receivers.entry(id).or_insert(Receiver {
            addr,
            delivered: next,
            window: INITIAL_WINDOW,
            heard: now,
            reported: false,
            quiet_since: now,
            stalled: false,
        });
        receiver.heard = now;
        receiver.addr = addr;
    }

    /// A receiver sent something: it is alive (nothing happens for other nodes).
    pub fn alive(&mut self, id: u64, now: Instant) {
        if let Some(receiver) = self.receivers.get_mut(&id) {
            receiver.heard = now;
        }
    }

    /// A node said goodbye: it no longer holds the window back.
    pub fn left(&mut self, id: u64) -> bool {
        self.receivers.remove(&id).is_some()
    }

    /// Forgets receivers not heard from for [`PEER_EXPIRY`], and stops waiting for those
    /// that lag and have said nothing for [`STALL_AFTER`]; returns what changed.
    pub fn review(&mut self, now: Instant) -> Vec<Review> {
        let mut changes = Vec::new();
        let next = self.next;
        self.receivers.retain(|&id, r| {
            if now.saturating_duration_since(r.heard) > PEER_EXPIRY {
                changes.push(Review::Gone(id, *r));
                return false;
            }
            let silent = now.saturating_duration_since(r.quiet_since) > STALL_AFTER;
            if !r.stalled && r.delivered < next && silent {
                r.stalled = true;
                changes.push(Review::Stalled(id, *r));
            }
            true
        });
        changes
    }

    /// Takes receiver `from`'s status, sent from `addr`: its position and window, and the
    /// datagrams it asks for (within the resend budget).
    pub fn on_status(
        &mut self,
        from: u64,
        addr: SocketAddr,
        status: &Status,
        now: Instant,
    ) -> Result<Repair, StatusRefused> {
        if status.stream != self.id {
            return Err(StatusRefused::OtherStream(status.stream));
        }
        let next = self.next;
        let Some(receiver) = self.receivers.get_mut(&from) else {
            return Err(StatusRefused::NotAPeer);
        };
        if receiver.addr != addr {
            return Err(StatusRefused::WrongAddress(addr));
        }
        if status.delivered > next {
            return Err(StatusRefused::Impossible {
                claimed: status.delivered,
                sent: next - 1,
            });
        }
        let mut answer = Repair {
            opened: status.delivered > receiver.delivered || status.window > receiver.window,
            ..Repair::default()
        };
        // Its first status says where it really is; later ones only move it on (a
        // status overtaken by a later one says nothing new).
        receiver.delivered = if receiver.reported {
            receiver.delivered.max(status.delivered)
        } else {
            status.delivered
        };
        let limit = self.config.window.unwrap_or(u64::MAX);
        receiver.window = status.window.clamp(MIN_WINDOW, limit.max(MIN_WINDOW));
        receiver.heard = now;
        receiver.reported = true;
        receiver.quiet_since = now;
        receiver.stalled = false;
        if receiver.delivered < next && self.heartbeat.is_none() {
            // (It lags, perhaps back from a pause: the tail may need finding.)
            self.heartbeat = Some((now + HEARTBEAT_FIRST, HEARTBEAT_FIRST));
        }
        self.refill_budget(now);
        let oldest = self.oldest();
        let mut examined = 0;
        'ranges: for &(first, last) in &status.missing {
            if last >= next || first < oldest {
                // Gone, or never sent: the position tells it.
                answer.position = true;
            }
            if first >= next {
                continue;
            }
            for seq in first.max(oldest)..=last.min(next - 1) {
                examined += 1;
                if answer.resend.len() >= MAX_RESENDS_PER_STATUS
                    || examined > MAX_EXAMINED_PER_STATUS
                {
                    answer.truncated = true;
                    break 'ranges;
                }
                let kept = &mut self.kept[(seq - oldest) as usize];
                if now.saturating_duration_since(kept.last_sent) < RESEND_HOLDOFF {
                    continue;
                }
                let len = kept.bytes.len() as f64;
                if self.resend_budget < len {
                    answer.truncated = true;
                    break 'ranges;
                }
                self.resend_budget -= len;
                kept.last_sent = now;
                answer.resend.push(seq);
            }
        }
        if answer.opened {
            self.evict(now);
        }
        Ok(answer)
    }

    /// Adds to the resend budget what the time since the last refill allows: ten windows
    /// a second, up to two windows at once.
    fn refill_budget(&mut self, now: Instant) {
        let window = self.config.window.unwrap_or(0).max(MIN_WINDOW) as f64;
        let elapsed = now.saturating_duration_since(self.budget_at).as_secs_f64();
        self.resend_budget = (self.resend_budget + elapsed * 10.0 * window).min(2.0 * window);
        self.budget_at = now;
    }

    /// Datagram `seq`, if it is kept.
    pub fn kept(&self, seq: u64) -> Option<Arc<Vec<u8>>> {
        let oldest = self.oldest();
        (seq >= oldest && seq < self.next).then(|| self.kept[(seq - oldest) as usize].bytes.clone())
    }

    /// Whether a live receiver has not run everything sent.
    pub fn lagging(&self) -> bool {
        self.slowest().is_some_and(|slowest| slowest < self.next)
    }

    /// The position to multicast as a heartbeat, if one is due: while a receiver lags,
    /// [`HEARTBEAT_FIRST`] after the last datagram, then at doubling pauses.
    pub fn heartbeat(&mut self, now: Instant) -> Option<Position> {
        if !self.is_reliable() || !self.lagging() {
            self.heartbeat = None;
            return None;
        }
        let (due, pause) = self.heartbeat?;
        if now < due {
            return None;
        }
        let pause = (pause * 2).min(HEARTBEAT_MAX);
        self.heartbeat = Some((now + pause, pause));
        Some(self.position())
    }

    /// When the next heartbeat is due, if one may be.
    pub fn next_heartbeat(&self) -> Option<Instant> {
        self.heartbeat
            .filter(|_| self.is_reliable() && self.lagging())
            .map(|(due, _)| due)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn datagram(len: usize) -> Vec<u8> {
        let mut d = Vec::new();
        wire::encode_header(1, Some(0), &mut d);
        d.resize(len, 0);
        d
    }

    fn status(delivered: u64, window: u64, missing: &[(u64, u64)]) -> Status {
        Status {
            stream: 1,
            delivered,
            window,
            missing: missing.to_vec(),
        }
    }

    /// Where receiver `id` sends from.
    fn peer(id: u64) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 4000 + id as u16))
    }

    fn config(window: u64) -> StreamConfig {
        StreamConfig {
            window: Some(window),
            keep_bytes: 10 * window,
            keep_age: Duration::from_secs(5),
        }
    }

    #[test]
    fn the_window_holds_the_sender_to_its_slowest_receiver() {
        let now = Instant::now();
        let mut s = SendStream::new(1, config(100_000), now);
        // Alone, a sender is never held back.
        assert!(s.has_room(60_000));
        s.heard(2, peer(2), now);
        s.heard(3, peer(3), now);
        assert_eq!(s.in_flight(), (0, INITIAL_WINDOW.min(100_000)));
        for _ in 0..3 {
            assert!(s.has_room(30_000));
            s.record(datagram(30_000), now);
        }
        assert!(!s.has_room(30_000), "{:?}", s.in_flight());
        // One receiver ran two datagrams, the other none: still full.
        s.on_status(2, peer(2), &status(3, 1 << 20, &[]), now)
            .unwrap();
        assert!(!s.has_room(30_000));
        s.on_status(3, peer(3), &status(2, 1 << 20, &[]), now)
            .unwrap();
        assert!(s.has_room(30_000));
        // A receiver that asks for a smaller window gets it.
        s.on_status(3, peer(3), &status(4, 20_000, &[]), now)
            .unwrap();
        assert_eq!(s.in_flight(), (30_000, 20_000));
        assert!(!s.has_room(30_000));
        // A window smaller than a datagram does not stop the stream.
        s.on_status(2, peer(2), &status(4, 1 << 20, &[]), now)
            .unwrap();
        assert_eq!(s.in_flight(), (0, 20_000));
        assert!(s.has_room(30_000));
    }

    #[test]
    fn a_receiver_that_leaves_or_expires_no_longer_holds_the_window() {
        let now = Instant::now();
        let mut s = SendStream::new(1, config(50_000), now);
        s.heard(2, peer(2), now);
        s.heard(3, peer(3), now);
        s.record(datagram(40_000), now);
        s.on_status(2, peer(2), &status(2, 1 << 20, &[]), now)
            .unwrap();
        assert!(!s.has_room(40_000));
        assert!(s.left(3));
        assert!(s.has_room(40_000));
        s.heard(3, peer(3), now);
        s.record(datagram(40_000), now);
        assert!(!s.has_room(40_000));
        // Receiver 2 keeps talking; receiver 3 falls silent.
        let later = now + PEER_EXPIRY + Duration::from_millis(1);
        s.on_status(2, peer(2), &status(3, 1 << 20, &[]), later)
            .unwrap();
        assert!(!s.has_room(40_000));
        let gone: Vec<u64> = s
            .review(later)
            .into_iter()
            .filter_map(|r| match r {
                Review::Gone(id, _) => Some(id),
                Review::Stalled(..) => None,
            })
            .collect();
        assert_eq!(gone, [3]);
        assert!(s.has_room(40_000));
    }

    #[test]
    fn a_receiver_that_lags_in_silence_is_not_waited_for_until_it_reports_again() {
        let now = Instant::now();
        let mut s = SendStream::new(1, config(50_000), now);
        s.heard(2, peer(2), now);
        // Idle for a while: silence while it has everything does not count.
        let later = now + STALL_AFTER * 2;
        s.heard(2, peer(2), later);
        s.record(datagram(40_000), later);
        assert!(s.review(later + Duration::from_secs(1)).is_empty());
        assert!(!s.has_room(40_000));
        // Announcing itself (while held up by a guest) is not reporting.
        let paused = later + STALL_AFTER + Duration::from_millis(1);
        s.heard(2, peer(2), paused);
        let changes = s.review(paused);
        assert!(
            matches!(changes[..], [Review::Stalled(2, _)]),
            "{changes:?}"
        );
        assert!(s.has_room(40_000));
        s.record(datagram(40_000), paused);
        assert!(s.review(paused).is_empty(), "said once");
        // It reports again: waited for again, from where it is.
        s.on_status(2, peer(2), &status(2, 1 << 20, &[]), paused)
            .unwrap();
        assert!(!s.has_room(40_000));
    }

    #[test]
    fn missing_datagrams_are_resent_once_per_holdoff_and_within_the_budget() {
        let now = Instant::now();
        let mut s = SendStream::new(1, config(100_000), now);
        s.heard(2, peer(2), now);
        s.heard(3, peer(3), now);
        for _ in 0..5 {
            s.record(datagram(1000), now);
        }
        let later = now + Duration::from_millis(50);
        let a = s
            .on_status(2, peer(2), &status(1, 1 << 20, &[(2, 3), (5, 9)]), later)
            .unwrap();
        assert_eq!(a.resend, [2, 3, 5]);
        assert!(a.position, "6 to 9 were never sent");
        // Another receiver asking at once: already resent.
        let b = s
            .on_status(3, peer(3), &status(1, 1 << 20, &[(2, 3)]), later)
            .unwrap();
        assert!(b.resend.is_empty());
        let c = s
            .on_status(
                3,
                peer(3),
                &status(1, 1 << 20, &[(2, 3)]),
                later + RESEND_HOLDOFF,
            )
            .unwrap();
        assert_eq!(c.resend, [2, 3]);
        assert_eq!(s.kept(2).map(|d| d.len()), Some(1000));
        assert_eq!(s.kept(6), None);
    }

    #[test]
    fn a_nack_storm_is_bounded() {
        let now = Instant::now();
        let mut s = SendStream::new(1, config(64 * 1024), now);
        s.heard(2, peer(2), now);
        for _ in 0..400 {
            s.record(datagram(1000), now);
        }
        let later = now + Duration::from_secs(1);
        let a = s
            .on_status(2, peer(2), &status(1, 1 << 20, &[(1, 400)]), later)
            .unwrap();
        assert!(a.truncated);
        // Two windows' worth at most, and never more than a status may ask.
        assert!(a.resend.len() <= 131, "{}", a.resend.len());
        let again = s
            .on_status(2, peer(2), &status(1, 1 << 20, &[(1, 400)]), later)
            .unwrap();
        assert!(again.resend.is_empty(), "{:?}", again.resend);
    }

    #[test]
    fn impossible_and_forged_statuses_are_refused() {
        let now = Instant::now();
        let mut s = SendStream::new(1, config(100_000), now);
        s.heard(2, peer(2), now);
        s.record(datagram(100), now);
        assert_eq!(
            s.on_status(9, peer(9), &status(1, 1 << 20, &[]), now),
            Err(StatusRefused::NotAPeer)
        );
        assert_eq!(
            s.on_status(2, peer(2), &status(5, 1 << 20, &[]), now),
            Err(StatusRefused::Impossible {
                claimed: 5,
                sent: 1
            })
        );
        let other = Status {
            stream: 8,
            ..status(1, 0, &[])
        };
        assert_eq!(
            s.on_status(2, peer(2), &other, now),
            Err(StatusRefused::OtherStream(8))
        );
        // Asking for datagrams never sent, or far beyond: nothing to resend, the position.
        let a = s
            .on_status(2, peer(2), &status(1, 1 << 20, &[(7, u64::MAX)]), now)
            .unwrap();
        assert!(a.resend.is_empty() && a.position);
        // From another address than the peer's.
        assert_eq!(
            s.on_status(2, peer(7), &status(1, 1 << 20, &[]), now),
            Err(StatusRefused::WrongAddress(peer(7)))
        );
        // A position that goes back is not taken.
        s.on_status(2, peer(2), &status(2, 1 << 20, &[]), now)
            .unwrap();
        s.on_status(2, peer(2), &status(1, 1 << 20, &[]), now)
            .unwrap();
        assert_eq!(s.receivers()[&2].delivered, 2);
    }

    #[test]
    fn what_every_receiver_has_is_kept_only_within_the_buffer_and_what_one_lacks_always() {
        let now = Instant::now();
        let config = StreamConfig {
            window: Some(10_000),
            keep_bytes: 10_000,
            keep_age: Duration::from_secs(1),
        };
        let mut s = SendStream::new(1, config, now);
        s.heard(2, peer(2), now);
        for _ in 0..30 {
            s.record(datagram(1000), now);
            s.evict(now);
        }
        // Receiver 2 lacks all 30: all are kept, whatever the buffer's size.
        assert_eq!(s.oldest(), 1);
        s.on_status(2, peer(2), &status(21, 1 << 20, &[]), now)
            .unwrap();
        // 20 are delivered everywhere; the buffer keeps 10 KB.
        assert_eq!(s.oldest(), 21);
        let later = now + Duration::from_secs(2);
        s.on_status(2, peer(2), &status(31, 1 << 20, &[]), later)
            .unwrap();
        assert_eq!(s.oldest(), 31);
        // A status for what is gone is answered with the position.
        let a = s
            .on_status(2, peer(2), &status(31, 1 << 20, &[]), later)
            .unwrap();
        assert!(!a.position);
        s.heard(3, peer(3), later);
        let b = s.on_status(3, peer(3), &status(31, 1 << 20, &[(31, 31)]), later);
        assert!(b.unwrap().resend.is_empty());
        assert_eq!(
            s.position(),
            Position {
                next: 31,
                oldest: 31
            }
        );
    }

    #[test]
    fn an_unreliable_stream_keeps_nothing_and_never_waits() {
        let now = Instant::now();
        let mut s = SendStream::new(1, StreamConfig::unreliable(), now);
        s.heard(2, peer(2), now);
        for _ in 0..10 {
            assert!(s.has_room(60_000));
            s.record(datagram(60_000), now);
            s.evict(now);
        }
        assert_eq!(
            s.position(),
            Position {
                next: 11,
                oldest: 11
            }
        );
        let a = s
            .on_status(2, peer(2), &status(1, 1 << 20, &[(1, 10)]), now)
            .unwrap();
        assert!(a.position && a.resend.is_empty());
        assert_eq!(s.heartbeat(now + Duration::from_secs(1)), None);
    }

    #[test]
    fn heartbeats_come_while_a_receiver_lags_at_growing_pauses() {
        let now = Instant::now();
        let mut s = SendStream::new(1, config(100_000), now);
        s.record(datagram(100), now);
        // Nobody to wait for: no heartbeat.
        assert_eq!(s.heartbeat(now + Duration::from_secs(1)), None);
        s.heard(2, peer(2), now);
        s.record(datagram(100), now);
        let mut beats = Vec::new();
        let mut t = now;
        while t < now + Duration::from_millis(200) {
            if s.heartbeat(t).is_some() {
                beats.push(t.duration_since(now).as_millis());
            }
            t += Duration::from_millis(1);
        }
        assert_eq!(beats, [5, 15, 35, 75, 155]);
        s.on_status(2, peer(2), &status(3, 1 << 20, &[]), t)
            .unwrap();
        assert_eq!(s.next_heartbeat(), None);
    }
}
