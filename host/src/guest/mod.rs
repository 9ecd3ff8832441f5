//! Guests: what a node hosts. WebAssembly components ([`wasm`]), jailed, each run by a
//! thread of its own ([`worker`]); and native DSTC plugins ([`native`]), which are not
//! jailed and run on the node's event loop.

pub mod calls;
pub mod host_api;
pub mod name_lookup;
pub mod native;
pub mod outbox;
pub mod output;
pub mod reply;
pub mod send;
pub mod state;
pub mod timers;
pub mod typed;
pub mod wasm;
pub mod wit_text;
pub mod worker;
pub mod world;
