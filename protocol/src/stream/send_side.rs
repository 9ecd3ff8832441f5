//! A node's whole sending side, as a state machine without I/O: what to transmit and
//! when. It numbers the calls the node's guests send, packs them into datagrams
//! ([`Batcher`]), holds packed datagrams until the window has room for them, hands them
//! out one at a time to be sent ([`SendSide::poll_transmit`], which records each in the
//! stream for repair), answers receivers' statuses ([`SendSide::on_status`]: what to
//! resend, whether to multicast the stream's position, whether to ask the group who is
//! there), and says what is due when time passes ([`SendSide::tick`]: receivers to forget,
//! a heartbeat).
//!
//! The stream's own bookkeeping (numbers, retransmit buffer, receivers' windows) is
//! [`SendStream`]'s; this adds the batching, the queue in front of the window, and the
//! rates at which a node answers. The node's `stream::outgoing::Outgoing` drives it from
//! the threads that send and the socket that hears statuses; the tests below drive it with
//! a made-up clock.

use super::StreamConfig;
use super::send::{Review, SendStream, StatusRefused};
use crate::wire::{Batcher, Position, Status, WireError};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The shortest pause between two answers with the stream's position (multicast) to
/// requests for datagrams this node no longer holds, or never sent.
pub const POSITION_ANSWER_GAP: Duration = Duration::from_millis(5);

/// The shortest pause between two queries made because statuses came from unknown nodes.
pub const QUERY_GAP: Duration = Duration::from_millis(100);

/// What to do next with the datagrams packed for the group.
#[derive(Debug, PartialEq, Eq)]
pub enum Transmit {
    /// Send this datagram now (numbered, and kept for resending).
    Send(Arc<Vec<u8>>),
    /// The next datagram does not fit the window: wait for receivers to make room (a
    /// status that opens it, a receiver that leaves or expires).
    Wait,
    /// Nothing waits to be sent.
    Idle,
}

/// What to send back for one status of the stream.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct StatusAnswer {
    /// The datagrams to multicast again, in order.
    pub resend: Vec<Arc<Vec<u8>>>,
    /// The numbers of the first and last datagrams the status had resent, and how many,
    /// for the log.
    pub resent_range: Option<(u64, u64, usize)>,
    /// Multicast the stream's position: the receiver asked for datagrams this node no
    /// longer holds or never sent (at most once per [`POSITION_ANSWER_GAP`]).
    pub position: Option<Position>,
    /// The window may have opened: senders waiting for room should look again.
    pub opened: bool,
    /// The status came from a node that is not a receiver (yet: its announcement was lost,
    /// or is not sent yet): ask the group who is there (at most once per [`QUERY_GAP`]).
    pub ask_who_is_there: bool,
}

/// Receivers the sender stopped waiting for, as of one look at the clock.
#[derive(Debug, Default)]
pub struct Expired {
    /// The number of the last datagram sent then.
    pub last_sent: u64,
    /// The receivers forgotten or no longer waited for.
    pub changes: Vec<Review>,
}

/// What is due when time passes.
#[derive(Debug, Default)]
pub struct Tick {
    /// Receivers the sender stopped waiting for.
    pub expired: Expired,
    /// A heartbeat to multicast: the stream's position.
    pub heartbeat: Option<Position>,
    /// Whether a heartbeat may come due soon (a receiver lags): look again shortly.
    pub active: bool,
}

/// A node's sending side (see the module's documentation).
#[derive(Debug)]
pub struct SendSide {
    stream: SendStream,
    batcher: Batcher,
    /// Datagrams packed and waiting for room in the window, in order.
    pending: VecDeque<Vec<u8>>,
    /// The number of the next call sent.
    next_call: u64,
    last_position_answer: Option<Instant>,
    /// When the group was last asked who is there (a status came from an unknown node).
    last_query: Option<Instant>,
}

impl SendSide {
    /// The sending side of node `id`, in datagrams of at most `max_datagram` bytes, paced
    /// and kept as `config` says.
    pub fn new(id: u64, max_datagram: usize, config: StreamConfig, now: Instant) -> Self {
        SendSide {
            stream: SendStream::new(id, config, now),
            batcher: Batcher::new(id, max_datagram, true),
            pending: VecDeque::new(),
            next_call: 1,
            last_position_answer: None,
            last_query: None,
        }
    }

    /// The stream: its position, its receivers.
    pub fn stream(&self) -> &SendStream {
        &self.stream
    }

    /// Node `id` sent a control datagram from `addr` at `now`: it is alive; if it
    /// `announced` itself, it is a receiver (from the stream's position if it is new),
    /// whose statuses must come from that address.
    pub fn heard(&mut self, id: u64, addr: SocketAddr, announced: bool, now: Instant) {
        if announced {
            self.stream.heard(id, addr, now);
        } else {
            self.stream.alive(id, now);
        }
    }

    /// Node `id` said goodbye; whether that may have opened the window.
    pub fn left(&mut self, id: u64) -> bool {
        self.stream.left(id)
    }

    /// Numbers the calls to `function` (each one argument array) and packs them into
    /// datagrams; a call too large for any datagram is handed to `refused`.
    #[inline]
    pub fn queue_calls<'a, I>(&mut self, function: &str, calls: I, refused: impl FnMut(WireError))
    where
        I: IntoIterator<Item = &'a [u8]>,
        I::IntoIter: ExactSizeIterator,
    {
        let calls = calls.into_iter();
        let first = self.next_call;
        self.next_call += calls.len() as u64;
        self.batcher.push_calls(first, function, calls, refused);
    }

    /// Moves the datagrams that are full to the queue in front of the window (with `all`,
    /// the partly filled one too); whether any datagram waits there.
    pub fn seal(&mut self, all: bool) -> bool {
        let sealed = if all {
            self.batcher.take()
        } else {
            self.batcher.take_full()
        };
        self.pending.extend(sealed);
        !self.pending.is_empty()
    }

    /// Whether nothing is queued: no call packed, no datagram waiting.
    pub fn is_empty(&self) -> bool {
        self.batcher.is_empty() && self.pending.is_empty()
    }

    /// How many datagrams wait for room in the window.
    pub fn waiting(&self) -> usize {
        self.pending.len()
    }

    /// Drops every datagram waiting (a node with no network keeps its calls to itself).
    pub fn discard_waiting(&mut self) {
        self.pending.clear();
    }

    /// The next datagram to send at `now`, if the window has room for it: numbered and
    /// recorded in the stream, and the datagrams kept too long let go.
    pub fn poll_transmit(&mut self, now: Instant) -> Transmit {
        let Some(len) = self.pending.front().map(Vec::len) else {
            return Transmit::Idle;
        };
        if !self.stream.has_room(len) {
            return Transmit::Wait;
        }
        let Some(datagram) = self.pending.pop_front() else {
            return Transmit::Idle;
        };
        let bytes = self.stream.record(datagram, now);
        self.stream.evict(now);
        Transmit::Send(bytes)
    }

    /// Takes receiver `sender`'s status of the stream, sent from `from` at `now`: what to
    /// send back, or why it was refused (a node that is not a receiver is not refused: the
    /// answer asks who is there).
    pub fn on_status(
        &mut self,
        sender: u64,
        from: SocketAddr,
        status: &Status,
        now: Instant,
    ) -> Result<StatusAnswer, StatusRefused> {
        let repair = match self.stream.on_status(sender, from, status, now) {
            Ok(repair) => repair,
            Err(StatusRefused::NotAPeer) => {
                // (A forger gains nothing by it: the group's answer makes a receiver of
                // a node that announces itself, nothing else.)
                let quiet = self
                    .last_query
                    .is_none_or(|at| now.saturating_duration_since(at) >= QUERY_GAP);
                if quiet {
                    self.last_query = Some(now);
                }
                return Ok(StatusAnswer {
                    ask_who_is_there: quiet,
                    ..StatusAnswer::default()
                });
            }
            Err(refused) => return Err(refused),
        };
        let mut answer = StatusAnswer {
            resend: repair
                .resend
                .iter()
                .filter_map(|&seq| self.stream.kept(seq))
                .collect(),
            resent_range: repair
                .resend
                .first()
                .zip(repair.resend.last())
                .map(|(&first, &last)| (first, last, repair.resend.len())),
            opened: repair.opened,
            ..StatusAnswer::default()
        };
        let quiet = self
            .last_position_answer
            .is_none_or(|at| now.saturating_duration_since(at) >= POSITION_ANSWER_GAP);
        if repair.position && quiet {
            self.last_position_answer = Some(now);
            answer.position = Some(self.stream.position());
        }
        Ok(answer)
    }

    /// Forgets the receivers not heard from for too long, and stops waiting for those
    /// silent too long, as of `now`.
    pub fn expire(&mut self, now: Instant) -> Expired {
        Expired {
            last_sent: self.stream.next() - 1,
            changes: self.stream.review(now),
        }
    }

    /// What is due at `now`: receivers to forget, old datagrams to let go, a heartbeat.
    pub fn tick(&mut self, now: Instant) -> Tick {
        let expired = self.expire(now);
        self.stream.evict(now);
        let heartbeat = self.stream.heartbeat(now);
        Tick {
            expired,
            heartbeat,
            active: self.stream.next_heartbeat().is_some(),
        }
    }

    /// Whether the sender may stop lingering: every live receiver has run everything sent
    /// (or the stream does not wait for receivers), as of `now`; with the receivers that
    /// expired on the way.
    pub fn settled(&mut self, now: Instant) -> (bool, Expired) {
        let expired = self.expire(now);
        let settled = !self.stream.is_reliable() || !self.stream.lagging();
        (settled, expired)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::membership::PEER_EXPIRY;
    use crate::wire::{self, Frame};

    fn config(window: u64) -> StreamConfig {
        StreamConfig {
            window: Some(window),
            keep_bytes: 10 * window,
            keep_age: Duration::from_secs(5),
        }
    }

    fn peer(id: u64) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 4000 + id as u16))
    }

    fn status(delivered: u64, missing: &[(u64, u64)]) -> Status {
        Status {
            stream: 1,
            delivered,
            window: 1 << 20,
            missing: missing.to_vec(),
        }
    }

    /// Calls of `args_len` bytes of arguments each (one CBOR array of a byte string).
    fn calls(n: usize, args_len: usize) -> Vec<Vec<u8>> {
        (0..n)
            .map(|_| {
                let mut args = Vec::new();
                wire::encode_item(
                    &ciborium::Value::Array(vec![ciborium::Value::Bytes(vec![7; args_len])]),
                    &mut args,
                );
                args
            })
            .collect()
    }

    fn queue(side: &mut SendSide, calls: &[Vec<u8>]) {
        side.queue_calls("a:b/c#f", calls.iter().map(Vec::as_slice), |e| {
            panic!("refused: {e}")
        });
    }

    /// The datagrams `side` sends now, until it waits or has nothing.
    fn drain(side: &mut SendSide, now: Instant) -> (Vec<Arc<Vec<u8>>>, Transmit) {
        let mut sent = Vec::new();
        loop {
            match side.poll_transmit(now) {
                Transmit::Send(bytes) => sent.push(bytes),
                other => return (sent, other),
            }
        }
    }

    /// The numbers of the calls in a datagram: (first, count).
    fn call_numbers(datagram: &[u8]) -> Vec<(u64, usize)> {
        let mut bytes = datagram;
        let header = wire::read_header(&mut bytes).expect("a header");
        assert!(header.seq.is_some(), "a sequenced datagram");
        wire::decode_frames(bytes)
            .expect("frames")
            .into_iter()
            .filter_map(|frame| match frame {
                Frame::Call(run) => Some((run.first, run.count())),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn calls_are_numbered_in_order_and_sent_in_full_datagrams_until_flushed() {
        let now = Instant::now();
        let mut side = SendSide::new(1, 1200, config(1 << 20), now);
        queue(&mut side, &calls(30, 100));
        assert!(side.seal(false), "full datagrams wait for the window");
        let (full, next) = drain(&mut side, now);
        assert_eq!(next, Transmit::Idle);
        assert!(
            !full.is_empty() && !side.is_empty(),
            "the last one is still open"
        );
        assert!(full.iter().all(|d| d.len() <= 1200));
        // Flushed: the partly filled one goes too, and the numbers run on without a gap.
        assert!(side.seal(true));
        let (rest, _) = drain(&mut side, now);
        assert_eq!(rest.len(), 1);
        assert!(side.is_empty());
        let mut expected = 1;
        for datagram in full.iter().chain(&rest) {
            for (first, count) in call_numbers(datagram) {
                assert_eq!(first, expected);
                expected += count as u64;
            }
        }
        assert_eq!(expected, 31, "30 calls, numbered 1 to 30");
        assert_eq!(side.stream().next(), 1 + (full.len() + rest.len()) as u64);
    }

    #[test]
    fn a_full_window_holds_datagrams_until_a_status_opens_it() {
        let now = Instant::now();
        let mut side = SendSide::new(1, 30_000, config(64 * 1024), now);
        side.heard(2, peer(2), true, now);
        queue(&mut side, &calls(8, 29_000));
        side.seal(true);
        let (sent, next) = drain(&mut side, now);
        assert_eq!(next, Transmit::Wait, "the window is full");
        assert_eq!(sent.len(), 2);
        assert_eq!(side.waiting(), 6);
        // The receiver ran both: room for two more, not for everything.
        let later = now + Duration::from_millis(1);
        let answer = side.on_status(2, peer(2), &status(3, &[]), later).unwrap();
        assert!(answer.opened);
        let (sent, next) = drain(&mut side, later);
        assert_eq!((sent.len(), next), (2, Transmit::Wait));
        // A receiver that leaves holds nothing back.
        assert!(side.left(2));
        let (sent, next) = drain(&mut side, later);
        assert_eq!((sent.len(), next), (4, Transmit::Idle));
    }

    #[test]
    fn a_silent_receiver_is_no_longer_waited_for() {
        let now = Instant::now();
        let mut side = SendSide::new(1, 30_000, config(64 * 1024), now);
        side.heard(2, peer(2), true, now);
        queue(&mut side, &calls(4, 29_000));
        side.seal(true);
        assert_eq!(drain(&mut side, now).1, Transmit::Wait);
        // Heartbeats while it lags, first soon after the last datagram.
        let tick = side.tick(now + Duration::from_millis(6));
        assert!(tick.heartbeat.is_some() && tick.active);
        assert!(tick.expired.changes.is_empty());
        // Past the expiry it is forgotten, and the rest goes.
        let late = now + PEER_EXPIRY + Duration::from_secs(1);
        let tick = side.tick(late);
        assert_eq!(tick.expired.last_sent, 2);
        assert!(
            matches!(tick.expired.changes.as_slice(), [Review::Gone(2, _)]),
            "{:?}",
            tick.expired.changes
        );
        let (sent, next) = drain(&mut side, late);
        assert_eq!((sent.len(), next), (2, Transmit::Idle));
        let (settled, _) = side.settled(late);
        assert!(settled, "no receiver left to wait for");
    }

    #[test]
    fn a_lagging_receiver_keeps_the_sender_lingering_until_it_has_run_everything() {
        let now = Instant::now();
        let mut side = SendSide::new(1, 1200, config(1 << 20), now);
        side.heard(2, peer(2), true, now);
        queue(&mut side, &calls(3, 100));
        side.seal(true);
        let (sent, _) = drain(&mut side, now);
        assert_eq!(sent.len(), 1);
        assert!(!side.settled(now).0);
        side.on_status(2, peer(2), &status(2, &[]), now).unwrap();
        assert!(side.settled(now).0);
    }

    #[test]
    fn missing_datagrams_are_resent_and_those_let_go_answered_with_the_position() {
        let now = Instant::now();
        let mut side = SendSide::new(1, 1200, config(1 << 20), now);
        side.heard(2, peer(2), true, now);
        queue(&mut side, &calls(40, 100));
        side.seal(true);
        let (sent, _) = drain(&mut side, now);
        assert!(sent.len() >= 3);
        let later = now + Duration::from_millis(10);
        let answer = side
            .on_status(2, peer(2), &status(1, &[(2, 3)]), later)
            .unwrap();
        assert_eq!(answer.resend, vec![sent[1].clone(), sent[2].clone()]);
        assert_eq!(answer.resent_range, Some((2, 3, 2)));
        assert_eq!(answer.position, None, "it holds them");
        // Asked for what was never sent: the position, at most once per gap.
        let never = side.stream().next() + 5;
        let ask = status(1, &[(never, never)]);
        let answer = side.on_status(2, peer(2), &ask, later).unwrap();
        assert_eq!(answer.position, Some(side.stream().position()));
        let answer = side.on_status(2, peer(2), &ask, later).unwrap();
        assert_eq!(answer.position, None, "within the gap");
        let answer = side
            .on_status(2, peer(2), &ask, later + POSITION_ANSWER_GAP)
            .unwrap();
        assert!(answer.position.is_some());
    }

    #[test]
    fn statuses_from_unknown_nodes_ask_who_is_there_at_most_once_per_gap() {
        let now = Instant::now();
        let mut side = SendSide::new(1, 1200, config(1 << 20), now);
        let from_stranger = |side: &mut SendSide, at| {
            side.on_status(9, peer(9), &status(1, &[]), at)
                .unwrap()
                .ask_who_is_there
        };
        assert!(from_stranger(&mut side, now));
        assert!(!from_stranger(&mut side, now + Duration::from_millis(50)));
        assert!(from_stranger(&mut side, now + QUERY_GAP));
        // Other refusals are refusals: a status of another node's stream.
        side.heard(2, peer(2), true, now);
        let other = Status {
            stream: 5,
            ..status(1, &[])
        };
        assert_eq!(
            side.on_status(2, peer(2), &other, now),
            Err(StatusRefused::OtherStream(5))
        );
    }
}
