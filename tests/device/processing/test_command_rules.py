"""The command router's rules against replay, forgery and floods, without a broker: bounded
input, roles from the topic, time, request_ids answered once (across restarts), per-role
rate limits, and refusals that always carry a readable request_id."""

from __future__ import annotations

import json
import time

from pydantic import Field

from sensors.clock import SteppedClock

from device.processing.alarms import AlarmBook
from device.processing.answered import AnsweredRequests
from device.processing.command_input import nesting_depth, read_command
from device.processing.commands import (
    ADMIN,
    ANYONE,
    LOCAL,
    NURSE,
    PATIENT,
    CommandRefused,
    CommandRequest,
    CommandRouter,
)
from device.processing.envelope import utc_iso, utc_iso_ago


class Count(CommandRequest):
    n: int = Field(1, ge=0, le=10)


def payload(**fields) -> bytes:
    return json.dumps({"t": utc_iso(), **fields}).encode()


def counting_router(tmp_path=None, **kw):
    clock = SteppedClock()
    answered = AnsweredRequests(None if tmp_path is None else tmp_path / "answered.sqlite3")
    r = CommandRouter(clock, answered=answered, **kw)
    runs: list[int] = []

    def count(req: Count) -> dict:
        runs.append(req.n)
        return {"runs": len(runs), "role": req.role}

    r.register("count", Count, count, "count the executions", roles=(NURSE, ADMIN))
    return clock, r, runs


def test_a_deeply_nested_payload_is_refused_before_parsing_with_its_request_id():
    _, r, runs = counting_router()
    nested = b'{"request_id": "deep-1", "n": ' + b"[" * 1000 + b"]" * 1000 + b"}"
    assert len(nested) < 2100
    out = r.handle("count", nested, role=NURSE)
    assert not out["ok"] and "nested deeper" in out["reason"] and out["request_id"] == "deep-1"
    assert runs == []
    assert nesting_depth(b'{"a": "[[[[[[[[[[[[[[[[[[[[[["}') == 1  # brackets in strings
    assert read_command(b'{"a": [[1]]}') == {"a": [[1]]}


def test_empty_or_unparsable_payload_never_means_all(tmp_path):
    from device.care.pain import AcknowledgeRequest

    clock = SteppedClock()
    book = AlarmBook(clock)
    r = CommandRouter(clock)
    book.raise_alarm("pain_high", "pain", category="physiological", priority="medium",
                     message="x")
    r.register("acknowledge", AcknowledgeRequest,
               lambda req: {"acknowledged": [a.id for a in book.acknowledge_all(req.by)]},
               "ack", roles=(NURSE,))
    for body in (b"", b"  ", b"{}", payload()):
        out = r.handle("acknowledge", body, role=NURSE)
        assert not out["ok"], (body, out)
    assert all(a.state != "acknowledged" for a in book.active())
    assert r.handle("acknowledge", payload(alarm_id="all"), role=NURSE)["ok"]


def test_retained_stale_future_and_timeless_commands_are_refused():
    _, r, runs = counting_router()
    assert "retained" in r.handle("count", payload(), role=NURSE, retained=True)["reason"]
    assert "stale" in r.handle("count", json.dumps({"t": utc_iso_ago(61)}).encode(),
                               role=NURSE)["reason"]
    future = json.dumps({"t": utc_iso_ago(-120)}).encode()
    assert "future" in r.handle("count", future, role=NURSE)["reason"]
    assert "t: required" in r.handle("count", b'{"n": 1}', role=NURSE)["reason"]
    assert "ISO 8601" in r.handle("count", b'{"t": "yesterday at noon, roughly"}',
                                  role=NURSE)["reason"]
    assert runs == []
    assert r.handle("count", json.dumps({"t": utc_iso_ago(59)}).encode(), role=NURSE)["ok"]
    assert r.handle("count", b'{"n": 2}')["ok"]  # in the process: no time needed


def test_a_request_id_is_executed_once_even_across_a_restart(tmp_path):
    _, r, runs = counting_router(tmp_path)
    first = r.handle("count", payload(request_id="once-1", n=3), role=NURSE)
    assert first["ok"] and runs == [3]
    again = r.handle("count", payload(request_id="once-1", n=3), role=NURSE)
    assert again == first and runs == [3] and r.repeated == 1
    # A restart: a new router on the same state directory.
    r.answered.close()
    _, r2, runs2 = counting_router(tmp_path)
    assert r2.handle("count", payload(request_id="once-1", n=3), role=NURSE) == first
    assert runs2 == []
    # The same id for another command is refused, not answered with someone else's result.
    out = r2.handle("ping", payload(request_id="once-1"), role=NURSE)
    assert not out["ok"] and "already used for count" in out["reason"]
    # A refusal before the handler (a typo) does not use the id up.
    assert not r2.handle("count", payload(request_id="fix-me", n=99), role=NURSE)["ok"]
    assert r2.handle("count", payload(request_id="fix-me", n=4), role=NURSE)["ok"]
    assert runs2 == [4]


def test_roles_come_from_the_router_not_the_payload():
    _, r, runs = counting_router()
    out = r.handle("count", payload(), role=PATIENT)
    assert not out["ok"] and "role patient may not send count" in out["reason"]
    assert "unknown role" in r.handle("count", payload(), role="viewer")["reason"]
    assert r.handle("count", payload(), role=NURSE)["result"]["role"] == NURSE
    # The sender cannot write its role in the payload: there is no such field.
    assert "unknown field" in r.handle("count", payload(role=ADMIN), role=NURSE)["reason"]
    assert r.handle("ping", payload(), role=PATIENT)["ok"]
    assert runs == [1]


def test_a_command_registered_without_roles_is_for_admins_only():
    _, r, _ = counting_router()
    r.register("reset_thing", CommandRequest, lambda req: {}, "x")
    assert not r.handle("reset_thing", payload(), role=NURSE)["ok"]
    assert r.handle("reset_thing", payload(), role=ADMIN)["ok"]
    assert r.handle("reset_thing", b"{}", role=LOCAL)["ok"]
    assert r.commands["ping"].roles == ANYONE and r.is_urgent("ping")


def test_rate_limits_are_per_role_and_refusals_keep_the_request_id():
    _, r, _ = counting_router(rate_per_s=1.0, burst=5)
    flood = [r.handle("ping", payload(request_id=f"p{i}"), role=PATIENT) for i in range(50)]
    limited = [f for f in flood if not f["ok"]]
    assert len(limited) == 45 and all("rate limit" in f["reason"] for f in limited)
    assert [f["request_id"] for f in limited] == [f"p{i}" for i in range(5, 50)]
    # The nurse is not locked out by the patient's flood.
    assert all(r.handle("count", payload(request_id=f"n{i}"), role=NURSE)["ok"] for i in range(5))
    too_big = r.handle("count", b'{"request_id": "big-1", "pad": "' + b"x" * 5000 + b'"}',
                       role=ADMIN)
    assert too_big["request_id"] == "big-1" and "exceeds" in too_big["reason"]
    assert r.refusal("count", "busy", payload=b'{"request_id":"q-9"}')["request_id"] == "q-9"


def test_no_handler_failure_escapes_the_router():
    clock = SteppedClock()
    r = CommandRouter(clock)

    def recurse(req):
        return recurse(req)

    def refuse(req):
        raise CommandRefused("not now")

    r.register("recurse", CommandRequest, recurse, "x", roles=(NURSE,))
    r.register("refuse", CommandRequest, refuse, "x", roles=(NURSE,))
    out = r.handle("recurse", payload(request_id="r-1"), role=NURSE)
    assert not out["ok"] and out["reason"].startswith("failed") and out["request_id"] == "r-1"
    assert r.handle("refuse", payload(), role=NURSE)["reason"] == "not now"
    assert r.handle("ping", payload(), role=NURSE)["ok"]


def test_answered_store_is_bounded_and_forgets_deleted_stays(tmp_path):
    store = AnsweredRequests(tmp_path / "a.sqlite3", max_entries=50)
    for i in range(120):
        store.put(f"id-{i}", "ping", {"ok": True, "i": i})
        time.sleep(0.0005)
    assert len(store) == 50 and store.get("id-119") is not None and store.get("id-0") is None
    store.stay = "7@2026-01-01T00:00:00Z"
    store.put("in-7", "ping", {"ok": True})
    store.stay = "8@2026-01-02T00:00:00Z"
    store.put("in-8", "ping", {"ok": True})
    assert store.get("in-7")[2] == "7@2026-01-01T00:00:00Z"
    assert store.keep_stays({"8@2026-01-02T00:00:00Z"}) == 1  # stay 7 deleted: its answers go
    assert store.get("in-7") is None and store.get("in-8") is not None
    assert len(store) == 49 and store.get("id-119") is not None  # those without a stay stay
    assert oct((tmp_path / "a.sqlite3").stat().st_mode & 0o777) == oct(0o600)
