"""The receiving side of the DSTC stress test in Python, as guests/stress (Rust) on the
`dhost:stress/stress-guest` world (wit/stress/stress.wit): every `set-value(v)` must be
the value after the previous one; it counts what arrives, what was skipped (lost on the
way) and what came out of order, tells the sender how far it got every 16384 values, and
on `finish` prints one line and starts over:

    stress: 10000000 of 10000000 values in order in 2.513 s (3979307 calls/s), 0 lost, 0 out of order

It takes the calls to `set-value` a run at a time (`dstc:node/run-events`), reading each
call's arguments (one CBOR array holding one integer) itself; with `STRESS_ONE_BY_ONE` set
(and passed by the jail: `--allow-env`) it declines, and the node calls `set-value` once
per call.

Built by scripts/build-guests.sh with componentize-py into target/guests/stress-py.wasm.
"""

import os
import time

from wit_world import exports
from wit_world.imports import flow

PROGRESS_EVERY = 16_384
SET_VALUE = "dhost:stress/sink#set-value"
ONE_BY_ONE = None  # read from the environment at the first run


class Run:
    """What a run has seen so far."""

    def __init__(self) -> None:
        self.started: float | None = None
        self.next = 0
        self.in_order = 0
        self.lost = 0
        self.out_of_order = 0


run = Run()


def set_value(v: int) -> None:
    if run.started is None:
        run.started = time.monotonic()
    if v == run.next:
        run.in_order += 1
    elif v > run.next:
        run.lost += v - run.next
        run.in_order += 1
    else:
        run.out_of_order += 1
        return
    run.next = v + 1
    if run.next % PROGRESS_EVERY == 0:
        flow.progress(run.next)


def each_value(calls: bytes):
    """The integer argument of each call of a run: `[v]` in CBOR, one after the other (the
    node checked each against `set-value(v: s32)` already)."""
    at, end = 0, len(calls)
    while at < end:
        # 0x81: an array of one item; then the integer's head: major type 0 (v) or 1
        # (-1 - v), with the value inline below 24, else in the next 1, 2 or 4 bytes.
        head = calls[at + 1]
        info = head & 0x1F
        if info < 24:
            n, at = info, at + 2
        else:
            size = 1 << (info - 24)
            n = int.from_bytes(calls[at + 2 : at + 2 + size], "big")
            at += 2 + size
        yield n if head < 0x20 else -1 - n


class Sink(exports.Sink):
    def set_value(self, v: int) -> None:
        set_value(v)

    def finish(self, count: int) -> None:
        global run
        done, run = run, Run()
        # Values never seen at the end were lost too.
        lost = done.lost + max(count - done.next, 0)
        secs = 0.0 if done.started is None else time.monotonic() - done.started
        rate = done.in_order / secs if secs > 0 else 0.0
        print(
            f"stress: {done.in_order} of {count} values in order in {secs:.3f} s "
            f"({rate:.0f} calls/s), {lost} lost, {done.out_of_order} out of order",
            flush=True,
        )


class RunEvents(exports.RunEvents):
    def on_run(self, function: str, calls: bytes) -> bool:
        global ONE_BY_ONE
        if ONE_BY_ONE is None:
            ONE_BY_ONE = "STRESS_ONE_BY_ONE" in os.environ
        if function != SET_VALUE or ONE_BY_ONE:
            return False
        for v in each_value(calls):
            set_value(v)
        return True
