#!/usr/bin/env bash
# scripts/python-venv.sh DIR: makes a Python virtual environment in DIR unless it is
# there, installing Debian's python3-venv first where python3's venv module is missing
# (and the script runs as root with apt-get). Used by build-guests.sh (componentize-py)
# and test.sh (the Python client's tests).
set -euo pipefail
venv=${1:?usage: scripts/python-venv.sh DIR}
[ -x "$venv/bin/python" ] && exit 0
command -v python3 >/dev/null || { echo "python-venv: python3 is not installed" >&2; exit 1; }
if ! python3 -m venv "$venv" 2>/dev/null; then
    "$(dirname "$0")/apt-install.sh" python3-venv ||
        { echo "python-venv: python3 -m venv $venv failed: install python3-venv" >&2; exit 1; }
    rm -rf "$venv"
    python3 -m venv "$venv"
fi
