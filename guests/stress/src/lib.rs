//! The receiving side of the DSTC stress test. Every `set-value(v)` must be the value after
//! the previous one: the guest counts what arrives, what was skipped (lost on the way) and
//! what came out of order, tells the sender how far it got every [`PROGRESS_EVERY`] values
//! (the sender's flow control), and on `finish` prints one line and starts over:
//!
//! ```text
//! stress: 10000000 of 10000000 values in order in 2.513 s (3979307 calls/s), 0 lost, 0 out of order
//! ```
//!
//! The time runs from the first value to `finish`, as the receiver saw them.
//!
//! It takes the calls to `set-value` a run at a time (`dstc:node/run-events`, read with
//! `dhost_guest::runs`): one entry into the guest for a datagram's thousands of calls.
//! With `STRESS_ONE_BY_ONE` set (and passed by the jail: `--allow-env`) it declines, and
//! the node calls `set-value` once per call: the benchmark compares the two.

wit_bindgen::generate!({
    world: "dhost:stress/stress-guest",
    path: ["../../wit/node", "../../wit/stress"],
});

use dhost::stress::flow::progress;
use exports::dhost::stress::sink::Guest;
use exports::dstc::node::run_events;
use std::cell::RefCell;
use std::time::Instant;

/// How often (in values) the receiver reports progress to the sender.
const PROGRESS_EVERY: i64 = 16_384;

/// What a run has seen so far.
#[derive(Default)]
struct Run {
    /// When the first value arrived.
    started: Option<Instant>,
    /// The value expected next.
    next: i64,
    /// Values that arrived in order.
    in_order: i64,
    /// Values skipped over (a later value came first): lost on the way.
    lost: i64,
    /// Values that came after a later one.
    out_of_order: i64,
}

thread_local! {
    static RUN: RefCell<Run> = RefCell::new(Run::default());
}

struct Stress;

impl Guest for Stress {
    fn set_value(v: i32) {
        let v = i64::from(v);
        let report = RUN.with_borrow_mut(|run| {
            run.started.get_or_insert_with(Instant::now);
            if v == run.next {
                run.in_order += 1;
            } else if v > run.next {
                run.lost += v - run.next;
                run.in_order += 1;
            } else {
                run.out_of_order += 1;
                return None;
            }
            run.next = v + 1;
            (run.next % PROGRESS_EVERY == 0).then_some(run.next)
        });
        if let Some(next) = report {
            progress(next as i32);
        }
    }

    fn finish(count: i32) {
        let run = RUN.take();
        let count = i64::from(count);
        // Values never seen at the end were lost too.
        let lost = run.lost + (count - run.next).max(0);
        let secs = run.started.map_or(0.0, |t| t.elapsed().as_secs_f64());
        let rate = if secs > 0.0 {
            run.in_order as f64 / secs
        } else {
            0.0
        };
        println!(
            "stress: {} of {count} values in order in {secs:.3} s ({rate:.0} calls/s), {lost} lost, {} out of order",
            run.in_order, run.out_of_order
        );
    }
}

impl run_events::Guest for Stress {
    fn on_run(function: String, calls: Vec<u8>) -> bool {
        let one_by_one =
            ONE_BY_ONE.with(|o| *o.get_or_init(|| std::env::var_os("STRESS_ONE_BY_ONE").is_some()));
        match function.as_str() {
            "dhost:stress/sink#set-value" if !one_by_one => {
                dhost_guest::runs::each_call(&calls, |args| Stress::set_value(args.i32()));
                true
            }
            _ => false,
        }
    }
}

thread_local! {
    /// Whether the guest takes its calls one by one (`STRESS_ONE_BY_ONE`).
    static ONE_BY_ONE: std::cell::OnceCell<bool> = const { std::cell::OnceCell::new() };
}

export!(Stress);
