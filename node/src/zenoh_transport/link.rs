//! A node's link to a Zenoh network, as its [`Transport`]: one Zenoh session, a publisher
//! on the node's own key of the group, a subscriber to every node's key (what it hears
//! goes to the network thread, as a datagram from the group would), a subscriber to the
//! key of what is sent to this node alone (statuses of its stream, for the stream
//! thread), and the node's queryable (calls to it alone, [`super::queries`]). See [`super::keys`] for the keys and docs/zenoh.md for the design.
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
use crate::auth::Sealed;
use crate::transport::{ForNode, Transport};
use crossbeam_channel::{Receiver, Sender};
use dhost_protocol::wire;
use dhost_runtime::stats::Stats;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use zenoh::Wait as _;
use zenoh::pubsub::{Publisher, Subscriber};
use zenoh::qos::CongestionControl;
use zenoh::query::{Query, Queryable};
use zenoh::sample::{Locality, Sample};

/// How many statuses may wait for the stream thread.
const FOR_NODE_QUEUE: usize = 4096;

/// A datagram the group sent, heard from Zenoh, for the network thread.
#[derive(Debug)]
pub struct Heard {
    /// The sealed datagram.
    pub bytes: Vec<u8>,
    /// The sender its key names, if it names one (the tag must say the same).
    pub sender: Option<u64>,
}

/// A node's link to a Zenoh network (see the module's documentation).
pub struct ZenohLink {
    session: zenoh::Session,
    keys: GroupKeys,
    /// What the node sends to the group.
    publisher: Publisher<'static>,
    /// What is sent to this node alone (and the empty wake-ups).
    for_node: Receiver<(Vec<u8>, SocketAddr)>,
    wake: Sender<(Vec<u8>, SocketAddr)>,
    /// Kept: dropping one undeclares it.
    _subscribers: [Subscriber<()>; 2],
    _queryable: Option<Queryable<()>>,
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

/// Zenoh's error, with what was being done.
fn zenoh_error(what: &'static str) -> impl FnOnce(zenoh::Error) -> LinkError {
    move |e| LinkError::Zenoh {
        what,
        why: e.to_string(),
    }
}

impl ZenohLink {
    /// Joins the Zenoh network `config` describes as node `id` of the group `keys`
    /// names. What it hears goes to `inputs` (what does not fit the group's queue is
    /// counted as overrun in `stats`). Must run outside any tokio runtime.
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
        let publisher = session
            .declare_publisher(keys.to_group(id))
            .congestion_control(CongestionControl::Block)
            .wait()
            .map_err(zenoh_error("cannot publish to the group"))?;
        let group = {
            let keys = keys.clone();
            session
                .declare_subscriber(keys.group())
                // (Its own datagrams: its calls were delivered locally.)
                .allowed_origin(Locality::Remote)
                .callback(move |sample: Sample| {
                    let sender = keys.sender_of(sample.key_expr().as_str());
                    let bytes = sample.payload().to_bytes().into_owned();
                    if heard.try_send(Heard { bytes, sender }).is_err() {
                        Stats::bump(&stats.datagrams_overrun);
                    }
                })
                .wait()
                .map_err(zenoh_error("cannot subscribe to the group"))?
        };
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
            publisher,
            for_node,
            wake,
            _subscribers: [group, own],
            _queryable: queryable,
        })
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
}

impl Transport for ZenohLink {
    fn to_group(&self, sealed: &Sealed<'_>) -> std::io::Result<()> {
        self.publisher
            .put(sealed.to_vec())
            .wait()
            .map_err(std::io::Error::other)
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
        format!("the Zenoh network ({})", self.keys.group())
    }
}
