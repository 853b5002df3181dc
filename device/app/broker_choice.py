"""Which MQTT broker a demo or a replay talks to: the one given, else one on localhost:1883,
else a loopback-only broker started for the run (``device.app.broker``)."""

from __future__ import annotations

from contextlib import ExitStack
from typing import TextIO

from device.config import PainmonConfig


def parse_broker(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--broker must be HOST:PORT, got {text!r}")
    return host, int(port)


def with_broker(config: PainmonConfig, broker: str | None, stack: ExitStack,
                out: TextIO) -> PainmonConfig:
    """The configuration pointed at ``broker`` (HOST:PORT), else at localhost:1883 when a
    broker answers there, else at a loopback-only broker started for this run (closed by
    ``stack``)."""
    if broker:
        host, port = parse_broker(broker)
        protocol = config.mqtt.protocol
    else:
        # Only a run without a broker may start one (asyncio costs ~1 MB of RSS).
        from device.app.broker import EmbeddedBroker, broker_answers

        if broker_answers("127.0.0.1", 1883):
            host, port, protocol = "127.0.0.1", 1883, config.mqtt.protocol
        else:
            embedded = stack.enter_context(EmbeddedBroker())
            host, port, protocol = embedded.host, embedded.port, embedded.protocol
            print(f"no MQTT broker on localhost:1883; started one on {host}:{port}", file=out)
    return config.model_copy(update={"mqtt": config.mqtt.model_copy(
        update={"host": host, "port": port, "protocol": protocol})})
