"""Sensor faults the demo can play on its emulated board, to see a technical alarm end to end.

``painmon demo --fault finger_off@30-90`` takes the finger off the PPG sensor 30 s into the
demo and puts it back at 90 s (demo time; without the end it stays off). The fault is the
emulated subject's contact flag, so the real driver reads a real finger-off signal and the
health check raises the same alarm it would on a bedside.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: Fault kind (the technical alarm it causes) -> the emulated subject's contact flag.
CONTACT_FAULTS = {"finger_off": "finger_on", "lead_off": "leads_on", "gsr_open": "skin_contact"}
_SPEC = re.compile(r"^(?P<kind>[a-z_]+)@(?P<start>\d+(\.\d*)?)(-(?P<end>\d+(\.\d*)?))?$")


@dataclass(frozen=True)
class DemoFault:
    kind: str
    start_s: float
    end_s: float | None = None


def parse_fault(text: str) -> DemoFault:
    """``KIND@START[-END]`` (seconds of demo time); ValueError says what is wrong."""
    m = _SPEC.match(text.strip())
    if m is None:
        raise ValueError(f"--fault must be KIND@START[-END] (seconds), got {text!r}")
    if m["kind"] not in CONTACT_FAULTS:
        raise ValueError(f"--fault kind must be one of {', '.join(CONTACT_FAULTS)}, "
                         f"got {m['kind']!r}")
    fault = DemoFault(m["kind"], float(m["start"]), None if m["end"] is None else float(m["end"]))
    if fault.end_s is not None and fault.end_s <= fault.start_s:
        raise ValueError(f"--fault {text!r}: the end must come after the start")
    return fault


def schedule_faults(board, faults: list[DemoFault]) -> None:
    """Put ``faults`` on the emulated ``board``'s timeline, relative to its clock now."""
    t0_s = board.clock.now_ns() / 1e9
    for fault in faults:
        flag = CONTACT_FAULTS[fault.kind]
        board.overrides.set(t0_s + fault.start_s, **{flag: False})
        if fault.end_s is not None:
            board.overrides.set(t0_s + fault.end_s, **{flag: True})
