//! A plain Zenoh client session for the tests of routers and of nodes on Zenoh: the
//! zenoh crate alone, with nothing of dhost's and no group key (what anyone who reaches a
//! router has). Included by `tests/router.rs` and `tests/zenoh.rs` only, so that the other
//! test binaries do not link the zenoh crate.

use std::time::{Duration, Instant};
use zenoh::Wait as _;

/// A Zenoh client session of the router at `port` on loopback (it connects to it and to
/// nothing else), tried again while the router starts, for at most `patience`.
pub(crate) fn zenoh_client(port: u16, patience: Duration) -> zenoh::Session {
    let mut config = zenoh::Config::default();
    for (key, value) in [
        ("mode", "\"client\"".to_string()),
        ("connect/endpoints", format!("[\"tcp/127.0.0.1:{port}\"]")),
        ("scouting/multicast/enabled", "false".to_string()),
    ] {
        config
            .insert_json5(key, &value)
            .expect("a client configuration");
    }
    let start = Instant::now();
    loop {
        match zenoh::open(config.clone()).wait() {
            Ok(session) => return session,
            Err(_) if start.elapsed() < patience => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => panic!("no Zenoh session with the router at {port}: {e}"),
        }
    }
}
