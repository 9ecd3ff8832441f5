//! dhost: a node that hosts sandboxed WebAssembly functions and lets every node on a
//! network call them ("call once, execute many", after DSTC).
//!
//! The binary is a thin shell over this library, which stands on three crates of the
//! workspace, each re-exported here under the name it had when it was a module:
//!
//! - `dhost-protocol` (`protocol/`), the group's protocol without I/O: [`wire`],
//!   [`cbor`], [`frame_kind`], [`membership`], [`outcome`], [`clock`], [`printable`],
//!   [`user_files`] (and the primitives under [`auth`], [`stream`], [`rpc`], [`modules`]);
//! - `dhost-runtime` (`runtime/`), how guests run: [`guest`] (WebAssembly components and
//!   native plugins; what they need of the network is the traits of [`guest::network`],
//!   which [`stream`] and [`rpc`] implement), [`jail`], [`value`], [`cache`], [`stats`];
//! - `dhost-mailbox` (`mailbox/`): [`mailbox`], the mailboxes, their text protocol, the
//!   mailbox functions a node serves, `dipc` and `dipcrm`.
//!
//! This crate's own modules:
//!
//! - [`cli`]: the command line (clap): its definitions only;
//! - [`commands`]: what each command does, handed to the module that owns it;
//! - [`manual`]: what the command line says of itself: shell completions, man pages;
//! - [`config`]: `dhost run --config FILE`, a node's options in a TOML file;
//! - [`run`]: `dhost run`: loading guests, the threads of a node, signals, exit status;
//! - [`node`]: the event loop, routing calls to the guests that export them;
//! - [`modules`]: published modules: the store, transfers, syncing, `dhost publish`;
//! - [`auth`]: the node's keys and the gate every datagram passes;
//! - [`stream`]: reliable multicast: each node's stream of datagrams, repaired and paced;
//! - [`metrics`]: `dhost run --metrics ADDR`: the counters for Prometheus, over HTTP;
//! - [`net`]: the multicast sockets;
//! - [`rpc`]: calls to one node over TCP: the node's port, connection pools;
//! - [`inspect`]: `dhost inspect`;
//! - [`describe`]: `dhost:node/describe#wit`, the WIT of what a node runs, for clients;
//! - [`client`]: short-lived clients of the group (`dhost peers`, `dhost call`, `dhost cast`);
//! - [`console`]: `dhost console`, the operator's shell on the group;
//! - [`say`]: the line of text a node prints when an operator says it (`say NODE TEXT`).

pub mod auth;
pub mod cli;
pub mod client;
pub mod commands;
pub mod config;
pub(crate) mod console;
pub(crate) mod describe;
pub(crate) mod inspect;
pub(crate) mod manual;
pub(crate) mod metrics;
pub mod modules;
pub mod net;
pub(crate) mod node;
pub mod rpc;
pub(crate) mod run;
pub(crate) mod say;
pub mod stream;

pub use dhost_mailbox as mailbox;
pub use dhost_protocol::{
    cbor, clock, frame_kind, membership, outcome, printable, user_files, wire,
};
pub use dhost_runtime::{cache, guest, jail, stats, value};
