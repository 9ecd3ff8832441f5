//! The sending side of the DSTC stress test: calls `set-value` with 0, 1, 2, ... up to
//! `STRESS_COUNT` (10 million unless the environment says otherwise), then `finish`.
//!
//! It keeps at most `STRESS_WINDOW` values (131072 by default, 32768 at least, since
//! receivers report every 16384 values) ahead of what the receivers reported with
//! `progress`: a sender that ran ahead would overrun the receivers' buffers and lose calls. Calls made inside one call into the guest leave when it returns, batched
//! into full datagrams by the node. (The jail must pass the variables: `--allow-env`.)

wit_bindgen::generate!({
    world: "dhost:stress/stress-sender",
    path: ["../../wit/node", "../../wit/stress"],
});

use dhost::stress::sink::{finish, set_value};
use exports::dhost::stress::flow;
use exports::dstc::node::lifecycle;
use std::cell::Cell;

/// The smallest window: twice the receivers' reporting interval, so that a report always
/// comes before the sender runs dry.
const MIN_WINDOW: i32 = 2 * 16_384;

thread_local! {
    /// How many values to send.
    static COUNT: Cell<i32> = const { Cell::new(10_000_000) };
    /// How far ahead of the receivers the sender may be.
    static WINDOW: Cell<i32> = const { Cell::new(131_072) };
    /// The next value to send.
    static SENT: Cell<i32> = const { Cell::new(0) };
}

/// A positive number from the environment variable `name`, if it holds one.
fn setting(name: &str) -> Option<i32> {
    let value = std::env::var(name).ok()?;
    match value.parse() {
        Ok(n) if n > 0 => Some(n),
        _ => {
            eprintln!("stress-sender: ignoring {name}={value}: not a positive number");
            None
        }
    }
}

/// Sends the values up to `limit` (at most the count), and `finish` after the last.
fn send_up_to(limit: i32) {
    let count = COUNT.get();
    let from = SENT.get();
    if from >= count {
        return;
    }
    let to = limit.clamp(from, count);
    for v in from..to {
        set_value(v);
    }
    SENT.set(to);
    if to == count {
        finish(count);
    }
}

struct Sender;

impl lifecycle::Guest for Sender {
    fn init() {
        if let Some(n) = setting("STRESS_COUNT") {
            COUNT.set(n);
        }
        if let Some(n) = setting("STRESS_WINDOW") {
            WINDOW.set(n.max(MIN_WINDOW));
        }
        eprintln!(
            "stress-sender: sending {} values, at most {} ahead of the receivers",
            COUNT.get(),
            WINDOW.get()
        );
        send_up_to(WINDOW.get());
    }
}

impl flow::Guest for Sender {
    fn progress(next: i32) {
        send_up_to(next.saturating_add(WINDOW.get()));
    }
}

export!(Sender);
