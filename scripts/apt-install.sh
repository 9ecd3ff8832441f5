#!/usr/bin/env bash
# scripts/apt-install.sh PACKAGE...: installs Debian packages that a script of this project
# needs (nftables for the tests, python3-venv, Node.js and npm for the JavaScript guests),
# quietly, refreshing the package lists only if the first try fails. It needs root and
# apt-get, and fails otherwise, naming the packages.
set -euo pipefail
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "apt-install: cannot install $* here (it takes root and apt-get)" >&2
    exit 1
fi
echo "apt-install: installing $*" >&2
apt-get install -y -qq "$@" >/dev/null 2>&1 ||
    { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq "$@" >/dev/null; }
