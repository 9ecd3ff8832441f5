//! dhost-runtime: how a node runs its guests.
//!
//! - [`guest`]: WebAssembly components (loading, linking, the `dstc:node` host interfaces,
//!   a worker thread each) and native DSTC plugins; what they need of the node's network
//!   is two small traits ([`guest::network`]);
//! - [`jail`]: the limits a guest runs under, and their enforcement;
//! - [`value`]: WIT values to and from CBOR;
//! - [`cache`]: the on-disk cache of compiled components;
//! - [`stats`]: the counters the node's threads share, and the log of dropped input.
//!
//! The wire format and every other decision without I/O are the protocol crate's
//! (`dhost-protocol`); sockets, threads of the node, its TCP port and its metrics are the
//! node's (`dhost`).

pub mod cache;
pub mod guest;
pub mod jail;
pub mod stats;
pub mod value;
