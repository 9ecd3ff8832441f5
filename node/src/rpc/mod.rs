//! Calls to one node over TCP, with a reply and a timeout (Erlang's `rpc:call` and
//! `rpc:cast`): the frames ([`frame`]), the opening of a connection and its keyed
//! handshake ([`handshake`]), the node's TCP port ([`server`]), the byte budgets of what
//! its callers queue on it ([`budget`]) and the pool of connections a node or a client
//! keeps to its peers ([`pool`]).

pub mod handshake;
pub mod pool;
pub mod server;

pub use dhost_protocol::rpc::{budget, frame};
pub use handshake::ConnectionKeys;
pub use pool::{Pool, PoolHandle};
