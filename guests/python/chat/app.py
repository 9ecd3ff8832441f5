"""The dhost chat in Python, after DSTC's test_chat.c: asks for a user name, sends every
further line typed on the node's stdin to the whole group with `message`, and prints
every message it receives, its own included, with what could drive a terminal shown
escaped (a message comes from anyone on the group).

Built by scripts/build-guests.sh with componentize-py, on the `dhost:chat/chat-guest`
world (wit/chat/chat.wit), into target/guests/chat-py.wasm.
"""

import sys

from wit_world import exports
from wit_world.imports import chat as room

# The user name: the first non-empty line typed on stdin.
user: str | None = None

# The bidirectional controls and line separators, escaped with the control characters.
_INVISIBLE = {0x61C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x2028, 0x2029}


def shown(text: str) -> str:
    """`text` with its control characters (escape sequences, line breaks), bidirectional
    controls and line separators escaped as Rust writes them (`\\u{1b}`), as dhost shows
    text from the network."""
    out = []
    for c in text:
        n = ord(c)
        if c in "\t\r\n":
            out.append({"\t": "\\t", "\r": "\\r", "\n": "\\n"}[c])
        elif n < 0x20 or 0x7F <= n <= 0x9F or n in _INVISIBLE:
            out.append(f"\\u{{{n:x}}}")
        else:
            out.append(c)
    return "".join(out)


def prompt() -> None:
    sys.stdout.write("Username: ")
    sys.stdout.flush()


class Lifecycle(exports.Lifecycle):
    def init(self) -> None:
        prompt()


class StdinEvents(exports.StdinEvents):
    def on_line(self, line: str) -> None:
        global user
        if user is not None:
            room.message(user, line)
        elif not line.strip():
            prompt()
        else:
            user = line.strip()


class Chat(exports.Chat):
    def message(self, username: str, msg: str) -> None:
        print(f"[{shown(username)}]: {shown(msg)}", flush=True)
