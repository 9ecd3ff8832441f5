//! Published modules: guests shipped to the nodes over the network (`dhost publish`),
//! verified by their SHA-256 digest, kept in a content-addressed store on disk, run under
//! the jail for published modules, announced, and fetched by nodes that lack them.
//!
//! - [`digest`]: a module's SHA-256 digest, its name in the store and on the wire;
//! - [`store`]: the content-addressed store on disk (shared by nodes of one machine);
//! - [`publication`]: which module runs under a name, and its CBOR form;
//! - [`catalog`]: what a node knows of each published name, and what it should fetch;
//! - [`protocol`]: the requests on a node's TCP port that publish, fetch and list them;
//! - [`uploads`]: the transfers a node is receiving, bounded and checked whole;
//! - [`loader`]: checked bytes to a guest in its jail, handed to the event loop;
//! - [`fetch`]: modules fetched from a peer, and those read for peers' fetches;
//! - [`service`]: the node's side: the requests, loading, catching up, restarts;
//! - [`client`]: the CLI's side: `dhost publish`, `unpublish`, `modules`, `inspect --node`.
//!
//! A *publication* says which module runs under a name: its digest (none once the name is
//! unpublished), its size, who published it and when. The newest publication of a name
//! wins everywhere: a node that hears of one newer than its own fetches the module from
//! the peer that announced it. docs/modules.md is the reference.

pub mod catalog;
pub mod client;
pub mod digest;
pub mod fetch;
pub mod loader;
pub mod protocol;
pub mod publication;
pub mod service;
pub mod store;
pub mod uploads;

pub use catalog::Catalog;
pub use digest::Digest;
pub use publication::Publication;
pub use service::{ModuleService, ServiceConfig};
pub use store::ModuleStore;

/// The longest module name.
pub const MAX_NAME: usize = 64;

/// The most publications a node runs, and announces.
pub const MAX_MODULES: usize = 32;

/// The default largest module a node accepts (`--max-module-size`).
pub const DEFAULT_MAX_SIZE: u64 = 64 << 20;

/// Checks a module name: 1 to [`MAX_NAME`] ASCII letters, digits, `-`, `_` or `.`, not
/// starting with `.` or `-`.
pub fn check_name(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= MAX_NAME
        && !name.starts_with(['.', '-'])
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if valid {
        Ok(())
    } else {
        Err(format!(
            "`{}` is not a module name (1 to {MAX_NAME} ASCII letters, digits, `-`, `_` or `.`, \
             not starting with `.` or `-`)",
            name.escape_debug()
        ))
    }
}

/// Now, in milliseconds since the Unix epoch (0 if the clock is before it).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_names_are_checked() {
        for good in ["kv", "chat-2", "a.b_c", &"x".repeat(MAX_NAME)] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            ".hidden",
            "-x",
            "a/b",
            "a b",
            "é",
            &"x".repeat(MAX_NAME + 1),
        ] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }
}
