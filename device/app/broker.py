"""A local MQTT broker for the demo, when none answers.

mosquitto is preferred when installed (MQTT 5, the broker a real deployment uses); otherwise
amqtt, a pure-Python broker that speaks MQTT 3.1.1 only, runs in a background thread. Both
listen on loopback only.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Literal, Self

from sensors.clock import Deadline, MonotonicClock

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
_MOSQUITTO_FALLBACK = "/usr/sbin/mosquitto"  # Debian installs it outside a user's PATH


def broker_answers(host: str, port: int, timeout_s: float = 0.5) -> bool:
    """True when something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def free_loopback_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def find_mosquitto() -> str | None:
    found = shutil.which("mosquitto")
    if found:
        return found
    return _MOSQUITTO_FALLBACK if os.access(_MOSQUITTO_FALLBACK, os.X_OK) else None


class BrokerStartError(RuntimeError):
    pass


class EmbeddedBroker:
    """An MQTT broker on 127.0.0.1 for as long as this object is started.

    ``port=0`` picks a free port. ``implementation`` is "auto" (mosquitto if installed, else
    amqtt), "mosquitto" or "amqtt". ``protocol`` tells clients what to speak: "5" or "3.1.1".
    """

    def __init__(self, port: int = 0,
                 implementation: Literal["auto", "mosquitto", "amqtt"] = "auto") -> None:
        if implementation not in ("auto", "mosquitto", "amqtt"):
            raise ValueError(f"implementation must be auto, mosquitto or amqtt, "
                             f"got {implementation!r}")
        self.host = LOOPBACK
        self.port = port
        self._mosquitto = find_mosquitto() if implementation != "amqtt" else None
        if implementation == "mosquitto" and self._mosquitto is None:
            raise BrokerStartError("mosquitto is not installed (not on PATH, nor "
                                   f"{_MOSQUITTO_FALLBACK})")
        self.implementation = "mosquitto" if self._mosquitto else "amqtt"
        self.protocol = "5" if self._mosquitto else "3.1.1"
        self._process: subprocess.Popen | None = None
        self._tmpdir: tempfile.TemporaryDirectory | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._started = False

    def start(self, timeout_s: float = 10.0) -> Self:
        if self._started:
            return self
        if self.port == 0:
            self.port = free_loopback_port()
        if broker_answers(self.host, self.port):
            raise BrokerStartError(f"{self.host}:{self.port} is already in use")
        self._started = True
        try:
            if self._mosquitto:
                self._start_mosquitto()
                self._wait_until_answering(timeout_s)
            else:
                # Once amqtt's start() returned it listens; a bare TCP probe would only make
                # it log an error about a client that sent nothing.
                self._start_amqtt(timeout_s)
        except BaseException:
            self.stop()
            raise
        log.info("MQTT broker (%s, MQTT %s) listening on %s:%d", self.implementation,
                 self.protocol, self.host, self.port)
        return self

    def _wait_until_answering(self, timeout_s: float) -> None:
        deadline = Deadline(MonotonicClock(), timeout_s)
        while not deadline.expired():
            if self._process is not None and self._process.poll() is not None:
                raise BrokerStartError(f"mosquitto exited with {self._process.returncode}: "
                                       f"{self._mosquitto_log_tail()}")
            if broker_answers(self.host, self.port, timeout_s=0.2):
                return
            time.sleep(0.02)
        raise BrokerStartError(f"mosquitto did not answer on {self.host}:{self.port} "
                               f"within {timeout_s} s")

    # -- mosquitto ----------------------------------------------------------------------

    def _start_mosquitto(self) -> None:
        self._tmpdir = tempfile.TemporaryDirectory(prefix="painmon-mosquitto-")
        conf = Path(self._tmpdir.name) / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} {self.host}\n"
            "allow_anonymous true\n"
            "persistence false\n"
            f"log_dest file {Path(self._tmpdir.name) / 'mosquitto.log'}\n"
            # Started as root, mosquitto drops to user "mosquitto", who cannot write the log
            # into our private temporary directory.
            + ("user root\n" if os.geteuid() == 0 else "")
        )
        self._process = subprocess.Popen(
            [self._mosquitto, "-c", str(conf)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )

    def _mosquitto_log_tail(self, lines: int = 5) -> str:
        if self._tmpdir is None:
            return ""
        path = Path(self._tmpdir.name) / "mosquitto.log"
        try:
            return " | ".join(path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    # -- amqtt --------------------------------------------------------------------------

    def _start_amqtt(self, timeout_s: float) -> None:
        try:
            import amqtt.broker  # noqa: F401 - fail here, with a clear message
        except ImportError as exc:
            raise BrokerStartError("neither mosquitto nor amqtt is installed "
                                   "(pip install 'painmon[demo]')") from exc
        self._thread = threading.Thread(target=self._serve_amqtt, name="amqtt-broker",
                                        daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise BrokerStartError(f"amqtt did not start within {timeout_s} s")
        if self._startup_error is not None:
            raise BrokerStartError(f"amqtt did not start on {self.host}:{self.port}: "
                                   f"{self._startup_error}")

    def _amqtt_config(self) -> dict[str, Any]:
        return {
            # amqtt binds 0.0.0.0 unless told otherwise; the demo broker stays on loopback.
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin":
                        {"allow_anonymous": True}},
        }

    def _serve_amqtt(self) -> None:
        from amqtt.broker import Broker

        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)

        async def start() -> Broker:
            broker = Broker(self._amqtt_config(), loop=loop)
            await broker.start()
            return broker

        try:
            broker = loop.run_until_complete(start())
        except BaseException as exc:  # noqa: BLE001 - start() raises it in the caller
            self._startup_error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            try:
                loop.run_until_complete(asyncio.wait_for(broker.shutdown(), 5.0))
            except Exception as exc:  # noqa: BLE001 - stopping anyway
                log.warning("amqtt shutdown: %s", exc)
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.close()

    # -- stop ---------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop the broker. Idempotent."""
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5.0)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=5.0)
            self._process = None
        if self._thread is not None:
            if self._loop is not None and not self._loop.is_closed():
                self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10.0)
            if self._thread.is_alive():
                log.warning("amqtt broker thread did not stop within 10 s")
            self._thread = None
        if self._tmpdir is not None:
            self._tmpdir.cleanup()
            self._tmpdir = None
        self._started = False

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
