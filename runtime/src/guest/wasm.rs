//! WebAssembly guests: compiling (through the cache), linking every import the node can
//! satisfy, instantiating, calling exports, and starting afresh after a trap.
//!
//! Linking is generic. WASI comes from wasmtime-wasi, `dstc:node` from [`super::host_api`],
//! and every function of an imported application interface becomes a *proxy*: calling it
//! encodes the arguments as CBOR and records the call in the guest's [`GuestState`]; the
//! node sends it once the guest returns. Exports are resolved to indices once, at load.

use super::host_api;
use super::outbox::Outbox;
use super::output::{GuestOutput, Target};
use super::state::{GuestSetup, GuestState, SendTarget};
use super::typed::{self, TypedExport};
use super::world::{self, EventInterface, Function, Role, World};
use crate::cache::ComponentCache;
use crate::jail::{self, Jail, NameLookup, Warden};
use crate::value;
use anyhow::{Context as _, anyhow, bail};
use dhost_protocol::outcome::{CallFailure, FailureKind};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use wasmtime::component::{
    Component, ComponentExportIndex, Func, Instance, InstancePre, Linker, Val,
};
use wasmtime::{Config, Engine, Store};
use wasmtime_wasi::p2::bindings::sync::Command;
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

/// The wasmtime engine shared by every guest of a node, with the compile cache.
#[derive(Clone)]
pub struct Runtime {
    engine: Engine,
    cache: Option<ComponentCache>,
    stopping: Arc<AtomicBool>,
    counts_fuel: bool,
}

impl Runtime {
    /// An engine for guests; `cache` keeps compiled components between runs;
    /// `consume_fuel` makes the engine count fuel, for jails that limit it.
    pub fn new(cache_dir: Option<PathBuf>, consume_fuel: bool) -> anyhow::Result<Self> {
        let mut config = Config::new();
        config.wasm_component_model(true);
        // No guest uses component-model async: leaving it off halves the cost of a call.
        config.concurrency_support(false);
        // CPU time limits: the engine's epoch ticks every jail::TICK (see `start_ticker`).
        config.epoch_interruption(true);
        config.consume_fuel(consume_fuel);
        let engine = Engine::new(&config)
            .map_err(anyhow::Error::from)
            .context("cannot create the wasmtime engine")?;
        let cache = cache_dir.and_then(|dir| ComponentCache::open(dir, &engine));
        Ok(Runtime {
            engine,
            cache,
            stopping: Arc::default(),
            counts_fuel: consume_fuel,
        })
    }

    /// Starts the one thread that ticks the engine's epoch, which CPU time limits (and
    /// stopping a running guest) rely on. Call it once, before running guests.
    pub fn start_ticker(&self) -> anyhow::Result<()> {
        let engine = self.engine.clone();
        std::thread::Builder::new()
            .name("dhost-epoch".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(jail::TICK);
                    engine.increment_epoch();
                }
            })
            .context("cannot start the epoch thread")?;
        Ok(())
    }

    /// The flag that, once set, interrupts every running guest at the next epoch tick.
    pub fn stopping(&self) -> &Arc<AtomicBool> {
        &self.stopping
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Reads and compiles the component at `path` (WebAssembly binary or WAT text), from
    /// the compile cache when it holds it.
    pub fn load_component(&self, path: &Path) -> anyhow::Result<Component> {
        let bytes = std::fs::read(path).context("cannot read it")?;
        let bytes = if bytes.starts_with(b"\0asm") {
            bytes
        } else if path.extension().is_some_and(|e| e == "wat") {
            wat::parse_bytes(&bytes)
                .context("it is not valid WAT text")?
                .into_owned()
        } else {
            bail!(
                "it is not WebAssembly (no \\0asm magic at its start; WAT text needs the .wat \
                 extension)"
            );
        };
        self.compile(&bytes)
    }

    /// Compiles the component in `bytes` (WebAssembly binary), from the compile cache when
    /// it holds it.
    pub fn compile(&self, bytes: &[u8]) -> anyhow::Result<Component> {
        check_component(bytes)?;
        let compile = || {
            Component::new(&self.engine, bytes)
                .map_err(anyhow::Error::from)
                .context("it is not a valid WebAssembly component")
        };
        match &self.cache {
            Some(cache) => cache.get_or_compile(bytes, compile),
            None => compile(),
        }
    }
}

/// Whether `bytes` are a core module rather than a component (the version field differs).
fn is_core_module(bytes: &[u8]) -> bool {
    bytes.len() >= 8 && bytes[..4] == *b"\0asm" && bytes[4..8] == [1, 0, 0, 0]
}

/// Checks that `bytes` look like a WebAssembly component (the magic, and a component's
/// version), before anything decodes them; the error says what they are instead.
pub fn check_component(bytes: &[u8]) -> anyhow::Result<()> {
    if !bytes.starts_with(b"\0asm") {
        bail!("it is not WebAssembly (no \\0asm magic at its start)");
    }
    if is_core_module(bytes) {
        bail!(
            "it is a core WebAssembly module, not a component: build guests for wasm32-wasip2 \
             (or with `cargo component build`)"
        );
    }
    Ok(())
}

/// An exported application function, resolved once at load.
#[derive(Debug, Clone)]
pub struct Export {
    /// The function's interface, parameters and id.
    pub function: Function,
    index: ComponentExportIndex,
}

/// Why a call into a guest failed.
#[derive(Debug)]
pub enum CallError {
    /// The arguments do not fit the guest's signature; the guest was not entered.
    BadArguments(value::ValueError),
    /// The guest trapped: this instance is unusable and must be restarted.
    Trapped(anyhow::Error),
    /// The instance trapped earlier and is waiting for its restart; it was not entered.
    Broken,
}

/// A loaded WebAssembly guest: what does not change while it runs ([`GuestShared`]), and
/// its instance ([`GuestCore`]). One thread at a time owns it: the guest's worker
/// ([`super::worker`]).
pub struct WasmGuest {
    shared: Arc<GuestShared>,
    core: GuestCore,
}

/// What a guest is loaded with and keeps across restarts.
struct GuestShared {
    setup: Arc<GuestSetup>,
    world: World,
    pre: InstancePre<GuestState>,
    exports: Vec<Export>,
    /// The event hooks the guest exports, by `EventInterface as usize`.
    event_indices: [Option<ComponentExportIndex>; EventInterface::COUNT],
    outputs: [GuestOutput; 2],
}

/// A guest's current instance.
struct GuestCore {
    store: Store<GuestState>,
    instance: Instance,
    /// The current instance's functions for `exports` and `event_indices`.
    funcs: Vec<Func>,
    event_funcs: [Option<Func>; EventInterface::COUNT],
    /// Whether the instance trapped and is not restarted yet: it cannot be entered.
    broken: bool,
    /// Room for a call's parameters, kept from call to call.
    params: Vec<Val>,
    /// The typed form of each of `funcs` whose signature has one (the fast path).
    typed: Vec<Option<TypedExport>>,
    /// How the instance takes the runs of calls to each of `funcs`.
    runs: Vec<RunMode>,
}

/// The most calls whose time and fuel a run taken in one entry gets (a run of more gets
/// this many calls' worth): a guest that loops in `on-run` is stopped within that.
pub const MAX_RUN_ALLOWANCE: usize = 16;

/// How a guest takes a run of calls to one of its functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RunMode {
    /// In one entry (`run-events.on-run`), until it declines.
    InOneEntry,
    /// One call at a time: it exports no `run-events`, or declined.
    OneByOne,
}

impl WasmGuest {
    /// Links and instantiates `component`, whose imports and exports are `world`, as
    /// guest `name` in `jail`. Fails, naming the import, when the node cannot satisfy one of
    /// its imports, and naming the directory when the jail grants one that cannot be opened.
    pub fn load(
        runtime: &Runtime,
        component: &Component,
        world: World,
        name: &str,
        jail: Jail,
        node: NodeFacts<'_>,
    ) -> anyhow::Result<Self> {
        let engine = runtime.engine();
        let sends: HashMap<String, SendTarget> = world
            .sends()
            .filter(|f| f.results.is_empty())
            .map(|f| {
                let target = SendTarget {
                    id: f.id.as_str().into(),
                    params: f.params.clone(),
                };
                (f.id.clone(), target)
            })
            .collect();
        let linker = link(engine, &world, &sends)?;
        let pre = linker
            .instantiate_pre(component)
            .map_err(anyhow::Error::from)
            .context("cannot link the component")?;

        let setup = Arc::new(GuestSetup {
            name: name.to_string(),
            inherit_stdin: jail.stdin
                && world.is_command()
                && !world.exports_events(EventInterface::Stdin),
            jail,
            stopping: runtime.stopping().clone(),
            counts_fuel: runtime.counts_fuel,
            node_name: node.name.to_string(),
            hears_timers: world.exports_events(EventInterface::Timer),
            hears_readiness: world.exports_events(EventInterface::Ready),
            max_call: node.max_call,
            calls: node.calls.clone(),
            outgoing: node.outgoing.clone(),
            sends,
            waiting: AtomicBool::new(false),
            down: AtomicBool::new(false),
        });

        let mut exports = Vec::new();
        for iface in world
            .exports
            .iter()
            .filter(|i| matches!(i.role, Role::Application))
        {
            let iface_index = export_index(component, None, &iface.name)?;
            for function in &iface.functions {
                if let Some(param) = function.unsendable_param() {
                    tracing::warn!(
                        guest = %name,
                        "not serving {}: parameter `{param}` cannot travel over the network",
                        function.id
                    );
                    continue;
                }
                let index = export_index(component, Some(&iface_index), &function.name)?;
                exports.push(Export {
                    function: function.clone(),
                    index,
                });
            }
        }
        let mut event_indices = [None; EventInterface::COUNT];
        for events in EventInterface::ALL {
            if let Some(iface) = world
                .exports
                .iter()
                .find(|i| matches!(i.role, Role::Events(e) if e == events))
            {
                let iface_index = export_index(component, None, &iface.name)?;
                event_indices[events as usize] = Some(export_index(
                    component,
                    Some(&iface_index),
                    events.function(),
                )?);
            }
        }

        let outputs = [
            GuestOutput::new(Target::Stdout),
            GuestOutput::new(Target::Stderr),
        ];
        let shared = Arc::new(GuestShared {
            setup,
            world,
            pre,
            exports,
            event_indices,
            outputs,
        });
        let core = shared.instantiate()?;
        Ok(WasmGuest { shared, core })
    }

    /// What the guest was set up with (its name, jail, and the flags its worker and its
    /// callers share).
    pub fn setup(&self) -> &Arc<GuestSetup> {
        &self.shared.setup
    }

    /// The guest's name.
    pub fn name(&self) -> &str {
        &self.shared.setup.name
    }

    /// What the guest imports and exports.
    pub fn world(&self) -> &World {
        &self.shared.world
    }

    /// The application functions the guest serves, in slot order.
    pub fn exports(&self) -> &[Export] {
        &self.shared.exports
    }

    /// Whether the guest is a WASI command.
    pub fn is_command(&self) -> bool {
        self.shared.world.is_command()
    }

    /// Whether the guest exports the event interface `events`.
    pub fn hears(&self, events: EventInterface) -> bool {
        self.shared.event_indices[events as usize].is_some()
    }

    /// Calls exported function `slot` with its arguments as one CBOR array (as they came
    /// off the wire), checked against its signature; returns its result, if it has one.
    /// The calls the guest sent meanwhile go into `sent`, handed over empty, and `local`
    /// (as with [`WasmGuest::take_sent`], without taking the guest's lock again).
    pub fn call_cbor(
        &mut self,
        slot: usize,
        args: &[u8],
        sent: &mut Outbox,
        local: &mut Outbox,
    ) -> Result<Option<Val>, CallError> {
        let outcome = self.shared.call_cbor(&mut self.core, slot, args);
        hand_over_sent(self.core.store.data_mut(), sent, local);
        outcome
    }

    /// Runs every call of `run` on export `slot` in one entry (`run-events.on-run`), if the
    /// guest takes that function's calls in runs and each call fits the function's
    /// parameters; `None` when they must go one by one ([`Self::call_cbor`]); an error
    /// when it trapped. The calls the guest sent go into `sent` and `local`, as with
    /// [`Self::call_cbor`].
    pub fn call_run(
        &mut self,
        slot: usize,
        run: &dhost_protocol::wire::CallRun,
        sent: &mut Outbox,
        local: &mut Outbox,
    ) -> Option<anyhow::Result<()>> {
        let outcome = self.shared.call_run(&mut self.core, slot, run);
        if outcome.is_some() {
            hand_over_sent(self.core.store.data_mut(), sent, local);
        }
        outcome
    }

    /// Calls the event function of `events`, if the guest exports it.
    pub fn call_event(&mut self, events: EventInterface, params: &[Val]) -> anyhow::Result<()> {
        match self.core.event_funcs[events as usize] {
            Some(func) => self.shared.enter(&mut self.core, func, params, 0).map(drop),
            None => Ok(()),
        }
    }

    /// Runs a WASI command's `run`; `Ok(code)` is its exit status.
    pub fn run_command(&mut self) -> anyhow::Result<i32> {
        let core = &mut self.core;
        let command = Command::new(&mut core.store, &core.instance)
            .map_err(anyhow::Error::from)
            .context("not a WASI command")?;
        self.shared.start_call(&mut core.store);
        let outcome = command.wasi_cli_run().call_run(&mut core.store);
        self.shared.end_call(core);
        match outcome {
            Ok(Ok(())) => Ok(0),
            Ok(Err(())) => Ok(1),
            Err(e) => match e.downcast_ref::<wasmtime_wasi::I32Exit>() {
                Some(exit) => Ok(exit.0),
                None => Err(anyhow::Error::from(e)),
            },
        }
    }

    /// The guest's jail.
    pub fn jail(&self) -> &Jail {
        &self.shared.setup.jail
    }

    /// Moves the calls the guest sent since the last time into `out`, which the caller
    /// hands over empty (its room is kept for the guest's next calls), after appending to
    /// `local` the calls to this node that left before the guest returned.
    pub fn take_sent(&mut self, out: &mut Outbox, local: &mut Outbox) {
        hand_over_sent(self.core.store.data_mut(), out, local);
    }

    /// Runs `f` on the guest's store data (timers, watches).
    pub fn with_state<R>(&mut self, f: impl FnOnce(&mut GuestState) -> R) -> R {
        f(self.core.store.data_mut())
    }

    /// Stops watching the pollables that are ready now and returns their tokens.
    pub fn take_ready(&mut self) -> anyhow::Result<Vec<u64>> {
        let state = self.core.store.data_mut();
        let mut ready = Vec::new();
        let watched: Vec<(u64, u32)> = state.watches.iter().map(|(t, r)| (*t, r.rep())).collect();
        for (token, rep) in watched {
            if host_api::is_ready(state, rep).map_err(anyhow::Error::from)? {
                if let Some(pollable) = state.watches.remove(&token) {
                    host_api::drop_pollable(state, pollable).map_err(anyhow::Error::from)?;
                }
                ready.push(token);
            }
        }
        Ok(ready)
    }

    /// Replaces a trapped instance with a fresh one (state, timers and watches are lost).
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.core = self.shared.instantiate()?;
        Ok(())
    }
}

impl GuestShared {
    /// A fresh instance, its functions looked up from the indices found at load.
    fn instantiate(&self) -> anyhow::Result<GuestCore> {
        let (mut store, instance) =
            instantiate(self.pre.engine(), &self.pre, &self.setup, &self.outputs)?;
        let mut lookup = |index: &ComponentExportIndex| {
            instance
                .get_func(&mut store, index)
                .ok_or_else(|| anyhow!("an export is missing from the instance"))
        };
        let funcs: Vec<Func> = self
            .exports
            .iter()
            .map(|e| lookup(&e.index))
            .collect::<anyhow::Result<_>>()?;
        let mut event_funcs = [None; EventInterface::COUNT];
        for (func, index) in event_funcs.iter_mut().zip(&self.event_indices) {
            *func = index.as_ref().map(&mut lookup).transpose()?;
        }
        let typed = self
            .exports
            .iter()
            .zip(&funcs)
            .map(|(e, &func)| {
                TypedExport::of(func, &store, &e.function.params, &e.function.results)
            })
            .collect();
        let mode = match event_funcs[EventInterface::Run as usize] {
            Some(_) => RunMode::InOneEntry,
            None => RunMode::OneByOne,
        };
        Ok(GuestCore {
            store,
            instance,
            runs: vec![mode; funcs.len()],
            funcs,
            event_funcs,
            broken: false,
            params: Vec::new(),
            typed,
        })
    }

    fn call_cbor(
        &self,
        core: &mut GuestCore,
        slot: usize,
        args: &[u8],
    ) -> Result<Option<Val>, CallError> {
        if core.broken {
            // It trapped in a call from another guest, earlier in this run of calls: the
            // node restarts it once the run is over.
            return Err(CallError::Broken);
        }
        if let Some(typed) = core.typed[slot] {
            let outcome = typed.call(&mut core.store, args, |store| self.start_call(store));
            if outcome.is_some() {
                self.end_call(core);
            }
            match outcome {
                Some(Ok(())) => return Ok(None),
                Some(Err(e)) => {
                    core.broken = true;
                    return Err(CallError::Trapped(anyhow::Error::from(e)));
                }
                None => {} // the bytes do not fit: the dynamic path says why
            }
        }
        let mut params = std::mem::take(&mut core.params);
        let outcome =
            value::args_from_cbor_bytes(args, &self.exports[slot].function.params, &mut params)
                .map_err(CallError::BadArguments)
                .and_then(|()| self.call_with(core, slot, &params));
        params.clear();
        core.params = params;
        outcome
    }

    fn call_with(
        &self,
        core: &mut GuestCore,
        slot: usize,
        params: &[Val],
    ) -> Result<Option<Val>, CallError> {
        let func = core.funcs[slot];
        let results = self.exports[slot].function.results.len();
        self.enter(core, func, params, results)
            .map(|mut results| results.pop())
            .map_err(CallError::Trapped)
    }

    fn enter(
        &self,
        core: &mut GuestCore,
        func: Func,
        params: &[Val],
        results: usize,
    ) -> anyhow::Result<Vec<Val>> {
        let mut results = vec![Val::Bool(false); results];
        self.start_call(&mut core.store);
        let outcome = func
            .call(&mut core.store, params, &mut results)
            .map_err(anyhow::Error::from);
        self.end_call(core);
        if outcome.is_err() {
            core.broken = true;
        }
        outcome.map(|()| results)
    }

    fn start_call(&self, store: &mut Store<GuestState>) {
        self.start_calls(store, 1);
    }

    /// Readies `store` for an entry that runs `calls` calls: the jail's time and fuel
    /// limits, per call, times `calls`.
    fn start_calls(&self, store: &mut Store<GuestState>, calls: u32) {
        store.data_mut().warden.start_calls(calls);
        store.set_epoch_deadline(1);
        if self.setup.counts_fuel {
            let fuel = self.setup.jail.limits.fuel.unwrap_or(u64::MAX);
            // Cannot fail: the engine counts fuel.
            let _ = store.set_fuel(fuel.saturating_mul(calls.into()));
        }
    }

    /// Runs every call of `run` on export `slot` in one entry, if the guest takes that
    /// function's runs so and every call fits its parameters: `None` when it does not (or
    /// declines now: it is not asked again), for the calls to go one by one.
    fn call_run(
        &self,
        core: &mut GuestCore,
        slot: usize,
        run: &dhost_protocol::wire::CallRun,
    ) -> Option<anyhow::Result<()>> {
        if core.runs[slot] != RunMode::InOneEntry || core.broken {
            return None;
        }
        // Only the typed fast path's signatures go in runs: their check is strict (definite
        // lengths, plain integers and text), which is what the guest's SDK reads.
        if core.typed[slot].is_none() {
            core.runs[slot] = RunMode::OneByOne;
            return None;
        }
        let on_run = core.event_funcs[EventInterface::Run as usize]?;
        let fits = typed::checker(&self.exports[slot].function.params)?;
        if !run.arguments().all(fits) {
            return None; // (one by one, each misfit named)
        }
        let typed = match on_run.typed::<(&str, &[u8]), (bool,)>(&core.store) {
            Ok(typed) => typed,
            Err(e) => {
                tracing::warn!(
                    guest = %self.setup.name,
                    "its run-events.on-run has the wrong type, so it takes calls one by one: {e}"
                );
                core.runs.fill(RunMode::OneByOne);
                return None;
            }
        };
        let function = self.exports[slot].function.id.as_str();
        let calls = run.count().min(MAX_RUN_ALLOWANCE) as u32;
        self.start_calls(&mut core.store, calls);
        let outcome = typed.call(&mut core.store, (function, run.bytes()));
        self.end_call(core);
        match outcome {
            Ok((true,)) => Some(Ok(())),
            Ok((false,)) => {
                core.runs[slot] = RunMode::OneByOne;
                None
            }
            Err(e) => {
                core.broken = true;
                Some(Err(anyhow::Error::from(e)))
            }
        }
    }

    fn end_call(&self, core: &mut GuestCore) {
        core.store.data_mut().warden.end_call();
        for output in &self.outputs {
            if let Err(e) = output.flush_partial() {
                tracing::debug!(guest = %self.setup.name, "cannot write guest output: {e}");
            }
        }
    }
}

/// Swaps the calls a guest sent with `out`, an emptied outbox, if it sent any; appends to
/// `local` the calls to this node sent on before (they came first).
fn hand_over_sent(state: &mut GuestState, out: &mut Outbox, local: &mut Outbox) {
    state.sent_local.move_into(local);
    state.sent.move_into(out);
}

/// A call's outcome as its caller receives it: the result as CBOR (`null` without
/// results), or the failure, with the error of the trap when the guest trapped (for the
/// node to restart it).
pub fn into_reply(
    guest: &str,
    outcome: Result<Option<Val>, CallError>,
) -> Result<ciborium::Value, (CallFailure, Option<anyhow::Error>)> {
    match outcome {
        Ok(result) => result
            .as_ref()
            .map_or(Ok(ciborium::Value::Null), value::to_cbor)
            .map_err(|e| {
                let why = format!("the result of guest {guest} cannot be sent: {e}");
                (CallFailure::new(FailureKind::BadArguments, why), None)
            }),
        Err(CallError::BadArguments(e)) => {
            let why = format!("its arguments do not fit guest {guest}: {e}");
            Err((CallFailure::new(FailureKind::BadArguments, why), None))
        }
        Err(CallError::Trapped(e)) => {
            let why = format!("guest {guest} trapped: {}", e.root_cause());
            Err((CallFailure::new(FailureKind::Trapped, why), Some(e)))
        }
        Err(CallError::Broken) => {
            let why = format!("guest {guest} is restarting after a trap");
            Err((CallFailure::new(FailureKind::Unavailable, why), None))
        }
    }
}

fn export_index(
    component: &Component,
    parent: Option<&ComponentExportIndex>,
    name: &str,
) -> anyhow::Result<ComponentExportIndex> {
    component
        .get_export_index(parent, name)
        .ok_or_else(|| anyhow!("the component does not export `{name}`"))
}

/// Builds the WASI context the jail allows and a store that enforces its limits, and
/// instantiates the guest in it.
fn instantiate(
    engine: &Engine,
    pre: &InstancePre<GuestState>,
    setup: &Arc<GuestSetup>,
    outputs: &[GuestOutput; 2],
) -> anyhow::Result<(Store<GuestState>, Instance)> {
    let jail = &setup.jail;
    let mut wasi = WasiCtxBuilder::new();
    let mut args = vec![setup.name.clone()];
    args.extend(jail.args.iter().cloned());
    wasi.args(&args);
    if jail.stdout {
        wasi.stdout(outputs[0].clone());
    }
    if jail.stderr {
        wasi.stderr(outputs[1].clone());
    }
    if setup.inherit_stdin {
        wasi.inherit_stdin();
    }
    for name in &jail.env {
        if let Ok(value) = std::env::var(name) {
            wasi.env(name, value);
        }
    }
    for dir in &jail.dirs {
        let perms = if dir.writable {
            FsPerms::ReadWrite
        } else {
            FsPerms::ReadOnly
        };
        wasi.preopened_dir(&dir.host, &dir.guest, perms)
            .map_err(anyhow::Error::from)
            .with_context(|| {
                format!(
                    "cannot open the directory {} its jail grants",
                    dir.host.display()
                )
            })?;
    }
    // Every address goes through the allow-list (empty: none), so that what the jail
    // refuses is logged.
    wasi.allow_tcp(true).allow_udp(true);
    let (guest, patterns) = (setup.name.clone(), Arc::new(jail.network.clone()));
    wasi.socket_addr_check(move |addr, usage| {
        // Connecting binds the socket to an ephemeral local port first: that is allowed to a
        // guest that may reach anything at all; where it connects to is checked next.
        let ephemeral = addr.ip().is_unspecified() && addr.port() == 0;
        let allowed = (ephemeral && !patterns.is_empty()) || patterns.iter().any(|p| p.matches(&addr));
        if !allowed {
            tracing::warn!("guest {guest}: refused network access ({usage:?} {addr}): not in its jail's allow-list");
        }
        Box::pin(async move { allowed })
    });
    // Which names it may look up is checked by `name_lookup`, linked over wasmtime-wasi's.
    wasi.allow_ip_name_lookup(jail.name_lookup != NameLookup::None);
    if !jail.wall_clock {
        wasi.wall_clock(FrozenWallClock);
    }
    let warden = Warden::new(jail.limits.clone(), setup.stopping.clone());
    let state = GuestState::new(wasi.build(), setup.clone(), outputs.clone(), warden);
    let mut store = Store::new(engine, state);
    if setup.counts_fuel {
        // Instantiation (start functions) burns fuel too; then every call gets its own.
        store
            .set_fuel(jail.limits.fuel.unwrap_or(u64::MAX))
            .map_err(anyhow::Error::from)?;
    }
    store.limiter(|state| &mut state.warden);
    store.epoch_deadline_callback(|mut store| store.data_mut().warden.on_tick());
    store.set_epoch_deadline(1);
    // Instantiating runs the guest's start functions: under the same time limit as a call.
    store.data_mut().warden.start_call();
    let instance = pre.instantiate(&mut store);
    store.data_mut().warden.end_call();
    let instance = instance.map_err(anyhow::Error::from).map_err(|e| {
        // (wasmtime says "instance count too high at 33": say which limit of the jail.)
        let limits = &jail.limits;
        if e.root_cause().to_string().contains("count too high") {
            e.context(format!(
                "the jail allows at most {} core instances, {} memories and {} tables \
                 (max-instances, max-memories, max-tables)",
                limits.max_instances, limits.max_memories, limits.max_tables
            ))
        } else {
            e
        }
    });
    let instance = instance.context("cannot instantiate the component")?;
    Ok((store, instance))
}

/// The wall clock of a guest whose jail denies it: always 1970-01-01.
struct FrozenWallClock;

impl wasmtime_wasi::HostWallClock for FrozenWallClock {
    fn resolution(&self) -> std::time::Duration {
        std::time::Duration::from_secs(1)
    }

    fn now(&self) -> std::time::Duration {
        std::time::Duration::ZERO
    }
}

/// What a guest needs to know of the node it runs on.
#[derive(Debug, Clone, Copy)]
pub struct NodeFacts<'a> {
    /// The node's name.
    pub name: &'a str,
    /// The largest encoded call that fits in one datagram.
    pub max_call: usize,
    /// Where the guests' calls with replies go.
    pub calls: &'a Arc<super::calls::Calls>,
    /// Where the calls they send go.
    pub outgoing: &'a Arc<dyn super::network::CallSender>,
}

/// A linker with everything `world` imports: WASI, `dstc:node`, and a proxy for every
/// function of every application interface. Fails on an import the node cannot satisfy.
fn link(
    engine: &Engine,
    world: &World,
    sends: &HashMap<String, SendTarget>,
) -> anyhow::Result<Linker<GuestState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(anyhow::Error::from)?;
    super::name_lookup::add_to_linker(&mut linker).map_err(anyhow::Error::from)?;
    host_api::add_to_linker(&mut linker).map_err(anyhow::Error::from)?;
    for import in &world.imports {
        match &import.role {
            Role::Wasi | Role::NodeImport => {}
            Role::Unsupported(why) => bail!("cannot satisfy import `{}`: {why}", import.name),
            Role::Application => {
                let mut instance = linker.instance(&import.name).map_err(anyhow::Error::from)?;
                for function in &import.functions {
                    if let Some(param) = function.unsendable_param() {
                        bail!(
                            "cannot satisfy import `{}`: parameter `{param}` cannot travel \
                             over the network",
                            function.id
                        );
                    }
                    if !function.results.is_empty() {
                        if !function.results.iter().all(world::sendable) {
                            bail!(
                                "cannot satisfy import `{}`: its result cannot travel over \
                                 the network",
                                function.id
                            );
                        }
                        let function = Arc::new(function.clone());
                        instance
                            .func_new(
                                &function.name.clone(),
                                move |mut store, _ty, params, results| {
                                    super::reply::call_with_reply(
                                        store.data_mut(),
                                        &function,
                                        params,
                                        results,
                                    )
                                    .map_err(wasmtime::Error::from_anyhow)
                                },
                            )
                            .map_err(anyhow::Error::from)?;
                        continue;
                    }
                    let id = match sends.get(&function.id) {
                        Some(target) => target.id.clone(),
                        None => function.id.as_str().into(),
                    };
                    let typed_id = id.clone();
                    let fast = typed::define_sender(
                        &mut instance,
                        &function.name,
                        &function.params,
                        move |state: &mut GuestState, encode| {
                            super::send::send(state, &typed_id, |out| {
                                encode(out);
                                Ok(())
                            })
                        },
                    )?;
                    if fast {
                        continue;
                    }
                    instance
                        .func_new(&function.name, move |mut store, _ty, params, _results| {
                            super::send::send(store.data_mut(), &id, |out| {
                                value::encode_args(params, out)
                            })
                            .map_err(wasmtime::Error::from_anyhow)
                        })
                        .map_err(anyhow::Error::from)?;
                }
            }
            Role::Events(_) | Role::CommandRun => {
                bail!(
                    "cannot satisfy import `{}`: it is an export-only interface",
                    import.name
                )
            }
        }
    }
    Ok(linker)
}
