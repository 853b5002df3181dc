#!/usr/bin/env bash
# The second command: set up, install the MQTT broker the tests start, run the whole suite,
# then (a whole run only) the device checks on Debian trixie, Raspberry Pi OS's base.
# Arguments go to pytest, e.g. tools/test.sh -k mqtt (no device checks then).
#   PAINMON_DEVICE_CHECKS="pi-check"   which checks follow the suite (default below; "" none)
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh test,train,bench

if ! command -v mosquitto >/dev/null && [ ! -x /usr/sbin/mosquitto ]; then
  echo "installing mosquitto (the tests start their own broker on a free loopback port)"
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq mosquitto
  else sudo apt-get update -qq && sudo apt-get install -y -qq mosquitto; fi
fi

mkdir -p .cache
status=0
.venv/bin/python -m pytest "$@" 2>&1 | tee .cache/pytest-last.log || status=${PIPESTATUS[0]}
summary="$(grep -E '[0-9]+ (passed|failed)|no tests ran' .cache/pytest-last.log | tail -1 || true)"
[ "$status" = 0 ] || exit "$status"
[ $# -eq 0 ] || exit 0

# The install on the Pi's OS and Python (tools/pi-check.sh: arm64 trixie root under qemu,
# install-pi.sh, painmon run for 60 s) and/or the suite on Python 3.13 (tools/suite-trixie.sh).
# Chosen by run time: README "Continuous integration".
checks="${PAINMON_DEVICE_CHECKS-pi-check}"
for check in $checks; do
  case "$check" in
    pi-check|suite-trixie) ;;
    *) echo "tools/test.sh: unknown device check '$check' (pi-check, suite-trixie)" >&2; exit 2 ;;
  esac
  if [ "$(id -u)" != 0 ]; then
    # chroot and mounts need root; CI runs as root, so there a missing check is a failure.
    if [ "${CI:-}" = true ]; then
      echo "tools/test.sh: FAILED: tools/$check.sh needs root" >&2; exit 1
    fi
    echo "tools/test.sh: tools/$check.sh skipped (needs root: sudo tools/$check.sh)"
    continue
  fi
  started=$(date +%s)
  if ! bash "tools/$check.sh"; then
    echo "tools/test.sh: FAILED: tools/$check.sh (the pytest suite passed; see its output above)" >&2
    exit 1
  fi
  echo "tools/test.sh: tools/$check.sh passed in $(( $(date +%s) - started )) s"
done
# pytest's closing line last, for whoever reads the end of the log.
[ -z "$summary" ] || echo "$summary"
