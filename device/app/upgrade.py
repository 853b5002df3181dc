"""``painmon upgrade``: switch the device to a release installed beside the running one, and
come back by itself when the new one does not work.

Releases live in ``<prefix>/releases/<version>/`` (each with its venv); ``<prefix>/current``
is a symlink to the one the service runs. An upgrade:

1. notes the boot id the device last announced on ``<prefix>/<device_id>/status``;
2. points ``current`` at the new release (an atomic rename of a new link) and restarts the
   service (``systemctl restart painmon.service``, or any command given: the tests run a real
   painmon without systemd);
3. waits for a new boot to say ``online`` and then for its first ``pain`` estimate;
4. when either does not come in time (or the restart fails), points ``current`` back at the
   previous release, restarts again and waits for it to come back, and exits 1 saying why.

Only the standard library, paho-mqtt and the configuration are imported, so a new release
whose application cannot even import still runs this.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import shlex
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt

from device.config import ConfigError, load_config

EXIT_OK, EXIT_ROLLED_BACK, EXIT_BAD_INPUT = 0, 1, 2
DEFAULT_RESTART = ("systemctl", "restart", "painmon.service")
#: The unit hands the broker password over as the credential "mqtt" from this file.
DEFAULT_PASSWORD_FILE = Path("/etc/painmon/mqtt-password")


class UpgradeError(RuntimeError):
    """The new release did not come up (the reason is the message)."""


@dataclass
class Boot:
    boot_id: str
    online_after_s: float
    estimate_after_s: float


def current_release(prefix: Path) -> Path | None:
    link = prefix / "current"
    return link.resolve() if link.is_symlink() else None


def point_current(prefix: Path, release: Path) -> None:
    """``current`` -> ``releases/<name>``, replaced atomically (a rename), relative."""
    tmp = prefix / "current.new"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    tmp.symlink_to(Path("releases") / release.name)
    os.replace(tmp, prefix / "current")


class DeviceWatch:
    """Subscribed to one device's ``status`` and ``pain``; hands their messages over in order."""

    def __init__(self, config, password: str | None) -> None:
        m = config.mqtt
        self.base = f"{m.topic_prefix}/{config.device_id}"
        self.messages: queue.Queue[tuple[str, dict]] = queue.Queue()
        self.seen_boots: set[str] = set()  # every boot that said online while we watched
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=f"painmon-upgrade-{config.device_id}-{os.getpid()}",
                                  protocol=mqtt.MQTTv5 if m.protocol == "5" else mqtt.MQTTv311)
        if m.tls.enabled:
            context = ssl.create_default_context(cafile=str(m.tls.ca_file) if m.tls.ca_file else None)
            if m.tls.cert_file is not None:
                context.load_cert_chain(str(m.tls.cert_file), str(m.tls.key_file) if m.tls.key_file else None)
            self.client.tls_set_context(context)
        if m.username is not None:
            self.client.username_pw_set(m.username, password)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.connect_async(m.host, m.port, keepalive=30)
        self.client.loop_start()

    def _on_connect(self, client, _userdata, _flags, reason, _props) -> None:
        if not reason.is_failure:
            client.subscribe([(f"{self.base}/status", 1), (f"{self.base}/pain", 1)])

    def _on_message(self, _client, _userdata, message) -> None:
        try:
            body = json.loads(message.payload)
        except ValueError:
            return
        if isinstance(body, dict):
            self.messages.put((message.topic.rsplit("/", 1)[-1], body))

    def last_boot(self, wait_s: float) -> str | None:
        """The boot id of the retained status, if the broker has one within ``wait_s``."""
        deadline = time.monotonic() + wait_s
        boot = None
        while (left := deadline - time.monotonic()) > 0:
            try:
                kind, body = self.messages.get(timeout=left)
            except queue.Empty:
                break
            if kind == "status":
                boot = body.get("boot_id")
                break
        return boot

    def wait_new_boot(self, old_boots: set, timeout_s: float) -> Boot:
        """A boot not in ``old_boots`` online, then its first pain estimate."""
        started = time.monotonic()
        deadline = started + timeout_s
        boot = online_at = None
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                if boot is None:
                    raise UpgradeError(f"no new boot said online within {timeout_s:.0f} s")
                raise UpgradeError(f"boot {boot} said online but sent no pain estimate within {timeout_s:.0f} s")
            try:
                kind, body = self.messages.get(timeout=left)
            except queue.Empty:
                continue
            if kind == "status":
                if body.get("state") == "online" and body.get("boot_id") not in old_boots | {None}:
                    boot, online_at = body["boot_id"], time.monotonic()
                    self.seen_boots.add(boot)
                elif boot is not None and body.get("boot_id") == boot and body.get("state") != "online":
                    raise UpgradeError(f"boot {boot} went {body.get('state')} before its first estimate")
            elif kind == "pain" and boot is not None and body.get("boot_id") == boot:
                return Boot(boot, online_at - started, time.monotonic() - started)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def _restart(command: Sequence[str], timeout_s: float) -> None:
    try:
        proc = subprocess.run(list(command), check=False, capture_output=True, text=True, timeout=timeout_s)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise UpgradeError(f"restart ({shlex.join(command)}) failed: {exc}") from None
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or [""]
        raise UpgradeError(f"restart ({shlex.join(command)}) exited {proc.returncode}: {tail[0]}")


def upgrade(prefix: Path, version: str, config, *, restart: Sequence[str] = DEFAULT_RESTART,
            timeout_s: float = 180.0, password: str | None = None,
            say: Callable[[str], None] = print) -> int:
    """Switch to ``releases/<version>``; 0 when it came up, 1 when it was rolled back."""
    new = prefix / "releases" / version
    if not (new / "venv" / "bin" / "painmon").exists():
        raise FileNotFoundError(f"{new} holds no release (no venv/bin/painmon)")
    previous = current_release(prefix)
    watch = DeviceWatch(config, password)
    try:
        old_boot = watch.last_boot(wait_s=3.0) if previous is not None else None
        point_current(prefix, new)
        say(f"painmon upgrade: {previous.name if previous else '(none)'} -> {version}: restarting")
        try:
            _restart(restart, timeout_s)
            boot = watch.wait_new_boot({old_boot}, timeout_s)
        except UpgradeError as failure:
            if previous is None or previous == new.resolve():
                say(f"painmon upgrade: {version} did not come up ({failure}); nothing to roll back to")
                return EXIT_ROLLED_BACK
            say(f"painmon upgrade: {version} did not come up ({failure}); rolling back to {previous.name}")
            point_current(prefix, previous)
            if tuple(restart) == DEFAULT_RESTART:
                # The failed starts count towards StartLimitBurst: clear them, or systemd may
                # refuse to start the previous release.
                subprocess.run(["systemctl", "reset-failed", "painmon.service"], check=False,
                               capture_output=True, timeout=30)
            try:
                _restart(restart, timeout_s)
                back = watch.wait_new_boot({old_boot} | watch.seen_boots, timeout_s)
                say(f"painmon upgrade: rolled back: {previous.name} online again (boot {back.boot_id})")
            except UpgradeError as again:
                say(f"painmon upgrade: rolled back to {previous.name}, which did not come up either: {again}")
            return EXIT_ROLLED_BACK
        say(f"painmon upgrade: {version} online after {boot.online_after_s:.1f} s, first estimate "
            f"after {boot.estimate_after_s:.1f} s (boot {boot.boot_id})")
        return EXIT_OK
    finally:
        watch.close()


def _password(config, password_file: Path) -> str | None:
    m = config.mqtt
    if m.username is None:
        return None
    path = m.password_file if m.password_file is not None else password_file
    text = Path(path).read_text(encoding="utf-8")
    return text.splitlines()[0] if text else None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="painmon upgrade", description=__doc__.split("\n\n")[0])
    parser.add_argument("version", help="the release to switch to: <prefix>/releases/<version>")
    parser.add_argument("--prefix", type=Path, default=Path("/opt/painmon"))
    parser.add_argument("--config", type=Path, default=Path("/etc/painmon/painmon.toml"))
    parser.add_argument("--timeout", type=float, default=180.0,
                        help="seconds for the restart, then for online, then for the first estimate")
    parser.add_argument("--restart-command", default=shlex.join(DEFAULT_RESTART),
                        help="how the service is restarted (default: %(default)s)")
    parser.add_argument("--password-file", type=Path, default=DEFAULT_PASSWORD_FILE,
                        help="the broker password when the configuration names a credential")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        return upgrade(args.prefix, args.version, config, restart=shlex.split(args.restart_command),
                       timeout_s=args.timeout, password=_password(config, args.password_file))
    except (FileNotFoundError, OSError) as exc:
        print(f"painmon upgrade: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
