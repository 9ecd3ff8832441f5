#!/usr/bin/env bash
# The set-up command: installs what dhost needs on a Linux machine with Rust (the
# wasm32-wasip2 target), builds the guests and a release dhost (with dipc and dipcrm),
# copies them into ~/.cargo/bin (unless DHOST_NO_INSTALL=1), then runs the demo: three chat
# nodes on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/build-guests.sh
cargo build --release --locked -p dhost -p dhost-mailbox
if [ "${DHOST_NO_INSTALL:-0}" != 1 ]; then
    bin="${CARGO_HOME:-$HOME/.cargo}/bin"
    mkdir -p "$bin"
    for program in dhost dipc dipcrm; do
        install -m 755 "target/release/$program" "$bin/$program"
    done
    echo "setup: installed dhost, dipc and dipcrm into $bin (on your PATH if cargo is)" >&2
fi
scripts/demo.sh
