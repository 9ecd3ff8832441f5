"""Fixtures of the tests: real ``dhost`` processes (``target/debug/dhost``) on a multicast
group of their own, on loopback only (``--iface 127.0.0.1 --ttl 0``), with the guests of
``target/guests``, killed at the end of each test; and clients of that group."""

from __future__ import annotations

import os
import random
import re
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

import dhost

ROOT = Path(__file__).resolve().parents[3]
DHOST = Path(os.environ.get("DHOST_BIN", ROOT / "target" / "debug" / "dhost"))
GUESTS = ROOT / "target" / "guests"
CACHE = ROOT / "target" / "test-cache"
PATIENCE = 30.0

# The tests name their group, interface and key themselves.
for _name in ("DHOST_GROUP", "DHOST_IFACE", "DHOST_KEY_FILE"):
    os.environ.pop(_name, None)


def unique_group() -> str:
    """A multicast group and port no other test uses at the same time."""
    rng = random.SystemRandom()
    return f"239.255.{rng.randrange(256)}.{rng.randrange(1, 255)}:{rng.randrange(20000, 60000)}"


def guest(name: str) -> Path:
    """A guest built by scripts/build-guests.sh; the test fails if it is missing."""
    path = GUESTS / f"{name}.wasm"
    if not path.exists():
        pytest.fail(f"{path} is missing: run scripts/build-guests.sh (which builds every guest)")
    return path


def inspect_wit(name: str) -> str:
    """The WIT of a guest, as `dhost inspect` prints it (what a node serves)."""
    out = subprocess.run(
        [str(DHOST), "inspect", str(guest(name))],
        capture_output=True,
        text=True,
        timeout=PATIENCE,
        env=_env(),
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DHOST_") and k != "RUST_LOG"}
    env["DHOST_CACHE_DIR"] = str(CACHE)
    return env


def names_when(client: dhost.Client, want: list[str], patience: float = PATIENCE) -> list[str]:
    """The names of the peers, surveyed until they are ``want`` (under load a node may
    answer a survey later than its default wait)."""
    start = time.monotonic()
    while True:
        names = [p.name for p in client.peers(wait=1.0)]
        if names == want or time.monotonic() - start > patience:
            return names
        time.sleep(0.05)


def eventually(get: Callable[[], Any], want: Any, patience: float = 5.0) -> Any:
    """Calls ``get`` until it returns ``want`` (a cast runs a little later than a call
    sent after it may)."""
    start = time.monotonic()
    while True:
        got = get()
        if got == want or time.monotonic() - start > patience:
            return got
        time.sleep(0.02)


class Node:
    """A running `dhost run` process, its stdout and stderr collected."""

    def __init__(self, name: str, group: str, args: list[str]) -> None:
        self.name = name
        self.group = group
        cmd = [
            str(DHOST), "-v", "run", "--name", name, "--group", group,
            "--iface", "127.0.0.1", "--ttl", "0", *args,
        ]
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=_env(),
        )
        self._out: list[str] = []
        self._err: list[str] = []
        self._threads = [
            threading.Thread(target=self._collect, args=(self.proc.stdout, self._out), daemon=True),
            threading.Thread(target=self._collect, args=(self.proc.stderr, self._err), daemon=True),
        ]
        for t in self._threads:
            t.start()

    @staticmethod
    def _collect(stream, into: list[str]) -> None:  # type: ignore[no-untyped-def]
        for line in iter(stream.readline, b""):
            into.append(line.decode(errors="replace"))

    def stdout(self) -> str:
        return "".join(self._out)

    def stderr(self) -> str:
        return "".join(self._err)

    def wait_for(self, what: str, done: Callable[[], bool], patience: float = PATIENCE) -> None:
        start = time.monotonic()
        while not done():
            if time.monotonic() - start > patience:
                raise AssertionError(
                    f"waited {patience}s for {what}\n--- stdout:\n{self.stdout()}\n--- stderr:\n{self.stderr()}"
                )
            if self.proc.poll() is not None and not done():
                raise AssertionError(
                    f"node {self.name} exited ({self.proc.returncode}) before {what}\n"
                    f"--- stdout:\n{self.stdout()}\n--- stderr:\n{self.stderr()}"
                )
            time.sleep(0.02)

    def wait_ready(self) -> Node:
        self.wait_for("ready in", lambda: "ready in" in self.stderr())
        return self

    @property
    def tcp(self) -> str:
        m = re.search(r"calls on (\S+)", self.stderr())
        assert m, self.stderr()
        return m.group(1)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=PATIENCE)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream:
                stream.close()


@pytest.fixture
def group() -> str:
    """A group of the test's own."""
    return unique_group()


@pytest.fixture
def start_node(group: str) -> Iterator[Callable[..., Node]]:
    """Starts nodes on the test's group: ``start_node("kv", guest("kv"), "--max-time",
    "200ms")``; every one is killed at the end."""
    if not DHOST.exists():
        pytest.skip(f"{DHOST} is missing: build dhost first")
    nodes: list[Node] = []

    def start(name: str, *args: str | Path, group_: str | None = None) -> Node:
        node = Node(name, group_ or group, [str(a) for a in args])
        nodes.append(node)
        return node.wait_ready()

    yield start
    for node in nodes:
        node.kill()


@pytest.fixture
def client(group: str) -> Iterator[dhost.Client]:
    """A client of the test's group, on loopback."""
    c = dhost.connect(group, iface="127.0.0.1", ttl=0, key_file=None)
    yield c
    c.close()


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    return tmp_path
