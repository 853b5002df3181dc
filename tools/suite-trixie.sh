#!/usr/bin/env bash
# The test suite on Python 3.13, the Python of Debian 13 (trixie) and Raspberry Pi OS trixie,
# in an amd64 trixie root (tools/rootfs.sh): a venv with the test extras, then pytest.
#
#   sudo tools/suite-trixie.sh [PYTEST ARGS...]      default: the whole suite (tests/)
#   SUITE_EXTRAS=test,bench,train                    the extras installed (default test,bench:
#                                                    TensorFlow's training tests then skip)
#
# The root is cached in /var/cache/painmon/rootfs/trixie-amd64; each run works on a throwaway overlay of
# it, with the apt and pip downloads cached in /var/cache/painmon/suite-trixie-cache/. Exits with pytest's
# status (no test collected counts as a failure) and prints "suite-trixie: ok" or "FAILED".
set -euo pipefail
cd "$(dirname "$0")/.."
. tools/rootfs-lib.sh
trap 'status=$?; root_down; exit $status' EXIT
trap 'exit 130' INT TERM
args=("$@")
[ ${#args[@]} -gt 0 ] || args=(tests)

t0=$(date +%s)
root_up amd64 suite-trixie
t_root=$(date +%s)
# The test extras' system needs, as tools/test.sh installs them on the host.
in_root apt-get update -qq
# gcc and the headers: PyPI has no Python 3.13 x86_64 wheel of pyedflib, and spidev is source only;
# PostgreSQL and Chromium for the station's tests, as on the host.
in_root apt-get install -y -qq --no-install-recommends mosquitto gcc python3-dev postgresql \
  chromium >/dev/null
in_root python3 -m venv /opt/venv
in_root /opt/venv/bin/pip install -q --upgrade pip
in_root /opt/venv/bin/pip install -q -e "/usr/src/painmon[${SUITE_EXTRAS:-test,bench}]"
t_venv=$(date +%s)
in_root /opt/venv/bin/python -c 'import sys; print("suite-trixie: Python", sys.version.split()[0])'
status=0
in_root sh -c 'cd /usr/src/painmon && exec /opt/venv/bin/python -m pytest -p no:cacheprovider "$@"' \
  pytest "${args[@]}" || status=$?
t_end=$(date +%s)
echo "suite-trixie: root $((t_root - t0)) s, apt + venv with the test extras $((t_venv - t_root)) s," \
     "pytest $((t_end - t_venv)) s"
if [ "$status" = 0 ]; then
  echo "suite-trixie: ok (Python 3.13, ${args[*]}) in $((t_end - t0)) s"
else
  echo "suite-trixie: FAILED: pytest exited $status on Python 3.13 (${args[*]})" >&2
  exit 1
fi
