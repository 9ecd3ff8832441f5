//! Calls to one node through a Zenoh network, where nodes cannot reach each other's TCP
//! ports: every node declares a queryable on its own key (`dhost/<group>/q/<sender>`,
//! [`super::keys`]), and a call is a Zenoh query on the key of the node called. The query
//! carries the request frame the TCP port takes, and the reply the reply frame it gives,
//! so that everything the port serves is served this way too: calls with replies and
//! casts to the node's guests and plugins, its mailboxes, published modules (transfers,
//! fetches, listings), `describe`, `say`.
//!
//! Both are sealed with the group key as a datagram sent to one node is (a header naming
//! the sender, the tag, the replay window, `--encrypt`): a router sees and can forge
//! nothing, and a node answers only a member of its group. The caller's side is a
//! [`Relay`] of the node's pool ([`QueryClient`]); the answering side a task on the
//! network thread ([`serve_queries`]), which answers through [`tcp_port::answer_alone`].

use super::keys::{self, GroupKeys};
use crate::auth::{self, Arrival, Gate, ReplayGuard, Unopened};
use crate::rpc::frame::{self, PortFrame};
use crate::rpc::pool::{PendingCall, Relay};
use crate::tcp_port::{self, Caller, Services};
use dhost_protocol::outcome::{CallFailure, FailureKind};
use dhost_protocol::wire;
use dhost_runtime::stats::DropLog;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;
use zenoh::Wait as _;
use zenoh::query::{ConsolidationMode, Query, QueryTarget, Reply};

/// Seals `frame` as a datagram from node `sender` to one node.
fn seal(gate: &Gate, sender: u64, frame: &[u8]) -> Vec<u8> {
    let mut datagram = Vec::with_capacity(frame.len() + wire::MAX_HEADER);
    wire::encode_header(sender, None, &mut datagram);
    datagram.extend_from_slice(frame);
    gate.seal(&datagram, true).to_vec()
}

/// Opens what node `from` sealed with [`seal`]: the frame, decoded.
fn open(
    gate: &Gate,
    bytes: &mut [u8],
    from: Option<u64>,
    replay: &Mutex<ReplayGuard>,
) -> Result<(u64, PortFrame), Unopened> {
    let header = wire::read_header(&mut &*bytes)?;
    if from.is_some_and(|from| from != header.sender) {
        return Err(Unopened::Malformed(wire::WireError::Shape {
            what: "reply",
            why: "it came from another node than the one called".to_string(),
        }));
    }
    let arrival = Arrival::to_node(keys::peer_addr(header.sender));
    let mut replay = replay.lock().unwrap_or_else(PoisonError::into_inner);
    let body = gate.open(&header, bytes, arrival, &mut replay, Instant::now())?;
    Ok((header.sender, frame::decode(body)?))
}

/// The caller's side: sends the pool's calls to nodes reached through Zenoh as queries
/// (see the module's documentation).
#[derive(Debug)]
pub struct QueryClient {
    session: zenoh::Session,
    keys: GroupKeys,
    /// This node's (or client's) sender id.
    id: u64,
    gate: Arc<Gate>,
    /// The replay windows of the nodes that reply.
    replay: Arc<Mutex<ReplayGuard>>,
}

impl QueryClient {
    /// Calls from node `id`, through `session`, on the group `keys` names, sealed by
    /// `gate`.
    pub fn new(session: zenoh::Session, keys: GroupKeys, id: u64, gate: Arc<Gate>) -> Self {
        QueryClient {
            session,
            keys,
            id,
            gate,
            replay: Arc::new(Mutex::new(ReplayGuard::new(auth::datagram::REPLAY_MEMORY))),
        }
    }
}

impl Relay for QueryClient {
    fn reaches(&self, addr: SocketAddr) -> bool {
        keys::peer_of(addr).is_some()
    }

    fn send(&self, id: u64, frame: Vec<u8>, call: PendingCall) {
        let Some(node) = keys::peer_of(call.addr) else {
            return fail(
                call,
                FailureKind::PeerGone,
                "not reached through Zenoh".into(),
            );
        };
        let key = self.keys.query(node);
        let timeout = call.deadline.saturating_duration_since(Instant::now());
        let answer = Answer {
            call: Mutex::new(Some(call)),
            id,
            node,
            key: key.clone(),
            gate: self.gate.clone(),
            replay: self.replay.clone(),
        };
        let sent = self
            .session
            .get(key)
            .payload(seal(&self.gate, self.id, &frame))
            .target(QueryTarget::BestMatching)
            .consolidation(ConsolidationMode::None)
            // (A call waits for its reply: not held back to fill a batch.)
            .express(true)
            .timeout(timeout)
            .callback(move |reply| answer.take(&reply))
            .wait();
        // (When it could not be sent, the answer was dropped and told the caller.)
        if let Err(e) = sent {
            tracing::debug!("cannot send a query to node {node:016x}: {e}");
        }
    }
}

/// Fails `call` with `kind` and `why`.
fn fail(call: PendingCall, kind: FailureKind, why: String) {
    let failure = CallFailure::new(kind, format!("node {} ({}): {why}", call.peer, call.addr));
    let _ = call.reply.try_send(Err(failure));
}

/// What waits for the reply to one query, and tells the caller.
struct Answer {
    /// The call, until its outcome is known.
    call: Mutex<Option<PendingCall>>,
    /// Its request id.
    id: u64,
    /// The node called.
    node: u64,
    /// The key it was called on.
    key: String,
    gate: Arc<Gate>,
    replay: Arc<Mutex<ReplayGuard>>,
}

impl Answer {
    /// A reply came: its outcome goes to the caller (the first reply only).
    fn take(&self, reply: &Reply) {
        let outcome = match reply.result() {
            Ok(sample) => {
                let mut bytes = sample.payload().to_bytes().into_owned();
                match open(&self.gate, &mut bytes, Some(self.node), &self.replay) {
                    Ok((_, PortFrame::Reply { id, outcome })) if id == self.id => outcome,
                    Ok((_, other)) => Err(CallFailure::new(
                        FailureKind::PeerGone,
                        format!("it answered with an unexpected frame: {other:?}"),
                    )),
                    Err(why) => Err(CallFailure::new(
                        FailureKind::Refused,
                        format!("its reply was refused: {why}"),
                    )),
                }
            }
            Err(error) => {
                let why = error.payload().try_to_string().map_or_else(
                    |_| "an error it did not say".to_string(),
                    |why| why.into_owned(),
                );
                let kind = if why.contains("Timeout") {
                    FailureKind::Timeout
                } else {
                    FailureKind::Refused
                };
                Err(CallFailure::new(kind, why))
            }
        };
        let call = self
            .call
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(call) = call {
            let outcome = outcome.map_err(|failure| {
                CallFailure::new(
                    failure.kind,
                    format!("node {} ({}): {}", call.peer, call.addr, failure.message),
                )
            });
            let _ = call.reply.try_send(outcome);
        }
    }
}

/// The query ended (replied, timed out, or no node answers at its key): a caller not
/// told yet is told why.
impl Drop for Answer {
    fn drop(&mut self) {
        let call = self
            .call
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(call) = call {
            let (kind, why) = if Instant::now() >= call.deadline {
                (FailureKind::Timeout, "no reply in time".to_string())
            } else {
                (
                    FailureKind::PeerGone,
                    format!(
                        "no node answers at {} through Zenoh (it left, or no router reaches \
                         it)",
                        self.key
                    ),
                )
            };
            fail(call, kind, why);
        }
    }
}

/// What answers the queries to a node.
pub struct QueryServer {
    /// The node's sender id.
    pub id: u64,
    /// What its replies are sealed by, and its queries opened by.
    pub gate: Arc<Gate>,
    /// What its TCP port serves, which its queryable serves too.
    pub services: Services,
}

/// Answers the queries `queries` brings (from the node's queryable) until it closes: each
/// is opened at the gate (what fails is counted and logged as a refused datagram, and
/// answered with an error), then answered on a task of its own.
pub async fn serve_queries(mut queries: tokio::sync::mpsc::Receiver<Query>, server: QueryServer) {
    let replay = Mutex::new(ReplayGuard::new(auth::datagram::REPLAY_MEMORY));
    let mut drops = DropLog::new();
    while let Some(query) = queries.recv().await {
        let mut bytes = query
            .payload()
            .map(|p| p.to_bytes().into_owned())
            .unwrap_or_default();
        let len = bytes.len();
        let opened = open(&server.gate, &mut bytes, None, &replay);
        let (sender, request) = match opened {
            Ok((sender, PortFrame::Request(request))) => (sender, request),
            Ok((sender, other)) => {
                let why = format!("a query from {sender:016x} that is no request: {other:?}");
                drops.dropped(format_args!("{why}"));
                let _ = query.reply_err(why).wait();
                continue;
            }
            Err(why) => {
                // (Its sender is what its header says, if it has one: the key is this node's.)
                let from = wire::read_header(&mut bytes.as_slice()).map_or(0, |h| h.sender);
                let from = keys::peer_addr(from);
                auth::note_unopened(&server.services.stats, &mut drops, from, len, &why);
                let _ = query.reply_err(format!("refused: {why}")).wait();
                continue;
            }
        };
        let caller = Caller {
            addr: keys::peer_addr(sender),
            node: sender,
        };
        let (services, gate, id) = (server.services.clone(), server.gate.clone(), server.id);
        tokio::spawn(async move {
            let reply = tcp_port::answer_alone(&services, request, caller).await;
            let sealed = seal(&gate, id, &reply);
            let reply = query.reply(query.key_expr().clone(), sealed).express(true);
            if let Err(e) = reply.wait() {
                tracing::debug!("cannot reply to a query from {sender:016x}: {e}");
            }
        });
    }
}
