#!/usr/bin/env bash
# Install painmon as a service on a Raspberry Pi 4/5 (Raspberry Pi OS trixie or bookworm,
# 64-bit): a system user, a release under /opt/painmon/releases/<version> with its venv, the
# example configuration in /etc/painmon/, udev rules for the buses, the face models, the unit.
#
#   sudo bash tools/install-pi.sh [--prefix /opt/painmon] [--opencv] [--no-start] [--no-models]
#                                 [--dry-run]
#
# --opencv installs the distribution's OpenCV (python3-opencv) for V4L2/USB cameras, video
# files and GStreamer; the Pi camera (picamera2) needs none. The venv gets exactly
# requirements/device-py<3XX>-<machine>.txt (locked) and painmon. Re-running it installs the
# checkout's version beside the running one and switches /opt/painmon/current to it; it never
# overwrites /etc/painmon/painmon.toml or the MQTT password file.
set -euo pipefail

SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PREFIX=/opt/painmon
OPENCV=0
START=1
MODELS=1
DRY_RUN=0
SERVICE_USER=painmon
CONF_DIR=/etc/painmon
STATE_DIR=/var/lib/painmon
UNIT_DIR=/etc/systemd/system

usage() { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) PREFIX="$2"; shift 2 ;;
        --opencv) OPENCV=1; shift ;;
        --no-start) START=0; shift ;;
        --no-models) MODELS=0; shift ;;
        --dry-run) DRY_RUN=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "install-pi.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
    esac
done

run() {
    echo "+ $*"
    if [ "$DRY_RUN" = 0 ]; then "$@"; fi
}
fail() { echo "install-pi.sh: $*" >&2; exit 1; }

if [ "$DRY_RUN" = 0 ] && [ "$(id -u)" != 0 ]; then
    fail "run as root (sudo bash $0)"
fi
# systemd is not running in a chroot or a container being prepared as an image: the unit is
# then installed and enabled for the next boot, not started.
SYSTEMD_RUNNING=0
[ -d /run/systemd/system ] && SYSTEMD_RUNNING=1

echo "== system packages"
export DEBIAN_FRONTEND=noninteractive
# The device's numpy is the distribution's: picamera2 and simplejpeg (Raspberry Pi's archive)
# and python3-opencv are built against it, so the venv sees it and never installs its own.
PACKAGES=(python3 python3-venv python3-numpy i2c-tools)
run apt-get update
# spidev is source-only on PyPI: take the distribution's build, or a compiler to build it.
if [ "$DRY_RUN" = 1 ] || apt-cache show python3-spidev >/dev/null 2>&1; then
    PACKAGES+=(python3-spidev)
else
    PACKAGES+=(gcc python3-dev)
fi
# Off the Pi (a PC standing in for a device) PyPI lacks some wheels (pyedflib on 3.13).
[ "$(uname -m)" = aarch64 ] || PACKAGES+=(gcc python3-dev)
[ "$OPENCV" = 1 ] && PACKAGES+=(python3-opencv)
IS_PI=0
if command -v raspi-config >/dev/null 2>&1; then
    IS_PI=1
    # picamera2 comes from the OS (libcamera's bindings are not on PyPI): the venv sees it.
    PACKAGES+=(python3-picamera2)
fi
run apt-get install -y --no-install-recommends "${PACKAGES[@]}"
if [ "$IS_PI" = 1 ]; then
    echo "== Raspberry Pi: enable I2C and SPI"
    run raspi-config nonint do_i2c 0
    run raspi-config nonint do_spi 0
elif [ -e /etc/nv_tegra_release ]; then
    echo "== a Jetson: not supported (README, 'On a device'); continuing as on plain Debian"
fi

echo "== the dependency lock"
if [ "$DRY_RUN" = 0 ]; then
    PYVER="$(python3 -c 'import sys; print(f"{sys.version_info[0]}{sys.version_info[1]}")')"
else
    PYVER=313
fi
LOCK="$SRC/requirements/device-py$PYVER-$(uname -m).txt"
[ -f "$LOCK" ] || fail "no lock for Python ${PYVER:0:1}.${PYVER:1} on $(uname -m) ($LOCK): generate it with tools/lock.sh"
echo "lock: $LOCK"
if [ "$DRY_RUN" = 0 ]; then
    # What the distribution provides must be what the lock pins, or pip would install a
    # second copy in the venv that shadows it.
    python3 - "$LOCK" <<'EOF' || exit 1
import re, sys
from importlib import metadata
pins = dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", open(sys.argv[1]).read(), re.M))
for name in ("numpy", "spidev"):
    try:
        have = metadata.version(name)
    except metadata.PackageNotFoundError:
        continue
    if name in pins and pins[name] != have:
        sys.exit(f"install-pi.sh: the system has {name} {have} but {sys.argv[1]} pins "
                 f"{pins[name]}: regenerate the lock for this OS (tools/lock.sh)")
EOF
fi

echo "== build the release"
BUILD="$(mktemp -d /tmp/painmon-build.XXXXXX)"
trap 'rm -rf "$BUILD"' EXIT
# The system's pip builds it when there is one (Raspberry Pi OS has python3-pip), else a
# throwaway venv's; the build itself runs isolated either way.
if [ "$DRY_RUN" = 0 ] && python3 -m pip --version >/dev/null 2>&1; then
    BUILD_PIP=(python3 -m pip)
else
    run python3 -m venv "$BUILD/venv"
    BUILD_PIP=("$BUILD/venv/bin/pip")
fi
run "${BUILD_PIP[@]}" wheel --quiet --no-deps --wheel-dir "$BUILD/wheel" "$SRC"
if [ "$DRY_RUN" = 0 ]; then
    WHEEL="$(ls "$BUILD"/wheel/painmon-*.whl)"
    VERSION="$(basename "$WHEEL" | cut -d- -f2)"
else
    WHEEL="$BUILD/wheel/painmon-VERSION-py3-none-any.whl"
    VERSION=VERSION
fi
RELEASE="$PREFIX/releases/$VERSION"
echo "release: $VERSION in $RELEASE"

echo "== venv in $RELEASE"
# A venv holds absolute paths, so it is built where it stays; the service runs the release
# that $PREFIX/current points to, never one being built. The current release itself (the
# same version installed again) is updated in place.
if [ "$DRY_RUN" = 1 ] || [ ! -L "$PREFIX/current" ] || [ ! -x "$RELEASE/venv/bin/pip" ] \
        || [ "$(readlink -f "$PREFIX/current")" != "$(readlink -f "$RELEASE")" ]; then
    run rm -rf "$RELEASE"
    run python3 -m venv --system-site-packages "$RELEASE/venv"
fi
run "$RELEASE/venv/bin/pip" install --quiet --require-virtualenv -r "$LOCK"
run "$RELEASE/venv/bin/pip" install --quiet --require-virtualenv --no-deps --force-reinstall "$WHEEL"
if [ "$DRY_RUN" = 0 ]; then
    # The guarantee the lock is for, checked where it matters.
    "$RELEASE/venv/bin/python" - <<'EOF' || exit 1
import sys
import numpy
if not numpy.__file__.startswith("/usr/lib/python3/dist-packages/"):
    sys.exit(f"install-pi.sh: the venv imports numpy {numpy.__version__} from {numpy.__file__}, "
             "not the system's: system extension modules (picamera2, simplejpeg) would break")
EOF
    cp "$LOCK" "$RELEASE/requirements.lock"
fi

echo "== configuration in $CONF_DIR"
run install -d -m 0755 "$CONF_DIR"
if [ ! -e "$CONF_DIR/painmon.toml" ]; then
    run install -m 0644 "$SRC/systemd/painmon.example.toml" "$CONF_DIR/painmon.toml"
fi
if [ ! -e "$CONF_DIR/mqtt-password" ]; then
    # LoadCredential= needs the file; leave it empty when the broker takes no password.
    run install -m 0600 -o root -g root /dev/null "$CONF_DIR/mqtt-password"
fi
run "$RELEASE/venv/bin/painmon" validate-config "$CONF_DIR/painmon.toml"

echo "== groups and the service user"
for group in gpio i2c spi video; do
    run groupadd --system -f "$group"
done
if ! id "$SERVICE_USER" >/dev/null 2>&1; then
    run useradd --system --user-group --home-dir "$STATE_DIR" --no-create-home \
        --shell /usr/sbin/nologin --comment "painmon service" "$SERVICE_USER"
fi
run usermod -a -G gpio,i2c,spi,video "$SERVICE_USER"

echo "== udev rules (Raspberry Pi OS has them; plain Debian does not)"
RULES=/etc/udev/rules.d/60-painmon.rules
if [ "$DRY_RUN" = 0 ]; then
    mkdir -p "$(dirname "$RULES")"
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
if [ "$DRY_RUN" = 1 ] || { command -v udevadm >/dev/null && [ -S /run/udev/control ]; }; then
    run udevadm control --reload-rules
    run udevadm trigger
else
    echo "udev is not running: the rules apply from the next boot"
fi

echo "== state and the face models in $STATE_DIR"
run install -d -m 0750 -o "$SERVICE_USER" -g "$SERVICE_USER" "$STATE_DIR"
if [ "$MODELS" = 1 ]; then
    run runuser -u "$SERVICE_USER" -- env HOME="$STATE_DIR" PAINMON_MODEL_DIR="$STATE_DIR/models" \
        "$RELEASE/venv/bin/painmon" fetch-models
fi

# Upgrading a running service goes through painmon's upgrade (python -m device.app.upgrade):
# current is switched and the service restarted, and the previous release comes back by
# itself unless the new one says online and sends its first estimate.
UPGRADE=0
if [ "$START" = 1 ] && { [ "$DRY_RUN" = 1 ] || { [ "$SYSTEMD_RUNNING" = 1 ] && [ -L "$PREFIX/current" ] \
        && systemctl is-active --quiet painmon.service; }; }; then
    UPGRADE=1
else
    echo "== switch $PREFIX/current to $VERSION"
    run ln -sfn "releases/$VERSION" "$PREFIX/current.new"
    run mv -T "$PREFIX/current.new" "$PREFIX/current"
fi
run ln -sfn "$PREFIX/current/venv/bin/painmon" /usr/local/bin/painmon

echo "== systemd unit"
if [ "$PREFIX" = /opt/painmon ]; then
    run install -m 0644 "$SRC/systemd/painmon.service" "$UNIT_DIR/painmon.service"
elif [ "$DRY_RUN" = 0 ]; then
    sed "s#/opt/painmon#$PREFIX#g" "$SRC/systemd/painmon.service" > "$UNIT_DIR/painmon.service"
else
    echo "+ install painmon.service with $PREFIX"
fi
if [ "$SYSTEMD_RUNNING" = 1 ] || [ "$DRY_RUN" = 1 ]; then
    run systemctl daemon-reload
    run systemctl enable painmon.service
    if [ "$UPGRADE" = 1 ]; then
        echo "== upgrade the running service to $VERSION (rolls back by itself if it does not come up)"
        run "$RELEASE/venv/bin/python" -m device.app.upgrade "$VERSION" --prefix "$PREFIX" \
            --config "$CONF_DIR/painmon.toml" \
            || fail "$VERSION did not come up and was rolled back: journalctl -u painmon shows why"
        echo "painmon $VERSION is running: journalctl -u painmon -f"
    elif [ "$START" = 1 ]; then
        run systemctl restart painmon.service
        echo "painmon $VERSION is running: journalctl -u painmon -f"
    else
        echo "painmon $VERSION is installed; start it with: systemctl start painmon"
    fi
else
    # What `systemctl enable` does, without a running systemd (a chroot, an image build).
    run mkdir -p "$UNIT_DIR/multi-user.target.wants"
    run ln -sfn "$UNIT_DIR/painmon.service" "$UNIT_DIR/multi-user.target.wants/painmon.service"
    echo "painmon $VERSION is installed and enabled; systemd is not running here, so it starts at the next boot"
fi

# Keep the three newest releases (the current one always) to roll back to by hand.
if [ "$DRY_RUN" = 0 ]; then
    keep="$(readlink -f "$PREFIX/current")"
    ls -1dt "$PREFIX"/releases/*/ 2>/dev/null | tail -n +4 | while read -r old; do
        [ "$(readlink -f "$old")" = "$keep" ] || rm -rf "$old"
    done
fi
