#!/usr/bin/env bash
# Builds every example guest for wasm32-wasip2 into target/guests/NAME.wasm.
# Adds the wasm32-wasip2 target first if the toolchain lacks it.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
    echo "build-guests: adding the wasm32-wasip2 target" >&2
    rustup target add wasm32-wasip2
fi

guests=(chat hello ticker hostile stress stress-sender kv kv-client mailbox-client)
args=()
for g in "${guests[@]}"; do args+=(-p "$g"); done
cargo build --profile guest --target wasm32-wasip2 "${args[@]}"

mkdir -p target/guests
for g in "${guests[@]}"; do
    # A library's file name has underscores where its package name has hyphens.
    built="target/wasm32-wasip2/guest/$g.wasm"
    [[ -f "$built" ]] || built="target/wasm32-wasip2/guest/${g//-/_}.wasm"
    cp "$built" "target/guests/$g.wasm"
done
# Native plugins (not sandboxed), built with the system C compiler.
cc=${CC:-cc}
# The C chat on dhost's header, exactly as a user builds it:
"$cc" -O2 -Wall -Wextra -Werror -fPIC -shared -I guest-sdk/c \
    -o target/guests/test_chat.so guests/c/test_chat/test_chat.c
# The two sides of the stress benchmark:
for side in sender receiver; do
    "$cc" -O2 -Wall -Wextra -Werror -fPIC -shared -I guest-sdk/c \
        -o "target/guests/stress_$side.so" "guests/c/stress/stress_$side.c"
done
# Test plugins: on the original raw-bytes ABI, misusing the ABI, and typed arguments.
for plugin in raw_chat misuse; do
    "$cc" -O2 -Wall -Werror -fPIC -shared -I tests/c -o "target/guests/$plugin.so" "tests/c/$plugin.c"
done
"$cc" -O2 -Wall -Wextra -Werror -fPIC -shared -I guest-sdk/c \
    -o target/guests/typed_args.so tests/c/typed_args.c
echo "build-guests: built ${guests[*]} test_chat.so stress_sender.so stress_receiver.so raw_chat.so misuse.so typed_args.so into target/guests/" >&2
