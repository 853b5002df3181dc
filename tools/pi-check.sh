#!/usr/bin/env bash
# The device install, proven in a Debian trixie root (the base of Raspberry Pi OS, Python 3.13):
# arm64 under qemu-user-static, or amd64. tools/install-pi.sh runs in it as a user runs it; then
# painmon --version, validate-config on the installed configuration, then that configuration
# on the emulated board with a folder of frames as its camera: probe, and `painmon run` as the
# service user for --seconds against a mosquitto in the root, whose messages must arrive. A system extension module built against the system numpy
# (Debian's python3-scipy, standing in for picamera2 and simplejpeg from Raspberry Pi's archive)
# must still import in the venv afterwards, with numpy the system's.
#
#   sudo tools/pi-check.sh [--arch arm64|amd64] [--seconds 60] [--keep]
#
# The root (tools/rootfs.sh, cached in /var/cache/painmon/rootfs/) stays pristine: the check runs on an
# overlay of it, thrown away at the end (--keep leaves it in .cache/pi-check/ARCH/). Downloads
# (apt, pip) are cached in /var/cache/painmon/pi-check-cache/ARCH/. Exit 0 and "pi-check: ok" when all
# holds; otherwise exit 1 and "pi-check: FAILED: what".
set -euo pipefail
cd "$(dirname "$0")/.."
arch=arm64
seconds=60
keep=0
while [ $# -gt 0 ]; do
  case "$1" in
    --arch) arch="$2"; shift 2 ;;
    --seconds) seconds="$2"; shift 2 ;;
    --keep) keep=1; shift ;;
    *) echo "pi-check.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "pi-check.sh: needs root (chroot, mounts)" >&2; exit 1; }

t_start=$(date +%s)
phase_start=$t_start
phase() {  # phase NAME: print how long the previous phase took
  local now; now=$(date +%s)
  [ -n "${phase_name:-}" ] && echo "pi-check: $phase_name took $((now - phase_start)) s"
  phase_name="$1"; phase_start=$now
  echo "== pi-check: $1"
}
fail() { echo "pi-check: FAILED: $*" >&2; exit 1; }

. tools/rootfs-lib.sh
trap 'status=$?; root_down; exit $status' EXIT
trap 'exit 130' INT TERM
[ "$keep" = 0 ] || export ROOT_KEEP=1

phase "the trixie $arch root"
root_up "$arch" pi-check || fail "could not set up the $arch root"
# The copy has no git metadata: hand the checkout's version (setuptools-scm, from the test
# extra) to the build, so the release is named as a build from the checkout would be.
for py in ${PYTHON:-} .venv/bin/python python3; do
  if v="$("$py" -m setuptools_scm 2>/dev/null)" && [ -n "$v" ]; then
    root_env=("SETUPTOOLS_SCM_PRETEND_VERSION_FOR_PAINMON=$v"); break
  fi
done

phase "what the check itself needs: a broker, and the stand-in system extension"
# Byte-compiling every module of a package at install is most of apt's time under qemu
# (python3-scipy: minutes); in this throwaway root Python compiles what it imports instead.
in_root dpkg-divert --quiet --local --rename --add /usr/bin/py3compile
in_root ln -s /bin/true /usr/bin/py3compile
in_root apt-get update -qq
in_root apt-get install -y -qq --no-install-recommends mosquitto mosquitto-clients python3-scipy >/dev/null
in_root python3 -c "import scipy.signal, scipy.ndimage, numpy; print('system numpy', numpy.__version__)"

phase "tools/install-pi.sh --no-start"
in_root bash /usr/src/painmon/tools/install-pi.sh --no-start || fail "tools/install-pi.sh exited $?"

phase "the installed device"
in_root test -L /opt/painmon/current || fail "no /opt/painmon/current link"
in_root test -x /opt/painmon/current/venv/bin/painmon || fail "no painmon in the current release"
version="$(in_root painmon --version)" || fail "painmon --version"
echo "painmon --version: $version"
in_root painmon validate-config /etc/painmon/painmon.toml || fail "validate-config on the installed configuration"
in_root /opt/painmon/current/venv/bin/python -c '
import sys, numpy, scipy.signal, scipy.ndimage
assert numpy.__file__.startswith("/usr/lib/python3/dist-packages/"), f"numpy from {numpy.__file__}"
assert scipy.__file__.startswith("/usr/lib/python3/dist-packages/"), f"scipy from {scipy.__file__}"
scipy.signal.butter(2, 0.1)  # the extension module runs on this numpy
print(f"venv: system numpy {numpy.__version__} and the system extension (scipy {scipy.__version__}) import")
' || fail "the system extension module or the system numpy is not what the venv imports"
shadowing="$(in_root sh -c 'ls -d /opt/painmon/current/venv/lib/python3*/site-packages/* 2>/dev/null' \
  | grep -i -E '/(numpy|opencv|cv2)' || true)"
[ -z "$shadowing" ] || fail "the venv carries its own copy of a system package: $shadowing"
in_root test -f /etc/systemd/system/painmon.service || fail "unit not installed"
in_root test -L /etc/systemd/system/multi-user.target.wants/painmon.service || fail "unit not enabled"
in_root test -f /etc/udev/rules.d/60-painmon.rules || fail "udev rules not installed"
in_root id -nG painmon | grep -qw i2c || fail "service user painmon is not in group i2c"
in_root sh -c 'ls /var/lib/painmon/models/*.tflite >/dev/null' || fail "face models not fetched"

as_service() {  # the service's user and environment, as painmon.service sets them
  in_root runuser -u painmon -- env HOME=/var/lib/painmon STATE_DIRECTORY=/var/lib/painmon \
    PAINMON_MODEL_DIR=/var/lib/painmon/models PAINMON_HARDWARE=emulated PYTHONUNBUFFERED=1 "$@"
}

# The installed configuration, on the emulated board, publishing to the root's broker, its
# camera a folder of frames (a photo of a face; .npy needs no OpenCV): the root has no camera,
# and picamera2 lives in Raspberry Pi's archive.
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
frames="$root/var/lib/painmon/check-frames"
mkdir -p "$frames"
for py in ${PYTHON:-} .venv/bin/python python3; do
  PYTHONPATH="$PWD" "$py" -c "import sys, numpy; from sensors.emulated.photo import astronaut_photo; numpy.save(sys.argv[1], astronaut_photo())" \
    "$frames/frame-00000.npy" 2>/dev/null && break
done
[ -f "$frames/frame-00000.npy" ] || fail "could not write the camera's frames (needs scikit-image: the test extra)"
for i in $(seq 1 $(( (seconds + 30) * 10 ))); do ln -s frame-00000.npy "$frames/$(printf 'frame-%05d.npy' "$i")"; done
in_root chown -R painmon:painmon /var/lib/painmon/check-frames
sed -e "s/^port = 1883/port = $port/" -e "s#^camera = .*#camera = \"/var/lib/painmon/check-frames\"#" \
  -e 's/^hardware = .*/hardware = "emulated"/' "$root/etc/painmon/painmon.toml" > "$root/run/pi-check.toml"
grep -q "^port = $port" "$root/run/pi-check.toml" || fail "could not point the configuration at port $port"
grep -q '^camera = "/var/lib/painmon/check-frames"' "$root/run/pi-check.toml" \
  || fail "could not point the configuration's camera at the frames"
chmod 0644 "$root/run/pi-check.toml"

phase "painmon probe (emulated hardware)"
as_service /opt/painmon/current/venv/bin/painmon probe --config /run/pi-check.toml || fail "painmon probe"

phase "painmon run for $seconds s against mosquitto in the root"
printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\n' "$port" > "$root/run/pi-check-mosquitto.conf"
root_background mosquitto -c /run/pi-check-mosquitto.conf > "$work/mosquitto.log" 2>&1
for _ in $(seq 100); do
  python3 -c "import socket,sys; s=socket.socket(); s.settimeout(0.2); sys.exit(s.connect_ex(('127.0.0.1', $port)))" && break
  sleep 0.3
done
root_background mosquitto_sub -h 127.0.0.1 -p "$port" -V mqttv5 -t 'painmon/#' -v > "$work/messages.txt" 2>&1
sleep 3
run_status=0
as_service /opt/painmon/current/venv/bin/painmon run --config /run/pi-check.toml --seconds "$seconds" \
  > "$work/painmon-run.log" 2>&1 || run_status=$?
sleep 2
tail -n 15 "$work/painmon-run.log"
[ "$run_status" = 0 ] || fail "painmon run exited $run_status (log above)"

count() { grep -c "^painmon/bed-12/$1 " "$work/messages.txt" || true; }
vitals=$(count vitals); pain=$(count pain); health=$(count health); face=$(count face)
echo "messages in $seconds s: vitals $vitals, pain $pain, face $face, health $health," \
     "status: $(grep '^painmon/bed-12/status ' "$work/messages.txt" | tail -1 | cut -c1-80)"
grep -q '^painmon/bed-12/status .*"online"' "$work/messages.txt" || fail "no status online"
# One vitals message per second of processed signal once the 10 s window is full; under qemu
# the device runs slower than real time, so half of that is the floor.
[ "$vitals" -ge $(( (seconds - 10) / 2 )) ] || fail "only $vitals vitals messages in $seconds s"
[ "$pain" -ge 1 ] || fail "no pain estimate arrived"
[ "$health" -ge 1 ] || fail "no health message arrived"
[ "$face" -ge 1 ] || fail "no face estimate arrived (the face models on this machine's runtime)"

phase "done"
echo "pi-check: ok ($arch, $version) in $(( $(date +%s) - t_start )) s"
