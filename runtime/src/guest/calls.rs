//! Who answers a call with a reply: [`Calls`], what every guest of a node shares to make
//! them, knows the node's peers and what they serve, and the node's own guests that serve
//! functions ([`LocalServer`]).
//!
//! Where a call goes: the node named with `dstc:node/calls.set-target` if the guest named
//! one; otherwise this node, if one of its guests serves the function and can take the
//! call, and otherwise a peer that announces it (in turn, when several do). A local call
//! goes to the serving guest's worker (through [`ServingGuest`]); a remote one goes
//! through the node's connection pool ([`super::network::RemoteCaller`]). The calling guest's side,
//! its wait and its result, is [`super::reply`]'s.

use super::network::RemoteCaller;
use crate::stats::RoundTrips;
use ciborium::Value;
use dhost_mailbox::Mailboxes;
use dhost_protocol::outcome::{CallFailure, FailureKind, Outcome};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

/// A peer, as calls with replies (and guests asking about the group) see it: where it
/// takes calls, what it serves, how long it has been up.
#[derive(Debug, Clone)]
pub struct PeerEntry {
    /// Its TCP address, if it announced one.
    pub tcp: Option<SocketAddr>,
    /// The function ids it serves.
    pub functions: HashSet<String>,
    /// How long it said it had been up, in milliseconds...
    pub uptime_ms: u64,
    /// ... when this entry was made.
    pub heard: Instant,
}

/// A peer as a guest sees it (`dstc:node/group.peer`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupPeer {
    /// Its name.
    pub name: String,
    /// How long it has been up, in milliseconds, as it says.
    pub uptime_ms: u64,
    /// The functions it serves that the asking guest may call, sorted.
    pub functions: Vec<String>,
    /// How many TCP connections this node holds to it.
    pub connections: u32,
}

/// A guest of this node that takes calls with replies, as the routing sees it: the seam
/// through which [`Calls`] reaches a guest's worker ([`super::worker::WorkerHandle`]
/// implements it) without depending on the worker, which runs guests that use [`Calls`].
pub trait ServingGuest: Send + Sync + std::fmt::Debug {
    /// The guest's name, for messages.
    fn name(&self) -> &str;

    /// Whether the guest can take a call now: not waiting for a reply of its own, nor to
    /// restart.
    fn is_available(&self) -> bool;

    /// Whether the guest's jail lets node `caller` call its export `slot`.
    fn admits(&self, slot: usize, caller: &str) -> bool;

    /// Runs export `slot` with `args` (one CBOR array), waiting at most `timeout` for room
    /// in the guest's queue and then for the outcome.
    fn call(&self, slot: usize, args: Vec<u8>, timeout: Duration) -> Outcome;
}

/// A guest of this node that serves a function, and the function's export slot.
#[derive(Debug, Clone)]
pub struct LocalServer {
    /// The guest.
    pub worker: Arc<dyn ServingGuest>,
    /// The function's export slot.
    pub slot: usize,
}

impl LocalServer {
    /// Whether the guest can take a call now.
    fn is_available(&self) -> bool {
        self.worker.is_available()
    }

    /// Whether the guest's jail lets node `caller` call the function.
    fn admits(&self, caller: &str) -> bool {
        self.worker.admits(self.slot, caller)
    }
}

/// The guests of this node that serve each function, by function id.
pub type LocalServers = HashMap<String, Vec<LocalServer>>;

/// What every guest of a node shares to make calls with replies.
#[derive(Debug)]
pub struct Calls {
    node_name: String,
    /// The functions this node's guests serve, set when guests are loaded or unloaded.
    local: RwLock<Arc<LocalServers>>,
    /// The peers, by name, kept up to date by the node as announcements come and go.
    peers: RwLock<HashMap<String, PeerEntry>>,
    pool: Option<Arc<dyn RemoteCaller>>,
    /// Turns among the peers that serve the same function.
    turn: AtomicUsize,
    /// This node's mailboxes, and the runtime their locks wait on.
    mailboxes: Option<(Arc<Mailboxes>, tokio::runtime::Handle)>,
    /// How long the calls that returned a result took.
    round_trips: RoundTrips,
    /// Whether a native plugin of this node serves a function.
    native_serves: fn(&str) -> bool,
}

impl Calls {
    /// The calls of node `node_name`, going out through `pool` (none: this node has no
    /// network, and serves calls with replies only locally).
    pub fn new(node_name: &str, pool: Option<Arc<dyn RemoteCaller>>) -> Self {
        Calls {
            node_name: node_name.to_string(),
            local: RwLock::default(),
            peers: RwLock::default(),
            pool,
            turn: AtomicUsize::new(0),
            mailboxes: None,
            round_trips: RoundTrips::default(),
            native_serves: |_| false,
        }
    }

    /// Asks `serves` whether a native plugin of this node serves a function
    /// ([`super::native::serves`], for a node that loads plugins).
    pub fn with_native(mut self, serves: fn(&str) -> bool) -> Self {
        self.native_serves = serves;
        self
    }

    /// Counts the round trips of calls in `round_trips` (the node's, for its metrics).
    pub fn with_round_trips(mut self, round_trips: RoundTrips) -> Self {
        self.round_trips = round_trips;
        self
    }

    /// Gives guests this node's mailboxes, whose waits run on `runtime` (a runtime that
    /// another thread drives: the node's network thread).
    pub fn with_mailboxes(
        mut self,
        boxes: Arc<Mailboxes>,
        runtime: tokio::runtime::Handle,
    ) -> Self {
        self.mailboxes = Some((boxes, runtime));
        self
    }

    /// Whether this node serves mailboxes.
    pub fn serves_mailboxes(&self) -> bool {
        self.mailboxes.is_some()
    }

    /// Runs a mailbox function on this node (`target` none or this node's name) or on the
    /// peer named `target`, waiting at most `timeout` for a peer.
    pub fn mailbox_call(
        &self,
        target: Option<&str>,
        function: &str,
        args: Vec<Value>,
        timeout: std::time::Duration,
    ) -> Outcome {
        match target {
            Some(peer) if peer != self.node_name => {
                let (peer, addr) = self.choose_peer(function, Some(peer)).map_err(|f| {
                    if f.message.contains("does not serve") {
                        CallFailure::new(f.kind, format!("node {peer} serves no mailboxes"))
                    } else {
                        f
                    }
                })?;
                match &self.pool {
                    Some(pool) => pool.call(addr, &peer, function, args, true, timeout),
                    None => Err(CallFailure::new(
                        FailureKind::NoServer,
                        "this node is not on the network",
                    )),
                }
            }
            _ => {
                match &self.mailboxes {
                    Some((boxes, runtime)) => runtime.block_on(
                        dhost_mailbox::functions::serve_call(Some(boxes), function, args),
                    ),
                    None => Err(CallFailure::new(
                        FailureKind::NoServer,
                        format!(
                            "this node ({}) serves no mailboxes (dhost run --mailboxes)",
                            self.node_name
                        ),
                    )),
                }
            }
        }
    }

    /// Sets the functions this node's guests serve (after loading or unloading one).
    pub fn set_local(&self, local: LocalServers) {
        *self.local.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(local);
    }

    /// Updates what is known of the peers: the peers `changed` (by name) and the names
    /// `gone`.
    pub fn update_peers(
        &self,
        changed: impl IntoIterator<Item = (String, PeerEntry)>,
        gone: impl IntoIterator<Item = String>,
    ) {
        let mut peers = self.peers.write().unwrap_or_else(PoisonError::into_inner);
        for name in gone {
            // (Calls in flight to it fail at once, not at their timeout.)
            if let Some(addr) = peers.remove(&name).and_then(|p| p.tcp)
                && let Some(pool) = &self.pool
            {
                pool.left(addr);
            }
        }
        peers.extend(changed);
    }

    /// The peers, sorted by name, each with the functions it serves that `may_send` lets
    /// through (the asking guest's jail).
    pub fn group_peers(&self, may_send: impl Fn(&str) -> bool) -> Vec<GroupPeer> {
        let links = self
            .pool
            .as_ref()
            .map(|pool| pool.links())
            .unwrap_or_default();
        let peers = self.peers.read().unwrap_or_else(PoisonError::into_inner);
        let mut all: Vec<GroupPeer> = peers
            .iter()
            .map(|(name, entry)| {
                let mut functions: Vec<String> = entry
                    .functions
                    .iter()
                    .filter(|f| may_send(f))
                    .cloned()
                    .collect();
                functions.sort();
                let since = u64::try_from(entry.heard.elapsed().as_millis()).unwrap_or(u64::MAX);
                GroupPeer {
                    name: name.clone(),
                    uptime_ms: entry.uptime_ms.saturating_add(since),
                    functions,
                    connections: entry
                        .tcp
                        .and_then(|addr| links.get(&addr))
                        .map_or(0, |&n| u32::try_from(n).unwrap_or(u32::MAX)),
                }
            })
            .collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// The names of the nodes that serve `function`: this node's first when one of its
    /// guests or native plugins does (or it is a mailbox function and this node serves
    /// mailboxes), then its peers', sorted.
    pub fn servers(&self, function: &str) -> Vec<String> {
        let mut names: Vec<String> = self
            .peers
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|(_, entry)| entry.functions.contains(function))
            .map(|(name, _)| name.clone())
            .collect();
        names.sort();
        let mailbox =
            self.serves_mailboxes() && dhost_mailbox::functions::is_mailbox_function(function);
        if mailbox || self.served_locally(function) || (self.native_serves)(function) {
            names.insert(0, self.node_name.clone());
        }
        names
    }

    /// Whether a peer, or a WebAssembly guest of this node, serves a function of the bare
    /// C name `name`: the id `name` itself, or any `...#name` (what a native plugin's call
    /// to `name` reaches). (Not this node's plugins: the caller knows those.)
    pub fn served_by_name(&self, name: &str) -> bool {
        let named = |id: &str| id == name || id.rsplit_once('#').is_some_and(|(_, f)| f == name);
        let peers = self.peers.read().unwrap_or_else(PoisonError::into_inner);
        peers.values().any(|p| p.functions.iter().any(|f| named(f)))
            || self.local().keys().any(|f| named(f))
    }

    /// How many peers this node knows.
    pub fn peer_count(&self) -> usize {
        self.peers
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// How many TCP connections this node holds to the peer named `node`; `None` when it
    /// knows no such peer.
    pub fn connections_to(&self, node: &str) -> Option<usize> {
        let tcp = self
            .peers
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(node)?
            .tcp;
        let links = self
            .pool
            .as_ref()
            .map(|pool| pool.links())
            .unwrap_or_default();
        Some(tcp.and_then(|addr| links.get(&addr).copied()).unwrap_or(0))
    }

    /// The functions the local guests serve, as they are now.
    fn local(&self) -> Arc<LocalServers> {
        self.local
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Runs function `id` with `args` where it should run (the rule in the module doc), at
    /// `target` if the calling guest named a node, and waits at most `timeout` for the
    /// outcome.
    pub fn call(
        &self,
        id: &str,
        args: Vec<Value>,
        target: Option<&str>,
        timeout: Duration,
    ) -> Outcome {
        match target {
            Some(name) if name == self.node_name => {
                self.call_local(id, args, timeout).unwrap_or_else(|| {
                    Err(CallFailure::new(
                        FailureKind::NoServer,
                        format!("this node ({name}) does not serve {id}"),
                    ))
                })
            }
            None if self.local_available(id) => self
                .call_local(id, args, timeout)
                .unwrap_or_else(|| Err(CallFailure::new(FailureKind::NoServer, id))),
            _ => match self.choose_peer(id, target) {
                Ok((peer, addr)) => match &self.pool {
                    Some(pool) => pool.call(addr, &peer, id, args, true, timeout),
                    None => Err(CallFailure::new(
                        FailureKind::NoServer,
                        "this node is not on the network",
                    )),
                },
                // A local guest that is busy further up the call chain is better named than
                // "no server" when no peer can take the call either.
                Err(_) if target.is_none() && self.served_locally(id) => Err(CallFailure::new(
                    FailureKind::Unavailable,
                    format!(
                        "the guest of this node that serves {id} cannot take the call now \
                         (waiting for a reply further up this call chain, restarting, or its \
                         jail refuses this node), and no peer serves it"
                    ),
                )),
                Err(e) => Err(e),
            },
        }
    }

    /// Counts a call that returned a result after `took`.
    pub fn observe_round_trip(&self, took: Duration) {
        self.round_trips.observe(took);
    }

    /// Whether a local guest serves `function` (able to take a call now or not).
    fn served_locally(&self, function: &str) -> bool {
        self.local().contains_key(function)
    }

    /// Runs `function` on the first local guest that serves it and can take the call,
    /// waiting at most `timeout`.
    fn call_local(
        &self,
        function: &str,
        args: Vec<Value>,
        timeout: std::time::Duration,
    ) -> Option<Outcome> {
        let local = self.local();
        let servers = local.get(function).map_or(&[][..], Vec::as_slice);
        let server = servers
            .iter()
            .find(|s| s.is_available() && s.admits(&self.node_name))
            .or_else(|| servers.first())?;
        if !server.admits(&self.node_name) {
            return Some(Err(CallFailure::new(
                FailureKind::Refused,
                format!(
                    "the jail of guest {} does not let node {} call {function} (its `serve` list)",
                    server.worker.name(),
                    self.node_name
                ),
            )));
        }
        let mut bytes = Vec::new();
        dhost_protocol::wire::encode_item(&Value::Array(args), &mut bytes);
        Some(server.worker.call(server.slot, bytes, timeout))
    }

    /// Whether a local guest serves `function` and can take a call now.
    fn local_available(&self, function: &str) -> bool {
        self.local()
            .get(function)
            .into_iter()
            .flatten()
            .any(|s| s.is_available() && s.admits(&self.node_name))
    }

    /// The peer to send `function` to: `target` if named, else one that serves it.
    fn choose_peer(
        &self,
        function: &str,
        target: Option<&str>,
    ) -> Result<(String, SocketAddr), CallFailure> {
        let peers = self.peers.read().unwrap_or_else(PoisonError::into_inner);
        let (name, entry) = match target {
            Some(name) => {
                let entry = peers.get(name).ok_or_else(|| {
                    CallFailure::new(
                        FailureKind::NoServer,
                        format!("no node named {name} is on the group"),
                    )
                })?;
                if !entry.functions.contains(function) {
                    return Err(CallFailure::new(
                        FailureKind::NoServer,
                        format!("node {name} does not serve {function}"),
                    ));
                }
                (name.to_string(), entry)
            }
            None => {
                let mut serving: Vec<(&String, &PeerEntry)> = peers
                    .iter()
                    .filter(|(_, p)| p.functions.contains(function) && p.tcp.is_some())
                    .collect();
                if serving.is_empty() {
                    return Err(CallFailure::new(
                        FailureKind::NoServer,
                        format!("no node on the group serves {function}"),
                    ));
                }
                serving.sort_by(|a, b| a.0.cmp(b.0));
                let turn = self.turn.fetch_add(1, Ordering::Relaxed) % serving.len();
                let (name, entry) = serving[turn];
                (name.clone(), entry)
            }
        };
        let tcp = entry.tcp.ok_or_else(|| {
            CallFailure::new(
                FailureKind::NoServer,
                format!("node {name} takes no calls with replies (it announced no TCP port)"),
            )
        })?;
        Ok((name, tcp))
    }
}

#[cfg(test)]
mod tests {
    //! Who answers a call with a reply, decided with made-up guests and peers: no socket,
    //! no pool (a node without a network), no WebAssembly.

    use super::*;

    const F: &str = "dhost:kv/store#get";
    const G: &str = "dhost:kv/store#put";
    const LONG: Duration = Duration::from_secs(5);

    /// A guest that answers with its own name, if it can take the call.
    #[derive(Debug)]
    struct FakeGuest {
        name: &'static str,
        available: bool,
        admits: &'static [&'static str],
    }

    impl ServingGuest for FakeGuest {
        fn name(&self) -> &str {
            self.name
        }
        fn is_available(&self) -> bool {
            self.available
        }
        fn admits(&self, _slot: usize, caller: &str) -> bool {
            self.admits.contains(&caller)
        }
        fn call(&self, _slot: usize, _args: Vec<u8>, _timeout: Duration) -> Outcome {
            Ok(Value::Text(self.name.to_string()))
        }
    }

    fn server(name: &'static str, available: bool) -> LocalServer {
        LocalServer {
            worker: Arc::new(FakeGuest {
                name,
                available,
                admits: &["me"],
            }),
            slot: 0,
        }
    }

    fn peer(tcp: Option<&str>, functions: &[&str]) -> PeerEntry {
        PeerEntry {
            tcp: tcp.map(|t| t.parse().expect("an address")),
            functions: functions.iter().map(|f| f.to_string()).collect(),
            uptime_ms: 1000,
            heard: Instant::now(),
        }
    }

    fn message(outcome: Outcome) -> String {
        match outcome {
            Ok(value) => panic!("an answer: {value:?}"),
            Err(failure) => failure.message,
        }
    }

    #[test]
    fn a_call_goes_to_a_local_guest_that_can_take_it_else_to_a_peer() {
        let calls = Calls::new("me", None);
        calls.set_local(HashMap::from([(
            F.to_string(),
            vec![server("busy", false), server("free", true)],
        )]));
        assert_eq!(
            calls.call(F, Vec::new(), None, LONG),
            Ok(Value::Text("free".into()))
        );
        // Named: this node.
        assert_eq!(
            calls.call(F, Vec::new(), Some("me"), LONG),
            Ok(Value::Text("free".into()))
        );
        assert_eq!(
            message(calls.call(G, Vec::new(), Some("me"), LONG)),
            format!("this node (me) does not serve {G}")
        );
        // Every local guest busy, and no peer serves it: said so, not "no server".
        calls.set_local(HashMap::from([(
            F.to_string(),
            vec![server("busy", false)],
        )]));
        let failure = calls.call(F, Vec::new(), None, LONG).expect_err("busy");
        assert_eq!(failure.kind, FailureKind::Unavailable);
        assert!(
            failure.message.contains("cannot take the call now"),
            "{failure}"
        );
        // A peer serves it, but this node has no network.
        calls.update_peers([("bob".to_string(), peer(Some("127.0.0.1:1"), &[F]))], []);
        assert_eq!(
            message(calls.call(F, Vec::new(), None, LONG)),
            "this node is not on the network"
        );
    }

    #[test]
    fn peers_that_serve_a_function_take_turns_and_a_named_one_is_checked() {
        let calls = Calls::new("me", None);
        calls.update_peers(
            [
                ("bob".to_string(), peer(Some("127.0.0.1:2"), &[F])),
                ("ann".to_string(), peer(Some("127.0.0.1:1"), &[F])),
                ("cat".to_string(), peer(None, &[F, G])),
            ],
            [],
        );
        let chosen: Vec<String> = (0..4)
            .map(|_| calls.choose_peer(F, None).expect("a peer").0)
            .collect();
        assert_eq!(chosen, ["ann", "bob", "ann", "bob"], "cat takes no calls");
        assert_eq!(
            calls.choose_peer(F, Some("bob")).expect("bob").1,
            "127.0.0.1:2".parse().expect("an address")
        );
        let no =
            |function, target| message(calls.choose_peer(function, target).map(|_| Value::Null));
        assert_eq!(no(F, Some("zed")), "no node named zed is on the group");
        assert_eq!(no(G, Some("bob")), format!("node bob does not serve {G}"));
        assert_eq!(
            no(G, Some("cat")),
            "node cat takes no calls with replies (it announced no TCP port)"
        );
        assert_eq!(no(G, None), format!("no node on the group serves {G}"));
        // A peer gone is nobody's turn any more.
        calls.update_peers([], ["ann".to_string()]);
        assert_eq!(calls.choose_peer(F, None).expect("a peer").0, "bob");
        assert_eq!(calls.peer_count(), 2);
    }

    #[test]
    fn the_servers_of_a_function_are_this_node_first_then_its_peers_by_name() {
        let calls = Calls::new("me", None).with_native(|f| f == "x:y/z#echo");
        calls.set_local(HashMap::from([(F.to_string(), vec![server("kv", true)])]));
        calls.update_peers(
            [
                (
                    "bob".to_string(),
                    peer(Some("127.0.0.1:2"), &[F, "x:y/z#echo"]),
                ),
                ("ann".to_string(), peer(Some("127.0.0.1:1"), &[F])),
            ],
            [],
        );
        assert_eq!(calls.servers(F), ["me", "ann", "bob"]);
        assert_eq!(
            calls.servers("x:y/z#echo"),
            ["me", "bob"],
            "a plugin of this node"
        );
        assert!(calls.servers(G).is_empty());
        // A C plugin names a function without its interface.
        assert!(calls.served_by_name("get"));
        assert!(calls.served_by_name("echo"));
        assert!(!calls.served_by_name("put"));
    }
}
