//! dhost: a node that hosts sandboxed WebAssembly functions and lets every node on a
//! network call them ("call once, execute many", after DSTC).
//!
//! The binary is a thin shell over this library:
//!
//! - [`cli`]: the command line (clap): its definitions only;
//! - [`commands`]: what each command does, handed to the module that owns it;
//! - [`manual`]: what the command line says of itself: shell completions, man pages;
//! - [`config`]: `dhost run --config FILE`, a node's options in a TOML file;
//! - [`run`]: `dhost run`: loading guests, the threads of a node, signals, exit status;
//! - [`node`]: the event loop, routing calls to the guests that export them;
//! - [`membership`]: announcements, the peers table, unique names;
//! - [`modules`]: published modules: the store, transfers, syncing, `dhost publish`;
//! - [`wire`]: datagrams and frames in CBOR, and batching;
//! - [`frame_kind`]: the kind numbers of every frame, datagrams' and the TCP port's;
//! - [`auth`]: group keys, sealing and checking datagrams, replay windows;
//! - [`stream`]: reliable multicast: each node's stream of datagrams, repaired and paced;
//! - [`stats`]: the counters in a node's closing summary, and the log of dropped input;
//! - [`metrics`]: `dhost run --metrics ADDR`: the counters for Prometheus, over HTTP;
//! - [`value`]: WIT values to and from CBOR;
//! - [`net`]: the multicast sockets;
//! - [`outcome`]: the outcome of a call with a reply, and the kinds of failure;
//! - [`rpc`]: calls to one node over TCP: frames, the node's port, connection pools;
//! - [`guest`]: WebAssembly guests (loading, linking, the `dstc:node` host interfaces);
//! - [`jail`]: the limits a guest runs under, and their enforcement;
//! - [`mailbox`]: mailboxes, their text protocol, `dipc` and `dipcrm`;
//! - [`cache`]: the on-disk cache of compiled components;
//! - [`user_files`]: files of the user's own: who may own and write what dhost trusts;
//! - [`inspect`]: `dhost inspect`;
//! - [`describe`]: `dhost:node/describe#wit`, the WIT of what a node runs, for clients;
//! - [`client`]: short-lived clients of the group (`dhost peers`, `dhost call`, `dhost cast`);
//! - [`console`]: `dhost console`, the operator's shell on the group;
//! - [`say`]: the line of text a node prints when an operator says it (`say NODE TEXT`);
//! - [`printable`]: text from the network or a guest made safe to print (from the mailbox
//!   crate, which sets up the log).

pub mod auth;
pub(crate) mod cache;
pub mod cli;
pub mod client;
pub mod commands;
pub mod config;
pub(crate) mod console;
pub(crate) mod describe;
pub mod guest;
pub(crate) mod inspect;
pub mod jail;
pub mod mailbox;
pub(crate) mod manual;
pub(crate) mod metrics;
pub mod modules;
pub mod net;
pub(crate) mod node;
pub mod rpc;
pub(crate) mod run;
pub(crate) mod say;
pub(crate) mod stats;
pub mod stream;
pub mod value;

pub use dhost_protocol::{
    cbor, clock, frame_kind, membership, outcome, printable, user_files, wire,
};
