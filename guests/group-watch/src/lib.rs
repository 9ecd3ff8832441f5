//! A guest that watches the group (`dstc:node/group` and `group-events`): it prints
//! `group: joined NODE`, `group: left NODE` and `group: functions NODE` as the node tells it
//! of each change, and answers lines typed on the node's stdin:
//!
//! - `peers`: `peers: NAME (N functions, C connections), ...` or `peers: none`;
//! - `servers FUNCTION`: `servers of FUNCTION: NAME, ...` or `servers of FUNCTION: none`.

wit_bindgen::generate!({
    world: "dhost:group-watch/group-watch",
    path: ["../../wit/node", "../../wit/group-watch"],
    with: {
        "dstc:node/group": dhost_guest::group,
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
