//! A bot in the dhost chat room that shows timers, readiness callbacks and calls made from
//! inside a handler: it says `tick 1` to `tick 3`, one every 100 ms from load; `ready 7`
//! when a clock pollable it hands the node becomes ready, 450 ms from load; and it answers
//! every `ping` with `pong` (sent while handling the ping, delivered by the node once the
//! handler returns).

wit_bindgen::generate!({
    world: "dhost:chat/ticker-guest",
    path: ["../../wit/node", "../../wit/chat"],
    // The SDK's pollable type, so that a clock's pollable can be handed to `watch`.
    with: {
        "wasi:io/poll@0.2.12": dhost_guest::io::poll,
        "wasi:clocks/monotonic-clock@0.2.12": generate,
    },
});

use dhost::chat::chat::message as send;
use exports::dhost::chat::chat;
use exports::dstc::node::{lifecycle, ready_events, timer_events};
use std::time::Duration;
use wasi::clocks::monotonic_clock;

const TICKS: u64 = 3;
const PERIOD: Duration = Duration::from_millis(100);
const CLOCK_TOKEN: u64 = 7;
const CLOCK_DELAY: Duration = Duration::from_millis(450);

struct Ticker;

impl lifecycle::Guest for Ticker {
    fn init() {
        dhost_guest::info!("ticker on node {}", dhost_guest::node_name());
        dhost_guest::set_timer(1, PERIOD);
        let clock = monotonic_clock::subscribe_duration(CLOCK_DELAY.as_nanos() as u64);
        dhost_guest::readiness::watch(CLOCK_TOKEN, clock);
    }
}

impl ready_events::Guest for Ticker {
    fn on_ready(token: u64) {
        send("ticker", &format!("ready {token}"));
    }
}

impl timer_events::Guest for Ticker {
    fn on_timer(token: u64) {
        send("ticker", &format!("tick {token}"));
        if token < TICKS {
            dhost_guest::set_timer(token + 1, PERIOD);
        }
    }
}

impl chat::Guest for Ticker {
    fn message(_username: String, msg: String) {
        if msg == "ping" {
            send("ticker", "pong");
        }
    }
}

export!(Ticker);
