#!/usr/bin/env bash
# Home Assistant as the test: a real Home Assistant discovers the demo device over MQTT.
#   bash tools/ha-check.sh [--speed X] [--screenshot FILE.png]
# (--screenshot needs Playwright in the venv and Debian's chromium.)
# Builds (once) a Debian trixie root (tools/rootfs.sh --arch amd64, Python 3.13) and installs
# Home Assistant $HA_VERSION in a venv inside it (once), starts it on a loopback port with a
# fresh configuration, onboards it and adds the MQTT integration through its HTTP API, starts a
# mosquitto on a free loopback port and `painmon demo` against it, then tools/ha_check.py
# asserts over Home Assistant's REST API (entities, states, a sensor fault, the acknowledge
# button) and reads Home Assistant's log for MQTT warnings. Run as root (chroot, mounts).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
# The newest release pip offers for the root's Python 3.13; pinned so that a new release is a
# deliberate change, checked by this script first.
HA_VERSION=2026.2.3
venv=/opt/homeassistant
# painmon's side (the demo, the check's REST and MQTT clients) runs from the checkout's .venv.
python=${PAINMON_PYTHON:-}
if [ -z "$python" ]; then
  [ -x .venv/bin/python ] || tools/setup.sh demo >&2
  python=.venv/bin/python
fi
[ "$(id -u)" = 0 ] || { echo "ha-check.sh: needs root (chroot, mounts)" >&2; exit 1; }
command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto >&2; }
mosquitto_bin=$(command -v mosquitto || echo /usr/sbin/mosquitto)

t_start=$(date +%s)
root=$(tools/rootfs.sh --arch amd64)
t_root=$(date +%s)

work=$(mktemp -d "$root/tmp/ha-check.XXXXXX")
pids=()
cleanup() {
  local pid
  # Newest first: Home Assistant stops before its broker goes away.
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    kill "${pids[$i]}" 2>/dev/null || true
    for _ in $(seq 60); do kill -0 "${pids[$i]}" 2>/dev/null || break; sleep 0.5; done
    kill -9 "${pids[$i]}" 2>/dev/null || true; wait "${pids[$i]}" 2>/dev/null || true
  done
  for m in "$root/sys" "$root/dev" "$root/proc"; do
    mountpoint -q "$m" && { umount -R "$m" 2>/dev/null || umount -Rl "$m"; }
  done
  [ -n "${PAINMON_HA_KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mountpoint -q "$root/proc" || mount -t proc proc "$root/proc"
mountpoint -q "$root/sys" || mount -t sysfs sysfs "$root/sys"
if ! mountpoint -q "$root/dev"; then mount --rbind /dev "$root/dev"; mount --make-rslave "$root/dev"; fi
# An array, not a function: started with & its pid is chroot's, which execs into the command.
in_root=(chroot "$root" env -i PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin HOME=/root
  LANG=C.UTF-8 SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt UV_NATIVE_TLS=1
  DEBIAN_FRONTEND=noninteractive)

stamp="$root$venv/.painmon-ha-version"
if [ "$(cat "$stamp" 2>/dev/null)" != "$HA_VERSION" ]; then
  echo "ha-check.sh: installing Home Assistant $HA_VERSION into $root$venv" >&2
  # A few of its pinned dependencies (lru-dict) have no wheel for 3.13 and are compiled.
  "${in_root[@]}" sh -c 'apt-get update -qq && apt-get install -y -qq --no-install-recommends \
    gcc g++ libc6-dev python3-dev >/dev/null'
  rm -rf "$root$venv"
  "${in_root[@]}" python3 -m venv "$venv"
  "${in_root[@]}" "$venv/bin/pip" install -q "homeassistant==$HA_VERSION"
  # What the frontend, the MQTT integration and the integrations onboarding sets up need
  # (with their dependencies), installed now rather than at first start.
  reqs=$("${in_root[@]}" "$venv/bin/python" -c '
import json, pathlib, homeassistant.components as c
base = pathlib.Path(c.__file__).parent
todo = ["frontend", "mqtt", "conversation", "google_translate", "tts", "met", "radio_browser",
        "shopping_list",
        # imported when the frontend lists the services (helpers/service.py, _base_components)
        "ai_task", "alarm_control_panel", "assist_satellite", "calendar", "camera", "climate",
        "cover", "fan", "humidifier", "light", "lock", "media_player", "notify", "remote",
        "siren", "todo", "update", "vacuum", "water_heater", "stream"]
seen, reqs = set(), []
while todo:
    domain = todo.pop()
    if domain in seen or not (base / domain / "manifest.json").exists():
        continue
    seen.add(domain)
    manifest = json.loads((base / domain / "manifest.json").read_text())
    reqs += [r for r in manifest.get("requirements", []) if r not in reqs]
    todo += manifest.get("dependencies", []) + manifest.get("after_dependencies", [])
print(" ".join(reqs))')
  "${in_root[@]}" "$venv/bin/pip" install -q $reqs
  "${in_root[@]}" "$venv/bin/python" -c \
    'from homeassistant.helpers.service import _base_components; _base_components()'
  echo "$HA_VERSION" > "$stamp"
fi
t_install=$(date +%s)

free_port() { "$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
mqtt_port=$(free_port)
http_port=$(free_port)
printf 'listener %s 127.0.0.1\nallow_anonymous true\n' "$mqtt_port" > "$work/mosquitto.conf"
"$mosquitto_bin" -c "$work/mosquitto.conf" > "$work/mosquitto.log" 2>&1 &
pids+=($!)

config="$work/config"
mkdir -p "$config"
cat > "$config/configuration.yaml" <<EOF
homeassistant:
  name: painmon check
  time_zone: UTC
  country: DE
  unit_system: metric
http:
  server_host: 127.0.0.1
  server_port: $http_port
frontend:
EOF
"${in_root[@]}" "$venv/bin/hass" --config "${config#$root}" > "$work/hass.out" 2>&1 &
pids+=($!)

set +e
PYTHONPATH="$repo" STATE_DIRECTORY="$work/painmon-state" "$python" -m tools.ha_check \
  --ha "http://127.0.0.1:$http_port" --broker "127.0.0.1:$mqtt_port" \
  --log "$config/home-assistant.log" --ha-version "$HA_VERSION" "$@" \
  --timings "root_s=$((t_root - t_start)) install_s=$((t_install - t_root))"
rc=$?
set -e
if [ $rc -ne 0 ]; then
  echo "ha-check.sh: FAILED; Home Assistant's output:" >&2
  tail -n 40 "$work/hass.out" >&2 || true
fi
echo "ha-check.sh: $(( $(date +%s) - t_start )) s in all (root $((t_root - t_start)) s, install $((t_install - t_root)) s)" >&2
exit $rc
