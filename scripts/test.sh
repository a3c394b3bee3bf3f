#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs what it needs, then lint, types, tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/install-components.sh
echo "== ruff"
.venv/bin/ruff check trustkit callout broker tests bench examples
echo "== mypy (strict on trustkit/)"
.venv/bin/mypy
echo "== pytest"
.venv/bin/python -m pytest -q "$@"
