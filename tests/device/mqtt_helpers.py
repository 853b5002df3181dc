"""Helpers for the MQTT product tests: a persistent-session subscriber and device configs."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from device.config import PainmonConfig

#: mosquitto that writes its sessions and queued messages to disk every second, so that a
#: SIGKILL loses at most the last second of broker state (subscriptions made earlier survive).
PERSISTENT_BROKER = "persistence true\npersistence_location {dir}/\nautosave_interval 1\n"


def persistent_broker_config(workdir: Path) -> str:
    return PERSISTENT_BROKER.format(dir=workdir)


def device_config(broker, state_dir: Path, device_id: str, **mqtt_overrides) -> PainmonConfig:
    mqtt_values = {"host": broker.host, "port": broker.port, "keepalive_s": 5,
                   "reconnect_min_s": 0.1, "reconnect_max_s": 0.5, "will_delay_s": 0,
                   "ha_discovery": False, **mqtt_overrides}
    return PainmonConfig.model_validate({
        "device_id": device_id, "hardware": "emulated", "state_dir": str(state_dir),
        "mqtt": mqtt_values, "face": {"enabled": False},
        "simulator": {"seed": 5, "scenario": "demo"}})


def wait_broker_saved(store: Path, after_unix_s: float, timeout_s: float = 10.0) -> None:
    """Wait until the persistent broker has written its database after ``after_unix_s`` (wall
    time): sessions and subscriptions made before then survive a SIGKILL. A fixed sleep is not
    enough on a loaded machine."""
    db = store / "mosquitto.db"
    wait_until(lambda: db.exists() and db.stat().st_mtime > after_unix_s, timeout_s,
               "the broker's database saved to disk")


def wait_until(condition, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not within {timeout_s} s")
        time.sleep(0.02)


class PersistentSubscriber:
    """A consumer with a persistent session (clean_start false, session expiry): the broker
    queues its QoS 1 messages while it or the broker is away. It reconnects by itself."""

    def __init__(self, host: str, port: int, topic_filter: str, client_id: str) -> None:
        self.topic_filter = topic_filter
        self.messages: list[tuple[str, dict, bool]] = []  # (topic, body, dup)
        self._cond = threading.Condition()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=mqtt.MQTTv5, reconnect_on_failure=True)
        self.client.reconnect_delay_set(0.1, 0.5)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *_: self._subscribed.set()
        self.client.on_message = self._on_message
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 600
        self.client.connect(host, port, keepalive=5, clean_start=False, properties=props)
        self.client.loop_start()
        if not self._subscribed.wait(5):
            raise AssertionError(f"subscriber could not subscribe to {topic_filter}")

    def _on_connect(self, client, _userdata, _flags, reason, _props) -> None:
        if not reason.is_failure:
            client.subscribe(self.topic_filter, qos=1)

    def _on_message(self, _client, _userdata, message) -> None:
        with self._cond:
            self.messages.append((message.topic, json.loads(message.payload), bool(message.dup)))
            self._cond.notify_all()

    def bodies(self) -> list[dict]:
        with self._cond:
            return [body for _, body, _ in self.messages]

    def _wait(self, missing, timeout_s: float) -> list[dict]:
        """Every body so far, once ``missing(bodies)`` says nothing is (an empty string);
        otherwise, at the timeout, an AssertionError with what it says is missing."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                bodies = [b for _, b, _ in self.messages]
                what = missing(bodies)
                if not what:
                    return bodies
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"{what} after {timeout_s} s")
                self._cond.wait(remaining)

    def wait_count(self, predicate, count: int, timeout_s: float) -> list[dict]:
        def missing(bodies):
            got = sum(1 for b in bodies if predicate(b))
            return "" if got >= count else f"{got} of {count} messages"
        return [b for b in self._wait(missing, timeout_s) if predicate(b)]

    def wait_for_keys(self, keys: list[tuple[str, int]], timeout_s: float) -> list[dict]:
        """Every message so far, once each (boot_id, seq) of ``keys`` has arrived."""
        wanted = set(keys)

        def missing(bodies):
            gone = wanted - {(b["boot_id"], b["seq"]) for b in bodies}
            return f"{len(gone)} of {len(wanted)} messages missing: {sorted(gone)[:10]}" if gone else ""
        return self._wait(missing, timeout_s)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def dedup(bodies: list[dict]) -> list[dict]:
    """First occurrence of each (boot_id, seq), in arrival order: what a consumer keeps."""
    seen: set[tuple[str, int]] = set()
    out = []
    for body in bodies:
        key = (body["boot_id"], body["seq"])
        if key not in seen:
            seen.add(key)
            out.append(body)
    return out


#: How far back a SIGKILLed persistent broker may have lost what it acknowledged: its
#: ``autosave_interval`` (PERSISTENT_BROKER) and a margin for a loaded machine.
BROKER_SAVE_WINDOW_S = 1.5


class AckWatch:
    """Watches the outbox from a thread: when each pain estimate left it (the broker's PUBACK).

    A broker killed outright loses what it acknowledged since its last save to disk: that is
    the broker's durability, not the device's. ``may_be_lost(killed_at)`` names the estimates
    the broker had acknowledged by the kill but not yet ``BROKER_SAVE_WINDOW_S`` before it;
    every other one must arrive. Estimates leave the outbox in order, so everything produced
    before its oldest pending estimate has been acknowledged."""

    def __init__(self, outbox, period_s: float = 0.01) -> None:
        self.outbox = outbox
        self._produced: list[tuple[int, float]] = []  # (seq, when it went into the outbox)
        self.acked_at: dict[int, float] = {}  # seq -> a time by which it had been acknowledged
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(period_s,), daemon=True)
        self._thread.start()

    def produced(self, seq: int) -> None:
        with self._lock:
            self._produced.append((seq, time.monotonic()))

    def _sample(self) -> None:
        with self._lock:
            now = time.monotonic()
            oldest = next((json.loads(e.payload)["seq"] for e in self.outbox.pending(limit=50)
                           if e.topic.endswith("/pain")), None)
            for seq, at in self._produced[len(self.acked_at):]:
                if at >= now or (oldest is not None and seq >= oldest):
                    break
                self.acked_at[seq] = now

    def _run(self, period_s: float) -> None:
        while not self._stop.wait(period_s):
            self._sample()

    def may_be_lost(self, killed_at: float) -> set[int]:
        """Call after the kill, before the broker is back (acknowledgements still on their
        way in are counted)."""
        time.sleep(0.2)
        self._sample()
        with self._lock:
            return {seq for seq, at in self.acked_at.items()
                    if at > killed_at - BROKER_SAVE_WINDOW_S}

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2.0)


def serve(monitor, link):
    """The device's MQTT output on ``link`` for ``monitor``'s commands and alarms (the
    pipeline's messages are not routed to it: the test publishes what it needs)."""
    from device.comms.delivery import MqttOutput

    return MqttOutput(monitor.config, link, monitor.envelope, alarms=monitor.alarms,
                      commands=monitor.commands, clock=monitor.clock).start()


def command(**fields) -> bytes:
    """A command payload as a station sends it: the fields and the time it was sent."""
    from device.processing.envelope import utc_iso

    return json.dumps({"t": utc_iso(), **fields}).encode()
