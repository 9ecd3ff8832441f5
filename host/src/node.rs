//! The node's event loop: it owns the guests, the routing table from function ids to the
//! guests that export them, and the receiving side of the peers' streams, and runs on one
//! thread of its own.
//!
//! One *turn* of the loop takes every event waiting (datagrams decoded by the network
//! thread, stdin lines), fires due timers and ready pollables, delivers locally the calls
//! the node's own guests sent, reports to the peers how far it has run their streams (and
//! asks for what it misses), and finally flushes what its guests sent to the group. The
//! calls sent while handling one event are flushed as soon as it is handled, so that a
//! long queue does not hold back what a peer may be waiting for. A call a guest sends
//! while it runs is only recorded (or, for a long burst, sent before it returns: see
//! [`crate::stream::outgoing`]), and delivered locally after it returns: a guest is never
//! re-entered. A call reaches each node once, the sender's own included: locally from the
//! outgoing queue, and the copy that multicast loops back is recognised by the sender id
//! and skipped.

use crate::guest::calls::{Calls, PeerEntry};
use crate::guest::native::{self, NativePlugin};
use crate::guest::outbox::Outbox;
use crate::guest::wasm::{WasmGuest, into_reply};
use crate::guest::world::EventInterface;
use crate::membership::{Change, Membership, NameTaken, PEER_EXPIRY};
use crate::modules::ModuleService;
use crate::modules::loader::ModuleChange;
use crate::rpc::server::IncomingCall;
use crate::rpc::{CallFailure, FailureKind, Outcome, PoolHandle};
use crate::stats::{DropLog, Stats};
use crate::stream::outgoing::{Outgoing, Patience};
use crate::stream::receive::{Counts, Delivered, Meta, ReceiveStreams};
use crate::wire::{self, Announce, Datagram, Frame, StreamCounts};
use ciborium::Value;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::time::{Duration, Instant};
use wasmtime::component::Val;

/// How long a starting node listens for another node announcing its name.
const CLAIM_WAIT: Duration = Duration::from_millis(150);

/// When a starting node asks the group who is there a second time.
const QUERY_AGAIN: Duration = Duration::from_millis(60);

/// How often watched pollables are checked while any guest watches one.
const READINESS_INTERVAL: Duration = Duration::from_millis(10);

/// The most events taken in one turn before the turn is finished (and the batch flushed).
const MAX_EVENTS_PER_TURN: usize = 1024;

/// The most peers whose connection counts an announcement lists.
const MAX_LINKS_ANNOUNCED: usize = 64;

/// How long a stopping node waits for its receivers to run what it sent.
pub const LINGER: Duration = Duration::from_secs(3);

/// The most streams of peers gone that the closing summary still names.
const MAX_STREAMS_REMEMBERED: usize = 64;

/// What the network and stdin threads hand the event loop.
#[derive(Debug)]
pub enum Event {
    /// A well-formed datagram from the group.
    Datagram {
        /// Where it came from.
        from: SocketAddr,
        /// Its header and frames.
        datagram: Datagram,
        /// Its size in bytes.
        len: usize,
    },
    /// A call from the node's TCP port.
    Call(Box<IncomingCall>),
    /// A line of the node's stdin.
    StdinLine(String),
    /// Run, replace or stop a published module.
    Module(ModuleChange),
    /// A descriptor a native plugin watches is ready.
    FdReady {
        /// The descriptor.
        fd: i32,
        /// The epoll events.
        events: u32,
    },
    /// Stop: finish the turn and return.
    Shutdown,
}

/// Where a call came from.
#[derive(Debug, Clone, Copy)]
enum Origin {
    /// A guest of this node.
    Local,
    /// Another node: its address and sender id.
    Remote(SocketAddr, u64),
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Local => f.write_str("this node"),
            Origin::Remote(addr, _) => write!(f, "{addr}"),
        }
    }
}

/// A local guest's exported function: guest index and export slot.
type Route = (usize, usize);

/// The function ids a node serves: its guests' routes, its `natives` native plugins', and
/// the mailbox functions if it serves mailboxes.
fn served(routes: &HashMap<String, Vec<Route>>, natives: usize, calls: &Calls) -> Vec<String> {
    let native_functions = (0..natives).flat_map(NativePlugin::functions);
    let mailboxes = [
        crate::mailbox::READ_FUNCTION,
        crate::mailbox::WRITE_FUNCTION,
    ]
    .into_iter()
    .filter(|_| calls.serves_mailboxes())
    .map(str::to_string);
    let mut served: Vec<String> = routes
        .keys()
        .cloned()
        .chain(native_functions)
        .chain(mailboxes)
        .collect();
    served.sort();
    served.dedup();
    served
}

/// How often a guest may fail within [`RESTART_WINDOW`] and still be restarted.
const MAX_RESTARTS: usize = 5;

/// The window over which a guest's failures are counted.
const RESTART_WINDOW: Duration = Duration::from_secs(60);

/// The pause before restarting a guest after its `failures`-th recent failure: none the
/// first time, then 100 ms, doubling, up to 5 s.
fn restart_pause(failures: usize) -> Duration {
    match failures {
        0 | 1 => Duration::ZERO,
        n => Duration::from_millis(100u64 << (n - 2).min(6)).min(Duration::from_secs(5)),
    }
}

/// A guest's recent failures, and when it restarts if it is waiting to.
#[derive(Debug, Default)]
struct Health {
    failures: VecDeque<Instant>,
    restart_at: Option<Instant>,
}

/// The event loop's state.
pub struct Node {
    id: u64,
    membership: Membership,
    /// Set when a node that was up longer announces this node's name.
    name_taken: Option<NameTaken>,
    guests: Vec<Option<WasmGuest>>,
    health: Vec<Health>,
    routes: HashMap<String, Vec<Route>>,
    /// The exported functions by their bare name (the part after `#`), for calls from C
    /// plugins, which know no interface.
    bare_routes: HashMap<String, Vec<Route>>,
    /// The native plugins, kept so that their code stays loaded.
    natives: Vec<NativePlugin>,
    /// Where the calls the guests and plugins send go: the group, and this node.
    outgoing: Arc<Outgoing>,
    /// An encoded control frame being built.
    frame: Vec<u8>,
    /// Calls sent by this node's guests and plugins to functions it serves itself,
    /// delivered at the end of the turn.
    local: Outbox,
    /// An emptied outbox, handed to a guest for its next calls when its calls are taken.
    spare: Outbox,
    /// The peers' streams, as this node receives them.
    streams: ReceiveStreams<Datagram>,
    /// What was received of the streams of peers gone, by name, for the closing summary.
    gone_streams: VecDeque<(String, Counts)>,
    /// Whether the last turn took every event waiting (peers are judged silent only then).
    caught_up: bool,
    stats: Arc<Stats>,
    drops: DropLog,
    /// What the guests share to make calls with replies (the node keeps its peers fresh).
    calls: Arc<Calls>,
    /// The node's TCP port, announced.
    tcp: Option<SocketAddr>,
    /// The pool of connections to peers, whose counts are announced.
    pool: Option<PoolHandle>,
    /// The published modules it takes, whose publications are announced.
    modules: Option<Arc<ModuleService>>,
    /// The guests that are published modules, by name: their slots in `guests`.
    published: HashMap<String, usize>,
}

/// Where the node is reachable and how it calls out, for [`Node::new`].
#[derive(Debug, Clone, Default)]
pub struct Links {
    /// How many bytes of a peer's stream, beyond what it has run, the node can take (what
    /// its receive buffer holds).
    pub receive_window: u64,
    /// The node's TCP port.
    pub tcp: Option<SocketAddr>,
    /// Its pool of connections to peers.
    pub pool: Option<PoolHandle>,
    /// What takes published modules (`--accept-modules`).
    pub modules: Option<Arc<ModuleService>>,
}

impl Node {
    /// A node with id `id` (the sender id of its datagrams) hosting `guests`, sending what
    /// they send through `outgoing`, and taking calls as `links` say. `calls` is what the
    /// guests were loaded with.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: u64,
        name: &str,
        natives: Vec<NativePlugin>,
        guests: Vec<WasmGuest>,
        outgoing: Arc<Outgoing>,
        stats: Arc<Stats>,
        calls: Arc<Calls>,
        links: Links,
    ) -> Self {
        let mut node = Node {
            id,
            membership: Membership::new(id, name, Vec::new()),
            name_taken: None,
            health: guests.iter().map(|_| Health::default()).collect(),
            guests: guests.into_iter().map(Some).collect(),
            routes: HashMap::new(),
            bare_routes: HashMap::new(),
            natives,
            outgoing,
            frame: Vec::new(),
            local: Outbox::default(),
            spare: Outbox::default(),
            streams: ReceiveStreams::new(links.receive_window),
            gone_streams: VecDeque::new(),
            caught_up: true,
            stats,
            drops: DropLog::new(),
            calls,
            tcp: links.tcp,
            pool: links.pool,
            modules: links.modules,
            published: HashMap::new(),
        };
        node.reroute();
        node
    }

    /// Finds again which guest serves each function (a guest was loaded or unloaded), and
    /// tells the guests' calls, the outgoing queue and the peers.
    fn reroute(&mut self) {
        let mut routes: HashMap<String, Vec<Route>> = HashMap::new();
        for (g, guest) in self.guests.iter().enumerate() {
            let Some(guest) = guest else { continue };
            for (slot, export) in guest.exports().iter().enumerate() {
                routes
                    .entry(export.function.id.clone())
                    .or_default()
                    .push((g, slot));
            }
        }
        let mut bare_routes: HashMap<String, Vec<Route>> = HashMap::new();
        for (id, targets) in &routes {
            if let Some((_, name)) = id.rsplit_once('#') {
                bare_routes
                    .entry(name.to_string())
                    .or_default()
                    .extend(targets);
            }
        }
        let local = routes
            .iter()
            .map(|(id, targets)| {
                let servers = targets
                    .iter()
                    .filter_map(|&(g, slot)| Some(self.guests[g].as_ref()?.local_server(slot)))
                    .collect();
                (id.clone(), servers)
            })
            .collect();
        self.calls.set_local(local);
        self.routes = routes;
        self.bare_routes = bare_routes;
        self.tell_outgoing_what_is_served();
        self.membership
            .set_functions(served(&self.routes, self.natives.len(), &self.calls));
    }

    /// Tells [`Outgoing`] which functions this node serves itself (so that it runs the
    /// calls its own guests send to them).
    fn tell_outgoing_what_is_served(&self) {
        let (routes, bare_routes) = (self.routes.clone(), self.bare_routes.clone());
        self.outgoing.set_serves(Arc::new(move |function: &str| {
            routes_for(&routes, &bare_routes, function).is_some() || native::serves(function)
        }));
    }

    /// Claims the node's name on the group, runs the guests' `init` hooks, then a WASI
    /// command to its end (returning its exit status) or, without one, the event loop until
    /// [`Event::Shutdown`] or `stopping` (returning 0). Fails when the name is taken.
    pub fn run(mut self, events: Receiver<Event>, stopping: &AtomicBool) -> anyhow::Result<i32> {
        native::run_plugins_on_this_thread(self.outgoing.clone());
        let held = self.claim_name(&events)?;
        // The name is this node's: its peers hear of it before its guests start (a guest
        // may send for long in its `init`).
        if self.outgoing.on_group() && self.membership.announce_due(Instant::now()) {
            self.announce();
        }
        // Calls native plugins made while they were loaded (in their init).
        self.collect_native_sent();
        for g in 0..self.guests.len() {
            self.call_event(g, EventInterface::Lifecycle, &[]);
        }
        self.finish_turn();
        if let Some(g) = self
            .guests
            .iter()
            .position(|g| g.as_ref().is_some_and(WasmGuest::is_command))
        {
            let code = self.run_command(g);
            self.say_goodbye();
            return Ok(code);
        }
        for event in held {
            if !self.handle(event) {
                return Ok(self.stop());
            }
        }
        loop {
            let first = if self.local.is_empty() {
                match events.recv_timeout(self.idle_timeout()) {
                    Ok(event) => Some(event),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => return Ok(self.stop()),
                }
            } else {
                match events.try_recv() {
                    Ok(event) => Some(event),
                    Err(TryRecvError::Empty) => None,
                    Err(TryRecvError::Disconnected) => return Ok(self.stop()),
                }
            };
            let mut next = first;
            let mut taken = 0;
            while let Some(event) = next {
                if !self.handle(event) {
                    return Ok(self.stop());
                }
                // What the guests sent in answer to this event leaves now, not after the
                // rest of the queue: a peer may be waiting for it (a reply, a progress
                // report that opens a sender's window).
                self.flush();
                taken += 1;
                next = if taken < MAX_EVENTS_PER_TURN {
                    events.try_recv().ok()
                } else {
                    None
                };
            }
            // (The turn ended because nothing was waiting, not at the turn's limit.)
            self.caught_up = taken < MAX_EVENTS_PER_TURN;
            self.restart_due();
            self.fire_timers();
            self.check_readiness();
            self.finish_turn();
            if let Some(taken) = self.name_taken.take() {
                return Err(taken.into());
            }
            if stopping.load(Ordering::Relaxed) {
                return Ok(self.stop());
            }
        }
    }

    /// Asks the group who is there and listens for [`CLAIM_WAIT`]: if a node that is up
    /// already announces this node's name, the name is taken. Returns the events that
    /// arrived meanwhile, to handle once the guests are initialised.
    fn claim_name(&mut self, events: &Receiver<Event>) -> anyhow::Result<Vec<Event>> {
        if !self.outgoing.on_group() {
            return Ok(Vec::new());
        }
        // (It announces itself only once the name is its own: a node refused its name was
        // never anyone's peer, nor a receiver their windows wait for.) It asks twice, so
        // that one lost answer does not hide a peer: the peers are the receivers its
        // window waits for.
        self.frame.clear();
        wire::encode_query(&mut self.frame);
        self.outgoing.send_control(&self.frame);
        let started = Instant::now();
        let (again, deadline) = (started + QUERY_AGAIN, started + CLAIM_WAIT);
        let mut asked_again = false;
        let mut held = Vec::new();
        loop {
            let now = Instant::now();
            if !asked_again && now >= again {
                self.outgoing.send_control(&self.frame);
                asked_again = true;
            }
            if now >= deadline {
                break;
            }
            let wake = if asked_again { deadline } else { again };
            let event = match events.recv_timeout(wake.saturating_duration_since(now)) {
                Ok(event) => event,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            if let Event::Datagram { from, datagram, .. } = &event {
                for frame in &datagram.frames {
                    if let Frame::Announce(a) = frame {
                        let change = self.membership.on_announce(
                            datagram.header.sender,
                            *from,
                            a.clone(),
                        )?;
                        if change == Change::Joined {
                            tracing::info!("peer {} ({from}) joined", a.name);
                        }
                    }
                }
            }
            held.push(event);
        }
        Ok(held)
    }

    /// Sends what is left, waits (at most [`LINGER`]) for the receivers to run it, says
    /// goodbye and says what the node received of each peer: the node is stopping.
    fn stop(&mut self) -> i32 {
        self.finish_turn();
        self.say_goodbye();
        0
    }

    fn say_goodbye(&mut self) {
        if self.outgoing.on_group() {
            let deadline = Instant::now() + LINGER;
            if let Err(stopped) = self.outgoing.flush(Patience::Until(deadline)) {
                tracing::warn!("{stopped}");
            }
            if !self.outgoing.linger(deadline) {
                tracing::warn!(
                    "stopping before every receiver ran all this node sent (waited {})",
                    humantime::format_duration(LINGER)
                );
            }
            self.frame.clear();
            wire::encode_goodbye(&mut self.frame);
            self.outgoing.send_control(&self.frame);
        }
        self.say_what_was_received();
    }

    /// Logs, per peer, the calls received, repaired and lost (at info level: the closing
    /// summary).
    fn say_what_was_received(&self) {
        for (peer, counts) in self.stream_counts() {
            tracing::info!(
                "from {}: {} calls received ({} repaired), {} lost ({} datagrams); {} \
                 duplicate datagrams",
                peer.peer,
                peer.received,
                peer.repaired,
                peer.lost,
                counts.lost_datagrams,
                counts.duplicates
            );
        }
    }

    /// How logs and announcements name node `id`: by the name it announces, or, if it
    /// never did, by its id in hex.
    fn peer_label(&self, id: u64) -> String {
        self.membership
            .peer_name(id)
            .map_or_else(|| format!("{id:016x}"), str::to_string)
    }

    /// What this node received of each stream, followed or gone, by peer name (a sender
    /// that never announced itself by its id).
    fn stream_counts(&self) -> Vec<(StreamCounts, Counts)> {
        let mut all: Vec<(StreamCounts, Counts)> = self
            .streams
            .counts()
            .map(|(id, c)| (self.peer_label(id), c))
            .chain(self.gone_streams.iter().cloned())
            .map(|(peer, c)| {
                let shown = StreamCounts {
                    peer,
                    received: c.received,
                    repaired: c.repaired,
                    lost: c.lost,
                };
                (shown, c)
            })
            .collect();
        all.sort_by(|a, b| a.0.peer.cmp(&b.0.peer));
        all
    }

    fn run_command(&mut self, g: usize) -> i32 {
        let Some(guest) = self.guests[g].as_mut() else {
            return 1;
        };
        let outcome = guest.run_command();
        let name = guest.name().to_string();
        self.collect_sent(g);
        self.finish_turn();
        match outcome {
            Ok(code) => code,
            Err(e) => {
                tracing::error!("guest {name} failed: {}", e.root_cause());
                tracing::debug!("guest {name} failed: {e:?}");
                1
            }
        }
    }

    /// How long the loop may sleep: until the next timer, or the next readiness check.
    fn idle_timeout(&self) -> Duration {
        let now = Instant::now();
        let mut timeout = Duration::from_secs(3600);
        if self.outgoing.on_group() {
            let mut next = self.membership.next_announce();
            if let Some(expiry) = self.membership.next_expiry() {
                next = next.min(expiry);
            }
            if let Some(due) = self.streams.next_deadline() {
                next = next.min(due);
            }
            timeout = timeout.min(next.saturating_duration_since(now));
        }
        for health in &self.health {
            if let Some(at) = health.restart_at {
                timeout = timeout.min(at.saturating_duration_since(now));
            }
        }
        for guest in self.guests.iter().flatten() {
            let (deadline, watching) =
                guest.with_state(|state| (state.timers.next_deadline(), !state.watches.is_empty()));
            if let Some(deadline) = deadline {
                timeout = timeout.min(deadline.saturating_duration_since(now));
            }
            if watching {
                timeout = timeout.min(READINESS_INTERVAL);
            }
        }
        timeout
    }

    /// Handles one event; false on shutdown.
    fn handle(&mut self, event: Event) -> bool {
        match event {
            Event::Datagram {
                from,
                datagram,
                len,
            } => {
                self.stats
                    .queued_bytes
                    .fetch_sub(len as u64, Ordering::Relaxed);
                self.on_datagram(from, datagram, len);
            }
            Event::Call(call) => self.on_call(*call),
            Event::Module(change) => self.on_module_change(change),
            Event::StdinLine(line) => {
                for g in 0..self.guests.len() {
                    if self.guests[g]
                        .as_ref()
                        .is_some_and(|guest| guest.jail().stdin)
                    {
                        self.call_event(g, EventInterface::Stdin, &[Val::String(line.clone())]);
                    }
                }
            }
            Event::FdReady { fd, events } => {
                native::on_ready(fd, events);
                self.collect_native_sent();
            }
            Event::Shutdown => return false,
        }
        true
    }

    /// A datagram from a peer: a sequenced one goes through its sender's stream (run in
    /// order, once; a gap is asked for), a control datagram is handled at once.
    fn on_datagram(&mut self, from: SocketAddr, datagram: Datagram, len: usize) {
        let sender = datagram.header.sender;
        if sender == self.id {
            return; // our own, looped back: already delivered locally
        }
        let now = Instant::now();
        self.membership.heard_from(sender, now);
        let Some(seq) = datagram.header.seq else {
            self.handle_frames(from, sender, datagram.frames, false);
            return;
        };
        let meta = Meta {
            bytes: len,
            calls: calls_of(&datagram),
        };
        let ran = self.streams.on_data(sender, from, seq, meta, datagram, now);
        self.run_delivered(ran);
        if let Some((to, status)) = self.streams.status_for(sender, now) {
            self.outgoing.send_status(to, &status);
        }
    }

    /// Runs the datagrams a stream hands over, in order, and says what was lost.
    fn run_delivered(&mut self, ran: Vec<Delivered<Datagram>>) {
        for delivered in ran {
            if delivered.repaired
                && let Some((_, count)) = delivered.meta.calls
            {
                Stats::add(&self.stats.calls_repaired, count);
            }
            let sender = delivered.item.header.sender;
            self.handle_frames(delivered.from, sender, delivered.item.frames, true);
        }
        self.say_losses();
    }

    /// Logs each gap lost for good, once, naming the sender and the datagrams (and calls).
    fn say_losses(&mut self) {
        for loss in self.streams.take_losses() {
            let name = self.peer_label(loss.sender);
            let (first, last) = loss.datagrams;
            let calls = match loss.calls {
                Some((a, b)) => {
                    Stats::add(&self.stats.calls_lost, b - a + 1);
                    format!("calls {a} to {b}, {} in all", b - a + 1)
                }
                None => "calls unknown".to_string(),
            };
            tracing::warn!(
                "lost datagrams {first} to {last} from {name} ({calls}): {}",
                loss.why
            );
        }
    }

    /// The frames of a datagram from `sender`, in order. Calls run only from a stream
    /// (`sequenced`): a call in a control datagram could run twice or out of order.
    fn handle_frames(
        &mut self,
        from: SocketAddr,
        sender: u64,
        frames: Vec<Frame>,
        sequenced: bool,
    ) {
        for frame in frames {
            match frame {
                Frame::Call(call) if sequenced => self.dispatch(
                    &call.function,
                    call.arguments(),
                    Origin::Remote(from, sender),
                ),
                Frame::Call(call) => {
                    let n = call.count() as u64;
                    Stats::add(&self.stats.calls_dropped, n);
                    self.drops.dropped(format_args!(
                        "{n} call(s) from {from} to `{}`: they came in a datagram without a \
                         sequence number (calls travel only in a sender's stream)",
                        call.function
                    ));
                }
                Frame::Announce(announce) => {
                    let name = announce.name.clone();
                    match self.membership.on_announce(sender, from, announce) {
                        Ok(Change::Joined) => tracing::info!("peer {name} ({from}) joined"),
                        Ok(Change::Known) => {}
                        Err(taken) => self.name_taken = Some(taken),
                    }
                }
                Frame::Query => self.membership.on_query(),
                Frame::Goodbye => {
                    // (Its last datagrams run first, while it is still a peer.)
                    self.forget_stream(sender);
                    if let Some(peer) = self.membership.forget(sender) {
                        tracing::info!("peer {} ({}) left", peer.name, peer.addr);
                    }
                }
                Frame::Position(position) if !sequenced => {
                    let ran = self
                        .streams
                        .on_position(sender, from, position, Instant::now());
                    self.run_delivered(ran);
                }
                Frame::Position(_) | Frame::Status(_) => {
                    // (Statuses come to the node's own socket, not the group's.)
                    tracing::debug!("skipped a stream frame out of place from {from}");
                }
                Frame::Unknown { kind } => {
                    tracing::debug!("skipped a frame of unknown kind {kind} from {from}")
                }
            }
        }
    }

    /// Stops following the stream of `sender`, which left (called while it is still a
    /// peer, so that it is named and its last calls pass its guests' jails): what it never
    /// repaired is lost, what was held after that runs.
    fn forget_stream(&mut self, sender: u64) {
        let Some((counts, ran)) = self.streams.forget(sender, Instant::now()) else {
            return;
        };
        self.gone_streams
            .push_back((self.peer_label(sender), counts));
        if self.gone_streams.len() > MAX_STREAMS_REMEMBERED {
            self.gone_streams.pop_front();
        }
        self.run_delivered(ran);
    }

    /// Runs a run of calls to `function` (each call's arguments one CBOR array) on every
    /// local guest and plugin that serves it. Who serves it, and whether they admit the
    /// caller, is found once for the run.
    fn dispatch<'a>(
        &mut self,
        function: &str,
        calls: impl Iterator<Item = &'a [u8]>,
        origin: Origin,
    ) {
        self.restart_trapped_by_calls();
        let native = native::resolve(function);
        let mut targets = self.local_targets(function).cloned().unwrap_or_default();
        if native.is_none() && targets.is_empty() {
            if let Origin::Remote(..) = origin {
                let n = calls.count() as u64;
                self.stats.calls_dropped.fetch_add(n, Ordering::Relaxed);
                self.drops.dropped(format_args!(
                    "{n} call(s) from {origin}: no local guest serves function `{function}`"
                ));
            }
            return;
        }
        let mut refused = 0;
        targets.retain(|&(g, _)| match self.admit(g, function, origin) {
            Ok(()) => true,
            Err(failure) => {
                refused += 1;
                self.drops.dropped(format_args!(
                    "calls from {origin} to `{function}`: {}",
                    failure.message
                ));
                false
            }
        });
        // Counted once for the run: an atomic add per call costs more than the call into
        // a plugin does.
        let (mut calls_seen, mut native_delivered) = (0, 0);
        for args in calls {
            calls_seen += 1;
            if let Some(server) = native {
                match server.call(function, args) {
                    Ok(()) => native_delivered += 1,
                    Err(e) => {
                        Stats::bump(&self.stats.calls_dropped);
                        self.drops
                            .dropped(format_args!("a call from {origin} to `{function}`: {e}"));
                    }
                }
                // In order with what the guests send for this call.
                if native::sent_on_this_thread() {
                    self.collect_native_sent();
                }
            }
            for &(g, slot) in &targets {
                if let Err(failure) = self.run_guest(g, slot, function, args)
                    && failure.kind != FailureKind::Trapped
                {
                    // (A trap is logged as such, with the guest's restart.)
                    self.drops.dropped(format_args!(
                        "a call from {origin} to `{function}`: {}",
                        failure.message
                    ));
                }
            }
        }
        let stats = &self.stats;
        stats
            .calls_delivered
            .fetch_add(native_delivered, Ordering::Relaxed);
        if refused > 0 {
            stats
                .calls_dropped
                .fetch_add(refused * calls_seen, Ordering::Relaxed);
        }
        if native.is_some() {
            // (What plugins sent from threads of their own.)
            self.collect_native_sent();
        }
        self.restart_trapped_by_calls();
    }

    /// Whether guest `g` may run a call to `function` from `origin` now: it is loaded, not
    /// waiting to restart, and its jail's `serve` list lets the caller in.
    fn admit(&self, g: usize, function: &str, origin: Origin) -> Result<(), CallFailure> {
        let Some(guest) = self.guests[g].as_ref() else {
            return Err(CallFailure::new(
                FailureKind::Unavailable,
                "its guest was unloaded after failing too often",
            ));
        };
        let name = guest.name();
        if self.health[g].restart_at.is_some() {
            return Err(CallFailure::new(
                FailureKind::Unavailable,
                format!("guest {name} is waiting to restart"),
            ));
        }
        let caller = match origin {
            Origin::Local => Some(self.membership.name()),
            Origin::Remote(_, sender) => self.membership.peer_name(sender),
        };
        if !guest.jail().may_serve(function, caller) {
            let caller = caller.unwrap_or("a node that has not announced itself");
            return Err(CallFailure::new(
                FailureKind::Refused,
                format!(
                    "the jail of guest {name} does not let {caller} call it (its `serve` list)"
                ),
            ));
        }
        Ok(())
    }

    /// Runs export `slot` of guest `g` with `args` (one CBOR array), counts it, collects
    /// what it sent, and restarts it if it trapped; returns its result as CBOR (`null`
    /// without results).
    fn run_guest(&mut self, g: usize, slot: usize, function: &str, args: &[u8]) -> Outcome {
        if self.health[g].restart_at.is_some() {
            Stats::bump(&self.stats.calls_dropped);
            return Err(CallFailure::new(
                FailureKind::Unavailable,
                "waiting to restart",
            ));
        }
        let Some(guest) = self.guests[g].as_mut() else {
            Stats::bump(&self.stats.calls_dropped);
            return Err(CallFailure::new(FailureKind::Unavailable, "unloaded"));
        };
        let mut sent = std::mem::take(&mut self.spare);
        let reply = match guest.call_cbor(slot, args, &mut sent, &mut self.local) {
            Ok(None) => Ok(Value::Null),
            outcome => into_reply(guest.name(), outcome),
        };
        // What it sent before it returned (or trapped) was sent.
        self.send_all(sent);
        match reply {
            Ok(result) => {
                Stats::bump(&self.stats.calls_delivered);
                Ok(result)
            }
            Err((failure, Some(trap))) => {
                self.trapped(g, function, trap);
                Err(failure)
            }
            Err((failure, None)) => {
                Stats::bump(&self.stats.calls_dropped);
                Err(failure)
            }
        }
    }

    /// A call from the TCP port: a cast runs like a multicast call; a call runs on one
    /// guest and its outcome goes back.
    fn on_call(&mut self, call: IncomingCall) {
        let IncomingCall {
            request,
            caller,
            reply,
        } = call;
        let origin = Origin::Remote(caller.addr, caller.node);
        let mut args = Vec::new();
        wire::encode_item(&Value::Array(request.args), &mut args);
        if !request.wants_reply {
            self.dispatch(&request.function, std::iter::once(&args[..]), origin);
            return;
        }
        let outcome = self.call_with_reply(&request.function, &args, origin);
        if let Err(failure) = &outcome {
            Stats::bump(&self.stats.calls_failed);
            tracing::debug!(
                "a call from {origin} to `{}` failed: {failure}",
                request.function
            );
        }
        if let Err(why) = reply.send(request.id, &outcome) {
            self.drops.dropped(format_args!(
                "the reply to {origin} for `{}`: {why}",
                request.function
            ));
        }
    }

    /// Runs `function` on the first local guest that serves it and admits the caller (or
    /// on the native plugin that serves it).
    fn call_with_reply(&mut self, function: &str, args: &[u8], origin: Origin) -> Outcome {
        self.restart_trapped_by_calls();
        let Some(targets) = self.local_targets(function).cloned() else {
            if let Some(server) = native::resolve(function) {
                let outcome = server
                    .call(function, args)
                    .map(|()| Value::Null)
                    .map_err(|e| CallFailure::new(FailureKind::BadArguments, e));
                self.collect_native_sent();
                return outcome;
            }
            return Err(CallFailure::new(
                FailureKind::NoServer,
                format!(
                    "node {} serves no function {function}",
                    self.membership.name()
                ),
            ));
        };
        let mut refused = None;
        for (g, slot) in targets {
            match self.admit(g, function, origin) {
                Ok(()) => {
                    let outcome = self.run_guest(g, slot, function, args);
                    self.restart_trapped_by_calls();
                    return outcome;
                }
                Err(failure) => refused = Some(failure),
            }
        }
        Err(refused.unwrap_or_else(|| CallFailure::new(FailureKind::NoServer, function)))
    }

    /// Restarts the guests that trapped in a call another guest made to them.
    fn restart_trapped_by_calls(&mut self) {
        if !self.calls.take_trapped() {
            return;
        }
        for g in 0..self.guests.len() {
            if let Some(error) = self.guests[g]
                .as_mut()
                .and_then(WasmGuest::take_unreported_trap)
            {
                self.trapped(g, "a call from another guest", error);
            }
        }
    }

    /// Calls a guest's event hook, if it exports it.
    fn call_event(&mut self, g: usize, events: EventInterface, params: &[Val]) {
        self.restart_trapped_by_calls();
        let Some(guest) = self.live(g) else {
            return;
        };
        if !guest.hears(events) {
            return;
        }
        let outcome = guest.call_event(events, params);
        self.restart_trapped_by_calls();
        match outcome {
            Ok(()) => self.collect_sent(g),
            Err(e) => {
                let what = format!("dstc:node/{}#{}", events.interface(), events.function());
                self.trapped(g, &what, e);
            }
        }
    }

    /// A guest trapped in `function` (or broke a limit of its jail): start it afresh, at
    /// once the first time and after a growing pause when it fails again, and unload it
    /// once it has failed more than [`MAX_RESTARTS`] times within [`RESTART_WINDOW`].
    fn trapped(&mut self, g: usize, function: &str, error: anyhow::Error) {
        Stats::bump(&self.stats.traps);
        let Some(guest) = self.guests[g].as_mut() else {
            return;
        };
        let name = guest.name().to_string();
        tracing::error!("guest {name} trapped in {function}: {}", error.root_cause());
        tracing::debug!("guest {name} trapped in {function}: {error:?}");
        // Whatever it sent before trapping was sent: keep it.
        self.collect_sent(g);

        let now = Instant::now();
        let health = &mut self.health[g];
        health.failures.push_back(now);
        while health
            .failures
            .front()
            .is_some_and(|&t| now.duration_since(t) > RESTART_WINDOW)
        {
            health.failures.pop_front();
        }
        let failures = health.failures.len();
        if failures > MAX_RESTARTS {
            let why = format!(
                "it failed {failures} times within {}",
                humantime::format_duration(RESTART_WINDOW)
            );
            self.unload(g, &why);
            return;
        }
        let pause = restart_pause(failures);
        if pause.is_zero() {
            self.restart(g);
        } else {
            tracing::warn!(
                "guest {name} restarts in {} (failure {failures} of at most {MAX_RESTARTS} within {})",
                humantime::format_duration(pause),
                humantime::format_duration(RESTART_WINDOW)
            );
            self.health[g].restart_at = Some(now + pause);
        }
    }

    /// Instantiates guest `g` afresh and runs its `init`.
    fn restart(&mut self, g: usize) {
        self.health[g].restart_at = None;
        let Some(guest) = self.guests[g].as_mut() else {
            return;
        };
        match guest.restart() {
            Ok(()) => {
                tracing::warn!("guest {} restarted", guest.name());
                self.call_event(g, EventInterface::Lifecycle, &[]);
            }
            Err(e) => self.unload(g, &format!("it cannot be restarted: {e:#}")),
        }
    }

    /// Restarts the guests whose pause is over.
    fn restart_due(&mut self) {
        let now = Instant::now();
        for g in 0..self.guests.len() {
            if self.health[g].restart_at.is_some_and(|at| at <= now) {
                self.restart(g);
            }
        }
    }

    /// Unloads guest `g`: it serves nothing any more, and the node says so at once.
    fn unload(&mut self, g: usize, why: &str) {
        self.health[g].restart_at = None;
        let Some(guest) = self.guests[g].take() else {
            return;
        };
        guest.retire();
        tracing::error!("guest {} unloaded: {why}", guest.name());
        if let Some(modules) = &self.modules
            && self.published.get(guest.name()) == Some(&g)
        {
            self.published.remove(guest.name());
            modules.unloaded(guest.name(), why);
        }
        self.reroute();
    }

    /// Runs, replaces or stops a published module. This happens between two events, so a
    /// call in progress has finished on the old instance, and the next runs on the new.
    /// Only the guests that are published modules are touched: a guest of the node's own
    /// command line is never replaced nor removed.
    fn on_module_change(&mut self, change: ModuleChange) {
        match change {
            ModuleChange::Install { guest, done } => {
                let name = guest.name().to_string();
                let g = match self.published.get(&name) {
                    Some(&g) => {
                        if let Some(old) = self.guests[g].replace(guest) {
                            old.retire();
                        }
                        g
                    }
                    // (A slot left empty by a guest unloaded or unpublished, else a new one.)
                    None => match self.guests.iter().position(Option::is_none) {
                        Some(g) => {
                            self.guests[g] = Some(guest);
                            g
                        }
                        None => {
                            self.guests.push(Some(guest));
                            self.health.push(Health::default());
                            self.guests.len() - 1
                        }
                    },
                };
                self.health[g] = Health::default();
                self.published.insert(name.clone(), g);
                self.reroute();
                // (Its peers hear of its functions with the next announcement, which is
                // made at once.)
                self.membership.announce_soon();
                self.call_event(g, EventInterface::Lifecycle, &[]);
                // Code from the network that fails in its `init` is not kept, restarted
                // or not: its health (fresh above) counts the failure.
                let outcome = if self.health[g].failures.is_empty() && self.guests[g].is_some() {
                    Ok(())
                } else {
                    let why = format!(
                        "guest {name} failed in its init (the node's log says how), and was \
                         unloaded"
                    );
                    self.unload(g, "it failed in its init");
                    Err(why)
                };
                let _ = done.send(outcome);
            }
            ModuleChange::Remove { name, done } => {
                let had = self.published.remove(&name).is_some_and(|g| {
                    self.health[g] = Health::default();
                    self.guests[g].take().inspect(WasmGuest::retire).is_some()
                });
                if had {
                    self.reroute();
                    self.membership.announce_soon();
                }
                let _ = done.send(had);
            }
        }
    }

    /// Guest `g`, if it is loaded and not waiting to restart.
    fn live(&mut self, g: usize) -> Option<&mut WasmGuest> {
        if self.health[g].restart_at.is_some() {
            return None;
        }
        self.guests[g].as_mut()
    }

    /// Moves the calls guest `g` sent into the outgoing batch and the local queue.
    fn collect_sent(&mut self, g: usize) {
        let Some(guest) = self.guests[g].as_mut() else {
            return;
        };
        let mut sent = std::mem::take(&mut self.spare);
        guest.take_sent(&mut sent, &mut self.local);
        self.send_all(sent);
    }

    /// Moves the calls native plugins sent into the outgoing batch and the local queue.
    fn collect_native_sent(&mut self) {
        let mut sent = std::mem::take(&mut self.spare);
        native::take_sent(&mut sent, &mut self.local);
        self.send_all(sent);
    }

    /// Sends every call of `sent` to the group, and queues those to functions this node
    /// serves for its own guests; then keeps the emptied outbox as the spare.
    fn send_all(&mut self, mut sent: Outbox) {
        if sent.is_empty() {
            self.spare = sent;
            return;
        }
        if let Err(stopped) = self.outgoing.send(&mut sent, &mut self.local) {
            tracing::debug!("{stopped}");
        }
        self.spare = sent;
    }

    /// The WebAssembly exports that serve `function`: by id, or by name for a bare id.
    fn local_targets(&self, function: &str) -> Option<&Vec<Route>> {
        routes_for(&self.routes, &self.bare_routes, function)
    }

    fn fire_timers(&mut self) {
        let now = Instant::now();
        for g in 0..self.guests.len() {
            while let Some(token) = self.guests[g]
                .as_mut()
                .and_then(|guest| guest.with_state(|state| state.timers.pop_due(now)))
            {
                self.call_event(g, EventInterface::Timer, &[Val::U64(token)]);
            }
        }
    }

    fn check_readiness(&mut self) {
        for g in 0..self.guests.len() {
            let Some(guest) = self.guests[g].as_mut() else {
                continue;
            };
            let ready = match guest.take_ready() {
                Ok(ready) => ready,
                Err(e) => {
                    self.trapped(g, "dstc:node/readiness", e);
                    continue;
                }
            };
            for token in ready {
                self.call_event(g, EventInterface::Ready, &[Val::U64(token)]);
            }
        }
    }

    /// Ends a turn: delivers the calls sent locally, then flushes the batch to the group.
    fn finish_turn(&mut self) {
        // Guests called by other guests (calls with replies) may have sent calls, or trapped.
        self.restart_trapped_by_calls();
        for g in 0..self.guests.len() {
            self.collect_sent(g);
        }
        let mut local = std::mem::take(&mut self.local);
        for (function, args) in local.runs() {
            self.dispatch(function, args, Origin::Local);
        }
        // Calls sent meanwhile wait for the next turn; else the room is kept.
        if self.local.is_empty() {
            local.clear();
            self.local = local;
        }
        if !self.outgoing.on_group() {
            return;
        }
        let now = Instant::now();
        // Peers fall silent only when the node has caught up: a datagram of theirs still
        // in the queue is a sign of life.
        if self.caught_up {
            for id in self.membership.silent(now) {
                // (Its last datagrams run first, while it is still a peer.)
                self.forget_stream(id);
                if let Some(peer) = self.membership.forget(id) {
                    tracing::info!(
                        "peer {} ({}) gone: nothing heard from it for {}",
                        peer.name,
                        peer.addr,
                        humantime::format_duration(PEER_EXPIRY)
                    );
                }
            }
            for id in self.streams.idle(now) {
                if self.membership.peer_name(id).is_none() {
                    self.forget_stream(id);
                }
            }
        }
        if self.membership.take_changed() {
            self.calls.set_peers(
                self.membership
                    .peers()
                    .map(|(_, p)| {
                        let entry = PeerEntry {
                            tcp: p.tcp,
                            functions: p.functions.iter().cloned().collect(),
                        };
                        (p.name.clone(), entry)
                    })
                    .collect(),
            );
        }
        self.report_streams(now);
        if self.membership.announce_due(now) {
            self.announce();
        }
        self.flush();
    }

    /// Announces the node to the group.
    fn announce(&mut self) {
        let mut announce = self.announcement();
        // Connection counts and stream counts are a courtesy: drop them rather than not
        // announce at all.
        let max = self.outgoing.max_control_frames();
        loop {
            self.frame.clear();
            wire::encode_announce(&announce, &mut self.frame);
            if self.frame.len() <= max
                || (announce.streams.pop().is_none()
                    && announce.links.pop().is_none()
                    && announce.modules.pop().is_none())
            {
                break;
            }
        }
        self.outgoing.send_control(&self.frame);
    }

    /// Gives up the gaps of peers' streams that stayed unrepaired too long, and sends the
    /// statuses due: requests for what is missing, and how far the node has run.
    fn report_streams(&mut self, now: Instant) {
        // (Running what was held says what was lost.)
        let ran = self.streams.give_up(now);
        self.run_delivered(ran);
        for (to, status) in self.streams.statuses(now) {
            self.outgoing.send_status(to, &status);
        }
    }

    /// What the node says of itself: name, uptime, functions, TCP port, connections, and
    /// what it received of each peer's stream.
    fn announcement(&mut self) -> Announce {
        let m = &self.membership;
        let mut links: Vec<(String, u64)> = match &self.pool {
            Some(pool) => {
                let by_addr = pool.links();
                m.peers()
                    .filter_map(|(_, p)| {
                        let n = by_addr.get(&p.tcp?)?;
                        Some((p.name.clone(), *n as u64))
                    })
                    .collect()
            }
            None => Vec::new(),
        };
        links.sort();
        links.truncate(MAX_LINKS_ANNOUNCED);
        let mut streams: Vec<StreamCounts> = self
            .stream_counts()
            .into_iter()
            .map(|(shown, _)| shown)
            .collect();
        streams.truncate(wire::MAX_STREAMS_ANNOUNCED);
        Announce {
            name: m.name().to_string(),
            uptime_ms: m.uptime_ms(),
            functions: m.functions().to_vec(),
            tcp: self.tcp,
            links,
            streams,
            refused: self.stats.rejections.announced(),
            modules: self
                .modules
                .as_ref()
                .map(|m| m.announced())
                .unwrap_or_default(),
        }
    }

    /// Sends what the guests sent so far (the last datagram partly filled).
    fn flush(&mut self) {
        if let Err(stopped) = self.outgoing.flush(Patience::UntilStopping) {
            tracing::debug!("{stopped}");
        }
    }
}

/// The WebAssembly exports in `routes` that serve `function`: by id, or, for a bare id
/// (from a C plugin), by name in `bare_routes`.
fn routes_for<'a>(
    routes: &'a HashMap<String, Vec<Route>>,
    bare_routes: &'a HashMap<String, Vec<Route>>,
    function: &str,
) -> Option<&'a Vec<Route>> {
    match routes.get(function) {
        Some(targets) => Some(targets),
        None if !function.contains('#') => bare_routes.get(function),
        None => None,
    }
}

/// The number of the first call of a datagram and how many calls it carries, if any.
fn calls_of(datagram: &Datagram) -> Option<(u64, u64)> {
    let mut runs = datagram.frames.iter().filter_map(|f| match f {
        Frame::Call(call) => Some(call),
        _ => None,
    });
    let first = runs.next()?;
    let count = first.count() as u64 + runs.map(|c| c.count() as u64).sum::<u64>();
    Some((first.first, count))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restarts_pause_longer_after_each_failure() {
        let pauses: Vec<u64> = (1..=9)
            .map(|n| restart_pause(n).as_millis() as u64)
            .collect();
        assert_eq!(pauses, [0, 100, 200, 400, 800, 1600, 3200, 5000, 5000]);
    }
}
