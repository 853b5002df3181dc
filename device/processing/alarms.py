"""Alarms: raised, escalated, acknowledged and cleared, each with an id.

One ``AlarmBook`` holds every alarm of the device, physiological (a pain score held high) and
technical (a sensor missing, a finger off the sensor, an electrode off). Each change is one
event handed to the listeners: the MQTT output (``painmon/<device_id>/alarm``) and the local
output (LEDs and buzzer through gpiozero), which works with the network down — IEC 60601-1-8
does not let a distributed alarm system be the only means of alarm.

An alarm is identified by (kind, source): raising it again while active changes nothing, so a
condition that persists is one alarm, not a flood. A medium alarm left unacknowledged for
``escalate_after_s`` escalates to high. Clearing ends it; acknowledging silences it (the
local output stops sounding) but it stays active until its condition clears.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass

from sensors.clock import Clock

from device.processing.envelope import utc_iso

log = logging.getLogger(__name__)

PRIORITIES = ("low", "medium", "high")
CATEGORIES = ("physiological", "technical")


@dataclass
class Alarm:
    id: str
    kind: str
    source: str
    category: str
    priority: str
    message: str
    state: str  # "raised" | "acknowledged" | "cleared"
    raised_ns: int
    raised_t: str
    escalate_after_s: float | None = None
    acknowledged_t: str | None = None
    acknowledged_by: str | None = None
    cleared_t: str | None = None
    stay: str | None = None  # the stay's pseudonymous reference when raised, if one was open

    @property
    def active(self) -> bool:
        return self.state != "cleared"

    def to_dict(self) -> dict:
        out = asdict(self)
        out.pop("raised_ns")
        out["alarm_id"] = out.pop("id")
        return out


Listener = Callable[[str, Alarm], None]  # (event, alarm); event: raised|escalated|acknowledged|cleared


class AlarmBook:
    def __init__(self, clock: Clock, *, id_prefix: str = "") -> None:
        self.clock = clock
        self.id_prefix = id_prefix
        self.listeners: list[Listener] = []
        self.history: list[Alarm] = []  # cleared alarms, newest last, bounded
        self.stay: str | None = None  # set by the care side: new alarms carry it
        self._active: dict[tuple[str, str], Alarm] = {}
        self._counter = itertools.count(1)
        self._lock = threading.RLock()

    # -- changes -----------------------------------------------------------------------------
    def raise_alarm(self, kind: str, source: str, *, category: str, priority: str,
                    message: str, escalate_after_s: float | None = None) -> Alarm:
        """Raise (kind, source); if it is already active, return it unchanged."""
        if priority not in PRIORITIES:
            raise ValueError(f"priority must be one of {PRIORITIES}, got {priority!r}")
        if category not in CATEGORIES:
            raise ValueError(f"category must be one of {CATEGORIES}, got {category!r}")
        with self._lock:
            existing = self._active.get((kind, source))
            if existing is not None:
                return existing
            alarm = Alarm(f"{self.id_prefix}{next(self._counter)}", kind, source, category,
                          priority, message, "raised", self.clock.now_ns(), utc_iso(),
                          escalate_after_s, stay=self.stay)
            self._active[(kind, source)] = alarm
        self._emit("raised", alarm)
        return alarm

    def clear(self, kind: str, source: str) -> Alarm | None:
        with self._lock:
            alarm = self._active.pop((kind, source), None)
            if alarm is None:
                return None
            alarm.state, alarm.cleared_t = "cleared", utc_iso()
            self.history = (self.history + [alarm])[-100:]
        self._emit("cleared", alarm)
        return alarm

    def acknowledge(self, alarm_id: str, by: str = "unknown") -> Alarm | None:
        """Acknowledge one active alarm by id (None when no such active alarm)."""
        with self._lock:
            alarm = next((a for a in self._active.values() if a.id == alarm_id), None)
            if alarm is None or alarm.state == "acknowledged":
                return alarm
            alarm.state, alarm.acknowledged_t, alarm.acknowledged_by = "acknowledged", utc_iso(), by
        self._emit("acknowledged", alarm)
        return alarm

    def acknowledge_all(self, by: str = "unknown") -> list[Alarm]:
        return [a for a in (self.acknowledge(a.id, by) for a in self.active()) if a is not None]

    def tick(self) -> None:
        """Escalate medium alarms left unacknowledged past their time. Call on every hop."""
        now = self.clock.now_ns()
        escalated = []
        with self._lock:
            for alarm in self._active.values():
                if (alarm.state == "raised" and alarm.priority == "medium"
                        and alarm.escalate_after_s is not None
                        and now - alarm.raised_ns >= alarm.escalate_after_s * 1e9):
                    alarm.priority = "high"
                    escalated.append(alarm)
        for alarm in escalated:
            self._emit("escalated", alarm)

    # -- views -------------------------------------------------------------------------------
    def active(self) -> list[Alarm]:
        with self._lock:
            return sorted(self._active.values(), key=lambda a: a.raised_ns)

    def get(self, kind: str, source: str) -> Alarm | None:
        with self._lock:
            return self._active.get((kind, source))

    def loudest(self) -> str | None:
        """The highest priority among unacknowledged active alarms (what the local output shows)."""
        pending = [a.priority for a in self.active() if a.state == "raised"]
        return max(pending, key=PRIORITIES.index) if pending else None

    def _emit(self, event: str, alarm: Alarm) -> None:
        log.log(logging.WARNING if event in ("raised", "escalated") else logging.INFO,
                "alarm %s %s: %s/%s %s (%s)", alarm.id, event, alarm.kind, alarm.source,
                alarm.priority, alarm.message)
        for listener in list(self.listeners):
            try:
                listener(event, alarm)
            except Exception:  # noqa: BLE001 - one output failing must not silence the others
                log.exception("alarm listener %r failed", listener)
