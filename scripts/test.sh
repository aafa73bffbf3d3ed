#!/usr/bin/env bash
# Set up .venv (see setup.sh) and run every check: lint, types, doctests and the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
ERASABLE_EXTRAS="${ERASABLE_EXTRAS-dev,text,image,test,memory,distributed,service,audit,browser}" bash scripts/setup.sh
.venv/bin/ruff check src tests benchmarks scripts
.venv/bin/ruff format --check src tests benchmarks scripts
.venv/bin/mypy
bash scripts/ensure_postgres.sh
bash scripts/ensure_chromium.sh
.venv/bin/python -m pytest -q -n 2 --doctest-modules src/erasable tests "$@"
