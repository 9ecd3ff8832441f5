//! The data a guest's wasmtime `Store` holds: its WASI context, and what the node's host
//! functions record while the guest runs (calls it sent, timers, watched pollables).
//!
//! The guest's worker ([`super::worker`]) reads and empties these after every call into
//! the guest, so nothing a guest does re-enters a guest.

use super::outbox::Outbox;
use super::output::GuestOutput;
use super::timers::Timers;
use crate::jail::{Jail, Warden};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use wasmtime::component::{Resource, ResourceTable};
use wasmtime_wasi::p2::DynPollable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// The most timers one guest may have armed at once.
pub(crate) const MAX_TIMERS: usize = 4096;

/// The most pollables one guest may have watched at once.
pub(crate) const MAX_WATCHES: usize = 1024;

/// The most bytes of encoded calls one call into a guest may queue until it returns: calls
/// to functions its own node serves (the node runs them once the guest returns), and, on a
/// node without a network, every call.
pub(crate) const MAX_SENT_BYTES: usize = 64 * 1024 * 1024;

/// Once a guest has this many bytes of calls waiting, they leave before it returns (and
/// the guest waits there while the window to the receivers is full).
pub(crate) const FLUSH_SENT_BYTES: usize = 64 * 1024;

/// A function the guest imports and sends to the group (it has no results): its id, shared
/// by the calls in the guest's outbox, and its parameters, which a run the guest sends in
/// one crossing (`runs.send-run`) is checked against.
#[derive(Debug)]
pub struct SendTarget {
    /// The function id.
    pub id: Arc<str>,
    /// Its parameters.
    pub params: Vec<(String, wasmtime::component::Type)>,
}

/// What every instance of a guest is set up with: its name, its jail, the node it runs on.
#[derive(Debug)]
pub struct GuestSetup {
    /// The guest's name (its file stem by default).
    pub name: String,
    /// What it is granted, and its limits.
    pub jail: Jail,
    /// Whether it reads the node's real stdin through WASI (a WASI command that does not
    /// hear stdin through `stdin-events`, and whose jail grants stdin).
    pub inherit_stdin: bool,
    /// Set when the node is stopping: a running guest is interrupted at the next tick.
    pub stopping: Arc<AtomicBool>,
    /// Whether the engine counts fuel (then every call gets the jail's fuel, or no limit).
    pub counts_fuel: bool,
    /// The node's name.
    pub node_name: String,
    /// Whether the guest exports `dstc:node/timer-events`.
    pub hears_timers: bool,
    /// Whether the guest exports `dstc:node/ready-events`.
    pub hears_readiness: bool,
    /// The largest encoded call the node can send in one datagram.
    pub max_call: usize,
    /// Where the node's calls with replies go.
    pub calls: Arc<super::calls::Calls>,
    /// Where the calls it sends go.
    pub outgoing: Arc<dyn super::network::CallSender>,
    /// The functions it sends (imports without results), by id.
    pub sends: std::collections::HashMap<String, SendTarget>,
    /// Set while the guest waits for the reply to a call with a reply of its own: a call
    /// from another guest of the node into it then fails at once (it would wait for
    /// itself, through the guest it called, when the call chain comes back to it).
    pub waiting: AtomicBool,
    /// Set while the guest waits to restart after a trap, and once it is unloaded: calls
    /// into it fail at once.
    pub down: AtomicBool,
}

/// The data of one guest instance's `Store`.
pub struct GuestState {
    wasi: WasiCtx,
    table: ResourceTable,
    /// How the guest is set up.
    pub setup: Arc<GuestSetup>,
    /// Calls sent during the current call into the guest, in order, not sent on yet.
    pub sent: Outbox,
    /// Calls sent on to the group already during the current call into the guest, to
    /// functions its own node serves: the node runs them when the guest returns.
    pub sent_local: Outbox,
    /// Its armed timers.
    pub timers: Timers,
    /// Its watched pollables, by token.
    pub watches: HashMap<u64, Resource<DynPollable>>,
    /// Its stdout and stderr, flushed by the node when a call returns.
    pub outputs: [GuestOutput; 2],
    /// Its limits, enforced.
    pub warden: Warden,
    /// The node its calls with replies go to (`dstc:node/calls.set-target`), if set.
    pub target: Option<String>,
}

impl GuestState {
    /// The state of a fresh instance.
    pub fn new(
        wasi: WasiCtx,
        setup: Arc<GuestSetup>,
        outputs: [GuestOutput; 2],
        warden: Warden,
    ) -> Self {
        GuestState {
            wasi,
            table: ResourceTable::new(),
            setup,
            sent: Outbox::default(),
            sent_local: Outbox::default(),
            timers: Timers::default(),
            watches: HashMap::new(),
            outputs,
            warden,
            target: None,
        }
    }

    /// The guest's resource table.
    pub fn table(&mut self) -> &mut ResourceTable {
        &mut self.table
    }

    /// The WASI context and resource table, borrowed apart from how the guest is set up.
    pub fn split(&mut self) -> (&mut WasiCtx, &mut ResourceTable, &GuestSetup) {
        (&mut self.wasi, &mut self.table, &self.setup)
    }
}

impl WasiView for GuestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}
