//! The sending side of the DSTC stress test: calls `set-value` with 0, 1, 2, ... up to
//! `STRESS_COUNT` (10 million unless the environment says otherwise), then `finish`, in
//! one tight loop, as fast as the node lets it: the node's window to the receivers makes a
//! call wait while they are a window behind (so the jail must allow the loop's own CPU
//! time: `--max-time`; the waiting does not count).
//!
//! As DSTC's stress client, it sends nothing until a node serves `set-value`: at `init`,
//! and every 10 ms after on a timer, it asks the node (`dhost_guest::servers`); calls sent
//! before anyone serves them would be lost.
//!
//! With `STRESS_WINDOW` set (for comparing with a node run `--unreliable`), it keeps at
//! most that many values (32768 at least, since receivers report every 16384 values)
//! ahead of what the receivers reported with `progress`: the flow control of the
//! application that the node made unnecessary. (The jail must pass the variables:
//! `--allow-env`.)
//!
//! It sends the values a run at a time (`dstc:node/runs`, through
//! `dhost_guest::runs::Run`): one crossing out of the guest for thousands of calls. With
//! `STRESS_ONE_BY_ONE` set it calls the imported `set-value` once per value instead.

wit_bindgen::generate!({
    world: "dhost:stress/stress-sender",
    path: ["../../wit/node", "../../wit/stress"],
    // The node's `runs` comes from the guest SDK, whose `Run` sends through it, and so do
    // `group` and `timers`, which its helpers call.
    with: {
        "dstc:node/runs": dhost_guest::runs::bindings,
        "dstc:node/group": dhost_guest::group,
        "dstc:node/timers": dhost_guest::timers,
    },
});

use dhost::stress::sink::{finish, set_value};
use dhost_guest::runs::Run;
use exports::dhost::stress::flow;
use exports::dstc::node::{lifecycle, timer_events};
use std::cell::Cell;

/// The smallest window: twice the receivers' reporting interval, so that a report always
/// comes before the sender runs dry.
const MIN_WINDOW: i32 = 2 * 16_384;

thread_local! {
    /// How many values to send.
    static COUNT: Cell<i32> = const { Cell::new(10_000_000) };
    /// How far ahead of the receivers' reports the sender may be (0: no window of its own).
    static WINDOW: Cell<i32> = const { Cell::new(0) };
    /// The next value to send.
    static SENT: Cell<i32> = const { Cell::new(0) };
    /// Whether to call `set-value` once per value rather than a run at a time.
    static ONE_BY_ONE: Cell<bool> = const { Cell::new(false) };
    /// Whether it said it waits for a node that serves `set-value`.
    static WAITING: Cell<bool> = const { Cell::new(false) };
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
    if ONE_BY_ONE.get() {
        for v in from..to {
            set_value(v);
        }
    } else {
        let mut run = Run::new(SET_VALUE);
        for v in from..to {
            run.push((v,));
        }
        // (Sent before `finish`, which would otherwise overtake it.)
        run.flush();
    }
    SENT.set(to);
    if to == count {
        finish(count);
    }
}

/// The function the values are sent to.
const SET_VALUE: &str = "dhost:stress/sink#set-value";

/// How often the sender asks again whether a node serves `set-value`.
const WAIT: std::time::Duration = std::time::Duration::from_millis(10);

/// Starts sending if a node serves `set-value`, else asks again in [`WAIT`].
fn start_when_served() {
    if dhost_guest::servers(SET_VALUE).is_empty() {
        if !WAITING.replace(true) {
            eprintln!("stress-sender: waiting for a node that serves {SET_VALUE}");
        }
        dhost_guest::set_timer(0, WAIT);
        return;
    }
    start();
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
        ONE_BY_ONE.set(std::env::var_os("STRESS_ONE_BY_ONE").is_some());
        start_when_served();
    }
}

impl timer_events::Guest for Sender {
    fn on_timer(_token: u64) {
        start_when_served();
    }
}

/// Sends everything, or the first window.
fn start() {
    match WINDOW.get() {
        0 => {
            eprintln!(
                "stress-sender: sending {} values as fast as the node lets it",
                COUNT.get()
            );
            send_up_to(COUNT.get());
        }
        window => {
            eprintln!(
                "stress-sender: sending {} values, at most {window} ahead of the receivers",
                COUNT.get()
            );
            send_up_to(window);
        }
    }
}

impl flow::Guest for Sender {
    fn progress(next: i32) {
        if WINDOW.get() > 0 {
            send_up_to(next.saturating_add(WINDOW.get()));
        }
    }
}

export!(Sender);
