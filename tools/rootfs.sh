#!/usr/bin/env bash
# Build (once) and cache a Debian trixie root, the base of Raspberry Pi OS, to try painmon in.
#   tools/rootfs.sh [--arch arm64|amd64] [--dest DIR]     prints the root's path when ready
# arm64 runs under qemu-user-static (binfmt_misc); amd64 where emulation is unavailable or not
# needed (Home Assistant). The root is built by debootstrap from Debian's archive, cached in
# DIR (default $PAINMON_CACHE/rootfs/trixie-ARCH, PAINMON_CACHE=/var/cache/painmon) and
# reused while its stamp file is there.
# Run as root. tools/rootfs-lib.sh runs commands in a throwaway overlay of it with the
# checkout copied in (tools/pi-check.sh, tools/suite-trixie.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
arch=arm64
dest=""
while [ $# -gt 0 ]; do
  case "$1" in
    --arch) arch="$2"; shift 2 ;;
    --dest) dest="$2"; shift 2 ;;
    *) echo "rootfs.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
case "$arch" in arm64|amd64) ;; *) echo "rootfs.sh: --arch must be arm64 or amd64" >&2; exit 2 ;; esac
# Machine-wide by default: a fresh clone on the same machine (CI's) reuses the root.
dest="${dest:-${PAINMON_CACHE:-/var/cache/painmon}/rootfs/trixie-$arch}"
mirror="${PAINMON_DEBIAN_MIRROR:-http://deb.debian.org/debian}"

if [ -f "$dest/.painmon-root-ready" ]; then echo "$dest"; exit 0; fi
[ "$(id -u)" = 0 ] || { echo "rootfs.sh: needs root (debootstrap, mounts)" >&2; exit 1; }

need=(debootstrap)
[ "$arch" = arm64 ] && [ "$(uname -m)" != aarch64 ] && need+=(qemu-user-static binfmt-support)
missing=()
for p in "${need[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
fi
if [ "$arch" = arm64 ] && [ "$(uname -m)" != aarch64 ]; then
  mountpoint -q /proc/sys/fs/binfmt_misc || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
  update-binfmts --enable qemu-aarch64 >&2 || true
fi

# A build cut short may have left debootstrap's mounts behind: never recurse into them.
for m in $(grep -o " $dest/[^ ]*" /proc/mounts | sort -r); do umount -l "$m" || true; done
rm -rf "$dest"; mkdir -p "$dest"
echo "rootfs.sh: debootstrap trixie $arch into $dest (a few minutes)" >&2
debootstrap --arch="$arch" --variant=minbase \
  --include=ca-certificates,python3,python3-venv,python3-pip,python3-numpy,procps \
  trixie "$dest" "$mirror" >&2
# Trust what the host trusts (a proxying registry's certificate, for one).
cp /etc/ssl/certs/ca-certificates.crt "$dest/etc/ssl/certs/ca-certificates.crt"
cp /etc/resolv.conf "$dest/etc/resolv.conf" 2>/dev/null || true
touch "$dest/.painmon-root-ready"
echo "$dest"
