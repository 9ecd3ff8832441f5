//! Published modules: the node's side is the node crate's (re-exported here: the store,
//! transfers, the service); the command line's side is [`client`] (`dhost publish`,
//! `unpublish`, `modules`, `inspect --node`).

pub mod client;

pub use dhost_node::modules::*;
