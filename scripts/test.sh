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
if [ $# -eq 0 ]; then
    # Subprocess brokers above ran on uvloop (a dependency where it has wheels); the in-process
    # broker tests ran on asyncio's own loop. The server-facing suite once more on asyncio's:
    echo "== pytest: trustkit-broker conformance on plain asyncio (TRUSTKIT_BROKER_UVLOOP=0)"
    TRUSTKIT_BROKER_UVLOOP=0 .venv/bin/python -m pytest -q tests/conformance -k trustkit-broker
fi
