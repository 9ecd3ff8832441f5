//! A WASI command that calls the key-value store (`guests/kv`) with calls with replies:
//! `dhost run kv-client.wasm -- [--node NODE] COMMAND`, COMMAND one of `put KEY VALUE`,
//! `get KEY`, `keys`, `crash REASON` and `count`. Failures come back as error values and
//! are printed as `error: ...`; `--node` sends the calls to the node named NODE.

wit_bindgen::generate!({
    world: "dhost:kv/kv-client",
    path: ["../../wit/node", "../../wit/kv"],
    // wit-bindgen asks for interfaces of other packages to be named: generate `calls` here.
    with: { "dstc:node/calls": generate },
});

use dhost::kv::{admin, store};
use dstc::node::calls::{self, CallError};
use std::process::ExitCode;

const USAGE: &str =
    "usage: kv-client [--node NODE] put KEY VALUE | get KEY | keys | crash REASON | count";

/// The case name of `error`, as in the WIT, and its message.
fn describe(error: &CallError) -> (&'static str, &str) {
    match error {
        CallError::NoServer(m) => ("no-server", m),
        CallError::Timeout(m) => ("timeout", m),
        CallError::PeerGone(m) => ("peer-gone", m),
        CallError::Trapped(m) => ("trapped", m),
        CallError::BadArguments(m) => ("bad-arguments", m),
        CallError::Refused(m) => ("refused", m),
        CallError::Unavailable(m) => ("unavailable", m),
    }
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
        ["crash", reason] => match admin::crash(reason) {
            Ok(value) => println!("ok: {value}"),
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
