//! dhost-node: a running node. Its threads, its sockets to the group, its TCP port and
//! connections to peers, its metrics and its module service, over the I/O-free decisions
//! of its core ([`event_loop::core`]) and of the protocol crate (`dhost-protocol`), with its
//! guests run by the runtime crate (`dhost-runtime`). Nothing here reads a command line:
//! [`run::run`] takes the settings the `dhost` binary made of one.
//!
//! - [`run`]: a node's start, its threads, signals, and its exit status;
//! - [`event_loop`]: the event loop: the core, its driver, the routing table, the workers;
//! - [`transport`]: what the node's datagrams travel over: the multicast group ([`net`]) or
//!   a Zenoh network ([`zenoh_transport`]);
//! - [`net`]: the multicast sockets, and sending a sealed datagram;
//! - [`zenoh_transport`]: the node over Zenoh: its configuration, the group's key
//!   expressions, the link;
//! - [`auth`]: the protocol's keys and gate, and counting what the gate refused;
//! - [`stream`]: reliable multicast: the sending side shared by the node's threads, over
//!   the protocol's stream state machines;
//! - [`rpc`]: calls to one node over TCP: frames, connection pools, handshakes;
//! - [`tcp_port`]: the node's TCP port, answering calls and its built-in services;
//! - [`modules`]: published modules, the node's side: the store, transfers, fetching,
//!   loading, the service;
//! - [`metrics`]: `--metrics`: the counters for Prometheus, over HTTP;
//! - [`describe`]: `dhost:node/describe#wit`, the WIT of what a node runs, for clients;
//! - [`say`]: the line of text a node prints when an operator says it (`say NODE TEXT`);
//! - [`router`]: `dhost router`, Zenoh's own router run in this process.

pub mod auth;
pub(crate) mod describe;
pub(crate) mod event_loop;
pub(crate) mod metrics;
pub mod modules;
pub mod net;
pub mod router;
pub mod rpc;
pub mod run;
pub mod say;
pub mod stream;
pub mod tcp_port;
pub mod transport;
pub mod zenoh_transport;
