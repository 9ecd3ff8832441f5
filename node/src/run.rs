//! `dhost run`: loads the guests (failing before joining the group if any cannot be
//! loaded), then runs the node on these threads:
//!
//! - the *event loop* ([`crate::event_loop`]), which routes calls to the guests and plugins and
//!   keeps the peers' streams, with a *worker* thread per WebAssembly guest
//!   ([`dhost_runtime::guest::worker`]);
//! - the *network* thread (this one, on a tokio runtime), which receives the group's
//!   datagrams (from the multicast group, or from a Zenoh network through its
//!   [`ZenohLink`]), decodes them, drops what is malformed and hands the rest to the event
//!   loop, and turns Ctrl-C
//!   or SIGTERM into a clean shutdown;
//!   and runs the node's TCP port and its pool of connections to peers (calls with replies);
//! - the *stream* thread ([`crate::stream::outgoing`]), which hears the receivers'
//!   statuses of the node's stream, resends what they miss and sends heartbeats;
//! - a *stdin* thread, only when a guest exports `dstc:node/stdin-events`.

use crate::auth::{self, Arrival, Gate, Keyring, ReplayGuard, Unopened};
use crate::describe::Descriptions;
use crate::event_loop::{Event, Inputs, Links, Node};
use crate::metrics::Metrics;
use crate::modules::loader::{ChangeSink, Loader};
use crate::modules::service::{self, ServiceConfig};
use crate::modules::{ModuleService, ModuleStore};
use crate::net::Group;
use crate::rpc::Pool;
use crate::stream::StreamConfig;
use crate::stream::outgoing::Outgoing;
use crate::tcp_port::{ServerLimits, Services};
use crate::zenoh_transport::bridge::Bridge;
use crate::zenoh_transport::keys::{self, GroupKeys};
use crate::zenoh_transport::queries::{QueryClient, QueryServer, serve_queries};
use crate::zenoh_transport::{Heard, LinkInputs, ZenohLink};
use anyhow::{Context as _, bail};
use crossbeam_channel::{Sender, TrySendError};
use dhost_mailbox::Mailboxes;
use dhost_protocol::wire;
use dhost_runtime::guest::calls::Calls;
use dhost_runtime::guest::native::NativePlugin;
use dhost_runtime::guest::network::CallSender;
use dhost_runtime::guest::wasm::{NodeFacts, Runtime, WasmGuest};
use dhost_runtime::guest::world::{EventInterface, World};
use dhost_runtime::jail::Policy;
use dhost_runtime::stats::{DropLog, Stats};
use std::io::BufRead;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering;
use std::time::Instant;
use tokio::net::UdpSocket;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

/// How many events (datagrams, stdin lines) may wait for the event loop. (The channel
/// takes room for all of them at once: 8192 is about 1 MiB.)
const EVENT_QUEUE: usize = 8192;

/// How many calls from the node's TCP port may wait for the event loop (beyond, callers
/// are told the node is overloaded).
const CALL_QUEUE: usize = 4096;

/// How many published modules may wait for the event loop to swap them in.
const CHANGE_QUEUE: usize = 64;

/// How many bytes of datagrams may wait for the event loop. When it falls this far behind,
/// further datagrams are dropped (as overrun: their senders resend them when asked)
/// rather than held in memory. Flow control keeps each sender well within it.
const QUEUE_BYTES: u64 = 64 << 20;

/// The most a node asks a sender to send beyond what it has run, whatever its receive
/// buffer (the receive side's window).
const MAX_RECEIVE_WINDOW: u64 = 16 << 20;

/// How many datagrams heard from Zenoh may wait for the network thread (beyond, they are
/// dropped as overrun, and repaired).
const ZENOH_QUEUE: usize = 16_384;

/// How many queries (calls to this node alone) may wait for the network thread (beyond,
/// they are answered that the node is overloaded).
const QUERY_QUEUE: usize = 4096;

/// The longest line read from stdin; longer lines are cut there.
const MAX_STDIN_LINE: usize = 64 * 1024;

/// Everything a node is started with: what the `dhost` binary made of `dhost run`'s
/// options (and its `--config` file), checked, with the files it names read.
#[derive(Debug)]
pub struct NodeSettings {
    /// The node's name (checked again here: [`check_name`]).
    pub name: String,
    /// The group's keys; none runs keyless (the binary has checked the interface allows it).
    pub keys: Option<Keyring>,
    /// Whether datagrams and connections are encrypted, not only authenticated.
    pub encrypt: bool,
    /// The multicast group, its interface and TTL.
    pub group: Group,
    /// The largest datagram the node sends.
    pub max_datagram: usize,
    /// Where the node's TCP port listens (none: an ephemeral port on the group's
    /// interface).
    pub listen: Option<SocketAddr>,
    /// The most connections kept to each peer for calls with replies.
    pub pool_size: usize,
    /// The node's TCP port's limits: connections at once, idle time.
    pub limits: ServerLimits,
    /// Where the node serves its counters to Prometheus, if anywhere.
    pub metrics: Option<SocketAddr>,
    /// The mailboxes the node serves, if any, opened.
    pub mailboxes: Option<Arc<Mailboxes>>,
    /// Whether the mailboxes' text protocol is served off loopback too.
    pub text_anywhere: bool,
    /// The jail policy of the node's guests.
    pub policy: Arc<Policy>,
    /// The compile cache's directory (none: compile every guest afresh).
    pub cache_dir: Option<PathBuf>,
    /// Only print each guest's jail, and run nothing.
    pub print_jail: bool,
    /// Every guest and plugin to load, in order.
    pub guests: Vec<PathBuf>,
    /// Those of them to load as native plugins (an ELF file is loaded as one anyway).
    pub native: Vec<PathBuf>,
    /// How the node's stream to the group is paced and repaired.
    pub stream: StreamConfig,
    /// How the node takes published modules, if it takes them.
    pub modules: Option<ModuleSettings>,
    /// The Zenoh network the node joins instead of the multicast group, if any (made by
    /// [`crate::zenoh_transport::config::node_config`]; the binary has checked that a
    /// node without a key reaches it on loopback alone).
    pub zenoh: Option<zenoh::Config>,
    /// With `zenoh`, join the multicast group too, and bridge the two
    /// ([`crate::zenoh_transport::bridge`]).
    pub bridge: bool,
}

/// How a node takes published modules (`--accept-modules`).
#[derive(Debug)]
pub struct ModuleSettings {
    /// Whose modules it takes (by publisher name; empty: anyone's).
    pub publishers: Vec<String>,
    /// Where it keeps them.
    pub store: ModuleStore,
    /// The largest module it takes.
    pub max_size: u64,
}

/// Checks a node's name: 1 to 255 printable characters.
pub fn check_name(name: &str) -> anyhow::Result<()> {
    if !wire::is_node_name(name) {
        bail!("the node name must be 1 to 255 printable characters");
    }
    Ok(())
}

/// Runs a node as `settings` say; the exit status is a WASI command's, or success.
pub fn run(settings: NodeSettings) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let NodeSettings {
        name: node_name,
        keys,
        encrypt,
        group,
        max_datagram,
        listen,
        pool_size,
        limits,
        metrics,
        mailboxes,
        text_anywhere,
        policy,
        cache_dir,
        print_jail,
        guests: paths,
        native,
        stream: stream_config,
        modules: module_settings,
        zenoh: zenoh_config,
        bridge,
    } = settings;
    check_name(&node_name)?;
    let max_call = max_call(max_datagram);
    let runtime = Runtime::new(cache_dir, policy.uses_fuel())?;
    let names = guest_names(&paths);
    for named in policy.named_guests() {
        if !names.iter().any(|n| n == named) {
            tracing::warn!(
                "the jail policy has a section for guest `{named}`, but no guest has that name"
            );
        }
    }
    let id: u64 = rand::random();
    let stats = Arc::new(Stats::default());
    let connection_keys = crate::rpc::ConnectionKeys {
        keys: keys.clone(),
        encrypt,
    };
    // (Datagram keys are bound to the group: what is captured in one group runs in no other.)
    let datagram_keys = keys.as_ref().map(|k| k.for_group(group.addr));
    let gate = Gate::new(datagram_keys, encrypt);
    // (Over Zenoh the node is on this host alone only if its endpoints are: the binary
    // checked that a node without a key has only loopback endpoints.)
    let gate = Arc::new(match zenoh_config {
        Some(_) => gate,
        None => gate.on_interface(group.iface),
    });
    let outgoing = Arc::new(Outgoing::new(
        id,
        max_datagram,
        gate.clone(),
        stream_config,
        runtime.stopping().clone(),
        stats.clone(),
    ));
    let (mut pool, pool_handle) =
        Pool::new(pool_size, id, Some(&node_name), connection_keys.clone());
    // The network thread's runtime, made now: guests wait on it for mailbox locks.
    let network = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    let mut calls = Calls::new(&node_name, Some(Arc::new(pool_handle.clone())))
        .with_round_trips(stats.round_trips.clone())
        .with_native(dhost_runtime::guest::native::serves);
    if let Some(boxes) = &mailboxes {
        calls = calls.with_mailboxes(boxes.clone(), network.handle().clone());
    }
    let calls = Arc::new(calls);
    let sender: Arc<dyn CallSender> = outgoing.clone();
    let node = NodeFacts {
        name: &node_name,
        max_call,
        calls: &calls,
        outgoing: &sender,
    };
    // Native plugins first: their init may prompt and read stdin, as in the original.
    let mut natives = Vec::new();
    let mut wasm_paths = Vec::new();
    for (path, name) in paths.iter().zip(&names) {
        if native.contains(path) || dhost_runtime::guest::native::is_elf(path) {
            if print_jail {
                println!(
                    "native plugin {name} ({}): not sandboxed, no jail applies",
                    path.display()
                );
                continue;
            }
            let plugin = NativePlugin::load(path, name, natives.len())
                .with_context(|| format!("cannot load native plugin {}", path.display()))?;
            tracing::info!(
                "native plugin {name} (not sandboxed) serves {:?}",
                NativePlugin::functions(natives.len())
            );
            natives.push(plugin);
        } else {
            wasm_paths.push((path, name));
        }
    }
    let mut guests = Vec::with_capacity(paths.len());
    let mut descriptions = Descriptions::new(&node_name);
    for (path, name) in wasm_paths {
        let loaded = load_guest(&runtime, path, name, &policy, node, print_jail)
            .with_context(|| format!("cannot load guest {}", path.display()))?;
        if let Some(guest) = loaded {
            tracing::info!("guest {name}: {}", guest.jail().limits.describe());
            descriptions.add(name, path, guest.world().served_interfaces());
            guests.push(guest);
        }
    }
    if print_jail {
        return Ok(ExitCode::SUCCESS);
    }
    let command = guests
        .iter()
        .find(|g| g.is_command())
        .map(|g| g.name().to_string());
    if guests.iter().filter(|g| g.is_command()).count() > 1 {
        bail!("only one WASI command can run in a node");
    }
    let plugin_owns_stdin = dhost_runtime::guest::native::watches(0);
    let stdin_wanted = guests
        .iter()
        .any(|g| g.hears(EventInterface::Stdin) && g.jail().stdin);
    if stdin_wanted && plugin_owns_stdin {
        tracing::warn!(
            "a native plugin watches stdin: WebAssembly guests get no stdin lines in this node"
        );
    }
    let stdin_wanted = stdin_wanted && !plugin_owns_stdin;
    // A lone command that neither sends nor serves has no use for the network.
    // (Mailboxes are reached through the node's port and its peers' ports.)
    let networked = command.is_none()
        || module_settings.is_some()
        || !natives.is_empty()
        || guests.len() > 1
        || mailboxes.is_some()
        || guests.iter().any(|g| {
            let world = g.world();
            world.sends().next().is_some()
                || world.serves().next().is_some()
                || world
                    .imports
                    .iter()
                    .any(|i| i.name.starts_with("dstc:node/mailboxes"))
        });

    let mut group_inputs = GroupInputs::default();
    let mut zenoh_link = None;
    let mut zenoh_queries = None;
    let listener = if networked {
        let listen = listen.unwrap_or_else(|| SocketAddr::new(group.iface.into(), 0));
        let listener = std::net::TcpListener::bind(listen)
            .with_context(|| format!("cannot listen on {listen} (--listen)"))?;
        listener.set_nonblocking(true)?;
        match zenoh_config {
            Some(config) => {
                let (heard_tx, heard) = tokio::sync::mpsc::channel(ZENOH_QUEUE);
                let (queries_tx, queries) = tokio::sync::mpsc::channel(QUERY_QUEUE);
                let inputs = LinkInputs {
                    heard: heard_tx,
                    queries: Some(queries_tx),
                };
                let keys = GroupKeys::new(group.addr);
                let link = ZenohLink::open(config, keys.clone(), id, inputs, stats.clone())?;
                let link = Arc::new(link);
                let client =
                    QueryClient::new(link.session().clone(), keys.clone(), id, gate.clone());
                pool = pool.with_relay(Arc::new(client));
                zenoh_queries = Some(queries);
                group_inputs.zenoh = Some(heard);
                if bridge {
                    // (Both: the LAN's group too, relayed to and from Zenoh.)
                    group_inputs.socket = Some(group.receiver()?);
                    let lan = group.multicast()?;
                    let bridge = Bridge::new(lan, link.clone(), keys, id, gate.clone())?;
                    let bridge = Arc::new(bridge);
                    outgoing.attach(bridge.clone());
                    group_inputs.bridge = Some(bridge);
                } else {
                    outgoing.attach(link.clone());
                }
                zenoh_link = Some(link);
            }
            None => {
                group_inputs.socket = Some(group.receiver()?);
                let multicast = group.multicast()?;
                outgoing.attach(Arc::new(multicast));
            }
        }
        Some(listener)
    } else {
        None
    };
    let metrics = match metrics {
        Some(addr) => {
            let listener = std::net::TcpListener::bind(addr)
                .with_context(|| format!("cannot serve the metrics on {addr} (--metrics)"))?;
            listener.set_nonblocking(true)?;
            tracing::info!("metrics on http://{}/metrics", listener.local_addr()?);
            Some((listener, Arc::new(Metrics::new(&node_name, stats.clone()))))
        }
        None => None,
    };
    // What this node asks each sender to keep within: what its receive buffer holds (half
    // of what the kernel grants, which counts its own overhead too).
    let receive_window = group_inputs
        .socket
        .as_ref()
        .map_or(MAX_RECEIVE_WINDOW, |socket| {
            let granted = crate::net::receive_buffer(socket) as u64;
            (granted / 2).clamp(64 * 1024, MAX_RECEIVE_WINDOW)
        });
    let tcp = listener.as_ref().map(|l| l.local_addr()).transpose()?;
    let on = match &zenoh_link {
        Some(_) if bridge => format!("{} bridged to Zenoh", group.iface),
        Some(_) => "Zenoh".to_string(),
        None => group.iface.to_string(),
    };
    tracing::info!(
        "node {node_name} ({id:016x}) ready in {:.1?}: {} guest(s), {} native plugin(s), group {} on {on}, calls on {}",
        started.elapsed(),
        guests.len(),
        natives.len(),
        group.addr,
        tcp.map_or("no port".to_string(), |a| a.to_string()),
    );

    let (events_tx, events_rx) = crossbeam_channel::bounded(EVENT_QUEUE);
    let (calls_tx, calls_rx) = crossbeam_channel::bounded(CALL_QUEUE);
    let (changes_tx, changes_rx) = crossbeam_channel::bounded(CHANGE_QUEUE);
    let stopping = runtime.stopping().clone();
    if stdin_wanted {
        spawn_stdin_reader(events_tx.clone())?;
    }
    runtime.start_ticker()?;
    outgoing
        .start_stream_thread()
        .context("cannot start the stream thread")?;
    let (done_tx, done_rx) = oneshot::channel();
    if !natives.is_empty() {
        spawn_fd_watcher(events_tx.clone())?;
    }
    let modules = match module_settings {
        Some(settings) if networked => {
            let config = ServiceConfig {
                store: settings.store,
                owner: service::owner(&node_name, group.addr),
                publishers: settings
                    .publishers
                    .into_iter()
                    .filter(|p| !p.is_empty())
                    .collect(),
                max_size: settings.max_size,
                own_guests: names.clone(),
            };
            tracing::info!("{}", service::describe(&config));
            let loader = Loader {
                runtime: runtime.clone(),
                policy: policy.clone(),
                node_name: node_name.clone(),
                max_call,
                calls: calls.clone(),
                outgoing: outgoing.clone(),
            };
            let changes: ChangeSink = changes_tx.clone();
            Some(ModuleService::new(
                config,
                loader,
                changes,
                pool_handle.clone(),
                network.handle().clone(),
            ))
        }
        _ => None,
    };
    let node = Node::new(
        id,
        &node_name,
        natives,
        guests,
        outgoing.clone(),
        stats.clone(),
        calls,
        Links {
            receive_window,
            // (Where the peers call this node: over Zenoh, its address there; a bridge
            // is called by its LAN's members.)
            tcp: match &zenoh_link {
                Some(_) if !bridge => Some(keys::peer_addr(id)),
                _ => tcp,
            },
            pool: Some(pool_handle),
            modules: modules.clone(),
        },
    )?;
    let stop_flag = stopping.clone();
    let event_loop = std::thread::Builder::new()
        .name("dhost-node".into())
        .spawn(move || {
            let inputs = Inputs {
                events: events_rx,
                calls: calls_rx,
                modules: changes_rx,
            };
            let code = node.run(inputs, &stop_flag);
            let _ = done_tx.send(());
            code
        })
        .context("cannot start the event loop thread")?;

    network.block_on(async {
        // (What the TCP port serves; a node on Zenoh serves the same to queries.)
        let services = Services {
            calls: Some(calls_tx.clone()),
            mailboxes,
            keys: connection_keys,
            stats: stats.clone(),
            text_anywhere,
            modules: modules.clone(),
            descriptions: Arc::new(descriptions),
            ..Services::default()
        };
        if let Some(queries) = zenoh_queries {
            let server = QueryServer {
                id,
                gate: gate.clone(),
                services: services.clone(),
            };
            tokio::spawn(serve_queries(queries, server));
        }
        if let Some(listener) = listener {
            let listener = tokio::net::TcpListener::from_std(listener)?;
            // (The node's port closes with the process: nothing cancels it before.)
            let stop = CancellationToken::new();
            tokio::spawn(crate::tcp_port::serve(listener, services, limits, stop));
        }
        if let Some((listener, metrics)) = metrics {
            let listener = tokio::net::TcpListener::from_std(listener)?;
            // (Served until the process ends, as the node's port.)
            let stop = CancellationToken::new();
            tokio::spawn(crate::metrics::serve(listener, metrics, stop));
        }
        tokio::spawn(pool.run());
        if let Some(modules) = &modules {
            modules.restore();
        }
        let node = Receiving {
            id,
            stopping: &stopping,
            stats: &stats,
            outgoing: &outgoing,
            modules: modules.as_ref(),
        };
        receive(node, group_inputs, events_tx, done_rx).await
    })?;

    let code = event_loop
        .join()
        .map_err(|_| anyhow::anyhow!("the event loop panicked"))??;
    // (Once the event loop has said goodbye through it.)
    if let Some(link) = zenoh_link
        && let Err(e) = link.close()
    {
        tracing::warn!("{e}");
    }
    for refused in stats.rejections.announced() {
        tracing::info!(
            "refused from {}: {} unauthenticated, {} replayed",
            refused.source,
            refused.unauthenticated,
            refused.replayed
        );
    }
    tracing::info!("node {node_name} stopped: {}", stats.summary());
    Ok(exit_code(code))
}

fn exit_code(code: i32) -> ExitCode {
    match u8::try_from(code) {
        Ok(c) => ExitCode::from(c),
        Err(_) => ExitCode::FAILURE,
    }
}

/// The largest encoded call body that fits in one datagram.
fn max_call(max_datagram: usize) -> usize {
    let mut header = Vec::new();
    wire::encode_header(u64::MAX, Some(u64::MAX), &mut header);
    max_datagram - header.len() - wire::CALL_FRAME_OVERHEAD
}

/// The guests' names: their file stems, made distinct (chat, chat-2, ...).
fn guest_names(paths: &[std::path::PathBuf]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for path in paths {
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "guest".to_string());
        let mut name = stem.clone();
        let mut n = 1;
        while names.contains(&name) {
            n += 1;
            name = format!("{stem}-{n}");
        }
        names.push(name);
    }
    names
}

/// Loads the guest at `path` in the jail the policy gives it; with `print_jail`, only
/// prints that jail.
fn load_guest(
    runtime: &Runtime,
    path: &Path,
    name: &str,
    policy: &Policy,
    node: NodeFacts<'_>,
    print_jail: bool,
) -> anyhow::Result<Option<WasmGuest>> {
    let component = runtime.load_component(path)?;
    let world = World::of(&component, runtime.engine());
    let jail = policy.jail_for(name, world.is_command());
    if print_jail {
        print!("guest {name} ({}):\n{}", path.display(), jail.describe());
        return Ok(None);
    }
    WasmGuest::load(runtime, &component, world, name, jail, node).map(Some)
}

/// Waits for the descriptors native plugins watch and tells the event loop which are ready.
fn spawn_fd_watcher(events: Sender<Event>) -> anyhow::Result<()> {
    std::thread::Builder::new()
        .name("dhost-epoll".into())
        .spawn(move || {
            loop {
                match dhost_runtime::guest::native::wait_ready() {
                    Ok(ready) => {
                        for (fd, ev) in ready {
                            if events.send(Event::FdReady { fd, events: ev }).is_err() {
                                return;
                            }
                        }
                    }
                    Err(e) => {
                        tracing::error!("cannot wait for native plugins' descriptors: {e}");
                        return;
                    }
                }
            }
        })
        .context("cannot start the descriptor watcher thread")?;
    Ok(())
}

/// Reads stdin line by line and hands each line to the event loop.
fn spawn_stdin_reader(events: Sender<Event>) -> anyhow::Result<()> {
    std::thread::Builder::new()
        .name("dhost-stdin".into())
        .spawn(move || {
            let stdin = std::io::stdin();
            let mut input = stdin.lock();
            let mut line = Vec::new();
            loop {
                line.clear();
                match read_line(&mut input, &mut line) {
                    Ok(0) => break,
                    Ok(_) => {
                        let text = String::from_utf8_lossy(&line).into_owned();
                        if events.send(Event::StdinLine(text)).is_err() {
                            break;
                        }
                    }
                    Err(e) => {
                        tracing::warn!("cannot read stdin: {e}");
                        break;
                    }
                }
            }
            tracing::debug!("stdin closed");
        })
        .context("cannot start the stdin thread")?;
    Ok(())
}

/// Reads one line without its line ending, keeping at most [`MAX_STDIN_LINE`] bytes of it.
/// Returns the number of bytes consumed (0 at the end of input).
fn read_line(input: &mut impl BufRead, line: &mut Vec<u8>) -> std::io::Result<usize> {
    let mut consumed = 0;
    loop {
        let chunk = input.fill_buf()?;
        if chunk.is_empty() {
            break;
        }
        let (take, done) = match chunk.iter().position(|&b| b == b'\n') {
            Some(at) => (at + 1, true),
            None => (chunk.len(), false),
        };
        let room = MAX_STDIN_LINE.saturating_sub(line.len());
        line.extend_from_slice(&chunk[..take.min(room)]);
        input.consume(take);
        consumed += take;
        if done {
            break;
        }
    }
    while line.last().is_some_and(|&b| b == b'\n' || b == b'\r') {
        line.pop();
    }
    Ok(consumed)
}

/// What the network thread works for.
struct Receiving<'a> {
    /// The node's id: its own datagrams, which multicast loops back, are skipped.
    id: u64,
    /// Set when a signal asks the node to stop.
    stopping: &'a AtomicBool,
    stats: &'a Stats,
    /// Told which nodes announce themselves and which say goodbye.
    outgoing: &'a Outgoing,
    /// Told what modules the peers announce.
    modules: Option<&'a Arc<ModuleService>>,
}

/// Where the group's datagrams come from: a multicast socket, a Zenoh network, or both.
#[derive(Default)]
struct GroupInputs {
    /// The socket joined to the multicast group.
    socket: Option<std::net::UdpSocket>,
    /// What the Zenoh link heard.
    zenoh: Option<tokio::sync::mpsc::Receiver<Heard>>,
    /// The bridge between the two, if the node bridges them.
    bridge: Option<Arc<Bridge>>,
}

/// Where a datagram of the group came from.
#[derive(Debug, Clone, Copy)]
enum Source {
    /// From this address, by multicast.
    Multicast(SocketAddr),
    /// Through Zenoh, on the key of this sender (none: a key that names none).
    Zenoh(Option<u64>),
}

/// What the network thread keeps between datagrams, and what it hands them to.
struct Intake<'a> {
    node: Receiving<'a>,
    events: Sender<Event>,
    drops: DropLog,
    replay: ReplayGuard,
    /// The bridge the multicast datagrams are relayed through, if the node bridges.
    bridge: Option<Arc<Bridge>>,
}

impl Intake<'_> {
    /// Opens and decodes a datagram of the group, tells the sending side and the module
    /// service what it says of its sender, and hands it to the event loop; false once the
    /// event loop is gone.
    fn take(&mut self, bytes: &mut [u8], source: Source) -> bool {
        let Receiving {
            id,
            stats,
            outgoing,
            modules,
            ..
        } = self.node;
        let len = bytes.len();
        let from = match source {
            Source::Multicast(from) => from,
            Source::Zenoh(sender) => keys::peer_addr(sender.unwrap_or(0)),
        };
        // (What a bridge relayed to its LAN, looped back: it heard it through Zenoh.)
        let bridge = self
            .bridge
            .as_ref()
            .filter(|_| matches!(source, Source::Multicast(_)));
        if bridge.is_some_and(|b| b.relays_from(from)) {
            return true;
        }
        // (As it came: opening it may decrypt it in place.)
        let to_relay = bridge.map(|_| bytes.to_vec());
        stats.datagrams_received.fetch_add(1, Ordering::Relaxed);
        let header = wire::read_header(&mut &*bytes);
        let opened = header.map_err(Unopened::from).and_then(|header| {
            if let Source::Zenoh(key) = source
                && key != Some(header.sender)
            {
                return Err(Unopened::Malformed(wire::WireError::Shape {
                    what: "datagram",
                    why: "it came on a Zenoh key that is not its sender's".to_string(),
                }));
            }
            // The node's own, looped back: its calls were delivered locally.
            if header.sender == id {
                return Ok(None);
            }
            // The tag before anything else is read.
            let frames = outgoing.gate().open_frames(
                &header,
                bytes,
                Arrival::to_group(from),
                &mut self.replay,
                Instant::now(),
            )?;
            Ok(Some(wire::Datagram { header, frames }))
        });
        let datagram = match opened {
            Ok(Some(datagram)) => datagram,
            Ok(None) => return true,
            Err(why) => {
                auth::note_unopened(stats, &mut self.drops, from, len, &why);
                return true;
            }
        };
        if let (Some(bridge), Some(bytes)) = (bridge, to_relay) {
            bridge.from_lan(&bytes, from, &datagram.header);
        }
        // Control datagrams (announcements, heartbeats) say a node is alive; an
        // announcement makes it a receiver the window waits for.
        let sender = datagram.header.sender;
        if datagram.header.seq.is_none() {
            let announces = datagram
                .frames
                .iter()
                .any(|f| matches!(f, wire::Frame::Announce(_)));
            if let Some(modules) = modules {
                for frame in &datagram.frames {
                    if let wire::Frame::Announce(announce) = frame {
                        modules.on_announce(announce);
                    }
                }
            }
            let leaves = datagram
                .frames
                .iter()
                .any(|f| matches!(f, wire::Frame::Goodbye));
            if leaves {
                outgoing.left(sender);
            } else {
                outgoing.heard(sender, from, announces);
            }
        }
        let queued = stats.queued_bytes.load(Ordering::Relaxed);
        if queued + len as u64 > QUEUE_BYTES {
            stats.datagrams_overrun.fetch_add(1, Ordering::Relaxed);
            self.drops.dropped(format_args!(
                "a datagram of {len} bytes from {from}: the node is {queued} bytes behind"
            ));
            return true;
        }
        stats.queued_bytes.fetch_add(len as u64, Ordering::Relaxed);
        match self.events.try_send(Event::Datagram {
            from,
            datagram,
            len,
        }) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                stats.queued_bytes.fetch_sub(len as u64, Ordering::Relaxed);
                stats.datagrams_overrun.fetch_add(1, Ordering::Relaxed);
                self.drops.dropped(format_args!(
                    "a datagram of {len} bytes from {from}: the node is {EVENT_QUEUE} \
                     datagrams behind"
                ));
                true
            }
            Err(TrySendError::Disconnected(_)) => false,
        }
    }
}

/// The network thread: receives and decodes datagrams (but for the node's own, which
/// multicast loops back) until the event loop ends or a signal asks the node to stop
/// (through `stopping`, which the event loop checks every turn, and a `Shutdown` event to
/// wake it). It tells `outgoing` which nodes announce themselves and which say goodbye:
/// the receivers its window waits for (even while the event loop is busy); and the module
/// service what modules they run.
async fn receive(
    node: Receiving<'_>,
    inputs: GroupInputs,
    events: Sender<Event>,
    mut done: oneshot::Receiver<()>,
) -> anyhow::Result<()> {
    let stopping = node.stopping;
    let stop = || {
        stopping.store(true, Ordering::Relaxed);
        let _ = events.try_send(Event::Shutdown);
    };
    let socket = inputs.socket.map(UdpSocket::from_std).transpose()?;
    let mut zenoh = inputs.zenoh;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut buf = vec![0u8; 65_536];
    let mut intake = Intake {
        node,
        events: events.clone(),
        drops: DropLog::new(),
        replay: ReplayGuard::new(auth::datagram::REPLAY_MEMORY),
        bridge: inputs.bridge,
    };
    loop {
        let taken = tokio::select! {
            received = recv(socket.as_ref(), &mut buf) => match received {
                Ok((len, from)) => intake.take(&mut buf[..len], Source::Multicast(from)),
                Err(e) => {
                    tracing::warn!("cannot receive from the group: {e}");
                    true
                }
            },
            heard = hear(zenoh.as_mut()) => match heard {
                Some(mut heard) => intake.take(&mut heard.bytes, Source::Zenoh(heard.sender)),
                None => {
                    tracing::warn!("the Zenoh link closed");
                    zenoh = None;
                    true
                }
            },
            _ = interrupt.recv() => { stop(); break; }
            _ = terminate.recv() => { stop(); break; }
            _ = &mut done => break,
        };
        if !taken {
            break;
        }
    }
    Ok(())
}

/// What the Zenoh link heard next, if the node has one (else never).
async fn hear(link: Option<&mut tokio::sync::mpsc::Receiver<Heard>>) -> Option<Heard> {
    match link {
        Some(link) => link.recv().await,
        None => std::future::pending().await,
    }
}

async fn recv(
    socket: Option<&UdpSocket>,
    buf: &mut [u8],
) -> std::io::Result<(usize, std::net::SocketAddr)> {
    match socket {
        Some(socket) => socket.recv_from(buf).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stdin_lines_lose_their_endings_and_are_bounded() {
        let long = "x".repeat(MAX_STDIN_LINE + 10);
        let input = format!("hello\r\n\nworld\n{long}\nlast");
        let mut reader = std::io::BufReader::with_capacity(7, input.as_bytes());
        let mut lines = Vec::new();
        loop {
            let mut line = Vec::new();
            if read_line(&mut reader, &mut line).unwrap() == 0 {
                break;
            }
            lines.push(String::from_utf8(line).unwrap());
        }
        assert_eq!(lines.len(), 5);
        assert_eq!(&lines[..3], ["hello", "", "world"]);
        assert_eq!(lines[3].len(), MAX_STDIN_LINE);
        assert_eq!(lines[4], "last");
    }
}
