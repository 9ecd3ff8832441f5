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
//! when it has not been repaired within [`GIVE_UP`]; the calls in it are counted, and the
//! gap is logged once (see [`Loss`]).
//!
//! The payload `T` is whatever the node delivers (a decoded datagram); [`Meta`] says how
//! large it is and which calls it carries.

use crate::wire::{MAX_MISSING_RANGES, Position, Status};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// How far past the next datagram to run a datagram may be and still be held.
pub const MAX_AHEAD: u64 = 1 << 16;

/// The first request for a gap goes at once; then again after this pause, doubling up to
/// [`NACK_MAX`].
pub const NACK_FIRST: Duration = Duration::from_millis(10);

/// The longest pause between two requests for one gap.
pub const NACK_MAX: Duration = Duration::from_secs(1);

/// How long a gap may stay unrepaired before its datagrams count as lost.
pub const GIVE_UP: Duration = Duration::from_secs(10);

/// The shortest pause between two progress reports to one sender (but see
/// [`ReceiveStreams::status_for`]: a quarter window run is reported at once).
pub const STATUS_DELAY: Duration = Duration::from_millis(1);

/// The most senders whose streams are followed at once.
const MAX_STREAMS: usize = 4096;

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
    /// When the current gap was seen, when to ask for it next, and the pause after that.
    gap: Option<(Instant, Instant, Duration)>,
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
            gap: None,
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

    /// The missing ranges, at most [`MAX_MISSING_RANGES`].
    fn missing(&self) -> Vec<(u64, u64)> {
        let mut ranges = Vec::new();
        let mut from = self.next;
        for &seq in self.held.keys() {
            if seq > from {
                ranges.push((from, seq - 1));
            }
            from = seq + 1;
        }
        if from <= self.highest {
            ranges.push((from, self.highest));
        }
        ranges.truncate(MAX_MISSING_RANGES);
        ranges
    }

    /// Hands over `item` (datagram `next`) and every held datagram after it, in order;
    /// settles the calls of a loss before them.
    fn run(&mut self, item: T, meta: Meta, repaired: bool, out: &mut Vec<Delivered<T>>) {
        self.deliver(
            Delivered {
                item,
                repaired,
                meta,
            },
            out,
        );
        self.run_held(out);
    }

    fn run_held(&mut self, out: &mut Vec<Delivered<T>>) {
        while let Some(held) = self.held.remove(&self.next) {
            self.held_bytes -= held.meta.bytes;
            self.deliver(
                Delivered {
                    item: held.item,
                    repaired: held.repaired,
                    meta: held.meta,
                },
                out,
            );
        }
        if !self.has_gap() {
            self.gap = None;
        }
    }

    fn deliver(&mut self, delivered: Delivered<T>, out: &mut Vec<Delivered<T>>) {
        self.next += 1;
        self.highest = self.highest.max(self.next - 1);
        self.unreported_bytes += delivered.meta.bytes as u64;
        if let Some((first, count)) = delivered.meta.calls {
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
            self.next_call = Some(first + count);
            self.counts.received += count;
            if delivered.repaired {
                self.counts.repaired += count;
            }
        }
        out.push(delivered);
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
                self.pending_loss = Some(Loss {
                    sender,
                    datagrams: (first, last),
                    calls: None,
                    why,
                });
            }
        }
    }
}

/// The streams this node receives, one per sender.
#[derive(Debug)]
pub struct ReceiveStreams<T> {
    streams: HashMap<u64, Incoming<T>>,
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
            window,
            held_total: 0,
            losses: Vec::new(),
        }
    }

    /// The window this node asks its senders for.
    pub fn window(&self) -> u64 {
        self.window
    }

    /// Follows the stream of `sender`, started at `next` if it is new (forgetting the
    /// sender heard from least recently when too many are followed).
    fn follow(&mut self, sender: u64, addr: SocketAddr, next: u64, now: Instant) {
        if !self.streams.contains_key(&sender)
            && self.streams.len() >= MAX_STREAMS
            && let Some(oldest) = self
                .streams
                .iter()
                .min_by_key(|(_, s)| s.heard)
                .map(|(&id, _)| id)
            && let Some(dropped) = self.streams.remove(&oldest)
        {
            self.held_total = self.held_total.saturating_sub(dropped.held_bytes);
        }
        let stream = self
            .streams
            .entry(sender)
            .or_insert_with(|| Incoming::new(addr, next.max(1), now));
        stream.heard = now;
        stream.addr = addr;
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
            let repaired = stream.gap.is_some() && seq <= stream.highest;
            if seq == stream.next {
                stream.run(item, meta, repaired, out);
                return;
            }
            let bound = stream.next.saturating_add(MAX_AHEAD);
            stream.highest = stream.highest.max(seq.min(bound));
            let room = stream.held_bytes + meta.bytes <= window + 65_536 && meta.bytes <= room_left;
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
            if stream.gap.is_none() {
                stream.gap = Some((now, now, NACK_FIRST));
            }
        })
    }

    /// Where `sender`'s stream stands, from a heartbeat, an announcement or an answer to a
    /// request: a stream not followed yet starts there; a tail lost on the way is asked
    /// for; what the sender no longer holds is lost.
    pub fn on_position(
        &mut self,
        sender: u64,
        addr: SocketAddr,
        position: Position,
        now: Instant,
    ) -> Vec<Delivered<T>> {
        self.with_stream(sender, addr, position.next, now, |stream, out| {
            // The sender says where it stands while a receiver lags: answer with where
            // this node stands (its last status may have been lost).
            stream.reported = 0;
            if stream.next < position.oldest {
                stream.highest = stream.highest.max(position.oldest - 1);
                stream.skip_to(position.oldest, LossCause::Gone, sender, out);
            }
            let last_sent = position.next - 1;
            if last_sent > stream.highest {
                stream.highest = last_sent.min(stream.next.saturating_add(MAX_AHEAD));
                if stream.gap.is_none() && stream.has_gap() {
                    stream.gap = Some((now, now, NACK_FIRST));
                }
            }
        })
    }

    /// Gives up the gaps asked for during [`GIVE_UP`] without an answer: their datagrams
    /// are lost, and what was held after them runs now.
    pub fn give_up(&mut self, now: Instant) -> Vec<Delivered<T>> {
        let stale: Vec<(u64, SocketAddr, u64)> = self
            .streams
            .iter()
            .filter(|(_, s)| {
                s.gap
                    .is_some_and(|(since, _, _)| now.saturating_duration_since(since) > GIVE_UP)
            })
            .map(|(&id, s)| (id, s.addr, s.next))
            .collect();
        let mut out = Vec::new();
        for (sender, addr, next) in stale {
            out.extend(self.with_stream(sender, addr, next, now, |stream, out| {
                let to = stream.highest + 1;
                stream.skip_to(to, LossCause::NoAnswer, sender, out);
                stream.gap = None;
            }));
            // Said now, even if no later datagram tells how many calls were lost.
            if let Some(stream) = self.streams.get_mut(&sender) {
                self.losses.extend(stream.pending_loss.take());
            }
        }
        out
    }

    /// Runs `f` on `sender`'s stream (started at `next` if new) and keeps the books after
    /// it: the bytes held, and the losses whose calls are known now.
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
        let nack = stream.gap.is_some_and(|(_, at, _)| at <= now);
        if nack || stream.unreported_bytes >= quarter.max(1) {
            return Some(Self::report(sender, stream, window, nack, now));
        }
        None
    }

    /// Every status due now: requests for gaps, and progress not reported for
    /// [`STATUS_DELAY`].
    pub fn statuses(&mut self, now: Instant) -> Vec<(SocketAddr, Status)> {
        let window = self.window;
        let mut due = Vec::new();
        for (&sender, stream) in &mut self.streams {
            let nack = stream.gap.is_some_and(|(_, at, _)| at <= now);
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
        let missing = if nack {
            if let Some((since, _, pause)) = stream.gap {
                stream.gap = Some((since, now + pause, (pause * 2).min(NACK_MAX)));
            }
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
                let nack = s.gap.map(|(since, at, _)| at.min(since + GIVE_UP));
                let progress = (s.next > s.reported)
                    .then(|| s.reported_at.map_or(s.heard, |at| at + STATUS_DELAY));
                nack.into_iter().chain(progress).min()
            })
            .min()
    }

    /// Stops following `sender` (it left or expired): what it never repaired is lost, and
    /// what was held after it runs now. Returns what was received of the stream, and what
    /// runs.
    pub fn forget(&mut self, sender: u64, now: Instant) -> Option<(Counts, Vec<Delivered<T>>)> {
        let (addr, next) = self.streams.get(&sender).map(|s| (s.addr, s.next))?;
        let out = self.with_stream(sender, addr, next, now, |stream, out| {
            if stream.has_gap() {
                let to = stream.highest + 1;
                stream.skip_to(to, LossCause::SenderGone, sender, out);
            }
        });
        let stream = self.streams.remove(&sender)?;
        self.losses.extend(stream.pending_loss);
        Some((stream.counts, out))
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
    pub fn follows(&self, sender: u64) -> bool {
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
}
