#!/usr/bin/env bash
# The ward station beside the demo, in one command: a mosquitto on a free loopback port, the
# demo bed publishing to it, and `painmon station` serving the screen on http://127.0.0.1:8080/
# (log in as "demo" with the password printed below). Ctrl-C stops everything.
#   tools/station_demo.sh [--listen HOST:PORT] [--db URL]
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh demo,station
if ! command -v mosquitto >/dev/null && [ ! -x /usr/sbin/mosquitto ]; then
  echo "installing mosquitto (the station needs an MQTT 5 broker with shared subscriptions)"
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq mosquitto
  else sudo apt-get update -qq && sudo apt-get install -y -qq mosquitto; fi
fi
MOSQUITTO="$(command -v mosquitto || echo /usr/sbin/mosquitto)"
state="${XDG_STATE_HOME:-$HOME/.local/state}/painmon-station-demo"
mkdir -p "$state"
port="$(.venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\n%s' "$port" \
  "$([ "$(id -u)" = 0 ] && echo 'user root')" > "$state/mosquitto.conf"
"$MOSQUITTO" -c "$state/mosquitto.conf" >/dev/null 2>&1 &
pids=($!)
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null' EXIT INT TERM
password="$(.venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(12))')"
echo "$password" | .venv/bin/painmon station adduser demo --role nurse --state-dir "$state" >/dev/null
echo "painmon station demo: log in as demo / $password at the address the station prints"
.venv/bin/painmon fetch-models >/dev/null 2>&1 || echo "face models unavailable: the demo runs without the face" >&2
.venv/bin/painmon demo --broker "127.0.0.1:$port" >/dev/null 2>&1 &
pids+=($!)
.venv/bin/painmon station --broker "127.0.0.1:$port" --state-dir "$state" --insecure-cookies "$@" &
pids+=($!)
wait "${pids[-1]}"
