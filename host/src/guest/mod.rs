//! Guests: what a node hosts. Today WebAssembly components ([`wasm`]); native DSTC plugins
//! join them later.

pub mod host_api;
pub mod output;
pub mod state;
pub mod timers;
pub mod wasm;
pub mod world;
