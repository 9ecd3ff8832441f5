#!/usr/bin/env bash
# Builds every example guest for wasm32-wasip2 into target/guests/NAME.wasm.
# Adds the wasm32-wasip2 target first if the toolchain lacks it.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
    echo "build-guests: adding the wasm32-wasip2 target" >&2
    rustup target add wasm32-wasip2
fi

guests=(chat hello ticker hostile stress stress-sender kv kv-client mailbox-client group-watch)
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
"$cc" -O2 -Wall -Wextra -Werror -fPIC -shared -I guest-sdk/c \
    -o target/guests/group_ask.so tests/c/group_ask.c

# Guests in Python (componentize-py, which carries its own interpreter) and JavaScript
# (componentize-js, with SpiderMonkey), from guests/python/NAME/app.py and
# guests/js/NAME/NAME.js into target/guests/NAME-py.wasm and NAME-js.wasm: each a world of
# wit/, rebuilt when its sources or the WIT are newer. The tools are pinned
# (guests/python/requirements.txt, guests/js/package-lock.json) and installed under
# target/ on first use. Each line: NAME WORLD, then the folders of wit/ it needs besides
# wit/node, the world's own last.
python_guests=(
    "chat dhost:chat/chat-guest chat"
    "kv dhost:kv/kv-guest kv"
    "hostile dhost:hostile/hostile-guest chat hostile"
    "stress dhost:stress/stress-guest stress"
    "tour dhost:tour/tour-guest tour"
)
js_guests=(
    "chat dhost:chat/chat-guest chat"
    "stress dhost:stress/stress-guest stress"
    "tour dhost:tour/tour-guest tour"
)

# Whether $1 is missing or older than any file under the rest.
stale() {
    local out=$1
    shift
    [[ ! -f "$out" ]] || [[ -n "$(find "$@" -newer "$out" -print -quit)" ]]
}

venv=target/py-guest-venv
pinned=$(cat guests/python/requirements.txt)
if [[ "$("$venv/bin/componentize-py" --version 2>/dev/null)" != "componentize-py ${pinned#*==}" ]]; then
    echo "build-guests: installing $pinned into $venv" >&2
    scripts/python-venv.sh "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r guests/python/requirements.txt || {
        echo "build-guests: cannot install $pinned from PyPI: the Python guests cannot be built" >&2
        exit 1
    }
fi
for line in "${python_guests[@]}"; do
    read -r name world dirs <<<"$line"
    out="target/guests/$name-py.wasm"
    wit=(-d wit/node)
    for d in $dirs; do wit+=(-d "wit/$d"); done
    if stale "$out" "guests/python/$name" wit guests/python/requirements.txt; then
        echo "build-guests: componentize-py $world -> $out" >&2
        "$venv/bin/componentize-py" --quiet "${wit[@]}" -w "$world" \
            componentize -p "guests/python/$name" app -o "$out.tmp"
        mv "$out.tmp" "$out"
    fi
done

if ! command -v npm >/dev/null 2>&1; then
    scripts/apt-install.sh nodejs npm || {
        echo "build-guests: npm is not installed: the JavaScript guests need Node.js (18 or later) and npm" >&2
        exit 1
    }
fi
tools=target/js-toolchain
if ! cmp -s guests/js/package-lock.json "$tools/package-lock.json" ||
    [[ ! -x "$tools/node_modules/.bin/componentize-js" ]]; then
    echo "build-guests: installing componentize-js (guests/js/package-lock.json) into $tools" >&2
    mkdir -p "$tools"
    cp guests/js/package.json guests/js/package-lock.json "$tools/"
    (cd "$tools" && npm ci --no-audit --no-fund --loglevel=error) || {
        echo "build-guests: npm ci failed: the JavaScript guests cannot be built" >&2
        exit 1
    }
fi
for line in "${js_guests[@]}"; do
    read -r name world dirs <<<"$line"
    out="target/guests/$name-js.wasm"
    if stale "$out" "guests/js/$name" wit guests/js/package-lock.json; then
        # componentize-js reads one folder: the world's package, with every package it
        # uses as a file of deps/.
        staged="target/js-wit/$name"
        rm -rf "$staged"
        mkdir -p "$staged/deps"
        own=${dirs##* }
        cp "wit/$own"/*.wit "$staged/"
        for d in node node/deps ${dirs% *}; do
            [[ "$d" == "$own" ]] && continue
            for f in "wit/$d"/*.wit; do cp "$f" "$staged/deps/${d//\//-}-$(basename "$f")"; done
        done
        echo "build-guests: componentize-js $world -> $out" >&2
        # (Without wasi:http, which the node does not offer guests.)
        "$tools/node_modules/.bin/componentize-js" "guests/js/$name/$name.js" \
            --wit "$staged" --world-name "$world" --disable http fetch-event -o "$out.tmp" >/dev/null
        mv "$out.tmp" "$out"
    fi
done

echo "build-guests: built ${guests[*]} test_chat.so stress_sender.so stress_receiver.so raw_chat.so misuse.so typed_args.so group_ask.so, and in Python and JavaScript ${#python_guests[@]} and ${#js_guests[@]} guests into target/guests/" >&2
