"""Commands the device accepts on ``<prefix>/<device_id>/cmd/<role>/<name>``.

Each command is a pydantic model (its JSON Schema is the documented contract), a handler and
the roles that may send it. ``CommandRouter.handle`` never raises: every request gets exactly
one result, ``ok`` with the handler's answer or refused with a reason — unknown name, payload
too large or too deep, empty, not JSON, not valid for the command's schema, a role that may
not send it, too old, too many requests from that role, or the handler's own refusal.

Who sent a command is the ``<role>`` topic level, which the broker's ACL lets only that role's
users write (README, "MQTT security"): the sender cannot choose it. Commands handled in the
process (buttons, the console, tests) come as ``LOCAL`` and skip the role and age checks.
A ``request_id`` whose request reached its handler is answered again from ``answered`` (kept
across restarts) and never executed twice.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from sensors.clock import Clock

from device.processing.answered import AnsweredRequests
from device.processing.command_input import (
    MAX_COMMAND_BYTES,
    MAX_COMMAND_DEPTH,
    PayloadRefused,
    peek_request_id,
    read_command,
)

log = logging.getLogger(__name__)

RESULT_SCHEMA = "painmon.command_result/1"
#: Command names are one topic level of letters, digits, "_" and "-"; "result" is the answer.
COMMAND_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
RESERVED_NAMES = frozenset({"result"})
MAX_REASON_CHARS = 500

#: The roles, each a topic level ``cmd/<role>/<name>`` that only its users may write.
#: A viewer has no role: it may read, never send.
PATIENT, NURSE, ADMIN = "patient", "nurse", "admin"
ROLES = (PATIENT, NURSE, ADMIN)
#: In the process itself (buttons, console, tests): trusted, not from the network.
LOCAL = "local"
ANYONE = frozenset(ROLES)
CARERS = frozenset({NURSE, ADMIN})
ADMINS = frozenset({ADMIN})
#: A command registered without roles is for admins only: a new command is closed until its
#: author says who may send it.
DEFAULT_ROLES = ADMINS
#: How far ahead of the device's clock a command's time may be (clock skew between hosts).
MAX_FUTURE_S = 30.0


class CommandRequest(BaseModel):
    """Fields every command payload may carry."""

    model_config = ConfigDict(extra="forbid")

    request_id: str | None = Field(
        None, min_length=1, max_length=64,
        description="Echoed in the result so the sender can match it.")
    schema_: str | None = Field(
        None, alias="schema", description="painmon.command.<name>/<major>; when present it must "
        "match the command's version.")
    t: str | None = Field(
        None, min_length=20, max_length=40, description="When the command was sent (ISO 8601 "
        "UTC, e.g. 2026-01-02T03:04:05.678Z); required over MQTT, which refuses a command older "
        "than commands.max_age_s.")
    _role: str = PrivateAttr(LOCAL)

    @property
    def role(self) -> str:
        """Who sent it: a role from ``ROLES`` (the topic the broker let them write) or LOCAL."""
        return self._role


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
    roles: frozenset[str] = DEFAULT_ROLES
    #: Served ahead of the others (acknowledge, ping): a queue of slow commands never delays it.
    urgent: bool = False


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
    """``rate_per_s``/``burst`` apply to each role separately (and to LOCAL): a flooding
    patient tablet cannot lock out the nurse station. ``max_age_s`` bounds how old a command
    from the network may be; ``answered`` remembers the answered request_ids (in memory when
    None); ``wall_s`` is the wall clock the commands' times are compared to."""

    def __init__(self, clock: Clock, *, max_bytes: int = MAX_COMMAND_BYTES,
                 max_depth: int = MAX_COMMAND_DEPTH, rate_per_s: float = 5.0, burst: int = 20,
                 max_age_s: float = 60.0, answered: AnsweredRequests | None = None,
                 wall_s: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.max_bytes, self.max_depth, self.max_age_s = max_bytes, max_depth, max_age_s
        self.rate_per_s, self.burst = rate_per_s, burst
        self.answered = answered if answered is not None else AnsweredRequests(None)
        self.wall_s = wall_s
        self.commands: dict[str, Command] = {}
        self.refused = 0
        self.accepted = 0
        self.repeated = 0
        self._buckets: dict[str, TokenBucket] = {}
        self._lock = threading.Lock()
        # Called with (name, payload, result) after every request handled (the recorder).
        self.result_listeners: list[Callable[[str, bytes, dict], None]] = []
        self.register("ping", Ping, self._ping, "Answer with pong and the known commands.",
                      roles=ANYONE, urgent=True)

    def _ping(self, request: Ping) -> dict:
        return {"pong": True, "echo": request.echo, "commands": sorted(self.commands)}

    def register(self, name: str, model: type[CommandRequest],
                 handler: Callable[[CommandRequest], dict | None], description: str, *,
                 roles: Collection[str] = DEFAULT_ROLES, urgent: bool = False) -> None:
        """Serve ``name``: ``roles`` (from ``ROLES``) may send it, others are refused;
        ``urgent`` commands are served ahead of the rest."""
        roles = frozenset(roles)
        if not roles or not roles <= ANYONE:
            raise ValueError(f"command {name!r}: roles must be some of {ROLES}, got {sorted(roles)}")
        if not COMMAND_NAME.match(name) or name in RESERVED_NAMES:
            raise ValueError(f"command name {name!r} must match {COMMAND_NAME.pattern} and not "
                             f"be one of {sorted(RESERVED_NAMES)}")
        if not (isinstance(model, type) and issubclass(model, CommandRequest)):
            raise TypeError(f"command {name!r}: model must be a CommandRequest subclass")
        if name in self.commands:
            raise ValueError(f"command {name!r} is already registered")
        self.commands[name] = Command(name, model, handler, description, roles, urgent)

    def is_urgent(self, name: str) -> bool:
        command = self.commands.get(name)
        return command is not None and command.urgent

    def handle(self, name: str, payload: bytes, *, role: str = LOCAL,
               retained: bool = False) -> dict:
        """One result for one request, whatever arrives. ``role`` is who sent it (the topic's
        role level, or LOCAL in the process); ``retained`` that the broker kept it."""
        return self.answer(name, payload, role=role, retained=retained)[0]

    def answer(self, name: str, payload: bytes, *, role: str = LOCAL,
               retained: bool = False) -> tuple[dict, bool]:
        """``handle``, and whether the request reached its handler (its result matters after
        a restart; a refusal before the handler does not change anything on the device)."""
        try:
            result, executed = self._handle(name, payload, role, retained)
        except Exception as exc:  # noqa: BLE001 - never: _handle answers; a last guard
            log.exception("command %s: unexpected failure", str(name)[:64])
            self.refused += 1
            result, executed = self._result(str(name), peek_request_id(payload), ok=False,
                                            reason=f"failed: {type(exc).__name__}"), True
        for listener in self.result_listeners:
            try:
                listener(name, payload, result)
            except Exception:  # noqa: BLE001 - a failing listener must not lose the answer
                log.exception("command result listener %r failed", listener)
        return result, executed

    def refusal(self, name: str, reason: str, request_id: str | None = None, *,
                payload: bytes | None = None) -> dict:
        """The result refusing a request that was never handled (e.g. no room to queue it);
        the request_id is read from ``payload`` when not given and readable."""
        self.refused += 1
        if request_id is None and payload is not None:
            request_id = peek_request_id(payload, self.max_bytes)
        return self._result(name, request_id, ok=False, reason=reason)

    def _take(self, role: str) -> bool:
        with self._lock:
            bucket = self._buckets.get(role)
            if bucket is None:
                bucket = self._buckets[role] = TokenBucket(self.clock, self.rate_per_s,
                                                           self.burst)
            return bucket.take()

    def _check_time(self, sent: str | None) -> None:
        if sent is None:
            raise CommandRefused("t: required (when the command was sent, ISO 8601 UTC)")
        try:
            when = datetime.fromisoformat(sent.replace("Z", "+00:00"))
        except ValueError:
            raise CommandRefused(f"t: not an ISO 8601 time: {sent[:40]!r}") from None
        if when.tzinfo is None:
            raise CommandRefused("t: must carry its zone (UTC, ending in Z)")
        age_s = self.wall_s() - when.timestamp()
        if age_s > self.max_age_s:
            raise CommandRefused(f"stale: sent {age_s:.0f} s ago, more than {self.max_age_s:g} s")
        if age_s < -MAX_FUTURE_S:
            raise CommandRefused(f"t: {-age_s:.0f} s in the future (check the sender's clock)")

    def _handle(self, name: str, payload: bytes, role: str,
                retained: bool) -> tuple[dict, bool]:
        request_id = peek_request_id(payload, self.max_bytes)
        name = name if isinstance(name, str) else repr(name)
        reached_handler = False
        try:
            if retained:
                raise CommandRefused("retained: a command is never kept by the broker; "
                                     "publish it with retain false")
            if role != LOCAL and role not in ROLES:
                raise CommandRefused(f"unknown role {role[:32]!r} (roles: {', '.join(ROLES)})")
            if not self._take(role):
                raise CommandRefused(f"rate limit: too many commands from {role}, "
                                     "try again shortly")
            try:
                data = read_command(payload, max_bytes=self.max_bytes, max_depth=self.max_depth)
            except PayloadRefused as exc:
                raise CommandRefused(str(exc)) from None
            rid = data.get("request_id")
            request_id = rid if isinstance(rid, str) and 0 < len(rid) <= 64 else None
            command = self.commands.get(name)
            if command is None:
                known = ", ".join(sorted(self.commands)) or "none"
                raise CommandRefused(f"unknown command {name[:64]!r} (known: {known})")
            if role != LOCAL and role not in command.roles:
                raise CommandRefused(f"role {role} may not send {name} (allowed: "
                                     f"{', '.join(sorted(command.roles))})")
            expected = f"painmon.command.{name}/1"
            if "schema" in data and data["schema"] != expected:
                raise CommandRefused(f"schema must be {expected!r}, got {str(data['schema'])[:80]!r}")
            try:
                # Strict JSON mode: "3" is not a number and 1 is not true, as in the JSON Schema.
                request = command.model.model_validate_json(payload, strict=True)
            except ValidationError as exc:
                raise CommandRefused(refusal_reason(exc)) from None
            if role != LOCAL:
                self._check_time(request.t)
            if request_id is not None:
                earlier = self.answered.get(request_id)
                if earlier is not None:
                    return self._repeat(name, request_id, *earlier), True
            request._role = role
            reached_handler = True
            answer = command.handler(request)
            answer = {} if answer is None else answer
            if not isinstance(answer, dict):
                raise TypeError(f"handler returned {type(answer).__name__}, not a dict")
            json.dumps(answer, allow_nan=False)  # what cannot be published is a failure here
        except CommandRefused as exc:
            self.refused += 1
            log.info("command %s refused: %s", name[:64], exc)
            return self._remember(reached_handler, self._result(
                name, request_id, ok=False, reason=str(exc)))
        except Exception as exc:
            self.refused += 1
            log.exception("command %s failed", name[:64])
            return self._remember(reached_handler, self._result(
                name, request_id, ok=False, reason=f"failed: {exc}"))
        self.accepted += 1
        return self._remember(True, self._result(name, request_id, ok=True, result=answer))

    def _remember(self, executed: bool, result: dict) -> tuple[dict, bool]:
        """Store what a handler answered, so that the request_id is never executed again;
        a refusal before the handler (a typo, a rate limit) may be sent again as it is."""
        if executed and result["request_id"] is not None:
            try:
                self.answered.put(result["request_id"], result["command"], result)
            except Exception:  # noqa: BLE001 - a full disk must not lose the answer itself
                log.exception("command %s: answer not remembered", result["command"])
        return result, executed

    def _repeat(self, name: str, request_id: str, command: str, result: dict,
                stay: str | None) -> dict:
        if command != name:
            raise CommandRefused(f"request_id {request_id!r} was already used for {command}")
        if stay != self.answered.stay:  # another patient's answer is not this one's to read
            raise CommandRefused(f"request_id {request_id!r} was answered in another stay; "
                                 "not run again")
        self.repeated += 1
        log.info("command %s: request_id %r answered before, same answer again", name, request_id)
        return result

    @staticmethod
    def _result(name: str, request_id: str | None, *, ok: bool, reason: str | None = None,
                result: dict | None = None) -> dict:
        out = {"schema": RESULT_SCHEMA, "command": name[:64], "request_id": request_id, "ok": ok}
        if reason is not None:
            out["reason"] = reason[:MAX_REASON_CHARS]
        if result is not None:
            out["result"] = result
        return out


def refusal_reason(exc: ValidationError) -> str:
    """A request model's validation errors as one reason, each naming its field."""
    return "; ".join(_describe(e) for e in exc.errors())


def _describe(error: dict) -> str:
    where = ".".join(str(p) for p in error.get("loc", ())) or "payload"
    if error.get("type") == "extra_forbidden":
        return f"{where}: unknown field"
    return f"{where}: {error.get('msg')}"
