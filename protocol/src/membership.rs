//! Who is on the group: this node's announcements of itself (its name and the functions it
//! serves, about once a second, at once when asked, and a goodbye when it stops), and the
//! table of peers built from everyone else's, which forgets a peer after a few missed
//! announcements.
//!
//! Names are unique on a group, by what each node observes itself: a starting node *claims*
//! its name (it asks who is there and listens a while) and gives way if a node announces
//! that name meanwhile. Once it holds the name, nothing a datagram says takes it away: a
//! later announcement of the same name is a conflict, logged and ignored (never an exit),
//! whatever uptime it claims.
//!
//! The table is bounded (peers, and function ids over all peers: the silent are forgotten
//! first), and it tells what changed since it was last asked, peer by peer, so that what is
//! built from it is updated, not rebuilt.

use crate::wire::{Announce, Presence};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// How often a node announces itself.
pub const ANNOUNCE_EVERY: Duration = Duration::from_secs(1);

/// How long a peer is remembered without an announcement (three and a half missed).
pub const PEER_EXPIRY: Duration = Duration::from_millis(3500);

/// The shortest gap between two announcements made because someone asked.
const ANSWER_GAP: Duration = Duration::from_millis(100);

/// The most peers remembered (a hostile group cannot grow the table without bound): the
/// one heard from longest ago makes room for a new one.
pub const MAX_PEERS: usize = 1024;

/// The most function ids remembered over all peers (each announces at most
/// [`crate::wire::MAX_FUNCTIONS_ANNOUNCED`]): past it, the peers heard from longest ago are
/// forgotten.
pub const MAX_PEER_FUNCTIONS: usize = 65_536;

/// The most nodes claiming this node's name that are named in the log (each once).
const MAX_CONFLICTS_LOGGED: usize = 64;

/// Another node of the group: who it is and what it offers, as its last announcement
/// said, and where and when that was heard.
#[derive(Debug, Clone, PartialEq)]
pub struct Peer {
    /// Its name, functions, port and links, as it last announced them.
    pub presence: Presence,
    /// Where its datagrams come from.
    pub addr: SocketAddr,
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
    /// A node announced this node's name after this node claimed it: ignored.
    Conflict,
}

/// What changed in the peers table since it was last asked.
#[derive(Debug, Default, PartialEq)]
pub struct PeerChanges<'a> {
    /// The peers that joined (or took another name: they join under it).
    pub joined: Vec<&'a Peer>,
    /// The peers known before that changed their TCP port or functions.
    pub changed: Vec<&'a Peer>,
    /// The names no peer goes by any more.
    pub gone: Vec<String>,
}

impl PeerChanges<'_> {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.joined.is_empty() && self.changed.is_empty() && self.gone.is_empty()
    }
}

/// A change of one peer, as guests hear of it (`dstc:node/group-events`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupChange {
    /// It joined.
    Joined,
    /// It left, or fell silent.
    Left,
    /// It serves other functions (or takes calls at another port).
    Functions,
}

impl GroupChange {
    /// Its case name in the WIT.
    pub fn name(self) -> &'static str {
        match self {
            GroupChange::Joined => "joined",
            GroupChange::Left => "left",
            GroupChange::Functions => "functions",
        }
    }
}

/// This node's side of membership, and its peers.
#[derive(Debug)]
pub struct Membership {
    id: u64,
    name: String,
    started: Instant,
    functions: Vec<String>,
    peers: HashMap<u64, Peer>,
    /// The function ids held over all peers.
    functions_held: usize,
    next_announce: Instant,
    last_answer: Option<Instant>,
    /// Whether the node is still claiming its name (an announcement of it means it is
    /// taken); once claimed, the name is the node's.
    claiming: bool,
    /// The nodes claiming this node's name that were logged.
    conflicts: HashSet<u64>,
    /// The peers that joined since [`Self::take_changes`].
    joined: HashSet<u64>,
    /// The peers that changed since then.
    changed: HashSet<u64>,
    /// The names of the peers that left or were renamed since then.
    gone: Vec<String>,
}

impl Membership {
    /// The membership of node `id`, named `name`, serving `functions`, started at `now`;
    /// it announces itself at once.
    pub fn new(id: u64, name: &str, functions: Vec<String>, now: Instant) -> Self {
        Membership {
            id,
            name: name.to_string(),
            started: now,
            functions,
            peers: HashMap::new(),
            functions_held: 0,
            next_announce: now,
            last_answer: None,
            claiming: true,
            conflicts: HashSet::new(),
            joined: HashSet::new(),
            changed: HashSet::new(),
            gone: Vec::new(),
        }
    }

    /// The node's claim of its name is over: the name is its own from now on.
    pub fn claimed(&mut self) {
        self.claiming = false;
    }

    /// How long this node has been up at `now`, in milliseconds.
    pub fn uptime_ms(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.started).as_millis()).unwrap_or(u64::MAX)
    }

    /// The node's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The function ids this node serves.
    pub fn functions(&self) -> &[String] {
        &self.functions
    }

    /// Changes the function ids this node serves, and announces them at once (`now`).
    pub fn set_functions(&mut self, functions: Vec<String>, now: Instant) {
        if functions != self.functions {
            self.functions = functions;
            self.next_announce = now;
        }
    }

    /// Announces the node at the end of this turn (what it runs changed), at `now`.
    pub fn announce_soon(&mut self, now: Instant) {
        self.next_announce = now;
    }

    /// Takes an announcement by node `sender` from `addr`, heard at `now`. While the node
    /// claims its name, an announcement of that name means it is taken; after, it is a
    /// conflict, ignored.
    pub fn on_announce(
        &mut self,
        sender: u64,
        addr: SocketAddr,
        announce: Announce,
        now: Instant,
    ) -> Result<Change, NameTaken> {
        if sender == self.id {
            return Ok(Change::Known);
        }
        if announce.presence.name == self.name {
            if self.claiming {
                return Err(NameTaken {
                    name: announce.presence.name,
                    addr,
                    uptime: humantime::format_duration(Duration::from_millis(
                        announce.presence.uptime_ms,
                    ))
                    .to_string(),
                });
            }
            if self.conflicts.len() < MAX_CONFLICTS_LOGGED && self.conflicts.insert(sender) {
                tracing::warn!(
                    "the node at {addr} ({sender:016x}) announces this node's name `{}`, which \
                     this node claimed before it heard of that node: ignoring it (one of the \
                     two should be given another --name)",
                    self.name
                );
            }
            // (Not a peer under this node's name: calls by name stay here.)
            if let Some(old) = self.peers.remove(&sender) {
                self.drop_peer(sender, old);
            }
            return Ok(Change::Conflict);
        }
        let functions = announce.presence.functions.len();
        let known = self.peers.contains_key(&sender);
        if !known {
            self.make_room(1, functions);
        }
        let peer = Peer {
            presence: announce.presence,
            addr,
            last_seen: now,
        };
        let change = match self.peers.get(&sender) {
            None => {
                self.joined.insert(sender);
                Change::Joined
            }
            Some(old) => {
                if old.presence.name != peer.presence.name {
                    self.gone.push(old.presence.name.clone());
                    self.joined.insert(sender);
                } else if old.presence.functions != peer.presence.functions
                    || old.presence.tcp != peer.presence.tcp
                {
                    self.changed.insert(sender);
                }
                Change::Known
            }
        };
        self.functions_held += functions;
        if let Some(old) = self.peers.insert(sender, peer) {
            self.functions_held -= old.presence.functions.len();
        }
        if known && self.functions_held > MAX_PEER_FUNCTIONS {
            self.make_room(0, 0);
        }
        Ok(change)
    }

    /// Forgets the peers heard from longest ago until `peers` more peers and `functions`
    /// more function ids fit.
    fn make_room(&mut self, peers: usize, functions: usize) {
        while !self.peers.is_empty()
            && (self.peers.len() + peers > MAX_PEERS
                || self.functions_held + functions > MAX_PEER_FUNCTIONS)
        {
            let Some(oldest) = self
                .peers
                .iter()
                .min_by_key(|(_, p)| p.last_seen)
                .map(|(id, _)| *id)
            else {
                break;
            };
            if let Some(peer) = self.peers.remove(&oldest) {
                tracing::debug!(
                    "forgetting peer {} ({}): the table of peers is full",
                    peer.presence.name,
                    peer.addr
                );
                self.drop_peer(oldest, peer);
            }
        }
    }

    /// Accounts for `peer` (node `id`), taken out of the table.
    fn drop_peer(&mut self, id: u64, peer: Peer) {
        self.functions_held -= peer.presence.functions.len();
        self.joined.remove(&id);
        self.changed.remove(&id);
        self.gone.push(peer.presence.name);
    }

    /// Someone asked every node to announce itself (at `now`): do so soon (at most every
    /// 100 ms).
    pub fn on_query(&mut self, now: Instant) {
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
        let gone = self.peers.remove(&sender)?;
        self.drop_peer(sender, gone.clone());
        Some(gone)
    }

    /// What changed since the last time this was asked: the peers that joined (or took
    /// another name), those that changed their port or functions, and the names no peer
    /// goes by any more (a name another peer still goes by counts as that peer's change).
    pub fn take_changes(&mut self) -> PeerChanges<'_> {
        let joined = std::mem::take(&mut self.joined);
        let mut changed = std::mem::take(&mut self.changed);
        let mut gone = Vec::new();
        for name in std::mem::take(&mut self.gone) {
            match self.peers.iter().find(|(_, p)| p.presence.name == name) {
                Some((id, _)) => {
                    changed.insert(*id);
                }
                None if !gone.contains(&name) => gone.push(name),
                None => {}
            }
        }
        let peers = |ids: &HashSet<u64>| -> Vec<&Peer> {
            let mut peers: Vec<&Peer> = ids.iter().filter_map(|id| self.peers.get(id)).collect();
            peers.sort_by(|a, b| a.presence.name.cmp(&b.presence.name));
            peers
        };
        changed.retain(|id| !joined.contains(id));
        PeerChanges {
            joined: peers(&joined),
            changed: peers(&changed),
            gone,
        }
    }

    /// The function ids held over all peers.
    pub fn functions_held(&self) -> usize {
        self.functions_held
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
        self.peers.get(&id).map(|p| p.presence.name.as_str())
    }

    /// The peers, by id.
    pub fn peers(&self) -> impl Iterator<Item = (&u64, &Peer)> {
        self.peers.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::OnceLock;

    /// The tests' made-up start of time.
    fn t0() -> Instant {
        static T0: OnceLock<Instant> = OnceLock::new();
        *T0.get_or_init(Instant::now)
    }

    fn announce(name: &str, uptime_ms: u64) -> Announce {
        Announce {
            presence: Presence {
                name: name.into(),
                uptime_ms,
                functions: vec!["a:b/c#d".into()],
                ..Presence::default()
            },
            ..Announce::default()
        }
    }

    fn addr() -> SocketAddr {
        "127.0.0.1:4000".parse().unwrap()
    }

    #[test]
    fn peers_join_are_refreshed_leave_and_expire() {
        let mut m = Membership::new(1, "me", vec![], t0());
        assert_eq!(
            m.on_announce(2, addr(), announce("two", 5), t0()),
            Ok(Change::Joined)
        );
        assert_eq!(
            m.on_announce(2, addr(), announce("two", 6), t0()),
            Ok(Change::Known)
        );
        assert_eq!(
            m.on_announce(3, addr(), announce("three", 5), t0()),
            Ok(Change::Joined)
        );
        assert_eq!(
            m.on_announce(1, addr(), announce("me", 5), t0()),
            Ok(Change::Known),
            "our own"
        );
        assert_eq!(m.peers().count(), 2);
        assert_eq!(m.forget(2).map(|p| p.presence.name), Some("two".into()));
        let later = t0() + PEER_EXPIRY + Duration::from_millis(1);
        assert_eq!(m.silent(later), [3]);
        assert!(m.forget(3).is_some());
        assert_eq!(m.peers().count(), 0);
    }

    #[test]
    fn a_name_is_taken_while_claiming_and_kept_once_claimed() {
        let mut starting = Membership::new(5, "same", vec![], t0());
        let err = starting
            .on_announce(9, addr(), announce("same", 60_000), t0())
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("the name `same` is taken by the node at 127.0.0.1:4000 (up for 1m)"),
            "{err}"
        );
        // Once claimed, no announcement takes the name, whatever uptime it claims.
        let mut holder = Membership::new(5, "same", vec![], t0());
        holder.claimed();
        for uptime in [0, 60_000, 1 << 63, u64::MAX] {
            assert_eq!(
                holder.on_announce(9, addr(), announce("same", uptime), t0()),
                Ok(Change::Conflict)
            );
        }
        assert_eq!(holder.peers().count(), 0, "the impostor is not a peer");
        assert_eq!(holder.name(), "same");
    }

    #[test]
    fn the_table_is_bounded_and_forgets_the_silent_first() {
        let mut m = Membership::new(1, "me", vec![], t0());
        m.claimed();
        for id in 0..MAX_PEERS as u64 + 10 {
            let _ = m.on_announce(id + 2, addr(), announce(&format!("p{id}"), 1), t0());
        }
        assert_eq!(m.peers().count(), MAX_PEERS);
        assert!(
            m.peer_name(MAX_PEERS as u64 + 11).is_some(),
            "the last heard is kept"
        );
        // Function ids over all peers are bounded too.
        let mut m = Membership::new(1, "me", vec![], t0());
        let many = |name: &str| Announce {
            presence: Presence {
                name: name.into(),
                functions: (0..1024).map(|i| format!("a:b/c#f{i}")).collect(),
                ..Presence::default()
            },
            ..Announce::default()
        };
        for id in 0..100 {
            let _ = m.on_announce(id + 2, addr(), many(&format!("p{id}")), t0());
        }
        assert!(m.functions_held() <= MAX_PEER_FUNCTIONS);
        assert_eq!(m.peers().count(), MAX_PEER_FUNCTIONS / 1024);
        assert_eq!(
            m.functions_held(),
            m.peers()
                .map(|(_, p)| p.presence.functions.len())
                .sum::<usize>()
        );
    }

    #[test]
    fn changes_are_told_peer_by_peer() {
        let mut m = Membership::new(1, "me", vec![], t0());
        let _ = m.on_announce(2, addr(), announce("two", 1), t0());
        let _ = m.on_announce(3, addr(), announce("three", 1), t0());
        let names = |peers: &[&Peer]| -> Vec<String> {
            peers.iter().map(|p| p.presence.name.clone()).collect()
        };
        let changes = m.take_changes();
        assert_eq!(names(&changes.joined), ["three", "two"]);
        assert!(changes.changed.is_empty() && changes.gone.is_empty());
        // Nothing changed: nothing told.
        let _ = m.on_announce(2, addr(), announce("two", 2), t0());
        assert_eq!(m.take_changes(), PeerChanges::default());
        // A rename, a departure; a name another peer still goes by is that peer's.
        let _ = m.on_announce(2, addr(), announce("deux", 3), t0());
        let _ = m.on_announce(4, addr(), announce("three", 1), t0());
        m.forget(3);
        let changes = m.take_changes();
        assert_eq!(names(&changes.joined), ["deux", "three"]);
        assert!(changes.changed.is_empty());
        assert_eq!(changes.gone, ["two"]);
        // New functions.
        let mut more = announce("deux", 4);
        more.presence.functions.push("a:b/c#e".into());
        let _ = m.on_announce(2, addr(), more, t0());
        let changes = m.take_changes();
        assert_eq!(names(&changes.changed), ["deux"]);
        assert!(changes.joined.is_empty() && changes.gone.is_empty());
    }

    #[test]
    fn queries_are_answered_soon_but_not_too_often() {
        let mut m = Membership::new(1, "me", vec![], t0());
        let now = t0();
        assert!(m.announce_due(now));
        assert!(!m.announce_due(now));
        let ms = |n| now + Duration::from_millis(n);
        // Asked 10 ms after an announcement: the answer waits for the gap.
        m.on_query(ms(10));
        assert_eq!(m.next_announce(), ms(100));
        assert!(!m.announce_due(ms(99)));
        assert!(m.announce_due(ms(100)));
        assert_eq!(m.next_announce(), ms(1100), "then once a second again");
        // Asked 50 ms after that answer: 100 ms after it, not at once.
        m.on_query(ms(150));
        assert_eq!(m.next_announce(), ms(200));
        assert!(m.announce_due(ms(200)));
        // Asked long after the last answer: at once.
        m.on_query(ms(700));
        assert_eq!(m.next_announce(), ms(700));
    }

    #[test]
    fn a_peer_is_silent_only_after_the_expiry_since_it_was_last_heard() {
        let ms = |n| t0() + Duration::from_millis(n);
        let mut m = Membership::new(1, "me", vec![], t0());
        let _ = m.on_announce(2, addr(), announce("two", 1), ms(0));
        let _ = m.on_announce(3, addr(), announce("three", 1), ms(1000));
        let expiry = PEER_EXPIRY.as_millis() as u64;
        assert_eq!(m.next_expiry(), Some(ms(expiry)));
        assert!(
            m.silent(ms(expiry)).is_empty(),
            "not before the expiry has passed"
        );
        assert_eq!(m.silent(ms(expiry + 1)), [2]);
        // A call heard from a peer too busy to announce itself keeps it alive.
        m.heard_from(2, ms(expiry));
        assert!(m.silent(ms(expiry + 1)).is_empty());
        assert_eq!(m.next_expiry(), Some(ms(1000 + expiry)));
        let mut both = m.silent(ms(2 * expiry + 1));
        both.sort();
        assert_eq!(both, [2, 3]);
        // (Nothing from a node never heard of.)
        m.heard_from(9, ms(0));
        assert_eq!(m.peers().count(), 2);
        assert_eq!(m.uptime_ms(ms(2500)), 2500);
    }
}
