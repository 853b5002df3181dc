# Sourced (not run) by tools/pi-check.sh and tools/suite-trixie.sh: a throwaway overlay of a
# cached Debian trixie root (tools/rootfs.sh) with this checkout copied in.
#
#   root_up ARCH NAME    build or reuse the root, mount an overlay of it at
#                        .cache/NAME/ARCH/root (sets $root and $work) with /proc, /dev, the
#                        apt and pip download caches ($PAINMON_CACHE/NAME-cache/ARCH/, /var/cache/painmon by default) and the checkout
#                        (tracked and new files) at /usr/src/painmon; ../shared read-only at
#                        /usr/src/shared when it exists
#   in_root CMD...       run CMD in the root with a clean environment (+ $root_env)
#   root_background CMD  the same in the background; root_down stops it
#   root_down            stop what root_background started, unmount, remove the overlay
#                        (kept when ROOT_KEEP=1)
# The cached root itself is never written to. Needs root (mounts, chroot).

root_pids=()
root_env=()

root_up() {
  local arch="$1" name="$2" base repo
  repo="$(pwd)"
  [ "$(id -u)" = 0 ] || { echo "$name: needs root (chroot, mounts)" >&2; return 1; }
  base="$(bash tools/rootfs.sh --arch "$arch")" || return 1
  [ -f "$base/.painmon-root-ready" ] || { echo "$name: tools/rootfs.sh gave no ready root ($base)" >&2; return 1; }
  work="$repo/.cache/$name/$arch"
  root="$work/root"
  # Downloads are kept machine-wide (like the roots), so a fresh clone on the same machine
  # (CI's) reuses them; $PAINMON_CACHE moves them.
  local cache="${PAINMON_CACHE:-/var/cache/painmon}/$name-cache/$arch"
  if mountpoint -q "$root"; then umount -R "$root" 2>/dev/null || umount -R -l "$root"; fi
  root_remove "$work"
  [ ! -e "$work" ] || return 1
  mkdir -p "$work/upper" "$work/overlay-work" "$root" "$cache/pip" "$cache/apt"
  mount -t overlay overlay -o "lowerdir=$base,upperdir=$work/upper,workdir=$work/overlay-work" "$root"
  mount -t proc proc "$root/proc"
  mount --rbind /dev "$root/dev"
  mount --make-rslave "$root/dev"
  mkdir -p "$root/root/.cache/pip" "$root/var/cache/apt/archives"
  mount --bind "$cache/pip" "$root/root/.cache/pip"
  mount --bind "$cache/apt" "$root/var/cache/apt/archives"
  if [ -d "$repo/../shared" ]; then
    mkdir -p "$root/usr/src/shared"
    mount --bind "$repo/../shared" "$root/usr/src/shared"
    mount -o remount,bind,ro "$root/usr/src/shared"
  fi
  # Package scripts must not start services: there is no init in the root.
  printf '#!/bin/sh\nexit 101\n' > "$root/usr/sbin/policy-rc.d"
  chmod 0755 "$root/usr/sbin/policy-rc.d"
  cp /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
  cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
  mkdir -p "$root/usr/src/painmon"
  git ls-files -z --cached --others --exclude-standard \
    | tar --null --ignore-failed-read -T - -cf - 2>/dev/null \
    | tar -xf - -C "$root/usr/src/painmon"
}

in_root() {
  chroot "$root" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive "${root_env[@]}" "$@"
}

root_background() {
  # chroot itself in the background (not a subshell running it), so that $! is the process
  # (chroot and env exec it) and root_down's kill reaches it.
  chroot "$root" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/root LANG=C.UTF-8 "${root_env[@]}" "$@" &
  root_pids+=($!)
}

root_down() {
  local pid
  for pid in "${root_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${root_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  root_pids=()
  if [ -n "${root:-}" ] && mountpoint -q "$root"; then
    umount -R "$root" 2>/dev/null || umount -R -l "$root" || true
  fi
  [ "${ROOT_KEEP:-0}" = 1 ] || [ -z "${work:-}" ] || root_remove "$work"
}

root_remove() {  # never recurse into a mount (the root's /dev is the host's)
  if grep -q " $1/" /proc/mounts; then
    echo "rootfs-lib: $1 still has mounts; left in place" >&2
  else
    rm -rf "$1"
  fi
}
