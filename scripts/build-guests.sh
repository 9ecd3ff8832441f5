#!/usr/bin/env bash
# Builds every example guest for wasm32-wasip2 into target/guests/NAME.wasm.
# Adds the wasm32-wasip2 target first if the toolchain lacks it.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
    echo "build-guests: adding the wasm32-wasip2 target" >&2
    rustup target add wasm32-wasip2
fi

guests=(chat hello ticker hostile)
args=()
for g in "${guests[@]}"; do args+=(-p "$g"); done
cargo build --profile guest --target wasm32-wasip2 "${args[@]}"

mkdir -p target/guests
for g in "${guests[@]}"; do
    cp "target/wasm32-wasip2/guest/$g.wasm" "target/guests/$g.wasm"
done
echo "build-guests: built ${guests[*]} into target/guests/" >&2
