//! The command line: every subcommand, option and environment variable, with its help.
//! Definitions only: what the options make (a node's settings, keys read from their
//! files...) is [`crate::settings`]'s, and what each command does is
//! [`crate::commands`]'s.

use clap::{Args, Parser, Subcommand};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;

/// A node that hosts sandboxed WebAssembly functions and lets every node on the network
/// call them.
///
/// Guests are WebAssembly components. A function a guest imports is sent to the multicast
/// group; every node whose guests export it runs it, the sender included.
#[derive(Debug, Parser)]
#[command(name = "dhost", version, propagate_version = true)]
pub struct Cli {
    /// More log output on stderr: -v info, -vv debug, -vvv trace. RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    /// Only errors on stderr.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a node hosting the given guests.
    ///
    /// Each GUEST is a WebAssembly component (.wasm, or .wat text), run in a jail, or a
    /// native DSTC plugin (.so), which is NOT sandboxed. Every function of an application
    /// interface a component imports is sent to the group; every function it exports is
    /// run when a call for it arrives. A guest that exports dstc:node/stdin-events gets the
    /// lines typed on stdin. A WASI command (a Rust `fn main` built for wasm32-wasip2) runs
    /// to its end with the ARGS after `--`, and dhost exits with its status. With no GUEST
    /// the node only joins the group. Stop a node with Ctrl-C.
    Run(Box<RunArgs>),

    /// Print a component's WIT: its world, with every interface it imports and exports.
    ///
    /// The output is what `wasm-tools component wit` prints, and can be fed to wit-bindgen.
    /// With --node NODE, NAME is a module published to NODE, whose WIT is fetched from it.
    /// With --summary, print instead which functions a node would serve and send.
    Inspect(InspectArgs),

    /// Publish a guest: send it to every node on the group (or to one, with --node), which
    /// checks it and runs it; nodes that join later fetch it from their peers.
    ///
    /// Each node must run with --accept-modules. It checks the size limit and the SHA-256
    /// digest, that GUEST is a component whose imports it can satisfy, keeps it in its
    /// module store and runs it under the jail for published modules. Prints, per node,
    /// "loaded" or "refused: REASON"; fails (exit status 1) unless every node loaded it.
    /// Publishing a new version under the same NAME replaces the old one everywhere.
    Publish(PublishArgs),

    /// Stop running the module published under NAME, on every node (and on the nodes that
    /// join later).
    Unpublish(UnpublishArgs),

    /// List the published modules the nodes run: name, digest, size, who published it and
    /// when, the interfaces it exports, and the nodes that run it.
    Modules(ModulesArgs),

    /// List the nodes on the group: name, TCP address, uptime, the connections each holds
    /// to its peers, the calls each received from its peers' streams (and of those, how
    /// many were repaired, and how many were lost for good), the datagrams each refused
    /// (unauthenticated, and replays: see docs/security.md), and the functions they serve.
    Peers(PeersArgs),

    /// Call FUNCTION-ID on the node named NODE and print its result as JSON.
    ///
    /// Each ARG is JSON (a string needs quotes), checked by NODE against the function's WIT
    /// signature: `dhost call ann 'dhost:kv/store#get' '"k"'`. A function without results
    /// prints `null` once NODE has run it. Fails (exit status 1, the reason on stderr) when
    /// no such node answers, the call fails there, or no reply comes within --timeout.
    /// Options go before NODE: every word after FUNCTION-ID is an argument.
    Call(CallArgs),

    /// Serve mailboxes on a TCP port of their own (what `dipc` does), or stop such a server
    /// (what `dipcrm` does).
    #[command(subcommand)]
    Mailbox(MailboxCommand),

    /// Run a Zenoh router, for groups that span subnets, sites and clouds.
    ///
    /// This is Eclipse Zenoh's own router (the zenoh crate in router mode) in this process,
    /// with nothing of dhost's: `zenohd` serves as well, and any Zenoh client or router can
    /// connect to it. It is no member of any group and holds no key. Routers join each
    /// other with --connect. Stop it with Ctrl-C.
    Router(RouterArgs),

    /// Make a new group key and write it to FILE (readable by its owner alone).
    ///
    /// Copy FILE to every node of the group, and run them (and the clients) with
    /// --key-file FILE or DHOST_KEY_FILE=FILE. docs/security.md says how to change keys.
    Keygen(KeygenArgs),

    /// Send a call to every node that serves FUNCTION-ID (or to one with --node), without
    /// waiting for it to run.
    ///
    /// Each ARG is JSON (a string needs quotes), checked by each receiving node against
    /// the function's WIT signature: `dhost cast dhost:chat/chat#message '"ann"' '"hi"'`.
    /// Options go before FUNCTION-ID: every word after it is an argument.
    Cast(CastArgs),

    /// An interactive shell on the group: peers, call, cast, publish, unpublish, modules
    /// and inspect as the commands of those names, and `say NODE TEXT`, which NODE prints
    /// on its terminal.
    ///
    /// On a terminal, with line editing, history and completion of commands, node names
    /// and function ids; from a pipe, without prompts (`echo peers | dhost console`),
    /// exiting with status 1 if a command failed. The group options given here apply to
    /// every command.
    Console(ConsoleArgs),

    /// Print the completion script of dhost for a shell.
    ///
    /// bash: `dhost completions bash > ~/.local/share/bash-completion/completions/dhost`;
    /// zsh: `dhost completions zsh > ~/.zfunc/_dhost` (with ~/.zfunc on $fpath); fish:
    /// `dhost completions fish > ~/.config/fish/completions/dhost.fish`.
    Completions(CompletionsArgs),

    /// Print dhost's man page (roff), or with SUBCOMMAND that subcommand's page.
    ///
    /// `dhost man | man -l -` reads it; `dhost man run > dhost-run.1` writes one.
    Man(ManArgs),
}

/// Options of `dhost console`.
#[derive(Debug, Args)]
pub struct ConsoleArgs {
    /// The group to survey, and how long to listen.
    #[command(flatten)]
    pub survey: SurveyArgs,
}

/// Options of `dhost completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_name = "SHELL")]
    pub shell: clap_complete::Shell,
}

/// Options of `dhost man`.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// The subcommand whose page to print, such as run [default: dhost's own page].
    #[arg(value_name = "SUBCOMMAND")]
    pub subcommand: Option<String>,
}

/// Options of `dhost keygen`.
#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Where to write the key.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,

    /// Replace FILE if it exists.
    #[arg(long)]
    pub force: bool,
}

/// Options of `dhost router`.
#[derive(Debug, Args)]
pub struct RouterArgs {
    /// Take connections from nodes and other routers on ENDPOINT, such as
    /// tcp/0.0.0.0:7447 [repeatable] [default: tcp/127.0.0.1:7447, this host only].
    #[arg(long, value_name = "ENDPOINT")]
    pub listen: Vec<String>,

    /// Connect to another router at ENDPOINT, such as tcp/10.0.0.1:7447 [repeatable].
    #[arg(long, value_name = "ENDPOINT")]
    pub connect: Vec<String>,

    /// Take everything else (TLS, timeouts, access control...) from Zenoh's own
    /// configuration file (JSON5, as `zenohd -c`); --listen and --connect replace its
    /// endpoints. Without one the router never scouts by multicast: it is reached at its
    /// endpoints only.
    #[arg(long, value_name = "FILE")]
    pub zenoh_config: Option<PathBuf>,
}

/// `dhost mailbox ...`.
#[derive(Debug, Subcommand)]
pub enum MailboxCommand {
    /// Serve MAILBOXES mailboxes of SIZE KiB on PORT, with writes of at most PACKET KiB,
    /// over the text protocol (docs/mailboxes.md). In the foreground until Ctrl-C, or in the
    /// background with --daemon (then it is `dipc`).
    Serve(MailboxServeArgs),
    /// Stop the background server on PORT (then it is `dipcrm`).
    Stop(dhost_mailbox::cli::StopArgs),
}

/// The arguments of `dhost mailbox serve`: `dipc`'s, and the group's key.
#[derive(Debug, Args)]
pub struct MailboxServeArgs {
    /// `dipc`'s arguments.
    #[command(flatten)]
    pub serve: dhost_mailbox::cli::ServeArgs,

    /// The group's key.
    #[command(flatten)]
    pub key: KeyArgs,

    /// With a key, still serve the text protocol (which has no room for one) to clients on
    /// other hosts: by default a keyed server takes text commands from this host only, and
    /// authenticated binary requests from anywhere.
    #[arg(long)]
    pub text_anywhere: bool,
}

/// Options of `dhost call`.
#[derive(Debug, Args)]
pub struct CallArgs {
    /// The name of the node to call.
    #[arg(value_name = "NODE")]
    pub node: String,

    /// The function to call, such as dhost:kv/store#get.
    #[arg(value_name = "FUNCTION-ID")]
    pub function: String,

    /// The arguments, one JSON value each.
    #[arg(value_name = "ARG", allow_hyphen_values = true)]
    pub args: Vec<String>,

    /// How long to wait for the reply.
    #[arg(long, value_name = "DURATION", default_value = "5s",
          value_parser = crate::jail::parse_duration)]
    pub timeout: std::time::Duration,

    /// The group to survey, and how long to listen.
    #[command(flatten)]
    pub survey: SurveyArgs,
}

/// Options of `dhost peers`.
#[derive(Debug, Args)]
pub struct PeersArgs {
    /// Also list, for each node, the calls it received, had repaired and lost from each
    /// peer's stream (the columns RECEIVED, REPAIRED and LOST sum them).
    #[arg(long)]
    pub streams: bool,

    /// Also list, for each node, the datagrams it refused from each source address: as
    /// unauthenticated (no tag, another key's, a wrong one) and as replays (the columns
    /// UNAUTH and REPLAYED sum them). See docs/security.md.
    #[arg(long)]
    pub refused: bool,

    /// The group to survey, and how long to listen.
    #[command(flatten)]
    pub survey: SurveyArgs,
}

/// Options of `dhost cast`.
#[derive(Debug, Args)]
pub struct CastArgs {
    /// The function to call, such as dhost:chat/chat#message.
    #[arg(value_name = "FUNCTION-ID")]
    pub function: String,

    /// The arguments, one JSON value each.
    #[arg(value_name = "ARG", allow_hyphen_values = true)]
    pub args: Vec<String>,

    /// Send the call to this node only, over TCP (still without waiting for it to run).
    #[arg(long, value_name = "NODE")]
    pub node: Option<String>,

    /// The group to survey, and how long to listen.
    #[command(flatten)]
    pub survey: SurveyArgs,
}

/// How a short-lived client reaches the group and how long it listens for answers.
#[derive(Debug, Args)]
pub struct SurveyArgs {
    /// The group: its address, interface and key.
    #[command(flatten)]
    pub group: GroupArgs,

    /// The Zenoh network to reach the group through instead of multicast, if any.
    #[command(flatten)]
    pub zenoh: ZenohArgs,

    /// How long to wait for the nodes' answers.
    #[arg(long, value_name = "DURATION", default_value = "300ms",
          value_parser = crate::jail::parse_duration)]
    pub wait: std::time::Duration,
}

/// Options of `dhost run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The guests to load.
    #[arg(value_name = "GUEST")]
    pub guests: Vec<PathBuf>,

    /// Arguments for a WASI command guest (after `--`).
    #[arg(last = true, value_name = "ARGS")]
    pub args: Vec<String>,

    /// Load PLUGIN as a native DSTC plugin (.so), after the GUESTs (a GUEST that is an ELF
    /// file is loaded as one anyway) [repeatable]. NATIVE PLUGINS ARE NOT SANDBOXED: they
    /// run with the node's own rights, and no jail applies to them.
    #[arg(long, value_name = "PLUGIN")]
    pub native: Vec<PathBuf>,

    /// Take options from a TOML file whose keys are these options' long names (`name`,
    /// `group`, `allow-env`...), with `guests` and `args`; options given here win. See
    /// docs/config.md.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// The node's name [default: HOSTNAME-PID].
    #[arg(long)]
    pub name: Option<String>,

    /// The group: its address, interface and key.
    #[command(flatten)]
    pub group: GroupArgs,

    /// The Zenoh network the node joins instead of the multicast group, if any.
    #[command(flatten)]
    pub zenoh: ZenohArgs,

    /// With a Zenoh network (--zenoh), join the multicast group on --iface too, and relay
    /// between the two: the LAN's members (native .so plugins included) and the nodes
    /// beyond it become one group (docs/zenoh.md). One bridge per LAN.
    #[arg(long)]
    pub bridge: bool,

    /// Run on an interface that is not a loopback address (--iface, --listen, --metrics,
    /// a Zenoh endpoint) without a key: any process that can reach the network may then call this node's
    /// functions, take its name or evict it.
    #[arg(long)]
    pub insecure: bool,

    /// The reliable stream: window and retransmit buffer.
    #[command(flatten)]
    pub stream: StreamArgs,

    /// The TCP port.
    #[command(flatten)]
    pub tcp: TcpArgs,

    /// Serve the node's counters to Prometheus at http://ADDR:PORT/metrics (calls by
    /// function, peer and guest, traps, connections, round trips: docs/metrics.md).
    #[arg(long, value_name = "ADDR:PORT")]
    pub metrics: Option<std::net::SocketAddr>,

    /// The mailboxes the node serves.
    #[command(flatten)]
    pub mailboxes: NodeMailboxArgs,

    /// How the node takes published modules.
    #[command(flatten)]
    pub modules: ModuleArgs,

    /// The jail of the command-line guests.
    #[command(flatten)]
    pub jail: JailArgs,

    /// The compiled-component cache.
    #[command(flatten)]
    pub cache: CacheArgs,
}

/// The node's TCP port, for calls with replies, and its connections to peers.
#[derive(Debug, Args)]
pub struct TcpArgs {
    /// The address and port to take calls with replies on, announced to the group
    /// [default: an ephemeral port on the --iface address].
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<std::net::SocketAddr>,

    /// The most connections this node opens to one peer.
    #[arg(long, value_name = "N", default_value_t = 4,
          value_parser = clap::value_parser!(u16).range(1..=256))]
    pub pool_size: u16,

    /// The most connections the TCP port keeps open at once; more are told so and closed at
    /// once. At most 32 come from one address of another host, and each must say what it
    /// is (and prove the key) within 10 s.
    #[arg(long, value_name = "N", default_value_t = 256,
          value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub max_connections: u32,

    /// How long a connection may go without sending a whole frame before it is closed
    /// (idle peers, and peers too slow to finish a frame).
    #[arg(long, value_name = "DURATION", default_value = "60s",
          value_parser = crate::jail::parse_duration)]
    pub idle_timeout: std::time::Duration,
}

/// Mailboxes a node serves on its TCP port, beside its guests.
#[derive(Debug, Args)]
pub struct NodeMailboxArgs {
    /// Serve this many mailboxes on the node's TCP port (text protocol, docs/mailboxes.md).
    #[arg(long, value_name = "K", requires = "mailbox_size")]
    pub mailboxes: Option<u64>,

    /// The size of one mailbox, in KiB.
    #[arg(long, value_name = "KB", requires = "mailboxes")]
    pub mailbox_size: Option<u64>,

    /// The most data one write may carry, in KiB [default: the mailbox size].
    #[arg(long, value_name = "KB", requires = "mailboxes")]
    pub packet_size: Option<u64>,

    /// Keep the mailboxes in FILE (memory-mapped), so that they survive a restart.
    #[arg(long, value_name = "FILE", requires = "mailboxes")]
    pub mailbox_store: Option<PathBuf>,

    /// With a key, still serve the mailboxes' text protocol (which has no room for one)
    /// to clients on other hosts: by default a keyed node takes text commands from this
    /// host only, and authenticated binary requests from anywhere.
    #[arg(long, requires = "mailboxes")]
    pub text_anywhere: bool,
}

/// What guests are granted and their limits (the built-in default jail unless given).
#[derive(Debug, Args)]
pub struct JailArgs {
    /// A jail policy file (TOML): a [default] section and a [guest.NAME] section per guest.
    /// See docs/jail.md. The flags below take precedence over it.
    #[arg(long = "jail", value_name = "FILE")]
    pub file: Option<PathBuf>,

    /// Let every guest see a host directory, read-only unless `:rw` [repeatable].
    #[arg(long, value_name = "HOST[:GUEST][:ro|rw]")]
    pub allow_dir: Vec<crate::jail::DirGrant>,

    /// Pass one of the node's environment variables to every guest [repeatable].
    #[arg(long, value_name = "NAME")]
    pub allow_env: Vec<String>,

    /// Let every guest connect to or bind addresses matching a pattern such as
    /// 127.0.0.1:8080, 10.0.0.0/8:*, *:443 [repeatable].
    #[arg(long, value_name = "PATTERN")]
    pub allow_net: Vec<crate::jail::AddrPattern>,

    /// The largest linear memory a guest may grow to, such as 64MiB [default: 64MiB].
    #[arg(long, value_name = "SIZE", value_parser = crate::jail::parse_size)]
    pub max_memory: Option<u64>,

    /// The most time one call into a guest may run, such as 200ms; for a WASI command, its
    /// whole run [default: 1s per call; no limit for a WASI command].
    #[arg(long, value_name = "DURATION", value_parser = crate::jail::parse_duration)]
    pub max_time: Option<std::time::Duration>,

    /// The fuel (about one unit per WebAssembly instruction) one call may burn [default:
    /// no fuel limit]. Counting fuel slows every guest a little.
    #[arg(long, value_name = "UNITS", value_parser = clap::value_parser!(u64).range(1..))]
    pub fuel: Option<u64>,

    /// How long a guest waits for the reply to a call with a reply, such as 2s [default:
    /// 5s].
    #[arg(long, value_name = "DURATION", value_parser = crate::jail::parse_duration)]
    pub call_timeout: Option<std::time::Duration>,

    /// Print the effective jail of each guest and exit.
    #[arg(long)]
    pub print_jail: bool,
}

/// Where the multicast group is.
#[derive(Debug, Args)]
pub struct GroupArgs {
    /// The multicast group and port every node of the network joins.
    #[arg(long, env = "DHOST_GROUP", default_value_t = crate::net::DEFAULT_GROUP,
          value_parser = parse_group)]
    pub group: SocketAddrV4,

    /// The address of the interface to send and receive multicast on. The default keeps
    /// the node on this machine; give this machine's LAN address to join the LAN.
    #[arg(long, env = "DHOST_IFACE", default_value_t = Ipv4Addr::LOCALHOST)]
    pub iface: Ipv4Addr,

    /// How many routers a datagram may cross (0: this host only, 1: the local network).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(0..=255))]
    pub ttl: u32,

    /// The largest datagram to send, in bytes [default: 65507 on loopback, 1472 elsewhere].
    #[arg(long, value_name = "BYTES",
          value_parser = clap::value_parser!(u32).range(512..=65507))]
    pub max_datagram: Option<u32>,

    /// The group's key.
    #[command(flatten)]
    pub key: KeyArgs,
}

/// How a node reaches its group through a Zenoh network, when multicast cannot reach its
/// peers (docs/zenoh.md). Any of these options makes the node use Zenoh instead of the
/// multicast group (whose address, --group, still names the group).
#[derive(Debug, Args)]
pub struct ZenohArgs {
    /// Join the group through the Zenoh router at ENDPOINT, such as tcp/10.0.0.1:7447,
    /// where `dhost router` or zenohd listens (or, with --zenoh-mode peer, connect to the
    /// peer or router there) [repeatable; a client takes the first that answers].
    #[arg(
        long,
        env = "DHOST_ZENOH",
        value_name = "ENDPOINT",
        value_delimiter = ','
    )]
    pub zenoh: Vec<String>,

    /// As a Zenoh peer, take connections from other peers on ENDPOINT [repeatable]
    /// [default: tcp/IFACE:0, an ephemeral port on the --iface address].
    #[arg(
        long,
        env = "DHOST_ZENOH_LISTEN",
        value_name = "ENDPOINT",
        value_delimiter = ','
    )]
    pub zenoh_listen: Vec<String>,

    /// client: everything goes through one router, and nodes need not reach each other;
    /// peer: nodes connect to each other directly (a router only introduces them)
    /// [default: client].
    #[arg(long, env = "DHOST_ZENOH_MODE", value_enum, value_name = "MODE")]
    pub zenoh_mode: Option<ZenohMode>,

    /// Take everything else (TLS, timeouts, access control...) from Zenoh's own
    /// configuration file (JSON5, as zenohd's); the options above replace its mode and
    /// endpoints. Without one the node never scouts by multicast.
    #[arg(long, env = "DHOST_ZENOH_CONFIG", value_name = "FILE")]
    pub zenoh_config: Option<PathBuf>,
}

/// How a node joins a Zenoh network (--zenoh-mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ZenohMode {
    /// Through one router.
    Client,
    /// Directly to the other peers.
    Peer,
}

/// The group's key.
#[derive(Debug, Args)]
pub struct KeyArgs {
    /// The group's key (a file `dhost keygen` made): every datagram and connection is then
    /// authenticated with it, and whatever comes without it is ignored. During a key
    /// change-over the file holds two keys: the first is used to send, both are accepted.
    /// See docs/security.md.
    #[arg(long, env = "DHOST_KEY_FILE", value_name = "FILE")]
    pub key_file: Option<PathBuf>,

    /// Encrypt datagrams and connections too (needs a key). Without it they are
    /// authenticated, but anyone on the network can read them.
    #[arg(long)]
    pub encrypt: bool,
}

/// How the node's stream of calls to the group is paced and repaired (docs/wire.md).
#[derive(Debug, Args)]
pub struct StreamArgs {
    /// The most bytes this node sends beyond what its slowest live receiver has run, such
    /// as 4MiB; a guest that sends faster waits. Receivers may ask for less (what their
    /// receive buffers hold) [default: 4MiB].
    #[arg(long, value_name = "SIZE", value_parser = crate::jail::parse_size)]
    pub window: Option<u64>,

    /// The most bytes of sent datagrams kept for resending once every live receiver has
    /// them (what a receiver still lacks is kept anyway) [default: 16MiB, and at least the
    /// window].
    #[arg(long, value_name = "SIZE", value_parser = crate::jail::parse_size)]
    pub retransmit_buffer: Option<u64>,

    /// How long sent datagrams are kept for resending once every live receiver has them.
    #[arg(long, value_name = "DURATION", default_value = "5s",
          value_parser = crate::jail::parse_duration)]
    pub retransmit_age: std::time::Duration,

    /// Send without flow control and without repairs (receivers still count what they
    /// lose): for measuring what reliability costs, or a group where loss is fine.
    #[arg(long, conflicts_with_all = ["window", "retransmit_buffer"])]
    pub unreliable: bool,
}

/// Where compiled components are kept.
#[derive(Debug, Args)]
pub struct CacheArgs {
    /// The directory of the compile cache [default: ~/.cache/dhost].
    #[arg(long, env = "DHOST_CACHE_DIR", value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,

    /// Compile every guest afresh, and keep nothing.
    #[arg(long, conflicts_with = "cache_dir")]
    pub no_cache: bool,
}

/// Options of `dhost inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The component to describe (a .wasm or .wat file), or with --node the name of a
    /// module published to NODE.
    #[arg(value_name = "GUEST|NAME")]
    pub guest: String,

    /// Fetch the WIT of module NAME from the node named NODE.
    #[arg(long, value_name = "NODE", conflicts_with = "summary")]
    pub node: Option<String>,

    /// Print which functions a node would serve and send, and what it cannot use, rather
    /// than the WIT.
    #[arg(long)]
    pub summary: bool,

    /// The compiled-component cache.
    #[command(flatten)]
    pub cache: CacheArgs,

    /// The group to survey, and how long to listen.
    #[command(flatten)]
    pub survey: SurveyArgs,
}

/// Options of `dhost publish`.
#[derive(Debug, Args)]
pub struct PublishArgs {
    /// The guest to publish: a WebAssembly component (.wasm).
    #[arg(value_name = "GUEST")]
    pub guest: PathBuf,

    /// Publish to this node only (the others still fetch it from it, if they accept it).
    #[arg(long, value_name = "NODE")]
    pub node: Option<String>,

    /// The name the module runs under (its guest name, and its jail section's:
    /// [guest.NAME]) [default: GUEST's file stem].
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,

    /// Who publishes.
    #[command(flatten)]
    pub publisher: PublisherArgs,

    /// How long to wait for each node to take and load the module.
    #[arg(long, value_name = "DURATION", default_value = "60s",
          value_parser = crate::jail::parse_duration)]
    pub timeout: std::time::Duration,

    /// The group to survey, and how long to listen.
    #[command(flatten)]
    pub survey: SurveyArgs,
}

/// Who publishes, as `--accept-modules=NAMES` on the nodes checks it.
#[derive(Debug, Args)]
pub struct PublisherArgs {
    /// The publisher's name, which nodes started with --accept-modules=NAMES check
    /// [env: DHOST_PUBLISHER] [default: this host's name]. It is not a proof: any holder of
    /// the group key can give any name (docs/modules.md).
    #[arg(long, value_name = "NAME")]
    pub publisher: Option<String>,
}

/// Options of `dhost unpublish`.
#[derive(Debug, Args)]
pub struct UnpublishArgs {
    /// The name of the module.
    #[arg(value_name = "NAME")]
    pub name: String,

    /// Who publishes.
    #[command(flatten)]
    pub publisher: PublisherArgs,

    /// How long to wait for each node to stop it.
    #[arg(long, value_name = "DURATION", default_value = "10s",
          value_parser = crate::jail::parse_duration)]
    pub timeout: std::time::Duration,

    /// The group to survey, and how long to listen.
    #[command(flatten)]
    pub survey: SurveyArgs,
}

/// Options of `dhost modules`.
#[derive(Debug, Args)]
pub struct ModulesArgs {
    /// List what this node runs only.
    #[arg(long, value_name = "NODE")]
    pub node: Option<String>,

    /// The group to survey, and how long to listen.
    #[command(flatten)]
    pub survey: SurveyArgs,
}

/// How a node takes published modules.
#[derive(Debug, Args)]
pub struct ModuleArgs {
    /// Take the modules published to this node (`dhost publish`), and fetch those its peers
    /// run. With =NAMES (comma-separated), only modules their publishers named so.
    #[arg(long, value_name = "NAMES", num_args = 0..=1, require_equals = true,
          value_delimiter = ',')]
    pub accept_modules: Option<Vec<String>>,

    /// Where published modules are kept, by digest (nodes of one machine may share it)
    /// [env: DHOST_STORE_DIR] [default: ~/.local/share/dhost/modules].
    #[arg(long, value_name = "DIR", requires = "accept_modules")]
    pub store_dir: Option<PathBuf>,

    /// The largest module the node takes.
    #[arg(long, value_name = "SIZE", default_value = "64MiB",
          value_parser = crate::jail::parse_size, requires = "accept_modules")]
    pub max_module_size: u64,
}

fn parse_group(s: &str) -> Result<SocketAddrV4, String> {
    let addr: SocketAddrV4 = s
        .parse()
        .map_err(|_| format!("`{s}` is not an IPv4 address and port, such as 239.0.0.1:4723"))?;
    if !addr.ip().is_multicast() {
        return Err(format!(
            "{} is not a multicast address (224.0.0.0 to 239.255.255.255)",
            addr.ip()
        ));
    }
    if addr.port() == 0 {
        return Err("the group needs a port other than 0".to_string());
    }
    Ok(addr)
}

/// Sends logs to stderr at `level` (or what RUST_LOG says), as `dipc` does.
pub use dhost_mailbox::cli::init_logging_at;

impl Cli {
    /// Sends logs to stderr at the level -v/-q (or RUST_LOG) asks for.
    pub fn init_logging(&self) {
        // (Zenoh's own logs one level quieter than dhost's: its sessions say much.)
        let level = match (self.quiet, self.verbose) {
            (true, _) => "error",
            (false, 0) => "warn",
            (false, 1) => "info,zenoh=warn",
            (false, 2) => "debug,zenoh=info",
            _ => "trace",
        };
        init_logging_at(level);
    }
}
