//! The dhost chat, after DSTC's test_chat.c: asks for a user name, sends every further line
//! typed on the node's stdin to the whole group with `message`, and prints every message
//! it receives, its own included, with what could drive a terminal shown escaped (a
//! message comes from anyone on the group).

wit_bindgen::generate!({
    world: "dhost:chat/chat-guest",
    path: ["../../wit/node", "../../wit/chat"],
});

use dhost::chat::chat::message as send;
use exports::dhost::chat::chat;
use exports::dstc::node::{lifecycle, stdin_events};
use std::io::Write;
use std::sync::Mutex;

/// The user name: the first non-empty line typed on stdin.
static USER: Mutex<Option<String>> = Mutex::new(None);

fn prompt() {
    print!("Username: ");
    let _ = std::io::stdout().flush();
}

struct Chat;

impl lifecycle::Guest for Chat {
    fn init() {
        prompt();
    }
}

impl stdin_events::Guest for Chat {
    fn on_line(line: String) {
        let mut user = USER.lock().unwrap_or_else(|e| e.into_inner());
        match user.as_deref() {
            Some(name) => send(name, &line),
            None if line.trim().is_empty() => prompt(),
            None => *user = Some(line.trim().to_string()),
        }
    }
}

impl chat::Guest for Chat {
    fn message(username: String, msg: String) {
        println!("[{}]: {}", shown(&username), shown(&msg));
    }
}

/// `text` with its control characters (escape sequences, line breaks), bidirectional
/// controls and line separators escaped as Rust writes them (`\u{1b}`), as dhost shows
/// text from the network.
fn shown(text: &str) -> String {
    let escaped = |c: char| {
        c.is_control()
            || matches!(
                c,
                '\u{61c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}'
            )
            || matches!(c, '\u{2028}'..='\u{2029}' | '\u{2066}'..='\u{2069}')
    };
    text.chars()
        .map(|c| {
            if escaped(c) {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

export!(Chat);
