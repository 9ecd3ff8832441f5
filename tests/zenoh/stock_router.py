#!/usr/bin/env python3
"""A stock Zenoh router for the tests: Eclipse Zenoh's own Python package (`eclipse-zenoh`
from PyPI, which scripts/test.sh installs into target/py-client-venv) opened in router
mode, with nothing of dhost in it, to show that nodes need no router of dhost's.

    python3 stock_router.py ENDPOINT...      (such as tcp/127.0.0.1:7447)

It prints `stock router ZID listening on [...]` once it listens, and stops on SIGTERM or
SIGINT.
"""

import json
import signal
import sys
import threading

import zenoh


def main():
    endpoints = sys.argv[1:] or ["tcp/127.0.0.1:7447"]
    config = zenoh.Config()
    config.insert_json5("mode", json.dumps("router"))
    config.insert_json5("listen/endpoints", json.dumps(endpoints))
    config.insert_json5("scouting/multicast/enabled", "false")
    session = zenoh.open(config)
    print(f"stock router {session.zid()} listening on {endpoints}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    session.close()


if __name__ == "__main__":
    main()
