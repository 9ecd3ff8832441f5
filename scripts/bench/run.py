"""The benchmark driver behind scripts/bench.sh: runs every figure of the bench side by side
with its baseline, prints a table and writes target/bench/results.json.

    python3 scripts/bench/run.py [--runs N] [--count N] [--quick]

Figures (each the median of --runs runs, with min and max):

  1. multicast throughput of 10 M ordered set-value calls, sender node to receiver node,
     WebAssembly guests and native plugins: with no pacing in the application (the node's
     reliable stream paces it), the same with 5 % of the datagrams dropped (nftables), and
     with reliability off (--unreliable) and the application's own window, and with no
     pacing with a group key (every datagram tagged) and with --encrypt, and (WebAssembly)
     with two receiving guests in the receiving node, each on its own worker (the figure is
     the slower guest's rate); beside raw UDP between two threads (the baseline), and
     beside the mature DSTC's stress test when --dstc-server and --dstc-client point at a
     local build of it. A run that lost or reordered any call is a failure, not a figure;
  2. round trip of a call with a reply between two nodes, beside a raw TCP ping-pong;
     without a key, with one (the connection's frames tagged) and with --encrypt;
  3. start-up, from `dhost run` to the first call delivered, cold and warm compile cache;
  4. one dispatch into a WebAssembly guest in process, beside a native call (divan);
  5. resident memory of an idle node with the chat guest, and with 100 guests;
  6. what a guest costs in each language it can be written in (Rust, Python, JavaScript,
     and C as a native plugin, beside Rust): the chat guest's size, its cold start (an
     empty compile cache) and warm start, an idle chat node's resident memory, and the
     stress receiver's throughput, the Rust stress sender sending.

It expects the release build, the guests and the udp_stress example (bench.sh builds
them). All traffic stays on this host: loopback, TTL 0, groups of its own. bench.sh runs it
inside a private network namespace when it can make one.
"""

import argparse
import json
import os
import queue
import random
import re
import shutil
import statistics
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DHOST = os.path.join(ROOT, "target/release/dhost")
GUESTS = os.path.join(ROOT, "target/guests")
UDP_STRESS = os.path.join(ROOT, "target/release/examples/udp_stress")
ZENOH_THROUGHPUT = os.path.join(ROOT, "target/release/examples/zenoh_throughput")
ZENOH_ROUND_TRIP = os.path.join(ROOT, "target/release/examples/zenoh_round_trip")
# The group-key options of each security setting (set by main once the key is made).
SECURITY = {"none": []}

RATE = re.compile(
    r"stress: (\d+) of (\d+) values in order in ([\d.]+) s \((\d+) calls/s\), (\d+) lost, (\d+) out of order"
)


def fresh_group():
    return f"239.255.{random.randint(1, 250)}.{random.randint(1, 250)}:{random.randint(20000, 40000)}"


def net_args(group):
    return ["--group", group, "--iface", "127.0.0.1", "--ttl", "0"]


class Process:
    """A child process whose stdout and stderr lines are collected as they come."""

    def __init__(self, args, env=None, stdin=subprocess.DEVNULL):
        self.args = args
        self.lines = queue.Queue()
        self.output = []
        self.proc = subprocess.Popen(
            args,
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
            errors="replace",
        )
        self.readers = [
            threading.Thread(target=self._read, args=(s,), daemon=True)
            for s in (self.proc.stdout, self.proc.stderr)
        ]
        for r in self.readers:
            r.start()

    def _read(self, stream):
        for line in stream:
            self.output.append(line.rstrip("\n"))
            self.lines.put(line.rstrip("\n"))

    def wait_for(self, pattern, timeout):
        """The first line matching `pattern` within `timeout` seconds, or None."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=min(left, 0.5))
            except queue.Empty:
                if self.proc.poll() is not None and self.lines.empty():
                    return None
                continue
            match = re.search(pattern, line)
            if match:
                return match
        return None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return None


def summary(values):
    """Median, min and max of the runs that counted."""
    if not values:
        return {"median": None, "min": None, "max": None, "runs": 0}
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "runs": len(values),
    }


def parse_rate(line):
    m = RATE.search(line)
    if not m:
        return None
    in_order, count, secs, rate, lost, reordered = m.groups()
    return {
        "in_order": int(in_order),
        "count": int(count),
        "seconds": float(secs),
        "calls_per_second": int(rate),
        "lost": int(lost),
        "out_of_order": int(reordered),
    }


def counted(run, count):
    """Whether a throughput run counts: every call arrived, in order."""
    return (
        run is not None
        and run["in_order"] == count
        and run["lost"] == 0
        and run["out_of_order"] == 0
    )


# ---- 1. multicast throughput -------------------------------------------------------------


STREAM_LINE = re.compile(r"from (stress-tx-\S+): (\d+) calls received \((\d+) repaired\), (\d+) lost \((\d+) datagrams\)")


class DroppedDatagrams:
    """Drops `percent` % of the UDP datagrams to `port` at random (nftables; inside the
    bench's own network namespace)."""

    def __init__(self, port, percent):
        self.table = f"dhost_bench_{port}"
        rule = f"udp dport {port} numgen random mod 100 < {percent} drop"
        commands = [
            ["nft", "add", "table", "inet", self.table],
            ["nft", "add", "chain", "inet", self.table, "in", "{ type filter hook input priority 0; }"],
            ["nft", "add", "rule", "inet", self.table, "in", *rule.split()],
        ]
        for command in commands:
            out = subprocess.run(command, capture_output=True, text=True)
            if out.returncode != 0:
                raise RuntimeError(f"cannot inject loss with nftables: {' '.join(command)}: {out.stderr.strip()}")

    def remove(self):
        subprocess.run(["nft", "delete", "table", "inet", self.table], capture_output=True)


def throughput_dhost(kind, mode, runs, count, window, timeout, receiver_guest=None, start_timeout=60,
                     transport=()):
    """Throughput runs of one kind (native, wasm) in one mode: `reliable` (no pacing in the
    application), `loss` (the same, with 5 % of the group's datagrams dropped at random),
    `unreliable` (--unreliable, the application's window), `keyed` and `encrypted` (no
    pacing, with the group key, and with --encrypt too), `two-guests` (no pacing, two
    receiving guests in the receiving node: a run's figure is the slower one's, and both
    must have every call), `one-by-one` (no pacing, WebAssembly guests that cross into and
    out of the guest once per call instead of once per run). `receiver_guest` replaces the
    kind's stress receiver (a guest of another language), `start_timeout` is how long it may
    take to get ready; `transport` is options both nodes get (`--zenoh ENDPOINT`). Returns the
    runs, and what the receiver said of each sender's stream."""
    group = fresh_group()
    if kind == "wasm":
        default_receiver = os.path.join(GUESTS, "stress.wasm")
        sender_guest = os.path.join(GUESTS, "stress-sender.wasm")
        env_args = ["--allow-env", "STRESS_COUNT", "--allow-env", "STRESS_WINDOW", "--max-time", "600s"]
    else:
        default_receiver = os.path.join(GUESTS, "stress_receiver.so")
        sender_guest = os.path.join(GUESTS, "stress_sender.so")
        env_args = []
    receiver_guest = receiver_guest or default_receiver
    env = dict(os.environ, STRESS_COUNT=str(count))
    node_args, receiver_args = [], []
    if mode == "one-by-one":
        env["STRESS_ONE_BY_ONE"] = "1"
        env_args = [*env_args, "--allow-env", "STRESS_ONE_BY_ONE"]
        receiver_args = ["--allow-env", "STRESS_ONE_BY_ONE"]
    keys = SECURITY.get(mode, [])
    if mode == "unreliable":
        env["STRESS_WINDOW"] = str(window)
        node_args = ["--unreliable"]
    results, streams = [], []
    loss = DroppedDatagrams(int(group.rsplit(":", 1)[1]), 5) if mode == "loss" else None
    receivers = 2 if mode == "two-guests" else 1
    receiver = Process(
        [DHOST, "run", "-v", "--name", f"stress-rx-{kind}", *net_args(group), *transport, *keys,
         *receiver_args, *[receiver_guest] * receivers],
        env=env,
    )
    try:
        if not receiver.wait_for(r"ready in", start_timeout):
            raise RuntimeError(f"the {kind} receiver did not start: {receiver.output[-5:]}")
        for i in range(runs):
            sender = Process(
                [DHOST, "run", "--name", f"stress-tx-{kind}-{i}", *net_args(group), *transport, *keys,
                 *node_args, *env_args, sender_guest],
                env=env,
            )
            try:
                seen = []
                for _ in range(receivers):
                    m = receiver.wait_for(RATE.pattern, timeout)
                    seen.append(parse_rate(m.group(0)) if m else None)
                run = None if None in seen else min(seen, key=lambda r: r["calls_per_second"])
                if run is not None and receivers > 1:
                    run = dict(run, each=[r["calls_per_second"] for r in seen],
                               all_counted=all(counted(r, count) for r in seen))
                    if not run["all_counted"]:
                        run["lost"] = max(run["lost"], 1)
            finally:
                sender.stop()
            if run is None:
                run = {"failed": f"no report within {timeout} s", "sender": sender.output[-5:]}
            results.append(run)
            progress(f"  {kind} ({mode}) run {i + 1}: {describe_run(run, count)}")
    finally:
        receiver.stop()
        if loss:
            loss.remove()
    for line in receiver.output:
        m = STREAM_LINE.search(line)
        if m:
            name, received, repaired, lost, datagrams = m.groups()
            streams.append({"sender": name, "received": int(received), "repaired": int(repaired),
                            "lost": int(lost), "lost_datagrams": int(datagrams)})
    return results, streams


def throughput_baseline(runs, count, window, timeout):
    results = []
    for i in range(runs):
        group = fresh_group()
        try:
            out = subprocess.run(
                [UDP_STRESS, str(count), str(window), group, "127.0.0.1"],
                capture_output=True,
                text=True,
                timeout=timeout,
            )
            run = parse_rate(out.stdout) or {"failed": out.stderr.strip()[-200:]}
        except subprocess.TimeoutExpired:
            run = {"failed": f"no report within {timeout} s"}
        results.append(run)
        progress(f"  raw UDP run {i + 1}: {describe_run(run, count)}")
    return results


def throughput_dstc(runs, server, client, timeout):
    """The mature DSTC's stress test (a local build: `server` and `client` are command
    lines): the server prints `... -> N calls/sec` once the client is done."""
    results = []
    for i in range(runs):
        srv = Process(server.split())
        try:
            time.sleep(0.5)
            cli = Process(client.split())
            m = srv.wait_for(r"([\d.]+) calls/sec", timeout)
            cli.stop()
            run = {"calls_per_second": int(float(m.group(1)))} if m else {
                "failed": f"no report within {timeout} s: {srv.output[-3:]}"}
        finally:
            srv.stop()
        results.append(run)
        progress(f"  DSTC run {i + 1}: " + (run.get("failed") or f"{run['calls_per_second']:,} calls/s"))
    return results


def describe_run(run, count):
    if "failed" in run:
        return "FAILED: " + run["failed"]
    verdict = "" if counted(run, count) else "  FAILED: calls lost or out of order"
    return (
        f"{run['calls_per_second']:,} calls/s, {run['in_order']:,} of {run['count']:,} in order, "
        f"{run['lost']} lost{verdict}"
    )


# ---- Zenoh ---------------------------------------------------------------------------------


def zenoh_router():
    """A `dhost router` on a free loopback port: the process, and its endpoint."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    endpoint = f"tcp/127.0.0.1:{port}"
    router = Process([DHOST, "router", "--listen", endpoint])
    if not router.wait_for(r"dhost router ", 30):
        raise RuntimeError(f"the router did not start: {router.output[-5:]}")
    return router, endpoint


def throughput_zenoh(runs, count, endpoint, timeout):
    """Zenoh's own publication throughput through the router at `endpoint`: the stress
    sender's bytes, published and counted by the zenoh crate alone (examples/zenoh_throughput)."""
    results = []
    for i in range(runs):
        sub = Process([ZENOH_THROUGHPUT, "sub", endpoint, str(count)])
        try:
            if not sub.wait_for(r"^ready", 30):
                raise RuntimeError(f"the subscriber did not start: {sub.output[-5:]}")
            publisher = Process([ZENOH_THROUGHPUT, "pub", endpoint, str(count)])
            m = sub.wait_for(RATE.pattern, timeout)
            publisher.stop()
            run = parse_rate(m.group(0)) if m else {"failed": f"no report within {timeout} s"}
        finally:
            sub.stop()
        results.append(run)
        rate = run.get("calls_per_second")
        progress(f"  Zenoh pub/sub run {i + 1}: " + (f"{rate:,} calls/s" if rate else run["failed"]))
    return results


def zenoh_round_trips(runs, count, endpoint):
    """Zenoh's own round trips through the router at `endpoint` (examples/zenoh_round_trip):
    a query answered by a queryable, and a publication echoed by a subscriber. Returns the
    (median, p99) of each run, by kind."""
    pattern = r"median ([\d.]+) us, p99 ([\d.]+) us"
    out = {"query": [], "pubsub": []}
    for kind, server, client in (("query", "serve", "ask"), ("pubsub", "pong", "ping")):
        for i in range(runs):
            srv = Process([ZENOH_ROUND_TRIP, server, endpoint])
            try:
                if not srv.wait_for(r"^ready", 30):
                    raise RuntimeError(f"the Zenoh {server} did not start: {srv.output[-5:]}")
                ran = subprocess.run([ZENOH_ROUND_TRIP, client, endpoint, str(count)],
                                     capture_output=True, text=True, timeout=120)
                m = re.search(pattern, ran.stdout)
                if m:
                    out[kind].append((float(m.group(1)), float(m.group(2))))
            finally:
                srv.stop()
            progress(f"  Zenoh {kind} round trips run {i + 1}: {out[kind][-1:]} us")
    return out


# ---- 2. call with a reply ----------------------------------------------------------------


def round_trips(runs, count, keys):
    """Round trips of `dhost call`s from a guest, with the group-key options `keys`, and of
    a raw TCP ping-pong."""
    group = fresh_group()
    server = Process([DHOST, "run", "--name", "bench-server", *net_args(group), *keys,
                      os.path.join(GUESTS, "kv.wasm")])
    pattern = r"median ([\d.]+) us, p99 ([\d.]+) us"
    dhost_runs, tcp_runs = [], []
    try:
        for _ in range(100):
            put = subprocess.run(
                [DHOST, "call", *net_args(group), *keys, "bench-server", "dhost:kv/store#put", '"k"',
                 '"a value of some length"'],
                capture_output=True,
            )
            if put.returncode == 0:
                break
            time.sleep(0.1)
        for i in range(runs):
            out = subprocess.run(
                [DHOST, "run", "--name", "bench-client", *net_args(group), *keys,
                 os.path.join(GUESTS, "kv-client.wasm"),
                 "--", "--node", "bench-server", "bench", str(count), "k"],
                capture_output=True, text=True, timeout=120,
            )
            m = re.search(pattern, out.stdout)
            if m:
                dhost_runs.append((float(m.group(1)), float(m.group(2))))
            ping = subprocess.run(
                [sys.executable, os.path.join(ROOT, "scripts/bench/tcp_ping_pong.py"), str(count)],
                capture_output=True, text=True, timeout=120,
            )
            m = re.search(pattern, ping.stdout)
            if m:
                tcp_runs.append((float(m.group(1)), float(m.group(2))))
            progress(f"  round trips run {i + 1}: dhost {dhost_runs[-1:]} us, TCP {tcp_runs[-1:]} us")
    finally:
        server.stop()
    return dhost_runs, tcp_runs


# ---- 3. start-up -------------------------------------------------------------------------


def startup(runs):
    """From spawning a sender node to its first call printed by a receiver node."""
    group = fresh_group()
    receiver = Process(
        [DHOST, "run", "-v", "--name", "startup-rx", *net_args(group), os.path.join(GUESTS, "stress.wasm")]
    )
    cold, warm = [], []
    env = dict(os.environ, STRESS_COUNT="1")
    try:
        if not receiver.wait_for(r"ready in", 60):
            raise RuntimeError("the start-up receiver did not start")
        for i in range(runs):
            cache = tempfile.mkdtemp(prefix="dhost-bench-cache-")
            try:
                for figures in (cold, warm):
                    started = time.monotonic()
                    sender = Process(
                        [DHOST, "run", "--name", f"startup-tx-{i}-{len(figures)}", *net_args(group),
                         "--cache-dir", cache, "--allow-env", "STRESS_COUNT",
                         os.path.join(GUESTS, "stress-sender.wasm")],
                        env=env,
                    )
                    m = receiver.wait_for(r"stress: 1 of 1 values", 60)
                    elapsed = time.monotonic() - started
                    sender.stop()
                    if m:
                        figures.append(elapsed * 1000)
            finally:
                shutil.rmtree(cache, ignore_errors=True)
            progress(f"  start-up run {i + 1}: cold {cold[-1:]} ms, warm {warm[-1:]} ms")
    finally:
        receiver.stop()
    return cold, warm


# ---- 4. dispatch -------------------------------------------------------------------------


DIVAN_ROW = re.compile(r"([a-z0-9_]+)\s+([\d.]+) (ns|µs|us|ms)\s*│\s*([\d.]+) (ns|µs|us|ms)\s*│\s*([\d.]+) (ns|µs|us|ms)")


def to_ns(value, unit):
    return float(value) * {"ns": 1, "µs": 1e3, "us": 1e3, "ms": 1e6}[unit]


def dispatch(runs):
    """Median ns per call of divan's hot_path benchmarks, one divan run per run."""
    figures = {}
    for i in range(runs):
        out = subprocess.run(
            ["cargo", "bench", "--quiet", "-p", "dhost", "--bench", "hot_path"],
            cwd=ROOT, capture_output=True, text=True, timeout=1800,
        )
        for line in out.stdout.splitlines():
            m = DIVAN_ROW.search(line)
            if m:
                name = m.group(1)
                # Columns: fastest, slowest, median.
                figures.setdefault(name, []).append(to_ns(m.group(6), m.group(7)))
        progress(f"  dispatch run {i + 1}: {sorted((k, v[-1]) for k, v in figures.items())}")
        if out.returncode != 0:
            progress(out.stderr[-2000:])
    return figures


# ---- 5. memory ---------------------------------------------------------------------------


READY = re.compile(r"ready in ([\d.]+)(ns|µs|us|ms|s):")


def ready_ms(match):
    """The duration of a node's "ready in X" line (a Rust Duration), in ms."""
    value, unit = match.groups()
    return float(value) * {"ns": 1e-6, "µs": 1e-3, "us": 1e-3, "ms": 1, "s": 1e3}[unit]


def idle_node(guests, name, timeout, cache=None, username=None):
    """Starts a node with `guests` (and the compile cache `cache`, else the default one;
    and the line `username` on its stdin, for a chat that asks for one before it is
    ready), and once it is ready and has been idle 1 s, stops it. Returns the wall ms from
    spawn to its "ready in" line, the ms that line says and the node's resident KiB then;
    None if it did not get ready within `timeout` s."""
    started = time.monotonic()
    cache_args = ["--cache-dir", cache] if cache else []
    node = Process([DHOST, "run", "-v", "--name", name, *net_args(fresh_group()), *cache_args, *guests],
                   stdin=subprocess.PIPE)
    try:
        if username:
            node.proc.stdin.write(username + "\n")
            node.proc.stdin.flush()
        m = node.wait_for(READY.pattern, timeout)
        if not m:
            progress(f"  {os.path.basename(guests[0])} did not get ready: {node.output[-3:]}")
            return None
        wall = (time.monotonic() - started) * 1000
        time.sleep(1.0)
        return {"wall_ms": wall, "ready_ms": ready_ms(m), "rss_kib": node.rss_kib()}
    finally:
        node.stop()


def memory(runs, guests=100):
    chat = os.path.join(GUESTS, "chat.wasm")
    idle, many = [], []
    folder = tempfile.mkdtemp(prefix="dhost-bench-guests-")
    try:
        copies = []
        for n in range(guests):
            path = os.path.join(folder, f"chat{n:03}.wasm")
            os.symlink(chat, path)
            copies.append(path)
        for i in range(runs):
            for figures, loaded in ((idle, [chat]), (many, copies)):
                node = idle_node(loaded, f"memory-{i}", 120)
                if node:
                    figures.append(node["rss_kib"] / 1024)
            progress(f"  memory run {i + 1}: 1 chat guest {idle[-1:]} MiB, {guests} guests {many[-1:]} MiB")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return idle, many


# ---- 6. languages ------------------------------------------------------------------------


# Each language a guest can be written in: its key, its name, its chat guest and its stress
# receiver (guests/, built by scripts/build-guests.sh), and their kind: `wasm`, a component
# the node compiles, sent to by the Rust stress sender; or `native`, a DSTC plugin loaded as
# it is (nothing to compile, no cache), sent to by the native stress sender, since the Rust
# sender's calls are named for the WIT interface (dhost:stress/sink#set-value), which a
# DSTC plugin does not serve.
LANGUAGES = (
    ("rust", "Rust", "chat.wasm", "stress.wasm", "wasm"),
    ("python", "Python", "chat-py.wasm", "stress-py.wasm", "wasm"),
    ("javascript", "JavaScript", "chat-js.wasm", "stress-js.wasm", "wasm"),
    ("c", "C native", "test_chat.so", "stress_receiver.so", "native"),
)
# The languages whose guests carry their interpreter: slow to compile and to run.
SLOW_LANGUAGES = ("python", "javascript")

def chat_starts(guest, runs, timeout, username=None):
    """Per run, a cold start of a chat node (an empty compile cache of its own) and a warm
    one (the cache the cold start filled): two lists of what `idle_node` returned."""
    cold, warm = [], []
    for i in range(runs):
        cache = tempfile.mkdtemp(prefix="dhost-bench-cache-")
        try:
            for figures, how in ((cold, "cold"), (warm, "warm")):
                figures.append(idle_node([guest], f"lang-{how}-{i}", timeout, cache, username))
        finally:
            shutil.rmtree(cache, ignore_errors=True)
    return cold, warm


def languages(runs, count, slow_count, slow_runs, timeout):
    """What a guest costs in each language: its chat guest's size, the chat node's cold and
    warm starts and idle memory, and the throughput of its stress receiver, the Rust stress
    sender sending with no pacing in the application (`count` calls a run; `slow_count`
    in `slow_runs` runs for the slow languages). Returns what was measured, by language."""
    measured = {}
    for key, name, chat, stress, kind in LANGUAGES:
        chat_path, stress_path = os.path.join(GUESTS, chat), os.path.join(GUESTS, stress)
        if not (os.path.exists(chat_path) and os.path.exists(stress_path)):
            progress(f"  {name}: no {chat} or {stress} in {os.path.relpath(GUESTS, ROOT)}; left out")
            continue
        slow = key in SLOW_LANGUAGES
        n, n_runs = (min(slow_count, count), slow_runs) if slow else (count, runs)
        # The slow languages compile for many seconds, more so on a busy machine.
        # The C chat asks for a user name on stdin before it is ready.
        cold, warm = chat_starts(chat_path, runs, 300 if slow else 60, "bench" if kind == "native" else None)
        last = lambda figures, field: [round(r[field], 1) for r in figures[-1:] if r]
        progress(f"  {name} chat: {os.path.getsize(chat_path):,} bytes, cold {last(cold, 'wall_ms')} ms "
                 f"(ready in {last(cold, 'ready_ms')}), warm {last(warm, 'wall_ms')} ms "
                 f"(ready in {last(warm, 'ready_ms')}), idle {last(warm, 'rss_kib')} KiB")
        try:
            stress_runs, _ = throughput_dhost(
                kind, "reliable", n_runs, n, 0, max(timeout, n / 10_000) if slow else timeout,
                receiver_guest=stress_path, start_timeout=300 if slow else 60)
        except RuntimeError as e:
            progress(f"  {name} stress: {e}")
            stress_runs = [{"failed": str(e)}]
        measured[key] = {
            "name": name, "chat": chat, "stress": stress, "kind": kind, "count": n, "runs": n_runs,
            "size_bytes": os.path.getsize(chat_path), "cold": cold, "warm": warm, "stress_runs": stress_runs,
        }
    return measured


def language_figures(m):
    """The summaries of what `languages` measured of one language."""
    field = lambda starts, name: [r[name] for r in starts if r]
    return {
        "size": summary([m["size_bytes"]]),
        "cold": summary(field(m["cold"], "wall_ms")),
        "cold_ready": summary(field(m["cold"], "ready_ms")),
        "warm": summary(field(m["warm"], "wall_ms")),
        "warm_ready": summary(field(m["warm"], "ready_ms")),
        "rss": summary(field(m["warm"], "rss_kib")),
        "throughput": summary([r["calls_per_second"] for r in m["stress_runs"] if counted(r, m["count"])]),
    }


# ---- the table ---------------------------------------------------------------------------


def progress(line):
    print(line, file=sys.stderr, flush=True)


def fmt(s, unit, scale=1.0, digits=0):
    if s["median"] is None:
        return "failed", ""
    f = f"{{:,.{digits}f}}"
    return (
        f"{f.format(s['median'] * scale)} {unit}",
        f"{f.format(s['min'] * scale)} .. {f.format(s['max'] * scale)}",
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="runs per figure (default 3)")
    parser.add_argument("--count", type=int, default=10_000_000, help="calls per throughput run (default 10 M)")
    parser.add_argument("--window", type=int, default=131_072,
                        help="calls a sender may be ahead in the runs without reliability, and in the raw UDP "
                             "baseline (default 131072)")
    parser.add_argument("--round-trips", type=int, default=5000, help="calls per round-trip run (default 5000)")
    parser.add_argument("--skip", action="append", default=[], metavar="PART",
                        choices=["throughput", "calls", "zenoh", "startup", "dispatch", "memory", "languages"],
                        help="leave a part out (repeatable)")
    parser.add_argument("--slow-count", type=int, default=2_000_000,
                        help="calls per throughput run of the Python and JavaScript stress receivers "
                             "(languages part; default 2 M, at most --count)")
    parser.add_argument("--slow-runs", type=int,
                        help="throughput runs of the Python and JavaScript stress receivers (default --runs)")
    parser.add_argument("--out", default=os.path.join(ROOT, "target/bench/results.json"))
    parser.add_argument("--dhost", help="the dhost executable to measure (default: the release build)")
    parser.add_argument("--modes", default="unreliable,reliable,loss,keyed,encrypted,two-guests,one-by-one",
                        help="the throughput modes to run, comma-separated (default: all of "
                             "unreliable,reliable,loss,keyed,encrypted,two-guests,one-by-one)")
    parser.add_argument("--dstc-server", metavar="COMMAND",
                        help="the mature DSTC's stress server (a local build, never committed), "
                             "run beside dhost for comparison; needs --dstc-client")
    parser.add_argument("--dstc-client", metavar="COMMAND", help="the mature DSTC's stress client")
    args = parser.parse_args()
    if args.dhost:
        global DHOST
        DHOST = os.path.abspath(args.dhost)
    timeout = max(60, args.count / 50_000)

    key_dir = tempfile.mkdtemp(prefix="dhost-bench-key-")
    key = os.path.join(key_dir, "group.key")
    subprocess.run([DHOST, "keygen", key], check=True, capture_output=True)
    SECURITY["keyed"] = ["--key-file", key]
    SECURITY["encrypted"] = ["--key-file", key, "--encrypt"]

    results = {"runs": args.runs, "count": args.count, "window": args.window, "figures": {}}
    rows = []

    def add(key, name, s, unit, baseline=None, scale=1.0, digits=0, higher_is_better=True):
        results["figures"][key] = dict(s, unit=unit)
        median, spread = fmt(s, unit, scale, digits)
        ratio = ""
        if baseline and baseline["median"] and s["median"]:
            r = s["median"] / baseline["median"] if higher_is_better else baseline["median"] / s["median"]
            ratio = f"{r:.2f}x" if r >= 0.1 else f"{r:.2g}x"
        rows.append((name, median, spread, ratio))

    if "throughput" not in args.skip:
        progress(f"throughput: {args.count:,} ordered set-value calls, {args.runs} runs each")
        raw = throughput_baseline(args.runs, args.count, args.window, timeout)
        rate = lambda rs: summary([r["calls_per_second"] for r in rs if counted(r, args.count)])
        base = rate(raw)
        add("throughput_raw_udp", "throughput, raw UDP (baseline)", base, "calls/s")
        results["throughput_runs"] = {"raw_udp": raw}
        results["figures"]["throughput_raw_udp"]["failed_runs"] = sum(not counted(r, args.count) for r in raw)
        chosen = set(args.modes.split(","))
        modes = [(mode, words) for mode, words in (
            ("unreliable", "reliability off, application window"),
            ("reliable", "no application pacing"),
            ("loss", "no application pacing, 5 % loss"),
            ("keyed", "no application pacing, group key"),
            ("encrypted", "no application pacing, group key, --encrypt"),
            ("two-guests", "no application pacing, two receiving guests (each)"),
            ("one-by-one", "no application pacing, one entry per call"),
        ) if mode in chosen]
        medians = {}
        if args.dstc_server and args.dstc_client:
            dstc = throughput_dstc(args.runs, args.dstc_server, args.dstc_client, timeout)
            figure = summary([r["calls_per_second"] for r in dstc if "calls_per_second" in r])
            medians[("dstc", "reliable")] = figure["median"]
            add("throughput_dstc", "throughput, mature DSTC stress", figure, "calls/s", base)
            results["throughput_runs"]["dstc"] = dstc
        for kind in ("native", "wasm"):
            for mode, words in modes:
                if mode in ("two-guests", "one-by-one") and kind == "native":
                    continue  # (plugins run on the event loop, one call at a time)
                try:
                    runs_, streams = throughput_dhost(kind, mode, args.runs, args.count, args.window, timeout)
                except RuntimeError as e:
                    progress(f"  {kind} ({mode}): {e}")
                    runs_, streams = [{"failed": str(e)}], []
                key = f"throughput_{kind}_{mode}"
                results["throughput_runs"][f"{kind}_{mode}"] = runs_
                results["streams"] = results.get("streams", {})
                results["streams"][f"{kind}_{mode}"] = streams
                figure = rate(runs_)
                medians[(kind, mode)] = figure["median"]
                add(key, f"throughput, {kind}, {words}", figure, "calls/s", base)
                results["figures"][key]["failed_runs"] = sum(not counted(r, args.count) for r in runs_)
        results["wasm_against"] = {
            other: (medians[("wasm", "reliable")] / medians[(other, "reliable")]
                    if medians.get(("wasm", "reliable")) and medians.get((other, "reliable")) else None)
            for other in ("native", "dstc")
        }
        results["reliability_cost"] = {
            kind: (medians[(kind, "reliable")] / medians[(kind, "unreliable")]
                   if medians.get((kind, "reliable")) and medians.get((kind, "unreliable")) else None)
            for kind in ("native", "wasm")
        }
        results["security_cost"] = {
            f"{kind}_{mode}": (medians[(kind, mode)] / medians[(kind, "reliable")]
                               if medians.get((kind, mode)) and medians.get((kind, "reliable")) else None)
            for kind in ("native", "wasm") for mode in ("keyed", "encrypted")
        }

    if "calls" not in args.skip:
        progress(f"calls with a reply: {args.round_trips} round trips per run")
        tcp_runs = []
        for security, words in (("none", ""), ("keyed", ", group key"), ("encrypted", ", group key, --encrypt")):
            dhost_runs, tcp = round_trips(args.runs, args.round_trips, SECURITY[security])
            tcp_runs += tcp
            suffix = "" if security == "none" else f"_{security}"
            tcp_median = summary([m for m, _ in tcp_runs])
            tcp_p99 = summary([p for _, p in tcp_runs])
            if security == "none":
                add("call_tcp_median_us", "round trip, raw TCP ping-pong, median", tcp_median, "us", digits=1)
                add("call_tcp_p99_us", "round trip, raw TCP ping-pong, p99", tcp_p99, "us", digits=1)
            add(f"call_median_us{suffix}", f"round trip, call with reply{words}, median",
                summary([m for m, _ in dhost_runs]), "us", tcp_median, digits=1, higher_is_better=False)
            add(f"call_p99_us{suffix}", f"round trip, call with reply{words}, p99",
                summary([p for _, p in dhost_runs]), "us", tcp_p99, digits=1, higher_is_better=False)

    if "zenoh" not in args.skip:
        progress(f"zenoh: through one dhost router, {args.count:,} calls per throughput run")
        router, endpoint = zenoh_router()
        try:
            own = throughput_zenoh(args.runs, args.count, endpoint, timeout)
            zenoh_rate = summary([r["calls_per_second"] for r in own if "calls_per_second" in r])
            add("throughput_zenoh_pubsub", "throughput, Zenoh's own pub/sub, the sender's bytes (baseline)",
                zenoh_rate, "calls/s")
            runs_, streams = throughput_dhost("wasm", "reliable", args.runs, args.count, args.window, timeout,
                                              transport=["--zenoh", endpoint])
            results.setdefault("throughput_runs", {})["wasm_zenoh"] = runs_
            results.setdefault("streams", {})["wasm_zenoh"] = streams
            figure = summary([r["calls_per_second"] for r in runs_ if counted(r, args.count)])
            multicast = results["figures"].get("throughput_wasm_reliable")
            add("throughput_wasm_zenoh", "throughput, wasm, through a Zenoh router (vs multicast)", figure,
                "calls/s", multicast)
            results["figures"]["throughput_wasm_zenoh"]["failed_runs"] = sum(
                not counted(r, args.count) for r in runs_)
            results["zenoh_against_pubsub"] = (figure["median"] / zenoh_rate["median"]
                                               if figure["median"] and zenoh_rate["median"] else None)
            own_trips = zenoh_round_trips(args.runs, args.round_trips, endpoint)
            for kind, words in (("query", "a query answered"), ("pubsub", "a publication echoed")):
                add(f"call_zenoh_own_{kind}_median_us", f"round trip, Zenoh's own, {words}, median (baseline)",
                    summary([m for m, _ in own_trips[kind]]), "us", digits=1)
                add(f"call_zenoh_own_{kind}_p99_us", f"round trip, Zenoh's own, {words}, p99 (baseline)",
                    summary([p for _, p in own_trips[kind]]), "us", digits=1)
            dhost_runs, _ = round_trips(args.runs, args.round_trips, ["--zenoh", endpoint])
            median = summary([m for m, _ in dhost_runs])
            p99 = summary([p for _, p in dhost_runs])
            add("call_zenoh_median_us", "round trip, call with reply through a Zenoh router, median (vs query)",
                median, "us", results["figures"]["call_zenoh_own_query_median_us"], digits=1,
                higher_is_better=False)
            add("call_zenoh_p99_us", "round trip, call with reply through a Zenoh router, p99 (vs query)",
                p99, "us", results["figures"]["call_zenoh_own_query_p99_us"], digits=1, higher_is_better=False)
            direct = results["figures"].get("call_median_us")
            if direct and direct.get("median") and median["median"]:
                results["zenoh_call_against_direct"] = median["median"] / direct["median"]
        finally:
            router.stop()

    if "startup" not in args.skip:
        progress("start-up: dhost run to the first call delivered")
        cold, warm = startup(args.runs)
        add("startup_cold_ms", "start-up to first call, cold cache", summary(cold), "ms")
        add("startup_warm_ms", "start-up to first call, warm cache", summary(warm), "ms")

    if "dispatch" not in args.skip:
        progress("dispatch: cargo bench --bench hot_path (divan)")
        figures = dispatch(args.runs)
        native = summary(figures.get("native_call", []))
        add("dispatch_native_ns", "dispatch, native call (baseline)", native, "ns", digits=1)
        add("dispatch_wasm_ns", "dispatch into a wasm guest", summary(figures.get("dispatch_into_a_webassembly_guest", [])),
            "ns", native, digits=1, higher_is_better=False)
        per_call = [v / 1000 for v in figures.get("run_of_1000_calls_into_a_webassembly_guest", [])]
        add("dispatch_wasm_run_ns", "dispatch into a wasm guest, in a run of 1000 (per call)",
            summary(per_call), "ns", native, digits=1, higher_is_better=False)
        for name, values in sorted(figures.items()):
            results["figures"].setdefault(f"divan_{name}_ns", dict(summary(values), unit="ns"))

    if "memory" not in args.skip:
        progress("memory: resident size of an idle node")
        idle, many = memory(args.runs)
        add("rss_chat_mib", "memory, idle node with chat", summary(idle), "MiB", digits=1)
        add("rss_100_guests_mib", "memory, idle node with 100 guests", summary(many), "MiB", digits=1)

    if "languages" not in args.skip:
        progress("languages: what a guest costs in each language, beside Rust")
        measured = languages(args.runs, args.count, args.slow_count, args.slow_runs or args.runs, timeout)
        results["languages"] = measured
        rust = language_figures(measured["rust"]) if "rust" in measured else {}
        for key, m in measured.items():
            name, figures = m["name"], language_figures(m)
            vs = lambda figure: rust.get(figure) if key != "rust" else None
            what = "component" if m["kind"] == "wasm" else "native plugin (.so)"
            add(f"lang_{key}_size_bytes", f"{name}: chat {what} size", figures["size"], "B", vs("size"))
            if m["kind"] == "wasm":
                starts = (("cold", "cold start (empty cache)"), ("warm", "warm start (cache filled)"))
            else:
                # Nothing to compile, no cache: every start alike, beside Rust's warm start.
                starts = (("warm", "start (nothing to compile)"),)
            for figure, words in starts:
                add(f"lang_{key}_{figure}_ms", f"{name}: chat {words}, wall", figures[figure], "ms", vs(figure),
                    digits=1)
                add(f"lang_{key}_{figure}_ready_ms", f"{name}: chat {words}, node's \"ready in\"",
                    figures[f"{figure}_ready"], "ms", vs(f"{figure}_ready"), digits=1)
            after = "a warm start" if m["kind"] == "wasm" else "start"
            add(f"lang_{key}_rss_kib", f"{name}: idle chat node memory, 1 s after {after}", figures["rss"],
                "KiB", vs("rss"))
            runs_note = "" if m["runs"] == args.runs else f", {m['runs']} run{'s' * (m['runs'] != 1)}"
            key_ = f"lang_{key}_throughput"
            sender = "Rust sender" if m["kind"] == "wasm" else "C native sender"
            add(key_, f"{name}: stress receiver, {m['count']:,} calls, {sender}{runs_note}", figures["throughput"],
                "calls/s", vs("throughput"))
            results["figures"][key_]["count"] = m["count"]
            results["figures"][key_]["failed_runs"] = sum(not counted(r, m["count"]) for r in m["stress_runs"])

    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as out:
        json.dump(results, out, indent=2)

    widths = [max(len(r[i]) for r in rows + [("figure", "median", "min .. max", "vs baseline")]) for i in range(4)]
    header = ("figure", "median", "min .. max", "vs baseline")
    print()
    for row in [header, tuple("-" * w for w in widths)] + rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    print(f"\n{args.runs} runs per figure; results in {os.path.relpath(args.out, ROOT)}")
    if results.get("zenoh_call_against_direct"):
        print(f"a call with a reply through a Zenoh router: {results['zenoh_call_against_direct']:.2f}x the "
              f"time of a direct one (medians)")
    if results.get("zenoh_against_pubsub"):
        print(f"wasm through a Zenoh router: {results['zenoh_against_pubsub']:.2f}x Zenoh's own pub/sub of "
              f"the same bytes (medians)")
    for other, ratio in results.get("wasm_against", {}).items():
        if ratio:
            print(f"wasm (no application pacing): {ratio:.2f}x the speed of {other} (medians)")
    for kind, ratio in results.get("reliability_cost", {}).items():
        if ratio:
            print(f"{kind}: with reliability, {ratio:.2f}x the speed without it (medians)")
    for name, ratio in results.get("security_cost", {}).items():
        if ratio:
            kind, mode = name.split("_", 1)
            what = "a group key" if mode == "keyed" else "a group key and --encrypt"
            print(f"{kind}: with {what}, {ratio:.2f}x the speed without a key (medians)")
    if results.get("languages"):
        print("languages: vs baseline is the figure over Rust's in this run (throughput: the fraction of "
              "Rust's; size, start and memory: times Rust's)")
    shutil.rmtree(key_dir, ignore_errors=True)
    for key, streams in results.get("streams", {}).items():
        if key.endswith("_loss"):
            for s in streams:
                print(f"{key}: the receiver got from {s['sender']}: {s['received']:,} calls, "
                      f"{s['repaired']:,} of them repaired, {s['lost']} lost ({s['lost_datagrams']} datagrams)")
    failed = [k for k, v in results["figures"].items() if v.get("median") is None or v.get("failed_runs")]
    if failed:
        print(f"failed or incomplete: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
