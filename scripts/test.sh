#!/usr/bin/env bash
# The test command: builds the guests the end-to-end tests load, checks formatting and
# lints, then runs every test (unit tests, and end-to-end tests that start real dhost
# processes on loopback multicast). The last lines are cargo test's summary.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/build-guests.sh
cargo fmt --all -- --check
cargo clippy --locked --all-targets -- -D warnings
cargo test --locked 2>&1
