//! The Zenoh configuration of a node (`dhost run --zenoh...`) and of a router (`dhost
//! router`): Zenoh's own configuration file when one is given, else Zenoh's defaults with
//! multicast scouting off (a session is reached at the endpoints it is given, nothing is
//! sent to a LAN behind the user's back); then the mode and the endpoints the command line
//! names, each checked on its own so that an error names the one that is wrong.

use std::net::SocketAddr;
use std::path::PathBuf;

/// How a node joins a Zenoh network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Through one router (the first of its endpoints that answers), which routes
    /// everything it sends and receives: nodes need not reach each other.
    #[default]
    Client,
    /// Directly to the other peers (which routers and gossip make known), listening for
    /// them: nodes must reach each other.
    Peer,
}

impl Mode {
    /// Zenoh's name of the mode.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Client => "client",
            Mode::Peer => "peer",
        }
    }
}

/// How a node joins a Zenoh network, as the binary read it from its options.
#[derive(Debug, Clone, Default)]
pub struct ZenohSettings {
    /// Client or peer.
    pub mode: Mode,
    /// The routers or peers to connect to (`--zenoh`).
    pub connect: Vec<String>,
    /// Where a peer takes connections (`--zenoh-listen`; a client listens nowhere).
    pub listen: Vec<String>,
    /// Zenoh's own configuration file, for everything else (TLS, timeouts...).
    pub config_file: Option<PathBuf>,
}

/// Why a Zenoh configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
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
        /// The option that named it (`--listen`, `--zenoh`...).
        option: &'static str,
        /// The endpoint as given.
        endpoint: String,
        /// Zenoh's reason.
        why: String,
    },
    /// A client with nowhere to connect.
    #[error(
        "a Zenoh client needs a router to connect to: give --zenoh ENDPOINT (such as \
         tcp/10.0.0.1:7447, where `dhost router` or zenohd listens), or --zenoh-mode peer"
    )]
    NoRouter,
}

/// The largest message a node takes from Zenoh: a request or reply frame of the TCP port's
/// largest and its header (a datagram is at most 64 KiB). Zenoh's default, 1 GiB, would let
/// any publisher make the node hold that much.
pub const MAX_MESSAGE: usize = crate::rpc::frame::MAX_FRAME + 4096;

/// The Zenoh configuration of a node as `settings` say; `iface` is the address a peer
/// listens on when told nowhere.
pub fn node_config(
    settings: &ZenohSettings,
    iface: std::net::Ipv4Addr,
) -> Result<zenoh::Config, ConfigError> {
    let mut config = base(settings.config_file.as_ref())?;
    set(&mut config, "mode", &json_string(settings.mode.as_str()));
    set(
        &mut config,
        "transport/link/rx/max_message_size",
        &MAX_MESSAGE.to_string(),
    );
    if settings.mode == Mode::Client
        && settings.connect.is_empty()
        && settings.config_file.is_none()
    {
        return Err(ConfigError::NoRouter);
    }
    set_endpoints(
        &mut config,
        "--zenoh",
        "connect/endpoints",
        &settings.connect,
    )?;
    match settings.mode {
        // (Zenoh's own default for a peer is every address of the host.)
        Mode::Peer if settings.listen.is_empty() && settings.config_file.is_none() => {
            let own = format!("tcp/{}", SocketAddr::new(iface.into(), 0));
            set_endpoints(&mut config, "--zenoh-listen", "listen/endpoints", &[own])?;
        }
        _ => set_endpoints(
            &mut config,
            "--zenoh-listen",
            "listen/endpoints",
            &settings.listen,
        )?,
    }
    Ok(config)
}

/// The Zenoh configuration of a router: its file (or Zenoh's defaults, listening on
/// `default_listen`), in router mode, with the endpoints given.
pub fn router_config(
    file: Option<&PathBuf>,
    listen: &[String],
    connect: &[String],
    default_listen: &str,
) -> Result<zenoh::Config, ConfigError> {
    let mut config = base(file)?;
    if file.is_none() {
        // (A router's default is every address, `tcp/[::]:7447`.)
        set(
            &mut config,
            "listen/endpoints",
            &json_list(&[default_listen]),
        );
    }
    set(&mut config, "mode", &json_string("router"));
    set_endpoints(&mut config, "--listen", "listen/endpoints", listen)?;
    set_endpoints(&mut config, "--connect", "connect/endpoints", connect)?;
    Ok(config)
}

/// The first endpoint of `config` (connected to or listened on) that is not a loopback
/// address, if any: a node without a key may not use one (see docs/zenoh.md).
pub fn exposed_endpoint(config: &zenoh::Config) -> Option<String> {
    let mode = config
        .get_json("mode")
        .ok()
        .and_then(|json| serde_json::from_str::<String>(&json).ok())
        .unwrap_or_else(|| "peer".to_string());
    for key in ["connect/endpoints", "listen/endpoints"] {
        let Ok(json) = config.get_json(key) else {
            continue;
        };
        let endpoints = match serde_json::from_str::<serde_json::Value>(&json) {
            Ok(serde_json::Value::Array(items)) => items,
            // (One list per mode: this mode's, if any.)
            Ok(serde_json::Value::Object(mut modes)) => match modes.remove(&mode) {
                Some(serde_json::Value::Array(items)) => items,
                None | Some(serde_json::Value::Null) => Vec::new(),
                Some(_) => return Some(format!("the {key} of the Zenoh configuration")),
            },
            Ok(serde_json::Value::Null) => Vec::new(),
            // (A form this dhost does not read: not known to be loopback.)
            _ => return Some(format!("the {key} of the Zenoh configuration")),
        };
        for endpoint in endpoints {
            let text = match endpoint {
                serde_json::Value::String(text) => text,
                other => return Some(other.to_string()),
            };
            if !is_loopback_endpoint(&text) {
                return Some(text);
            }
        }
    }
    None
}

/// Whether `endpoint` (`tcp/127.0.0.1:7447`) is an address of this host alone.
fn is_loopback_endpoint(endpoint: &str) -> bool {
    let Ok(parsed) = endpoint.parse::<zenoh::config::EndPoint>() else {
        return false;
    };
    let address = parsed.address();
    let address = address.as_str();
    match address.parse::<SocketAddr>() {
        Ok(addr) => addr.ip().to_canonical().is_loopback(),
        Err(_) => address
            .rsplit_once(':')
            .is_some_and(|(host, _)| host == "localhost"),
    }
}

/// Zenoh's configuration file, or its defaults with multicast scouting off.
fn base(file: Option<&PathBuf>) -> Result<zenoh::Config, ConfigError> {
    match file {
        Some(path) => zenoh::Config::from_file(path).map_err(|e| ConfigError::ConfigFile {
            path: path.clone(),
            why: e.to_string(),
        }),
        None => {
            let mut config = zenoh::Config::default();
            set(&mut config, "scouting/multicast/enabled", "false");
            Ok(config)
        }
    }
}

/// Sets `key` to `endpoints`, each checked first; nothing when there are none.
fn set_endpoints(
    config: &mut zenoh::Config,
    option: &'static str,
    key: &str,
    endpoints: &[String],
) -> Result<(), ConfigError> {
    if endpoints.is_empty() {
        return Ok(());
    }
    for endpoint in endpoints {
        check_endpoint(option, endpoint)?;
    }
    config
        .insert_json5(key, &json_list(endpoints))
        .map_err(|e| ConfigError::Endpoint {
            option,
            endpoint: endpoints.join(","),
            why: e.to_string(),
        })
}

/// Whether Zenoh takes `endpoint` (`proto/address`, as in `tcp/10.0.0.1:7447`), over a
/// transport this dhost is built with (Zenoh's `tcp` and `tls`).
fn check_endpoint(option: &'static str, endpoint: &str) -> Result<(), ConfigError> {
    let refused = |why: String| ConfigError::Endpoint {
        option,
        endpoint: endpoint.to_string(),
        why,
    };
    let parsed: zenoh::config::EndPoint = endpoint.parse().map_err(|e| refused(format!("{e}")))?;
    let protocol = parsed.protocol();
    if !matches!(protocol.as_str(), "tcp" | "tls") {
        return Err(refused(format!(
            "this dhost speaks Zenoh over tcp or tls only, not {}",
            protocol.as_str()
        )));
    }
    Ok(())
}

/// Sets a key dhost relies on (its value is a constant of this module, which Zenoh takes).
fn set(config: &mut zenoh::Config, key: &str, value: &str) {
    if let Err(e) = config.insert_json5(key, value) {
        tracing::warn!("zenoh configuration {key} = {value}: {e}");
    }
}

/// `text` as a JSON string.
fn json_string(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}

/// `items` as a JSON array of strings (which JSON5 takes).
fn json_list<S: AsRef<str>>(items: &[S]) -> String {
    let items: Vec<&str> = items.iter().map(AsRef::as_ref).collect();
    serde_json::Value::from(items).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn endpoints(config: &zenoh::Config, key: &str) -> String {
        config.get_json(key).expect("endpoints")
    }

    #[test]
    fn a_client_needs_a_router_and_a_peer_listens_on_the_interface() {
        let err =
            node_config(&ZenohSettings::default(), Ipv4Addr::LOCALHOST).expect_err("no router");
        assert!(err.to_string().contains("--zenoh ENDPOINT"), "{err}");
        let client = ZenohSettings {
            connect: vec!["tcp/127.0.0.1:7447".into()],
            ..ZenohSettings::default()
        };
        let config = node_config(&client, Ipv4Addr::LOCALHOST).expect("a client");
        assert_eq!(config.get_json("mode").unwrap(), "\"client\"");
        assert!(endpoints(&config, "connect/endpoints").contains("tcp/127.0.0.1:7447"));
        assert_eq!(exposed_endpoint(&config), None);
        let peer = ZenohSettings {
            mode: Mode::Peer,
            ..ZenohSettings::default()
        };
        let config = node_config(&peer, Ipv4Addr::new(10, 1, 2, 3)).expect("a peer");
        assert!(endpoints(&config, "listen/endpoints").contains("tcp/10.1.2.3:0"));
        assert_eq!(exposed_endpoint(&config).as_deref(), Some("tcp/10.1.2.3:0"));
    }

    #[test]
    fn endpoints_off_this_host_are_exposed() {
        for (endpoint, exposed) in [
            ("tcp/127.0.0.1:7447", false),
            ("tcp/[::1]:7447", false),
            ("tcp/localhost:7447", false),
            ("tcp/10.0.0.1:7447", true),
            ("tcp/router.example:7447", true),
        ] {
            let settings = ZenohSettings {
                connect: vec![endpoint.into()],
                ..ZenohSettings::default()
            };
            let config = node_config(&settings, Ipv4Addr::LOCALHOST).expect(endpoint);
            assert_eq!(exposed_endpoint(&config).is_some(), exposed, "{endpoint}");
        }
    }

    #[test]
    fn a_router_listens_on_loopback_unless_told_and_refuses_bad_endpoints() {
        let config = router_config(None, &[], &[], "tcp/127.0.0.1:7447").expect("a router");
        assert!(endpoints(&config, "listen/endpoints").contains("tcp/127.0.0.1:7447"));
        assert_eq!(config.get_json("mode").expect("a mode"), "\"router\"");
        let config = router_config(
            None,
            &["tcp/0.0.0.0:7500".into()],
            &["tcp/10.0.0.1:7447".into()],
            "tcp/127.0.0.1:7447",
        )
        .expect("a router");
        assert!(endpoints(&config, "listen/endpoints").contains("7500"));
        assert!(endpoints(&config, "connect/endpoints").contains("10.0.0.1"));
        for (bad, why) in [
            ("127.0.0.1:7447", "not a Zenoh endpoint"),
            ("udp/127.0.0.1:1", "tcp or tls only"),
        ] {
            let err =
                router_config(None, &[bad.into()], &[], "tcp/127.0.0.1:7447").expect_err("refused");
            let text = err.to_string();
            assert!(
                text.contains(&format!("--listen {bad}")) && text.contains(why),
                "{text}"
            );
        }
        let missing = PathBuf::from("/nonexistent/zenoh.json5");
        let err =
            router_config(Some(&missing), &[], &[], "tcp/127.0.0.1:7447").expect_err("no file");
        assert!(
            err.to_string().contains("/nonexistent/zenoh.json5"),
            "{err}"
        );
    }
}
