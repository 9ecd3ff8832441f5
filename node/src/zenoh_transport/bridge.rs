//! A node on both its LAN's multicast group and a Zenoh network (`dhost run --zenoh ...
//! --bridge`), relaying between them, so that the LAN's members (its original `.so`
//! plugins included) and the nodes beyond it are one group. As a [`Transport`] it sends
//! the node's own datagrams on both, and takes what is sent to the node alone from both.
//!
//! It relays every datagram of the group, byte for byte as its sender sealed it, once:
//!
//! - from the LAN to Zenoh, what the LAN's members send: control datagrams on their
//!   `c/<sender>` key, stream datagrams on `x/<sender>` (for every node: a bridge cannot
//!   seal a stand-in in another node's name, so calls from the LAN are not routed by
//!   function beyond it);
//! - from Zenoh to the LAN, what the nodes beyond it send (control and stream datagrams,
//!   not stand-ins: the LAN's members take every datagram), multicast from the bridge's
//!   own socket;
//! - statuses of a stream, to its sender on the other side: from a LAN member (sent to
//!   the bridge's socket, the address it relays from) to the Zenoh sender's `u/<sender>`,
//!   and from a node beyond (on a LAN sender's `u/<sender>`) to that sender's address.
//!
//! Every datagram is checked at the gate before it is relayed (nothing a stranger sends
//! crosses), and a datagram relayed once is never relayed again, whichever way it comes
//! back: a replay window of the bridge's own remembers every packet it relayed, and a
//! sender heard on one side is never relayed back to it. Multicast loops the bridge's
//! relays back to its own socket: the node skips those ([`Bridge::relays_from`]).
//!
//! Calls with replies are not relayed: a LAN member reaches the nodes beyond the bridge
//! by their calls to everyone, and the other way round.

use super::keys::{self, GroupKeys};
use super::link::ZenohLink;
use crate::auth::{Arrival, Gate, ReplayGuard, Sealed};
use crate::net::Multicast;
use crate::transport::{ForNode, Transport};
use dhost_protocol::auth::replay::Verdict;
use dhost_protocol::wire::{self, Frame, Header};
use std::collections::{HashMap, HashSet};
use std::net::{SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};
use zenoh::Wait as _;
use zenoh::pubsub::Subscriber;
use zenoh::sample::{Locality, Sample};

/// How long a relayed packet is remembered (as long as a datagram may be late at all).
const RELAY_MEMORY: Duration = crate::auth::datagram::REPLAY_MEMORY;

/// The most senders a bridge remembers on each side (and the address of, on its LAN);
/// past it, it forgets them all and learns them again from what they send.
const MAX_MEMBERS: usize = 4096;

/// What the bridge's relays share.
struct Relaying {
    /// This node's sender id.
    id: u64,
    keys: GroupKeys,
    gate: Arc<Gate>,
    /// The bridge's multicast socket (a clone of its transport's), and the group.
    lan: UdpSocket,
    group: SocketAddr,
    session: zenoh::Session,
    /// The LAN's members, by sender id: where they send from.
    lan_members: RwLock<HashMap<u64, SocketAddr>>,
    /// The senders heard through Zenoh.
    beyond: RwLock<HashSet<u64>>,
    /// Every packet relayed, by sender.
    relayed: Mutex<ReplayGuard>,
    /// The statuses opened to see whose stream they are about.
    statuses: Mutex<ReplayGuard>,
}

impl Relaying {
    /// Whether `bytes`, which came as `arrival` says of their header, pass the gate and
    /// were never relayed: their header, if so.
    fn admit(&self, bytes: &[u8], arrival: impl FnOnce(&Header) -> Arrival) -> Option<Header> {
        let mut copy = bytes.to_vec();
        let header = wire::read_header(&mut copy.as_slice()).ok()?;
        if header.sender == self.id {
            return None;
        }
        let arrival = arrival(&header);
        let now = Instant::now();
        let mut relayed = self.relayed.lock().unwrap_or_else(PoisonError::into_inner);
        if self.gate.is_keyed() {
            // (The gate's replay window is the relay's memory.)
            self.gate
                .open(&header, &mut copy, arrival, &mut relayed, now)
                .ok()?;
        } else {
            let mut once = ReplayGuard::new(RELAY_MEMORY);
            self.gate
                .open(&header, &mut copy, arrival, &mut once, now)
                .ok()?;
            if relayed.check(header.sender, header.packet, now) != Verdict::New {
                return None;
            }
        }
        Some(header)
    }

    /// Puts `bytes` on `key`.
    fn put(&self, key: String, bytes: Vec<u8>) {
        if let Err(e) = super::link::put(&self.session, key, bytes) {
            tracing::debug!("cannot relay a datagram to the Zenoh network: {e}");
        }
    }

    /// A datagram of the group heard through Zenoh (`sample`): multicast to the LAN.
    fn to_lan(&self, sample: &Sample) {
        let Some(sender) = self.keys.sender_of(sample.key_expr().as_str()) else {
            return;
        };
        if self.is_lan_member(sender) {
            return;
        }
        let bytes = sample.payload().to_bytes();
        let arrival = |_: &Header| Arrival::to_group(keys::peer_addr(sender));
        if self
            .admit(&bytes, arrival)
            .is_none_or(|h| h.sender != sender)
        {
            return;
        }
        {
            let mut beyond = self.beyond.write().unwrap_or_else(PoisonError::into_inner);
            if beyond.len() >= MAX_MEMBERS && !beyond.contains(&sender) {
                // (Senders are new at every start of a node: forget the old ones.)
                beyond.clear();
            }
            beyond.insert(sender);
        }
        if let Err(e) = self.lan.send_to(&bytes, self.group) {
            tracing::debug!("cannot relay a datagram to {}: {e}", self.group);
        }
    }

    /// A status heard through Zenoh for a LAN member's stream (`sample`, on the member's
    /// `u/<sender>` key): sent on to the member.
    fn status_to_lan(&self, sample: &Sample) {
        let Some(member) = self.keys.sender_of(sample.key_expr().as_str()) else {
            return;
        };
        let Some(to) = self.lan_address(member) else {
            return;
        };
        let bytes = sample.payload().to_bytes();
        let arrival = |header: &Header| Arrival::to_node(keys::peer_addr(header.sender));
        if self.admit(&bytes, arrival).is_none() {
            return;
        }
        if let Err(e) = self.lan.send_to(&bytes, to) {
            tracing::debug!("cannot relay a status to {to}: {e}");
        }
    }

    /// A datagram sent to the bridge's socket (`bytes`, from `from`): a status of a
    /// stream beyond the bridge is sent on to its sender (and `true` returned); anything
    /// else is the node's own.
    fn status_to_zenoh(&self, bytes: &[u8], from: SocketAddr) -> bool {
        let mut copy = bytes.to_vec();
        let Ok(header) = wire::read_header(&mut copy.as_slice()) else {
            return false;
        };
        let opened = {
            let mut statuses = self.statuses.lock().unwrap_or_else(PoisonError::into_inner);
            let arrival = Arrival::to_node(from);
            self.gate
                .open_frames(&header, &mut copy, arrival, &mut statuses, Instant::now())
        };
        let Ok(frames) = opened else {
            return false;
        };
        let stream = frames.iter().find_map(|f| match f {
            Frame::Status(status) => Some(status.stream),
            _ => None,
        });
        match stream {
            Some(stream) if stream != self.id && self.is_beyond(stream) => {
                self.put(self.keys.to_node(stream), bytes.to_vec());
                true
            }
            _ => false,
        }
    }

    fn is_lan_member(&self, sender: u64) -> bool {
        self.lan_address(sender).is_some()
    }

    fn lan_address(&self, sender: u64) -> Option<SocketAddr> {
        let members = self
            .lan_members
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        members.get(&sender).copied()
    }

    fn is_beyond(&self, sender: u64) -> bool {
        let beyond = self.beyond.read().unwrap_or_else(PoisonError::into_inner);
        beyond.contains(&sender)
    }
}

/// A node's bridge between its LAN and a Zenoh network (see the module's documentation).
pub struct Bridge {
    lan: Multicast,
    zenoh: Arc<ZenohLink>,
    relaying: Arc<Relaying>,
    /// The bridge's own multicast address: what multicast loops back from it is its own.
    own: SocketAddr,
    _relays: Vec<Subscriber<()>>,
}

impl std::fmt::Debug for Bridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bridge")
            .field("lan", &self.lan)
            .field("zenoh", &self.zenoh)
            .finish()
    }
}

impl Bridge {
    /// The bridge of node `id` between the multicast group `lan` reaches and the Zenoh
    /// network `zenoh` has joined, for the group `keys` names, checking what it relays
    /// with `gate`.
    pub fn new(
        lan: Multicast,
        zenoh: Arc<ZenohLink>,
        keys: GroupKeys,
        id: u64,
        gate: Arc<Gate>,
    ) -> anyhow::Result<Self> {
        use anyhow::Context as _;
        let socket = lan
            .socket()
            .try_clone()
            .context("cannot share the multicast socket")?;
        let own = socket.local_addr()?;
        let relaying = Arc::new(Relaying {
            id,
            keys: keys.clone(),
            gate,
            lan: socket.try_clone()?,
            group: lan.group(),
            session: zenoh.session().clone(),
            lan_members: RwLock::default(),
            beyond: RwLock::default(),
            relayed: Mutex::new(ReplayGuard::new(RELAY_MEMORY)),
            statuses: Mutex::new(ReplayGuard::new(RELAY_MEMORY)),
        });
        let mut relays = Vec::new();
        for (key, relay) in [
            (
                keys.all_control(),
                Relaying::to_lan as fn(&Relaying, &Sample),
            ),
            (keys.all_streams(), Relaying::to_lan),
            (keys.everyone(), Relaying::to_lan),
            (keys.all_nodes(), Relaying::status_to_lan),
        ] {
            let relaying = relaying.clone();
            let subscriber = zenoh
                .session()
                .declare_subscriber(key)
                .allowed_origin(Locality::Remote)
                .callback(move |sample: Sample| relay(&relaying, &sample))
                .wait()
                .map_err(|e| anyhow::anyhow!("cannot relay the Zenoh network to the LAN: {e}"))?;
            relays.push(subscriber);
        }
        // What is sent to the bridge's socket: statuses of its own stream, and of the
        // streams beyond it (sent on).
        let to_stream_thread = zenoh.for_node_sender();
        let statuses = relaying.clone();
        std::thread::Builder::new()
            .name("dhost-bridge".into())
            .spawn(move || {
                let mut buf = vec![0u8; 65_536];
                loop {
                    let (len, from) = match socket.recv_from(&mut buf) {
                        Ok(received) => received,
                        Err(e) => {
                            tracing::debug!("the bridge's socket: {e}");
                            continue;
                        }
                    };
                    let bytes = &buf[..len];
                    if len > 0 && statuses.status_to_zenoh(bytes, from) {
                        continue;
                    }
                    if to_stream_thread.send((bytes.to_vec(), from)).is_err() {
                        break;
                    }
                }
            })
            .context("cannot start the bridge's thread")?;
        Ok(Bridge {
            lan,
            zenoh,
            relaying,
            own,
            _relays: relays,
        })
    }

    /// Whether a datagram that came by multicast from `from` is one the bridge relayed
    /// (or sent) itself.
    pub fn relays_from(&self, from: SocketAddr) -> bool {
        from == self.own
    }

    /// A datagram a LAN member sent (`bytes` as they came, from `from`, whose `header`
    /// the node has opened): relayed to the Zenoh network, once.
    pub fn from_lan(&self, bytes: &[u8], from: SocketAddr, header: &Header) {
        let sender = header.sender;
        let relaying = &self.relaying;
        if sender == relaying.id || relaying.is_beyond(sender) {
            return;
        }
        {
            let mut members = relaying
                .lan_members
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            if members.len() >= MAX_MEMBERS && !members.contains_key(&sender) {
                // (Senders are new at every start of a node: forget the old ones.)
                members.clear();
            }
            members.insert(sender, from);
        }
        let fresh = relaying
            .relayed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .check(sender, header.packet, Instant::now());
        if fresh != Verdict::New {
            return;
        }
        let key = match header.seq {
            None => relaying.keys.control(sender),
            Some(_) => relaying.keys.stand_in(sender, ""),
        };
        relaying.put(key, bytes.to_vec());
    }
}

impl Transport for Bridge {
    fn to_group(&self, datagram: &[u8], gate: &Gate) -> std::io::Result<()> {
        let lan = self.lan.to_group(datagram, gate);
        self.zenoh.to_group(datagram, gate)?;
        lan
    }

    fn serve(&self, functions: &[String]) {
        self.zenoh.serve(functions);
    }

    fn to_node(&self, to: SocketAddr, sealed: &Sealed<'_>) -> std::io::Result<()> {
        match keys::peer_of(to) {
            Some(_) => self.zenoh.to_node(to, sealed),
            None => self.lan.to_node(to, sealed),
        }
    }

    fn for_node(&self, buf: &mut [u8], timeout: Duration) -> std::io::Result<Option<ForNode>> {
        // (The bridge's thread hands on what comes to its socket.)
        self.zenoh.for_node(buf, timeout)
    }

    fn wake(&self) {
        self.zenoh.wake();
    }

    fn describe(&self) -> String {
        format!("{} and {}", self.lan.describe(), self.zenoh.describe())
    }
}
