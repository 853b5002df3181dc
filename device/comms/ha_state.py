"""The state Home Assistant reads: one compact message, at a pace its recorder can keep.

painmon's own topics carry every estimate and every vitals message (1 Hz); Home Assistant
writes each state change of each entity to its recorder, so it gets its own retained topic,
``<prefix>/<device_id>/ha`` (``painmon.ha_state/1``), with the values rounded to what its
entities show. A change of something discrete (pain level, an alarm, a technical problem) is
published at once; measurements at most every ``mqtt.ha_state_every_s`` seconds of device
time (0: on every change of a rounded value).

Only the live pipeline feeds it: estimates the outbox replays after an outage (``late``) go
to the ``pain`` topic for the record, never here, so Home Assistant's history does not get
old scores stamped with their arrival time. While the link is down nothing is queued; the
newest state goes out again on every (re)connect, retained, so Home Assistant sees it however
late it subscribes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from device.comms.homeassistant import TECHNICAL_KINDS

HA_STATE_SCHEMA = "painmon.ha_state/1"
#: What changes at once, rather than at the measurement pace.
DISCRETE_KEYS = ("level", "pain_alarm", "alarm", "problems", "stay", "reassessment_due")
#: The bedside workflow's notice that pain should be rated again after a dose.
REASSESSMENT_KIND = "reassessment_due"


def _rounded(value, digits: int):
    if value is None:
        return None
    return round(float(value)) if digits == 0 else round(float(value), digits)


def _percent(value):
    return None if value is None else round(float(value) * 100)


class HomeAssistantState:
    """Observes the pipeline's messages; ``publish(message)`` is called when HA should see one.

    ``now_s`` is the device clock in seconds; ``envelope(schema)`` makes the message head.
    """

    def __init__(self, every_s: float, now_s: Callable[[], float],
                 envelope: Callable[[str], dict], publish: Callable[[dict], None]) -> None:
        self.every_s = every_s
        self.now_s = now_s
        self.envelope = envelope
        self.publish = publish
        self.state: dict = {"score": None, "level": None, "confidence_pct": None,
                            "quality_pct": None, "hr_bpm": None, "eda_us": None,
                            "motion_g": None, "pain_alarm": False, "alarm": False,
                            "problems": {kind: None for kind in TECHNICAL_KINDS},
                            "stay": None, "reassessment_due": False}
        self.published: dict | None = None
        self.published_count = 0
        self.ignored_late = 0
        self._published_s: float | None = None
        self._alarm_problems: dict = {}
        self._camera_problem = None
        self._lock = threading.Lock()

    # -- what the pipeline says --------------------------------------------------------------
    def observe(self, topic: str, message: dict) -> None:
        if message.get("late"):
            self.ignored_late += 1  # replayed history: painmon's own topics keep it
            return
        with self._lock:
            if topic == "pain":
                self.state.update(score=_rounded(message.get("score"), 1),
                                  level=message.get("level"),
                                  confidence_pct=_percent(message.get("confidence")),
                                  stay=message.get("stay"))
            elif topic == "vitals":
                self._vitals(message)
            elif topic == "alarms":
                self._alarms(message.get("active") or [])
            elif topic == "health":
                camera = (message.get("camera") or {})
                self._camera_problem = (camera.get("reason") or "camera missing"
                                        if camera.get("state") == "missing" else None)
                self._problems()
            else:
                return
            due = self._due()
        if due is not None:
            self.publish(due)

    def _vitals(self, message: dict) -> None:
        hr = message.get("hr_bpm") or {}
        hr_bpm = hr.get("ppg") if hr.get("ppg") is not None else hr.get("ecg")
        quality = [float(q) for q in (message.get("quality") or {}).values() if q is not None]
        self.state.update(hr_bpm=_rounded(hr_bpm, 0), eda_us=_rounded(message.get("eda_us"), 2),
                          motion_g=_rounded(message.get("motion_g"), 2),
                          quality_pct=_percent(sum(quality) / len(quality)) if quality else None)

    def _alarms(self, active: list[dict]) -> None:
        self.state["alarm"] = bool(active)
        self.state["pain_alarm"] = any(a.get("kind") == "pain_high" for a in active)
        self.state["reassessment_due"] = any(a.get("kind") == REASSESSMENT_KIND for a in active)
        problems: dict = {}
        for alarm in active:
            if alarm.get("category") == "technical" and alarm.get("kind") in TECHNICAL_KINDS:
                text = alarm.get("message") or alarm.get("source") or alarm["kind"]
                problems[alarm["kind"]] = "; ".join(filter(None, (problems.get(alarm["kind"]),
                                                                  text)))
        self._alarm_problems = problems
        self._problems()

    def _problems(self) -> None:
        problems = {kind: self._alarm_problems.get(kind) for kind in TECHNICAL_KINDS}
        problems["camera"] = self._camera_problem
        self.state["problems"] = problems

    # -- when Home Assistant sees it ---------------------------------------------------------
    def _due(self) -> dict | None:
        if self.state == self.published:
            return None
        now = self.now_s()
        discrete = self.published is None or any(
            self.state[k] != self.published[k] for k in DISCRETE_KEYS)
        if not discrete and self._published_s is not None and now - self._published_s < self.every_s:
            return None
        return self._take(now)

    def _take(self, now: float) -> dict:
        self.published = {**self.state, "problems": dict(self.state["problems"])}
        self._published_s = now
        self.published_count += 1
        message = self.envelope(HA_STATE_SCHEMA)
        message.update(self.published)
        return message

    def current(self) -> dict:
        """The newest state as a message (sent again after a reconnect)."""
        with self._lock:
            return self._take(self.now_s())
