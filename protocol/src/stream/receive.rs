//! The receiver's side of the streams, as a state machine without I/O: for each sender
//! (incarnation), which datagram runs next, the datagrams held after a gap, when to ask
//! for what is missing and when to report progress, and what was received, repaired and
//! lost.
//!
//! A stream starts where this node first hears the sender: its first datagram, or the
//! position its announcements and heartbeats carry (a node that joins late never replays
//! history). Datagrams run in their sender's order, each once; a datagram that arrives
//! after a gap is held until the gap is repaired or known to be lost. A gap is lost for
//! good when the sender says it no longer holds it, when the sender leaves or expires, or
//! when nothing moved for [`GIVE_UP`] while it was asked for; the calls in it are counted,
//! and the gap is logged once (see [`Loss`]). A stream that is forgotten leaves a
//! tombstone (its sender and position), so that a late resend or duplicate never starts
//! it again and runs its calls a second time.
//!
//! The payload `T` is whatever the node delivers (a decoded datagram); [`Meta`] says how
//! large it is and which calls it carries.

use crate::wire::{MAX_MISSING_RANGES, Position, Status};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// How far past the next datagram to run a datagram may be and still be held.
pub const MAX_AHEAD: u64 = 1 << 16;

/// A new gap is asked for at once; then again after this pause, doubling up to
/// [`NACK_MAX`] (and back to this pause whenever the stream moves on).
pub const NACK_FIRST: Duration = Duration::from_millis(10);

/// The longest pause between two requests for a gap.
pub const NACK_MAX: Duration = Duration::from_secs(1);

/// How long a stream with a gap may stay without moving on before the gap's datagrams
/// count as lost.
pub const GIVE_UP: Duration = Duration::from_secs(10);

/// The shortest pause between two progress reports to one sender (but see
/// [`ReceiveStreams::status_for`]: a quarter window run is reported at once).
pub const STATUS_DELAY: Duration = Duration::from_millis(1);

/// How long the stream of a sender that is not a peer (a short-lived client) is followed
/// after it last sent something.
pub const IDLE_STREAM: Duration = Duration::from_secs(60);

/// How long the position of a forgotten stream is remembered.
const TOMBSTONE_KEPT: Duration = Duration::from_secs(600);

/// The most senders whose streams are followed at once (and whose forgotten streams are
/// remembered).
const MAX_STREAMS: usize = 4096;

/// The most bytes one stream may hold after gaps, beyond the window it asked for.
const HELD_SLACK: usize = 65_536;

/// The most bytes held after gaps, over all streams.
const MAX_HELD_TOTAL: usize = 256 << 20;

/// What the node says of a datagram it hands over: its size and its calls.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Meta {
    /// Its size in bytes.
    pub bytes: usize,
    /// The number of its first call and how many calls it carries, if it carries any.
    pub calls: Option<(u64, u64)>,
}

/// A datagram to run now, in its stream's order.
#[derive(Debug, PartialEq)]
pub struct Delivered<T> {
    /// The datagram.
    pub item: T,
    /// Where its sender sends from.
    pub from: SocketAddr,
    /// Whether it came after a gap was seen (a resend, or one overtaken on the way).
    pub repaired: bool,
    /// What the node said of it.
    pub meta: Meta,
}

/// Datagrams of a stream lost for good, said once per gap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loss {
    /// The sender.
    pub sender: u64,
    /// The first and last datagram lost.
    pub datagrams: (u64, u64),
    /// The first and last call lost, when known (from the next datagram run).
    pub calls: Option<(u64, u64)>,
    /// Why they cannot be repaired.
    pub why: LossCause,
}

/// Why datagrams were lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LossCause {
    /// The sender no longer holds them (this node was too slow, or paused too long).
    Gone,
    /// The sender left or expired before they were repaired.
    SenderGone,
    /// They were asked for during [`GIVE_UP`] without an answer.
    NoAnswer,
}

impl std::fmt::Display for LossCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LossCause::Gone => "the sender no longer holds them (this node fell too far behind)",
            LossCause::SenderGone => "the sender left before they were repaired",
            LossCause::NoAnswer => "the sender did not resend them",
        })
    }
}

/// What one node received of one sender's stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Calls run (offered to the guests).
    pub received: u64,
    /// Of those, calls that came after a gap was seen.
    pub repaired: u64,
    /// Calls lost for good.
    pub lost: u64,
    /// Datagrams lost for good.
    pub lost_datagrams: u64,
    /// Datagrams that came again (resends another node asked for, duplicates).
    pub duplicates: u64,
    /// Datagrams dropped because they were too far ahead or there was no room to hold
    /// them (they are asked for again).
    pub refused: u64,
}

/// A datagram held after a gap.
#[derive(Debug)]
struct Held<T> {
    item: T,
    meta: Meta,
    repaired: bool,
}

/// Asking for what a stream misses.
#[derive(Debug, Clone, Copy)]
struct Asking {
    /// Since when the stream has not moved on.
    since: Instant,
    /// When to ask next.
    at: Instant,
    /// The pause after that.
    pause: Duration,
}

/// One sender's stream, as this node receives it.
#[derive(Debug)]
struct Incoming<T> {
    /// Where the sender sends from (its statuses go there).
    addr: SocketAddr,
    /// The next datagram to run.
    next: u64,
    /// The highest datagram known to exist.
    highest: u64,
    held: BTreeMap<u64, Held<T>>,
    held_bytes: usize,
    /// While datagrams are missing: asking for them.
    asking: Option<Asking>,
    /// The sender asked where this node stands (a position): the next status says what
    /// is missing too.
    asked: bool,
    /// The position last reported (0: none yet), when, and the bytes run since.
    reported: u64,
    reported_at: Option<Instant>,
    unreported_bytes: u64,
    /// The next call expected, once a datagram with calls has run.
    next_call: Option<u64>,
    /// Datagrams declared lost whose calls are not counted yet.
    pending_loss: Option<Loss>,
    /// Losses whose calls are counted (or cannot be), to be said.
    settled: Vec<Loss>,
    counts: Counts,
    heard: Instant,
}

impl<T> Incoming<T> {
    fn new(addr: SocketAddr, next: u64, now: Instant) -> Self {
        Incoming {
            addr,
            next,
            highest: next - 1,
            held: BTreeMap::new(),
            held_bytes: 0,
            asking: None,
            asked: false,
            // (Not reported yet: the sender hears where this node starts at once.)
            reported: 0,
            reported_at: None,
            unreported_bytes: 0,
            next_call: None,
            pending_loss: None,
            settled: Vec::new(),
            counts: Counts::default(),
            heard: now,
        }
    }

    /// Whether datagrams between `next` and `highest` are missing.
    fn has_gap(&self) -> bool {
        self.highest >= self.next
    }

    /// Datagrams are missing, some of them newly found (`new`): ask at once for new ones.
    fn missing_found(&mut self, new: bool, now: Instant) {
        match &mut self.asking {
            None => {
                self.asking = Some(Asking {
                    since: now,
                    at: now,
                    pause: NACK_FIRST,
                })
            }
            Some(asking) if new => {
                asking.at = now;
                asking.pause = NACK_FIRST;
            }
            Some(_) => {}
        }
    }

    /// The missing ranges, at most [`MAX_MISSING_RANGES`].
    fn missing(&self) -> Vec<(u64, u64)> {
        let mut ranges = Vec::new();
        let mut from = self.next;
        for &seq in self.held.keys() {
            if ranges.len() == MAX_MISSING_RANGES {
                return ranges;
            }
            if seq > from {
                ranges.push((from, seq - 1));
            }
            from = seq + 1;
        }
        if from <= self.highest && ranges.len() < MAX_MISSING_RANGES {
            ranges.push((from, self.highest));
        }
        ranges
    }

    /// Hands over `item` (datagram `next`) and every held datagram after it, in order.
    fn run(&mut self, item: T, meta: Meta, repaired: bool, out: &mut Vec<Delivered<T>>) {
        self.deliver(item, meta, repaired, out);
        self.run_held(out);
    }

    fn run_held(&mut self, out: &mut Vec<Delivered<T>>) {
        while let Some(held) = self.held.remove(&self.next) {
            self.held_bytes -= held.meta.bytes;
            self.deliver(held.item, held.meta, held.repaired, out);
        }
        if !self.has_gap() {
            self.asking = None;
        }
    }

    /// Hands over datagram `next`, counting its calls (and the calls of a loss before it).
    fn deliver(&mut self, item: T, meta: Meta, repaired: bool, out: &mut Vec<Delivered<T>>) {
        self.next += 1;
        self.highest = self.highest.max(self.next - 1);
        self.unreported_bytes += meta.bytes as u64;
        if let Some(asking) = &mut self.asking {
            // The stream moves on: patience starts afresh (`heard` is now: every change to
            // a stream starts with hearing from its sender).
            asking.since = self.heard;
            asking.pause = NACK_FIRST;
        }
        if let Some((first, count)) = meta.calls {
            // The calls between the last ones run and these were in the datagrams lost.
            if let Some(mut loss) = self.pending_loss.take() {
                if let Some(expected) = self.next_call
                    && first > expected
                {
                    loss.calls = Some((expected, first - 1));
                    self.counts.lost += first - expected;
                }
                self.settled.push(loss);
            }
            self.next_call = Some(first.saturating_add(count));
            self.counts.received += count;
            if repaired {
                self.counts.repaired += count;
            }
        }
        out.push(Delivered {
            item,
            from: self.addr,
            repaired,
            meta,
        });
    }

    /// Gives up datagrams `next` to `to - 1` that are not held (they are lost), running
    /// the held ones among them, then what follows.
    fn skip_to(&mut self, to: u64, why: LossCause, sender: u64, out: &mut Vec<Delivered<T>>) {
        while self.next < to {
            let lost_until = self
                .held
                .keys()
                .next()
                .copied()
                .filter(|&s| s < to)
                .unwrap_or(to);
            if lost_until > self.next {
                self.lose(sender, self.next, lost_until - 1, why);
                self.next = lost_until;
            }
            self.highest = self.highest.max(self.next - 1);
            self.run_held(out);
        }
    }

    /// Counts datagrams `first..=last` lost; their calls are counted when the next
    /// datagram with calls runs.
    fn lose(&mut self, sender: u64, first: u64, last: u64, why: LossCause) {
        self.counts.lost_datagrams += last - first + 1;
        match &mut self.pending_loss {
            Some(loss) if loss.datagrams.1 + 1 == first => loss.datagrams.1 = last,
            _ => {
                self.settled.extend(self.pending_loss.take());
                self.pending_loss = Some(Loss {
                    sender,
                    datagrams: (first, last),
                    calls: None,
                    why,
                });
            }
        }
    }

    /// Forgets what is held from datagram `from` on (the sender says it never sent it):
    /// it is no longer known to exist.
    fn drop_beyond(&mut self, from: u64) {
        let dropped = self.held.split_off(&from);
        for held in dropped.values() {
            self.held_bytes -= held.meta.bytes;
            self.counts.refused += 1;
        }
        self.highest = self.highest.min(from - 1).max(self.next - 1);
        if !self.has_gap() {
            self.asking = None;
        }
    }
}

/// The streams this node receives, one per sender.
#[derive(Debug)]
pub struct ReceiveStreams<T> {
    streams: HashMap<u64, Incoming<T>>,
    /// The positions of forgotten streams, and when they were forgotten.
    tombstones: HashMap<u64, (u64, Instant)>,
    /// How many bytes beyond what it has run this node can take from one sender.
    window: u64,
    held_total: usize,
    losses: Vec<Loss>,
}

impl<T> ReceiveStreams<T> {
    /// No streams yet; this node takes `window` bytes beyond what it has run.
    pub fn new(window: u64) -> Self {
        ReceiveStreams {
            streams: HashMap::new(),
            tombstones: HashMap::new(),
            window,
            held_total: 0,
            losses: Vec::new(),
        }
    }

    /// Follows the stream of `sender`, started at `next` if it is new (where it was
    /// forgotten, if it was), forgetting the sender heard from least recently when too
    /// many are followed.
    fn follow(&mut self, sender: u64, addr: SocketAddr, next: u64, now: Instant) {
        if !self.streams.contains_key(&sender) {
            if self.streams.len() >= MAX_STREAMS
                && let Some(oldest) = self
                    .streams
                    .iter()
                    .min_by_key(|(_, s)| s.heard)
                    .map(|(&id, _)| id)
            {
                self.bury(oldest, now);
            }
            let start = match self.tombstones.remove(&sender) {
                Some((position, _)) => position,
                None => next.max(1),
            };
            self.streams.insert(sender, Incoming::new(addr, start, now));
        }
        if let Some(stream) = self.streams.get_mut(&sender) {
            stream.heard = now;
            stream.addr = addr;
        }
    }

    /// Removes `sender`'s stream, remembering where it stood (its held datagrams and
    /// pending loss go unsaid: only for a stream pushed out by too many others).
    fn bury(&mut self, sender: u64, now: Instant) {
        if let Some(stream) = self.streams.remove(&sender) {
            self.held_total = self.held_total.saturating_sub(stream.held_bytes);
            self.remember(sender, stream.next, now);
        }
    }

    /// Remembers that `sender`'s stream stood at `next` when it was forgotten.
    fn remember(&mut self, sender: u64, next: u64, now: Instant) {
        self.tombstones
            .retain(|_, (_, at)| now.saturating_duration_since(*at) <= TOMBSTONE_KEPT);
        if self.tombstones.len() >= MAX_STREAMS
            && let Some(oldest) = self
                .tombstones
                .iter()
                .min_by_key(|(_, (_, at))| *at)
                .map(|(&id, _)| id)
        {
            self.tombstones.remove(&oldest);
        }
        self.tombstones.insert(sender, (next, now));
    }

    /// Datagram `seq` of `sender`'s stream, from `addr`: returns what runs now, in order
    /// (nothing for a duplicate, or for one held after a gap).
    pub fn on_data(
        &mut self,
        sender: u64,
        addr: SocketAddr,
        seq: u64,
        meta: Meta,
        item: T,
        now: Instant,
    ) -> Vec<Delivered<T>> {
        let window = self.window as usize;
        let room_left = MAX_HELD_TOTAL.saturating_sub(self.held_total);
        self.with_stream(sender, addr, seq, now, |stream, out| {
            if seq < stream.next || stream.held.contains_key(&seq) {
                stream.counts.duplicates += 1;
                return;
            }
            let repaired = stream.asking.is_some() && seq <= stream.highest;
            if seq == stream.next {
                stream.run(item, meta, repaired, out);
                return;
            }
            let bound = stream.next.saturating_add(MAX_AHEAD);
            let new_gap = seq > stream.highest + 1;
            stream.highest = stream.highest.max(seq.min(bound));
            let room =
                stream.held_bytes + meta.bytes <= window + HELD_SLACK && meta.bytes <= room_left;
            if seq > bound || !room {
                stream.counts.refused += 1;
            } else {
                stream.held_bytes += meta.bytes;
                stream.held.insert(
                    seq,
                    Held {
                        item,
                        meta,
                        repaired,
                    },
                );
            }
            stream.missing_found(new_gap, now);
        })
    }

    /// Where `sender`'s stream stands, from a heartbeat, an announcement or an answer to a
    /// request: a stream not followed yet starts there; a tail lost on the way is asked
    /// for; what the sender no longer holds is lost; what it never sent is forgotten.
    pub fn on_position(
        &mut self,
        sender: u64,
        addr: SocketAddr,
        position: Position,
        now: Instant,
    ) -> Vec<Delivered<T>> {
        self.with_stream(sender, addr, position.next, now, |stream, out| {
            // The sender says where it stands while a receiver lags: answer with where
            // this node stands and what it misses (its last status may have been lost).
            stream.reported = 0;
            stream.asked = true;
            if stream.next < position.oldest {
                stream.highest = stream.highest.max(position.oldest - 1);
                stream.skip_to(position.oldest, LossCause::Gone, sender, out);
            }
            let last_sent = position.next - 1;
            if last_sent < stream.highest {
                // Beyond what it sent: forged, or a position overtaken by newer datagrams
                // (asked for again if so).
                stream.drop_beyond(position.next.max(stream.next));
            } else if last_sent > stream.highest {
                stream.highest = last_sent.min(stream.next.saturating_add(MAX_AHEAD));
                stream.missing_found(true, now);
            }
        })
    }

    /// Gives up the gaps of streams that have not moved on for [`GIVE_UP`] while they were
    /// asked for: their datagrams are lost, and what was held after them runs now.
    pub fn give_up(&mut self, now: Instant) -> Vec<Delivered<T>> {
        let stale: Vec<(u64, SocketAddr, u64)> = self
            .streams
            .iter()
            .filter(|(_, s)| {
                s.asking
                    .is_some_and(|a| now.saturating_duration_since(a.since) > GIVE_UP)
            })
            .map(|(&id, s)| (id, s.addr, s.next))
            .collect();
        let mut out = Vec::new();
        for (sender, addr, next) in stale {
            out.extend(self.with_stream(sender, addr, next, now, |stream, out| {
                let to = stream.highest + 1;
                stream.skip_to(to, LossCause::NoAnswer, sender, out);
                stream.asking = None;
                // Said now, even if no later datagram tells how many calls were lost.
                stream.settled.extend(stream.pending_loss.take());
            }));
        }
        out
    }

    /// Runs `f` on `sender`'s stream (started at `next` if new) and keeps the books after
    /// it: the bytes held, and the losses that can be said now.
    fn with_stream(
        &mut self,
        sender: u64,
        addr: SocketAddr,
        next: u64,
        now: Instant,
        f: impl FnOnce(&mut Incoming<T>, &mut Vec<Delivered<T>>),
    ) -> Vec<Delivered<T>> {
        self.follow(sender, addr, next, now);
        let Self {
            streams,
            losses,
            held_total,
            ..
        } = self;
        let mut out = Vec::new();
        let Some(stream) = streams.get_mut(&sender) else {
            return out;
        };
        let held_before = stream.held_bytes;
        f(stream, &mut out);
        losses.append(&mut stream.settled);
        *held_total = (*held_total + stream.held_bytes).saturating_sub(held_before);
        out
    }

    /// The status to send `sender` now, if it is due at once: a gap to ask for, or a
    /// quarter of the window run since the last report.
    pub fn status_for(&mut self, sender: u64, now: Instant) -> Option<(SocketAddr, Status)> {
        let quarter = self.window / 4;
        let window = self.window;
        let stream = self.streams.get_mut(&sender)?;
        let nack = stream.asking.is_some_and(|a| a.at <= now);
        if nack || stream.unreported_bytes >= quarter.max(1) {
            return Some(Self::report(sender, stream, window, nack, now));
        }
        None
    }

    /// Every status due now: requests for gaps, and progress (or an answer to a
    /// position) not reported for [`STATUS_DELAY`].
    pub fn statuses(&mut self, now: Instant) -> Vec<(SocketAddr, Status)> {
        let window = self.window;
        let mut due = Vec::new();
        for (&sender, stream) in &mut self.streams {
            let nack = stream.asking.is_some_and(|a| a.at <= now);
            let progress = stream.next > stream.reported
                && stream
                    .reported_at
                    .is_none_or(|at| now.saturating_duration_since(at) >= STATUS_DELAY);
            if nack || progress {
                due.push(Self::report(sender, stream, window, nack, now));
            }
        }
        due
    }

    fn report(
        sender: u64,
        stream: &mut Incoming<T>,
        window: u64,
        nack: bool,
        now: Instant,
    ) -> (SocketAddr, Status) {
        if nack && let Some(asking) = &mut stream.asking {
            asking.at = now + asking.pause;
            asking.pause = (asking.pause * 2).min(NACK_MAX);
        }
        let missing = if nack || std::mem::take(&mut stream.asked) {
            stream.missing()
        } else {
            Vec::new()
        };
        stream.reported = stream.next;
        stream.reported_at = Some(now);
        stream.unreported_bytes = 0;
        let status = Status {
            stream: sender,
            delivered: stream.next,
            window,
            missing,
        };
        (stream.addr, status)
    }

    /// When the next status may be due, if any.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.streams
            .values()
            .filter_map(|s| {
                let nack = s.asking.map(|a| a.at.min(a.since + GIVE_UP));
                let progress = (s.next > s.reported)
                    .then(|| s.reported_at.map_or(s.heard, |at| at + STATUS_DELAY));
                nack.into_iter().chain(progress).min()
            })
            .min()
    }

    /// Stops following `sender` (it left or expired): what it never repaired is lost, and
    /// what was held after it runs now. Returns what was received of the stream, and what
    /// runs. The stream's position is remembered: what comes from it later, below that,
    /// is a duplicate.
    pub fn forget(&mut self, sender: u64, now: Instant) -> Option<(Counts, Vec<Delivered<T>>)> {
        let (addr, next) = self.streams.get(&sender).map(|s| (s.addr, s.next))?;
        let out = self.with_stream(sender, addr, next, now, |stream, out| {
            if stream.has_gap() {
                let to = stream.highest + 1;
                stream.skip_to(to, LossCause::SenderGone, sender, out);
            }
            stream.settled.extend(stream.pending_loss.take());
        });
        let stream = self.streams.remove(&sender)?;
        self.losses.extend(stream.settled);
        self.remember(sender, stream.next, now);
        Some((stream.counts, out))
    }

    /// The senders whose streams have had nothing for [`IDLE_STREAM`] and no gap (to
    /// forget those that are not peers: short-lived clients).
    pub fn idle(&self, now: Instant) -> Vec<u64> {
        self.streams
            .iter()
            .filter(|(_, s)| !s.has_gap() && now.saturating_duration_since(s.heard) > IDLE_STREAM)
            .map(|(&id, _)| id)
            .collect()
    }

    /// Takes the losses found since the last call, to log each once.
    pub fn take_losses(&mut self) -> Vec<Loss> {
        std::mem::take(&mut self.losses)
    }

    /// What was received of each stream followed, by sender.
    pub fn counts(&self) -> impl Iterator<Item = (u64, Counts)> + '_ {
        self.streams.iter().map(|(&id, s)| (id, s.counts))
    }

    /// Whether `sender`'s stream is followed.
    #[cfg(test)]
    fn follows(&self, sender: u64) -> bool {
        self.streams.contains_key(&sender)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 7;

    fn addr() -> SocketAddr {
        "127.0.0.1:9".parse().unwrap()
    }

    /// Datagram `seq` carrying 10 calls numbered from `10 * (seq - 1) + 1`.
    fn meta(seq: u64) -> Meta {
        Meta {
            bytes: 100,
            calls: Some((10 * (seq - 1) + 1, 10)),
        }
    }

    fn feed(r: &mut ReceiveStreams<u64>, seq: u64, now: Instant) -> Vec<u64> {
        r.on_data(S, addr(), seq, meta(seq), seq, now)
            .into_iter()
            .map(|d| d.item)
            .collect()
    }

    #[test]
    fn datagrams_run_in_order_once_and_gaps_are_asked_for_then_filled() {
        let now = Instant::now();
        let mut r = ReceiveStreams::new(1 << 20);
        assert_eq!(feed(&mut r, 1, now), [1]);
        assert_eq!(feed(&mut r, 2, now), [2]);
        assert_eq!(feed(&mut r, 2, now), Vec::<u64>::new());
        assert_eq!(feed(&mut r, 5, now), Vec::<u64>::new());
        assert_eq!(feed(&mut r, 7, now), Vec::<u64>::new());
        let (to, status) = r.status_for(S, now).unwrap();
        assert_eq!(to, addr());
        assert_eq!(
            (status.delivered, status.missing),
            (3, vec![(3, 4), (6, 6)])
        );
        // Asked again only after a pause, which doubles.
        assert!(r.status_for(S, now).is_none());
        assert!(
            r.statuses(now + NACK_FIRST)
                .iter()
                .any(|(_, s)| !s.missing.is_empty())
        );
        assert_eq!(feed(&mut r, 4, now), Vec::<u64>::new());
        assert_eq!(feed(&mut r, 3, now), [3, 4, 5]);
        assert_eq!(feed(&mut r, 6, now), [6, 7]);
        let counts = r.counts().next().unwrap().1;
        assert_eq!(
            (
                counts.received,
                counts.repaired,
                counts.lost,
                counts.duplicates
            ),
            (70, 30, 0, 1)
        );
        assert!(r.take_losses().is_empty());
    }

    #[test]
    fn a_stream_starts_where_it_is_first_heard() {
        let now = Instant::now();
        let mut r = ReceiveStreams::new(1 << 20);
        // From a position (an announcement, a heartbeat): earlier datagrams are history.
        r.on_position(
            S,
            addr(),
            Position {
                next: 40,
                oldest: 1,
            },
            now,
        );
        assert_eq!(feed(&mut r, 39, now), Vec::<u64>::new());
        assert_eq!(feed(&mut r, 40, now), [40]);
        // From a datagram.
        let mut r2 = ReceiveStreams::new(1 << 20);
        let d = r2.on_data(9, addr(), 1000, meta(1000), 1000u64, now);
        assert_eq!(d.len(), 1);
        assert_eq!(r2.statuses(now).len(), 1);
        assert!(r2.take_losses().is_empty());
    }

    #[test]
    fn a_lost_tail_is_seen_from_the_position() {
        let now = Instant::now();
        let mut r = ReceiveStreams::new(1 << 20);
        feed(&mut r, 1, now);
        r.on_position(S, addr(), Position { next: 4, oldest: 1 }, now);
        let (_, status) = r.status_for(S, now).unwrap();
        assert_eq!(status.missing, [(2, 3)]);
    }

    #[test]
    fn what_the_sender_no_longer_holds_is_lost_once_with_its_calls() {
        let now = Instant::now();
        let mut r = ReceiveStreams::new(1 << 20);
        feed(&mut r, 1, now);
        assert!(feed(&mut r, 5, now).is_empty());
        // The sender kept only from 4 on: 2 and 3 are lost; 4 can still come.
        assert!(
            r.on_position(S, addr(), Position { next: 6, oldest: 4 }, now)
                .is_empty()
        );
        assert_eq!(feed(&mut r, 4, now), [4, 5]);
        let losses = r.take_losses();
        assert_eq!(
            losses,
            [Loss {
                sender: S,
                datagrams: (2, 3),
                calls: Some((11, 30)),
                why: LossCause::Gone,
            }]
        );
        let counts = r.counts().next().unwrap().1;
        assert_eq!(
            (counts.received, counts.lost, counts.lost_datagrams),
            (30, 20, 2)
        );
    }

    #[test]
    fn a_position_far_ahead_skips_without_a_step_per_datagram() {
        let now = Instant::now();
        let mut r = ReceiveStreams::new(1 << 20);
        feed(&mut r, 1, now);
        let (next, oldest) = (1_000_000_000, 999_999_990);
        r.on_position(S, addr(), Position { next, oldest }, now);
        let (_, status) = r.status_for(S, now).unwrap();
        assert_eq!(status.missing, [(oldest, next - 1)]);
        assert_eq!(feed(&mut r, oldest, now), [oldest]);
        let losses = r.take_losses();
        assert_eq!(losses.len(), 1);
        assert_eq!(losses[0].datagrams, (2, oldest - 1));
        assert_eq!(losses[0].calls, Some((11, 10 * (oldest - 1))));
    }

    #[test]
    fn a_gap_that_is_never_answered_is_given_up_and_what_followed_runs() {
        let now = Instant::now();
        let mut r = ReceiveStreams::new(1 << 20);
        feed(&mut r, 1, now);
        feed(&mut r, 3, now);
        assert!(r.next_deadline().is_some());
        let ran = r.give_up(now + GIVE_UP + Duration::from_millis(1));
        assert_eq!(ran.iter().map(|d| d.item).collect::<Vec<_>>(), [3]);
        let losses = r.take_losses();
        assert_eq!(losses.len(), 1, "{losses:?}");
        assert_eq!(losses[0].datagrams, (2, 2));
        assert_eq!(losses[0].why, LossCause::NoAnswer);
        assert_eq!(losses[0].calls, Some((11, 20)));
        assert_eq!(feed(&mut r, 4, now), [4]);
    }

    #[test]
    fn a_sender_that_leaves_loses_its_gaps() {
        let now = Instant::now();
        let mut r = ReceiveStreams::new(1 << 20);
        feed(&mut r, 1, now);
        feed(&mut r, 4, now);
        let (counts, ran) = r.forget(S, now).unwrap();
        assert_eq!(counts.lost_datagrams, 2);
        assert_eq!(ran.iter().map(|d| d.item).collect::<Vec<_>>(), [4]);
        assert_eq!(r.take_losses()[0].why, LossCause::SenderGone);
        assert!(!r.follows(S));
    }

    #[test]
    fn progress_is_reported_after_a_quarter_window_or_a_short_pause() {
        let now = Instant::now();
        let mut r = ReceiveStreams::new(1000);
        feed(&mut r, 1, now);
        assert!(r.status_for(S, now).is_none());
        feed(&mut r, 2, now);
        feed(&mut r, 3, now);
        let (_, status) = r.status_for(S, now).unwrap();
        assert_eq!((status.delivered, status.window), (4, 1000));
        feed(&mut r, 4, now);
        assert!(r.statuses(now).is_empty());
        assert_eq!(r.next_deadline(), Some(now + STATUS_DELAY));
        assert_eq!(r.statuses(now + STATUS_DELAY).len(), 1);
        assert!(r.statuses(now + STATUS_DELAY * 2).is_empty());
    }

    #[test]
    fn far_ahead_and_overflowing_datagrams_are_refused_not_held() {
        let now = Instant::now();
        let mut r = ReceiveStreams::new(1000);
        feed(&mut r, 1, now);
        assert!(feed(&mut r, 3 + MAX_AHEAD, now).is_empty());
        for seq in 3..2000 {
            feed(&mut r, seq, now);
        }
        let counts = r.counts().next().unwrap().1;
        assert!(counts.refused > 1000, "{counts:?}");
        // The held bytes stay within the window (and a datagram).
        assert!(r.streams[&S].held_bytes <= 1000 + 65_536);
    }

    #[test]
    fn a_forgotten_stream_never_runs_a_late_resend_again() {
        let now = Instant::now();
        let mut r = ReceiveStreams::new(1 << 20);
        feed(&mut r, 1, now);
        feed(&mut r, 2, now);
        r.forget(S, now);
        // A resend of 2 that was on its way, then the sender goes on (it was only slow).
        assert!(feed(&mut r, 2, now).is_empty());
        assert_eq!(feed(&mut r, 3, now), [3]);
        assert!(r.take_losses().is_empty());
    }

    #[test]
    fn a_new_gap_is_asked_for_at_once_while_an_older_one_is_pending() {
        let now = Instant::now();
        let mut r = ReceiveStreams::new(1 << 20);
        feed(&mut r, 1, now);
        feed(&mut r, 3, now);
        assert_eq!(r.status_for(S, now).unwrap().1.missing, [(2, 2)]);
        let soon = now + Duration::from_millis(1);
        assert!(r.status_for(S, soon).is_none());
        feed(&mut r, 4, soon);
        assert!(r.status_for(S, soon).is_none(), "nothing new is missing");
        feed(&mut r, 6, soon);
        assert_eq!(r.status_for(S, soon).unwrap().1.missing, [(2, 2), (5, 5)]);
    }

    #[test]
    fn patience_runs_from_the_last_progress() {
        let now = Instant::now();
        let mut r = ReceiveStreams::new(1 << 20);
        feed(&mut r, 1, now);
        feed(&mut r, 3, now);
        feed(&mut r, 5, now);
        let later = now + GIVE_UP - Duration::from_secs(1);
        assert_eq!(feed(&mut r, 2, later), [2, 3]);
        // Ten seconds after the gap was first seen, but not after the stream last moved.
        assert!(
            r.give_up(now + GIVE_UP + Duration::from_millis(1))
                .is_empty()
        );
        assert_eq!(
            r.give_up(later + GIVE_UP + Duration::from_millis(1)).len(),
            1
        );
    }

    #[test]
    fn a_position_forgets_what_the_sender_never_sent_and_asks_for_its_tail() {
        let now = Instant::now();
        let mut r = ReceiveStreams::new(1 << 20);
        feed(&mut r, 1, now);
        // A forged datagram far ahead; the sender's position says it sent only 1 and 2.
        assert!(feed(&mut r, 60_000, now).is_empty());
        r.status_for(S, now);
        r.on_position(S, addr(), Position { next: 3, oldest: 1 }, now);
        let (_, status) = r.statuses(now + STATUS_DELAY).pop().unwrap();
        assert_eq!((status.delivered, status.missing), (2, vec![(2, 2)]));
        assert_eq!(feed(&mut r, 2, now), [2]);
        assert!(!r.streams[&S].has_gap());
        assert_eq!(r.counts().next().unwrap().1.refused, 1);
    }

    #[test]
    fn the_answer_to_a_position_says_what_is_missing() {
        let now = Instant::now();
        let mut r = ReceiveStreams::new(1 << 20);
        feed(&mut r, 1, now);
        feed(&mut r, 3, now);
        r.status_for(S, now);
        // The request was lost; the heartbeat comes before the next request is due.
        let soon = now + Duration::from_millis(2);
        r.on_position(S, addr(), Position { next: 4, oldest: 1 }, soon);
        let statuses = r.statuses(soon);
        assert_eq!(statuses.len(), 1);
        assert_eq!(statuses[0].1.missing, [(2, 2)]);
    }
}
