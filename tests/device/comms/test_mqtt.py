"""MqttLink against a real mosquitto."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from tests.device.mqtt_helpers import wait_until

from device.comms.link import JSON_CONTENT_TYPE, STATUS_SCHEMA, MqttLink
from device.config import MqttConfig

REPO = Path(__file__).resolve().parents[3]

CHILD = """
import sys, time
from device.config import MqttConfig
from device.comms.link import MqttLink
link = MqttLink(MqttConfig(port=int(sys.argv[1]), keepalive_s=2, will_delay_s=0), "child",
               boot_id="child-boot")
link.start()
if not link.wait_connected(10):
    sys.exit("no connection")
print("ready", flush=True)
time.sleep(120)
"""


def link_config(broker, **overrides) -> MqttConfig:
    values = {"host": broker.host, "port": broker.port, "keepalive_s": 5,
              "reconnect_min_s": 0.1, "reconnect_max_s": 0.5, **overrides}
    return MqttConfig(**values)


def retained_status(mosquitto, mqtt_probe, device_id: str, state: str, timeout_s: float = 10.0):
    """The status a subscriber arriving now gets as retained. A subscriber that arrives while
    the device is still publishing gets that copy live (retain 0, as MQTT says); the next one
    gets the retained copy, so ask again until one does or the time is up."""
    deadline = time.monotonic() + timeout_s
    while True:
        probe = mqtt_probe(mosquitto.host, mosquitto.port, f"painmon/{device_id}/status")
        try:
            message = probe.wait_for(status_is(state), timeout=2.0)
        except AssertionError:
            message = None
        if message is not None and message.retain:
            return message
        if time.monotonic() > deadline:
            raise AssertionError(f"no retained {state!r} status for {device_id}")
        time.sleep(0.2)


def status_is(state: str, boot_id: str | None = None):
    def match(message) -> bool:
        if not message.topic.endswith("/status"):
            return False
        body = message.json()
        return body["state"] == state and (boot_id is None or body["boot_id"] == boot_id)

    return match


def test_publish_json_round_trip_with_v5_properties(mosquitto, mqtt_probe):
    probe = mqtt_probe(mosquitto.host, mosquitto.port, "painmon/bed-1/#")
    with MqttLink(link_config(mosquitto), "bed-1") as link:
        assert link.wait_connected(5)
        payload = {"schema": "painmon.estimate/1", "score": 3.5, "level": "mild"}
        assert link.publish_json("estimate", payload, expiry_s=30) is True
        message = probe.wait_for(lambda m: m.topic == "painmon/bed-1/estimate")
        assert message.json() == payload
        assert message.qos == 1 and message.retain is False
        assert message.properties.ContentType == JSON_CONTENT_TYPE
        # The broker forwards the remaining lifetime: at most what was set, not much less.
        assert 28 <= message.properties.MessageExpiryInterval <= 30
        wait_until(lambda: link.acknowledged >= 2, 5, "PUBACKs")  # online + estimate
        assert (link.published, link.failed) == (1, 0)


def test_qos_0_without_expiry(mosquitto_session, mqtt_probe):
    broker = mosquitto_session  # shared: this test's device id is its own
    probe = mqtt_probe(broker.host, broker.port, "painmon/bed-qos0/vitals")
    with MqttLink(link_config(broker), "bed-qos0") as link:
        assert link.wait_connected(5)
        assert link.publish_json("vitals", {"hr_bpm": 71.0}, qos=0)
        message = probe.wait_for(lambda m: True)
        assert message.qos == 0 and message.json() == {"hr_bpm": 71.0}
        assert not hasattr(message.properties, "MessageExpiryInterval")


def test_online_is_retained_after_connect_and_offline_after_stop(mosquitto, mqtt_probe):
    link = MqttLink(link_config(mosquitto), "bed-2", boot_id="boot-a")
    assert not link.connected
    link.start()
    assert link.wait_connected(5)
    # A subscriber arriving later still learns the device is online: the status is retained.
    online = retained_status(mosquitto, mqtt_probe, "bed-2", "online")
    late = mqtt_probe(mosquitto.host, mosquitto.port, "painmon/bed-2/status")
    assert online.retain is True and online.qos == 1
    body = online.json()
    assert body["schema"] == STATUS_SCHEMA
    assert (body["device_id"], body["boot_id"]) == ("bed-2", "boot-a")
    age_s = (datetime.now(UTC) - datetime.fromisoformat(body["t"])).total_seconds()
    assert 0 <= age_s < 10
    assert online.properties.ContentType == JSON_CONTENT_TYPE

    link.stop()
    link.stop()  # idempotent
    assert not link.connected
    offline = late.wait_for(status_is("offline"))
    assert offline.json()["boot_id"] == "boot-a"
    after = mqtt_probe(mosquitto.host, mosquitto.port, "painmon/bed-2/status")
    assert after.wait_for(lambda m: True).json()["state"] == "offline"


def _start_child(port: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(port)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=env)
    line = child.stdout.readline()
    if line.strip() != "ready":
        child.kill()
        raise AssertionError(f"child did not connect: {line!r} {child.stderr.read()}")
    return child


@pytest.mark.parametrize("vanish", ["SIGKILL", "SIGSTOP"])
def test_last_will_announces_offline_when_the_process_vanishes(mosquitto, mqtt_probe, vanish):
    """SIGKILL: the kernel closes the socket. SIGSTOP: the socket stays open but silent, as
    on a power cut behind a switch; the broker gives up after 1.5 x keepalive (2 s)."""
    probe = mqtt_probe(mosquitto.host, mosquitto.port, "painmon/child/status")
    child = _start_child(mosquitto.port)
    try:
        probe.wait_for(status_is("online", "child-boot"))
        t0 = time.monotonic()
        os.kill(child.pid, getattr(signal, vanish))
        will = probe.wait_for(status_is("offline", "child-boot"), timeout=10)
        took_s = time.monotonic() - t0
    finally:
        child.kill()
        child.wait(timeout=10)
    assert will.json()["schema"] == STATUS_SCHEMA and "t" not in will.json()
    print(f"{vanish}: will after {took_s:.2f} s")
    if vanish == "SIGSTOP":
        assert 2.0 <= took_s <= 8.0, took_s
    later = mqtt_probe(mosquitto.host, mosquitto.port, "painmon/child/status")
    retained = later.wait_for(lambda m: True)
    assert retained.retain and retained.json()["state"] == "offline"


def test_refused_connection_is_not_connected(mosquitto_factory, caplog):
    locked = mosquitto_factory(allow_anonymous=False)
    caplog.set_level(logging.ERROR, logger="device.comms.link")
    with MqttLink(link_config(locked), "bed-3") as link:
        wait_until(lambda: link.refused >= 2, 5, "two refused CONNECTs (retrying)")
        assert not link.connected
        assert link.connects == 0
        assert link.publish_json("estimate", {"score": 1.0}, qos=0) is False
    assert "Not authorized" in (link.last_connect_reason or "")
    assert any("refused" in r.message and "Not authorized" in r.message for r in caplog.records)


def test_reconnects_after_broker_restart_and_delivers_queued_qos1(mosquitto, mqtt_probe):
    with MqttLink(link_config(mosquitto), "bed-4") as link:
        assert link.wait_connected(5)
        mosquitto.kill()
        wait_until(lambda: not link.connected, 5, "disconnect noticed")
        assert link.publish_json("vitals", {"hr_bpm": 60.0}, qos=0) is False
        # QoS 1 waits in paho's queue and goes out after the reconnect.
        assert link.publish_json("alarm", {"level": "severe"}, qos=1, retain=True) is True
        mosquitto.restart()
        assert link.wait_connected(10)
        assert link.connects == 2 and link.disconnects == 1
        probe = mqtt_probe(mosquitto.host, mosquitto.port, "painmon/bed-4/#")
        assert probe.wait_for(lambda m: m.topic.endswith("/alarm")).json() == {"level": "severe"}
        # re-announced, retained, on the new broker
        assert retained_status(mosquitto, mqtt_probe, "bed-4", "online").retain
        assert (link.published, link.failed) == (1, 1)


def test_bad_payload_is_counted_not_raised(mosquitto):
    with MqttLink(link_config(mosquitto), "bed-5") as link:
        assert link.wait_connected(5)
        assert link.publish_json("x", {"v": float("nan")}) is False
        assert link.publish_json("x", {"v": object()}) is False
        assert link.failed == 2
        with pytest.raises(ValueError, match="subtopic"):
            link.publish_json("a/#", {})


def test_subscribe_raw_delivers_commands(mosquitto):
    received: list[tuple[str, bytes]] = []
    got = threading.Event()

    def on_command(topic: str, payload: bytes) -> None:
        received.append((topic, payload))
        got.set()

    with MqttLink(link_config(mosquitto), "bed-6") as link:
        link.subscribe_raw(f"{link.base_topic}/cmd/#", on_command)
        assert link.wait_connected(5)
        wait_until(lambda: "painmon/bed-6/cmd/#" in mosquitto.log(), 5, "SUBSCRIBE at the broker")
        sender = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        sender.connect(mosquitto.host, mosquitto.port)
        sender.loop_start()
        try:
            sender.publish("painmon/bed-6/cmd/alert", b"not json", qos=1).wait_for_publish(5)
            sender.publish("painmon/bed-6/cmd/alert", json.dumps({"on": True}),
                           qos=1).wait_for_publish(5)
            wait_until(lambda: len(received) == 2, 5, "both commands delivered")
        finally:
            sender.disconnect()
            sender.loop_stop()
    assert received == [("painmon/bed-6/cmd/alert", b"not json"),
                        ("painmon/bed-6/cmd/alert", json.dumps({"on": True}).encode())]


def test_mqtt_311_mode(mosquitto, mqtt_probe):
    probe = mqtt_probe(mosquitto.host, mosquitto.port, "painmon/bed-7/#", protocol="3.1.1")
    with MqttLink(link_config(mosquitto, protocol="3.1.1"), "bed-7") as link:
        assert link.wait_connected(5)
        assert link.publish_json("estimate", {"score": 2.0}, expiry_s=10)
        message = probe.wait_for(lambda m: m.topic.endswith("/estimate"))
        assert message.json() == {"score": 2.0}



def test_wait_backlog_holds_a_fast_producer_within_the_queue(mosquitto):
    """A producer faster than the network (2500 messages through a paho queue of 100) loses
    nothing when it waits on the backlog; without a connection the wait says so at once."""
    with MqttLink(link_config(mosquitto), "fast", max_queued=100) as link:
        assert link.wait_connected(10)
        for i in range(2500):
            assert link.publish_json("burst", {"i": i}, qos=1), i
            if i % 25 == 24:
                assert link.wait_backlog(50, 10.0)
                assert link.published - link.acknowledged <= 50
        assert link.wait_backlog(0, 10.0)
        assert link.failed == 0 and link.acknowledged >= 2500
    offline = MqttLink(link_config(mosquitto), "offline")
    offline.published = 5  # handed while never connected
    t0 = time.monotonic()
    assert not offline.wait_backlog(0, 5.0) and time.monotonic() - t0 < 1.0
