"""Reading a command payload with bounds applied before any parser sees it.

A command is at most ``max_bytes`` and nested at most ``max_depth`` deep: both are checked
on the raw bytes (a 2 KB ``[[[[...`` would otherwise end a recursive parser), so every reader
of a command (the router, the recorder) gets the same answer for the same bytes. An empty
payload is refused, never read as ``{}``: clearing a retained message sends exactly that.
"""

from __future__ import annotations

import json
import re

MAX_COMMAND_BYTES = 4096
MAX_COMMAND_DEPTH = 8

_REQUEST_ID = re.compile(rb'"request_id"\s*:\s*"([A-Za-z0-9_.:@/+=-]{1,64})"')


class PayloadRefused(ValueError):
    """The payload cannot be read as a command; the message says why."""


def nesting_depth(payload: bytes) -> int:
    """How deeply objects and arrays nest in ``payload`` (brackets inside strings ignored)."""
    if payload.count(b"[") + payload.count(b"{") <= 1:
        return payload.count(b"[") + payload.count(b"{")
    depth = deepest = 0
    in_string = escaped = False
    for byte in payload:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return deepest


def read_command(payload: bytes, *, max_bytes: int = MAX_COMMAND_BYTES,
                 max_depth: int = MAX_COMMAND_DEPTH) -> dict:
    """The payload as a JSON object, or ``PayloadRefused`` naming the reason."""
    if not isinstance(payload, (bytes, bytearray)):
        raise PayloadRefused("payload must be bytes")
    if len(payload) > max_bytes:
        raise PayloadRefused(f"payload of {len(payload)} bytes exceeds {max_bytes}")
    if not payload.strip():
        raise PayloadRefused("empty payload: a command is a JSON object")
    if nesting_depth(payload) > max_depth:
        raise PayloadRefused(f"payload is nested deeper than {max_depth} levels")
    try:
        data = json.loads(bytes(payload).decode("utf-8"), parse_constant=_no_constant)
    except RecursionError:  # cannot happen within max_depth; kept as a second line
        raise PayloadRefused("payload is nested too deeply") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise PayloadRefused(f"payload is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise PayloadRefused("payload must be a JSON object")
    return data


def peek_request_id(payload: object, max_bytes: int = MAX_COMMAND_BYTES) -> str | None:
    """The request_id of a payload that will not be parsed (too large, no room), if it can
    be read from its first ``max_bytes`` without parsing: the refusal can then be matched."""
    if not isinstance(payload, (bytes, bytearray)):
        return None
    found = _REQUEST_ID.search(bytes(payload[:max_bytes]))
    return found.group(1).decode() if found else None


def _no_constant(token: str) -> None:
    raise ValueError(f"{token} is not JSON")
