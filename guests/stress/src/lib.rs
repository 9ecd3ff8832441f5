//! The receiving side of the DSTC stress test: every `set-value(v)` must be the value after
//! the previous one. The guest counts what arrives and what arrives out of order, and says
//! so on stderr every million values and whenever the order breaks.

wit_bindgen::generate!({
    world: "dhost:stress/stress-guest",
    path: "../../wit/stress",
});

use exports::dhost::stress::sink::Guest;
use std::sync::atomic::{AtomicI64, Ordering};

/// The value expected next.
static NEXT: AtomicI64 = AtomicI64::new(0);

struct Stress;

impl Guest for Stress {
    fn set_value(v: i32) {
        let expected = NEXT.swap(i64::from(v) + 1, Ordering::Relaxed);
        if i64::from(v) != expected {
            eprintln!("stress: expected {expected}, got {v}");
        } else if v > 0 && v % 1_000_000 == 0 {
            eprintln!("stress: {v} values in order");
        }
    }
}

export!(Stress);
