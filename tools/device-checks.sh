#!/usr/bin/env bash
# The device checks tools/test.sh runs after a whole suite that passed: the install on the
# Pi's OS and Python (pi-check: tools/pi-check.sh, an arm64 trixie root under qemu,
# install-pi.sh, painmon run for 60 s) and/or the suite on Python 3.13 (suite-trixie:
# tools/suite-trixie.sh) and/or a real Home Assistant discovering the demo (ha-check:
# tools/ha-check.sh). Which ones: $PAINMON_DEVICE_CHECKS (default "pi-check", chosen by run
# time: README "Python 3.13, and what CI runs"; "" for none). Exit 1 naming the check that
# failed.
set -euo pipefail
cd "$(dirname "$0")/.."
checks="${PAINMON_DEVICE_CHECKS-pi-check}"
for check in $checks; do
  case "$check" in
    pi-check|suite-trixie|ha-check) ;;
    *) echo "device-checks: unknown device check '$check' (pi-check, suite-trixie, ha-check)" >&2
       exit 2 ;;
  esac
  if [ "$(id -u)" != 0 ]; then
    # chroot and mounts need root; CI runs as root, so there a missing check is a failure.
    if [ "${CI:-}" = true ]; then
      echo "device-checks: FAILED: tools/$check.sh needs root" >&2; exit 1
    fi
    echo "device-checks: tools/$check.sh skipped (needs root: sudo tools/$check.sh)"
    continue
  fi
  started=$(date +%s)
  check_status=0
  # A hung download or emulated process must not eat CI's whole budget.
  timeout --foreground 30m bash "tools/$check.sh" || check_status=$?
  if [ "$check_status" != 0 ]; then
    [ "$check_status" = 124 ] && echo "device-checks: tools/$check.sh timed out after 30 min" >&2
    echo "device-checks: FAILED: tools/$check.sh (the pytest suite passed; see its output above)" >&2
    exit 1
  fi
  echo "device-checks: tools/$check.sh passed in $(( $(date +%s) - started )) s"
done
