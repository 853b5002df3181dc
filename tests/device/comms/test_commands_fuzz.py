"""Commands under fuzzing: whatever arrives, no crash and exactly one valid answer.

At least 10,000 generated payloads go through the router (random bytes, random JSON, near-valid
objects for every registered command, huge ones, unicode), and a smaller number end to end
through a real broker. Every answer validates against the command result schema.
"""

from __future__ import annotations

import json
import re
import time

import jsonschema
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sensors.clock import SteppedClock
from tests.device.mqtt_helpers import device_config, serve, wait_until
from tools.api_docs import registered_commands

from device.app.root import build_monitor
from device.comms import schemas
from device.comms.link import MqttLink
from device.processing.commands import CommandRouter

RESULT = jsonschema.Draft202012Validator(schemas.load("painmon.command_result/1"))
COMMANDS = registered_commands()
NAMES = sorted(COMMANDS)
# Near-valid values: the right keys with values of every kind, edges and beyond.
VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-10**12, 10**12), st.floats(allow_nan=False),
    st.text(max_size=80), st.sampled_from(["all", "patient", "nurse", "start", "stop", "", "1"]),
    st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=5), st.integers(),
                                                        max_size=2))


def field_names(name: str) -> list[str]:
    return sorted(COMMANDS[name].model.model_json_schema(by_alias=True)["properties"])


@st.composite
def near_valid(draw) -> tuple[str, bytes]:
    name = draw(st.sampled_from(NAMES))
    keys = field_names(name) + ["extra", "request_id"]
    body = draw(st.dictionaries(st.sampled_from(keys), VALUES, max_size=4))
    return name, json.dumps(body).encode()


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20)
PAYLOADS = st.one_of(
    st.tuples(st.sampled_from(NAMES), st.binary(max_size=200)),
    st.tuples(st.sampled_from(NAMES), JSON_VALUES.map(lambda v: json.dumps(v).encode())),
    near_valid(),
    near_valid(),
    st.tuples(st.text(max_size=40), st.binary(max_size=40)),  # names nobody registered
    st.tuples(st.sampled_from(NAMES), st.text(max_size=300).map(lambda t: t.encode("utf-8",
                                                                                  "surrogatepass"))),
    st.tuples(st.sampled_from(NAMES), st.integers(4000, 20000).map(
        lambda n: b'{"request_id": "' + b"x" * n + b'"}')),  # huge
    st.tuples(st.sampled_from(NAMES), st.integers(1, 3000).map(lambda n: b"[" * n)),  # deep
)


def fuzz_router() -> tuple[CommandRouter, list, SteppedClock]:
    clock = SteppedClock()
    router = CommandRouter(clock, rate_per_s=1e9, burst=10**9)
    for name, command in COMMANDS.items():
        if name not in router.commands:
            # The handlers' own effects are not under test here: answer like them, quickly.
            router.register(name, command.model, lambda request: {"accepted": True},
                            command.description)
    return router, [], clock


ROUTER, ANSWERS, _ = fuzz_router()


@settings(max_examples=10_500, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(PAYLOADS)
def test_router_answers_every_generated_payload(case):
    name, payload = case
    result = ROUTER.handle(name, payload)
    RESULT.validate({"schema": result["schema"], "device_id": "d", "boot_id": "b", "seq": 1,
                     "t": "2026-01-01T00:00:00Z", **{k: v for k, v in result.items()
                                                     if k != "schema"}})
    json.dumps(result)  # publishable
    ANSWERS.append(result["ok"])


def test_fuzz_volume_and_both_outcomes():
    """Runs after the property test in this module: the volume promised, and the generator
    reached both accepted and refused requests."""
    assert len(ANSWERS) >= 10_000, len(ANSWERS)
    assert ROUTER.accepted + ROUTER.refused >= 10_000
    assert any(ANSWERS) and not all(ANSWERS)
    print(f"router fuzz: {len(ANSWERS)} payloads, {ROUTER.accepted} accepted, "
          f"{ROUTER.refused} refused")


def test_fuzz_end_to_end_through_the_broker(mosquitto, mqtt_probe, tmp_path):
    """Generated payloads published to cmd/nurse/<name> on a real broker: one result each
    (those larger than the device's maximum packet size never reach it: a test of their own
    in test_command_safety)."""
    device_id = "bed-fuzz"
    config = device_config(mosquitto, tmp_path, device_id)
    monitor = build_monitor(config, SteppedClock(), [])
    pipeline = monitor.pipeline
    link = MqttLink(config.mqtt, device_id)
    output = serve(monitor, link)
    link.start()
    probe = mqtt_probe(mosquitto.host, mosquitto.port, f"painmon/{device_id}/cmd/result")
    cases: list[tuple[str, bytes]] = []

    @settings(max_examples=300, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(PAYLOADS)
    def collect(case):
        name, payload = case
        # Brokers drop clients that publish to malformed topics: keep names topic-safe.
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,40}", name) or name == "result":
            name = "unknown-" + str(len(name))
        if len(payload) <= 8192:
            cases.append((name, payload))

    collect()
    t0 = time.monotonic()
    try:
        assert link.wait_connected(5)
        wait_until(lambda: f"painmon/{device_id}/cmd/+/+" in mosquitto.log(), 5, "SUBSCRIBE")
        for name, payload in cases:
            probe._client.publish(f"painmon/{device_id}/cmd/nurse/{name}", payload, qos=1)
        # Each request is answered, or (a refusal beyond the role's answer budget) counted.
        wait_until(lambda: len(probe.messages) + output.commands_unanswered >= len(cases), 60,
                   "an answer to every request")
        time.sleep(0.5)
    finally:
        output.stop()
        link.stop()
        pipeline.stop()
    results = [m.json() for m in probe.messages]
    assert len(results) + output.commands_unanswered == len(cases)
    assert output.commands_unanswered <= len(cases) - 50  # at least a burst (50) answered
    for result in results:
        RESULT.validate(result)
    assert any("rate limit" in r.get("reason", "") for r in results)  # 300 at once: throttled
    print(f"end to end: {len(cases)} requests, {len(results)} answers in "
          f"{time.monotonic() - t0:.1f} s")
