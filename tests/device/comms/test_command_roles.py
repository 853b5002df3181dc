"""Who may do what, against a real mosquitto with the documented set-up: the ACL and the
security lines of systemd/mosquitto/ as committed. The role is the topic level the broker lets
a user write; a viewer sends nothing, a patient cannot act as a nurse, nobody but the device
writes cmd/result, and a client id cannot take another client's session over."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from sensors.clock import SteppedClock
from tests.device.mqtt_helpers import command, wait_until

from device.app.root import build_monitor
from device.comms.delivery import MqttOutput
from device.comms.link import MqttLink
from device.config import PainmonConfig

EXAMPLES = Path(__file__).resolve().parents[3] / "systemd" / "mosquitto"
DEVICE = "bed-12"
BASE = f"painmon/{DEVICE}"
USERS = {DEVICE: "device-pw", "nurse-ward3": "nurse-pw", "patient-bed-12": "patient-pw",
         "admin": "admin-pw", "dashboard": "dash-pw"}
#: The lines of the example broker configuration that decide who gets in and as whom.
SECURITY_KEYS = ("allow_anonymous", "use_username_as_clientid", "max_packet_size")


@pytest.fixture
def broker(mosquitto_factory, tmp_path):
    if subprocess.run(["which", "mosquitto_passwd"], capture_output=True).returncode:
        pytest.skip("mosquitto_passwd not installed")
    passwd = tmp_path / "passwd"
    passwd.write_text("")
    for user, password in USERS.items():
        subprocess.run(["mosquitto_passwd", "-b", str(passwd), user, password], check=True)
    security = [line for line in (EXAMPLES / "painmon.conf").read_text().splitlines()
                if line.split(" ")[0] in SECURITY_KEYS]
    assert len(security) == len(SECURITY_KEYS)
    return mosquitto_factory("\n".join(security) + f"\npassword_file {passwd}\n"
                             f"acl_file {EXAMPLES / 'painmon.acl'}\n", allow_anonymous=False)


class Client:
    """A user's connection: what it receives, and its disconnections."""

    def __init__(self, broker, user: str, client_id: str = "", topic: str | None = None):
        self.messages: list[mqtt.MQTTMessage] = []
        self.disconnects = 0
        ready = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=mqtt.MQTTv5, reconnect_on_failure=False)
        self.client.username_pw_set(user, USERS[user])

        def on_connect(c, _u, _f, reason, _p):
            assert not reason.is_failure, reason
            if topic:
                c.subscribe(topic, qos=1)
            else:
                ready.set()

        def on_disconnect(*_args):
            self.disconnects += 1

        self.client.on_connect = on_connect
        self.client.on_subscribe = lambda *_: ready.set()
        self.client.on_message = lambda _c, _u, m: self.messages.append(m)
        self.client.on_disconnect = on_disconnect
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        assert ready.wait(5)

    def send(self, topic: str, payload: bytes):
        return self.client.publish(topic, payload, qos=1)

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


def results(client: Client) -> list[dict]:
    import json

    return [json.loads(m.payload) for m in client.messages if m.topic == f"{BASE}/cmd/result"]


def answer(client: Client, request_id: str, timeout_s: float = 5.0) -> dict:
    wait_until(lambda: any(r.get("request_id") == request_id for r in results(client)),
               timeout_s, f"the answer to {request_id}")
    return next(r for r in results(client) if r.get("request_id") == request_id)


@pytest.fixture
def device(broker, tmp_path):
    secret = tmp_path / "device-pw"
    secret.write_text(USERS[DEVICE])
    secret.chmod(0o600)
    config = PainmonConfig.model_validate({
        "device_id": DEVICE, "hardware": "emulated", "state_dir": str(tmp_path / "state"),
        "face": {"enabled": False},
        "mqtt": {"host": broker.host, "port": broker.port, "username": DEVICE,
                 "password_file": str(secret), "reconnect_min_s": 0.1, "reconnect_max_s": 0.5,
                 "will_delay_s": 0, "ha_discovery": False}})
    monitor = build_monitor(config, SteppedClock(), [])
    link = MqttLink(config.mqtt, DEVICE)
    output = MqttOutput(config, link, monitor.envelope, alarms=monitor.alarms,
                        commands=monitor.commands).start()
    link.start()
    assert link.wait_connected(5), link.last_connect_reason
    wait_until(lambda: f"{BASE}/cmd/+/+" in broker.log(), 5, "SUBSCRIBE")
    yield monitor, link
    output.stop()
    link.stop()
    monitor.pipeline.stop()


def test_each_role_does_what_the_acl_lets_it_and_no_more(broker, device):
    monitor, _ = device
    assert monitor.commands.handle("admit", b'{"reference": "bed12-1"}')["ok"]  # ratings need a stay
    monitor.alarms.raise_alarm("pain_high", "pain", category="physiological",
                               priority="medium", message="roles")
    nurse = Client(broker, "nurse-ward3", "nurse-station", f"{BASE}/cmd/result")
    patient = Client(broker, "patient-bed-12", "tablet", f"{BASE}/cmd/result")
    dashboard = Client(broker, "dashboard", "dash", "painmon/#")
    try:
        # A viewer sends nothing: the broker drops it, the device never sees it.
        dashboard.send(f"{BASE}/cmd/nurse/acknowledge", command(request_id="v1", alarm_id="all"))
        dashboard.send(f"{BASE}/cmd/admin/ping", command(request_id="v2"))
        # A patient cannot write the nurse's topics, nor pass as a nurse in the payload.
        patient.send(f"{BASE}/cmd/nurse/acknowledge", command(request_id="p1", alarm_id="all"))
        patient.send(f"{BASE}/cmd/patient/acknowledge", command(request_id="p2", alarm_id="all"))
        patient.send(f"{BASE}/cmd/patient/self_report",
                     command(request_id="p3", nrs=10, source="nurse"))
        patient.send(f"{BASE}/cmd/patient/self_report", command(request_id="p4", nrs=6))
        # A nurse cannot forge the device's answers.
        nurse.send(f"{BASE}/cmd/result", b'{"request_id": "forged", "ok": true}')
        nurse.send(f"{BASE}/cmd/nurse/acknowledge",
                   command(request_id="n1", alarm_id="all", by="ward-3"))
        assert answer(nurse, "n1")["ok"]
        assert "role patient may not send acknowledge" in answer(patient, "p2")["reason"]
        assert "may only report source 'patient'" in answer(patient, "p3")["reason"]
        assert answer(patient, "p4")["ok"]
        time.sleep(1.0)
        ids = {r.get("request_id") for r in results(dashboard)}
        assert ids.isdisjoint({"v1", "v2", "p1", "forged"}), ids
        assert not any(m.topic == f"{BASE}/cmd/result" and b"forged" in m.payload
                       for m in dashboard.messages)
        alarm = monitor.alarms.get("pain_high", "pain")
        assert alarm.acknowledged_by == "nurse/ward-3"
        assert [r.source for r in monitor.pain.reports.reports()] == ["patient"]
    finally:
        for c in (nurse, patient, dashboard):
            c.close()


def test_a_client_id_cannot_take_the_device_session_over(broker, device):
    _, link = device
    nurse = Client(broker, "nurse-ward3", "nurse-station", f"{BASE}/cmd/result")
    # A read-only dashboard connecting with the device's own client id.
    impostor = Client(broker, "dashboard", link.client_id)
    impostor.client.subscribe(f"{BASE}/cmd/#", qos=1)
    try:
        time.sleep(0.5)
        nurse.send(f"{BASE}/cmd/nurse/ping", command(request_id="still-mine"))
        assert answer(nurse, "still-mine")["ok"]  # the device still has its session
        assert link.disconnects == 0 and link.connected
        assert impostor.disconnects == 0
    finally:
        nurse.close()
        impostor.close()
