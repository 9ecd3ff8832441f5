#!/usr/bin/env bash
# The demo, scripted: three `dhost run chat.wasm` nodes (ann, bob, cat) on one multicast
# group over loopback; each types two lines, and each node prints every message, its own
# included. For the interactive version, run the three nodes in three terminals (README).
set -euo pipefail
cd "$(dirname "$0")/.."

dhost=target/release/dhost
[ -x "$dhost" ] || dhost=target/debug/dhost
chat=target/guests/chat.wasm
[ -x "$dhost" ] && [ -f "$chat" ] || { echo "demo: run scripts/setup.sh first" >&2; exit 1; }

# A group and port of the demo's own, on loopback only.
group="239.255.$((RANDOM % 250 + 1)).$((RANDOM % 250 + 1)):$((RANDOM % 20000 + 30000))"
work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -INT "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

for n in ann bob cat; do
    mkfifo "$work/$n.in"
    "$dhost" run --name "$n" --group "$group" --iface 127.0.0.1 --ttl 0 "$chat" \
        <"$work/$n.in" >"$work/$n.out" 2>"$work/$n.err" &
    pids+=($!)
    exec {fd}>"$work/$n.in"
    eval "fd_$n=$fd"
done
for n in ann bob cat; do
    until grep -q "Username: " "$work/$n.out" 2>/dev/null; do sleep 0.05; done
done
say() { local fd="fd_$1"; echo "$2" >&"${!fd}"; }
for n in ann bob cat; do say "$n" "$n"; done
say ann "hello from ann"
say bob "hi ann, bob here"
say cat "cat says hi too"
say ann "see you all"
for n in ann bob cat; do
    for _ in $(seq 100); do
        [ "$(grep -o '\[[a-z]*\]: ' "$work/$n.out" | wc -l)" -ge 4 ] && break
        sleep 0.05
    done
done
for n in ann bob cat; do
    echo "--- node $n printed:"
    sed 's/^Username: //' "$work/$n.out"
done
