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

wit_bindgen::generate!({
    world: "dhost:stress/stress-guest",
    path: ["../../wit/node", "../../wit/stress"],
});

use dhost::stress::flow::progress;
use exports::dhost::stress::sink::Guest;
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

export!(Stress);
