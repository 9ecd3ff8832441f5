//! The node's decisions, with no I/O: a state machine that takes the node's inputs (a
//! datagram with the time it was heard, a call from the TCP port, a stdin line, local calls
//! to dispatch, a timer) and says what to do as [`Action`]s, in order, for the driver
//! ([`super::Node`]) to carry out: hand work to a guest, run a native plugin, answer a
//! call, send an announcement or a stream status, tell the guests' calls what the peers
//! are.
//!
//! An input is taken at once into the state it concerns (a datagram into its sender's
//! stream), and what follows from it is queued as *pending* work; [`NodeCore::poll_action`]
//! works through that one step at a time (one frame, one run of calls, one timer's check),
//! at the time the driver gives, and only when the actions of the step before have all been
//! taken. So each decision (who serves a run and admits its caller, what is counted and
//! logged, whether a peer is silent) is taken just before the driver carries it out, after
//! whatever the hand-overs before it cost, in the order the frames came: as a node did when
//! it handled frames and handed work over in one loop.
//!
//! It owns the node's protocol state: membership (names, peers, announcements), the
//! receiving side of the peers' streams, the routing table, and the counters of what it
//! routed and dropped. It reads no clock, touches no socket, channel or thread, and sees
//! guests and plugins through two small traits ([`Guest`], [`Natives`]), so that every rule
//! is tested below with made-up guests and a made-up clock: dispatch and drop accounting,
//! a goodbye's last datagrams running first, the silent-peer rule, who answers a call with
//! a reply.

use super::routing::{Routable, Route, RoutingTable};
use crate::modules::Publication;
use crate::rpc::budget::Held;
use crate::stream::receive::{Counts, Delivered, Meta, ReceiveStreams};
use crate::tcp_port::IncomingCall;
use crate::transport::show;
use dhost_protocol::membership::{Change, GroupChange, Membership, NameTaken, PEER_EXPIRY};
use dhost_protocol::outcome::{CallFailure, FailureKind, Outcome};
use dhost_protocol::wire::{self, Announce, Datagram, Frame, Presence, Status, StreamCounts};
use dhost_runtime::guest::calls::PeerEntry;
use dhost_runtime::guest::worker::{Origin, Responder, Work};
use dhost_runtime::guest::world::EventInterface;
use dhost_runtime::stats::{DropLog, FunctionCounts, PeerCalls, Stats};
use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// The most streams of peers gone that the closing summary still names.
const MAX_STREAMS_REMEMBERED: usize = 64;

/// How long a starting node listens for another node announcing its name.
pub(crate) const CLAIM_WAIT: Duration = Duration::from_millis(150);

/// When a starting node asks the group who is there a second time.
pub(crate) const QUERY_AGAIN: Duration = Duration::from_millis(60);

/// The longest the event loop sleeps with nothing due.
const IDLE: Duration = Duration::from_secs(3600);

/// What the core needs to know of a guest, besides what routing does.
pub(crate) trait Guest: Routable {
    /// Whether it hears `events` (it exports that interface).
    fn hears(&self, events: EventInterface) -> bool;
    /// Whether its jail gives it the node's stdin.
    fn takes_stdin(&self) -> bool;
}

/// The native plugins, as the core sees them.
pub(crate) trait Natives {
    /// What runs one function of a plugin.
    type Server;
    /// The plugin function that serves `function`, if one does.
    fn resolve(&self, function: &str) -> Option<Self::Server>;
    /// The function ids the plugins serve, as the node announces them.
    fn functions(&self) -> Vec<String>;
}

/// What the core asks the driver to do, in the order given.
pub(crate) enum Action<S> {
    /// Queue `work` for the guest in slot `guest` (waiting while its queue is full; a
    /// guest unloaded meanwhile refuses it).
    Hand {
        /// The guest's slot.
        guest: usize,
        /// The work.
        work: Work,
    },
    /// Run every call of `run` on a native plugin, on the event loop's thread, counting
    /// them under `counts` and `peer`.
    RunNative {
        /// The plugin function.
        server: S,
        /// The calls.
        run: Arc<wire::CallRun>,
        /// Where they came from.
        origin: Origin,
        /// The counters of the function.
        counts: Arc<FunctionCounts>,
        /// The counters of the peer they came from.
        peer: Arc<PeerCalls>,
    },
    /// Run a call with a reply on a native plugin, and answer it.
    CallNative {
        /// The plugin function.
        server: S,
        /// The function id called.
        function: String,
        /// The arguments, one CBOR array.
        args: Vec<u8>,
        /// The counters of the function.
        counts: Arc<FunctionCounts>,
        /// The counters of the peer it came from.
        peer: Arc<PeerCalls>,
        /// Where the outcome goes.
        answer: Responder,
    },
    /// Answer a call with a reply now.
    Answer {
        /// Where the outcome goes.
        answer: Responder,
        /// The outcome.
        outcome: Outcome,
    },
    /// Announce the node: [`NodeCore::announcement`] with what only the driver knows.
    Announce,
    /// Send a stream status to one peer.
    SendStatus(SocketAddr, Status),
    /// The peers changed: what the guests' calls with replies see of them.
    PeersChanged {
        /// The peers that joined or changed, by name.
        changed: Vec<(String, PeerEntry)>,
        /// The names no peer goes by any more.
        gone: Vec<String>,
    },
}

impl<S> std::fmt::Debug for Action<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Action::Hand { guest, .. } => write!(f, "Hand(guest {guest})"),
            Action::RunNative { run, .. } => write!(f, "RunNative({})", run.function),
            Action::CallNative { function, .. } => write!(f, "CallNative({function})"),
            Action::Answer { outcome, .. } => write!(f, "Responder({outcome:?})"),
            Action::Announce => f.write_str("Announce"),
            Action::SendStatus(to, _) => write!(f, "SendStatus({to})"),
            Action::PeersChanged { changed, gone } => {
                write!(
                    f,
                    "PeersChanged({} changed, {} gone)",
                    changed.len(),
                    gone.len()
                )
            }
        }
    }
}

/// A starting node's claim of its name: it asks who is there at once and again after
/// [`QUERY_AGAIN`] (one lost answer must not hide a peer), and listens until [`CLAIM_WAIT`]
/// has passed; an announcement of its name meanwhile ([`NodeCore::claim_heard`]) means
/// the name is taken.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NameClaim {
    again: Instant,
    deadline: Instant,
    asked_again: bool,
}

/// What a claiming node does next, by [`NameClaim::poll`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClaimStep {
    /// Ask who is there again, now.
    AskAgain,
    /// Listen for announcements until then.
    Listen(Instant),
    /// The claim is over: the name is the node's.
    Over,
}

impl NameClaim {
    /// A claim that asked who is there at `now`.
    pub(crate) fn new(now: Instant) -> Self {
        NameClaim {
            again: now + QUERY_AGAIN,
            deadline: now + CLAIM_WAIT,
            asked_again: false,
        }
    }

    /// What to do at `now`.
    pub(crate) fn poll(&mut self, now: Instant) -> ClaimStep {
        if !self.asked_again && now >= self.again {
            self.asked_again = true;
            return ClaimStep::AskAgain;
        }
        if now >= self.deadline {
            return ClaimStep::Over;
        }
        ClaimStep::Listen(if self.asked_again {
            self.deadline
        } else {
            self.again
        })
    }
}

/// Who runs a call with a reply.
enum Server<S> {
    /// A local guest's export.
    Guest(Route),
    /// A native plugin.
    Native(S),
}

/// The node's decisions and protocol state.
pub(crate) struct NodeCore<N: Natives> {
    /// The node's sender id.
    id: u64,
    membership: Membership,
    /// Which guest serves each function.
    table: RoutingTable,
    natives: N,
    /// The peers' streams, as this node receives them.
    streams: ReceiveStreams<Datagram>,
    /// What was received of the streams of peers gone, by name, for the closing summary.
    gone_streams: VecDeque<(String, Counts)>,
    /// Whether the last turn took every input waiting (peers are judged silent only then).
    caught_up: bool,
    /// Whether the guests were handed their `init` (then they hear the group's changes).
    guests_started: bool,
    /// Whether this node serves mailboxes (their functions are announced).
    serves_mailboxes: bool,
    stats: Arc<Stats>,
    drops: DropLog,
    /// What follows from the inputs taken, worked through as the driver polls.
    pending: VecDeque<Pending>,
    /// What to do, decided by the step last worked through.
    actions: VecDeque<Action<N::Server>>,
}

/// Work that follows from an input, in the order it is to be done.
#[derive(Debug)]
enum Pending {
    /// The frames of a datagram from `sender` at `from`, one step each; calls run only from
    /// a stream (`sequenced`). `repaired` calls came in a repair (counted when it starts).
    Frames {
        from: SocketAddr,
        sender: u64,
        frames: std::vec::IntoIter<Frame>,
        sequenced: bool,
        repaired: u64,
    },
    /// Say what the streams lost for good.
    Losses,
    /// Send `sender` the status of its stream, if one is due.
    Status { sender: u64 },
    /// Send every stream status due.
    Statuses,
    /// Tell the guests' calls what changed of the peers.
    SharePeers,
    /// Forget peer `sender`, whose last datagrams ran: it said goodbye, or fell silent.
    Forget { sender: u64, silent: bool },
    /// Stop following the stream of `sender` (and, if it is a `silent` peer, then forget
    /// it): its last datagrams run first.
    ForgetStream { sender: u64, silent: bool },
    /// Stop following the streams idle too long whose senders are no peers.
    ForgetIdleStreams,
    /// Give up the gaps unrepaired too long: what was held after them runs.
    GiveUp,
    /// A run of calls to hand to the guests and plugins that serve it.
    Dispatch {
        run: Arc<wire::CallRun>,
        origin: Origin,
        held: Option<Arc<Held>>,
    },
    /// A call from the TCP port.
    Call(Box<IncomingCall>),
    /// A line of the node's stdin.
    StdinLine(Arc<str>),
    /// The node's timers.
    Timeout,
    /// Announce the node, if that is due.
    AnnounceIfDue,
}

/// How a node starts, for [`NodeCore::new`].
#[derive(Debug, Clone)]
pub(crate) struct CoreConfig {
    /// The node's sender id.
    pub id: u64,
    /// Its name.
    pub name: String,
    /// How many bytes of a peer's stream, beyond what it has run, the node can take.
    pub receive_window: u64,
    /// Whether it serves mailboxes.
    pub serves_mailboxes: bool,
}

impl<N: Natives> NodeCore<N> {
    /// A node as `config` says, with plugins `natives`, counting into `stats`, started at
    /// `now`. It routes to no guest until [`Self::reroute`].
    pub(crate) fn new(config: CoreConfig, natives: N, stats: Arc<Stats>, now: Instant) -> Self {
        NodeCore {
            id: config.id,
            membership: Membership::new(config.id, &config.name, Vec::new(), now),
            table: RoutingTable::default(),
            natives,
            streams: ReceiveStreams::new(config.receive_window),
            gone_streams: VecDeque::new(),
            caught_up: true,
            guests_started: false,
            serves_mailboxes: config.serves_mailboxes,
            stats,
            drops: DropLog::new(),
            pending: VecDeque::new(),
            actions: VecDeque::new(),
        }
    }

    /// The next thing to do, at `now`, with the node's guests as they are now: what the
    /// last step decided, else what the next pending step decides (none: nothing is left
    /// to do until the next input).
    pub(crate) fn poll_action<G: Guest>(
        &mut self,
        now: Instant,
        guests: &[Option<G>],
    ) -> Option<Action<N::Server>> {
        loop {
            if let Some(action) = self.actions.pop_front() {
                return Some(action);
            }
            let step = self.pending.pop_front()?;
            self.work_on(now, step, guests);
        }
    }

    /// Works through one pending step at `now`.
    fn work_on<G: Guest>(&mut self, now: Instant, step: Pending, guests: &[Option<G>]) {
        match step {
            Pending::Frames {
                from,
                sender,
                mut frames,
                sequenced,
                repaired,
            } => {
                if repaired > 0 {
                    Stats::add(&self.stats.calls_repaired, repaired);
                }
                let Some(frame) = frames.next() else {
                    return;
                };
                if frames.len() > 0 {
                    // (Before what this frame queues in front of the rest: a goodbye's
                    // last datagrams.)
                    self.pending.push_front(Pending::Frames {
                        from,
                        sender,
                        frames,
                        sequenced,
                        repaired: 0,
                    });
                }
                self.handle_frame(now, from, sender, frame, sequenced, guests);
            }
            Pending::Losses => self.say_losses(),
            Pending::Status { sender } => {
                if let Some((to, status)) = self.streams.status_for(sender, now) {
                    self.actions.push_back(Action::SendStatus(to, status));
                }
            }
            Pending::ForgetStream { sender, silent } => {
                // (While it is still a peer, so that it is named, and its last calls pass
                // its guests' jails.)
                let ran = self.forget_stream(now, sender);
                let forget = silent.then_some(Pending::Forget {
                    sender,
                    silent: true,
                });
                self.first(ran.chain(forget));
            }
            Pending::ForgetIdleStreams => {
                let idle = self.streams.idle(now).into_iter();
                let strangers = idle.filter(|&id| self.membership.peer_name(id).is_none());
                let steps: Vec<Pending> = strangers
                    .map(|sender| Pending::ForgetStream {
                        sender,
                        silent: false,
                    })
                    .collect();
                self.first(steps);
            }
            Pending::GiveUp => {
                // (Running what was held says what was lost.)
                let ran = self.streams.give_up(now);
                self.first(Self::delivered_steps(ran));
            }
            Pending::Statuses => {
                for (to, status) in self.streams.statuses(now) {
                    self.actions.push_back(Action::SendStatus(to, status));
                }
            }
            Pending::SharePeers => self.share_peers_now(guests),
            Pending::Forget { sender, silent } => {
                let Some(peer) = self.membership.forget(sender) else {
                    return;
                };
                if silent {
                    tracing::info!(
                        "peer {} ({}) gone: nothing heard from it for {}",
                        peer.presence.name,
                        peer.addr,
                        humantime::format_duration(PEER_EXPIRY)
                    );
                } else {
                    tracing::info!("peer {} ({}) left", peer.presence.name, peer.addr);
                }
            }
            Pending::Dispatch { run, origin, held } => self.dispatch_now(run, origin, held, guests),
            Pending::Call(call) => self.call_now(*call, guests),
            Pending::StdinLine(line) => self.stdin_line_now(line, guests),
            Pending::Timeout => self.timeout_now(now),
            Pending::AnnounceIfDue => {
                if self.membership.announce_due(now) {
                    self.actions.push_back(Action::Announce);
                }
            }
        }
    }

    /// Queues `steps` in front of every other pending step, in their order.
    fn first(&mut self, steps: impl IntoIterator<Item = Pending, IntoIter: DoubleEndedIterator>) {
        for step in steps.into_iter().rev() {
            self.pending.push_front(step);
        }
    }

    /// The steps that run datagrams a stream handed over, in order, then say what was
    /// lost.
    fn delivered_steps(ran: Vec<Delivered<Datagram>>) -> impl DoubleEndedIterator<Item = Pending> {
        ran.into_iter()
            .map(|delivered| Pending::Frames {
                from: delivered.from,
                sender: delivered.item.header.sender,
                frames: delivered.item.frames.into_iter(),
                sequenced: true,
                repaired: delivered
                    .meta
                    .calls
                    .filter(|_| delivered.repaired)
                    .map_or(0, |(_, count)| count),
            })
            .chain(std::iter::once(Pending::Losses))
    }

    /// The membership: the node's name, its peers, its announcements.
    #[cfg(test)]
    pub(crate) fn membership(&self) -> &Membership {
        &self.membership
    }

    /// The node's one log of dropped input (the driver's drops too: one rate for all).
    pub(crate) fn drop_log(&mut self) -> &mut DropLog {
        &mut self.drops
    }

    /// The function ids the node's guests and plugins serve: those whose calls in the
    /// peers' streams it runs (what it announces, but its mailboxes, which are called one
    /// node at a time).
    pub(crate) fn stream_functions(&self) -> Vec<String> {
        super::routing::served(&self.table, self.natives.functions(), false)
    }

    /// Which guest serves each function.
    pub(crate) fn table(&self) -> &RoutingTable {
        &self.table
    }

    /// Finds again which guest serves each function (a guest was loaded or unloaded), and
    /// announces what the node serves at once (`now`) if that changed.
    pub(crate) fn reroute<G: Guest>(&mut self, guests: &[Option<G>], now: Instant) {
        self.table = RoutingTable::new(guests);
        let served =
            super::routing::served(&self.table, self.natives.functions(), self.serves_mailboxes);
        self.membership.set_functions(served, now);
    }

    /// Routes to no guest any more (the node is stopping; plugins still run).
    pub(crate) fn clear_routes(&mut self) {
        self.table = RoutingTable::default();
    }

    /// What the node runs changed: it announces itself at once (`now`).
    pub(crate) fn announce_soon(&mut self, now: Instant) {
        self.membership.announce_soon(now);
    }

    /// The name claim is over: the name is this node's from now on.
    pub(crate) fn claimed(&mut self) {
        self.membership.claimed();
    }

    /// An announcement heard while the node claims its name (the datagram is handled in
    /// full once the guests are started): a peer joins, or, if it announces this node's
    /// name, the name is taken.
    pub(crate) fn claim_heard(
        &mut self,
        from: SocketAddr,
        datagram: &Datagram,
        now: Instant,
    ) -> Result<(), NameTaken> {
        for frame in &datagram.frames {
            if let Frame::Announce(a) = frame {
                let change =
                    self.membership
                        .on_announce(datagram.header.sender, from, a.clone(), now)?;
                if change == Change::Joined {
                    tracing::info!("peer {} ({}) joined", a.presence.name, show(from));
                }
            }
        }
        Ok(())
    }

    /// The guests were handed their `init`: from now on they hear the group's changes.
    pub(crate) fn guests_started(&mut self) {
        self.guests_started = true;
    }

    /// Whether the last turn took every input waiting (only then are peers judged
    /// silent: a datagram of theirs still in the queue is a sign of life).
    pub(crate) fn set_caught_up(&mut self, caught_up: bool) {
        self.caught_up = caught_up;
    }

    /// The name of the node a call from `origin` comes from, if it announced one.
    fn caller(&self, origin: Origin) -> Option<&str> {
        match origin {
            Origin::Local => Some(self.membership.name()),
            Origin::Remote(_, sender) => self.membership.peer_name(sender),
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

    /// A datagram from the group, heard at `now`: a sequenced one goes through its
    /// sender's stream at once (run in order, once; a gap is asked for), and what the
    /// stream hands over is queued; a control datagram's frames are queued. Then the
    /// guests' calls hear what changed of the peers.
    pub(crate) fn handle_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        datagram: Datagram,
        len: usize,
    ) {
        self.take_datagram(now, from, datagram, len);
        self.pending.push_back(Pending::SharePeers);
    }

    fn take_datagram(&mut self, now: Instant, from: SocketAddr, datagram: Datagram, len: usize) {
        let sender = datagram.header.sender;
        if sender == self.id {
            return; // our own, looped back: already delivered locally
        }
        self.membership.heard_from(sender, now);
        let Some(seq) = datagram.header.seq else {
            self.pending.push_back(Pending::Frames {
                from,
                sender,
                frames: datagram.frames.into_iter(),
                sequenced: false,
                repaired: 0,
            });
            return;
        };
        let meta = Meta {
            bytes: len,
            calls: calls_of(&datagram),
        };
        let ran = self.streams.on_data(sender, from, seq, meta, datagram, now);
        self.pending.extend(Self::delivered_steps(ran));
        self.pending.push_back(Pending::Status { sender });
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

    /// One frame of a datagram from `sender`. Calls run only from a stream (`sequenced`):
    /// a call in a control datagram could run twice or out of order.
    fn handle_frame<G: Guest>(
        &mut self,
        now: Instant,
        from: SocketAddr,
        sender: u64,
        frame: Frame,
        sequenced: bool,
        guests: &[Option<G>],
    ) {
        match frame {
            Frame::Call(call) if sequenced => {
                self.dispatch_now(Arc::new(call), Origin::Remote(from, sender), None, guests)
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
                let name = announce.presence.name.clone();
                match self.membership.on_announce(sender, from, announce, now) {
                    Ok(Change::Joined) => tracing::info!("peer {name} ({}) joined", show(from)),
                    Ok(Change::Known | Change::Conflict) => {}
                    // (Only while claiming the name, which is over.)
                    Err(taken) => tracing::warn!("{taken}"),
                }
            }
            Frame::Query => self.membership.on_query(now),
            Frame::Goodbye => {
                // (Its last datagrams run first, while it is still a peer.)
                let ran = self.forget_stream(now, sender);
                self.first(ran.chain([Pending::Forget {
                    sender,
                    silent: false,
                }]));
            }
            Frame::Position(position) if !sequenced => {
                let ran = self.streams.on_position(sender, from, position, now);
                self.first(Self::delivered_steps(ran));
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

    /// Stops following the stream of `sender`, which left (while it is still a peer, so
    /// that it is named, and its last calls pass its guests' jails): what it never
    /// repaired is lost, what was held after that is to run (the steps returned).
    fn forget_stream(
        &mut self,
        now: Instant,
        sender: u64,
    ) -> impl DoubleEndedIterator<Item = Pending> + use<N> {
        let ran = match self.streams.forget(sender, now) {
            Some((counts, ran)) => {
                self.gone_streams
                    .push_back((self.peer_label(sender).into_owned(), counts));
                if self.gone_streams.len() > MAX_STREAMS_REMEMBERED {
                    self.gone_streams.pop_front();
                }
                Some(Self::delivered_steps(ran))
            }
            None => None,
        };
        ran.into_iter().flatten()
    }

    /// Queues a run of calls for [`Self::dispatch_now`].
    pub(crate) fn dispatch(
        &mut self,
        run: Arc<wire::CallRun>,
        origin: Origin,
        held: Option<Arc<Held>>,
    ) {
        self.pending
            .push_back(Pending::Dispatch { run, origin, held });
    }

    /// Hands a run of calls to every local guest and plugin that serves its function: a
    /// plugin runs them at once, on the event loop's thread; a guest's worker gets the run
    /// (shared by every guest that serves it) in its queue. Who serves the function, and
    /// whether they admit the caller, is found once for the run.
    fn dispatch_now<G: Guest>(
        &mut self,
        run: Arc<wire::CallRun>,
        origin: Origin,
        held: Option<Arc<Held>>,
        guests: &[Option<G>],
    ) {
        let function = run.function.as_str();
        let native = self.natives.resolve(function);
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
            dhost_runtime::guest::native::LABEL
        } else {
            function
        };
        let counts = self.stats.functions.of(label);
        Stats::add(&counts.received, run.count() as u64);
        let peer = self.peer_calls(origin);
        let (targets, refused) = self.table.admitted(guests, function, self.caller(origin));
        if let Some((failure, refusing)) = refused {
            let dropped = (refusing * run.count()) as u64;
            Stats::add(&self.stats.calls_dropped, dropped);
            Stats::add(&counts.dropped, dropped);
            peer.add(0, dropped);
            self.drops.dropped(format_args!(
                "calls from {origin} to `{function}`: {}",
                failure.message
            ));
        }
        if let Some(server) = native {
            self.actions.push_back(Action::RunNative {
                server,
                run: run.clone(),
                origin,
                counts,
                peer: peer.clone(),
            });
        }
        for route in targets {
            self.actions.push_back(Action::Hand {
                guest: route.guest,
                work: Work::Run {
                    slot: route.export,
                    calls: run.clone(),
                    origin,
                    peer: peer.clone(),
                    held: held.clone(),
                },
            });
        }
    }

    /// A call from the TCP port: a cast runs like a multicast call; a call runs on one
    /// guest (on its worker, which sends the outcome back) or plugin.
    pub(crate) fn handle_call(&mut self, call: IncomingCall) {
        self.pending.push_back(Pending::Call(Box::new(call)));
    }

    fn call_now<G: Guest>(&mut self, call: IncomingCall, guests: &[Option<G>]) {
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
            let run = wire::CallRun::collect(0, &function, std::iter::once(&args[..]));
            self.dispatch_now(Arc::new(run), origin, Some(Arc::new(held)), guests);
            return;
        }
        let (id, stats) = (request.id, self.stats.clone());
        let function_id = function.clone();
        let answer: Responder = Box::new(move |outcome: Outcome| {
            // (The request's share of the port's budget is given back once answered.)
            let _held = held;
            if let Err(failure) = &outcome {
                Stats::bump(&stats.calls_failed);
                tracing::debug!("a call from {origin} to `{function_id}` failed: {failure}");
            }
            if let Err(why) = reply.send(id, &outcome) {
                tracing::debug!("the reply to {origin} for `{function_id}`: {why}");
            }
        });
        let server = self.server(&function, origin, guests);
        let peer = self.peer_calls(origin);
        let action = match server {
            Ok(Server::Guest(route)) => {
                Stats::bump(&self.stats.functions.of(&function).received);
                Action::Hand {
                    guest: route.guest,
                    work: Work::Call {
                        slot: route.export,
                        args,
                        reply: answer,
                        peer: Some(peer),
                    },
                }
            }
            Ok(Server::Native(server)) => {
                let counts = self.stats.functions.of(dhost_runtime::guest::native::LABEL);
                Stats::bump(&counts.received);
                Action::CallNative {
                    server,
                    function,
                    args,
                    counts,
                    peer,
                    answer,
                }
            }
            Err(failure) => {
                peer.add(0, 1);
                Action::Answer {
                    answer,
                    outcome: Err(failure),
                }
            }
        };
        self.actions.push_back(action);
    }

    /// Who runs a call with a reply to `function` from `origin`: a local guest (see
    /// [`RoutingTable::server`]), else the native plugin that serves it.
    fn server<G: Guest>(
        &self,
        function: &str,
        origin: Origin,
        guests: &[Option<G>],
    ) -> Result<Server<N::Server>, CallFailure> {
        let caller = self.caller(origin);
        if let Some(route) = self.table.server(guests, function, caller)? {
            return Ok(Server::Guest(route));
        }
        match self.natives.resolve(function) {
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

    /// A line of the node's stdin: for every guest that hears stdin and whose jail gives
    /// it stdin.
    pub(crate) fn handle_stdin_line(&mut self, line: Arc<str>) {
        self.pending.push_back(Pending::StdinLine(line));
    }

    fn stdin_line_now<G: Guest>(&mut self, line: Arc<str>, guests: &[Option<G>]) {
        for (g, guest) in guests.iter().enumerate() {
            if guest
                .as_ref()
                .is_some_and(|w| w.takes_stdin() && w.hears(EventInterface::Stdin))
            {
                self.actions.push_back(Action::Hand {
                    guest: g,
                    work: Work::StdinLine(line.clone()),
                });
            }
        }
    }

    /// The node's timers, at the end of a turn (worked through at the time of the next
    /// poll): peers silent too long are forgotten (only when the node has caught up with
    /// its input), streams idle too long are let go, the guests hear what changed of the
    /// peers, gaps unrepaired too long are given up and the stream statuses due are sent,
    /// and the node announces itself when that is due.
    pub(crate) fn handle_timeout(&mut self) {
        self.pending.push_back(Pending::Timeout);
    }

    fn timeout_now(&mut self, now: Instant) {
        let mut steps = Vec::new();
        if self.caught_up {
            // (Each silent peer's last datagrams run first, while it is still a peer.)
            steps.extend(self.membership.silent(now).into_iter().map(|sender| {
                Pending::ForgetStream {
                    sender,
                    silent: true,
                }
            }));
            steps.push(Pending::ForgetIdleStreams);
        }
        steps.extend([
            Pending::SharePeers,
            Pending::GiveUp,
            Pending::Statuses,
            Pending::AnnounceIfDue,
        ]);
        self.first(steps);
    }

    /// Asks for an announcement, if one is due when the step is worked through.
    pub(crate) fn announce_if_due(&mut self) {
        self.pending.push_back(Pending::AnnounceIfDue);
    }

    /// Tells the guests' calls with replies what the peers are now, if that changed: as
    /// soon as a datagram changed it, since a call routed next may be for a peer that just
    /// announced itself. Guests that export `group-events` hear of each change once their
    /// `init` is handed to them (the peers known before are in `group.peers()`).
    pub(crate) fn share_peers(&mut self) {
        self.pending.push_back(Pending::SharePeers);
    }

    fn share_peers_now<G: Guest>(&mut self, guests: &[Option<G>]) {
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
                    .map(|p| (GroupChange::Joined, p.presence.name.as_str())),
            )
            .chain(
                changes
                    .changed
                    .iter()
                    .map(|p| (GroupChange::Functions, p.presence.name.as_str())),
            )
            .map(|(change, name)| (change, Arc::from(name)))
            .collect();
        let changed = changes
            .joined
            .iter()
            .chain(&changes.changed)
            .map(|p| {
                let node = &p.presence;
                let entry = PeerEntry {
                    tcp: node.tcp,
                    functions: node.functions.iter().cloned().collect(),
                    uptime_ms: node.uptime_ms,
                    heard: p.last_seen,
                };
                (node.name.clone(), entry)
            })
            .collect();
        self.actions.push_back(Action::PeersChanged {
            changed,
            gone: changes.gone,
        });
        if !self.guests_started {
            return;
        }
        for (g, guest) in guests.iter().enumerate() {
            if guest
                .as_ref()
                .is_some_and(|w| w.hears(EventInterface::Group))
            {
                for (change, node) in &events {
                    self.actions.push_back(Action::Hand {
                        guest: g,
                        work: Work::GroupChange(*change, node.clone()),
                    });
                }
            }
        }
    }

    /// When the event loop must wake at the latest, from `now`: for the next
    /// announcement, peer expiry or stream deadline (none off the group).
    pub(crate) fn idle_timeout(&self, now: Instant, on_group: bool) -> Duration {
        let mut timeout = IDLE;
        if on_group {
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

    /// What this node received of each stream, followed or gone, by peer name (a sender
    /// that never announced itself by its id), sorted by name.
    pub(crate) fn stream_counts(&self) -> Vec<(StreamCounts, Counts)> {
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

    /// What the node says of itself at `now`: name, uptime, functions, and what it received
    /// of each peer's stream (`streams`, from [`Self::stream_counts`]); with what the driver
    /// knows: its TCP port, its connections by peer address, what it refused, the modules
    /// it runs.
    pub(crate) fn announcement(
        &self,
        now: Instant,
        streams: Vec<StreamCounts>,
        tcp: Option<SocketAddr>,
        connections: Option<&HashMap<SocketAddr, usize>>,
        modules: Vec<Publication>,
    ) -> Announce {
        let m = &self.membership;
        let mut links: Vec<(String, u64)> = match connections {
            Some(by_addr) => m
                .peers()
                .filter_map(|(_, p)| {
                    let n = by_addr.get(&p.presence.tcp?)?;
                    Some((p.presence.name.clone(), *n as u64))
                })
                .collect(),
            None => Vec::new(),
        };
        links.sort();
        links.truncate(wire::MAX_LINKS_ANNOUNCED);
        let mut streams = streams;
        streams.truncate(wire::MAX_STREAMS_ANNOUNCED);
        Announce {
            presence: Presence {
                name: m.name().to_string(),
                uptime_ms: m.uptime_ms(now),
                functions: m.functions().to_vec(),
                tcp,
                links,
            },
            streams,
            refused: self.stats.rejections.announced(),
            modules,
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

#[cfg(test)]
mod tests {
    //! Every test drives the core with made-up guests, plugins and datagrams, on a
    //! made-up clock, and checks the actions it asks for and what it counted.

    use super::super::fake_guest::{FakeGuest, guest};
    use super::*;
    use ciborium::Value;
    use std::sync::OnceLock;

    const F: &str = "dhost:kv/store#put";
    const G: &str = "dhost:kv/store#get";

    /// The start of the made-up clock.
    fn t0() -> Instant {
        static T0: OnceLock<Instant> = OnceLock::new();
        *T0.get_or_init(Instant::now)
    }

    fn ms(n: u64) -> Instant {
        t0() + Duration::from_millis(n)
    }

    /// One plugin, which serves `plugin:raw/f#echo` (and, as C plugins do, any `…#echo`).
    struct FakePlugins;

    impl Natives for FakePlugins {
        type Server = &'static str;

        fn resolve(&self, function: &str) -> Option<&'static str> {
            (function.rsplit_once('#').map(|(_, name)| name) == Some("echo")).then_some("echo")
        }

        fn functions(&self) -> Vec<String> {
            vec!["plugin:raw/f#echo".to_string()]
        }
    }

    /// Node `me` (id 1) with `guests`, still claiming its name.
    fn starting(guests: &[Option<FakeGuest>]) -> NodeCore<FakePlugins> {
        let config = CoreConfig {
            id: 1,
            name: "me".to_string(),
            receive_window: 1 << 20,
            serves_mailboxes: false,
        };
        let mut core = NodeCore::new(config, FakePlugins, Arc::new(Stats::default()), t0());
        core.reroute(guests, t0());
        core
    }

    /// Node `me` with `guests`, its name claimed.
    fn core(guests: &[Option<FakeGuest>]) -> NodeCore<FakePlugins> {
        let mut core = starting(guests);
        core.claimed();
        core
    }

    fn bob() -> SocketAddr {
        "127.0.0.1:5000".parse().expect("an address")
    }

    /// A datagram of peer `sender`: sequenced as `seq`, or a control datagram.
    fn datagram(sender: u64, seq: Option<u64>, frames: impl FnOnce(&mut Vec<u8>)) -> Datagram {
        let mut bytes = Vec::new();
        wire::encode_header(sender, seq, &mut bytes);
        frames(&mut bytes);
        wire::decode_datagram(&bytes).expect("a well-formed datagram")
    }

    /// A sequenced datagram holding one run of `n` calls to `function`, numbered from
    /// `first`, as a sender's batcher packs them.
    fn calls(sender: u64, seq: u64, first: u64, function: &str, n: usize) -> Datagram {
        let mut batcher = wire::Batcher::new(sender, wire::MAX_DATAGRAM, true);
        for i in 0..n {
            let mut args = Vec::new();
            wire::encode_item(&Value::Array(vec![Value::from(i as u64)]), &mut args);
            batcher
                .push_call(first + i as u64, function, &args)
                .expect("a call that fits");
        }
        let mut datagrams = batcher.take();
        assert_eq!(datagrams.len(), 1);
        let mut bytes = datagrams.remove(0);
        wire::stamp(&mut bytes, seq);
        wire::decode_datagram(&bytes).expect("a well-formed datagram")
    }

    fn announce(sender: u64, name: &str) -> Datagram {
        let announce = Announce {
            presence: Presence {
                name: name.to_string(),
                functions: vec![F.to_string()],
                ..Presence::default()
            },
            ..Announce::default()
        };
        datagram(sender, None, |out| wire::encode_announce(&announce, out))
    }

    /// What `core` does at `now`, with `guests`, until it has nothing left to do.
    fn actions(
        core: &mut NodeCore<FakePlugins>,
        guests: &[Option<FakeGuest>],
        now: Instant,
    ) -> Vec<Action<&'static str>> {
        std::iter::from_fn(|| core.poll_action(now, guests)).collect()
    }

    /// The guests that were handed runs, and how many calls each run held.
    fn runs(actions: &[Action<&'static str>]) -> Vec<(usize, usize)> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Hand {
                    guest,
                    work: Work::Run { calls, .. },
                } => Some((*guest, calls.count())),
                _ => None,
            })
            .collect()
    }

    fn count(counter: &std::sync::atomic::AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    #[test]
    fn a_run_goes_to_every_guest_that_serves_it_and_what_none_runs_is_counted_dropped() {
        let mut guests = vec![
            guest("kv", &[F, G]),
            guest("kv-2", &[F]),
            guest("other", &[]),
        ];
        // kv-2 takes calls to F from ann only.
        guests[1].as_mut().expect("a guest").jail.serve = Some(vec![format!("{F} from ann")]);
        let mut core = core(&guests);
        core.handle_datagram(ms(1), bob(), announce(7, "bob"), 100);
        let _ = actions(&mut core, &guests, ms(1));

        core.handle_datagram(ms(2), bob(), calls(7, 1, 1, F, 3), 100);
        let acted = actions(&mut core, &guests, ms(2));
        assert_eq!(
            runs(&acted),
            [(0, 3)],
            "kv runs them; kv-2's jail refuses bob"
        );
        let stats = core.stats.clone();
        let put = stats.functions.of(F);
        assert_eq!((count(&put.received), count(&put.dropped)), (3, 3));
        assert_eq!(count(&stats.calls_dropped), 3, "kv-2's three");
        let from_bob = stats.peer_calls.of("bob");
        assert_eq!(count(&from_bob.dropped), 3);

        // A function no guest serves: dropped, counted under one label, nothing handed.
        core.handle_datagram(ms(3), bob(), calls(7, 2, 4, "x:y/z#w", 2), 100);
        assert!(runs(&actions(&mut core, &guests, ms(3))).is_empty());
        assert_eq!(count(&stats.calls_dropped), 5);
        let not_served = stats.functions.of(FunctionCounts::NOT_SERVED);
        assert_eq!(count(&not_served.dropped), 2);

        // Calls in a control datagram never run (they could run twice, or out of order).
        let control = datagram(7, None, |out| {
            wire::encode_call(6, F, &[Value::from(1)], out)
        });
        core.handle_datagram(ms(4), bob(), control, 100);
        assert!(runs(&actions(&mut core, &guests, ms(4))).is_empty());
        assert_eq!(count(&stats.calls_dropped), 6);

        // A plugin runs a run on the loop's thread, before the guests get theirs.
        core.dispatch(
            Arc::new(wire::CallRun::collect(
                0,
                "a:b/c#echo",
                std::iter::once(&[0x80][..]),
            )),
            Origin::Local,
            None,
        );
        let acted = actions(&mut core, &guests, ms(4));
        assert!(
            matches!(acted[..], [Action::RunNative { server: "echo", .. }]),
            "{acted:?}"
        );
        assert_eq!(
            count(
                &stats
                    .functions
                    .of(dhost_runtime::guest::native::LABEL)
                    .received
            ),
            1
        );
    }

    #[test]
    fn each_run_of_a_datagram_is_routed_only_once_the_one_before_it_was_handed_over() {
        let mut guests = vec![guest("kv", &[F])];
        let mut core = core(&guests);
        core.handle_datagram(ms(1), bob(), announce(7, "bob"), 100);
        let _ = actions(&mut core, &guests, ms(1));
        // One datagram, two runs to F.
        let two_runs = datagram(7, Some(1), |out| {
            wire::encode_call(1, F, &[Value::from(1)], out);
            wire::encode_call(2, F, &[Value::from(2)], out);
        });
        core.handle_datagram(ms(2), bob(), two_runs, 100);
        let put = core.stats.functions.of(F);
        assert_eq!(
            count(&put.received),
            0,
            "nothing decided before it is asked for"
        );
        let first = core.poll_action(ms(2), &guests);
        assert!(
            matches!(first, Some(Action::Hand { guest: 0, .. })),
            "{first:?}"
        );
        assert_eq!(count(&put.received), 1, "the second run waits");
        // While the first was handed over, kv's jail changed: the second run meets the
        // new jail, as it would have had the node handled the frames one by one.
        guests[0].as_mut().expect("a guest").jail.serve = Some(vec![format!("{F} from ann")]);
        assert!(runs(&actions(&mut core, &guests, ms(3))).is_empty());
        assert_eq!((count(&put.received), count(&put.dropped)), (2, 1));
    }

    #[test]
    fn a_goodbye_runs_the_senders_last_datagrams_first_while_it_is_still_a_peer() {
        let guests = vec![guest("kv", &[F])];
        let mut core = core(&guests);
        core.handle_datagram(ms(1), bob(), announce(7, "bob"), 100);
        assert!(matches!(
            actions(&mut core, &guests, ms(1))[..],
            [Action::PeersChanged { ref changed, .. }] if changed[0].0 == "bob"
        ));
        core.handle_datagram(ms(2), bob(), calls(7, 1, 1, F, 1), 100);
        // Datagram 2 is lost: 3 is held, and the gap asked for.
        core.handle_datagram(ms(3), bob(), calls(7, 3, 3, F, 2), 100);
        let acted = actions(&mut core, &guests, ms(3));
        assert_eq!(runs(&acted), [(0, 1)]);
        assert!(
            acted
                .iter()
                .any(|a| matches!(a, Action::SendStatus(to, status)
                if *to == bob() && !status.missing.is_empty())),
            "{acted:?}"
        );
        let goodbye = datagram(7, None, wire::encode_goodbye);
        core.handle_datagram(ms(4), bob(), goodbye, 100);
        let acted = actions(&mut core, &guests, ms(4));
        // What was held runs, counted as bob's (he is still a peer), then he is gone.
        assert_eq!(runs(&acted), [(0, 2)]);
        let Some(Action::Hand {
            work: Work::Run { peer, .. },
            ..
        }) = acted.first()
        else {
            panic!("{acted:?}");
        };
        assert!(Arc::ptr_eq(peer, &core.stats.peer_calls.of("bob")));
        assert!(matches!(
            acted.last(),
            Some(Action::PeersChanged { gone, .. }) if gone == &["bob".to_string()]
        ));
        assert_eq!(core.membership().peers().count(), 0);
        let (shown, counts) = &core.stream_counts()[0];
        assert_eq!((shown.peer.as_str(), shown.received), ("bob", 3));
        assert_eq!(counts.lost_datagrams, 1);
    }

    #[test]
    fn a_silent_peer_is_forgotten_after_the_expiry_only_once_the_node_caught_up() {
        let guests = vec![guest("watcher", &[])];
        let mut guests = guests;
        guests[0].as_mut().expect("a guest").hears = vec![EventInterface::Group];
        let mut core = core(&guests);
        core.guests_started();
        core.handle_datagram(ms(0), bob(), announce(7, "bob"), 100);
        let acted = actions(&mut core, &guests, ms(0));
        assert!(
            acted.iter().any(|a| matches!(a, Action::Hand { work: Work::GroupChange(GroupChange::Joined, name), .. } if &**name == "bob")),
            "{acted:?}"
        );
        let expired = ms(PEER_EXPIRY.as_millis() as u64 + 1);
        core.set_caught_up(false);
        core.handle_timeout();
        let _ = actions(&mut core, &guests, expired);
        assert_eq!(
            core.membership().peers().count(),
            1,
            "its datagrams may be queued"
        );
        core.set_caught_up(true);
        core.handle_timeout();
        let _ = actions(&mut core, &guests, ms(PEER_EXPIRY.as_millis() as u64));
        assert_eq!(
            core.membership().peers().count(),
            1,
            "not before the expiry"
        );
        core.handle_timeout();
        let acted = actions(&mut core, &guests, expired);
        assert_eq!(core.membership().peers().count(), 0);
        assert!(
            acted.iter().any(|a| matches!(a, Action::Hand { work: Work::GroupChange(GroupChange::Left, name), .. } if &**name == "bob")),
            "{acted:?}"
        );
    }

    #[test]
    fn silent_peers_are_forgotten_one_after_the_other_each_with_its_own_losses() {
        let guests = vec![guest("kv", &[F])];
        let mut core = core(&guests);
        let carol: SocketAddr = "127.0.0.1:4002".parse().expect("an address");
        for (sender, name, from) in [(7, "bob", bob()), (8, "carol", carol)] {
            core.handle_datagram(ms(1), from, announce(sender, name), 100);
            core.handle_datagram(ms(2), from, calls(sender, 1, 1, F, 1), 100);
            // Datagram 2 (call 2) is lost: 3 is held.
            core.handle_datagram(ms(3), from, calls(sender, 3, 3, F, 1), 100);
        }
        let _ = actions(&mut core, &guests, ms(3));
        let stats = core.stats.clone();
        let lost = || count(&stats.calls_lost);
        assert_eq!(lost(), 0);
        let expired = ms(PEER_EXPIRY.as_millis() as u64 + 10);
        core.handle_timeout();
        // The first silent peer's held call runs before anything is said lost...
        let first = core.poll_action(expired, &guests);
        assert!(matches!(first, Some(Action::Hand { .. })), "{first:?}");
        assert_eq!(lost(), 0);
        // ...and the second's runs once the first's loss (and only it) was counted.
        let second = std::iter::from_fn(|| core.poll_action(expired, &guests))
            .find(|a| matches!(a, Action::Hand { .. }));
        assert!(second.is_some());
        assert_eq!(lost(), 1, "the first peer's lost call only");
        let _ = actions(&mut core, &guests, expired);
        assert_eq!(lost(), 2);
        assert_eq!(core.membership().peers().count(), 0);
    }

    #[test]
    fn a_call_with_a_reply_goes_to_a_guest_that_can_take_it_else_a_plugin() {
        let mut guests = vec![guest("kv", &[G]), guest("kv-2", &[G])];
        guests[0].as_mut().expect("a guest").waiting = true;
        let core = core(&guests);
        let from = Origin::Remote(bob(), 7);
        match core.server(G, from, &guests) {
            Ok(Server::Guest(route)) => assert_eq!(route.guest, 1, "kv waits for a reply"),
            _ => panic!("a guest serves it"),
        }
        assert!(matches!(
            core.server("a:b/c#echo", from, &guests),
            Ok(Server::Native("echo"))
        ));
        let Err(failure) = core.server("a:b/c#nothing", from, &guests) else {
            panic!("nobody serves it");
        };
        assert_eq!(failure.kind, FailureKind::NoServer);
        assert_eq!(failure.message, "node me serves no function a:b/c#nothing");
        // Every guest that serves it is down: the guest's failure, not a plugin's.
        for g in &mut guests {
            g.as_mut().expect("a guest").down = true;
        }
        let Err(failure) = core.server(G, from, &guests) else {
            panic!("nobody can take it");
        };
        assert_eq!(failure.kind, FailureKind::Unavailable);
    }

    #[test]
    fn the_name_is_claimed_by_asking_twice_and_listening() {
        let mut claim = NameClaim::new(t0());
        assert_eq!(claim.poll(t0()), ClaimStep::Listen(ms(60)));
        assert_eq!(claim.poll(ms(59)), ClaimStep::Listen(ms(60)));
        assert_eq!(claim.poll(ms(60)), ClaimStep::AskAgain);
        assert_eq!(claim.poll(ms(60)), ClaimStep::Listen(ms(150)));
        assert_eq!(claim.poll(ms(150)), ClaimStep::Over);
        // Late (a slow machine): it still asks again before it is over.
        let mut late = NameClaim::new(t0());
        assert_eq!(late.poll(ms(500)), ClaimStep::AskAgain);
        assert_eq!(late.poll(ms(500)), ClaimStep::Over);

        let guests: Vec<Option<FakeGuest>> = Vec::new();
        let mut starting = starting(&guests);
        assert!(
            starting
                .claim_heard(bob(), &announce(7, "bob"), ms(1))
                .is_ok()
        );
        let taken = starting
            .claim_heard(bob(), &announce(8, "me"), ms(2))
            .expect_err("the name is taken");
        assert!(
            taken.to_string().contains("the name `me` is taken"),
            "{taken}"
        );
        // Once claimed, an announcement of the name is ignored, and its sender no peer.
        let mut holder = core(&guests);
        holder.handle_datagram(ms(3), bob(), announce(8, "me"), 100);
        let _ = actions(&mut holder, &guests, ms(3));
        assert_eq!(holder.membership().name(), "me");
        assert_eq!(holder.membership().peers().count(), 0);
    }

    #[test]
    fn the_node_announces_itself_when_due_when_asked_and_when_what_it_serves_changes() {
        let mut guests = vec![guest("kv", &[F])];
        let mut core = core(&guests);
        core.announce_if_due();
        assert!(matches!(
            actions(&mut core, &guests, t0())[..],
            [Action::Announce]
        ));
        core.handle_timeout();
        assert!(actions(&mut core, &guests, ms(999)).is_empty());
        core.handle_timeout();
        assert!(matches!(
            actions(&mut core, &guests, ms(1000))[..],
            [Action::Announce]
        ));
        // A query: answered at least 100 ms after the last announcement.
        let query = datagram(7, None, wire::encode_query);
        core.handle_datagram(ms(1010), bob(), query, 50);
        assert!(actions(&mut core, &guests, ms(1010)).is_empty());
        assert_eq!(core.idle_timeout(ms(1010), true), Duration::from_millis(90));
        core.handle_timeout();
        assert!(matches!(
            actions(&mut core, &guests, ms(1100))[..],
            [Action::Announce]
        ));
        // A guest loaded: what the node serves changed, announced at once.
        guests.push(guest("kv-2", &[G]));
        core.reroute(&guests, ms(1200));
        core.handle_timeout();
        assert!(matches!(
            actions(&mut core, &guests, ms(1200))[..],
            [Action::Announce]
        ));
        let announced = core.announcement(ms(1200), Vec::new(), None, None, Vec::new());
        assert_eq!(
            announced.presence.functions,
            [G, F, "plugin:raw/f#echo"],
            "sorted"
        );
        assert_eq!(announced.presence.uptime_ms, 1200);
        // Off the group, nothing wakes the loop but its inputs.
        assert_eq!(core.idle_timeout(ms(1200), false), IDLE);
    }

    #[test]
    fn a_stdin_line_goes_to_the_guests_that_hear_stdin_and_may_read_it() {
        let mut guests = vec![guest("a", &[]), guest("b", &[]), guest("c", &[]), None];
        for g in &mut guests[..2] {
            g.as_mut().expect("a guest").hears = vec![EventInterface::Stdin];
        }
        guests[1].as_mut().expect("a guest").jail.stdin = false;
        let mut core = core(&guests);
        core.handle_stdin_line(Arc::from("hello"));
        let handed: Vec<usize> = actions(&mut core, &guests, t0())
            .iter()
            .filter_map(|a| match a {
                Action::Hand {
                    guest,
                    work: Work::StdinLine(line),
                } if &**line == "hello" => Some(*guest),
                _ => None,
            })
            .collect();
        assert_eq!(handed, [0], "b may not read stdin; c does not listen");
    }
}
