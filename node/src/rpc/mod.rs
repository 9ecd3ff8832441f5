//! Calls to one node over TCP, with a reply and a timeout (Erlang's `rpc:call` and
//! `rpc:cast`): the frames ([`frame`]), the opening of a connection and its keyed
//! handshake ([`handshake`]), the byte budgets of what callers queue on a node
//! ([`budget`]) and the pool of connections a node or a client keeps to its peers
//! ([`pool`]). The node's own port, which answers them with the services above this
//! module (describe, modules, mailboxes), is [`crate::tcp_port`].

pub mod handshake;
pub mod pool;

pub use dhost_protocol::rpc::{budget, frame};
pub use handshake::ConnectionKeys;
pub use pool::{Pool, PoolHandle};
