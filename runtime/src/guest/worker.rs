//! A WebAssembly guest's own thread, its *worker*: it owns the guest's instance and runs
//! everything the guest does, one thing at a time, so that guests of one node run side by
//! side and a guest waiting for a reply holds up only itself.
//!
//! The node's routing (the node crate's `event_loop`) hands a worker [`Work`] through a
//! bounded queue: runs of calls (in the order their senders' streams deliver them), calls
//! with a reply, stdin lines, the `init` and a WASI command's `run`. A full queue blocks
//! the routing, which is how a guest that falls behind pushes back on the network side
//! instead of losing calls. The worker itself fires the guest's timers, checks its watched pollables,
//! and restarts it after a trap (or unloads it when it keeps failing).
//!
//! What the guest sends leaves from the worker: to the group through the node's
//! [`CallSender`] (flushed after every piece of work), and, for the functions the node
//! serves itself, back to the routing as a [`Report::Local`], which never blocks.
//!
//! Another guest of the node calls this one through [`WorkerHandle::call`]: the call waits
//! in the queue like any other work, and fails at once if this guest is itself waiting
//! for a reply (the call chain came back to it, which would wait for itself).

use super::network::{CallSender, Patience};
use super::outbox::Outbox;
use super::state::GuestSetup;
use super::supervision::{Health, MAX_RESTARTS, RESTART_WINDOW, Recovery};
use super::wasm::{Export, WasmGuest, into_reply};
use super::world::EventInterface;
use crate::stats::{DropLog, FunctionCounts, PeerCalls, Stats};
use crossbeam_channel::{Receiver, RecvTimeoutError, SendTimeoutError, Sender};
use dhost_protocol::outcome::{CallFailure, FailureKind, Outcome};
use dhost_protocol::wire;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use wasmtime::component::Val;

/// How many pieces of work may wait for a guest before the routing waits for room.
pub(crate) const QUEUE_LEN: usize = 1024;

/// How often a guest's watched pollables are checked while it watches any.
const READINESS_INTERVAL: Duration = Duration::from_millis(10);

/// Where a call came from.
#[derive(Debug, Clone, Copy)]
pub enum Origin {
    /// A guest or plugin of this node.
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

/// Where the outcome of a call with a reply goes (the TCP connection it came from, or the
/// guest waiting for it).
pub type Responder = Box<dyn FnOnce(Outcome) + Send>;

/// What a worker is handed.
pub enum Work {
    /// Run the guest's `init` (if it exports one); a published module's loader is told
    /// whether it passed (and a module that fails it is unloaded, not restarted).
    Init {
        /// Told once `init` returned, for a published module.
        done: Option<oneshot::Sender<Result<(), String>>>,
    },
    /// Run every call of a run on export `slot`, in order.
    Run {
        /// The export.
        slot: usize,
        /// The calls, shared by every guest that serves the function.
        calls: Arc<wire::CallRun>,
        /// Where they came from (for what the log says of those dropped).
        origin: Origin,
        /// The counters of the peer they came from.
        peer: Arc<PeerCalls>,
        /// The share of the TCP port's budget the run holds until it has run (a cast from
        /// the port), if any.
        held: Option<Arc<dhost_protocol::rpc::budget::Held>>,
    },
    /// Run one call on export `slot` and hand its outcome to `reply`.
    Call {
        /// The export.
        slot: usize,
        /// The arguments, one CBOR array.
        args: Vec<u8>,
        /// Where the outcome goes.
        reply: Responder,
        /// The counters of the peer it came from (none: another guest of this node).
        peer: Option<Arc<PeerCalls>>,
    },
    /// A line of the node's stdin, for `stdin-events.on-line`.
    StdinLine(Arc<str>),
    /// A peer joined, left or changed its functions, for `group-events.on-change`.
    GroupChange(dhost_protocol::membership::GroupChange, Arc<str>),
    /// Run the WASI command's `run` to its end; the node stops with its exit status.
    Command,
}

impl Work {
    /// Answers work that no guest will run, for reason `why`: a call fails as unavailable
    /// and a run's calls count as dropped, a published module's loader hears `why`.
    pub fn refuse(self, stats: &Stats, why: &str) {
        match self {
            Work::Run { calls, peer, .. } => {
                let n = calls.count() as u64;
                Stats::add(&stats.calls_dropped, n);
                peer.add(0, n);
            }
            Work::Call { reply, peer, .. } => {
                Stats::bump(&stats.calls_dropped);
                peer_calls(stats, peer).add(0, 1);
                reply(Err(CallFailure::new(FailureKind::Unavailable, why)));
            }
            Work::Init { done: Some(done) } => {
                let _ = done.send(Err(why.to_string()));
            }
            Work::Init { done: None }
            | Work::StdinLine(_)
            | Work::GroupChange(..)
            | Work::Command => {}
        }
    }
}

/// The counters of `peer`, or of this node's own guests when there is none.
fn peer_calls(stats: &Stats, peer: Option<Arc<PeerCalls>>) -> Arc<PeerCalls> {
    peer.unwrap_or_else(|| stats.peer_calls.of(PeerCalls::THIS_NODE))
}

/// What a worker tells the routing.
#[derive(Debug)]
pub enum Report {
    /// Calls the guest sent to functions this node serves, to run here.
    Local(Outbox),
    /// The guest was unloaded (it failed too often, or in a published module's `init`).
    Unloaded {
        /// The worker's id.
        worker: u64,
        /// Why.
        why: String,
    },
    /// The WASI command ended with this exit status.
    Exited(i32),
}

/// What a worker needs besides its guest.
#[derive(Clone)]
pub struct WorkerLinks {
    /// Where it reports.
    pub reports: Sender<Report>,
    /// Where what the guest sends goes.
    pub outgoing: Arc<dyn CallSender>,
    /// The node's counters.
    pub stats: Arc<Stats>,
}

/// What does not change while a guest runs, shared by its handles.
struct Facts {
    setup: Arc<GuestSetup>,
    exports: Vec<Export>,
    hears: [bool; EventInterface::COUNT],
    command: bool,
}

/// The routing's (and other guests') end of a worker: its queue, and what it serves.
/// Once every handle is dropped, the worker runs what is queued and ends.
#[derive(Clone)]
pub struct WorkerHandle {
    id: u64,
    queue: Sender<Work>,
    facts: Arc<Facts>,
}

impl std::fmt::Debug for WorkerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WorkerHandle({} #{})", self.name(), self.id)
    }
}

impl super::calls::ServingGuest for WorkerHandle {
    fn name(&self) -> &str {
        WorkerHandle::name(self)
    }

    fn is_available(&self) -> bool {
        !self.is_waiting() && !self.is_down()
    }

    fn admits(&self, slot: usize, caller: &str) -> bool {
        let Some(export) = self.exports().get(slot) else {
            return false;
        };
        self.setup()
            .jail
            .may_serve(&export.function.id, Some(caller))
    }

    fn call(&self, slot: usize, args: Vec<u8>, timeout: Duration) -> Outcome {
        WorkerHandle::call(self, slot, args, timeout)
    }
}

impl WorkerHandle {
    /// Starts a thread that runs `guest`, as worker `id`.
    pub fn start(
        guest: WasmGuest,
        id: u64,
        links: WorkerLinks,
    ) -> std::io::Result<(WorkerHandle, JoinHandle<()>)> {
        let facts = Arc::new(Facts {
            setup: guest.setup().clone(),
            exports: guest.exports().to_vec(),
            hears: EventInterface::ALL.map(|e| guest.hears(e)),
            command: guest.is_command(),
        });
        let (queue, work) = crossbeam_channel::bounded(QUEUE_LEN);
        let worker = Worker {
            id,
            guest,
            health: Health::default(),
            links,
            drops: DropLog::new(),
            sent: Outbox::default(),
            local: Outbox::default(),
            unloaded: false,
            export_counts: Vec::new(),
        };
        let thread = std::thread::Builder::new()
            .name(format!("guest {}", facts.setup.name))
            .spawn(move || worker.run(work))?;
        Ok((WorkerHandle { id, queue, facts }, thread))
    }

    /// The worker's id (unique in the node).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The guest's name.
    pub fn name(&self) -> &str {
        &self.facts.setup.name
    }

    /// What the guest was set up with.
    pub fn setup(&self) -> &GuestSetup {
        &self.facts.setup
    }

    /// The application functions the guest serves, in slot order.
    pub fn exports(&self) -> &[Export] {
        &self.facts.exports
    }

    /// Whether the guest exports the event interface `events`.
    pub fn hears(&self, events: EventInterface) -> bool {
        self.facts.hears[events as usize]
    }

    /// Whether the guest is a WASI command.
    pub fn is_command(&self) -> bool {
        self.facts.command
    }

    /// Whether the guest cannot take calls now (waiting to restart, or unloaded).
    pub fn is_down(&self) -> bool {
        self.facts.setup.down.load(Ordering::Relaxed)
    }

    /// Whether the guest is waiting for the reply to a call with a reply of its own.
    pub fn is_waiting(&self) -> bool {
        self.facts.setup.waiting.load(Ordering::Relaxed)
    }

    /// Queues `work`, waiting while the queue is full; gives it back if the worker ended.
    pub fn send(&self, work: Work) -> Result<(), Work> {
        self.queue.send(work).map_err(|e| e.into_inner())
    }

    /// Calls export `slot` with `args` (one CBOR array) for another guest of the node, and
    /// waits at most `timeout` for room in the queue and then for the outcome.
    pub fn call(&self, slot: usize, args: Vec<u8>, timeout: Duration) -> Outcome {
        let name = self.name();
        let unavailable = |why: String| Err(CallFailure::new(FailureKind::Unavailable, why));
        if self.facts.setup.waiting.load(Ordering::SeqCst) {
            return unavailable(format!(
                "guest {name} is waiting for the reply to a call of its own (a call back \
                 into a guest further up the call chain would wait for itself)"
            ));
        }
        if self.is_down() {
            return unavailable(format!(
                "guest {name} is restarting after a trap, or was unloaded"
            ));
        }
        let deadline = Instant::now() + timeout;
        let (tx, rx) = crossbeam_channel::bounded(1);
        let reply: Responder = Box::new(move |outcome| {
            let _ = tx.send(outcome);
        });
        match self.queue.send_deadline(
            Work::Call {
                slot,
                args,
                reply,
                peer: None,
            },
            deadline,
        ) {
            Ok(()) => {}
            Err(SendTimeoutError::Timeout(_)) => {
                return Err(CallFailure::new(
                    FailureKind::Timeout,
                    format!(
                        "guest {name} stayed too busy to take the call for {}",
                        humantime::format_duration(timeout)
                    ),
                ));
            }
            Err(SendTimeoutError::Disconnected(_)) => {
                return unavailable(format!("guest {name} was unloaded"));
            }
        }
        match rx.recv_deadline(deadline) {
            Ok(outcome) => outcome,
            Err(RecvTimeoutError::Timeout) => Err(CallFailure::new(
                FailureKind::Timeout,
                format!(
                    "guest {name} did not answer within {}",
                    humantime::format_duration(timeout)
                ),
            )),
            Err(RecvTimeoutError::Disconnected) => {
                unavailable(format!("guest {name} stopped before it answered"))
            }
        }
    }
}

/// The worker's thread.
struct Worker {
    id: u64,
    guest: WasmGuest,
    health: Health,
    links: WorkerLinks,
    drops: DropLog,
    /// The calls the guest sent, being handed to the [`CallSender`] (kept for its room).
    sent: Outbox,
    /// The calls the guest sent to functions this node serves, for the routing.
    local: Outbox,
    /// Set once the guest is unloaded: the worker ends.
    unloaded: bool,
    /// The counters of each export's function, by slot, as they are first needed.
    export_counts: Vec<Option<Arc<FunctionCounts>>>,
}

impl Worker {
    /// Runs work as it comes, and the guest's timers and pollables as they are due, until
    /// the queue is closed (after what it holds), the guest is unloaded, or the node stops.
    fn run(mut self, work: Receiver<Work>) {
        while !self.unloaded && !self.stopping() {
            let next = match self.wake_in() {
                None => work.recv().map_err(|_| RecvTimeoutError::Disconnected),
                Some(wait) => work.recv_timeout(wait),
            };
            match next {
                Ok(next) => self.handle(next),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            self.restart_due();
            self.fire_timers();
            self.check_readiness();
            self.hand_over();
        }
        self.hand_over();
        self.refuse_left(&work);
    }

    /// Answers what is left in the queue of a worker that ends (its guest unloaded, or the
    /// node stopping): calls fail as unavailable, runs count as dropped, a published
    /// module's loader hears it did not start.
    fn refuse_left(&mut self, work: &Receiver<Work>) {
        let why = if self.unloaded {
            format!("guest {} was unloaded", self.name())
        } else {
            "the node is stopping".to_string()
        };
        for left in work.try_iter() {
            left.refuse(&self.links.stats, &why);
        }
    }

    /// Whether the guest takes no work now: unloaded, or waiting to restart.
    fn resting(&self) -> bool {
        self.unloaded || self.health.is_resting()
    }

    fn name(&self) -> &str {
        self.guest.name()
    }

    fn setup(&self) -> &GuestSetup {
        self.guest.setup()
    }

    fn stopping(&self) -> bool {
        self.setup().stopping.load(Ordering::Relaxed)
    }

    fn handle(&mut self, work: Work) {
        match work {
            Work::Init { done } => self.init(done),
            Work::Run {
                slot,
                calls,
                origin,
                peer,
                held: _held,
            } => self.run_calls(slot, &calls, origin, &peer),
            Work::Call {
                slot,
                args,
                reply,
                peer,
            } => {
                let (outcome, trap) = self.try_export(slot, &args);
                let peer = peer_calls(&self.links.stats, peer);
                if outcome.is_ok() {
                    Stats::bump(&self.links.stats.calls_delivered);
                    Stats::bump(&self.counts_of(slot).run);
                    peer.add(1, 0);
                } else {
                    Stats::bump(&self.counts_of(slot).dropped);
                    peer.add(0, 1);
                }
                // (The caller hears of a trap before the guest restarts.)
                reply(outcome);
                if let Some(trap) = trap {
                    self.trapped(&self.guest.exports()[slot].function.id.clone(), trap);
                }
            }
            Work::StdinLine(line) => {
                self.call_event(EventInterface::Stdin, &[Val::String(line.to_string())]);
            }
            Work::GroupChange(change, node) => {
                let change = Val::Enum(change.name().to_string());
                self.call_event(
                    EventInterface::Group,
                    &[change, Val::String(node.to_string())],
                );
            }
            Work::Command => {
                // (It takes no calls while it runs: they would wait for its end.)
                self.setup().down.store(true, Ordering::Relaxed);
                let outcome = self.guest.run_command();
                self.setup().down.store(false, Ordering::Relaxed);
                self.hand_over();
                let code = outcome.unwrap_or_else(|e| {
                    tracing::error!("guest {} failed: {}", self.name(), e.root_cause());
                    tracing::debug!("guest {} failed: {e:?}", self.name());
                    1
                });
                let _ = self.links.reports.send(Report::Exited(code));
            }
        }
    }

    /// Runs `init`. A published module (`done` is there) that fails in it is unloaded at
    /// once: code from the network is not restarted.
    fn init(&mut self, done: Option<oneshot::Sender<Result<(), String>>>) {
        let Some(done) = done else {
            self.call_event(EventInterface::Lifecycle, &[]);
            return;
        };
        let outcome = if self.guest.hears(EventInterface::Lifecycle) {
            self.guest.call_event(EventInterface::Lifecycle, &[])
        } else {
            Ok(())
        };
        self.hand_over();
        let outcome = outcome.map_err(|e| {
            Stats::bump(&self.links.stats.traps);
            let name = self.name().to_string();
            Stats::bump(&self.links.stats.guests.of(&name).traps);
            tracing::error!(
                "guest {name} trapped in dstc:node/lifecycle#init: {}",
                e.root_cause()
            );
            self.unload("it failed in its init");
            format!("guest {name} failed in its init (the node's log says how), and was unloaded")
        });
        let _ = done.send(outcome);
    }

    /// Runs every call of `calls` on export `slot`: in one entry if the guest takes them
    /// so (`run-events`), else one by one; and counts them.
    fn run_calls(&mut self, slot: usize, calls: &wire::CallRun, origin: Origin, peer: &PeerCalls) {
        if !self.resting() {
            let outcome = self
                .guest
                .call_run(slot, calls, &mut self.sent, &mut self.local);
            match outcome {
                None => {} // (one by one)
                Some(Ok(())) => {
                    self.send_sent();
                    self.count_run(&calls.function, peer, calls.count() as u64, 0);
                    return;
                }
                Some(Err(error)) => {
                    // What it sent before it trapped was sent; which calls of the run it
                    // ran is not known: the run counts as dropped.
                    self.send_sent();
                    let n = calls.count();
                    Stats::add(&self.links.stats.calls_dropped, n as u64);
                    self.count_run(&calls.function, peer, 0, n as u64);
                    let what = format!("a run of {n} call(s) to {}", calls.function);
                    self.trapped(&what, error);
                    return;
                }
            }
        }
        let mut delivered = 0;
        for args in calls.arguments() {
            match self.run_export(slot, args) {
                Ok(_) => delivered += 1,
                // (A trap is logged as such, with the guest's restart.)
                Err(failure) if failure.kind == FailureKind::Trapped => {}
                Err(failure) => self.drops.dropped(format_args!(
                    "a call from {origin} to `{}`: {}",
                    calls.function, failure.message
                )),
            }
        }
        let dropped = calls.count() as u64 - delivered;
        self.count_run(&calls.function, peer, delivered, dropped);
    }

    /// Counts, of a run of calls to `function` from `peer`, `run` run and `dropped`
    /// dropped: in all (the node-wide count of drops is kept where each drop happens), for
    /// the function and for the peer.
    fn count_run(&self, function: &str, peer: &PeerCalls, run: u64, dropped: u64) {
        let stats = &self.links.stats;
        Stats::add(&stats.calls_delivered, run);
        let counts = stats.functions.of(function);
        Stats::add(&counts.run, run);
        Stats::add(&counts.dropped, dropped);
        peer.add(run, dropped);
    }

    /// The counters of export `slot`'s function, found once per export.
    fn counts_of(&mut self, slot: usize) -> Arc<FunctionCounts> {
        if self.export_counts.len() <= slot {
            self.export_counts.resize(slot + 1, None);
        }
        let function = &self.guest.exports()[slot].function.id;
        self.export_counts[slot]
            .get_or_insert_with(|| self.links.stats.functions.of(function))
            .clone()
    }

    /// Runs export `slot` with `args` (one CBOR array), sends on what it sent, and
    /// restarts the guest if it trapped; returns its result as CBOR (`null` without
    /// results). A failed call is counted as dropped.
    fn run_export(&mut self, slot: usize, args: &[u8]) -> Outcome {
        let (outcome, trap) = self.try_export(slot, args);
        if let Some(trap) = trap {
            self.trapped(&self.guest.exports()[slot].function.id.clone(), trap);
        }
        outcome
    }

    /// Runs export `slot` with `args` as [`Self::run_export`] does, but hands back a trap
    /// instead of restarting the guest: the caller answers first.
    fn try_export(&mut self, slot: usize, args: &[u8]) -> (Outcome, Option<anyhow::Error>) {
        let stats = &self.links.stats;
        if self.resting() {
            Stats::bump(&stats.calls_dropped);
            let why = if self.unloaded {
                format!("guest {} was unloaded", self.name())
            } else {
                format!("guest {} is waiting to restart", self.name())
            };
            return (Err(CallFailure::new(FailureKind::Unavailable, why)), None);
        }
        let outcome = self
            .guest
            .call_cbor(slot, args, &mut self.sent, &mut self.local);
        let reply = match outcome {
            Ok(None) => Ok(ciborium::Value::Null),
            outcome => into_reply(self.guest.name(), outcome),
        };
        // What it sent before it returned (or trapped) was sent.
        self.send_sent();
        match reply {
            Ok(result) => (Ok(result), None),
            Err((failure, Some(trap))) => (Err(failure), Some(trap)),
            Err((failure, None)) => {
                Stats::bump(&self.links.stats.calls_dropped);
                (Err(failure), None)
            }
        }
    }

    /// Calls a guest's event hook, if it exports it and is not waiting to restart.
    fn call_event(&mut self, events: EventInterface, params: &[Val]) {
        if self.resting() || !self.guest.hears(events) {
            return;
        }
        let outcome = self.guest.call_event(events, params);
        self.guest.take_sent(&mut self.sent, &mut self.local);
        self.send_sent();
        if let Err(e) = outcome {
            let what = format!("dstc:node/{}#{}", events.interface(), events.function());
            self.trapped(&what, e);
        }
    }

    /// The guest trapped in `function` (or broke a limit of its jail): start it afresh, at
    /// once the first time and after a growing pause when it fails again, and unload it
    /// once it has failed more than [`MAX_RESTARTS`] times within [`RESTART_WINDOW`].
    fn trapped(&mut self, function: &str, error: anyhow::Error) {
        if self.stopping() {
            return; // (interrupted: the node is stopping)
        }
        Stats::bump(&self.links.stats.traps);
        let name = self.name().to_string();
        Stats::bump(&self.links.stats.guests.of(&name).traps);
        tracing::error!("guest {name} trapped in {function}: {}", error.root_cause());
        tracing::debug!("guest {name} trapped in {function}: {error:?}");
        // Whatever it sent before trapping was sent: keep it.
        self.guest.take_sent(&mut self.sent, &mut self.local);
        self.send_sent();

        match self.health.failed(Instant::now()) {
            Recovery::GiveUp { failures } => {
                let why = format!(
                    "it failed {failures} times within {}",
                    humantime::format_duration(RESTART_WINDOW)
                );
                self.unload(&why);
            }
            Recovery::RestartNow => self.restart(),
            Recovery::RestartAt {
                pause, failures, ..
            } => {
                tracing::warn!(
                    "guest {name} restarts in {} (failure {failures} of at most {MAX_RESTARTS} within {})",
                    humantime::format_duration(pause),
                    humantime::format_duration(RESTART_WINDOW)
                );
                self.setup().down.store(true, Ordering::Relaxed);
            }
        }
    }

    /// Instantiates the guest afresh and runs its `init`.
    fn restart(&mut self) {
        self.health.settled();
        match self.guest.restart() {
            Ok(()) => {
                self.setup().down.store(false, Ordering::Relaxed);
                Stats::bump(&self.links.stats.guests.of(self.name()).restarts);
                tracing::warn!("guest {} restarted", self.name());
                self.call_event(EventInterface::Lifecycle, &[]);
            }
            Err(e) => self.unload(&format!("it cannot be restarted: {e:#}")),
        }
    }

    /// Restarts the guest if its pause is over.
    fn restart_due(&mut self) {
        if self.health.restart_due(Instant::now()) {
            self.restart();
        }
    }

    /// Unloads the guest: it serves nothing any more, and the worker ends.
    fn unload(&mut self, why: &str) {
        self.health.settled();
        self.unloaded = true;
        self.setup().down.store(true, Ordering::Relaxed);
        tracing::error!("guest {} unloaded: {why}", self.name());
        let _ = self.links.reports.send(Report::Unloaded {
            worker: self.id,
            why: why.to_string(),
        });
    }

    /// How long the worker may wait for work: until its next timer, restart or readiness
    /// check (none: until work comes).
    fn wake_in(&mut self) -> Option<Duration> {
        let now = Instant::now();
        let (deadline, watching) = self
            .guest
            .with_state(|state| (state.timers.next_deadline(), !state.watches.is_empty()));
        let mut wake = [deadline, self.health.restart_at()]
            .into_iter()
            .flatten()
            .min()
            .map(|at| at.saturating_duration_since(now));
        if watching {
            wake = Some(wake.map_or(READINESS_INTERVAL, |w| w.min(READINESS_INTERVAL)));
        }
        wake
    }

    fn fire_timers(&mut self) {
        if self.resting() {
            return;
        }
        let now = Instant::now();
        while let Some(token) = self.guest.with_state(|state| state.timers.pop_due(now)) {
            self.call_event(EventInterface::Timer, &[Val::U64(token)]);
        }
    }

    fn check_readiness(&mut self) {
        if self.resting() {
            return;
        }
        match self.guest.take_ready() {
            Ok(ready) => {
                for token in ready {
                    self.call_event(EventInterface::Ready, &[Val::U64(token)]);
                }
            }
            Err(e) => self.trapped("dstc:node/readiness", e),
        }
    }

    /// Hands what the guest sent to [`CallSender`] (the calls to this node's own functions
    /// are copied into `local`).
    fn send_sent(&mut self) {
        if self.sent.is_empty() {
            return;
        }
        if let Err(stopped) = self.links.outgoing.send(&mut self.sent, &mut self.local) {
            tracing::debug!("{stopped}");
        }
    }

    /// After a piece of work: sends what the guest sent (the last datagram partly filled),
    /// and hands the routing the calls to this node.
    fn hand_over(&mut self) {
        self.guest.take_sent(&mut self.sent, &mut self.local);
        self.send_sent();
        if let Err(stopped) = self.links.outgoing.flush(Patience::UntilStopping) {
            tracing::debug!("{stopped}");
        }
        if !self.local.is_empty() {
            let local = std::mem::take(&mut self.local);
            let _ = self.links.reports.send(Report::Local(local));
        }
    }
}
