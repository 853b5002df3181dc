"""Commands to a running device from the command line: ``painmon admit``, ``discharge``,
``painad``, ``cpot``, ``analgesia``.

Each publishes one request on ``<prefix>/<device_id>/cmd/<role>/<name>`` (QoS 1; role nurse
by default) with a fresh ``request_id`` and the time it was sent, and waits for the device's
answer with that id on ``cmd/result``, so it goes through the same validation, stay checks
and record as a command from any other client.
"""

from __future__ import annotations

import json
import threading
import uuid

import paho.mqtt.client as mqtt

from device.processing.commands import NURSE
from device.processing.envelope import utc_iso


class NoAnswer(Exception):
    """The broker could not be reached, or the device did not answer in time."""


def send_command(host: str, port: int, device_id: str, name: str, payload: dict, *,
                 prefix: str = "painmon", role: str = NURSE, timeout_s: float = 10.0) -> dict:
    """The device's result for one request (``ok``, ``result`` or ``reason``), sent on the
    ``role``'s command topic (the broker's ACL decides who may write it), stamped now."""
    request_id = uuid.uuid4().hex[:16]
    body = json.dumps({**payload, "request_id": request_id, "t": utc_iso()}).encode()
    base = f"{prefix}/{device_id}"
    answered = threading.Event()
    subscribed = threading.Event()
    answer: dict = {}
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                         client_id=f"painmon-cli-{request_id[:8]}", protocol=mqtt.MQTTv5)

    def on_connect(c, _userdata, _flags, reason, _props) -> None:
        if not reason.is_failure:
            c.subscribe(f"{base}/cmd/result", qos=1)

    def on_subscribe(*_args) -> None:
        subscribed.set()

    def on_message(_c, _userdata, message) -> None:
        try:
            result = json.loads(message.payload)
        except ValueError:
            return
        if isinstance(result, dict) and result.get("request_id") == request_id:
            answer.update(result)
            answered.set()

    client.on_connect, client.on_subscribe, client.on_message = on_connect, on_subscribe, on_message
    try:
        client.connect(host, port, keepalive=30)
    except OSError as exc:
        raise NoAnswer(f"cannot reach {host}:{port}: {exc}") from None
    client.loop_start()
    try:
        if not subscribed.wait(timeout_s):
            raise NoAnswer(f"no subscription on {host}:{port} within {timeout_s:g} s")
        client.publish(f"{base}/cmd/{role}/{name}", body, qos=1)
        if not answered.wait(timeout_s):
            raise NoAnswer(f"device {device_id!r} did not answer {name} within {timeout_s:g} s")
    finally:
        client.disconnect()
        client.loop_stop()
    return answer
