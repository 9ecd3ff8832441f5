// The dhost chat in JavaScript, after DSTC's test_chat.c: asks for a user name, sends
// every further line typed on the node's stdin to the whole group with `message`, and
// prints every message it receives, its own included.
//
// Built by scripts/build-guests.sh with componentize-js, on the `dhost:chat/chat-guest`
// world (wit/chat/chat.wit), into target/guests/chat-js.wasm. (console.log ends each line:
// the prompt gets a line of its own.)

import { message as send } from "dhost:chat/chat";

// The user name: the first non-empty line typed on stdin.
let user = null;

const prompt = () => console.log("Username: ");

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
    console.log(`[${username}]: ${msg}`);
  },
};
