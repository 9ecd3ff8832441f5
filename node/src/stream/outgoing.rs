//! Where the calls a node's guests and plugins send go: into the node's stream to the
//! group (numbered, packed into sequenced datagrams, paced by the window, kept for
//! repair), and to the node's own guests that serve them ("call once, execute many"
//! includes the caller's node).
//!
//! An [`Outgoing`] is shared by the event loop and the plugins it runs, by the guests'
//! workers (a guest in a tight loop flushes its calls before it returns, and waits there
//! while the window is full: back-pressure, never a dropped call), by the network thread
//! (which tells it of announcements and goodbyes, the receivers' liveness) and by the
//! *stream thread*, which hears receivers' statuses sent to the node alone, resends
//! what they miss, answers what is gone with the stream's position, and sends
//! heartbeats.
//!
//! What to transmit and when is the protocol's [`SendSide`] (batching, the queue in front
//! of the window, answers to statuses, heartbeats), tested without a socket; this is its
//! driver: the lock the threads share, the condition variable senders wait on for room,
//! the turn that keeps datagrams leaving in the order numbered, the [`Transport`] (the
//! multicast group or a Zenoh network), the clock.

use super::StreamConfig;
use super::send::{Review, StatusRefused};
use super::send_side::{Expired, SendSide, Transmit};
use crate::auth::{self, Arrival, Gate, ReplayGuard, Unopened};
use crate::transport::Transport;
use dhost_protocol::wire::{self, Frame, Status};
use dhost_runtime::guest::network::{CallSender, Patience, Stopped};
use dhost_runtime::guest::outbox::Outbox;
use dhost_runtime::stats::{DropLog, Stats};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError, RwLock};
use std::time::{Duration, Instant};

/// How often the stream thread wakes when nothing is due, to forget silent receivers and
/// old datagrams.
const IDLE_TICK: Duration = Duration::from_millis(100);

/// The most bytes a stream position frame takes.
const POSITION_FRAME_MAX: usize = 1 + 1 + 9 + 9;

/// Whether this node serves a function itself (its guests' and plugins' functions, by id
/// or, for calls from C plugins, by bare name).
pub type ServesLocally = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// What the lock guards.
struct Inner {
    /// What to transmit and when.
    side: SendSide,
    drops: DropLog,
}

/// The sending side of a node (see the module's documentation).
pub struct Outgoing {
    id: u64,
    max_datagram: usize,
    /// What every datagram leaves through (and statuses come in through).
    gate: Arc<Gate>,
    /// What the datagrams travel over (none: the node keeps its calls to itself).
    network: OnceLock<Arc<dyn Transport>>,
    inner: Mutex<Inner>,
    /// Signalled when the window may have opened.
    room: Condvar,
    /// Held while a numbered datagram is sent, so that datagrams leave in order.
    send_turn: Mutex<()>,
    stopping: Arc<AtomicBool>,
    serves: RwLock<ServesLocally>,
    stats: Arc<Stats>,
    /// Whether the stream thread sleeps its long sleep (nothing to send heartbeats for).
    stream_thread_idle: AtomicBool,
}

impl std::fmt::Debug for Outgoing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outgoing").field("id", &self.id).finish()
    }
}

impl Outgoing {
    /// The sending side of node `id`, in datagrams of at most `max_datagram` bytes sealed
    /// by `gate`, as `config` says; waits for room only until `stopping` is set. It sends
    /// nothing until [`Self::attach`] gives it a transport: calls only reach this node's
    /// own guests.
    pub fn new(
        id: u64,
        max_datagram: usize,
        gate: Arc<Gate>,
        config: StreamConfig,
        stopping: Arc<AtomicBool>,
        stats: Arc<Stats>,
    ) -> Self {
        let now = Instant::now();
        Outgoing {
            id,
            max_datagram,
            gate,
            network: OnceLock::new(),
            inner: Mutex::new(Inner {
                side: SendSide::new(id, max_datagram, config, now),
                drops: DropLog::new(),
            }),
            room: Condvar::new(),
            send_turn: Mutex::new(()),
            stopping,
            serves: RwLock::new(Arc::new(|_: &str| false)),
            stats,
            stream_thread_idle: AtomicBool::new(false),
        }
    }

    /// Sends through `transport` from now on (and hears statuses through it).
    pub fn attach(&self, transport: Arc<dyn Transport>) {
        let _ = self.network.set(transport);
    }

    /// What the node's datagrams leave through, and come in through.
    pub fn gate(&self) -> &Gate {
        &self.gate
    }

    /// Whether the node is on the group (it has a transport: else it keeps its calls to
    /// itself).
    pub fn on_group(&self) -> bool {
        self.network.get().is_some()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Says which functions the node serves itself: `serves` tells them from the others
    /// (for the calls its guests send to them), `functions` lists them (for a transport
    /// that routes calls by function).
    pub fn set_serves(&self, serves: ServesLocally, functions: &[String]) {
        *self.serves.write().unwrap_or_else(PoisonError::into_inner) = serves;
        if let Some(network) = self.network.get() {
            network.serve(functions);
        }
    }

    /// Numbers, keeps and sends the pending datagrams, each when the window has room for
    /// it; what `patience` does not leave time for stays pending.
    fn transmit<'a>(
        &'a self,
        mut inner: MutexGuard<'a, Inner>,
        patience: Patience,
    ) -> Result<Duration, Stopped> {
        let Some(network) = self.network.get() else {
            inner.side.discard_waiting();
            return Ok(Duration::ZERO);
        };
        let mut waited = Duration::ZERO;
        loop {
            let bytes = match inner.side.poll_transmit(Instant::now()) {
                Transmit::Send(bytes) => bytes,
                Transmit::Idle => break,
                Transmit::Wait => {
                    let now = Instant::now();
                    let stopping = self.stopping.load(Ordering::Relaxed);
                    let Some(wait) = patience.wait(stopping, now) else {
                        return Err(Stopped {
                            datagrams: inner.side.waiting(),
                        });
                    };
                    inner = self
                        .room
                        .wait_timeout(inner, wait)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                    let after = Instant::now();
                    waited += after - now;
                    say_expired(inner.side.expire(after));
                    continue;
                }
            };
            // Sent without the lock (the stream thread and the network thread need it), but
            // in the order numbered: the turn to send is taken before the lock is let go,
            // so a thread that numbers the next datagram waits for this one to leave
            // (guests' workers and the event loop all send).
            let turn = self
                .send_turn
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            drop(inner);
            self.to_group(network.as_ref(), &bytes, &self.stats.datagrams_sent);
            drop(turn);
            if self.stream_thread_idle.swap(false, Ordering::Relaxed) {
                // The stream thread sleeps long while nothing is sent: wake it for the
                // heartbeats this datagram may need.
                network.wake();
            }
            inner = self.lock();
        }
        Ok(waited)
    }

    /// The most bytes of control frames one control datagram carries.
    pub fn max_control_frames(&self) -> usize {
        let mut header = Vec::new();
        wire::encode_header(self.id, None, &mut header);
        self.max_datagram - header.len() - POSITION_FRAME_MAX
    }

    /// Sends `frames` (encoded control frames: announcements, queries, goodbyes) to the
    /// group in one control datagram, after the stream's position: every control datagram
    /// is a heartbeat, and the first ones tell the receivers that the stream starts at 1
    /// (so that the loss of its first datagrams is seen and repaired).
    pub fn send_control(&self, frames: &[u8]) {
        let Some(network) = self.network.get() else {
            return;
        };
        let position = self.lock().side.stream().position();
        self.control_to_group(network.as_ref(), position, frames);
    }

    /// Sends a control datagram to the group: the stream's `position`, then `frames`.
    fn control_to_group(&self, network: &dyn Transport, position: wire::Position, frames: &[u8]) {
        let mut datagram = Vec::with_capacity(frames.len() + 64);
        wire::encode_header(self.id, None, &mut datagram);
        wire::encode_position(position, &mut datagram);
        datagram.extend_from_slice(frames);
        self.to_group(network, &datagram, &self.stats.datagrams_sent);
    }

    /// Sends `status` to the sender at `to` alone.
    pub fn send_status(&self, to: SocketAddr, status: &Status) {
        let Some(network) = self.network.get() else {
            return;
        };
        let mut datagram = Vec::with_capacity(64);
        wire::encode_header(self.id, None, &mut datagram);
        wire::encode_status(status, &mut datagram);
        if let Err(e) = network.to_node(to, &self.gate.seal(&datagram, true)) {
            tracing::debug!("cannot send a status to {to}: {e}");
        }
    }

    /// Node `id` sent a control datagram from `from`: it is alive. If it `announced`
    /// itself, it is a receiver (from the stream's current position if it is new), whose
    /// statuses must come from that address.
    pub fn heard(&self, id: u64, from: SocketAddr, announced: bool) {
        self.lock().side.heard(id, from, announced, Instant::now());
    }

    /// Node `id` said goodbye: it no longer holds the window back.
    pub fn left(&self, id: u64) {
        if self.lock().side.left(id) {
            self.room.notify_all();
        }
    }

    /// Waits until every live receiver has run everything sent, or `deadline`; whether
    /// they have.
    pub fn linger(&self, deadline: Instant) -> bool {
        if self.network.get().is_none() {
            return true;
        }
        let mut inner = self.lock();
        loop {
            let now = Instant::now();
            let (settled, expired) = inner.side.settled(now);
            say_expired(expired);
            if settled {
                return true;
            }
            let Some(wait) = Patience::Until(deadline).wait(false, now) else {
                return false;
            };
            inner = self
                .room
                .wait_timeout(inner, wait)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Starts the stream thread, if the node has a transport: it hears statuses, resends, and
    /// sends heartbeats, for as long as the process runs.
    pub fn start_stream_thread(self: &Arc<Self>) -> std::io::Result<()> {
        if self.network.get().is_none() {
            return Ok(());
        }
        let this = Arc::clone(self);
        std::thread::Builder::new()
            .name("dhost-stream".into())
            .spawn(move || this.hear_statuses())
            .map(drop)
    }

    /// The stream thread's loop.
    fn hear_statuses(&self) {
        let Some(network) = self.network.get() else {
            return;
        };
        let mut buf = vec![0u8; 65_536];
        let mut replay = ReplayGuard::new(auth::datagram::REPLAY_MEMORY);
        let network = network.as_ref();
        let mut timeout = IDLE_TICK;
        loop {
            match network.for_node(&mut buf, timeout) {
                Ok(Some((len, from))) => {
                    self.on_control(network, &mut buf[..len], from, &mut replay)
                }
                Ok(None) => {}
                Err(e) => {
                    // (An ICMP error for a status sent earlier, for one.)
                    tracing::debug!("hearing statuses from {}: {e}", network.describe());
                }
            }
            timeout = self.tick(network, Instant::now());
        }
    }

    /// A datagram sent to this node alone: statuses of its stream.
    fn on_control(
        &self,
        network: &dyn Transport,
        bytes: &mut [u8],
        from: SocketAddr,
        replay: &mut ReplayGuard,
    ) {
        if bytes.is_empty() {
            return; // a wake-up (see `transmit`)
        }
        let len = bytes.len();
        let now = Instant::now();
        let header = wire::read_header(&mut &*bytes);
        let opened = header.map_err(Unopened::from).and_then(|header| {
            let arrival = Arrival::to_node(from);
            let frames = self
                .gate
                .open_frames(&header, bytes, arrival, replay, now)?;
            if header.seq.is_some() {
                return Err(Unopened::Malformed(wire::WireError::Shape {
                    what: "status",
                    why: "it came in a sequenced datagram".to_string(),
                }));
            }
            Ok((header.sender, frames))
        });
        let mut inner = self.lock();
        let (sender, frames) = match opened {
            Ok(opened) => opened,
            Err(why) => {
                return auth::note_unopened(&self.stats, &mut inner.drops, from, len, &why);
            }
        };
        // What to send once the lock is released: resends, and the position.
        let mut resends = Vec::new();
        let mut position = None;
        let mut query = false;
        for frame in frames {
            let Frame::Status(status) = frame else {
                continue; // nothing else is sent to a node alone
            };
            let answer = match inner.side.on_status(sender, from, &status, now) {
                Ok(answer) => answer,
                Err(refused) => {
                    inner.drops.dropped(format_args!(
                        "a status from {from} ({sender:016x}): {refused}"
                    ));
                    continue;
                }
            };
            if answer.ask_who_is_there {
                // A receiver whose announcement was lost, or not sent yet (nodes that
                // start together hear each other's streams before their names)? Ask the
                // group who is there (its answer makes it a receiver).
                query = true;
                tracing::info!(
                    "{} (yet), from {from} ({sender:016x}): asking the group who is there",
                    StatusRefused::NotAPeer
                );
            }
            if let Some((first, last, count)) = answer.resent_range {
                tracing::debug!("resending {count} datagram(s) to {from} ({first} to {last})");
            }
            resends.extend(answer.resend);
            if answer.position.is_some() {
                position = answer.position;
            }
            if answer.opened {
                self.room.notify_all();
            }
        }
        drop(inner);
        for bytes in resends {
            self.to_group(network, &bytes, &self.stats.datagrams_resent);
        }
        if let Some(position) = position {
            self.control_to_group(network, position, &[]);
        }
        if query {
            let mut frame = Vec::new();
            wire::encode_query(&mut frame);
            self.send_control(&frame);
        }
    }

    /// Seals `bytes` and sends them to the group, counting it in `counter` (or as an
    /// error).
    fn to_group(&self, network: &dyn Transport, bytes: &[u8], counter: &AtomicU64) {
        match network.to_group(bytes, &self.gate) {
            Ok(()) => Stats::bump(counter),
            Err(e) => {
                Stats::bump(&self.stats.send_errors);
                tracing::warn!(
                    "cannot send a datagram of {} bytes to {}: {e}",
                    bytes.len(),
                    network.describe()
                );
            }
        }
    }

    /// What is due on the stream thread: receivers to forget, old datagrams to drop, a
    /// heartbeat. Returns how long it may sleep.
    fn tick(&self, network: &dyn Transport, now: Instant) -> Duration {
        let mut inner = self.lock();
        let tick = inner.side.tick(now);
        // While a heartbeat may be due, look often; else rarely (two values, so that the
        // multicast socket's timeout is seldom set anew). Said before the lock is let go: a sender
        // that records a datagram next then sees the stream thread idle, and wakes it.
        self.stream_thread_idle
            .store(!tick.active, Ordering::Relaxed);
        drop(inner);
        say_expired(tick.expired);
        let heartbeat = tick.heartbeat;
        let sleep = if tick.active {
            super::send::HEARTBEAT_FIRST
        } else {
            IDLE_TICK
        };
        if let Some(position) = heartbeat {
            self.control_to_group(network, position, &[]);
        }
        // The room may have opened (a receiver expired): let waiting senders look.
        self.room.notify_all();
        sleep
    }
}

/// A guest's or plugin's calls go into the node's stream (see the module's documentation).
impl CallSender for Outgoing {
    fn send(&self, sent: &mut Outbox, local: &mut Outbox) -> Result<Duration, Stopped> {
        if sent.is_empty() {
            return Ok(Duration::ZERO); // (after every call into a guest that sent nothing)
        }
        let serves = self
            .serves
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let networked = self.on_group();
        // (Counted before the stream's lock is taken: the counters have a lock of their own.)
        for (function, calls) in sent.runs() {
            Stats::add(&self.stats.functions.of(function).sent, calls.len() as u64);
        }
        let mut inner = self.lock();
        for (function, calls) in sent.runs() {
            if networked {
                inner.side.queue_calls(function, calls.clone(), |e| {
                    tracing::error!("cannot send a call to {function}: {e}")
                });
            }
            if serves(function) {
                for args in calls {
                    local.push_encoded(function, args);
                }
            }
        }
        sent.clear();
        if !inner.side.seal(false) {
            return Ok(Duration::ZERO);
        }
        self.transmit(inner, Patience::UntilStopping)
    }

    fn flush(&self, patience: Patience) -> Result<Duration, Stopped> {
        let mut inner = self.lock();
        if inner.side.is_empty() {
            return Ok(Duration::ZERO);
        }
        inner.side.seal(true);
        self.transmit(inner, patience)
    }
}

/// Says which receivers the sender stopped waiting for.
fn say_expired(expired: Expired) {
    let sent = expired.last_sent;
    for change in expired.changes {
        match change {
            Review::Gone(id, receiver) => tracing::info!(
                "receiver {id:016x} not heard from for {}: no longer waited for (it had run \
                 up to datagram {} of {sent})",
                humantime::format_duration(dhost_protocol::membership::PEER_EXPIRY),
                receiver.delivered.saturating_sub(1),
            ),
            Review::Stalled(id, receiver) => tracing::warn!(
                "receiver {id:016x} has reported nothing for {} while {} datagram(s) behind \
                 (stopped, or held up by a slow guest): no longer waited for until \
                 it reports again",
                humantime::format_duration(super::send::STALL_AFTER),
                sent + 1 - receiver.delivered,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dhost_runtime::guest::network::{CallSender, Patience};
    use dhost_runtime::guest::outbox::Outbox;

    #[test]
    fn calls_to_functions_this_node_serves_are_copied_for_its_own_guests() {
        let outgoing = Outgoing::new(
            7,
            wire::MAX_DATAGRAM,
            Arc::new(Gate::new(None, false)),
            StreamConfig::default(),
            Arc::new(AtomicBool::new(false)),
            Arc::new(Stats::default()),
        );
        outgoing.set_serves(
            Arc::new(|function: &str| function == "a:b/c#mine"),
            &["a:b/c#mine".to_string()],
        );
        let mut sent = Outbox::default();
        let mut args = Vec::new();
        wire::encode_item(&ciborium::Value::Array(vec![1.into()]), &mut args);
        for function in ["a:b/c#mine", "a:b/c#theirs", "a:b/c#mine"] {
            sent.push_encoded(function, &args);
        }
        let mut local = Outbox::default();
        // (No transport: nothing leaves, and nothing waits.)
        assert_eq!(
            outgoing.send(&mut sent, &mut local).ok(),
            Some(Duration::ZERO)
        );
        assert!(sent.is_empty(), "taken");
        let runs: Vec<(String, usize)> = local
            .runs()
            .map(|(function, calls)| (function.to_string(), calls.count()))
            .collect();
        assert_eq!(runs, [("a:b/c#mine".to_string(), 2)]);
        assert_eq!(
            outgoing.flush(Patience::UntilStopping).ok(),
            Some(Duration::ZERO)
        );
    }
}
