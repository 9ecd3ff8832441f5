//! What the command line's options make: a node's settings for the node crate
//! ([`RunArgs::settings`], checked in order), the group's keys read from their files (and
//! the rule that a node off loopback needs one, or --insecure), the mailboxes opened, the
//! jail policy's flags, the stream's knobs, the compile cache's and the module store's
//! directories, a router's endpoints. The options themselves are [`crate::cli`]'s, which
//! only defines them.

use crate::cli::{
    CacheArgs, GroupArgs, JailArgs, KeyArgs, ModuleArgs, NodeMailboxArgs, PublisherArgs,
    RouterArgs, RunArgs, StreamArgs, ZenohArgs, ZenohMode,
};
use crate::net::Group;
use anyhow::Context as _;
use dhost_node::zenoh_transport::config as zenoh_config;
use std::path::PathBuf;

impl RunArgs {
    /// Checks --metrics by the rule of the node's own port: an address that is not a
    /// loopback address needs the group key (`keyed`) or --insecure. (The page itself has
    /// no authentication: its counters say who calls what, and how much.)
    pub fn check_metrics(&self, keyed: bool) -> anyhow::Result<()> {
        match self.metrics {
            Some(addr) if !addr.ip().to_canonical().is_loopback() && !keyed && !self.insecure => {
                anyhow::bail!(
                    "--metrics {addr} is not a loopback address, and this node has no group \
                     key: it would be a node open to the network. Give --insecure to serve \
                     the counters there all the same, or run the node with --key-file FILE"
                )
            }
            _ => Ok(()),
        }
    }

    /// The node these options describe, checked in this order: its name, its key (and
    /// whether it may run without one), --metrics, the mailboxes, the jail policy, the
    /// stream, the module store.
    pub fn settings(&self) -> anyhow::Result<dhost_node::run::NodeSettings> {
        let name = self.name.clone().unwrap_or_else(default_name);
        dhost_node::run::check_name(&name)?;
        let zenoh = self.zenoh.config(self.group.iface)?;
        if self.bridge && zenoh.is_none() {
            anyhow::bail!(
                "--bridge relays between the multicast group and a Zenoh network: give the \
                 network with --zenoh ENDPOINT (or --zenoh-config FILE)"
            );
        }
        let zenoh_exposed = zenoh.as_ref().and_then(zenoh_config::exposed_endpoint);
        let keys = self
            .group
            .keys_for_node(self.insecure, self.tcp.listen, zenoh_exposed)?;
        self.check_metrics(keys.is_some())?;
        let mailboxes = self.mailboxes.open()?.map(std::sync::Arc::new);
        let policy =
            crate::jail::Policy::load(self.jail.file.as_deref(), self.jail.flags(&self.args))?;
        let stream = self.stream.config()?;
        let modules = match &self.modules.accept_modules {
            Some(publishers) => Some(dhost_node::run::ModuleSettings {
                publishers: publishers.clone(),
                store: self.modules.store()?,
                max_size: self.modules.max_module_size,
            }),
            None => None,
        };
        Ok(dhost_node::run::NodeSettings {
            name,
            keys,
            encrypt: self.group.key.encrypt,
            group: self.group.group(),
            // (A bridge's datagrams also go to its LAN.)
            max_datagram: self.group.max_datagram(zenoh.is_some() && !self.bridge),
            listen: self.tcp.listen,
            pool_size: usize::from(self.tcp.pool_size),
            limits: crate::tcp_port::ServerLimits::new(
                self.tcp.max_connections as usize,
                self.tcp.idle_timeout,
            ),
            metrics: self.metrics,
            mailboxes,
            text_anywhere: self.mailboxes.text_anywhere,
            policy: std::sync::Arc::new(policy),
            cache_dir: self.cache.dir(),
            print_jail: self.jail.print_jail,
            guests: self.guest_paths(),
            native: self.native.clone(),
            stream,
            modules,
            zenoh,
            bridge: self.bridge,
        })
    }

    /// Everything the node is asked to load: the GUESTs, then the --native plugins not
    /// also given as a GUEST.
    pub fn guest_paths(&self) -> Vec<PathBuf> {
        let mut paths = self.guests.clone();
        for plugin in &self.native {
            if !paths.contains(plugin) {
                paths.push(plugin.clone());
            }
        }
        paths
    }
}

impl NodeMailboxArgs {
    /// The mailboxes asked for, if any: checked, and opened from their store file.
    pub fn open(&self) -> anyhow::Result<Option<crate::mailbox::Mailboxes>> {
        let (Some(count), Some(size)) = (self.mailboxes, self.mailbox_size) else {
            return Ok(None);
        };
        let packet = self.packet_size.unwrap_or(size);
        let config = crate::mailbox::MailboxConfig::new(count, size, packet)?;
        Ok(Some(match &self.mailbox_store {
            Some(path) => crate::mailbox::Mailboxes::stored(config, path)?,
            None => crate::mailbox::Mailboxes::new(config),
        }))
    }
}

impl JailArgs {
    /// The jail flags, with the WASI command's arguments (`-- ARGS`, if any).
    pub fn flags(&self, args: &[String]) -> crate::jail::Flags {
        crate::jail::Flags {
            dirs: self.allow_dir.clone(),
            env: self.allow_env.clone(),
            network: self.allow_net.clone(),
            max_memory: self.max_memory,
            max_time: self.max_time,
            fuel: self.fuel,
            call_timeout: self.call_timeout,
            args: (!args.is_empty()).then(|| args.to_vec()),
        }
    }
}

impl KeyArgs {
    /// The group's keys, if a key file is given (checked: a key is needed for --encrypt).
    pub fn keys(&self) -> anyhow::Result<Option<crate::auth::Keyring>> {
        let Some(path) = &self.key_file else {
            if self.encrypt {
                anyhow::bail!(
                    "--encrypt needs the group's key: give --key-file FILE (or set \
                     DHOST_KEY_FILE); `dhost keygen FILE` makes one"
                );
            }
            return Ok(None);
        };
        let keys = crate::auth::Keyring::load(path)
            .map_err(|e| anyhow::anyhow!("cannot use the group key (--key-file): {e}"))?;
        tracing::info!("group key(s) {} from {}", keys.ids(), path.display());
        Ok(Some(keys))
    }

    /// The keys of connections to and from the TCP port.
    pub fn connection_keys(&self) -> anyhow::Result<crate::rpc::ConnectionKeys> {
        Ok(crate::rpc::ConnectionKeys {
            keys: self.keys()?,
            encrypt: self.encrypt,
        })
    }
}

impl GroupArgs {
    /// The group's keys, if a key file is given (checked: a key is needed for --encrypt).
    pub fn keys(&self) -> anyhow::Result<Option<crate::auth::Keyring>> {
        self.key.keys()
    }

    /// The keys of a node: as [`Self::keys`], and a node whose interface, whose TCP port
    /// (`listen`, --listen), or one of whose Zenoh endpoints (`zenoh_exposed`, the first
    /// that is not a loopback address) is not a loopback address must have one, unless
    /// `insecure` (--insecure).
    pub fn keys_for_node(
        &self,
        insecure: bool,
        listen: Option<std::net::SocketAddr>,
        zenoh_exposed: Option<String>,
    ) -> anyhow::Result<Option<crate::auth::Keyring>> {
        let keys = self.keys()?;
        let exposed = if !self.iface.is_loopback() {
            Some(format!("the interface {}", self.iface))
        } else if let Some(endpoint) = zenoh_exposed {
            Some(format!("the Zenoh endpoint {endpoint}"))
        } else {
            listen
                .filter(|addr| !addr.ip().to_canonical().is_loopback())
                .map(|addr| format!("--listen {addr}"))
        };
        if let Some(exposed) = exposed
            && keys.is_none()
            && !insecure
        {
            anyhow::bail!(
                "{exposed} is not a loopback address, and this node has no group key: any \
                 process on the network could call it, take its name or evict it. Make a key \
                 with `dhost keygen group.key`, copy it to every node (mode 600), and run with \
                 --key-file group.key (or DHOST_KEY_FILE=group.key); or give --insecure to \
                 run without one"
            );
        }
        if keys.is_some() && insecure {
            tracing::warn!("--insecure has no effect: the node has a group key");
        }
        Ok(keys)
    }

    /// The largest datagram to send on this group: --max-datagram; else, for a node or
    /// client on a Zenoh network alone (`zenoh_alone`), which carries datagrams of any size
    /// over TCP and cuts them itself, the largest there is; else what the interface takes.
    pub fn max_datagram(&self, zenoh_alone: bool) -> usize {
        match self.max_datagram {
            Some(bytes) => bytes as usize,
            None if zenoh_alone => crate::wire::MAX_DATAGRAM,
            None => self.group().default_max_datagram(),
        }
    }

    /// The group these options name.
    pub fn group(&self) -> Group {
        Group {
            addr: self.group,
            iface: self.iface,
            ttl: self.ttl,
        }
    }
}

impl StreamArgs {
    /// The stream's knobs, checked.
    pub fn config(&self) -> anyhow::Result<crate::stream::StreamConfig> {
        use crate::stream::{DEFAULT_KEEP_BYTES, DEFAULT_WINDOW, StreamConfig};
        if self.unreliable {
            return Ok(StreamConfig::unreliable());
        }
        let window = self.window.unwrap_or(DEFAULT_WINDOW);
        let config = StreamConfig {
            window: Some(window),
            keep_bytes: self
                .retransmit_buffer
                .unwrap_or_else(|| DEFAULT_KEEP_BYTES.max(window)),
            keep_age: self.retransmit_age,
        };
        config
            .check()
            .map_err(|why| anyhow::anyhow!("--window and --retransmit-buffer: {why}"))?;
        Ok(config)
    }
}

impl CacheArgs {
    /// The cache directory to use, if any.
    pub fn dir(&self) -> Option<PathBuf> {
        if self.no_cache {
            return None;
        }
        self.cache_dir
            .clone()
            .or_else(|| dirs::cache_dir().map(|d| d.join("dhost")))
    }
}

impl PublisherArgs {
    /// The publisher's name: --publisher, DHOST_PUBLISHER, or the host's name.
    pub fn name(&self) -> anyhow::Result<String> {
        let name = self
            .publisher
            .clone()
            .or_else(|| std::env::var("DHOST_PUBLISHER").ok())
            .unwrap_or_else(|| gethostname::gethostname().to_string_lossy().into_owned());
        crate::modules::publication::check_publisher(&name)
            .map_err(|why| anyhow::anyhow!("--publisher: {why}"))?;
        Ok(name)
    }
}

impl ModuleArgs {
    /// The store these options name.
    pub fn store(&self) -> anyhow::Result<crate::modules::ModuleStore> {
        let dir = self
            .store_dir
            .clone()
            .or_else(|| std::env::var_os("DHOST_STORE_DIR").map(PathBuf::from))
            .or_else(crate::modules::ModuleStore::default_dir)
            .context("no data directory for the module store: give --store-dir DIR")?;
        Ok(crate::modules::ModuleStore::new(dir))
    }
}

impl ZenohArgs {
    /// The Zenoh configuration of a node these options describe, if they name a Zenoh
    /// network at all; a peer listens on `iface` when told nowhere.
    pub fn config(
        &self,
        iface: std::net::Ipv4Addr,
    ) -> anyhow::Result<Option<dhost_node::zenoh_transport::ZenohConfig>> {
        if self.zenoh.is_empty()
            && self.zenoh_listen.is_empty()
            && self.zenoh_mode.is_none()
            && self.zenoh_config.is_none()
        {
            return Ok(None);
        }
        let settings = zenoh_config::ZenohSettings {
            mode: match self.zenoh_mode {
                Some(ZenohMode::Peer) => zenoh_config::Mode::Peer,
                Some(ZenohMode::Client) | None => zenoh_config::Mode::Client,
            },
            connect: self.zenoh.clone(),
            listen: self.zenoh_listen.clone(),
            config_file: self.zenoh_config.clone(),
        };
        Ok(Some(zenoh_config::node_config(&settings, iface)?))
    }
}

impl RouterArgs {
    /// The router these options describe.
    pub fn settings(&self) -> dhost_node::router::RouterSettings {
        dhost_node::router::RouterSettings {
            listen: self.listen.clone(),
            connect: self.connect.clone(),
            zenoh_config: self.zenoh_config.clone(),
        }
    }
}

/// A node's default name: `HOSTNAME-PID`.
fn default_name() -> String {
    let host = gethostname::gethostname().to_string_lossy().into_owned();
    format!("{host}-{}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser as _;

    fn run_args(args: &[&str]) -> RunArgs {
        let mut all = vec!["dhost", "run"];
        all.extend(args);
        match Cli::try_parse_from(all).expect("valid arguments").command {
            Command::Run(args) => *args,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_node_off_loopback_needs_a_key_or_insecure() {
        let lan = run_args(&["--iface", "192.0.2.1"]);
        let err = lan
            .group
            .keys_for_node(lan.insecure, None, None)
            .expect_err("no key");
        assert!(err.to_string().contains("dhost keygen"), "{err}");
        let insecure = run_args(&["--iface", "192.0.2.1", "--insecure"]);
        assert!(matches!(
            insecure.group.keys_for_node(insecure.insecure, None, None),
            Ok(None)
        ));
        let open_port = run_args(&["--listen", "0.0.0.0:0"]);
        let err = open_port
            .group
            .keys_for_node(open_port.insecure, open_port.tcp.listen, None)
            .expect_err("no key");
        assert!(
            err.to_string()
                .contains("--listen 0.0.0.0:0 is not a loopback"),
            "{err}"
        );
        let local = run_args(&["--listen", "127.0.0.1:0"]);
        assert!(matches!(
            local
                .group
                .keys_for_node(local.insecure, local.tcp.listen, None),
            Ok(None)
        ));
    }

    #[test]
    fn metrics_off_loopback_need_a_key_or_insecure() {
        let open = run_args(&["--metrics", "0.0.0.0:9100"]);
        let err = open.check_metrics(false).expect_err("no key");
        assert!(
            err.to_string()
                .contains("--metrics 0.0.0.0:9100 is not a loopback"),
            "{err}"
        );
        assert!(open.check_metrics(true).is_ok());
        assert!(
            run_args(&["--metrics", "0.0.0.0:9100", "--insecure"])
                .check_metrics(false)
                .is_ok()
        );
        assert!(
            run_args(&["--metrics", "127.0.0.1:9100"])
                .check_metrics(false)
                .is_ok()
        );
        assert!(run_args(&[]).check_metrics(false).is_ok());
    }
}
