//! A bot in the dhost chat room that shows timers and calls made from inside a handler:
//! it says `tick 1` to `tick 3`, one every 100 ms from load, and answers every `ping` with
//! `pong` (sent while handling the ping, delivered by the node once the handler returns).

wit_bindgen::generate!({
    world: "dhost:chat/ticker-guest",
    path: ["../../wit/node", "../../wit/chat"],
});

use dhost::chat::chat::message as send;
use exports::dhost::chat::chat;
use exports::dstc::node::{lifecycle, timer_events};
use std::time::Duration;

const TICKS: u64 = 3;
const PERIOD: Duration = Duration::from_millis(100);

struct Ticker;

impl lifecycle::Guest for Ticker {
    fn init() {
        dhost_guest::info!("ticker on node {}", dhost_guest::node_name());
        dhost_guest::set_timer(1, PERIOD);
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
