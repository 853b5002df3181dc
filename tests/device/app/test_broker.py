from __future__ import annotations

import socket

import pytest

import device.app.broker as broker_module
from device.app.broker import BrokerStartError, EmbeddedBroker, broker_answers, free_loopback_port
from device.comms.link import MqttLink
from device.config import MqttConfig


def non_loopback_address() -> str | None:
    """An address of this machine other than 127.x, if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # TEST-NET-1: nothing is sent for a UDP connect
        except OSError:
            return None
        address = s.getsockname()[0]
    return None if address.startswith("127.") or address == "0.0.0.0" else address


def test_broker_answers_probe():
    port = free_loopback_port()
    assert not broker_answers("127.0.0.1", port)
    with socket.socket() as server:
        server.bind(("127.0.0.1", port))
        server.listen()
        assert broker_answers("127.0.0.1", port)


@pytest.mark.parametrize("implementation, protocol", [("mosquitto", "5"), ("amqtt", "3.1.1")])
def test_embedded_broker_round_trip(implementation, protocol, mqtt_probe):
    broker = EmbeddedBroker(implementation=implementation)
    assert broker.port == 0 and broker.protocol == protocol
    with broker:
        assert broker.port > 0 and broker.host == "127.0.0.1"
        assert broker.implementation == implementation
        assert broker_answers(broker.host, broker.port)
        other = non_loopback_address()
        if other is not None:  # loopback only, never 0.0.0.0
            assert not broker_answers(other, broker.port)

        probe = mqtt_probe(broker.host, broker.port, "painmon/#", protocol=protocol)
        config = MqttConfig(port=broker.port, protocol=protocol, reconnect_min_s=0.1)
        with MqttLink(config, "demo", boot_id="b1") as link:
            assert link.wait_connected(5)
            assert link.publish_json("estimate", {"score": 4.0})
            message = probe.wait_for(lambda m: m.topic == "painmon/demo/estimate")
            assert message.json() == {"score": 4.0} and message.qos == 1
            online = probe.wait_for(lambda m: m.topic == "painmon/demo/status")
            assert online.json()["state"] == "online"
        probe.wait_for(lambda m: m.topic.endswith("/status") and m.json()["state"] == "offline")
        probe.close()
        port = broker.port
    assert not broker_answers("127.0.0.1", port)
    broker.stop()  # idempotent


def test_auto_prefers_mosquitto_and_falls_back_to_amqtt(monkeypatch):
    assert EmbeddedBroker().implementation == "mosquitto"  # installed on this machine
    monkeypatch.setattr(broker_module, "find_mosquitto", lambda: None)
    fallback = EmbeddedBroker()
    assert (fallback.implementation, fallback.protocol) == ("amqtt", "3.1.1")
    with pytest.raises(BrokerStartError, match="mosquitto is not installed"):
        EmbeddedBroker(implementation="mosquitto")


@pytest.mark.parametrize("implementation", ["mosquitto", "amqtt"])
def test_fixed_port_in_use_is_a_clear_error(implementation):
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        with pytest.raises(BrokerStartError, match=f"127.0.0.1:{port} is already in use"):
            EmbeddedBroker(port=port, implementation=implementation).start()


def test_fixed_port_and_restart():
    port = free_loopback_port()
    broker = EmbeddedBroker(port=port, implementation="mosquitto")
    broker.start()
    broker.start()  # already running: no second process
    assert broker.port == port and broker_answers("127.0.0.1", port)
    broker.stop()
    assert not broker_answers("127.0.0.1", port)
    broker.start()
    assert broker_answers("127.0.0.1", port)
    broker.stop()


def test_unknown_implementation():
    with pytest.raises(ValueError, match="hivemq"):
        EmbeddedBroker(implementation="hivemq")
