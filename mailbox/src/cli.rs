//! The command lines of `dipc MAILBOXES SIZE PORT PACKET` and `dipcrm PORT`, and the
//! arguments they share with the node's `dhost mailbox serve` / `stop`.

use crate::daemon::{self, Placement};
use crate::port::{self, PortLimits};
use crate::{MailboxConfig, Mailboxes};
use clap::{Args, Parser};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// `dipc MAILBOXES SIZE PORT PACKET`: serves mailboxes over the text protocol, in the
/// background (docs/mailboxes.md).
///
/// Serves MAILBOXES mailboxes of SIZE KiB on PORT, with writes of at most PACKET KiB, and
/// returns once the port accepts connections; `dipcrm PORT` stops it. For a server that
/// also takes the binary protocol with a group key, see `dhost mailbox serve --daemon`.
#[derive(Debug, Parser)]
#[command(name = "dipc", version)]
pub struct DipcCli {
    /// `dipc`'s arguments.
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// `dipcrm PORT`: stops the mailbox server on PORT.
#[derive(Debug, Parser)]
#[command(name = "dipcrm", version)]
pub struct DipcrmCli {
    /// `dipcrm`'s arguments.
    #[command(flatten)]
    pub stop: StopArgs,
}

/// The arguments of a mailbox server.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The number of mailboxes (numbered from 0).
    #[arg(value_name = "MAILBOXES")]
    pub count: u64,

    /// The size of one mailbox, in KiB.
    #[arg(value_name = "SIZE")]
    pub size_kib: u64,

    /// The TCP port to serve on.
    #[arg(value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    pub port: u16,

    /// The most data one write may carry, in KiB (at most SIZE).
    #[arg(value_name = "PACKET")]
    pub packet_kib: u64,

    /// Go to the background once the port accepts connections, logging to
    /// STATE-DIR/dipc-PORT.log, with the pid in STATE-DIR/dipc-PORT.pid.
    #[arg(long)]
    pub daemon: bool,

    /// The address to listen on. One that is not a loopback address needs --insecure
    /// (or, with `dhost mailbox serve`, the group's key).
    #[arg(long, value_name = "ADDR", default_value_t = daemon::default_bind())]
    pub bind: std::net::IpAddr,

    /// Listen on an address that is not a loopback address (--bind) without a key: anyone
    /// who can reach the port may then read and write every mailbox.
    #[arg(long)]
    pub insecure: bool,

    /// How long a command waits for a mailbox's lock before it gets a timeout error.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub lock_timeout: Duration,

    /// The most connections open at once; more are refused.
    #[arg(long, value_name = "N", default_value_t = 4096,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_connections: u32,

    /// How long a connection may stay without sending a command.
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = parse_duration)]
    pub idle_timeout: Duration,

    /// Keep the mailboxes in FILE (memory-mapped, created if missing), so that they
    /// survive a restart; FILE must have been made for the same MAILBOXES and SIZE.
    #[arg(long, value_name = "FILE")]
    pub store: Option<PathBuf>,

    /// Where the server keeps its pid and log files.
    #[command(flatten)]
    pub state: StateArgs,
}

/// The arguments of `dipcrm` and `dhost mailbox stop`.
#[derive(Debug, Args)]
pub struct StopArgs {
    /// The port of the server to stop.
    #[arg(value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    pub port: u16,

    /// Where the server keeps its pid and log files.
    #[command(flatten)]
    pub state: StateArgs,
}

/// Where background mailbox servers keep their pid and log files.
#[derive(Debug, Args)]
pub struct StateArgs {
    /// The state directory [env: DHOST_STATE_DIR] [default: ~/.local/state/dhost].
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
}

impl ServeArgs {
    /// The mailboxes asked for, checked, and opened from their store file if any.
    pub fn open(&self) -> anyhow::Result<Arc<Mailboxes>> {
        let mut config = MailboxConfig::new(self.count, self.size_kib, self.packet_kib)?;
        config.lock_timeout = self.lock_timeout;
        Ok(Arc::new(match &self.store {
            Some(path) => Mailboxes::stored(config, path)?,
            None => Mailboxes::new(config),
        }))
    }

    /// The limits of the port.
    pub fn limits(&self) -> PortLimits {
        PortLimits::new(self.max_connections as usize, self.idle_timeout)
    }

    /// Where the server of `boxes` runs.
    pub fn placement(&self, boxes: &Mailboxes) -> Placement {
        Placement {
            addr: std::net::SocketAddr::new(self.bind, self.port),
            state_dir: daemon::state_dir(self.state.state_dir.clone()),
            daemon: self.daemon,
            what: boxes.config().describe(),
        }
    }

    /// Checks where the server is to listen: an address that is not a loopback address
    /// (reachable from other hosts) needs a key (`keyed`) or --insecure, as a node's port
    /// does.
    pub fn check_bind(&self, keyed: bool) -> anyhow::Result<()> {
        if self.bind.to_canonical().is_loopback() || keyed || self.insecure {
            return Ok(());
        }
        anyhow::bail!(
            "--bind {} is not a loopback address, and this server has no group key: anyone \
             who can reach port {} could read and write every mailbox. Give --insecure to \
             serve them there all the same (`dhost mailbox serve` also takes --key-file FILE: \
             then only holders of the key, and text commands from this host, are served)",
            self.bind,
            self.port
        )
    }

    /// Serves the mailboxes over the text protocol (`dipc`) until stopped, then writes
    /// their store back. It has no key: off loopback it needs --insecure.
    pub fn serve_text(self) -> anyhow::Result<()> {
        self.check_bind(false)?;
        let boxes = self.open()?;
        let limits = self.limits();
        daemon::start(&self.placement(&boxes), |listener, stop| async move {
            port::serve_mailboxes(listener, boxes.clone(), limits, stop).await;
            flush(&boxes)
        })
    }
}

/// Writes the store file of `boxes` back to disk, once their server has stopped.
pub fn flush(boxes: &Mailboxes) -> anyhow::Result<()> {
    use anyhow::Context as _;
    boxes.flush().context("cannot write the mailbox store back")
}

impl StopArgs {
    /// Stops the server.
    pub fn run(self) -> anyhow::Result<()> {
        daemon::stop(&daemon::state_dir(self.state.state_dir), self.port)
    }
}

/// A duration such as 200ms or 2s, more than zero.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s)
        .map_err(|e| format!("`{s}` is not a duration such as 200ms or 2s: {e}"))?;
    if d.is_zero() {
        return Err("the duration must be more than 0".to_string());
    }
    Ok(d)
}

/// Sends logs to stderr at `level` (or what RUST_LOG says), one line an event: every field
/// (the message too) is written escaped ([`crate::printable`]), so that what a peer, a
/// client or a guest said can neither drive the terminal nor forge a line of the log.
pub fn init_logging_at(level: &str) {
    use std::fmt::Write as _;
    use tracing_subscriber::EnvFilter;
    use tracing_subscriber::field::MakeExt as _;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let fields = tracing_subscriber::fmt::format::debug_fn(|writer, field, value| {
        let mut escaped = crate::printable::Escaper::new(writer, false);
        match field.name() {
            "message" => write!(escaped, "{value:?}"),
            name => write!(escaped, "{name}={value:?}"),
        }
    })
    .delimited(" ");
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .fmt_fields(fields)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
}
