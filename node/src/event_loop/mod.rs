//! The node's event loop: the routing table from function ids to the guests that export
//! them, the receiving side of the peers' streams, membership, and the native plugins. It
//! runs on one thread of its own, and hands the WebAssembly guests their work: each guest
//! runs on a worker thread of its own ([`dhost_runtime::guest::worker`]), behind a bounded queue.
//!
//! What the node decides is [`core::NodeCore`]'s, which does no I/O; this module is its
//! driver: it owns the threads' channels, the workers, the native plugins, the sending
//! side and the clock, feeds the core its inputs with the time, and carries out the
//! [`core::Action`]s it returns, in order.
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

pub(crate) mod core;
#[cfg(test)]
mod fake_guest;
pub(crate) mod routing;
pub(crate) mod workers;

use crate::modules::ModuleService;
use crate::modules::loader::ModuleChange;
use crate::rpc::PoolHandle;
use crate::stream::outgoing::Outgoing;
use crate::tcp_port::IncomingCall;
use ciborium::Value;
use core::{Action, CoreConfig, Guest, Natives, NodeCore};
use crossbeam_channel::{Receiver, RecvTimeoutError};
use dhost_protocol::outcome::CallFailure;
use dhost_protocol::outcome::FailureKind;
use dhost_protocol::wire::{self, Datagram, StreamCounts};
use dhost_runtime::guest::calls::{Calls, LocalServer};
use dhost_runtime::guest::native::{self, NativePlugin, NativeServer};
use dhost_runtime::guest::network::{CallSender as _, Patience, RemoteCaller};
use dhost_runtime::guest::outbox::Outbox;
use dhost_runtime::guest::wasm::WasmGuest;
use dhost_runtime::guest::worker::{Origin, Report, Work, WorkerHandle, WorkerLinks};
use dhost_runtime::guest::world::EventInterface;
use dhost_runtime::stats::{FunctionCounts, PeerCalls, Stats};
use routing::Routable;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use workers::Workers;

/// The most events taken in one turn before the turn is finished (and the batch flushed).
const MAX_EVENTS_PER_TURN: usize = 1024;

/// The most calls of one run routed to the local guests at once.
const MAX_LOCAL_RUN: usize = 16_384;

/// How long a stopping node waits for its receivers to run what it sent.
pub(crate) const LINGER: Duration = Duration::from_secs(3);

/// What the network, stdin and descriptor threads hand the event loop.
#[derive(Debug)]
pub(crate) enum Event {
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
pub(crate) struct Inputs {
    /// Datagrams, stdin lines, ready descriptors, shutdown.
    pub events: Receiver<Event>,
    /// Calls from the node's TCP port.
    pub calls: Receiver<Box<IncomingCall>>,
    /// Published modules to run, replace or stop.
    pub modules: Receiver<ModuleChange>,
}

/// The network thread is gone: the node stops.
struct Closed;

/// One input of a turn.
enum Input {
    Event(Event),
    Call(Box<IncomingCall>),
    Module(ModuleChange),
    Report(Report),
}

/// The event loop: the core, and everything it drives.
pub(crate) struct Node {
    /// The node's decisions and protocol state.
    core: NodeCore<Plugins>,
    /// The workers of the WebAssembly guests, by slot.
    workers: Workers,
    /// The workers' reports.
    reports: Receiver<Report>,
    /// Set when the node's WASI command ended, with its exit status.
    exited: Option<i32>,
    /// The native plugins, kept (never read) so that their code stays loaded.
    _natives: Vec<NativePlugin>,
    /// Where the calls the guests and plugins send go: the group, and this node.
    outgoing: Arc<Outgoing>,
    /// An encoded control frame being built.
    frame: Vec<u8>,
    /// Calls sent by this node's guests and plugins to functions it serves itself,
    /// routed at the end of the turn.
    local: Outbox,
    /// An emptied outbox, for the plugins' next calls when their calls are taken.
    spare: Outbox,
    stats: Arc<Stats>,
    /// What the guests share to make calls with replies (the node keeps its peers fresh).
    calls: Arc<Calls>,
    /// The node's TCP port, announced.
    tcp: Option<SocketAddr>,
    /// The pool of connections to peers, whose counts are announced.
    pool: Option<PoolHandle>,
    /// The published modules it takes, whose publications are announced.
    modules: Option<Arc<ModuleService>>,
}

/// The node's native plugins, as the core sees them: the process's registry of the
/// functions they registered.
pub(crate) struct Plugins {
    /// How many plugins were loaded.
    count: usize,
}

impl Natives for Plugins {
    type Server = NativeServer;

    fn resolve(&self, function: &str) -> Option<NativeServer> {
        native::resolve(function)
    }

    fn functions(&self) -> Vec<String> {
        (0..self.count).flat_map(NativePlugin::functions).collect()
    }
}

/// Where the node is reachable and how it calls out, for [`Node::new`].
#[derive(Debug, Clone, Default)]
pub(crate) struct Links {
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
    pub(crate) fn new(
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
        let config = CoreConfig {
            id,
            name: name.to_string(),
            receive_window: links.receive_window,
            serves_mailboxes: calls.serves_mailboxes(),
        };
        let plugins = Plugins {
            count: natives.len(),
        };
        let mut node = Node {
            core: NodeCore::new(config, plugins, stats.clone(), Instant::now()),
            workers: Workers::new(WorkerLinks {
                reports: reports_tx,
                outgoing: outgoing.clone(),
                stats: stats.clone(),
            }),
            reports,
            exited: None,
            _natives: natives,
            outgoing,
            frame: Vec::new(),
            local: Outbox::default(),
            spare: Outbox::default(),
            stats,
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
        self.core.reroute(self.workers.slots(), Instant::now());
        let local = self
            .core
            .table()
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
        let table = self.core.table().clone();
        self.outgoing.set_serves(
            Arc::new(move |function: &str| {
                table.targets(function).is_some() || native::serves(function)
            }),
            &self.core.stream_functions(),
        );
    }

    /// Carries out what the core decided, in order.
    fn act(&mut self) {
        // (The time is read at each step: a hand-over may have waited for a full queue.)
        while let Some(action) = self.core.poll_action(Instant::now(), self.workers.slots()) {
            match action {
                Action::Hand { guest, work } => self.hand(guest, work),
                Action::RunNative {
                    server,
                    run,
                    origin,
                    counts,
                    peer,
                } => self.run_native(server, &run, origin, &counts, &peer),
                Action::CallNative {
                    server,
                    function,
                    args,
                    counts,
                    peer,
                    answer,
                } => {
                    let outcome = server
                        .call(&function, &args)
                        .map(|()| Value::Null)
                        .map_err(|e| CallFailure::new(FailureKind::BadArguments, e));
                    let ran = if outcome.is_ok() {
                        &counts.run
                    } else {
                        &counts.dropped
                    };
                    Stats::bump(ran);
                    let ran = u64::from(outcome.is_ok());
                    peer.add(ran, 1 - ran);
                    self.collect_native_sent();
                    answer(outcome);
                }
                Action::Answer { answer, outcome } => answer(outcome),
                Action::Announce => self.announce(),
                Action::SendStatus(to, status) => self.outgoing.send_status(to, &status),
                Action::PeersChanged { changed, gone } => self.calls.update_peers(changed, gone),
            }
        }
    }

    /// Runs every call of `run` on a native plugin, on this thread, and sends on what the
    /// plugin sent for each call before the next.
    fn run_native(
        &mut self,
        server: NativeServer,
        run: &wire::CallRun,
        origin: Origin,
        counts: &FunctionCounts,
        peer: &PeerCalls,
    ) {
        let function = run.function.as_str();
        // Counted once for the run: an atomic add per call costs more than the call into a
        // plugin does.
        let (mut delivered, mut dropped) = (0, 0);
        for args in run.arguments() {
            match server.call(function, args) {
                Ok(()) => delivered += 1,
                Err(e) => {
                    dropped += 1;
                    Stats::bump(&self.stats.calls_dropped);
                    Stats::bump(&counts.dropped);
                    self.core
                        .drop_log()
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

    /// Claims the node's name on the group, has the guests run their `init` hooks, then
    /// routes until [`Event::Shutdown`], `stopping`, or the end of its WASI command
    /// (returning the command's exit status; else 0). Fails when the name is taken.
    pub(crate) fn run(mut self, inputs: Inputs, stopping: &AtomicBool) -> anyhow::Result<i32> {
        native::run_plugins_on_this_thread(self.outgoing.clone(), self.calls.clone());
        let held = self.claim_name(&inputs.events)?;
        // The name is this node's: its peers hear of it before its guests start (a guest
        // may send for long in its `init`).
        if self.outgoing.on_group() {
            self.core.announce_if_due();
            self.act();
        }
        // The peers heard while claiming the name are the guests' before any guest runs:
        // a WASI command may call one of them at once.
        self.core.share_peers();
        self.act();
        // Calls native plugins made while they were loaded (in their init).
        self.collect_native_sent();
        // Each guest runs its `init` first: what is routed to it waits behind.
        for g in 0..self.workers.slots().len() {
            self.hand(g, Work::Init { done: None });
        }
        self.core.guests_started();
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
                self.core
                    .idle_timeout(Instant::now(), self.outgoing.on_group())
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
            self.core.set_caught_up(taken < MAX_EVENTS_PER_TURN);
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

    /// Asks the group who is there and listens as [`core::NameClaim`] says: if a node
    /// announces this node's name meanwhile, the name is taken; if not, it is this node's
    /// for good. Returns the events that arrived meanwhile, to handle once the guests are
    /// initialised.
    fn claim_name(&mut self, events: &Receiver<Event>) -> anyhow::Result<Vec<Event>> {
        if !self.outgoing.on_group() {
            self.core.claimed();
            return Ok(Vec::new());
        }
        // (It announces itself only once the name is its own: a node refused its name was
        // never anyone's peer, nor a receiver their windows wait for.) It asks twice, so
        // that one lost answer does not hide a peer: the peers are the receivers its
        // window waits for.
        self.frame.clear();
        wire::encode_query(&mut self.frame);
        self.outgoing.send_control(&self.frame);
        let mut claim = core::NameClaim::new(Instant::now());
        let mut held = Vec::new();
        loop {
            let now = Instant::now();
            let wake = match claim.poll(now) {
                core::ClaimStep::AskAgain => {
                    self.outgoing.send_control(&self.frame);
                    continue;
                }
                core::ClaimStep::Over => break,
                core::ClaimStep::Listen(until) => until,
            };
            let event = match events.recv_timeout(wake.saturating_duration_since(now)) {
                Ok(event) => event,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            if let Event::Datagram { from, datagram, .. } = &event {
                self.core.claim_heard(*from, datagram, Instant::now())?;
            }
            held.push(event);
        }
        self.core.claimed();
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
        self.core.clear_routes();
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
        for (peer, counts) in self.core.stream_counts() {
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

    /// Handles one input; false on shutdown.
    fn handle(&mut self, input: Input) -> bool {
        let event = match input {
            Input::Event(event) => event,
            Input::Call(call) => {
                self.core.handle_call(*call);
                self.act();
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
                self.core
                    .handle_datagram(Instant::now(), from, datagram, len);
                self.act();
            }
            Event::StdinLine(line) => {
                self.core.handle_stdin_line(line.into());
                self.act();
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
                self.core.announce_soon(Instant::now());
            }
            ModuleChange::Remove { name, done } => {
                let had = self.workers.remove(&name);
                if had {
                    self.reroute();
                    self.core.announce_soon(Instant::now());
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

    /// Ends a turn: routes the calls sent locally, then runs the core's timers and flushes
    /// the batch to the group.
    fn finish_turn(&mut self) {
        let mut local = std::mem::take(&mut self.local);
        for (function, args) in local.runs() {
            // (In runs no longer than a datagram's, so that one guest's burst to itself
            // is taken in entries of a bounded size.)
            let args: Vec<&[u8]> = args.collect();
            for chunk in args.chunks(MAX_LOCAL_RUN) {
                let run = wire::CallRun::collect(0, function, chunk.iter().copied());
                self.core.dispatch(Arc::new(run), Origin::Local, None);
                self.act();
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
        self.core.handle_timeout();
        self.act();
        self.flush();
    }

    /// Announces the node to the group, and keeps what it received of each peer for the
    /// metrics.
    fn announce(&mut self) {
        let streams: Vec<StreamCounts> = self
            .core
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
        let connections = self.pool.as_ref().map(RemoteCaller::links);
        let modules = self
            .modules
            .as_ref()
            .map(|m| m.announced())
            .unwrap_or_default();
        let mut announce = self.core.announcement(
            Instant::now(),
            streams,
            self.tcp,
            connections.as_ref(),
            modules,
        );
        // Connection counts and stream counts are a courtesy: drop them rather than not
        // announce at all.
        let max = self.outgoing.max_control_frames();
        loop {
            self.frame.clear();
            wire::encode_announce(&announce, &mut self.frame);
            if self.frame.len() <= max
                || (announce.streams.pop().is_none()
                    && announce.presence.links.pop().is_none()
                    && announce.modules.pop().is_none())
            {
                break;
            }
        }
        self.outgoing.send_control(&self.frame);
    }

    /// Sends what the plugins sent so far (the last datagram partly filled).
    fn flush(&mut self) {
        if let Err(stopped) = self.outgoing.flush(Patience::UntilStopping) {
            tracing::debug!("{stopped}");
        }
    }
}

impl Routable for WorkerHandle {
    fn name(&self) -> &str {
        WorkerHandle::name(self)
    }

    fn function_ids(&self) -> impl Iterator<Item = &str> {
        self.exports().iter().map(|e| e.function.id.as_str())
    }

    fn jail(&self) -> &dhost_runtime::jail::Jail {
        &self.setup().jail
    }

    fn is_down(&self) -> bool {
        WorkerHandle::is_down(self)
    }

    fn is_waiting(&self) -> bool {
        WorkerHandle::is_waiting(self)
    }
}

impl Guest for WorkerHandle {
    fn hears(&self, events: EventInterface) -> bool {
        WorkerHandle::hears(self, events)
    }

    fn takes_stdin(&self) -> bool {
        self.setup().jail.stdin
    }
}
