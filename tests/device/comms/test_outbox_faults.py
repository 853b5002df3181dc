"""Faults with the real broker: nothing that went through the outbox is lost.

- mosquitto SIGKILLed mid-stream and restarted after a pause, while a persistent-session
  consumer listens: every pain estimate arrives, in order, none missing after de-duplication
  (the real pipeline's pain topic, and a fast stand-in on the same outbox path that keeps
  messages in flight at the moment of the kill);
- the app SIGKILLed mid-stream (broker away, so the outbox holds a backlog) and restarted: the
  outbox resumes and everything it held arrives, late, with its original boot id;
- the outbox at its bound: the oldest are evicted and the status reports how many.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time

from sensors.clock import ScaledClock
from tests.conftest import REPO
from tests.device.mqtt_helpers import (
    AckWatch,
    PersistentSubscriber,
    dedup,
    device_config,
    persistent_broker_config,
    serve,
    wait_broker_saved,
    wait_until,
)

from device.app.root import build_monitor
from device.comms.delivery import MqttOutput
from device.comms.link import MqttLink
from device.comms.outbox import outbox_path
from device.processing.envelope import Envelope


def persistent_broker(mosquitto_factory, tmp_path):
    store = tmp_path / "broker-store"
    store.mkdir()
    return mosquitto_factory(persistent_broker_config(store))


def in_order_without_gaps(received: list[dict], produced: list[dict],
                          may_be_lost: set[int] = frozenset()) -> int:
    """Every produced estimate arrives once (after de-duplication) and in order, except those
    the killed broker had acknowledged within its save window; returns how many of those it
    lost."""
    kept = [(b["boot_id"], b["seq"]) for b in dedup(received)]
    expected = [(b["boot_id"], b["seq"]) for b in produced]
    missing = [key for key in expected if key not in set(kept)]
    assert all(seq in may_be_lost for _, seq in missing), (missing, sorted(may_be_lost))
    assert kept == [key for key in expected if key in set(kept)], "out of order or unknown"
    return len(missing)


def all_but_lost(consumer, produced: list[dict], may_be_lost: set[int],
                 timeout_s: float) -> list[dict]:
    """What the persistent consumer received once every estimate has arrived except those the
    killed broker may have lost with its last save window."""
    return consumer.wait_for_keys([(b["boot_id"], b["seq"]) for b in produced
                                   if b["seq"] not in may_be_lost], timeout_s)


def stop_all(*parts) -> None:
    """Stops or closes each part in the order given (what feeds the link before the link, the
    consumer last)."""
    for part in parts:
        (part.stop if hasattr(part, "stop") else part.close)()


def test_broker_killed_mid_stream_loses_no_pain_estimate(mosquitto_factory, tmp_path):
    broker = persistent_broker(mosquitto_factory, tmp_path)
    device_id = "bed-f1"
    consumer = PersistentSubscriber(broker.host, broker.port, f"painmon/{device_id}/pain",
                                    "nurse-station-f1")
    wait_broker_saved(tmp_path / "broker-store", time.time())
    config = device_config(broker, tmp_path / "state", device_id)
    produced: list[dict] = []
    link = MqttLink(config.mqtt, device_id).start()
    assert link.wait_connected(5)
    monitor = build_monitor(config, ScaledClock(2.0), [])
    pipeline = monitor.pipeline
    output = serve(monitor, link)
    watch = AckWatch(output.outbox)
    acks_before = link.acknowledged

    def keep(topic: str, message: dict) -> None:
        if topic == "pain":
            produced.append(message)
            watch.produced(message["seq"])

    pipeline.outputs += [output, keep]
    runner = threading.Thread(target=pipeline.run, args=(24.0,))  # 12 s of wall time
    t0 = time.monotonic()
    try:
        runner.start()
        wait_until(lambda: len(produced) >= 3, 10, "pain estimates before the kill")
        broker.kill()
        killed_at = len(produced)
        may_be_lost = watch.may_be_lost(time.monotonic())
        # The outbox let go only of what the broker acknowledged (PUBACKs counted by paho).
        assert len(watch.acked_at) <= link.acknowledged - acks_before
        time.sleep(2.8)
        broker.start()
        restarted_s = time.monotonic() - t0
        runner.join(30)
        assert not runner.is_alive()
        assert output.sender.wait_idle(15)
        got = all_but_lost(consumer, produced, may_be_lost, 15)
    finally:
        stop_all(watch, pipeline, output, link, consumer)
    took_s = time.monotonic() - t0
    lost = in_order_without_gaps(got, produced, may_be_lost)
    late = [b for b in dedup(got) if b.get("late")]
    assert late, "estimates made while the broker was away must arrive marked late"
    assert len(produced) > killed_at + 2  # the stream went on during the outage
    print(f"pipeline pain: {len(produced)} estimates, {len(late)} late, {len(got)} received "
          f"({len(got) - len(dedup(got))} duplicates); broker back after {restarted_s:.1f} s, "
          f"all delivered after {took_s:.1f} s; {lost} of the {len(may_be_lost)} the broker "
          "acknowledged in its last save window were lost with it")


def test_broker_killed_with_messages_in_flight(mosquitto_factory, tmp_path):
    """A stand-in at 200 messages/s on the pain path keeps PUBACKs outstanding at the kill."""
    broker = persistent_broker(mosquitto_factory, tmp_path)
    device_id = "bed-f2"
    consumer = PersistentSubscriber(broker.host, broker.port, f"painmon/{device_id}/pain",
                                    "nurse-station-f2")
    wait_broker_saved(tmp_path / "broker-store", time.time())
    config = device_config(broker, tmp_path / "state", device_id)
    link = MqttLink(config.mqtt, device_id, boot_id="boot-f2").start()
    assert link.wait_connected(5)
    output = MqttOutput(config, link, Envelope(config.device_id)).start()
    watch = AckWatch(output.outbox)
    acks_before = link.acknowledged
    produced = []
    t0 = time.monotonic()
    try:
        for seq in range(1, 1201):
            message = {"schema": "painmon.pain/1", "device_id": device_id, "boot_id": "boot-f2",
                       "seq": seq, "t": "2026-01-01T00:00:00.000Z", "score": 1.0,
                       "level": "mild", "confidence": 0.5, "contributions": {}, "flags": []}
            output("pain", message)
            produced.append(message)
            watch.produced(seq)
            if seq == 400:
                in_flight = len(output.sender._in_flight)
                broker.kill()
                may_be_lost = watch.may_be_lost(time.monotonic())
                assert len(watch.acked_at) <= link.acknowledged - acks_before
            if seq == 800:
                broker.start()
            if not 370 <= seq < 400:  # a burst right before the kill: PUBACKs outstanding
                time.sleep(0.005)
        assert output.sender.wait_idle(30)
        got = all_but_lost(consumer, produced, may_be_lost, 30)
    finally:
        stop_all(watch, output, link, consumer)
    lost = in_order_without_gaps(got, produced, may_be_lost)
    print(f"stand-in: {len(produced)} sent, {in_flight} in flight at the kill, "
          f"{len(got) - len(dedup(got))} duplicates removed, {lost} of the {len(may_be_lost)} "
          f"the broker acknowledged in its last save window lost with it, "
          f"{time.monotonic() - t0:.1f} s")


APP = """
import sys
from device.app.device import run_device
from device.config import load_config
sys.exit(run_device(load_config(sys.argv[1])))
"""


def start_app(config_path, log_path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "PAINMON_HARDWARE": "emulated"}
    return subprocess.Popen([sys.executable, "-c", APP, str(config_path)], cwd=REPO, env=env,
                            stdout=open(log_path, "ab"), stderr=subprocess.STDOUT)


def queued_pain(path) -> list[tuple[str, int]]:
    db = sqlite3.connect(path)
    rows = db.execute("SELECT payload FROM entries WHERE topic LIKE '%/pain' ORDER BY id")
    return [(b["boot_id"], b["seq"]) for b in (json.loads(r[0]) for r in rows)]


def test_app_killed_mid_stream_resumes_its_outbox(mosquitto_factory, tmp_path):
    broker = persistent_broker(mosquitto_factory, tmp_path)
    device_id = "bed-f3"
    state = tmp_path / "state"
    config_path = tmp_path / "painmon.toml"
    config_path.write_text(
        f'device_id = "{device_id}"\nhardware = "emulated"\nstate_dir = "{state}"\n'
        f"[mqtt]\nhost = \"{broker.host}\"\nport = {broker.port}\nreconnect_min_s = 0.1\n"
        "reconnect_max_s = 0.5\nwill_delay_s = 0\nha_discovery = false\n"
        "[face]\nenabled = false\n")
    consumer = PersistentSubscriber(broker.host, broker.port, f"painmon/{device_id}/pain",
                                    "logger-f3")
    wait_broker_saved(tmp_path / "broker-store", time.time())  # the consumer's session is on disk
    app = start_app(config_path, tmp_path / "app.log")
    t0 = time.monotonic()
    try:
        consumer.wait_count(lambda b: True, 2, 30)  # the app runs and publishes
        broker.kill()  # from now on pain estimates pile up in the outbox
        wait_until(lambda: len(queued_pain(outbox_path(state, device_id))) >= 4, 30,
                   "a backlog of pain estimates in the outbox")
        app.send_signal(signal.SIGKILL)
        app.wait(10)
        backlog = queued_pain(outbox_path(state, device_id))
        broker.start()
        app = start_app(config_path, tmp_path / "app.log")
        first_boot = backlog[0][0]
        got = consumer.wait_count(lambda b: b["boot_id"] != first_boot, 2, 40)
        kept = dedup(consumer.bodies())
    finally:
        app.send_signal(signal.SIGTERM)
        try:
            app.wait(15)
        except subprocess.TimeoutExpired:
            app.kill()
        consumer.close()
    keys = [(b["boot_id"], b["seq"]) for b in kept]
    assert set(backlog) <= set(keys), f"lost from the outbox: {set(backlog) - set(keys)}"
    first = [k for k in keys if k[0] == first_boot]
    assert first == sorted(first), "the first boot's estimates arrived out of order"
    late = {(b["boot_id"], b["seq"]) for b in kept if b.get("late")}
    assert set(backlog) <= late
    assert got and all(b["boot_id"] != first_boot for b in got)
    print(f"app SIGKILL: {len(backlog)} queued at the kill, all delivered late after restart; "
          f"{len(first)} estimates of the first boot in order; {time.monotonic() - t0:.1f} s")


def test_outbox_at_its_bound_reports_eviction(mosquitto, mqtt_probe, tmp_path, caplog):
    device_id = "bed-f4"
    config = device_config(mosquitto, tmp_path, device_id, outbox_max_entries=10)
    probe = mqtt_probe(mosquitto.host, mosquitto.port, f"painmon/{device_id}/#")
    link = MqttLink(config.mqtt, device_id, boot_id="boot-f4")
    output = MqttOutput(config, link, Envelope(config.device_id)).start()
    try:
        for seq in range(1, 26):  # offline: the bound is reached, the oldest go
            output("pain", {"schema": "painmon.pain/1", "boot_id": "boot-f4", "seq": seq})
        assert output.outbox.stats() == {"pending": 10, "evicted": 15, "max_entries": 10}
        link.start()
        assert output.sender.wait_idle(10)
        wait_until(lambda: sum(m.topic.endswith("/pain") for m in probe.messages) >= 10, 5, "10")
        seqs = [m.json()["seq"] for m in probe.messages if m.topic.endswith("/pain")]
        status = probe.wait_for(lambda m: m.topic.endswith("/status")).json()
    finally:
        output.stop()
        link.stop()
    assert seqs == list(range(16, 26))
    assert status["outbox"]["evicted"] == 15
    assert "evicted the 1 oldest, 15 evicted so far" in caplog.text
