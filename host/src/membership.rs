//! Who is on the group: this node's announcements of itself (its name and the functions it
//! serves, about once a second, at once when asked, and a goodbye when it stops), and the
//! table of peers built from everyone else's, which forgets a peer after a few missed
//! announcements.
//!
//! Names are unique on a group: when two live nodes announce the same name, the one that
//! has been up for less time (on a tie, the one with the larger id) gives way.

use crate::wire::Announce;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// How often a node announces itself.
pub const ANNOUNCE_EVERY: Duration = Duration::from_secs(1);

/// How long a peer is remembered without an announcement (three and a half missed).
pub const PEER_EXPIRY: Duration = Duration::from_millis(3500);

/// The shortest gap between two announcements made because someone asked.
const ANSWER_GAP: Duration = Duration::from_millis(100);

/// The most peers remembered (a hostile group cannot grow the table without bound).
const MAX_PEERS: usize = 4096;

/// Another node of the group, as its last announcement described it.
#[derive(Debug, Clone)]
pub struct Peer {
    /// Its name.
    pub name: String,
    /// Where its datagrams come from.
    pub addr: SocketAddr,
    /// How long it had been up when it last announced itself, in milliseconds.
    pub uptime_ms: u64,
    /// The function ids it serves.
    pub functions: Vec<String>,
    /// Where it takes calls with replies, if it does.
    pub tcp: Option<SocketAddr>,
    /// The peers it holds TCP connections to, with how many.
    pub links: Vec<(String, u64)>,
    /// When it last announced itself.
    pub last_seen: Instant,
}

/// Two live nodes claim the same name, and this one must give way.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error(
    "the name `{name}` is taken by the node at {addr} (up for {uptime}); choose another with --name"
)]
pub struct NameTaken {
    /// The name.
    pub name: String,
    /// Where the other node is.
    pub addr: SocketAddr,
    /// How long the other node has been up.
    pub uptime: String,
}

/// What happened to the peers table on an announcement, for the log.
#[derive(Debug, PartialEq)]
pub enum Change {
    /// A node not seen before.
    Joined,
    /// A node already known.
    Known,
}

/// This node's side of membership, and its peers.
#[derive(Debug)]
pub struct Membership {
    id: u64,
    name: String,
    started: Instant,
    functions: Vec<String>,
    peers: HashMap<u64, Peer>,
    next_announce: Instant,
    last_answer: Option<Instant>,
    /// Whether a peer joined, left or changed what it serves since [`Self::take_changed`].
    changed: bool,
}

impl Membership {
    /// The membership of node `id`, named `name`, serving `functions`; it announces itself
    /// at once.
    pub fn new(id: u64, name: &str, functions: Vec<String>) -> Self {
        let now = Instant::now();
        Membership {
            id,
            name: name.to_string(),
            started: now,
            functions,
            peers: HashMap::new(),
            next_announce: now,
            last_answer: None,
            changed: false,
        }
    }

    /// How long this node has been up, in milliseconds.
    pub fn uptime_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The node's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The function ids this node serves.
    pub fn functions(&self) -> &[String] {
        &self.functions
    }

    /// Changes the function ids this node serves, and announces them at once.
    pub fn set_functions(&mut self, functions: Vec<String>) {
        if functions != self.functions {
            self.functions = functions;
            self.next_announce = Instant::now();
        }
    }

    /// Announces the node at the end of this turn (what it runs changed).
    pub fn announce_soon(&mut self) {
        self.next_announce = Instant::now();
    }

    /// Takes an announcement by node `sender` from `addr`.
    pub fn on_announce(
        &mut self,
        sender: u64,
        addr: SocketAddr,
        announce: Announce,
    ) -> Result<Change, NameTaken> {
        if sender == self.id {
            return Ok(Change::Known);
        }
        if announce.name == self.name {
            let mine = self.uptime_ms();
            let theirs_older =
                announce.uptime_ms > mine || (announce.uptime_ms == mine && sender < self.id);
            if theirs_older {
                return Err(NameTaken {
                    name: announce.name,
                    addr,
                    uptime: humantime::format_duration(Duration::from_millis(announce.uptime_ms))
                        .to_string(),
                });
            }
            tracing::warn!(
                "the node at {addr} claims this node's name `{}`; it was up for less time and \
                 will give way",
                self.name
            );
            return Ok(Change::Known);
        }
        if !self.peers.contains_key(&sender)
            && self.peers.len() >= MAX_PEERS
            && let Some(oldest) = self
                .peers
                .iter()
                .min_by_key(|(_, p)| p.last_seen)
                .map(|(id, _)| *id)
        {
            self.peers.remove(&oldest);
        }
        let peer = Peer {
            name: announce.name,
            addr,
            uptime_ms: announce.uptime_ms,
            functions: announce.functions,
            tcp: announce.tcp,
            links: announce.links,
            last_seen: Instant::now(),
        };
        let change = match self.peers.get(&sender) {
            None => Change::Joined,
            Some(old) => {
                if old.functions != peer.functions || old.tcp != peer.tcp || old.name != peer.name {
                    self.changed = true;
                }
                Change::Known
            }
        };
        if change == Change::Joined {
            self.changed = true;
        }
        self.peers.insert(sender, peer);
        Ok(change)
    }

    /// Someone asked every node to announce itself: do so soon (at most every 100 ms).
    pub fn on_query(&mut self) {
        let now = Instant::now();
        let earliest = self.last_answer.map_or(now, |t| t + ANSWER_GAP);
        self.next_announce = self.next_announce.min(earliest.max(now));
    }

    /// Node `sender` sent something (a call, a heartbeat): it is alive, even if it is too
    /// busy to announce itself (a guest sending in a long loop).
    pub fn heard_from(&mut self, sender: u64, now: Instant) {
        if let Some(peer) = self.peers.get_mut(&sender) {
            peer.last_seen = now;
        }
    }

    /// Forgets node `sender` (it said goodbye, or fell silent); returns it if it was known.
    pub fn forget(&mut self, sender: u64) -> Option<Peer> {
        let gone = self.peers.remove(&sender);
        self.changed |= gone.is_some();
        gone
    }

    /// Whether a peer joined, left, or changed its name, port or functions since the last
    /// time this was asked.
    pub fn take_changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }

    /// The peers not heard from for [`PEER_EXPIRY`] (to [`Self::forget`]).
    pub fn silent(&self, now: Instant) -> Vec<u64> {
        self.peers
            .iter()
            .filter(|(_, p)| now.saturating_duration_since(p.last_seen) > PEER_EXPIRY)
            .map(|(id, _)| *id)
            .collect()
    }

    /// When the next announcement is due.
    pub fn next_announce(&self) -> Instant {
        self.next_announce
    }

    /// When the next peer may expire.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.peers.values().map(|p| p.last_seen + PEER_EXPIRY).min()
    }

    /// Whether an announcement is due at `now`; if so, the next one is scheduled.
    pub fn announce_due(&mut self, now: Instant) -> bool {
        if now < self.next_announce {
            return false;
        }
        self.last_answer = Some(now);
        self.next_announce = now + ANNOUNCE_EVERY;
        true
    }

    /// The name of peer `id`, if it has announced itself.
    pub fn peer_name(&self, id: u64) -> Option<&str> {
        self.peers.get(&id).map(|p| p.name.as_str())
    }

    /// The peers, by id.
    pub fn peers(&self) -> impl Iterator<Item = (&u64, &Peer)> {
        self.peers.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn announce(name: &str, uptime_ms: u64) -> Announce {
        Announce {
            name: name.into(),
            uptime_ms,
            functions: vec!["a:b/c#d".into()],
            ..Announce::default()
        }
    }

    fn addr() -> SocketAddr {
        "127.0.0.1:4000".parse().unwrap()
    }

    #[test]
    fn peers_join_are_refreshed_leave_and_expire() {
        let mut m = Membership::new(1, "me", vec![]);
        assert_eq!(
            m.on_announce(2, addr(), announce("two", 5)),
            Ok(Change::Joined)
        );
        assert_eq!(
            m.on_announce(2, addr(), announce("two", 6)),
            Ok(Change::Known)
        );
        assert_eq!(
            m.on_announce(3, addr(), announce("three", 5)),
            Ok(Change::Joined)
        );
        assert_eq!(
            m.on_announce(1, addr(), announce("me", 5)),
            Ok(Change::Known),
            "our own"
        );
        assert_eq!(m.peers().count(), 2);
        assert_eq!(m.forget(2).map(|p| p.name), Some("two".into()));
        let later = Instant::now() + PEER_EXPIRY + Duration::from_millis(1);
        assert_eq!(m.silent(later), [3]);
        assert!(m.forget(3).is_some());
        assert_eq!(m.peers().count(), 0);
    }

    #[test]
    fn the_younger_of_two_nodes_with_one_name_gives_way() {
        let mut young = Membership::new(5, "same", vec![]);
        let err = young
            .on_announce(9, addr(), announce("same", 60_000))
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("the name `same` is taken by the node at 127.0.0.1:4000 (up for 1m)"),
            "{err}"
        );
        let mut old = Membership::new(5, "same", vec![]);
        std::thread::sleep(Duration::from_millis(5));
        assert!(old.on_announce(9, addr(), announce("same", 0)).is_ok());
        assert_eq!(old.peers().count(), 0, "the impostor is not a peer");
    }

    #[test]
    fn queries_are_answered_soon_but_not_too_often() {
        let mut m = Membership::new(1, "me", vec![]);
        let now = Instant::now();
        assert!(m.announce_due(now));
        assert!(!m.announce_due(now));
        m.on_query();
        assert!(m.next_announce() <= now + ANSWER_GAP + Duration::from_millis(50));
        assert!(m.next_announce() >= now + ANSWER_GAP);
    }
}
