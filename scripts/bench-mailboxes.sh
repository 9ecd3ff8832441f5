#!/usr/bin/env bash
# Operations per second of 50 clients doing 1 KiB reads and writes on a dipc server on
# loopback (mailbox/benches/mailbox_load.rs), beside redis-benchmark GET/SET with 50 clients
# and 1 KiB values on the same machine, when redis-server and redis-benchmark are there
# (Debian: apt-get install redis-server). Everything stays on 127.0.0.1.
#
#   scripts/bench-mailboxes.sh [CLIENTS] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
clients=${1:-50}
seconds=${2:-5}

if ! command -v redis-server >/dev/null || ! command -v redis-benchmark >/dev/null; then
    echo "(no redis-server / redis-benchmark here: no baseline)"
    exec cargo bench -q -p dhost-mailbox --bench mailbox_load -- "$clients" "$seconds"
fi
port=$((30000 + RANDOM % 20000))
redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no >/dev/null &
redis=$!
trap 'kill $redis 2>/dev/null || true' EXIT
for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
REDIS_PORT=$port cargo bench -q -p dhost-mailbox --bench mailbox_load -- "$clients" "$seconds"
echo "redis-benchmark, $clients clients, 1 KiB values, no pipelining:"
redis-benchmark -h 127.0.0.1 -p "$port" -c "$clients" -n $((clients * 4000)) -d 1024 \
    -t set,get -q 2>&1 | tr '\r' '\n' | grep "requests per second"
