// The dhost chat in JavaScript, after DSTC's test_chat.c: asks for a user name, sends
// every further line typed on the node's stdin to the whole group with `message`, and
// prints every message it receives, its own included, with what could drive a terminal
// shown escaped (a message comes from anyone on the group).
//
// Built by scripts/build-guests.sh with componentize-js, on the `dhost:chat/chat-guest`
// world (wit/chat/chat.wit), into target/guests/chat-js.wasm. (console.log ends each line:
// the prompt gets a line of its own.)

import { message as send } from "dhost:chat/chat";

// The user name: the first non-empty line typed on stdin.
let user = null;

const prompt = () => console.log("Username: ");

// The bidirectional controls and line separators, escaped with the control characters.
const invisible = (n) =>
  n === 0x61c || n === 0x200e || n === 0x200f || (n >= 0x202a && n <= 0x202e) ||
  (n >= 0x2066 && n <= 0x2069) || n === 0x2028 || n === 0x2029;

// `text` with its control characters (escape sequences, line breaks), bidirectional
// controls and line separators escaped as Rust writes them (`\u{1b}`), as dhost shows
// text from the network.
const shown = (text) =>
  Array.from(text, (c) => {
    const n = c.codePointAt(0);
    if (c === "\t") return "\\t";
    if (c === "\r") return "\\r";
    if (c === "\n") return "\\n";
    if (n < 0x20 || (n >= 0x7f && n <= 0x9f) || invisible(n)) return `\\u{${n.toString(16)}}`;
    return c;
  }).join("");

export const lifecycle = {
  init() {
    prompt();
  },
};

export const stdinEvents = {
  onLine(line) {
    if (user !== null) {
      send(user, line);
    } else if (line.trim() === "") {
      prompt();
    } else {
      user = line.trim();
    }
  },
};

export const chat = {
  message(username, msg) {
    console.log(`[${shown(username)}]: ${shown(msg)}`);
  },
};
