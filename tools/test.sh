#!/usr/bin/env bash
# The second command: set up, install the MQTT broker the tests start, run the whole suite,
# then (a whole run only) the device checks on Debian trixie, Raspberry Pi OS's base
# (tools/device-checks.sh: the install check in an arm64 root by default).
# Arguments go to pytest, e.g. tools/test.sh -k mqtt (no device checks then).
#   PAINMON_DEVICE_CHECKS="pi-check"   which checks follow the suite ("pi-check suite-trixie
#                                      ha-check" for all; "" none)
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh test,train,bench

if ! command -v mosquitto >/dev/null && [ ! -x /usr/sbin/mosquitto ]; then
  echo "installing mosquitto (the tests start their own broker on a free loopback port)"
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq mosquitto
  else sudo apt-get update -qq && sudo apt-get install -y -qq mosquitto; fi
fi

# The station's tests start their own PostgreSQL (as a non-root user) and drive Debian's
# Chromium through Playwright; neither is downloaded by pip.
missing=()
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
[ -x /usr/bin/chromium ] || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]} (the station tests start PostgreSQL and a headless Chromium)"
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq "${missing[@]}"
  else sudo apt-get update -qq && sudo apt-get install -y -qq "${missing[@]}"; fi
fi

# The code's own checks first: style, and the import layering (contracts in pyproject.toml).
.venv/bin/ruff check .
.venv/bin/lint-imports --no-cache

mkdir -p .cache
status=0
.venv/bin/python -m pytest "$@" 2>&1 | tee .cache/pytest-last.log || status=${PIPESTATUS[0]}
summary="$(grep -E '[0-9]+ (passed|failed)|no tests ran' .cache/pytest-last.log | tail -1 || true)"
[ "$status" = 0 ] || exit "$status"
[ $# -eq 0 ] || exit 0

status=0
bash tools/device-checks.sh || status=$?
# pytest's closing line last, for whoever reads the end of the log.
[ -z "$summary" ] || echo "$summary"
exit "$status"
