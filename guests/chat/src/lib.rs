//! The dhost chat, after DSTC's test_chat.c: asks for a user name, sends every further line
//! typed on the node's stdin to the whole group with `message`, and prints every message
//! it receives, its own included.

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
        println!("[{username}]: {msg}");
    }
}

export!(Chat);
