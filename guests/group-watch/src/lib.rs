//! A guest that watches the group (`dstc:node/group` and `group-events`): it prints
//! `group: joined NODE`, `group: left NODE` and `group: functions NODE` as the node tells it
//! of each change, and answers lines typed on the node's stdin:
//!
//! - `peers`: `peers: NAME (N functions, C connections), ...` or `peers: none`;
//! - `servers FUNCTION`: `servers of FUNCTION: NAME, ...` or `servers of FUNCTION: none`;
//! - `read NODE N`: mailbox N of node NODE, a call with a reply: `read NODE N: TEXT`, or
//!   `read NODE N: error KIND: MESSAGE`.

wit_bindgen::generate!({
    world: "dhost:group-watch/group-watch",
    path: ["../../wit/node", "../../wit/group-watch"],
    with: {
        "dstc:node/group": dhost_guest::group,
        "dstc:node/mailboxes": dhost_guest::mailboxes,
        "dstc:node/calls": dhost_guest::calls,
    },
});

use exports::dstc::node::group_events::{self, Change};
use exports::dstc::node::stdin_events;

struct Watch;

impl group_events::Guest for Watch {
    fn on_change(change: Change, node: String) {
        let what = match change {
            Change::Joined => "joined",
            Change::Left => "left",
            Change::Functions => "functions",
        };
        println!("group: {what} {node}");
    }
}

impl stdin_events::Guest for Watch {
    fn on_line(line: String) {
        let line = line.trim();
        if line == "peers" {
            let peers: Vec<String> = dhost_guest::peers()
                .iter()
                .map(|p| {
                    format!(
                        "{} ({} functions, {} connections)",
                        p.name,
                        p.functions.len(),
                        p.connections
                    )
                })
                .collect();
            println!("peers: {}", list(peers));
        } else if let Some(function) = line.strip_prefix("servers ") {
            let servers = dhost_guest::servers(function.trim());
            println!("servers of {}: {}", function.trim(), list(servers));
        } else if let Some(what) = line.strip_prefix("read ") {
            let mut words = what.split_whitespace();
            let (Some(node), Some(Ok(n))) = (words.next(), words.next().map(str::parse)) else {
                println!("read {what}: usage: read NODE N");
                return;
            };
            match dhost_guest::mailboxes::read(Some(node), n) {
                Ok(data) => {
                    let text = String::from_utf8_lossy(&data);
                    println!("read {node} {n}: {}", text.trim_end_matches('\0'));
                }
                Err(error) => {
                    let (kind, message) = dhost_guest::describe(&error);
                    println!("read {node} {n}: error {kind}: {message}");
                }
            }
        }
    }
}

/// `items` joined with commas, or `none`.
fn list(items: Vec<String>) -> String {
    if items.is_empty() {
        "none".to_string()
    } else {
        items.join(", ")
    }
}

export!(Watch);
