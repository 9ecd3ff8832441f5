#!/usr/bin/env bash
# Round trips of calls with replies on loopback: a `get` from the kv-client guest on one
# node to the kv guest of another node (TCP), beside the same `get` served by a kv guest on
# the caller's own node (no network), and beside a bare TCP ping-pong between two
# processes (scripts/bench/tcp_ping_pong.py, if python3 is there): the baselines, in the
# same run.
#
#   scripts/bench-calls.sh [COUNT]      (default 10000; uses the release build)
#
# Traffic stays on this machine: loopback, TTL 0, a group of its own.
set -euo pipefail
cd "$(dirname "$0")/.."
count=${1:-10000}
dhost=target/release/dhost
cargo build --release --quiet
scripts/build-guests.sh 2>/dev/null
group="239.255.$((RANDOM % 250 + 1)).$((RANDOM % 250 + 1)):$((20000 + RANDOM % 20000))"
net=(--group "$group" --iface 127.0.0.1 --ttl 0)

"$dhost" run "${net[@]}" --name bench-server target/guests/kv.wasm &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 50); do
    "$dhost" call "${net[@]}" bench-server 'dhost:kv/store#put' '"k"' '"a value of some length"' \
        >/dev/null 2>&1 && break
    sleep 0.1
done

client() {
    "$dhost" run "${net[@]}" --name "$1" "${@:2}"
}
echo "remote, a key with a value (kv-client on one node, kv on another, over TCP):"
client bench-client target/guests/kv-client.wasm -- --node bench-server bench "$count" k
echo "remote, a missing key:"
client bench-client target/guests/kv-client.wasm -- --node bench-server bench "$count" missing
echo "local baseline, a missing key (kv-client and kv on the same node, no network):"
client bench-local target/guests/kv.wasm target/guests/kv-client.wasm -- \
    --node bench-local bench "$count" missing
if command -v python3 >/dev/null; then
    echo "floor: a bare TCP ping-pong between two processes (python3):"
    python3 scripts/bench/tcp_ping_pong.py "$count"
fi
