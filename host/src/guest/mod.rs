//! Guests: what a node hosts. WebAssembly components ([`wasm`]), jailed; and native DSTC
//! plugins ([`native`]), which are not.

pub mod calls;
pub mod host_api;
pub mod name_lookup;
pub mod native;
pub mod outbox;
pub mod output;
pub mod state;
pub mod timers;
pub mod typed;
pub mod wasm;
pub mod world;
