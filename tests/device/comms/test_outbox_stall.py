"""The outbox never stalls when the broker dies while a batch is being handed to paho.

On a loaded device each publish takes longer and paho's network thread notices a dead socket
late: between the socket closing and ``on_disconnect``, ``link.connected`` still says yes and
paho answers every publish with ``MQTT_ERR_NO_CONN``. The test makes that window certain
instead of lucky: every publish of the outbox takes 20 ms (a slow Pi), the broker is SIGKILLed
in the middle of a backlog drain, and paho's disconnect callback runs 0.5 s late. Delivery must
resume within seconds of the broker's return, with every estimate delivered in order.
"""

from __future__ import annotations

import threading
import time

from tests.device.mqtt_helpers import (
    AckWatch,
    PersistentSubscriber,
    device_config,
    wait_broker_saved,
    wait_until,
)

from device.comms.delivery import MqttOutput
from device.comms.link import MqttLink
from device.processing.envelope import Envelope

from .test_outbox_faults import all_but_lost, in_order_without_gaps, persistent_broker, stop_all

SLOW_PUBLISH_S = 0.020  # what a loaded Pi adds to each publish
LATE_DISCONNECT_S = 0.5  # how late paho's network thread tells of the dead socket
BACKLOG = 300
KILL_AT_PUBLISH = 70  # in the second batch of the drain (50 per batch)


def pain(device_id: str, boot_id: str, seq: int) -> dict:
    return {"schema": "painmon.pain/1", "device_id": device_id, "boot_id": boot_id, "seq": seq,
            "t": "2026-01-01T00:00:00.000Z", "score": 1.0, "level": "mild", "confidence": 0.5,
            "contributions": {}, "flags": []}


def test_broker_killed_mid_batch_on_a_slow_device_does_not_stall_the_outbox(
        mosquitto_factory, tmp_path, caplog):
    broker = persistent_broker(mosquitto_factory, tmp_path)
    device_id = "bed-s1"
    consumer = PersistentSubscriber(broker.host, broker.port, f"painmon/{device_id}/pain",
                                    "nurse-station-s1")
    wait_broker_saved(tmp_path / "broker-store", time.time())
    config = device_config(broker, tmp_path / "state", device_id)
    link = MqttLink(config.mqtt, device_id, boot_id="boot-s1")
    client = link._client  # paho's own client: where the slow device's delays are injected
    on_disconnect = client.on_disconnect

    def late_disconnect(*args) -> None:
        time.sleep(LATE_DISCONNECT_S)
        on_disconnect(*args)

    client.on_disconnect = late_disconnect
    killed = threading.Event()
    killed_at: list[float] = []
    no_conn_answers: list[int] = []
    publish_raw = link.publish_raw
    outbox_publishes = 0

    def slow_publish(topic, body, **kwargs):
        nonlocal outbox_publishes
        time.sleep(SLOW_PUBLISH_S)
        if topic.endswith("/pain"):
            outbox_publishes += 1
            if outbox_publishes == KILL_AT_PUBLISH:
                broker.kill()
                killed_at.append(time.monotonic())
                # Until paho has seen the socket close, publishes still look fine.
                wait_until(lambda: client.socket() is None, 5, "paho seeing the broker gone")
                killed.set()
        info = publish_raw(topic, body, **kwargs)
        if killed.is_set() and link.connected and info.rc:
            no_conn_answers.append(info.rc)  # the window the old sender stalled in
        return info

    link.publish_raw = slow_publish
    link.start()
    assert link.wait_connected(5)
    output = MqttOutput(config, link, Envelope(config.device_id)).start()
    watch = AckWatch(output.outbox)
    produced = [pain(device_id, "boot-s1", seq) for seq in range(1, BACKLOG + 1)]
    try:
        for message in produced:  # a backlog: faster than the slow link drains it
            output("pain", message)
            watch.produced(message["seq"])
        assert killed.wait(30), "the broker was not killed mid-drain"
        may_be_lost = watch.may_be_lost(killed_at[0])
        time.sleep(1.0)
        pending_at_return = output.outbox.count()
        broker.start()
        back = time.monotonic()
        wait_until(lambda: output.outbox.count() < pending_at_return, 5,
                   "the first acknowledgement after the broker returned")
        resumed_s = time.monotonic() - back
        assert output.sender.wait_idle(30), f"{output.outbox.count()} entries still pending"
        drained_s = time.monotonic() - back
        got = all_but_lost(consumer, produced, may_be_lost, 30)
    finally:
        stop_all(watch, output, link, consumer)
    assert no_conn_answers, "the window was not hit: paho took every publish"
    assert "outbox sender failed" not in caplog.text
    lost = in_order_without_gaps(got, produced, may_be_lost)
    print(f"slow device: {len(no_conn_answers)} publishes refused in the window, "
          f"{pending_at_return} pending at the broker's return; first ack after {resumed_s:.2f} s, "
          f"all {BACKLOG} delivered {drained_s:.1f} s after; {lost} of the {len(may_be_lost)} "
          "the broker acknowledged in its last save window lost with it")
