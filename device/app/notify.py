"""systemd integration without a dependency: sd_notify over ``$NOTIFY_SOCKET``, the watchdog
fed by the processing loop's progress, and credentials handed over by ``LoadCredential=``.

The protocol (sd_notify(3)) is one datagram per message, ``KEY=VALUE`` lines, to the unix
socket named in ``$NOTIFY_SOCKET``; a leading ``@`` names a socket in the abstract namespace.
With ``Type=notify`` the service is "started" at ``READY=1``; with ``WatchdogSec=`` systemd
sets ``$WATCHDOG_USEC`` and kills (then, with ``Restart=``, restarts) the service when no
``WATCHDOG=1`` arrives in time.

``ServiceNotifier`` sends ``READY=1`` after the first completed hop (the loop provably runs,
not merely started), ``WATCHDOG=1`` after completed hops only — a loop stuck in a step, a
deadlock or a hung driver call stops the pings and systemd restarts the service — and
``STOPPING=1`` when the service begins to stop.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from device.processing.pipeline import Pipeline

log = logging.getLogger(__name__)

#: The ``LoadCredential=`` name of the MQTT password in systemd/painmon.service; the config
#: names it in ``mqtt.password_credential``.
MQTT_PASSWORD_CREDENTIAL = "mqtt"


class Notifier:
    """Sends sd_notify messages; does nothing when not started by systemd."""

    def __init__(self, address: str | None) -> None:
        self.address = address or None
        self.sent: list[str] = []  # what was sent, for the log and tests
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        if self.address is not None and not self.address.startswith(("/", "@")):
            raise ValueError(f"NOTIFY_SOCKET must be a path or @abstract name, got {self.address!r}")

    @classmethod
    def from_env(cls) -> Notifier:
        return cls(os.environ.get("NOTIFY_SOCKET"))

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, *lines: str) -> bool:
        """Send ``lines`` as one message; False (logged) when it could not be delivered."""
        if self.address is None:
            return False
        target = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        data = "\n".join(lines).encode()
        with self._lock:
            try:
                if self._sock is None:
                    self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.sendto(data, target)
            except OSError as exc:
                log.warning("sd_notify to %s failed: %s", self.address, exc)
                return False
            self.sent.extend(lines)
        return True

    def close(self) -> None:
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None


def watchdog_interval_s(environ=os.environ) -> float | None:
    """The watchdog period systemd asked for, or None when it is not watching this process."""
    usec = environ.get("WATCHDOG_USEC")
    if not usec:
        return None
    pid = environ.get("WATCHDOG_PID")
    if pid and pid.isdigit() and int(pid) != os.getpid():
        return None  # meant for another process (a parent that exec'd us without resetting)
    try:
        value = int(usec)
    except ValueError:
        log.warning("WATCHDOG_USEC is not an integer: %r", usec)
        return None
    return value / 1e6 if value > 0 else None


class ServiceNotifier:
    """Ties a pipeline's hops to the service manager (see the module docstring).

    Pings are rate-limited to one per quarter of the watchdog period (sd_watchdog_enabled(3)
    recommends pinging at half the period; a quarter leaves room for one slow hop).
    """

    def __init__(self, notifier: Notifier, watchdog_s: float | None) -> None:
        self.notifier = notifier
        self.watchdog_s = watchdog_s
        self.min_ping_interval_s = watchdog_s / 4 if watchdog_s else None
        self.ready = False
        self.stopping = False
        self.pings = 0
        self._last_ping: float | None = None

    @classmethod
    def from_env(cls) -> ServiceNotifier:
        return cls(Notifier.from_env(), watchdog_interval_s())

    def attach(self, pipeline: Pipeline) -> ServiceNotifier:
        pipeline.hop_listeners.append(self.on_hop)
        return self

    def on_hop(self, hops: int) -> None:
        """Called by the processing loop after each completed hop."""
        if self.stopping:
            return
        if not self.ready:
            self.ready = True
            self.notifier.notify("READY=1", f"STATUS=processing (hop {hops})")
            log.info("service ready")
        if self.min_ping_interval_s is None:
            return
        now = time.monotonic()
        if self._last_ping is None or now - self._last_ping >= self.min_ping_interval_s:
            self._last_ping = now
            self.pings += 1
            self.notifier.notify("WATCHDOG=1")

    def stop(self) -> None:
        if not self.stopping:
            self.stopping = True
            self.notifier.notify("STOPPING=1", "STATUS=stopping")
