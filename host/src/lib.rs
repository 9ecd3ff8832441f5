//! dhost: a node that hosts sandboxed WebAssembly functions and lets every node on a
//! network call them ("call once, execute many", after DSTC).
//!
//! The binary is a thin shell over this library, which holds the command line and the
//! clients, and stands on four crates of the workspace, each re-exported here under the
//! names its modules had when they were this crate's:
//!
//! - `dhost-node` (`node/`), a running node: [`run`], [`net`], [`auth`], [`stream`],
//!   [`rpc`], [`tcp_port`], [`modules`] (the node's side), [`say`], and `dhost router`
//!   ([`dhost_node::router`]);
//! - `dhost-runtime` (`runtime/`), how guests run: [`guest`] (WebAssembly components and
//!   native plugins; what they need of the network is the traits of [`guest::network`],
//!   which [`stream`] and [`rpc`] implement), [`jail`], [`value`], [`cache`], [`stats`];
//! - `dhost-mailbox` (`mailbox/`): [`mailbox`], the mailboxes, their text protocol, the
//!   mailbox functions a node serves, `dipc` and `dipcrm`;
//! - `dhost-protocol` (`protocol/`), the group's protocol without I/O: [`wire`], [`cbor`],
//!   [`frame_kind`], [`membership`], [`outcome`], [`clock`], [`printable`],
//!   [`user_files`] (and the primitives under [`auth`], [`stream`], [`rpc`], [`modules`]).
//!
//! This crate's own modules, the only ones that know of a command line:
//!
//! - [`cli`]: the command line (clap): its definitions only;
//! - [`settings`]: what its options make: a node's settings (`RunArgs::settings`), keys
//!   read from their files, mailboxes opened;
//! - [`commands`]: what each command does, handed to the module that owns it;
//! - [`config`]: `dhost run --config FILE`, a node's options in a TOML file;
//! - [`manual`]: what the command line says of itself: shell completions, man pages;
//! - [`client`]: short-lived clients of the group (`dhost peers`, `dhost call`, `dhost cast`);
//! - [`modules::client`]: `dhost publish`, `unpublish`, `modules`, `inspect --node`;
//! - [`console`]: `dhost console`, the operator's shell on the group;
//! - [`inspect`]: `dhost inspect`.

pub mod cli;
pub mod client;
pub mod commands;
pub mod config;
pub(crate) mod console;
pub(crate) mod inspect;
pub(crate) mod manual;
pub mod modules;
pub mod settings;

pub use dhost_mailbox as mailbox;
pub use dhost_node::{auth, net, rpc, run, say, stream, tcp_port, transport, zenoh_transport};
pub use dhost_protocol::{
    cbor, clock, frame_kind, membership, outcome, printable, user_files, wire,
};
pub use dhost_runtime::{cache, guest, jail, stats, value};
