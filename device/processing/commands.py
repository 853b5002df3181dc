"""Commands the device accepts on ``<prefix>/<device_id>/cmd/<name>``.

Each command is a pydantic model (its JSON Schema is the documented contract) and a handler.
``CommandRouter.handle`` never raises: every request gets exactly one result, ``ok`` with the
handler's answer or refused with a reason — unknown name, payload too large, not JSON, not
valid for the command's schema, too many requests, or the handler's own refusal.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sensors.clock import Clock

log = logging.getLogger(__name__)

RESULT_SCHEMA = "painmon.command_result/1"
#: Command names are one topic level of letters, digits, "_" and "-"; "result" is the answer.
COMMAND_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
RESERVED_NAMES = frozenset({"result"})
MAX_REASON_CHARS = 500


class CommandRequest(BaseModel):
    """Fields every command payload may carry."""

    model_config = ConfigDict(extra="forbid")

    request_id: str | None = Field(
        None, min_length=1, max_length=64,
        description="Echoed in the result so the sender can match it.")
    schema_: str | None = Field(
        None, alias="schema", description="painmon.command.<name>/<major>; when present it must "
        "match the command's version.")


class Ping(CommandRequest):
    """Ask the device to answer; proves the command path end to end."""

    echo: str | None = Field(None, max_length=64, description="Returned unchanged.")


class CommandRefused(Exception):
    """Raised by a handler to refuse a well-formed command, with the reason."""


@dataclass(frozen=True)
class Command:
    name: str
    model: type[CommandRequest]
    handler: Callable[[CommandRequest], dict | None]
    description: str


class TokenBucket:
    """``rate_per_s`` sustained, ``burst`` at once, on the device clock."""

    def __init__(self, clock: Clock, rate_per_s: float, burst: int) -> None:
        self.clock, self.rate_per_s, self.burst = clock, rate_per_s, burst
        self._tokens = float(burst)
        self._t_ns = clock.now_ns()

    def take(self) -> bool:
        now = self.clock.now_ns()
        self._tokens = min(self.burst, self._tokens + (now - self._t_ns) / 1e9 * self.rate_per_s)
        self._t_ns = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


class CommandRouter:
    def __init__(self, clock: Clock, *, max_bytes: int = 4096, rate_per_s: float = 5.0,
                 burst: int = 20) -> None:
        self.max_bytes = max_bytes
        self.commands: dict[str, Command] = {}
        self.refused = 0
        self.accepted = 0
        self._bucket = TokenBucket(clock, rate_per_s, burst)
        self._lock = threading.Lock()
        # Called with (name, payload, result) after every request handled (the recorder).
        self.result_listeners: list[Callable[[str, bytes, dict], None]] = []
        self.register("ping", Ping, self._ping, "Answer with pong and the known commands.")

    def _ping(self, request: Ping) -> dict:
        return {"pong": True, "echo": request.echo, "commands": sorted(self.commands)}

    def register(self, name: str, model: type[CommandRequest],
                 handler: Callable[[CommandRequest], dict | None], description: str) -> None:
        if not COMMAND_NAME.match(name) or name in RESERVED_NAMES:
            raise ValueError(f"command name {name!r} must match {COMMAND_NAME.pattern} and not "
                             f"be one of {sorted(RESERVED_NAMES)}")
        if not (isinstance(model, type) and issubclass(model, CommandRequest)):
            raise TypeError(f"command {name!r}: model must be a CommandRequest subclass")
        if name in self.commands:
            raise ValueError(f"command {name!r} is already registered")
        self.commands[name] = Command(name, model, handler, description)

    def handle(self, name: str, payload: bytes) -> dict:
        """One result for one request, whatever arrives."""
        result = self._handle(name, payload)
        for listener in self.result_listeners:
            try:
                listener(name, payload, result)
            except Exception:  # noqa: BLE001 - a failing listener must not lose the answer
                log.exception("command result listener %r failed", listener)
        return result

    def refusal(self, name: str, reason: str, request_id: str | None = None) -> dict:
        """The result refusing a request that was never handled (e.g. no room to queue it)."""
        self.refused += 1
        return self._result(name, request_id, ok=False, reason=reason)

    def _handle(self, name: str, payload: bytes) -> dict:
        request_id = None
        name = name if isinstance(name, str) else repr(name)
        try:
            with self._lock:
                allowed = self._bucket.take()
            if not allowed:
                raise CommandRefused("rate limit: too many commands, try again shortly")
            if not isinstance(payload, (bytes, bytearray)):
                raise CommandRefused("payload must be bytes")
            if len(payload) > self.max_bytes:
                raise CommandRefused(f"payload of {len(payload)} bytes exceeds {self.max_bytes}")
            payload = bytes(payload) if payload.strip() else b"{}"
            try:
                data = json.loads(payload.decode("utf-8"), parse_constant=_no_constant)
            except RecursionError:
                raise CommandRefused("payload is nested too deeply") from None
            except (UnicodeDecodeError, ValueError) as exc:
                raise CommandRefused(f"payload is not JSON: {exc}") from None
            if not isinstance(data, dict):
                raise CommandRefused("payload must be a JSON object")
            rid = data.get("request_id")
            request_id = rid if isinstance(rid, str) and 0 < len(rid) <= 64 else None
            command = self.commands.get(name)
            if command is None:
                known = ", ".join(sorted(self.commands)) or "none"
                raise CommandRefused(f"unknown command {name[:64]!r} (known: {known})")
            expected = f"painmon.command.{name}/1"
            if "schema" in data and data["schema"] != expected:
                raise CommandRefused(f"schema must be {expected!r}, got {str(data['schema'])[:80]!r}")
            try:
                # Strict JSON mode: "3" is not a number and 1 is not true, as in the JSON Schema.
                request = command.model.model_validate_json(payload, strict=True)
            except ValidationError as exc:
                raise CommandRefused("; ".join(_describe(e) for e in exc.errors())) from None
            answer = command.handler(request)
            answer = {} if answer is None else answer
            if not isinstance(answer, dict):
                raise TypeError(f"handler returned {type(answer).__name__}, not a dict")
            json.dumps(answer, allow_nan=False)  # what cannot be published is a failure here
        except CommandRefused as exc:
            self.refused += 1
            log.info("command %s refused: %s", name[:64], exc)
            return self._result(name, request_id, ok=False, reason=str(exc))
        except Exception as exc:
            self.refused += 1
            log.exception("command %s failed", name[:64])
            return self._result(name, request_id, ok=False, reason=f"failed: {exc}")
        self.accepted += 1
        return self._result(name, request_id, ok=True, result=answer)

    @staticmethod
    def _result(name: str, request_id: str | None, *, ok: bool, reason: str | None = None,
                result: dict | None = None) -> dict:
        out = {"schema": RESULT_SCHEMA, "command": name[:64], "request_id": request_id, "ok": ok}
        if reason is not None:
            out["reason"] = reason[:MAX_REASON_CHARS]
        if result is not None:
            out["result"] = result
        return out


def _no_constant(token: str) -> None:
    raise ValueError(f"{token} is not JSON")


def _describe(error: dict) -> str:
    where = ".".join(str(p) for p in error.get("loc", ())) or "payload"
    if error.get("type") == "extra_forbidden":
        return f"{where}: unknown field"
    return f"{where}: {error.get('msg')}"
