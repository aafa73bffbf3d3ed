#!/usr/bin/env bash
# Set up .venv (see setup.sh) and run the main job: the class-incremental learn / forget demo.
set -euo pipefail
cd "$(dirname "$0")/.."
ERASABLE_EXTRAS="${ERASABLE_EXTRAS-}" bash scripts/setup.sh
.venv/bin/python -m erasable.demo "$@"
