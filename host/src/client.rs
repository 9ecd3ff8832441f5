//! Short-lived clients of the group, for the CLI: `dhost peers`, `dhost call` and
//! `dhost cast`. A client joins the group like a node (by multicast, or through a Zenoh
//! network with `--zenoh`), asks every node to announce itself at once (so it never waits
//! for the periodic announcements), calls over TCP (or Zenoh queries) through a pool of
//! its own when it calls one node, and leaves.
//!
//! A survey keeps at most [`MAX_ANSWERS`] answers and [`MAX_ANSWER_BYTES`] of them, and
//! ends at its deadline however fast answers come: a flood of announcements (from members
//! gone wrong, or a hostile one) costs a client a bounded memory and time, and it says
//! what it left out.

use crate::auth::{Arrival, Gate, Keyring, ReplayGuard, Unopened};
use crate::guest::network::RemoteCaller as _;
use crate::net::Group;
use crate::outcome::Outcome;
use crate::printable::{self, printable};
use crate::rpc::pool::Relay;
use crate::rpc::{ConnectionKeys, Pool, PoolHandle};
use crate::transport::Transport;
use crate::wire::{self, Announce, Frame};
use crate::zenoh_transport::keys::{GroupKeys, peer_addr, show};
use crate::zenoh_transport::queries::QueryClient;
use crate::zenoh_transport::{Heard, LinkInputs, ZenohConfig, ZenohLink};
use anyhow::{Context as _, bail};
use ciborium::Value;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The most nodes a survey keeps the answers of.
pub const MAX_ANSWERS: usize = 1024;

/// How many datagrams heard through Zenoh may wait for a client.
const HEARD_QUEUE: usize = 1024;

/// The most bytes of announcements a survey keeps (as they came: an announcement decoded
/// takes a few times its size).
pub const MAX_ANSWER_BYTES: usize = 8 << 20;

/// A node that answered a survey.
#[derive(Debug, Clone)]
pub struct SurveyAnswer {
    /// Its id.
    pub id: u64,
    /// Where it sends from.
    pub addr: SocketAddr,
    /// What it announced.
    pub announce: Announce,
}

/// A datagram a client heard: its bytes, where it came from, and for one heard through
/// Zenoh the sender its key names (which its header must name too).
type Received = (Vec<u8>, SocketAddr, Option<u64>);

/// Where a client hears the group.
enum Inbox {
    /// The socket joined to the multicast group.
    Multicast(UdpSocket),
    /// What its Zenoh link hears, and a small runtime to wait for it on.
    Zenoh {
        heard: tokio::sync::mpsc::Receiver<Heard>,
        runtime: tokio::runtime::Runtime,
    },
}

impl Inbox {
    /// The next datagram of the group that comes within `wait`.
    fn next(&mut self, wait: Duration) -> anyhow::Result<Option<Received>> {
        match self {
            Inbox::Multicast(socket) => {
                let mut buf = vec![0u8; 65_536];
                socket.set_read_timeout(Some(wait.max(Duration::from_micros(1))))?;
                let received = crate::net::within_timeout(socket.recv_from(&mut buf))
                    .context("cannot receive from the group")?;
                Ok(received.map(|(len, addr)| {
                    buf.truncate(len);
                    (buf, addr, None)
                }))
            }
            Inbox::Zenoh { heard, runtime } => {
                let next =
                    runtime.block_on(async { tokio::time::timeout(wait, heard.recv()).await });
                Ok(next.ok().flatten().map(|heard| {
                    let from = peer_addr(heard.sender.unwrap_or(0));
                    (heard.bytes, from, Some(heard.sender.unwrap_or(0)))
                }))
            }
        }
    }
}

/// A short-lived member of the group.
pub struct GroupClient {
    inbox: Inbox,
    /// What it sends through: the multicast group, or a Zenoh network.
    network: Arc<dyn Transport>,
    /// What reaches the nodes that are reached through Zenoh, if it is on Zenoh.
    relay: Option<Arc<dyn Relay>>,
    id: u64,
    gate: Arc<Gate>,
    replay: ReplayGuard,
    /// The sources whose datagrams were refused at the gate (said once each).
    refused: Vec<SocketAddr>,
    /// The number of the next sequenced datagram (a client's stream starts at 1).
    next: u64,
    max_datagram: usize,
}

impl GroupClient {
    /// Joins `group`, with the group's `keys` if it has them (encrypting if `encrypt`):
    /// through the Zenoh network `zenoh` describes, if one does, else by multicast.
    pub fn join(
        group: &Group,
        max_datagram: usize,
        keys: Option<Keyring>,
        encrypt: bool,
        zenoh: Option<ZenohConfig>,
    ) -> anyhow::Result<Self> {
        let id = rand::random();
        let gate = Gate::new(keys.map(|k| k.for_group(group.addr)), encrypt);
        let (inbox, network, relay, gate): (_, Arc<dyn Transport>, Option<Arc<dyn Relay>>, _) =
            match zenoh {
                None => {
                    let receiver = group.receiver()?;
                    receiver.set_nonblocking(false)?;
                    let multicast = group.multicast()?;
                    let gate = Arc::new(gate.on_interface(group.iface));
                    (Inbox::Multicast(receiver), Arc::new(multicast), None, gate)
                }
                Some(config) => {
                    let (heard_tx, heard) = tokio::sync::mpsc::channel(HEARD_QUEUE);
                    let inputs = LinkInputs {
                        heard: heard_tx,
                        queries: None,
                    };
                    let keys = GroupKeys::new(group.addr);
                    let stats = Arc::default();
                    let link = ZenohLink::open(config, keys.clone(), id, inputs, stats)?;
                    let gate = Arc::new(gate);
                    let relay = QueryClient::new(link.session().clone(), keys, id, gate.clone());
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .context("cannot start the tokio runtime")?;
                    let inbox = Inbox::Zenoh { heard, runtime };
                    (inbox, Arc::new(link), Some(Arc::new(relay)), gate)
                }
            };
        Ok(GroupClient {
            inbox,
            network,
            relay,
            id,
            gate,
            replay: ReplayGuard::new(crate::auth::datagram::REPLAY_MEMORY),
            refused: Vec::new(),
            next: 1,
            max_datagram,
        })
    }

    /// Sends one datagram of the frames `encode` writes: a control datagram, or the next of
    /// the client's stream.
    fn send_datagram(
        &mut self,
        sequenced: bool,
        encode: impl FnOnce(&mut Vec<u8>),
    ) -> anyhow::Result<()> {
        let mut datagram = Vec::new();
        let seq = sequenced.then_some(self.next);
        wire::encode_header(self.id, seq, &mut datagram);
        encode(&mut datagram);
        if datagram.len() > self.max_datagram {
            bail!(
                "the call takes {} bytes encoded, more than the {} bytes one datagram carries",
                datagram.len(),
                self.max_datagram
            );
        }
        self.network
            .to_group(&datagram, &self.gate)
            .with_context(|| format!("cannot send to {}", self.network.describe()))?;
        if sequenced {
            self.next += 1;
        }
        Ok(())
    }

    /// Asks every node to announce itself and collects the answers that come within `wait`.
    pub fn survey(&mut self, wait: Duration) -> anyhow::Result<Vec<SurveyAnswer>> {
        self.survey_until(wait, |_| false)
    }

    /// Like [`Self::survey`], but stops as soon as `enough` says the answers so far are.
    pub fn survey_until(
        &mut self,
        wait: Duration,
        enough: impl Fn(&[SurveyAnswer]) -> bool,
    ) -> anyhow::Result<Vec<SurveyAnswer>> {
        self.send_datagram(false, wire::encode_query)?;
        let deadline = Instant::now() + wait;
        let mut answers: Vec<SurveyAnswer> = Vec::new();
        // The size of each answer kept (by sender id), and of them all.
        let mut sizes: std::collections::HashMap<u64, usize> = Default::default();
        let (mut kept_bytes, mut left_out) = (0usize, 0u64);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let Some((mut datagram, addr, key_sender)) = self.inbox.next(left)? else {
                break;
            };
            let len = datagram.len();
            let Some(frames) = self.open(&mut datagram, addr, key_sender) else {
                continue;
            };
            let (id, frames) = frames;
            for frame in frames {
                if let Frame::Announce(announce) = frame {
                    let before = sizes.get(&id).copied();
                    let bytes = kept_bytes - before.unwrap_or(0) + len;
                    if (before.is_none() && sizes.len() >= MAX_ANSWERS) || bytes > MAX_ANSWER_BYTES
                    {
                        left_out += 1;
                        continue;
                    }
                    kept_bytes = bytes;
                    sizes.insert(id, len);
                    answers.retain(|a| a.id != id);
                    answers.push(SurveyAnswer { id, addr, announce });
                }
            }
            if enough(&answers) {
                break;
            }
        }
        if left_out > 0 {
            tracing::warn!(
                "left out {left_out} announcement(s): this client keeps at most {MAX_ANSWERS} \
                 nodes' answers and {} of them",
                bytesize::ByteSize(MAX_ANSWER_BYTES as u64)
            );
        }
        answers.sort_by(|a, b| a.announce.presence.name.cmp(&b.announce.presence.name));
        Ok(answers)
    }

    /// The sender and frames of a datagram from `addr` (through Zenoh, on the key of
    /// `key_sender`), if it is well-formed and passes the gate (a refusal is said once per
    /// source: a node without the key, or with another; malformed datagrams are not for a
    /// client to judge: nodes log them).
    fn open(
        &mut self,
        datagram: &mut [u8],
        addr: SocketAddr,
        key_sender: Option<u64>,
    ) -> Option<(u64, Vec<Frame>)> {
        let header = wire::read_header(&mut &*datagram).ok()?;
        if key_sender.is_some_and(|sender| sender != header.sender) {
            return None;
        }
        match self.gate.open_frames(
            &header,
            datagram,
            Arrival::to_group(addr),
            &mut self.replay,
            Instant::now(),
        ) {
            Ok(frames) => Some((header.sender, frames)),
            Err(Unopened::Refused(why)) => {
                if !self.refused.contains(&addr) && self.refused.len() < 64 {
                    self.refused.push(addr);
                    tracing::warn!("ignoring datagrams from {addr}: {why}");
                }
                None
            }
            Err(Unopened::Malformed(_)) => None,
        }
    }

    /// What to add when nodes did not answer: that the group's nodes may not take this
    /// client (by its key, or its want of one).
    pub fn unanswered_hint(&self) -> &'static str {
        if self.gate.is_keyed() {
            "; nodes without this group key ignore this client"
        } else {
            "; nodes with a group key ignore clients without it (--key-file)"
        }
    }

    /// The keys of the client's connections to nodes: the group's.
    pub fn connection_keys(&self) -> ConnectionKeys {
        ConnectionKeys {
            keys: self.gate.keys().cloned(),
            encrypt: self.gate.encrypts(),
        }
    }

    /// A pool of connections (one per node) for the client's calls to one node, running
    /// on a thread of its own: over TCP, or through Zenoh to the nodes reached there.
    pub fn start_pool(&self) -> anyhow::Result<PoolHandle> {
        let (mut pool, handle) = Pool::new(1, self.id, None, self.connection_keys());
        if let Some(relay) = &self.relay {
            pool = pool.with_relay(relay.clone());
        }
        run_pool(pool)?;
        Ok(handle)
    }

    /// Sends a call to every node that serves `function`: the first (and only) datagram
    /// of the client's stream, so that receivers run it once.
    pub fn cast(&mut self, function: &str, args: &[Value]) -> anyhow::Result<()> {
        self.send_datagram(true, |out| wire::encode_call(1, function, args, out))
    }
}

/// Converts a JSON value (a CLI argument) to CBOR.
pub fn json_to_cbor(json: serde_json::Value) -> Value {
    use serde_json::Value as J;
    match json {
        J::Null => Value::Null,
        J::Bool(b) => Value::Bool(b),
        J::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
            (Some(u), _, _) => Value::Integer(u.into()),
            (_, Some(i), _) => Value::Integer(i.into()),
            (_, _, f) => Value::Float(f.unwrap_or(f64::NAN)),
        },
        J::String(s) => Value::Text(s),
        J::Array(items) => Value::Array(items.into_iter().map(json_to_cbor).collect()),
        J::Object(map) => Value::Map(
            map.into_iter()
                .map(|(k, v)| (Value::Text(k), json_to_cbor(v)))
                .collect(),
        ),
    }
}

/// Parses CLI arguments as JSON values, naming the one that is not.
pub fn parse_args(args: &[String]) -> anyhow::Result<Vec<Value>> {
    args.iter()
        .enumerate()
        .map(|(i, arg)| {
            serde_json::from_str(arg)
                .map(json_to_cbor)
                .with_context(|| {
                    format!(
                        "argument {} `{arg}` is not JSON (a string needs quotes: '\"text\"')",
                        i + 1
                    )
                })
        })
        .collect()
}

impl crate::cli::SurveyArgs {
    /// Joins the group these options name.
    pub(crate) fn join(&self) -> anyhow::Result<(Group, GroupClient)> {
        let group = self.group.group();
        let zenoh = self.zenoh.config(group.iface)?;
        let client = GroupClient::join(
            &group,
            self.group.max_datagram(zenoh.is_some()),
            self.group.keys()?,
            self.group.key.encrypt,
            zenoh,
        )?;
        Ok((group, client))
    }
}

/// `dhost peers`: prints the nodes that answer, one a line.
pub fn peers(args: &crate::cli::PeersArgs) -> anyhow::Result<()> {
    let (group, mut client) = args.survey.join()?;
    let answers = client.survey(args.survey.wait)?;
    if answers.is_empty() {
        eprintln!(
            "no node answered on {} (interface {}){}",
            group.addr,
            group.iface,
            client.unanswered_hint()
        );
        return Ok(());
    }
    println!(
        "{:<20} {:<22} {:>8}  {:<20} {:>10} {:>9} {:>6} {:>7} {:>8}  FUNCTIONS",
        "NAME",
        "ADDRESS",
        "UP",
        "CONNECTIONS",
        "RECEIVED",
        "REPAIRED",
        "LOST",
        "UNAUTH",
        "REPLAYED"
    );
    for a in &answers {
        let streams = &a.announce.streams;
        let total = |f: fn(&wire::StreamCounts) -> u64| streams.iter().map(f).sum::<u64>();
        let refused = &a.announce.refused;
        let refused_total = |f: fn(&wire::RefusedCounts) -> u64| refused.iter().map(f).sum::<u64>();
        let up = format!("{:.1}s", a.announce.presence.uptime_ms as f64 / 1000.0);
        let list = |items: Vec<String>| {
            if items.is_empty() {
                "-".to_string()
            } else {
                items.join(" ")
            }
        };
        let links = list(
            a.announce
                .presence
                .links
                .iter()
                .map(|(name, n)| format!("{}:{n}", printable(name)))
                .collect(),
        );
        let functions = list(
            a.announce
                .presence
                .functions
                .iter()
                .map(|f| printable(f).to_string())
                .collect(),
        );
        let address = show(a.announce.presence.tcp.unwrap_or(a.addr));
        println!(
            "{:<20} {address:<22} {up:>8}  {links:<20} {:>10} {:>9} {:>6} {:>7} {:>8}  {functions}",
            printable(&a.announce.presence.name),
            total(|s| s.received),
            total(|s| s.repaired),
            total(|s| s.lost),
            refused_total(|r| r.unauthenticated),
            refused_total(|r| r.replayed),
        );
    }
    if args.streams {
        // What each node received of each peer's stream.
        println!();
        println!(
            "{:<20} {:<20} {:>10} {:>9} {:>6}",
            "NODE", "FROM", "RECEIVED", "REPAIRED", "LOST"
        );
        for a in &answers {
            for s in &a.announce.streams {
                println!(
                    "{:<20} {:<20} {:>10} {:>9} {:>6}",
                    printable(&a.announce.presence.name),
                    printable(&s.peer),
                    s.received,
                    s.repaired,
                    s.lost
                );
            }
        }
    }
    if args.refused {
        // What each node refused at its gate, from each source address.
        println!();
        println!(
            "{:<20} {:<22} {:>7} {:>8}",
            "NODE", "SOURCE", "UNAUTH", "REPLAYED"
        );
        for a in &answers {
            for r in &a.announce.refused {
                println!(
                    "{:<20} {:<22} {:>7} {:>8}",
                    printable(&a.announce.presence.name),
                    printable(&r.source),
                    r.unauthenticated,
                    r.replayed
                );
            }
        }
    }
    Ok(())
}

/// Finds node `name` on the group: its TCP address.
pub(crate) fn find_node(
    client: &mut GroupClient,
    group: &Group,
    name: &str,
    wait: Duration,
) -> anyhow::Result<std::net::SocketAddr> {
    let answers = client.survey_until(wait, |answers| {
        answers.iter().any(|a| a.announce.presence.name == name)
    })?;
    let Some(answer) = answers.iter().find(|a| a.announce.presence.name == name) else {
        let others: Vec<&str> = answers
            .iter()
            .map(|a| a.announce.presence.name.as_str())
            .collect();
        bail!(
            "no node named {name} answered on {} within {} (nodes that did: {}){}",
            group.addr,
            humantime::format_duration(wait),
            if others.is_empty() {
                "none".to_string()
            } else {
                others.join(", ")
            },
            client.unanswered_hint()
        );
    };
    answer
        .announce
        .presence
        .tcp
        .with_context(|| format!("node {name} takes no calls over TCP (it announced no port)"))
}

/// A pool of connections (one per node) over TCP for a client with `keys`, running on a
/// thread of its own.
pub fn start_pool(keys: ConnectionKeys) -> anyhow::Result<PoolHandle> {
    let (pool, handle) = Pool::new(1, rand::random(), None, keys);
    run_pool(pool)?;
    Ok(handle)
}

/// Runs `pool` on a thread of its own, for as long as the process runs.
fn run_pool(pool: Pool) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    std::thread::Builder::new()
        .name("dhost-pool".into())
        .spawn(move || runtime.block_on(pool.run()))
        .context("cannot start the connection thread")?;
    Ok(())
}

/// Calls `function` on the node at `addr` through a pool of `client`'s, running on a
/// thread of its own; returns the outcome.
fn call_once(
    client: &GroupClient,
    addr: std::net::SocketAddr,
    node: &str,
    function: &str,
    args: Vec<Value>,
    wants_reply: bool,
    timeout: Duration,
) -> anyhow::Result<Outcome> {
    let handle = client.start_pool()?;
    Ok(handle.call(addr, node, function, args, wants_reply, timeout))
}

fn check_function_id(function: &str) -> anyhow::Result<()> {
    if !function.contains('#') {
        bail!("`{function}` is not a function id (namespace:package/interface#function)");
    }
    Ok(())
}

/// `dhost call`: calls the function on one node and prints the result as JSON.
pub fn call(args: &crate::cli::CallArgs) -> anyhow::Result<()> {
    check_function_id(&args.function)?;
    let values = parse_args(&args.args)?;
    let (group, mut client) = args.survey.join()?;
    let addr = find_node(&mut client, &group, &args.node, args.survey.wait)?;
    let outcome = call_once(
        &client,
        addr,
        &args.node,
        &args.function,
        values,
        true,
        args.timeout,
    )?;
    match outcome {
        Ok(result) => {
            println!("{}", printable::json(&cbor_to_json(result).to_string()));
            Ok(())
        }
        Err(failure) => bail!(
            "the call to {} on node {} failed: {failure}",
            args.function,
            args.node
        ),
    }
}

/// `dhost cast`: sends the call once, if any node serves the function; with `--node`, to
/// that node only, over TCP.
pub fn cast(args: &crate::cli::CastArgs) -> anyhow::Result<()> {
    check_function_id(&args.function)?;
    let values = parse_args(&args.args)?;
    let (group, mut client) = args.survey.join()?;
    if let Some(node) = &args.node {
        let addr = find_node(&mut client, &group, node, args.survey.wait)?;
        let timeout = Duration::from_secs(5);
        if let Err(failure) =
            call_once(&client, addr, node, &args.function, values, false, timeout)?
        {
            bail!("cannot cast {} to node {node}: {failure}", args.function);
        }
        eprintln!("cast {} to {node}", args.function);
        return Ok(());
    }
    let servers: Vec<String> = client
        .survey(args.survey.wait)?
        .into_iter()
        .filter(|a| a.announce.presence.functions.contains(&args.function))
        .map(|a| a.announce.presence.name)
        .collect();
    if servers.is_empty() {
        bail!("no node on {} serves {}", group.addr, args.function);
    }
    client.cast(&args.function, &values)?;
    let servers: Vec<String> = servers.iter().map(|s| printable(s).to_string()).collect();
    eprintln!("cast {} to {}", args.function, servers.join(", "));
    Ok(())
}

/// Converts a CBOR value (a call's result) to JSON: byte strings become arrays of
/// numbers, map keys that are not text become their JSON text, tags are dropped.
pub fn cbor_to_json(value: Value) -> serde_json::Value {
    use serde_json::Value as J;
    match value {
        Value::Null => J::Null,
        Value::Bool(b) => J::Bool(b),
        Value::Integer(i) => {
            let i = i128::from(i);
            match (u64::try_from(i), i64::try_from(i)) {
                (Ok(u), _) => J::from(u),
                (_, Ok(s)) => J::from(s),
                _ => J::String(i.to_string()),
            }
        }
        Value::Float(f) => serde_json::Number::from_f64(f).map_or(J::Null, J::Number),
        Value::Text(s) => J::String(s),
        Value::Bytes(bytes) => J::Array(bytes.into_iter().map(J::from).collect()),
        Value::Array(items) => J::Array(items.into_iter().map(cbor_to_json).collect()),
        Value::Map(entries) => J::Object(
            entries
                .into_iter()
                .map(|(k, v)| {
                    let key = match k {
                        Value::Text(s) => s,
                        other => cbor_to_json(other).to_string(),
                    };
                    (key, cbor_to_json(v))
                })
                .collect(),
        ),
        Value::Tag(_, inner) => cbor_to_json(*inner),
        _ => J::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_arguments_become_cbor() {
        let args = parse_args(&[
            r#""ann""#.into(),
            "-3".into(),
            "2.5".into(),
            r#"{"x": [1, null, true]}"#.into(),
        ])
        .unwrap();
        assert_eq!(
            args,
            vec![
                Value::Text("ann".into()),
                Value::Integer((-3).into()),
                Value::Float(2.5),
                Value::Map(vec![(
                    Value::Text("x".into()),
                    Value::Array(vec![
                        Value::Integer(1.into()),
                        Value::Null,
                        Value::Bool(true)
                    ])
                )]),
            ]
        );
        let err = parse_args(&["ann".into()]).unwrap_err().to_string();
        assert!(err.contains("argument 1 `ann` is not JSON"), "{err}");
    }

    #[test]
    fn results_become_json() {
        let value = Value::Map(vec![
            (
                Value::Text("ok".into()),
                Value::Array(vec![Value::Text("v".into()), Value::Null]),
            ),
            (Value::Integer(1.into()), Value::Bytes(vec![1, 2])),
            (Value::Text("big".into()), Value::Integer((-5).into())),
            (Value::Text("nan".into()), Value::Float(f64::NAN)),
        ]);
        assert_eq!(
            cbor_to_json(value).to_string(),
            r#"{"1":[1,2],"big":-5,"nan":null,"ok":["v",null]}"#
        );
    }
}
