import json

from pydantic import Field

from sensors.clock import SteppedClock

from device.processing.commands import CommandRefused, CommandRequest, CommandRouter


class Echo(CommandRequest):
    value: int = Field(ge=0, le=10)


def router(**kw):
    clock = SteppedClock()
    r = CommandRouter(clock, **kw)
    r.register("echo", Echo, lambda req: {"value": req.value}, "echo a value")

    def refuse(req):
        raise CommandRefused("not now")

    r.register("refuse", CommandRequest, refuse, "always refuses")
    return clock, r


def test_valid_command_is_answered_with_its_request_id():
    _, r = router()
    out = r.handle("echo", json.dumps({"request_id": "a1", "value": 3}).encode())
    assert out == {"schema": "painmon.command_result/1", "command": "echo", "request_id": "a1",
                   "ok": True, "result": {"value": 3}}


def test_every_kind_of_bad_request_is_refused_with_a_reason():
    _, r = router()
    cases = {
        ("nope", b"{}"): "unknown command 'nope'",
        ("echo", b"{not json"): "not JSON",
        ("echo", b"[1]"): "JSON object",
        ("echo", b'{"value": 11}'): "value:",
        ("echo", b'{"value": 1, "extra": 2}'): "extra: unknown field",
        ("echo", b"\xff\xfe"): "not JSON",
        ("refuse", b"{}"): "not now",
    }
    for (name, payload), reason in cases.items():
        out = r.handle(name, payload)
        assert out["ok"] is False and reason in out["reason"], (name, payload, out)


def test_size_and_rate_limits():
    clock, r = router(max_bytes=32, rate_per_s=1.0, burst=2)
    assert "exceeds 32" in r.handle("echo", b'{"value": 1, "request_id": "' + b"x" * 40 + b'"}')["reason"]
    assert r.handle("echo", b'{"value": 1}')["ok"]
    assert "rate limit" in r.handle("echo", b'{"value": 1}')["reason"]
    clock.advance(1.0)
    assert r.handle("echo", b'{"value": 1}')["ok"]
