#!/usr/bin/env bash
# How fast dhost is against its references, side by side in one run: multicast throughput
# of the DSTC stress test (WebAssembly, native, raw UDP), calls with a reply (beside a raw
# TCP ping-pong), the same through a Zenoh router (beside multicast, Zenoh's own pub/sub of
# the same bytes, and a direct call), start-up, one dispatch into a guest (beside a native
# call), and memory.
# Prints a table and writes target/bench/results.json. Run it after the README's set-up:
#
#   scripts/bench.sh [--runs N] [--count N] [--skip PART] ...   (--help for all options)
#
# Everything runs on this host: inside a private network namespace (only `lo`, multicast
# routed to it) when one can be made, else over loopback; always --iface 127.0.0.1 --ttl 0.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ "${DHOST_BENCH_IN_NETNS:-}" != 1 ]]; then
    scripts/build-guests.sh
    cargo build --release -p dhost --bins --example udp_stress --example zenoh_throughput --example zenoh_round_trip
    cargo bench -p dhost --bench hot_path --no-run
    # A namespace of our own: nothing the bench sends can leave, and no other traffic
    # shares the loopback. `unshare -rn` needs no privilege where user namespaces are on.
    if unshare -rn true 2>/dev/null; then
        echo "bench: in a private network namespace" >&2
        exec unshare -rn env DHOST_BENCH_IN_NETNS=1 "$0" "$@"
    fi
    echo "bench: cannot make a network namespace; on the host's loopback" >&2
else
    ip link set lo up
    ip route add 224.0.0.0/4 dev lo
fi
exec python3 scripts/bench/run.py "$@"
