"""The hostile guest in Python, for the jail's tests: the attacks of guests/hostile (Rust)
on the `dhost:hostile/hostile-guest` world (wit/hostile/hostile.wit), printed the same way,
so that the same jail is seen to refuse a Python guest exactly as a Rust one.

Built by scripts/build-guests.sh with componentize-py into target/guests/hostile-py.wasm.
"""

import encodings.idna  # noqa: F401 (socket's name lookups need it, and only what is imported is built in)
import os
import socket
import sys
import time

from wit_world import exports
from wit_world.imports import chat as room
from wit_world.imports import runs


def say(text: str) -> None:
    print(f"hostile: {text}", flush=True)


def reason(e: OSError) -> str:
    """What went wrong, as the guest's Python saw it."""
    return e.strerror or str(e)


class Attacks(exports.Attacks):
    def spin(self) -> None:
        n = 0
        while True:
            n += 1

    def busy(self, ms: int) -> None:
        until = time.monotonic() + ms / 1000
        while time.monotonic() < until:
            pass
        say(f"busy for {ms} ms")

    def hog(self, mib: int) -> None:
        blocks = [bytearray(1 << 20) for _ in range(mib)]
        say(f"holding {len(blocks)} MiB")

    def recurse(self) -> None:
        sys.setrecursionlimit(1 << 30)

        def down(depth: int) -> int:
            return down(depth + 1) + 1

        say(str(down(0)))

    def read_file(self, path: str) -> None:
        try:
            with open(path, "rb") as f:
                say(f"read {path}: {len(f.read())} bytes")
        except OSError as e:
            say(f"cannot read {path}: {reason(e)}")

    def write_file(self, path: str, text: str) -> None:
        try:
            with open(path, "w") as f:
                f.write(text)
            say(f"wrote {path}")
        except OSError as e:
            say(f"cannot write {path}: {reason(e)}")

    def read_env(self, name: str) -> None:
        value = os.environ.get(name)
        if value is None:
            say(f"cannot read {name}: environment variable not found")
        else:
            say(f"{name}={value}")

    def read_clock(self) -> None:
        now = int(time.time())
        say(f"clock {now}")
        print(f"hostile: clock {now} (stderr)", file=sys.stderr, flush=True)

    def lookup(self, name: str) -> None:
        try:
            addrs = {a[4][0] for a in socket.getaddrinfo(name, 80)}
            say(f"{name} is {' '.join(sorted(addrs))}")
        except Exception as e:  # noqa: BLE001
            say(f"cannot look up {name}: {e}")

    def connect(self, addr: str) -> None:
        host, _, port = addr.rpartition(":")
        try:
            with socket.create_connection((host, int(port)), timeout=5):
                say(f"connected to {addr}")
        except Exception as e:  # noqa: BLE001 (whatever the jail made of it, said)
            say(f"cannot connect to {addr}: {e}")

    def chat(self, text: str) -> None:
        room.message("hostile", text)

    def send_run(self, function: str, calls: bytes) -> None:
        runs.send_run(function, calls)
        say(f"sent a run of {len(calls)} bytes to {function}")
