//! The Rust crate dhost guests depend on: bindings to the node's `dstc:node` host
//! interfaces (`wit/node/node.wit`) and a few helpers that keep a guest short.
//!
//! A guest generates the bindings for its own world with `wit_bindgen::generate!` (its
//! application interfaces and the `dstc:node` event interfaces it exports) and uses this
//! crate for what it asks of the node:
//!
//! ```ignore
//! dhost_guest::info!("joined as {}", dhost_guest::node_name());
//! dhost_guest::set_timer(1, std::time::Duration::from_secs(5));
//! ```

use std::time::Duration;

pub mod runs;

// (Generated from the WIT, whose doc comments become the items' docs; not every item of it
// has one.)
#[allow(missing_docs)]
mod bindings {
    wit_bindgen::generate!({
        world: "dstc:node/imports",
        path: "../wit/node",
        generate_all,
    });
}

pub use bindings::dstc::node::{calls, group, host, mailboxes, readiness, timers};
pub use bindings::wasi::io;
pub use host::Level;

/// The name of the node this guest runs on.
pub fn node_name() -> String {
    host::node_name()
}

/// Writes one line to the node's log at `level`, tagged with the guest's name.
pub fn log(level: Level, message: &str) {
    host::log(level, message);
}

/// Arms timer `token`: the guest's `timer-events.on-timer(token)` runs once, `after` from now.
pub fn set_timer(token: u64, after: Duration) {
    timers::set_timer(token, u64::try_from(after.as_millis()).unwrap_or(u64::MAX));
}

/// Disarms timer `token`; returns whether it was armed.
pub fn cancel_timer(token: u64) -> bool {
    timers::cancel_timer(token)
}

/// The peers this node knows, sorted by name, each with the functions it serves that this
/// guest's jail lets it call, and the connections this node holds to it.
pub fn peers() -> Vec<group::Peer> {
    group::peers()
}

/// The names of the nodes that serve `function` (this node's first, when it does); empty
/// when none does, or when this guest's jail does not let it send `function`. A sender
/// that starts before its receivers can wait for this to be non-empty before it sends,
/// as DSTC's `dstc_remote_function_available`.
pub fn servers(function: &str) -> Vec<String> {
    group::servers(function)
}

/// Sends this guest's following calls with replies to the node named `node`; `None` goes
/// back to the default: this node if one of its guests serves the function, otherwise a
/// peer that announces it.
pub fn set_target(node: Option<&str>) {
    calls::set_target(node);
}

/// The case name of a call error, as in the WIT (`no-server`, `timeout`, ...), and its
/// message. A guest whose own bindings use `call-error` shares this type by generating
/// them with `with: { "dstc:node/calls": dhost_guest::calls }`.
pub fn describe(error: &calls::CallError) -> (&'static str, &str) {
    use calls::CallError as E;
    match error {
        E::NoServer(m) => ("no-server", m),
        E::Timeout(m) => ("timeout", m),
        E::PeerGone(m) => ("peer-gone", m),
        E::Trapped(m) => ("trapped", m),
        E::BadArguments(m) => ("bad-arguments", m),
        E::Refused(m) => ("refused", m),
        E::Unavailable(m) => ("unavailable", m),
    }
}

/// Logs at debug level with `format!` arguments.
#[macro_export]
macro_rules! debug {
    ($($arg:tt)*) => { $crate::log($crate::Level::Debug, &format!($($arg)*)) };
}

/// Logs at info level with `format!` arguments.
#[macro_export]
macro_rules! info {
    ($($arg:tt)*) => { $crate::log($crate::Level::Info, &format!($($arg)*)) };
}

/// Logs at warn level with `format!` arguments.
#[macro_export]
macro_rules! warn {
    ($($arg:tt)*) => { $crate::log($crate::Level::Warn, &format!($($arg)*)) };
}

/// Logs at error level with `format!` arguments.
#[macro_export]
macro_rules! error {
    ($($arg:tt)*) => { $crate::log($crate::Level::Error, &format!($($arg)*)) };
}
