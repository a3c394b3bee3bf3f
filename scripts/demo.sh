#!/usr/bin/env bash
# The main job on a fresh machine: set up, then run the embedded default (trustkit CLI + trustkit-broker).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python examples/embedded.py "$@"
