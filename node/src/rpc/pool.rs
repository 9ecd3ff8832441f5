//! Outgoing calls to one node: a pool of TCP connections per peer (at most `size` each,
//! as in rot), opened on demand, shared by many calls in flight (each reply names its
//! request), re-opened after a failure, and closed after a while unused.
//!
//! The pool runs as a task on the network thread's tokio runtime. Callers on other threads
//! (the guests' workers, the event loop) hand it a [`PendingCall`] through a [`PoolHandle`]
//! and wait on a plain channel with their own timeout, so a guest never touches a socket.

use super::frame::{self, PortFrame};
use super::handshake::{self, ConnectionKeys};
use ciborium::Value;
use dhost_protocol::outcome::Outcome;
use dhost_protocol::outcome::{CallFailure, FailureKind};
use dhost_runtime::guest::network::RemoteCaller;
use futures_util::{SinkExt as _, StreamExt as _};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, mpsc as sync_mpsc};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// How many calls may wait for the pool before callers are told it is overloaded.
const QUEUE: usize = 4096;

/// How many calls one connection may have queued for writing.
const CONNECTION_QUEUE: usize = 1024;

/// How long connecting (and the handshake) may take at most.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// A connection with no call in flight for this long is closed (the server closes idle
/// connections after a minute by default; closing first avoids racing it).
const IDLE: Duration = Duration::from_secs(30);

/// How often a connection forgets the calls whose callers stopped waiting.
const SWEEP: Duration = Duration::from_secs(1);

/// A call for the pool to make.
#[derive(Debug)]
pub struct PendingCall {
    /// The TCP address of the node to call.
    pub addr: SocketAddr,
    /// Its name, for messages.
    pub peer: String,
    /// The function id.
    pub function: String,
    /// The arguments.
    pub args: Vec<Value>,
    /// Whether to wait for the remote node to run it (a call) or only until it is sent (a
    /// cast).
    pub wants_reply: bool,
    /// When the caller stops waiting.
    pub deadline: Instant,
    /// Where the outcome goes.
    pub reply: sync_mpsc::SyncSender<Outcome>,
}

/// How many connections the pool holds, by peer address.
pub type LinkCounts = Arc<Mutex<HashMap<SocketAddr, usize>>>;

/// For each peer address the pool has connections to, what tells them the peer left.
type Departures = Arc<Mutex<HashMap<SocketAddr, CancellationToken>>>;

/// The callers' side of a pool: cheap to clone, usable from any thread.
#[derive(Debug, Clone)]
pub struct PoolHandle {
    calls: mpsc::Sender<PendingCall>,
    links: LinkCounts,
    departures: Departures,
}

/// Calls with replies go out over the pool's connections. A call blocks the calling
/// thread: never make one on the pool's own runtime. When a peer leaves, its calls in
/// flight fail at once as `peer-gone` and its connections close.
impl RemoteCaller for PoolHandle {
    fn call(
        &self,
        addr: SocketAddr,
        peer: &str,
        function: &str,
        args: Vec<Value>,
        wants_reply: bool,
        timeout: Duration,
    ) -> Outcome {
        let (reply, outcome) = sync_mpsc::sync_channel(1);
        let call = PendingCall {
            addr,
            peer: peer.to_string(),
            function: function.to_string(),
            args,
            wants_reply,
            deadline: Instant::now() + timeout,
            reply,
        };
        if let Err(e) = self.calls.try_send(call) {
            let why = match e {
                mpsc::error::TrySendError::Full(_) => {
                    format!("this node already has {QUEUE} calls waiting to go out")
                }
                mpsc::error::TrySendError::Closed(_) => "this node is stopping".to_string(),
            };
            return Err(CallFailure::new(FailureKind::Unavailable, why));
        }
        match outcome.recv_timeout(timeout) {
            Ok(outcome) => outcome,
            Err(sync_mpsc::RecvTimeoutError::Timeout) => Err(CallFailure::new(
                FailureKind::Timeout,
                format!(
                    "no reply from node {peer} ({addr}) to {function} within {}",
                    humantime::format_duration(timeout)
                ),
            )),
            Err(sync_mpsc::RecvTimeoutError::Disconnected) => Err(CallFailure::new(
                FailureKind::PeerGone,
                format!("the connection to node {peer} ({addr}) was dropped"),
            )),
        }
    }

    fn links(&self) -> HashMap<SocketAddr, usize> {
        self.links
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn left(&self, addr: SocketAddr) {
        let token = self
            .departures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&addr);
        if let Some(token) = token {
            token.cancel();
        }
    }
}

/// What carries the calls to nodes a pool does not reach over TCP: those reached through
/// a Zenoh network ([`crate::zenoh_transport::queries`]), which go by addresses of their
/// own.
pub trait Relay: Send + Sync + std::fmt::Debug {
    /// Whether the node at `addr` is reached through this relay.
    fn reaches(&self, addr: SocketAddr) -> bool;

    /// Sends `frame` (request `id`, [`frame::encode_request`]) for `call`, and its outcome
    /// to `call.reply` once it comes (for a cast: once the node took it), or a failure.
    /// Does not wait: it runs on the pool's task.
    fn send(&self, id: u64, frame: Vec<u8>, call: PendingCall);
}

/// The pool's own side, to run on a tokio runtime with [`Pool::run`].
pub struct Pool {
    /// The group's keys, for the handshake of each connection.
    keys: Arc<ConnectionKeys>,
    calls: mpsc::Receiver<PendingCall>,
    size: usize,
    hello: Arc<[u8]>,
    links: LinkCounts,
    departures: Departures,
    /// What reaches the nodes that are not reached over TCP, if anything does.
    relay: Option<Arc<dyn Relay>>,
}

/// One connection, as the pool sees it.
struct Connection {
    jobs: mpsc::Sender<Job>,
    in_flight: Arc<AtomicUsize>,
}

/// A call handed to a connection, with its request id and encoded frame.
struct Job {
    id: u64,
    frame: Vec<u8>,
    call: PendingCall,
}

impl Pool {
    /// A pool of at most `size` connections per peer, for the node `node` named `name`
    /// (`None`: a short-lived client), with the group's `keys`, and its handle.
    pub fn new(
        size: usize,
        node: u64,
        name: Option<&str>,
        keys: ConnectionKeys,
    ) -> (Pool, PoolHandle) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let (links, departures) = (LinkCounts::default(), Departures::default());
        let pool = Pool {
            keys: Arc::new(keys),
            calls: rx,
            size: size.max(1),
            hello: frame::encode_hello(node, name).into(),
            links: links.clone(),
            departures: departures.clone(),
            relay: None,
        };
        let handle = PoolHandle {
            calls: tx,
            links,
            departures,
        };
        (pool, handle)
    }

    /// The pool, calling the nodes `relay` reaches through it.
    pub fn with_relay(mut self, relay: Arc<dyn Relay>) -> Self {
        self.relay = Some(relay);
        self
    }

    /// Hands every call to a connection to its peer (or to the relay that reaches it),
    /// until every handle is dropped.
    pub async fn run(mut self) {
        let mut peers: HashMap<SocketAddr, Vec<Connection>> = HashMap::new();
        let mut next_id: u64 = 0;
        while let Some(call) = self.calls.recv().await {
            if let Some(relay) = self.relay.as_ref().filter(|r| r.reaches(call.addr)) {
                next_id += 1;
                let frame =
                    frame::encode_request(next_id, &call.function, &call.args, call.wants_reply);
                relay.send(next_id, frame, call);
                continue;
            }
            if next_id.is_multiple_of(1024) {
                // Forget the peers whose connections have all closed (peers come and go).
                peers.retain(|_, connections| connections.iter().any(|c| !c.jobs.is_closed()));
            }
            let connections = peers.entry(call.addr).or_default();
            connections.retain(|c| !c.jobs.is_closed());
            let least_busy = connections
                .iter()
                .enumerate()
                .min_by_key(|(_, c)| c.in_flight.load(Ordering::Relaxed))
                .map(|(i, c)| (i, c.in_flight.load(Ordering::Relaxed)));
            let chosen = match least_busy {
                Some((i, busy)) if busy == 0 || connections.len() >= self.size => i,
                _ => {
                    connections.push(self.open(call.addr, call.peer.clone()));
                    connections.len() - 1
                }
            };
            let connection = &connections[chosen];
            next_id += 1;
            let frame =
                frame::encode_request(next_id, &call.function, &call.args, call.wants_reply);
            connection.in_flight.fetch_add(1, Ordering::Relaxed);
            let job = Job {
                id: next_id,
                frame,
                call,
            };
            if let Err(e) = connection.jobs.try_send(job) {
                connection.in_flight.fetch_sub(1, Ordering::Relaxed);
                let (job, why) = match e {
                    mpsc::error::TrySendError::Full(job) => (
                        job,
                        format!("{CONNECTION_QUEUE} calls are queued on the connection"),
                    ),
                    mpsc::error::TrySendError::Closed(job) => {
                        (job, "the connection just closed".to_string())
                    }
                };
                let failure = CallFailure::new(
                    FailureKind::Unavailable,
                    format!("cannot send to node {}: {why}", job.call.peer),
                );
                let _ = job.call.reply.try_send(Err(failure));
            }
        }
    }

    /// Starts a connection to `addr`; it connects in the background, and calls queue
    /// meanwhile.
    fn open(&self, addr: SocketAddr, peer: String) -> Connection {
        let (jobs, rx) = mpsc::channel(CONNECTION_QUEUE);
        let in_flight = Arc::new(AtomicUsize::new(0));
        let link = LinkGuard::new(self.links.clone(), addr);
        let left = self
            .departures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(addr)
            .or_default()
            .clone();
        let task = ConnectionTask {
            addr,
            peer,
            keys: self.keys.clone(),
            hello: self.hello.clone(),
            in_flight: in_flight.clone(),
            pending: HashMap::new(),
            left,
        };
        tokio::spawn(async move {
            let _link = link;
            task.run(rx).await;
        });
        Connection { jobs, in_flight }
    }
}

/// Counts a connection in the pool's links while it lives.
struct LinkGuard {
    links: LinkCounts,
    addr: SocketAddr,
}

impl LinkGuard {
    fn new(links: LinkCounts, addr: SocketAddr) -> Self {
        *links
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(addr)
            .or_default() += 1;
        LinkGuard { links, addr }
    }
}

impl Drop for LinkGuard {
    fn drop(&mut self) {
        let mut links = self.links.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = links.get_mut(&self.addr) {
            *n -= 1;
            if *n == 0 {
                links.remove(&self.addr);
            }
        }
    }
}

/// The task that owns one connection.
struct ConnectionTask {
    addr: SocketAddr,
    peer: String,
    keys: Arc<ConnectionKeys>,
    hello: Arc<[u8]>,
    in_flight: Arc<AtomicUsize>,
    /// The calls sent and waiting for their reply, by request id.
    pending: HashMap<u64, PendingCall>,
    /// Cancelled when the node left the group.
    left: CancellationToken,
}

impl ConnectionTask {
    async fn run(mut self, mut jobs: mpsc::Receiver<Job>) {
        let opened = tokio::time::timeout(
            CONNECT_TIMEOUT,
            handshake::open(self.addr, &self.keys, CONNECT_TIMEOUT),
        );
        let (mut replies, mut requests) = match opened.await {
            Ok(Ok(framed)) => framed,
            Ok(Err(e)) => return self.fail_all(&mut jobs, &format!("cannot connect: {e}")),
            Err(_) => {
                let why = format!(
                    "cannot connect: no answer within {}",
                    humantime::format_duration(CONNECT_TIMEOUT)
                );
                return self.fail_all(&mut jobs, &why);
            }
        };
        tracing::debug!("connected to node {} at {}", self.peer, self.addr);
        if let Err(e) = requests.send(bytes::Bytes::from(self.hello.to_vec())).await {
            return self.fail_all(&mut jobs, &format!("cannot send: {e}"));
        }
        let mut sweep = tokio::time::interval(SWEEP);
        let mut last_used = Instant::now();
        let left = self.left.clone();
        let why = loop {
            tokio::select! {
                // Jobs first: a call that arrives as the connection idles out is still sent.
                biased;
                () = left.cancelled() => break "it left the group".to_string(),
                job = jobs.recv() => {
                    let Some(job) = job else { break "the pool closed".to_string() };
                    last_used = Instant::now();
                    if let Err(e) = requests.send(bytes::Bytes::from(job.frame)).await {
                        self.fail(job.call, &format!("cannot send: {e}"));
                        break format!("cannot send: {e}");
                    }
                    if job.call.wants_reply {
                        self.pending.insert(job.id, job.call);
                    } else {
                        self.done(job.call, Ok(Value::Null));
                    }
                }
                frame = replies.next() => match frame {
                    Some(Ok(bytes)) => match frame::decode(&bytes) {
                        Ok(PortFrame::Reply { id, outcome }) => {
                            last_used = Instant::now();
                            if let Some(call) = self.pending.remove(&id) {
                                self.done(call, outcome);
                            }
                        }
                        Ok(other) => break format!("it sent an unexpected frame: {other:?}"),
                        Err(e) => break format!("it sent a malformed frame: {e}"),
                    },
                    Some(Err(e)) => break format!("the connection failed: {e}"),
                    None => break "it closed the connection".to_string(),
                },
                _ = sweep.tick() => {
                    let now = Instant::now();
                    let expired: Vec<u64> = self
                        .pending
                        .iter()
                        .filter(|(_, call)| call.deadline <= now)
                        .map(|(id, _)| *id)
                        .collect();
                    for id in expired {
                        // The caller has stopped waiting: it has its timeout already.
                        self.pending.remove(&id);
                        self.in_flight.fetch_sub(1, Ordering::Relaxed);
                    }
                    if self.pending.is_empty() && jobs.is_empty() && last_used.elapsed() >= IDLE {
                        break "idle".to_string();
                    }
                }
            }
        };
        tracing::debug!(
            "connection to node {} at {} closed: {why}",
            self.peer,
            self.addr
        );
        self.fail_all(&mut jobs, &why);
    }

    fn done(&self, call: PendingCall, outcome: Outcome) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        // The caller may have stopped waiting: then nobody wants the outcome.
        let _ = call.reply.try_send(outcome);
    }

    fn fail(&self, call: PendingCall, why: &str) {
        let failure = CallFailure::new(
            FailureKind::PeerGone,
            format!("node {} ({}): {why}", self.peer, self.addr),
        );
        self.done(call, Err(failure));
    }

    /// Fails every call sent or queued on this connection.
    fn fail_all(&mut self, jobs: &mut mpsc::Receiver<Job>, why: &str) {
        jobs.close();
        for (_, call) in std::mem::take(&mut self.pending) {
            self.fail(call, why);
        }
        while let Ok(job) = jobs.try_recv() {
            self.fail(job.call, why);
        }
    }
}
