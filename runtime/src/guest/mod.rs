//! Guests: what a node hosts. WebAssembly components ([`wasm`]), jailed, each run by a
//! thread of its own ([`worker`]); and native DSTC plugins ([`native`]), which are not
//! jailed and run on the node's event loop.

pub mod calls;
pub(crate) mod host_api;
pub(crate) mod name_lookup;
pub mod native;
pub mod network;
pub mod outbox;
pub(crate) mod output;
pub(crate) mod reply;
pub(crate) mod send;
pub(crate) mod state;
pub(crate) mod supervision;
pub(crate) mod timers;
pub mod typed;
pub mod wasm;
pub mod wit_text;
pub mod worker;
pub mod world;
