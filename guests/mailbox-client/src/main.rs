//! A WASI command that reads and writes mailboxes through `dstc:node/mailboxes`:
//! `dhost run mailbox-client.wasm -- [--node NODE] OP...`, each OP `write N TEXT` or
//! `read N`, run in order. Prints `ok` for a write, the text for a read, and
//! `error: KIND: MESSAGE` for a failure (then the exit status is 1).

wit_bindgen::generate!({
    world: "dhost:mailbox-client/mailbox-client",
    path: ["../../wit/node", "../../wit/mailbox-client"],
    // The node's interfaces come from the guest SDK.
    with: {
        "dstc:node/calls": dhost_guest::calls,
        "dstc:node/mailboxes": dhost_guest::mailboxes,
    },
});

use dhost_guest::{describe, mailboxes};
use std::process::ExitCode;

const USAGE: &str = "usage: mailbox-client [--node NODE] (write N TEXT | read N)...";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut args: &[String] = &args;
    let mut node = None;
    if let [flag, name, rest @ ..] = args
        && flag == "--node"
    {
        node = Some(name.as_str());
        args = rest;
    }
    let mut failed = false;
    while !args.is_empty() {
        let outcome = match args {
            [op, n, text, rest @ ..] if op == "write" => {
                args = rest;
                let Ok(n) = n.parse() else { return usage() };
                mailboxes::write(node, n, text.as_bytes()).map(|()| "ok".to_string())
            }
            [op, n, rest @ ..] if op == "read" => {
                args = rest;
                let Ok(n) = n.parse() else { return usage() };
                mailboxes::read(node, n).map(|data| String::from_utf8_lossy(&data).into_owned())
            }
            _ => return usage(),
        };
        match outcome {
            Ok(text) => println!("{text}"),
            Err(error) => {
                let (kind, message) = describe(&error);
                println!("error: {kind}: {message}");
                failed = true;
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn usage() -> ExitCode {
    eprintln!("{USAGE}");
    ExitCode::from(2)
}
