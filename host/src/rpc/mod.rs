//! Calls to one node over TCP, with a reply and a timeout (Erlang's `rpc:call` and
//! `rpc:cast`): the frames ([`frame`]), the node's TCP port ([`server`]) and the pool of
//! connections a node or a client keeps to its peers ([`pool`]).

pub mod frame;
pub mod pool;
pub mod server;

pub use frame::{CallFailure, FailureKind};
pub use pool::{Outcome, Pool, PoolHandle};
