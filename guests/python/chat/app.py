"""The dhost chat in Python, after DSTC's test_chat.c: asks for a user name, sends every
further line typed on the node's stdin to the whole group with `message`, and prints
every message it receives, its own included.

Built by scripts/build-guests.sh with componentize-py, on the `dhost:chat/chat-guest`
world (wit/chat/chat.wit), into target/guests/chat-py.wasm.
"""

import sys

from wit_world import exports
from wit_world.imports import chat as room

# The user name: the first non-empty line typed on stdin.
user: str | None = None


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
        print(f"[{username}]: {msg}", flush=True)
