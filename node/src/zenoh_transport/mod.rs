//! The node over Zenoh, when multicast cannot reach its peers (other subnets, sites,
//! clouds): its configuration ([`config`], shared with `dhost router`), the key
//! expressions of a group ([`keys`]), and the [`ZenohLink`] that carries the group's
//! sealed datagrams as Zenoh publications (a second [`crate::transport::Transport`]
//! beside the multicast group). docs/zenoh.md says what travels where.

pub mod bridge;
pub mod config;
pub mod keys;
pub mod link;
pub mod queries;

pub use link::{Heard, LinkInputs, ZenohLink};
/// A Zenoh session's configuration (the `zenoh` crate's).
pub use zenoh::Config as ZenohConfig;
