//! The node's event loop: the routing table from function ids to the guests that export
//! them, the receiving side of the peers' streams, membership, and the native plugins. It
//! runs on one thread of its own, and hands the WebAssembly guests their work: each guest
//! runs on a worker thread of its own ([`crate::guest::worker`]), behind a bounded queue.
//!
//! One *turn* of the loop takes every input waiting (datagrams decoded by the network
//! thread, calls from the TCP port, stdin lines, published modules, and what the workers
//! report), routes each run of calls to the workers and plugins that serve it, delivers
//! locally the calls the node's own guests sent, reports to the peers how far it has run
//! their streams (and asks for what it misses), and flushes what the plugins sent. A full
//! worker queue makes the loop wait: a guest that falls behind slows the node's intake
//! (and, through the stream windows, its senders) rather than losing calls. Calls from one
//! sender reach each guest in the sender's order. A call reaches each node once, the
//! sender's own included: locally from the outgoing queue, and the copy that multicast
//! loops back is recognised by the sender id and skipped.

pub mod routing;
pub mod workers;

use crate::guest::calls::{Calls, LocalServer, PeerEntry};
use crate::guest::native::{self, NativePlugin};
use crate::guest::outbox::Outbox;
use crate::guest::wasm::WasmGuest;
use crate::guest::worker::{Origin, Report, Work, WorkerHandle, WorkerLinks};
use crate::guest::world::EventInterface;
use crate::membership::{Change, GroupChange, Membership, PEER_EXPIRY};
use crate::modules::ModuleService;
use crate::modules::loader::ModuleChange;
use crate::outcome::{CallFailure, FailureKind, Outcome};
use crate::rpc::PoolHandle;
use crate::rpc::server::IncomingCall;
use crate::stats::{DropLog, FunctionCounts, PeerCalls, Stats};
use crate::stream::outgoing::{Outgoing, Patience};
use crate::stream::receive::{Counts, Delivered, Meta, ReceiveStreams};
use crate::wire::{self, Announce, Datagram, Frame, StreamCounts};
use ciborium::Value;
use crossbeam_channel::{Receiver, RecvTimeoutError};
use routing::{Routable, Route, RoutingTable};
use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use workers::Workers;

/// How long a starting node listens for another node announcing its name.
const CLAIM_WAIT: Duration = Duration::from_millis(150);

/// When a starting node asks the group who is there a second time.
const QUERY_AGAIN: Duration = Duration::from_millis(60);

/// The most events taken in one turn before the turn is finished (and the batch flushed).
const MAX_EVENTS_PER_TURN: usize = 1024;

/// The most calls of one run routed to the local guests at once.
const MAX_LOCAL_RUN: usize = 16_384;

/// How long a stopping node waits for its receivers to run what it sent.
pub const LINGER: Duration = Duration::from_secs(3);

/// The most streams of peers gone that the closing summary still names.
const MAX_STREAMS_REMEMBERED: usize = 64;

/// What the network, stdin and descriptor threads hand the event loop.
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
    /// A line of the node's stdin.
    StdinLine(String),
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

/// Where the event loop's inputs come from, besides its workers' reports.
pub struct Inputs {
    /// Datagrams, stdin lines, ready descriptors, shutdown.
    pub events: Receiver<Event>,
    /// Calls from the node's TCP port.
    pub calls: Receiver<Box<IncomingCall>>,
    /// Published modules to run, replace or stop.
    pub modules: Receiver<ModuleChange>,
}

/// The network thread is gone: the node stops.
struct Closed;

/// Who runs a call with a reply.
enum Server {
    /// A local guest's export.
    Guest(Route),
    /// A native plugin.
    Native(native::NativeServer),
}

/// One input of a turn.
enum Input {
    Event(Event),
    Call(Box<IncomingCall>),
    Module(ModuleChange),
    Report(Report),
}

/// The event loop's state.
pub struct Node {
    id: u64,
    membership: Membership,
    /// The workers of the WebAssembly guests, by slot.
    workers: Workers,
    /// The workers' reports.
    reports: Receiver<Report>,
    /// Set when the node's WASI command ended, with its exit status.
    exited: Option<i32>,
    /// Which guest serves each function.
    table: RoutingTable,
    /// The native plugins, kept so that their code stays loaded.
    natives: Vec<NativePlugin>,
    /// Where the calls the guests and plugins send go: the group, and this node.
    outgoing: Arc<Outgoing>,
    /// An encoded control frame being built.
    frame: Vec<u8>,
    /// Calls sent by this node's guests and plugins to functions it serves itself,
    /// routed at the end of the turn.
    local: Outbox,
    /// An emptied outbox, for the plugins' next calls when their calls are taken.
    spare: Outbox,
    /// The peers' streams, as this node receives them.
    streams: ReceiveStreams<Datagram>,
    /// What was received of the streams of peers gone, by name, for the closing summary.
    gone_streams: VecDeque<(String, Counts)>,
    /// Whether the last turn took every event waiting (peers are judged silent only then).
    caught_up: bool,
    /// Whether the guests were handed their `init` (then they hear the group's changes).
    guests_started: bool,
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
    /// A node with id `id` (the sender id of its datagrams) hosting `guests` (each started
    /// on a worker of its own), sending what they send through `outgoing`, and taking
    /// calls as `links` say. `calls` is what the guests were loaded with.
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
    ) -> anyhow::Result<Self> {
        let (reports_tx, reports) = crossbeam_channel::unbounded();
        let mut node = Node {
            id,
            membership: Membership::new(id, name, Vec::new()),
            workers: Workers::new(WorkerLinks {
                reports: reports_tx,
                outgoing: outgoing.clone(),
                stats: stats.clone(),
            }),
            reports,
            exited: None,
            table: RoutingTable::default(),
            natives,
            outgoing,
            frame: Vec::new(),
            local: Outbox::default(),
            spare: Outbox::default(),
            streams: ReceiveStreams::new(links.receive_window),
            gone_streams: VecDeque::new(),
            caught_up: true,
            guests_started: false,
            stats,
            drops: DropLog::new(),
            calls,
            tcp: links.tcp,
            pool: links.pool,
            modules: links.modules,
        };
        for guest in guests {
            node.workers.start(guest)?;
        }
        node.reroute();
        Ok(node)
    }

    /// Finds again which guest serves each function (a guest was loaded or unloaded), and
    /// tells the guests' calls, the outgoing queue and the peers.
    fn reroute(&mut self) {
        self.table = RoutingTable::new(self.workers.slots());
        let local = self
            .table
            .iter()
            .map(|(id, routes)| {
                let servers = routes
                    .iter()
                    .filter_map(|r| {
                        let worker = self.workers.get(r.guest)?.clone();
                        Some(LocalServer {
                            worker: Arc::new(worker),
                            slot: r.export,
                        })
                    })
                    .collect();
                (id.clone(), servers)
            })
            .collect();
        self.calls.set_local(local);
        // (Which functions this node serves itself: it runs the calls its own guests and
        // plugins send to them.)
        let table = self.table.clone();
        self.outgoing.set_serves(Arc::new(move |function: &str| {
            table.targets(function).is_some() || native::serves(function)
        }));
        let native = (0..self.natives.len()).flat_map(NativePlugin::functions);
        let served = routing::served(&self.table, native, self.calls.serves_mailboxes());
        self.membership.set_functions(served);
    }

    /// The name of the node a call from `origin` comes from, if it announced one.
    fn caller(&self, origin: Origin) -> Option<&str> {
        match origin {
            Origin::Local => Some(self.membership.name()),
            Origin::Remote(_, sender) => self.membership.peer_name(sender),
        }
    }

    /// Claims the node's name on the group, has the guests run their `init` hooks, then
    /// routes until [`Event::Shutdown`], `stopping`, or the end of its WASI command
    /// (returning the command's exit status; else 0). Fails when the name is taken.
    pub fn run(mut self, inputs: Inputs, stopping: &AtomicBool) -> anyhow::Result<i32> {
        native::run_plugins_on_this_thread(self.outgoing.clone(), self.calls.clone());
        let held = self.claim_name(&inputs.events)?;
        // The name is this node's: its peers hear of it before its guests start (a guest
        // may send for long in its `init`).
        if self.outgoing.on_group() && self.membership.announce_due(Instant::now()) {
            self.announce();
        }
        // The peers heard while claiming the name are the guests' before any guest runs:
        // a WASI command may call one of them at once.
        self.share_peers();
        // Calls native plugins made while they were loaded (in their init).
        self.collect_native_sent();
        // Each guest runs its `init` first: what is routed to it waits behind.
        for g in 0..self.workers.slots().len() {
            self.hand(g, Work::Init { done: None });
        }
        self.guests_started = true;
        if let Some(g) = self.workers.command() {
            self.hand(g, Work::Command);
        }
        self.finish_turn();
        for event in held {
            if !self.handle(Input::Event(event)) {
                return Ok(self.stop(0));
            }
        }
        loop {
            let wait = if self.local.is_empty() {
                self.idle_timeout()
            } else {
                Duration::ZERO
            };
            let mut next = match self.next_input(&inputs, wait) {
                Ok(input) => input,
                Err(Closed) => {
                    // (The network thread is gone: the guests stop where they are.)
                    stopping.store(true, Ordering::Relaxed);
                    return Ok(self.stop(0));
                }
            };
            let mut taken = 0;
            while let Some(input) = next {
                if !self.handle(input) {
                    return Ok(self.stop(0));
                }
                // What the plugins sent in answer to this input leaves now, not after the
                // rest of the queue: a peer may be waiting for it. (The workers flush what
                // their guests send themselves.)
                self.flush();
                taken += 1;
                next = if taken < MAX_EVENTS_PER_TURN {
                    self.next_input(&inputs, Duration::ZERO).unwrap_or(None)
                } else {
                    None
                };
            }
            // (The turn ended because nothing was waiting, not at the turn's limit.)
            self.caught_up = taken < MAX_EVENTS_PER_TURN;
            self.finish_turn();
            if let Some(code) = self.exited {
                return Ok(self.stop(code));
            }
            if stopping.load(Ordering::Relaxed) {
                return Ok(self.stop(0));
            }
        }
    }

    /// The next input, waiting at most `wait` for one; `Err` once the network thread is
    /// gone.
    fn next_input(&self, inputs: &Inputs, wait: Duration) -> Result<Option<Input>, Closed> {
        crossbeam_channel::select! {
            recv(self.reports) -> report => Ok(report.ok().map(Input::Report)),
            recv(inputs.events) -> event => event.map(|e| Some(Input::Event(e))).map_err(|_| Closed),
            recv(inputs.calls) -> call => Ok(call.ok().map(Input::Call)),
            recv(inputs.modules) -> change => Ok(change.ok().map(Input::Module)),
            default(wait) => Ok(None),
        }
    }

    /// Asks the group who is there and listens for [`CLAIM_WAIT`]: if a node announces
    /// this node's name meanwhile, the name is taken; if not, it is this node's for good.
    /// Returns the events that arrived meanwhile, to handle once the guests are
    /// initialised.
    fn claim_name(&mut self, events: &Receiver<Event>) -> anyhow::Result<Vec<Event>> {
        if !self.outgoing.on_group() {
            self.membership.claimed();
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
        self.membership.claimed();
        Ok(held)
    }

    /// Lets the workers end (each runs what it holds, unless the node stops on a signal),
    /// sends what is left, waits (at most [`LINGER`]) for the receivers to run it, says
    /// goodbye and says what the node received of each peer: the node is stopping with
    /// exit status `code`, which it returns.
    fn stop(&mut self, mut code: i32) -> i32 {
        // The calls the guests sent to this node go to their guests while they take work.
        self.finish_turn();
        self.calls.set_local(HashMap::new());
        self.workers.stop();
        self.table = RoutingTable::default();
        for report in self.reports.try_iter() {
            match report {
                // A WASI command interrupted by the stop ends with its own status.
                Report::Exited(status) => code = status,
                // (Only plugins may still run these; what nothing runs is counted dropped.)
                Report::Local(mut sent) => sent.move_into(&mut self.local),
                Report::Unloaded { .. } => {}
            }
        }
        self.finish_turn();
        self.say_goodbye();
        code
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
    fn peer_label(&self, id: u64) -> Cow<'_, str> {
        self.membership
            .peer_name(id)
            .map_or_else(|| Cow::Owned(format!("{id:016x}")), Cow::Borrowed)
    }

    /// The counters of the calls from `origin`, under the peer's label.
    fn peer_calls(&self, origin: Origin) -> Arc<PeerCalls> {
        let label = match origin {
            Origin::Local => Cow::Borrowed(PeerCalls::THIS_NODE),
            Origin::Remote(_, id) => self.peer_label(id),
        };
        self.stats.peer_calls.of(&label)
    }

    /// What this node received of each stream, followed or gone, by peer name (a sender
    /// that never announced itself by its id).
    fn stream_counts(&self) -> Vec<(StreamCounts, Counts)> {
        let mut all: Vec<(StreamCounts, Counts)> = self
            .streams
            .counts()
            .map(|(id, c)| (self.peer_label(id).into_owned(), c))
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

    /// How long the loop may sleep: until the next announcement, peer expiry or stream
    /// deadline.
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
        timeout
    }

    /// Handles one input; false on shutdown.
    fn handle(&mut self, input: Input) -> bool {
        let event = match input {
            Input::Event(event) => event,
            Input::Call(call) => {
                self.on_call(*call);
                return true;
            }
            Input::Module(change) => {
                self.on_module_change(change);
                return true;
            }
            Input::Report(report) => {
                self.on_report(report);
                return true;
            }
        };
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
                self.share_peers();
            }
            Event::StdinLine(line) => {
                let line: Arc<str> = line.into();
                for g in 0..self.workers.slots().len() {
                    if self.workers.get(g).is_some_and(|w| {
                        w.setup().jail.stdin && w.hears(crate::guest::world::EventInterface::Stdin)
                    }) {
                        self.hand(g, Work::StdinLine(line.clone()));
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

    /// What a worker reports: calls its guest sent to this node, its guest unloaded, or
    /// the end of the node's WASI command.
    fn on_report(&mut self, report: Report) {
        match report {
            Report::Local(mut sent) => sent.move_into(&mut self.local),
            Report::Unloaded { worker, why } => {
                // (None: replaced or removed meanwhile.)
                if let Some(gone) = self.workers.unloaded(worker) {
                    if gone.published
                        && let Some(modules) = &self.modules
                    {
                        modules.unloaded(&gone.name, &why);
                    }
                    self.reroute();
                }
            }
            Report::Exited(code) => self.exited = Some(code),
        }
    }

    /// Queues `work` for guest `g`, waiting while its queue is full; a guest unloaded
    /// meanwhile drops it.
    fn hand(&mut self, g: usize, work: Work) {
        let Some(worker) = self.workers.get(g) else {
            return;
        };
        if let Err(work) = worker.send(work) {
            work.refuse(
                &self.stats,
                &format!("guest {} was unloaded", worker.name()),
            );
        }
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
                Frame::Call(call) if sequenced => {
                    self.dispatch(Arc::new(call), Origin::Remote(from, sender), None)
                }
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
                        Ok(Change::Known | Change::Conflict) => {}
                        // (Only while claiming the name, which is over.)
                        Err(taken) => tracing::warn!("{taken}"),
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
            .push_back((self.peer_label(sender).into_owned(), counts));
        if self.gone_streams.len() > MAX_STREAMS_REMEMBERED {
            self.gone_streams.pop_front();
        }
        self.run_delivered(ran);
    }

    /// Hands a run of calls to every local guest and plugin that serves its function: a
    /// plugin runs them at once, on this thread; a guest's worker gets the run (shared by
    /// every guest that serves it) in its queue. Who serves the function, and whether they
    /// admit the caller, is found once for the run.
    fn dispatch(
        &mut self,
        run: Arc<wire::Call>,
        origin: Origin,
        held: Option<Arc<crate::rpc::budget::Held>>,
    ) {
        let function = run.function.as_str();
        let native = native::resolve(function);
        if native.is_none() && self.table.targets(function).is_none() {
            // (From this node: its guest was unloaded since it sent them, or the node is
            // stopping.)
            let n = run.count() as u64;
            self.stats.calls_dropped.fetch_add(n, Ordering::Relaxed);
            let counts = self.stats.functions.of(FunctionCounts::NOT_SERVED);
            Stats::add(&counts.dropped, n);
            self.peer_calls(origin).add(0, n);
            self.drops.dropped(format_args!(
                "{n} call(s) from {origin}: no local guest serves function `{function}`"
            ));
            return;
        }
        // (A plugin answers any `x#name` for its `name`: senders must not pick labels.)
        let label = if native.is_some() && self.table.targets(function).is_none() {
            native::LABEL
        } else {
            function
        };
        let counts = self.stats.functions.of(label);
        Stats::add(&counts.received, run.count() as u64);
        let peer = self.peer_calls(origin);
        let (targets, refused) =
            self.table
                .admitted(self.workers.slots(), function, self.caller(origin));
        if let Some((failure, guests)) = refused {
            let dropped = (guests * run.count()) as u64;
            Stats::add(&self.stats.calls_dropped, dropped);
            Stats::add(&counts.dropped, dropped);
            peer.add(0, dropped);
            self.drops.dropped(format_args!(
                "calls from {origin} to `{function}`: {}",
                failure.message
            ));
        }
        if let Some(server) = native {
            // Counted once for the run: an atomic add per call costs more than the call
            // into a plugin does.
            let (mut delivered, mut dropped) = (0, 0);
            for args in run.arguments() {
                match server.call(function, args) {
                    Ok(()) => delivered += 1,
                    Err(e) => {
                        dropped += 1;
                        Stats::bump(&self.stats.calls_dropped);
                        Stats::bump(&counts.dropped);
                        self.drops
                            .dropped(format_args!("a call from {origin} to `{function}`: {e}"));
                    }
                }
                // In order with what the plugins send for this call.
                if native::sent_on_this_thread() {
                    self.collect_native_sent();
                }
            }
            Stats::add(&self.stats.calls_delivered, delivered);
            Stats::add(&counts.run, delivered);
            peer.add(delivered, dropped);
            // (What plugins sent from threads of their own.)
            self.collect_native_sent();
        }
        for route in targets {
            let calls = run.clone();
            self.hand(
                route.guest,
                Work::Run {
                    slot: route.export,
                    calls,
                    origin,
                    peer: peer.clone(),
                    held: held.clone(),
                },
            );
        }
    }

    /// A call from the TCP port: a cast runs like a multicast call; a call runs on one
    /// guest (on its worker, which sends the outcome back) or plugin.
    fn on_call(&mut self, call: IncomingCall) {
        let IncomingCall {
            request,
            caller,
            reply,
            held,
        } = call;
        let origin = Origin::Remote(caller.addr, caller.node);
        let args = request.args.into_bytes();
        let function = request.function;
        if !request.wants_reply {
            let run = wire::Call::collect(0, &function, std::iter::once(&args[..]));
            self.dispatch(Arc::new(run), origin, Some(Arc::new(held)));
            return;
        }
        let (id, stats) = (request.id, self.stats.clone());
        let function_id = function.clone();
        let answer = move |outcome: Outcome| {
            // (The request's share of the port's budget is given back once answered.)
            let _held = held;
            if let Err(failure) = &outcome {
                Stats::bump(&stats.calls_failed);
                tracing::debug!("a call from {origin} to `{function_id}` failed: {failure}");
            }
            if let Err(why) = reply.send(id, &outcome) {
                tracing::debug!("the reply to {origin} for `{function_id}`: {why}");
            }
        };
        let server = self.server(&function, origin);
        let label = match &server {
            Ok(Server::Native(_)) => native::LABEL,
            _ => &function,
        };
        let counts = server.is_ok().then(|| self.stats.functions.of(label));
        if let Some(counts) = &counts {
            Stats::bump(&counts.received);
        }
        let peer = self.peer_calls(origin);
        match server {
            Ok(Server::Guest(route)) => self.hand(
                route.guest,
                Work::Call {
                    slot: route.export,
                    args,
                    reply: Box::new(answer),
                    peer: Some(peer),
                },
            ),
            Ok(Server::Native(server)) => {
                let outcome = server
                    .call(&function, &args)
                    .map(|()| Value::Null)
                    .map_err(|e| CallFailure::new(FailureKind::BadArguments, e));
                if let Some(counts) = &counts {
                    let ran = if outcome.is_ok() {
                        &counts.run
                    } else {
                        &counts.dropped
                    };
                    Stats::bump(ran);
                }
                let ran = u64::from(outcome.is_ok());
                peer.add(ran, 1 - ran);
                self.collect_native_sent();
                answer(outcome);
            }
            Err(failure) => {
                peer.add(0, 1);
                answer(Err(failure));
            }
        }
    }

    /// Who runs a call with a reply to `function` from `origin`: a local guest (see
    /// [`RoutingTable::server`]), else the native plugin that serves it.
    fn server(&self, function: &str, origin: Origin) -> Result<Server, CallFailure> {
        let caller = self.caller(origin);
        if let Some(route) = self.table.server(self.workers.slots(), function, caller)? {
            return Ok(Server::Guest(route));
        }
        match native::resolve(function) {
            Some(server) => Ok(Server::Native(server)),
            None => Err(CallFailure::new(
                FailureKind::NoServer,
                format!(
                    "node {} serves no function {function}",
                    self.membership.name()
                ),
            )),
        }
    }

    /// Runs, replaces or stops a published module. The new guest gets a worker of its
    /// own; the worker of the guest it replaces (or of the guest removed) runs what it
    /// holds and ends. Only the guests that are published modules are touched: a guest of
    /// the node's own command line is never replaced nor removed.
    fn on_module_change(&mut self, change: ModuleChange) {
        match change {
            ModuleChange::Install { guest, done } => {
                let g = match self.workers.install(*guest) {
                    Ok(g) => g,
                    Err(e) => {
                        let _ = done.send(Err(format!("{e:#}")));
                        return;
                    }
                };
                // (Its `init` runs before anything routed to it, and the worker tells the
                // service how it went; code from the network that fails there is unloaded.)
                self.hand(g, Work::Init { done: Some(done) });
                self.reroute();
                // (Its peers hear of its functions with the next announcement, which is
                // made at once.)
                self.membership.announce_soon();
            }
            ModuleChange::Remove { name, done } => {
                let had = self.workers.remove(&name);
                if had {
                    self.reroute();
                    self.membership.announce_soon();
                }
                let _ = done.send(had);
            }
        }
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

    /// Ends a turn: routes the calls sent locally, then flushes the batch to the group.
    fn finish_turn(&mut self) {
        let mut local = std::mem::take(&mut self.local);
        for (function, args) in local.runs() {
            // (In runs no longer than a datagram's, so that one guest's burst to itself
            // is taken in entries of a bounded size.)
            let args: Vec<&[u8]> = args.collect();
            for chunk in args.chunks(MAX_LOCAL_RUN) {
                let run = wire::Call::collect(0, function, chunk.iter().copied());
                self.dispatch(Arc::new(run), Origin::Local, None);
            }
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
        self.share_peers();
        self.report_streams(now);
        if self.membership.announce_due(now) {
            self.announce();
        }
        self.flush();
    }

    /// Tells the guests' calls with replies what the peers are now, if that changed: as
    /// soon as a datagram changed it, since a call routed next may be for a peer that just
    /// announced itself.
    /// Guests that export `group-events` hear of each change once their `init` is handed
    /// to them (the peers known before are in `group.peers()`).
    fn share_peers(&mut self) {
        let changes = self.membership.take_changes();
        if changes.is_empty() {
            return;
        }
        let events: Vec<(GroupChange, Arc<str>)> = changes
            .gone
            .iter()
            .map(|name| (GroupChange::Left, name.as_str()))
            .chain(
                changes
                    .joined
                    .iter()
                    .map(|p| (GroupChange::Joined, p.name.as_str())),
            )
            .chain(
                changes
                    .changed
                    .iter()
                    .map(|p| (GroupChange::Functions, p.name.as_str())),
            )
            .map(|(change, name)| (change, Arc::from(name)))
            .collect();
        let changed = changes.joined.iter().chain(&changes.changed).map(|p| {
            let entry = PeerEntry {
                tcp: p.tcp,
                functions: p.functions.iter().cloned().collect(),
                uptime_ms: p.uptime_ms,
                heard: p.last_seen,
            };
            (p.name.clone(), entry)
        });
        self.calls.update_peers(changed, changes.gone);
        if !self.guests_started {
            return;
        }
        for g in 0..self.workers.slots().len() {
            if self
                .workers
                .get(g)
                .is_some_and(|w| w.hears(EventInterface::Group))
            {
                for (change, node) in &events {
                    self.hand(g, Work::GroupChange(*change, node.clone()));
                }
            }
        }
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
        links.truncate(wire::MAX_LINKS_ANNOUNCED);
        let mut streams: Vec<StreamCounts> = self
            .stream_counts()
            .into_iter()
            .map(|(shown, _)| shown)
            .collect();
        // For the metrics, as of this announcement: every stream, one series per peer name
        // (a peer that restarted has a stream gone and a live one under the same name).
        let mut by_peer: std::collections::BTreeMap<&str, StreamCounts> = Default::default();
        for counts in &streams {
            let sum = by_peer.entry(&counts.peer).or_insert_with(|| StreamCounts {
                peer: counts.peer.clone(),
                ..StreamCounts::default()
            });
            sum.received += counts.received;
            sum.repaired += counts.repaired;
            sum.lost += counts.lost;
        }
        *self
            .stats
            .peers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = by_peer.into_values().collect();
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

    /// Sends what the plugins sent so far (the last datagram partly filled).
    fn flush(&mut self) {
        if let Err(stopped) = self.outgoing.flush(Patience::UntilStopping) {
            tracing::debug!("{stopped}");
        }
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

impl Routable for WorkerHandle {
    fn name(&self) -> &str {
        WorkerHandle::name(self)
    }

    fn function_ids(&self) -> impl Iterator<Item = &str> {
        self.exports().iter().map(|e| e.function.id.as_str())
    }

    fn jail(&self) -> &crate::jail::Jail {
        &self.setup().jail
    }

    fn is_down(&self) -> bool {
        WorkerHandle::is_down(self)
    }

    fn is_waiting(&self) -> bool {
        WorkerHandle::is_waiting(self)
    }
}
