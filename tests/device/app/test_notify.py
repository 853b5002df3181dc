"""sd_notify on a real unix datagram socket: READY after the first hop, WATCHDOG only after
completed hops (none while the loop is stuck), STOPPING when the service stops; and the same
from a real ``painmon run`` process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid

import pytest

from sensors.clock import SteppedClock
from tests.conftest import REPO

from device.app.notify import Notifier, ServiceNotifier, watchdog_interval_s
from device.app.root import build_monitor
from device.config import default_config


class NotifySocket:
    """The service manager's end: a datagram socket that collects what arrives."""

    def __init__(self, tmp_path=None) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if tmp_path is None:
            name = f"painmon-test-{uuid.uuid4().hex}"
            self.sock.bind("\0" + name)
            self.address = "@" + name
        else:
            self.address = str(tmp_path / "notify.sock")
            self.sock.bind(self.address)

    def receive(self, timeout_s: float) -> list[str]:
        """Every message arriving within ``timeout_s``, each as its lines."""
        out: list[str] = []
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                out.extend(self.sock.recv(4096).decode().split("\n"))
            except TimeoutError:
                break
        return out

    def wait_for(self, line: str, timeout_s: float) -> list[str]:
        seen: list[str] = []
        deadline = time.monotonic() + timeout_s
        while line not in seen:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{line!r} not received in {timeout_s} s; got {seen}")
            self.sock.settimeout(left)
            try:
                seen.extend(self.sock.recv(4096).decode().split("\n"))
            except TimeoutError:
                continue
        return seen

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def notify_socket():
    s = NotifySocket()
    yield s
    s.close()


@pytest.mark.parametrize("abstract", [True, False])
def test_notifier_sends_one_datagram_per_message(abstract, tmp_path):
    server = NotifySocket(None if abstract else tmp_path)
    try:
        notifier = Notifier(server.address)
        assert notifier.notify("READY=1", "STATUS=up")
        assert server.receive(0.5) == ["READY=1", "STATUS=up"]
    finally:
        server.close()


def test_notifier_outside_systemd_does_nothing_and_bad_address_is_named():
    assert not Notifier(None).notify("READY=1")
    with pytest.raises(ValueError, match="NOTIFY_SOCKET"):
        Notifier("relative/path")


def test_watchdog_interval_honours_pid():
    assert watchdog_interval_s({"WATCHDOG_USEC": "30000000"}) == 30.0
    assert watchdog_interval_s({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}) == 30.0
    assert watchdog_interval_s({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}) is None
    assert watchdog_interval_s({}) is None


def _pipeline():
    config = default_config()
    config = config.model_copy(update={"face": config.face.model_copy(update={"enabled": False})})
    return build_monitor(config, SteppedClock()).pipeline


def test_ready_after_first_hop_watchdog_per_hop_none_while_stuck(notify_socket):
    pipeline = _pipeline()
    # A watchdog of 4 ms: pings at most every 1 ms, so each hop here earns one.
    service = ServiceNotifier(Notifier(notify_socket.address), watchdog_s=0.004).attach(pipeline)
    try:
        assert notify_socket.receive(0.2) == []  # nothing before the loop has run
        pipeline.step(1_000_000_000)
        assert notify_socket.receive(0.3) == ["READY=1", "STATUS=processing (hop 1)", "WATCHDOG=1"]
        time.sleep(0.002)
        pipeline.step(2_000_000_000)
        assert notify_socket.receive(0.3) == ["WATCHDOG=1"]

        # A step that hangs (a driver call that never returns): no ping while it hangs.
        release = threading.Event()
        pipeline.block_taps.append(lambda _blocks: release.wait(10))
        stuck = threading.Thread(target=pipeline.step, args=(3_000_000_000,))
        stuck.start()
        assert notify_socket.receive(1.0) == []
        release.set()
        stuck.join(5)
        assert notify_socket.receive(0.3) == ["WATCHDOG=1"]

        service.stop()
        assert notify_socket.receive(0.3) == ["STOPPING=1", "STATUS=stopping"]
        pipeline.step(4_000_000_000)
        assert notify_socket.receive(0.3) == []  # no pings once stopping
    finally:
        pipeline.stop()


def test_pings_are_rate_limited_to_a_quarter_of_the_watchdog(notify_socket):
    pipeline = _pipeline()
    ServiceNotifier(Notifier(notify_socket.address), watchdog_s=40.0).attach(pipeline)
    try:
        for hop in range(1, 6):
            pipeline.step(hop * 1_000_000_000)
        got = notify_socket.receive(0.3)
        assert got.count("WATCHDOG=1") == 1 and got.count("READY=1") == 1
    finally:
        pipeline.stop()


def test_painmon_run_speaks_sd_notify(notify_socket, mosquitto, tmp_path):
    config = tmp_path / "painmon.toml"
    config.write_text(f'device_id = "notify-test"\nstate_dir = "{tmp_path / "state"}"\n'
                      f'[mqtt]\nhost = "{mosquitto.host}"\nport = {mosquitto.port}\n'
                      "[face]\nenabled = false\n")
    env = {**os.environ, "NOTIFY_SOCKET": notify_socket.address, "WATCHDOG_USEC": "2000000",
           "PAINMON_HARDWARE": "emulated"}
    env.pop("WATCHDOG_PID", None)
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "device.cli", "run", "--config", str(config)],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    try:
        seen = notify_socket.wait_for("READY=1", 60)
        assert seen[0] == "READY=1", seen  # nothing before READY
        ready_after_s = time.monotonic() - started
        # Hops every 1 s; pings at most every 0.5 s: at least 2 in 3 s.
        pings = notify_socket.receive(3.0)
        assert pings.count("WATCHDOG=1") >= 2, pings
        proc.send_signal(signal.SIGTERM)
        assert "STOPPING=1" in notify_socket.wait_for("STOPPING=1", 20)
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0, out
        assert ready_after_s >= 1.0  # not before the first hop (hop_s = 1)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
