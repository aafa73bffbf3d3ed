#!/usr/bin/env bash
# Create .venv (if missing) and install erasable with the extras named in $ERASABLE_EXTRAS.
# Idempotent: re-running only installs what changed. torch is pinned to 2.13.0 (the CPU build).
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${ERASABLE_EXTRAS:-dev}"
if [ ! -x .venv/bin/python ]; then
    python3.11 -m venv .venv 2>/dev/null || python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[${extras}]"
