//! Turning a module's checked bytes into a guest of the node: the [`Loader`] (compile,
//! refuse WASI commands, link every import, instantiate in the jail for published
//! modules), and the [`ModuleChange`]s that hand the loaded guest to the event loop, which
//! swaps it in between two events.

use dhost_runtime::guest::calls::Calls;
use dhost_runtime::guest::network::CallSender;
use dhost_runtime::guest::wasm::{NodeFacts, Runtime, WasmGuest};
use dhost_runtime::guest::world::{Role, World};
use dhost_runtime::jail::Policy;
use std::sync::Arc;
use tokio::sync::oneshot;

/// What the event loop is asked to do with a published module.
pub enum ModuleChange {
    /// Run `guest` (its name is the module's), in place of the guest of that name if there
    /// is one; say when it runs.
    Install {
        /// The loaded guest.
        guest: Box<WasmGuest>,
        /// Told once it runs, or why it cannot.
        done: oneshot::Sender<Result<(), String>>,
    },
    /// Stop running the guest named `name`; say whether there was one.
    Remove {
        /// The module's name.
        name: String,
        /// Told once it is gone.
        done: oneshot::Sender<bool>,
    },
}

impl std::fmt::Debug for ModuleChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ModuleChange::Install { guest, .. } => write!(f, "Install({})", guest.name()),
            ModuleChange::Remove { name, .. } => write!(f, "Remove({name})"),
        }
    }
}

/// Where changes go: the event loop's queue of them.
pub(crate) type ChangeSink = crossbeam_channel::Sender<ModuleChange>;

/// What the service needs to load a guest on the node.
pub struct Loader {
    /// The node's engine and compile cache.
    pub runtime: Runtime,
    /// The node's jail policy.
    pub policy: Arc<Policy>,
    /// The node's name.
    pub node_name: String,
    /// The largest call that fits in a datagram.
    pub max_call: usize,
    /// What the node's guests share for calls with replies.
    pub calls: Arc<Calls>,
    /// Where the guests' calls go.
    pub outgoing: Arc<dyn CallSender>,
}

impl Loader {
    /// Checks and loads module `name` from `bytes`: a component, compiled, not a WASI
    /// command, every import satisfied, instantiated in its jail.
    pub fn load(&self, name: &str, bytes: &[u8]) -> Result<(WasmGuest, Vec<String>), String> {
        let component = self.runtime.compile(bytes).map_err(|e| format!("{e:#}"))?;
        let world = World::of(&component, self.runtime.engine());
        if world.is_command() {
            return Err(
                "it is a WASI command (it exports wasi:cli/run): only components that serve or \
                 send calls can be published"
                    .into(),
            );
        }
        let exports = world
            .exports
            .iter()
            .filter(|i| matches!(i.role, Role::Application))
            .map(|i| i.name.clone())
            .collect();
        let node = NodeFacts {
            name: &self.node_name,
            max_call: self.max_call,
            calls: &self.calls,
            outgoing: &self.outgoing,
        };
        let jail = self.policy.jail_for_published(name);
        let guest = WasmGuest::load(&self.runtime, &component, world, name, jail, node)
            .map_err(|e| format!("{e:#}"))?;
        Ok((guest, exports))
    }
}
