#!/usr/bin/env bash
# Install painmon as a service on a Raspberry Pi 4/5 (Raspberry Pi OS bookworm) or a Jetson
# (JetPack/Ubuntu): a system user, a venv under /opt/painmon, the example configuration in
# /etc/painmon/, udev rules for the buses, the face models, and the systemd unit.
#
#   sudo bash tools/install-pi.sh [--prefix /opt/painmon] [--extras camera,record]
#                                 [--no-start] [--dry-run]
#
# Re-running upgrades the venv and the unit; it never overwrites /etc/painmon/painmon.toml
# or the MQTT password file.
set -euo pipefail

SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PREFIX=/opt/painmon
EXTRAS=camera,record
START=1
DRY_RUN=0
SERVICE_USER=painmon
CONF_DIR=/etc/painmon
STATE_DIR=/var/lib/painmon
UNIT_DIR=/etc/systemd/system

usage() { sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) PREFIX="$2"; shift 2 ;;
        --extras) EXTRAS="$2"; shift 2 ;;
        --no-start) START=0; shift ;;
        --dry-run) DRY_RUN=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "install-pi.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
    esac
done

run() {
    echo "+ $*"
    if [ "$DRY_RUN" = 0 ]; then "$@"; fi
}

if [ "$DRY_RUN" = 0 ] && [ "$(id -u)" != 0 ]; then
    echo "install-pi.sh: run as root (sudo bash $0)" >&2
    exit 1
fi

echo "== system packages"
run apt-get update
run apt-get install -y --no-install-recommends python3 python3-venv python3-dev i2c-tools
if command -v raspi-config >/dev/null 2>&1; then
    echo "== Raspberry Pi: enable I2C, SPI and the camera"
    run raspi-config nonint do_i2c 0
    run raspi-config nonint do_spi 0
    # picamera2 comes from the OS (libcamera bindings are not on PyPI): the venv sees it.
    run apt-get install -y --no-install-recommends python3-picamera2
    SYSTEM_SITE=--system-site-packages
elif [ -e /etc/nv_tegra_release ]; then
    echo "== Jetson: enable I2C/SPI pins with 'sudo /opt/nvidia/jetson-io/jetson-io.py' if needed"
    SYSTEM_SITE=
else
    SYSTEM_SITE=
fi

echo "== groups and the service user"
for group in gpio i2c spi video; do
    run groupadd --system -f "$group"
done
if ! id "$SERVICE_USER" >/dev/null 2>&1; then
    run useradd --system --user-group --home-dir "$STATE_DIR" --no-create-home \
        --shell /usr/sbin/nologin --comment "painmon service" "$SERVICE_USER"
fi
run usermod -a -G gpio,i2c,spi,video "$SERVICE_USER"

echo "== udev rules (Raspberry Pi OS has them; Jetson and plain Debian do not)"
RULES=/etc/udev/rules.d/60-painmon.rules
if [ "$DRY_RUN" = 0 ]; then
    cat > "$RULES" <<'EOF'
# painmon: the service user reaches the buses through these groups.
SUBSYSTEM=="i2c-dev", GROUP="i2c", MODE="0660"
SUBSYSTEM=="spidev", GROUP="spi", MODE="0660"
SUBSYSTEM=="gpio", KERNEL=="gpiochip*", GROUP="gpio", MODE="0660"
KERNEL=="gpiomem", GROUP="gpio", MODE="0660"
EOF
else
    echo "+ write $RULES"
fi
run udevadm control --reload-rules
run udevadm trigger

echo "== venv in $PREFIX"
run mkdir -p "$PREFIX"
run python3 -m venv ${SYSTEM_SITE:+"$SYSTEM_SITE"} "$PREFIX/venv"
run "$PREFIX/venv/bin/pip" install --upgrade pip
run "$PREFIX/venv/bin/pip" install --upgrade "$SRC[$EXTRAS]"

echo "== configuration in $CONF_DIR"
run install -d -m 0755 "$CONF_DIR"
if [ ! -e "$CONF_DIR/painmon.toml" ]; then
    run install -m 0644 "$SRC/systemd/painmon.example.toml" "$CONF_DIR/painmon.toml"
fi
if [ ! -e "$CONF_DIR/mqtt-password" ]; then
    # LoadCredential= needs the file; leave it empty when the broker takes no password.
    run install -m 0600 -o root -g root /dev/null "$CONF_DIR/mqtt-password"
fi
run "$PREFIX/venv/bin/painmon" validate-config "$CONF_DIR/painmon.toml"

echo "== state and the face models in $STATE_DIR"
run install -d -m 0750 -o "$SERVICE_USER" -g "$SERVICE_USER" "$STATE_DIR"
run runuser -u "$SERVICE_USER" -- env PAINMON_MODEL_DIR="$STATE_DIR/models" \
    "$PREFIX/venv/bin/painmon" fetch-models

echo "== systemd unit"
if [ "$PREFIX" = /opt/painmon ]; then
    run install -m 0644 "$SRC/systemd/painmon.service" "$UNIT_DIR/painmon.service"
elif [ "$DRY_RUN" = 0 ]; then
    sed "s#/opt/painmon#$PREFIX#g" "$SRC/systemd/painmon.service" > "$UNIT_DIR/painmon.service"
else
    echo "+ install painmon.service with $PREFIX"
fi
run systemctl daemon-reload
if [ "$START" = 1 ]; then
    run systemctl enable --now painmon.service
    echo "painmon is running: journalctl -u painmon -f"
else
    run systemctl enable painmon.service
    echo "painmon is installed; start it with: systemctl start painmon"
fi
