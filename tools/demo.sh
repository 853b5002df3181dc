#!/usr/bin/env bash
# The first command: set up, then run the demo (emulated board -> real drivers -> signal path
# -> MQTT). Arguments go to `painmon demo`, e.g. tools/demo.sh --seconds 60 --speed 2
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh demo
.venv/bin/painmon fetch-models || echo "painmon: face models unavailable; the demo runs without the face" >&2
exec .venv/bin/painmon demo "$@"
