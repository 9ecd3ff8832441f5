//! Published modules: guests shipped to the nodes over the network (`dhost publish`),
//! verified by their SHA-256 digest, kept in a content-addressed store on disk, run under
//! the jail for published modules, announced, and fetched by nodes that lack them.
//!
//! - [`digest`], [`publication`], [`catalog`]: the protocol's side (`dhost_protocol::modules`):
//!   a module's digest, which module runs under a name, and what a node knows of each name;
//! - [`store`]: the content-addressed store on disk (shared by nodes of one machine);
//! - [`protocol`]: the requests on a node's TCP port that publish, fetch and list them;
//! - [`uploads`]: the transfers a node is receiving, bounded and checked whole;
//! - [`loader`]: checked bytes to a guest in its jail, handed to the event loop;
//! - [`fetch`]: modules fetched from a peer, and those read for peers' fetches;
//! - [`service`]: the node's side: the requests, loading, catching up, restarts;
//!
//! The command line's side (`dhost publish`, `unpublish`, `modules`, `inspect --node`) is
//! the `dhost` crate's `modules::client`.
//!
//! A *publication* says which module runs under a name: its digest (none once the name is
//! unpublished), its size, who published it and when. The newest publication of a name
//! wins everywhere: a node that hears of one newer than its own fetches the module from
//! the peer that announced it. docs/modules.md is the reference.

pub(crate) mod fetch;
pub(crate) mod loader;
pub mod protocol;
pub mod service;
pub mod store;
pub(crate) mod uploads;

pub use dhost_protocol::modules::{
    Catalog, Digest, MAX_MODULES, MAX_NAME, Publication, catalog, check_name, digest, publication,
};
pub use service::{ModuleService, ServiceConfig};
pub use store::ModuleStore;

/// The default largest module a node accepts (`--max-module-size`).
pub const DEFAULT_MAX_SIZE: u64 = 64 << 20;
