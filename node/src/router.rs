//! `dhost router`: Eclipse Zenoh's own router (the `zenoh` crate in router mode) run in this
//! process, through which nodes that cannot reach each other directly exchange what they
//! send. Nothing of dhost's is in it, and it is no member of any group: what nodes send
//! through it is sealed with their group key before it gets there, so `zenohd`, or any
//! other Zenoh router, serves as well.
//!
//! A Zenoh session must be opened and closed outside any tokio runtime (zenoh 1.10 panics
//! inside a current-thread one): the router opens it on the calling thread, and waits for
//! Ctrl-C or SIGTERM on a small runtime of its own, made only once the session is open.

use crate::zenoh_transport::config::ConfigError;
use std::path::{Path, PathBuf};
use zenoh::Wait as _;

/// Where a router listens when told nothing: this host only.
pub const DEFAULT_LISTEN: &str = "tcp/127.0.0.1:7447";

/// What `dhost router` is started with.
#[derive(Debug, Clone, Default)]
pub struct RouterSettings {
    /// The endpoints it takes connections on (none: [`DEFAULT_LISTEN`], unless the Zenoh
    /// configuration file names some).
    pub listen: Vec<String>,
    /// The other routers it connects to.
    pub connect: Vec<String>,
    /// Zenoh's own configuration file, for everything else.
    pub zenoh_config: Option<PathBuf>,
}

/// The Zenoh configuration of a router as `settings` say: its file (or Zenoh's defaults,
/// with multicast scouting off, listening on [`DEFAULT_LISTEN`]), in router mode, with
/// the endpoints given.
pub fn router_config(settings: &RouterSettings) -> Result<zenoh::Config, ConfigError> {
    crate::zenoh_transport::config::router_config(
        settings.zenoh_config.as_ref(),
        &settings.listen,
        &settings.connect,
        DEFAULT_LISTEN,
    )
}

/// Runs a router as `settings` say until Ctrl-C or SIGTERM.
pub fn run(settings: RouterSettings) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let config = router_config(&settings)?;
    let listening = listening(&config, settings.zenoh_config.as_deref());
    anyhow::ensure!(
        tokio::runtime::Handle::try_current().is_err(),
        "a Zenoh session cannot be opened inside a tokio runtime"
    );
    let session = zenoh::open(config)
        .wait()
        .map_err(|e| anyhow::anyhow!("{e}"))
        .context("cannot start the router")?;
    println!("dhost router {} listening on {listening}", session.zid());
    let signals = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    signals.block_on(async {
        use tokio::signal::unix::{SignalKind, signal};
        let mut terminate = signal(SignalKind::terminate())?;
        tokio::select! {
            interrupted = tokio::signal::ctrl_c() => interrupted,
            _ = terminate.recv() => Ok(()),
        }
    })?;
    drop(signals);
    tracing::info!("router stopping");
    session
        .close()
        .wait()
        .map_err(|e| anyhow::anyhow!("{e}"))
        .context("cannot close the router's session")?;
    Ok(())
}

/// The endpoints the router listens on, as its configuration says, for its first line.
fn listening(config: &zenoh::Config, file: Option<&Path>) -> String {
    match config.get_json("listen/endpoints") {
        Ok(endpoints) => endpoints,
        Err(_) => match file {
            Some(file) => format!("the endpoints of {}", file.display()),
            None => DEFAULT_LISTEN.to_string(),
        },
    }
}
