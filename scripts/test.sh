#!/usr/bin/env bash
# The test command: builds the guests the end-to-end tests load, checks formatting and
# lints, then runs every test (unit tests, the Python client's tests, and end-to-end tests
# that start real dhost processes on loopback multicast, some inside network namespaces of
# their own). The last lines are cargo test's summary.
set -euo pipefail
cd "$(dirname "$0")/.."

# The reliable-multicast tests inject loss with nftables inside network namespaces of
# their own (which needs root, as CI has): install nftables where it is missing.
if ! command -v nft >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    scripts/apt-install.sh nftables
fi
# The Zenoh TLS test makes its certificates with openssl.
if ! command -v openssl >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    scripts/apt-install.sh openssl
fi
scripts/build-guests.sh
cargo fmt --all -- --check
cargo clippy --locked --all-targets -- -D warnings
# The guest SDK on its own (building it with the node would unify their dependencies'
# features and rebuild wasmtime): its lints and its unit tests, then the node's whole suite.
cargo clippy --locked --all-targets -p dhost-guest -- -D warnings
cargo test --locked -p dhost-guest --quiet
# The Python client (clients/python), in a virtual environment of its own under target/,
# against real nodes: the debug dhost that cargo test uses too. (Its `zenoh` extra, Eclipse
# Zenoh's own package, is the stock router tests/zenoh.rs runs.)
cargo build --locked
venv=target/py-client-venv
scripts/python-venv.sh "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check -e './clients/python[keys,test,zenoh]'
"$venv/bin/python" -m pytest clients/python/tests -q -p no:cacheprovider
cargo test --locked 2>&1
