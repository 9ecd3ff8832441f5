//! The body of the `module_loading` fuzz target, shared with `tests/fuzz_corpora.rs`: bytes
//! offered as a published module, checked and loaded as a node loads one: its header
//! (`dhost::guest::wasm::check_component`), compiled by wasmtime, its imports and exports
//! sorted (`dhost::guest::world::World::of`), then instantiated, with none of its imports
//! provided (an error, never a panic), in a store whose limits are a jail's
//! (`dhost::jail::Warden`): whatever the bytes, the store never holds more memory than the
//! jail allows, and a start function runs out of fuel rather than loop.

use dhost::guest::wasm::check_component;
use dhost::guest::world::World;
use dhost::jail::{Limits, Warden};
use std::sync::OnceLock;
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, Store};

/// The memory the jail of the fuzzed modules allows: all memories and tables together.
const MAX_MEMORY: u64 = 16 << 20;

/// The fuel a fuzzed module's instantiation may burn.
const FUEL: u64 = 1_000_000;

fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let mut config = Config::new();
        config.wasm_component_model(true).consume_fuel(true);
        Engine::new(&config).expect("a wasmtime engine")
    })
}

/// Runs one input; panics if anything panics, or the store holds more than the jail.
pub(crate) fn run(data: &[u8]) {
    if check_component(data).is_err() {
        return;
    }
    let engine = engine();
    let Ok(component) = Component::new(engine, data) else {
        return;
    };
    let world = World::of(&component, engine);
    let _ = world.is_command();
    let limits = Limits {
        max_memory: MAX_MEMORY,
        ..Limits::default_for(false)
    };
    let mut store = Store::new(engine, Warden::new(limits, Default::default()));
    store.limiter(|warden| warden);
    store.set_fuel(FUEL).expect("the engine counts fuel");
    let linker = Linker::<Warden>::new(engine);
    let _ = linker.instantiate(&mut store, &component);
    let held = store.data().held();
    assert!(held <= MAX_MEMORY, "the store holds {held} bytes");
}
