//! Calls to one node over TCP, the protocol's side: the frames of a connection to a node's
//! port ([`frame`]) and the byte budgets of what callers may queue on a node ([`budget`]).
//! The port, the handshake and the connection pools are the node's (`dhost::rpc`).

pub mod budget;
pub mod frame;
