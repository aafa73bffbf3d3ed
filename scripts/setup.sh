#!/usr/bin/env bash
# Create .venv (if missing) and install erasable with the extras listed in $ERASABLE_EXTRAS
# (comma-separated, e.g. "dev,text"; empty for the library alone). Idempotent.
# torch is pinned to 2.13.0, the CPU build this machine provides, and installed first, so that
# no other requirement can pull a CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${ERASABLE_EXTRAS-dev}"
if [ ! -x .venv/bin/python ]; then
    python3.11 -m venv .venv 2>/dev/null || python3 -m venv .venv
fi
pip() { .venv/bin/python -m pip --disable-pip-version-check --quiet "$@"; }
if [[ ",${extras}," =~ ,(text|image), ]]; then
    pip install "torch==2.13.0"
fi
pip install -e ".${extras:+[${extras}]}"
