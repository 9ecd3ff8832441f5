//! `dhost router`: Eclipse Zenoh's own router (the `zenoh` crate in router mode) run in this
//! process, through which nodes that cannot reach each other directly exchange what they
//! send. Nothing of dhost's is in it, and it is no member of any group: what nodes send
//! through it is sealed with their group key before it gets there, so `zenohd`, or any
//! other Zenoh router, serves as well.
//!
//! A Zenoh session must be opened and closed outside any tokio runtime (zenoh 1.10 panics
//! inside a current-thread one): the router opens it on the calling thread, and waits for
//! Ctrl-C or SIGTERM on a small runtime of its own, made only once the session is open.

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

/// Why a router's configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    /// Zenoh's configuration file could not be read or is not valid.
    #[error("cannot use the Zenoh configuration file {path}: {why}")]
    ConfigFile {
        /// The file.
        path: PathBuf,
        /// Zenoh's reason.
        why: String,
    },
    /// An endpoint Zenoh does not take.
    #[error("{option} {endpoint}: not a Zenoh endpoint such as tcp/0.0.0.0:7447 ({why})")]
    Endpoint {
        /// The option that named it (`--listen`, `--connect`).
        option: &'static str,
        /// The endpoint as given.
        endpoint: String,
        /// Zenoh's reason.
        why: String,
    },
}

/// The Zenoh configuration of a router as `settings` say: its file (or Zenoh's defaults,
/// with multicast scouting off), in router mode, with the endpoints given.
pub fn router_config(settings: &RouterSettings) -> Result<zenoh::Config, RouterError> {
    let mut config = match &settings.zenoh_config {
        Some(path) => zenoh::Config::from_file(path).map_err(|e| RouterError::ConfigFile {
            path: path.clone(),
            why: e.to_string(),
        })?,
        None => {
            let mut config = zenoh::Config::default();
            set(&mut config, "scouting/multicast/enabled", "false");
            // (A router's default is every address, `tcp/[::]:7447`.)
            set(
                &mut config,
                "listen/endpoints",
                &json_list(&[DEFAULT_LISTEN]),
            );
            config
        }
    };
    set(&mut config, "mode", "\"router\"");
    for (option, key, endpoints) in [
        ("--listen", "listen/endpoints", &settings.listen),
        ("--connect", "connect/endpoints", &settings.connect),
    ] {
        if endpoints.is_empty() {
            continue;
        }
        // Each on its own first, so that the error names the one that is wrong.
        for endpoint in endpoints {
            check_endpoint(option, endpoint)?;
        }
        config
            .insert_json5(key, &json_list(endpoints))
            .map_err(|e| RouterError::Endpoint {
                option,
                endpoint: endpoints.join(","),
                why: e.to_string(),
            })?;
    }
    Ok(config)
}

/// Whether Zenoh takes `endpoint` (`proto/address`, as in `tcp/10.0.0.1:7447`).
fn check_endpoint(option: &'static str, endpoint: &str) -> Result<(), RouterError> {
    let refused = |why: String| RouterError::Endpoint {
        option,
        endpoint: endpoint.to_string(),
        why,
    };
    let parsed: zenoh::config::EndPoint = endpoint.parse().map_err(|e| refused(format!("{e}")))?;
    let protocol = parsed.protocol();
    if protocol.as_str() != "tcp" {
        return Err(refused(format!(
            "this dhost speaks Zenoh over tcp only, not {}",
            protocol.as_str()
        )));
    }
    Ok(())
}

/// Sets a key the router relies on (its value is a constant of this module, which Zenoh
/// takes).
fn set(config: &mut zenoh::Config, key: &str, value: &str) {
    if let Err(e) = config.insert_json5(key, value) {
        tracing::warn!("zenoh configuration {key} = {value}: {e}");
    }
}

/// `items` as a JSON array of strings (which JSON5 takes).
fn json_list<S: AsRef<str>>(items: &[S]) -> String {
    let items: Vec<&str> = items.iter().map(AsRef::as_ref).collect();
    serde_json::Value::from(items).to_string()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_router_listens_on_loopback_unless_told_and_refuses_bad_endpoints() {
        let config = router_config(&RouterSettings::default()).expect("a configuration");
        assert!(
            config
                .get_json("listen/endpoints")
                .expect("endpoints")
                .contains("tcp/127.0.0.1:7447")
        );
        assert_eq!(config.get_json("mode").expect("a mode"), "\"router\"");
        let told = RouterSettings {
            listen: vec!["tcp/0.0.0.0:7500".into()],
            connect: vec!["tcp/10.0.0.1:7447".into()],
            ..RouterSettings::default()
        };
        let config = router_config(&told).expect("a configuration");
        assert!(
            config
                .get_json("listen/endpoints")
                .unwrap()
                .contains("7500")
        );
        assert!(
            config
                .get_json("connect/endpoints")
                .unwrap()
                .contains("10.0.0.1")
        );
        for (bad, why) in [
            ("127.0.0.1:7447", "not a Zenoh endpoint"),
            ("udp/127.0.0.1:1", "tcp only"),
        ] {
            let err = router_config(&RouterSettings {
                listen: vec![bad.into()],
                ..RouterSettings::default()
            })
            .expect_err("refused");
            let text = err.to_string();
            assert!(
                text.contains(&format!("--listen {bad}")) && text.contains(why),
                "{text}"
            );
        }
        let missing = RouterSettings {
            zenoh_config: Some("/nonexistent/zenoh.json5".into()),
            ..RouterSettings::default()
        };
        let err = router_config(&missing).expect_err("no file");
        assert!(
            err.to_string().contains("/nonexistent/zenoh.json5"),
            "{err}"
        );
    }
}
