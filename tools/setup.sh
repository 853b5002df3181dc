#!/usr/bin/env bash
# Create (or update) the project's virtual environment in .venv with the given extras.
#   tools/setup.sh demo        tools/setup.sh test,train
# Works on a fresh Debian / Raspberry Pi OS with python3: installs python3-venv when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
PY="${PYTHON:-python3}"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
  echo "painmon setup: need root for: $*" >&2; return 1; fi; }

if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "painmon needs Python >= 3.11; $PY is $("$PY" -V 2>&1)" >&2; exit 1
fi
if [ ! -x .venv/bin/python ]; then
  if ! "$PY" -m venv .venv 2>/dev/null; then
    rm -rf .venv
    as_root apt-get update -qq && as_root apt-get install -y -qq python3-venv
    "$PY" -m venv .venv
  fi
fi
stamp=".venv/.painmon-installed-${extras//,/-}"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".${extras:+[$extras]}"
  touch "$stamp"
fi
