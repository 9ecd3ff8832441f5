//! A WASI command that calls the key-value store (`guests/kv`) with calls with replies:
//! `dhost run kv-client.wasm -- [--node NODE] COMMAND`, COMMAND one of `put KEY VALUE`,
//! `get KEY`, `keys`, `crash REASON`, `count`, `fetch FROM KEY` (the store called copies
//! KEY from node FROM's store: with `--node`, a call that comes back to this node when FROM
//! is this node) and `bench COUNT KEY` (COUNT `get`s, one after the other, and their
//! round-trip times). Failures come back as error values and are
//! printed as `error: ...`; `--node` sends the calls to the node named NODE.

wit_bindgen::generate!({
    world: "dhost:kv/kv-client",
    path: ["../../wit/node", "../../wit/kv"],
    // The node's interfaces come from the guest SDK, with their `call-error`.
    with: { "dstc:node/calls": dhost_guest::calls },
});

use dhost::kv::{admin, store};
use dhost_guest::{calls, describe};
use std::process::ExitCode;
use std::time::{Duration, Instant};

const USAGE: &str = "usage: kv-client [--node NODE] put KEY VALUE | get KEY | keys | \
                     crash REASON | count | fetch FROM KEY | bench COUNT KEY";

/// Calls `get(key)` `count` times and prints the median, 99th percentile, mean and
/// slowest round trip.
fn bench(count: usize, key: &str) {
    let mut times: Vec<Duration> = Vec::with_capacity(count);
    let started = Instant::now();
    for _ in 0..count {
        let call = Instant::now();
        std::hint::black_box(store::get(key));
        times.push(call.elapsed());
    }
    let total = started.elapsed();
    times.sort();
    let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    println!(
        "get x{count}: median {:.1} us, p99 {:.1} us, mean {:.1} us, max {:.1} us, {:.0} calls/s",
        at(0.5).as_secs_f64() * 1e6,
        at(0.99).as_secs_f64() * 1e6,
        total.as_secs_f64() * 1e6 / count as f64,
        at(1.0).as_secs_f64() * 1e6,
        count as f64 / total.as_secs_f64()
    );
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
    if let ["--node", node, ..] = args[..] {
        calls::set_target(Some(node));
        args.drain(..2);
    }
    match args[..] {
        ["put", key, value] => {
            store::put(key, value);
            println!("ok");
        }
        ["get", key] => println!("{}", store::get(key).as_deref().unwrap_or("(none)")),
        ["keys"] => store::keys().iter().for_each(|key| println!("{key}")),
        ["bench", count, key] => match count.parse::<usize>() {
            Ok(count) if count > 0 => bench(count, key),
            _ => {
                eprintln!("{USAGE}");
                return ExitCode::from(2);
            }
        },
        ["crash", reason] => match admin::crash(reason) {
            Ok(value) => println!("ok: {value}"),
            Err(message) => {
                println!("error: {message}");
                return ExitCode::FAILURE;
            }
        },
        ["fetch", from, key] => match admin::fetch(from, key) {
            Ok(value) => println!("{}", value.as_deref().unwrap_or("(none)")),
            Err(message) => {
                println!("error: {message}");
                return ExitCode::FAILURE;
            }
        },
        ["count"] => match admin::count() {
            Ok(n) => println!("{n}"),
            Err(error) => {
                let (kind, message) = describe(&error);
                println!("error: {kind}: {message}");
                return ExitCode::FAILURE;
            }
        },
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    }
    ExitCode::SUCCESS
}
