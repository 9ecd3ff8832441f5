//! A node's link to a Zenoh network, as its [`Transport`]: one Zenoh session that sends
//! what the node sends to its group on the group's keys ([`super::keys`]) and hears what
//! the others send there (handed to the network thread, as a datagram from the group
//! would be), hears what is sent to this node alone (statuses of its stream, for the
//! stream thread), and answers the calls to it ([`super::queries`]). docs/zenoh.md has
//! the design.
//!
//! A datagram of the node's stream goes on a key that names the functions its calls are
//! to, and its stand-in (its header alone) on another: a node subscribes to the first
//! for each function it serves, and takes the stand-in of every datagram that has none
//! of them, so its view of every sender's stream has no gap while the routers deliver
//! the calls only to the nodes that serve them. Control datagrams go to every node.
//!
//! The payloads are the sealed datagrams, byte for byte as multicast carries them: the
//! routers in between see only what a LAN would, and can forge nothing. Zenoh carries
//! them reliably and in order over TCP, hop by hop; the stream's own window, repair and
//! replay window still hold end to end (a router restarted loses what it held).
//!
//! A Zenoh session must be opened and closed outside any tokio runtime (zenoh 1.10 panics
//! inside a current-thread one): [`ZenohLink::open`] and [`ZenohLink::close`] check it.
//! Its callbacks run on Zenoh's own threads and never block: what does not fit in the
//! queues is dropped and counted as overrun, as the kernel drops what overflows a socket,
//! and the senders' repair sends it again.

use super::keys::{self, GroupKeys};
use crate::auth::{Gate, Sealed};
use crate::transport::{ForNode, Transport};
use crossbeam_channel::{Receiver, Sender};
use dhost_protocol::wire;
use dhost_runtime::stats::Stats;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;
use zenoh::Wait as _;
use zenoh::pubsub::{Publisher, Subscriber};
use zenoh::qos::CongestionControl;
use zenoh::query::{Query, Queryable};
use zenoh::sample::{Locality, Sample};

/// How many statuses may wait for the stream thread.
const FOR_NODE_QUEUE: usize = 4096;

/// The most keys of stream datagrams a link keeps publishers for (one per set of
/// functions it sent calls to together); beyond, it puts without one.
const MAX_PUBLISHERS: usize = 256;

/// A datagram the group sent, heard from Zenoh, for the network thread.
#[derive(Debug)]
pub struct Heard {
    /// The sealed datagram.
    pub bytes: Vec<u8>,
    /// The sender its key names, if it names one (the tag must say the same).
    pub sender: Option<u64>,
}

/// Where a link hands what it hears.
#[derive(Debug)]
pub struct LinkInputs {
    /// What the group sends (what does not fit is counted as overrun).
    pub heard: tokio::sync::mpsc::Sender<Heard>,
    /// The queries to this node (what does not fit is answered with an error); none: it
    /// takes no calls (a client).
    pub queries: Option<tokio::sync::mpsc::Sender<Query>>,
}

/// What the callbacks of the group's subscriptions share.
struct Hearing {
    keys: GroupKeys,
    heard: tokio::sync::mpsc::Sender<Heard>,
    stats: Arc<Stats>,
    /// The chunks of the bare names of the functions this node serves.
    served: RwLock<HashSet<String>>,
}

impl Hearing {
    /// Hands `sample` to the network thread.
    fn hand(&self, sample: &Sample) {
        let sender = self.keys.sender_of(sample.key_expr().as_str());
        let bytes = sample.payload().to_bytes().into_owned();
        if self.heard.try_send(Heard { bytes, sender }).is_err() {
            Stats::bump(&self.stats.datagrams_overrun);
        }
    }

    fn served(&self) -> std::sync::RwLockReadGuard<'_, HashSet<String>> {
        self.served.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// A stream datagram heard through the subscription of `function` (a chunk): taken
    /// there if `function` is the first function of its key this node serves (a datagram
    /// with calls to several functions is heard once for each).
    fn on_stream(&self, function: &str, sample: &Sample) {
        let key = sample.key_expr().as_str();
        let served = self.served();
        let first = self.keys.functions_of(key).find(|f| served.contains(*f));
        if first == Some(function) {
            drop(served);
            self.hand(sample);
        }
    }

    /// A stand-in: taken if its datagram has calls to none of this node's functions (or
    /// a datagram for every node, whose key names none).
    fn on_stand_in(&self, sample: &Sample) {
        let key = sample.key_expr().as_str();
        let served = self.served();
        if !self.keys.functions_of(key).any(|f| served.contains(f)) {
            drop(served);
            self.hand(sample);
        }
    }
}

/// A node's link to a Zenoh network (see the module's documentation).
pub struct ZenohLink {
    session: zenoh::Session,
    keys: GroupKeys,
    id: u64,
    /// What the node sends to the group's control key.
    control: Publisher<'static>,
    /// Publishers of stream datagrams and their stand-ins, by function path.
    streams: Mutex<HashMap<String, [Publisher<'static>; 2]>>,
    hearing: Arc<Hearing>,
    /// The subscriptions to the functions served, by chunk (dropping one undeclares it).
    serving: Mutex<HashMap<String, Subscriber<()>>>,
    /// What is sent to this node alone (and the empty wake-ups).
    for_node: Receiver<(Vec<u8>, SocketAddr)>,
    wake: Sender<(Vec<u8>, SocketAddr)>,
    /// Kept: dropping one undeclares it.
    _subscribers: [Subscriber<()>; 3],
    _queryable: Option<Queryable<()>>,
}

impl std::fmt::Debug for ZenohLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZenohLink")
            .field("zid", &self.session.zid())
            .field("keys", &self.keys)
            .finish()
    }
}

/// Why a node could not join a Zenoh network.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// Called on a thread inside a tokio runtime.
    #[error("a Zenoh session cannot be opened or closed inside a tokio runtime")]
    InRuntime,
    /// Zenoh refused.
    #[error("{what}: {why}")]
    Zenoh {
        /// What was being done.
        what: &'static str,
        /// Zenoh's reason.
        why: String,
    },
}

/// Puts `payload` on `key` through `session`, waiting while the link to the next hop is
/// full rather than dropping it (as every publisher of a node does).
pub(super) fn put(session: &zenoh::Session, key: String, payload: Vec<u8>) -> zenoh::Result<()> {
    session
        .put(key, payload)
        .congestion_control(CongestionControl::Block)
        .wait()
}

/// Zenoh's error, with what was being done.
fn zenoh_error(what: &'static str) -> impl FnOnce(zenoh::Error) -> LinkError {
    move |e| LinkError::Zenoh {
        what,
        why: e.to_string(),
    }
}

impl ZenohLink {
    /// Joins the Zenoh network `config` describes as node `id` of the group `keys`
    /// names, serving no function yet ([`Transport::serve`]). What it hears goes to
    /// `inputs` (what does not fit the group's queue is counted as overrun in `stats`).
    /// Must run outside any tokio runtime.
    pub fn open(
        config: zenoh::Config,
        keys: GroupKeys,
        id: u64,
        inputs: LinkInputs,
        stats: Arc<Stats>,
    ) -> Result<Self, LinkError> {
        let LinkInputs { heard, queries } = inputs;
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(LinkError::InRuntime);
        }
        let session = zenoh::open(config)
            .wait()
            .map_err(zenoh_error("cannot join the Zenoh network"))?;
        let control = session
            .declare_publisher(keys.control(id))
            .congestion_control(CongestionControl::Block)
            // (Announcements, heartbeats: small, and waited for.)
            .express(true)
            .wait()
            .map_err(zenoh_error("cannot publish to the group"))?;
        let hearing = Arc::new(Hearing {
            keys: keys.clone(),
            heard,
            stats,
            served: RwLock::default(),
        });
        let subscribe = |key: String, take: fn(&Hearing, &Sample)| {
            let hearing = hearing.clone();
            session
                .declare_subscriber(key)
                // (Its own datagrams: its calls were delivered locally.)
                .allowed_origin(Locality::Remote)
                .callback(move |sample: Sample| take(&hearing, &sample))
                .wait()
                .map_err(zenoh_error("cannot subscribe to the group"))
        };
        let control_sub = subscribe(keys.all_control(), Hearing::hand)?;
        let stand_ins = subscribe(keys.all_stand_ins(), Hearing::on_stand_in)?;
        let (wake, for_node) = crossbeam_channel::bounded(FOR_NODE_QUEUE);
        let own = {
            let to_stream_thread = wake.clone();
            session
                .declare_subscriber(keys.to_node(id))
                .allowed_origin(Locality::Remote)
                .callback(move |sample: Sample| {
                    // (The key is this node's: the sender is the one its header names,
                    // which the tag proves. One without a header is refused as malformed.)
                    let bytes = sample.payload().to_bytes().into_owned();
                    let sender = wire::read_header(&mut bytes.as_slice()).map_or(0, |h| h.sender);
                    let _ = to_stream_thread.try_send((bytes, keys::peer_addr(sender)));
                })
                .wait()
                .map_err(zenoh_error("cannot subscribe to this node's key"))?
        };
        let queryable = match queries {
            None => None,
            Some(queries) => Some(
                session
                    .declare_queryable(keys.query(id))
                    .callback(move |query: Query| {
                        if let Err(e) = queries.try_send(query) {
                            let query = e.into_inner();
                            let _ = query
                                .reply_err("the node is overloaded: too many queries wait for it")
                                .wait();
                        }
                    })
                    .wait()
                    .map_err(zenoh_error("cannot take calls on this node's key"))?,
            ),
        };
        tracing::info!(
            "joined the Zenoh network as {} (routers {:?})",
            session.zid(),
            session.info().routers_zid().wait().collect::<Vec<_>>()
        );
        Ok(ZenohLink {
            session,
            keys,
            id,
            control,
            streams: Mutex::default(),
            hearing,
            serving: Mutex::default(),
            for_node,
            wake,
            _subscribers: [control_sub, stand_ins, own],
            _queryable: queryable,
        })
    }

    /// Where what is sent to this node alone is handed to the stream thread (for a bridge,
    /// which hears some of it on its LAN socket).
    pub fn for_node_sender(&self) -> Sender<(Vec<u8>, SocketAddr)> {
        self.wake.clone()
    }

    /// The link's Zenoh session (for the calls to one node, [`super::queries`]).
    pub fn session(&self) -> &zenoh::Session {
        &self.session
    }

    /// Leaves the Zenoh network (its routers and peers see this node's subscriptions go).
    /// Must run outside any tokio runtime.
    pub fn close(&self) -> Result<(), LinkError> {
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(LinkError::InRuntime);
        }
        self.session
            .close()
            .wait()
            .map_err(zenoh_error("cannot leave the Zenoh network"))
    }

    /// Puts `payload` on the key of a stream datagram with calls to the functions `path`
    /// names, or of its stand-in (`stand_in`): through the link's publisher of that key,
    /// if it keeps one.
    fn put_stream(&self, path: &str, stand_in: bool, payload: Vec<u8>) -> zenoh::Result<()> {
        let key = |stand_in: bool| match stand_in {
            false => self.keys.stream(self.id, path),
            true => self.keys.stand_in(self.id, path),
        };
        let mut streams = self.streams.lock().unwrap_or_else(PoisonError::into_inner);
        if !streams.contains_key(path) && streams.len() < MAX_PUBLISHERS {
            let declare = |stand_in: bool| {
                self.session
                    .declare_publisher(key(stand_in))
                    .congestion_control(CongestionControl::Block)
                    .wait()
            };
            let pair = [declare(false)?, declare(true)?];
            streams.insert(path.to_string(), pair);
        }
        match streams.get(path) {
            Some(pair) => pair[usize::from(stand_in)].put(payload).wait(),
            None => {
                drop(streams);
                put(&self.session, key(stand_in), payload)
            }
        }
    }
}

impl Transport for ZenohLink {
    fn to_group(&self, datagram: &[u8], gate: &Gate) -> std::io::Result<()> {
        let header = wire::read_header(&mut &*datagram).map_err(std::io::Error::other)?;
        let sealed = gate.seal(datagram, false).to_vec();
        let Some(seq) = header.seq else {
            return self
                .control
                .put(sealed)
                .wait()
                .map_err(std::io::Error::other);
        };
        // (The node's own datagram: its frames are well-formed.)
        let functions = wire::call_functions(&datagram[header.len..]).unwrap_or_default();
        let Some(path) = keys::function_path(functions) else {
            let everyone = self.keys.stand_in(self.id, "");
            return put(&self.session, everyone, sealed).map_err(std::io::Error::other);
        };
        let mut stand_in = Vec::with_capacity(wire::MAX_HEADER);
        wire::encode_header(self.id, Some(seq), &mut stand_in);
        let stand_in = gate.seal(&stand_in, false).to_vec();
        self.put_stream(&path, false, sealed)
            .map_err(std::io::Error::other)?;
        self.put_stream(&path, true, stand_in)
            .map_err(std::io::Error::other)
    }

    fn serve(&self, functions: &[String]) {
        let chunks: HashSet<String> = functions
            .iter()
            .map(|f| keys::chunk(keys::bare(f)))
            .collect();
        *self
            .hearing
            .served
            .write()
            .unwrap_or_else(PoisonError::into_inner) = chunks.clone();
        let mut serving = self.serving.lock().unwrap_or_else(PoisonError::into_inner);
        serving.retain(|chunk, _| chunks.contains(chunk));
        for chunk in chunks {
            if serving.contains_key(&chunk) {
                continue;
            }
            let hearing = self.hearing.clone();
            let function = chunk.clone();
            let declared = self
                .session
                .declare_subscriber(self.keys.serving(&chunk))
                .allowed_origin(Locality::Remote)
                .callback(move |sample: Sample| hearing.on_stream(&function, &sample))
                .wait();
            match declared {
                Ok(subscriber) => {
                    serving.insert(chunk, subscriber);
                }
                Err(e) => tracing::error!(
                    "cannot subscribe to the calls to {chunk} on {}: {e}",
                    self.describe()
                ),
            }
        }
    }

    fn to_node(&self, to: SocketAddr, sealed: &Sealed<'_>) -> std::io::Result<()> {
        let Some(node) = keys::peer_of(to) else {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrNotAvailable,
                format!("{to} is not reached through Zenoh"),
            ));
        };
        self.session
            .put(self.keys.to_node(node), sealed.to_vec())
            .congestion_control(CongestionControl::Block)
            .express(true)
            .wait()
            .map_err(std::io::Error::other)
    }

    fn for_node(&self, buf: &mut [u8], timeout: Duration) -> std::io::Result<Option<ForNode>> {
        let Ok((bytes, from)) = self.for_node.recv_timeout(timeout) else {
            return Ok(None);
        };
        if bytes.len() > buf.len().min(wire::MAX_DATAGRAM) {
            // (Larger than any datagram: cut, it fails its tag.)
            tracing::debug!(
                "a message of {} bytes for this node from {from}",
                bytes.len()
            );
        }
        let len = bytes.len().min(buf.len());
        buf[..len].copy_from_slice(&bytes[..len]);
        Ok(Some((len, from)))
    }

    fn wake(&self) {
        let _ = self.wake.try_send((Vec::new(), keys::peer_addr(0)));
    }

    fn describe(&self) -> String {
        format!("the Zenoh network ({})", self.keys.all_control())
    }
}
