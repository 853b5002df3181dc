"""The command path through a real mosquitto under the attacks that silenced it: a deeply
nested command, a huge one redelivered at every start, retained commands, floods, a failing
handler. After each, the path still answers."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import paho.mqtt.client as mqtt

from sensors.clock import SteppedClock
from tests.device.mqtt_helpers import command, device_config, persistent_broker_config, wait_until

from device.app.root import build_monitor
from device.comms.delivery import MqttOutput
from device.comms.link import MqttLink
from device.processing.commands import NURSE, CommandRequest
from device.recording.writer import attach_recorder

DEVICE = "bed-safe"
BASE = f"painmon/{DEVICE}"


class Device:
    """The monitor's command path on a broker (link, output, recorder), started and stopped."""

    def __init__(self, broker, state_dir, record: bool = False, **mqtt) -> None:
        self.config = device_config(broker, state_dir, DEVICE, **mqtt)
        self.monitor = build_monitor(self.config, SteppedClock(), [])
        self.recorder = attach_recorder(
            self.config, self.monitor.pipeline, self.monitor.commands,
            boot_id=self.monitor.envelope.boot_id, wall=self.monitor.wall,
            directory=state_dir / "recordings" if record else None)
        self.link = MqttLink(self.config.mqtt, DEVICE)
        self.output = MqttOutput(self.config, self.link, self.monitor.envelope,
                                 alarms=self.monitor.alarms, commands=self.monitor.commands)
        self.output.start()
        before = broker.log().count(f"{BASE}/cmd/+/+")
        self.link.start()
        assert self.link.wait_connected(5)
        wait_until(lambda: broker.log().count(f"{BASE}/cmd/+/+") > before, 5,
                   "SUBSCRIBE at the broker")

    def stop(self) -> None:
        self.recorder.stop()
        self.output.stop()
        self.link.stop()
        self.monitor.pipeline.stop()
        self.monitor.commands.answered.close()


def sender(broker, client_id: str = "station") -> mqtt.Client:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                         protocol=mqtt.MQTTv5)
    client.connect(broker.host, broker.port)
    client.loop_start()
    return client


def results(probe) -> list[dict]:
    return [m.json() for m in probe.messages if m.topic.endswith("/cmd/result")]


def answered(probe, request_id: str, timeout_s: float = 5.0) -> dict:
    def find():
        return next((r for r in results(probe) if r.get("request_id") == request_id), None)

    wait_until(lambda: find() is not None, timeout_s, f"the answer to {request_id}")
    return find()


def test_a_2kb_nested_command_is_refused_and_the_path_stays_alive(mosquitto, mqtt_probe,
                                                                   tmp_path):
    device = Device(mosquitto, tmp_path, record=True)
    probe = mqtt_probe(mosquitto.host, mosquitto.port, f"{BASE}/cmd/result")
    station = sender(mosquitto)
    try:
        nested = (b'{"request_id": "deep", "alarm_id": ' + b"[" * 1000 + b"]" * 1000 + b"}")
        assert len(nested) < 2100
        station.publish(f"{BASE}/cmd/nurse/acknowledge", nested, qos=1)
        refusal = answered(probe, "deep")
        assert not refusal["ok"] and "nested deeper" in refusal["reason"]
        station.publish(f"{BASE}/cmd/nurse/ping", command(request_id="after"), qos=1)
        assert answered(probe, "after")["ok"]
        assert device.output._command_thread.is_alive()
        # Refused commands are recorded as a summary, never in full.
        big = b'{"request_id": "big", "pad": "' + b"x" * 6000 + b'"}'
        station.publish(f"{BASE}/cmd/nurse/acknowledge", big, qos=1)
        assert "exceeds" in answered(probe, "big")["reason"]
    finally:
        station.loop_stop()
        device.stop()
    events = [json.loads(line) for path in (tmp_path / "recordings").glob("*.events.jsonl")
              for line in path.read_text().splitlines()]
    refused = [e["message"] for e in events if e["topic"] == "command" and
               not e["message"]["ok"]]
    assert {r["request"]["request_id"] for r in refused} >= {"deep", "big"}
    assert all(len(json.dumps(r)) < 600 for r in refused), refused


def test_a_handler_that_raises_anything_is_answered_and_the_thread_lives(mosquitto, mqtt_probe,
                                                                          tmp_path):
    device = Device(mosquitto, tmp_path)

    def explode(_request):
        raise RecursionError("maximum recursion depth exceeded")

    device.monitor.commands.register("explode", CommandRequest, explode, "x", roles=(NURSE,))
    probe = mqtt_probe(mosquitto.host, mosquitto.port, f"{BASE}/cmd/result")
    station = sender(mosquitto)
    try:
        for i in range(3):
            station.publish(f"{BASE}/cmd/nurse/explode", command(request_id=f"x{i}"), qos=1)
        assert all(not answered(probe, f"x{i}")["ok"] for i in range(3))
        station.publish(f"{BASE}/cmd/nurse/ping", command(request_id="alive"), qos=1)
        assert answered(probe, "alive")["ok"]
    finally:
        station.loop_stop()
        device.stop()


HUGE_SENDER = """
import sys, paho.mqtt.client as mqtt
host, port, topic = sys.argv[1], int(sys.argv[2]), sys.argv[3]
body = b'{"request_id": "huge", "alarm_id": "' + b"x" * (255 * 1024 * 1024) + b'"}'
c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="huge", protocol=mqtt.MQTTv5)
c.connect(host, port)
c.loop_start()
c.publish(topic, body, qos=1).wait_for_publish(60)
c.disconnect()
c.loop_stop()
"""


def rss_kb() -> int:
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_a_255mb_command_never_reaches_the_device_at_start_after_start(mosquitto_factory,
                                                                        mqtt_probe, tmp_path):
    """The device's CONNECT says how large a packet it takes; the broker drops the 255 MB
    command queued for its persistent session instead of delivering it, at every start."""
    broker = mosquitto_factory(persistent_broker_config(tmp_path))
    probe = mqtt_probe(broker.host, broker.port, f"{BASE}/cmd/result")
    Device(broker, tmp_path / "state").stop()  # the persistent session exists
    # Sent by another process while the device is away, QoS 1: queued for its session.
    subprocess.run([sys.executable, "-c", HUGE_SENDER, broker.host, str(broker.port),
                    f"{BASE}/cmd/nurse/acknowledge"], check=True, timeout=120)
    for start in range(3):
        peak = [0]
        stop = threading.Event()

        def watch(peak=peak, stop=stop):
            while not stop.wait(0.005):
                peak[0] = max(peak[0], rss_kb())

        base = rss_kb()
        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        device = Device(broker, tmp_path / "state")
        try:
            station = sender(broker, f"station-{start}")
            station.publish(f"{BASE}/cmd/nurse/ping", command(request_id=f"ping-{start}"), qos=1)
            assert answered(probe, f"ping-{start}", 10)["ok"]
            station.loop_stop()
            time.sleep(0.5)
        finally:
            stop.set()
            watcher.join()
            device.stop()
        growth_mb = (peak[0] - base) / 1024
        print(f"start {start}: peak RSS growth {growth_mb:.1f} MB")
        assert growth_mb < 10, growth_mb
    assert not any(r.get("request_id") == "huge" for r in results(probe))


def test_retained_commands_never_run_and_are_cleared(mosquitto_factory, mqtt_probe, tmp_path):
    broker = mosquitto_factory(persistent_broker_config(tmp_path))
    probe = mqtt_probe(broker.host, broker.port, f"{BASE}/cmd/#")
    station = sender(broker)
    device = Device(broker, tmp_path / "state")
    # A patient admitted: ratings and calibrations are possible, so never running one means
    # the retained commands were refused (the stay continues across the restarts below).
    assert device.monitor.commands.handle("admit", b'{"reference": "ret-01"}')["ok"]
    try:
        # Live: a retained calibrate while the device listens is refused and cleared.
        station.publish(f"{BASE}/cmd/nurse/calibrate", command(request_id="ret-live"), qos=1,
                        retain=True).wait_for_publish(5)
        refusal = answered(probe, "ret-live")
        assert not refusal["ok"] and "retained" in refusal["reason"]
        wait_until(lambda: any(m.topic.endswith("/calibrate") and not m.payload
                               for m in probe.messages), 5, "the retained command cleared")
    finally:
        device.stop()
    # Retained while the device is away, then three starts: never executed.
    station.publish(f"{BASE}/cmd/patient/self_report", command(request_id="ret-away", nrs=9),
                    qos=1, retain=True).wait_for_publish(5)
    for _ in range(3):
        device = Device(broker, tmp_path / "state")
        try:
            time.sleep(0.7)
            assert device.monitor.pain.reports.reports() == []
            assert device.monitor.pain.calibration.status(0).get("state") != "running"
        finally:
            device.stop()
    executed = [r for r in results(probe) if r.get("ok") and r.get("request_id", "").startswith("ret")]
    assert executed == []
    # Nothing retained remains on the command topics for a newcomer.
    late = mqtt_probe(broker.host, broker.port, f"{BASE}/cmd/+/+")
    time.sleep(0.5)
    assert [m.topic for m in late.messages if m.payload and m.retain] == []
    station.loop_stop()


def test_an_acknowledge_is_answered_within_1s_during_a_10000_command_flood(mosquitto,
                                                                            mqtt_probe,
                                                                            tmp_path):
    device = Device(mosquitto, tmp_path)
    device.monitor.alarms.raise_alarm("pain_high", "pain", category="physiological",
                                      priority="medium", message="flood test")
    probe = mqtt_probe(mosquitto.host, mosquitto.port, f"{BASE}/cmd/result")
    flooder = sender(mosquitto, "tablet")
    nurse = sender(mosquitto, "nurse-station")
    latencies = []
    try:
        body = command(nrs=5)
        done = threading.Event()

        def flood():
            for i in range(10_000):
                flooder.publish(f"{BASE}/cmd/patient/self_report", body, qos=0)
                if i % 500 == 0:
                    time.sleep(0.01)
            done.set()

        threading.Thread(target=flood, daemon=True).start()
        for i in range(10):
            time.sleep(0.3)
            t0 = time.monotonic()
            nurse.publish(f"{BASE}/cmd/nurse/acknowledge",
                          command(request_id=f"ack-{i}", alarm_id="all", by="ward-3"), qos=1)
            answer = answered(probe, f"ack-{i}", 5)
            latencies.append(time.monotonic() - t0)
            assert answer["ok"], answer
        done.wait(60)
    finally:
        flooder.loop_stop()
        nurse.loop_stop()
        device.stop()
    print(f"acknowledge during the flood: {[round(x, 3) for x in latencies]} s, "
          f"{len(probe.messages)} results in all")
    assert max(latencies) < 1.0, latencies
    assert device.monitor.alarms.get("pain_high", "pain").state == "acknowledged"
    assert device.monitor.alarms.get("pain_high", "pain").acknowledged_by == "nurse/ward-3"


def test_a_stale_command_and_a_repeated_request_id_through_the_broker(mosquitto, mqtt_probe,
                                                                       tmp_path):
    device = Device(mosquitto, tmp_path)
    assert device.monitor.commands.handle("admit", b'{"reference": "twice-1"}')["ok"]
    probe = mqtt_probe(mosquitto.host, mosquitto.port, f"{BASE}/cmd/result")
    station = sender(mosquitto)
    try:
        stale = json.dumps({"t": "2026-01-01T00:00:00.000Z", "request_id": "old",
                            "nrs": 3}).encode()
        station.publish(f"{BASE}/cmd/nurse/self_report", stale, qos=1)
        assert "stale" in answered(probe, "old")["reason"]
        for _ in range(4):
            station.publish(f"{BASE}/cmd/nurse/self_report",
                            command(request_id="twice", nrs=3), qos=1)
        wait_until(lambda: sum(r.get("request_id") == "twice" for r in results(probe)) == 4, 5,
                   "four answers")
        answers = [r for r in results(probe) if r.get("request_id") == "twice"]
        assert all(a["result"] == answers[0]["result"] for a in answers)
        assert len(device.monitor.pain.reports.reports()) == 1
    finally:
        station.loop_stop()
        device.stop()


def test_a_command_thread_that_ended_is_started_again(mosquitto, mqtt_probe, tmp_path):
    device = Device(mosquitto, tmp_path)
    probe = mqtt_probe(mosquitto.host, mosquitto.port, f"{BASE}/cmd/result")
    station = sender(mosquitto)
    try:
        with device.output._queued:  # the serving thread ends, as if killed
            device.output._serving = False
            device.output._queued.notify_all()
        device.output._command_thread.join(2)
        assert not device.output._command_thread.is_alive()
        device.output._serving = True
        station.publish(f"{BASE}/cmd/nurse/ping", command(request_id="revived"), qos=1)
        assert answered(probe, "revived")["ok"]
        assert device.output.command_thread_restarts == 1
    finally:
        station.loop_stop()
        device.stop()
