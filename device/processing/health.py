"""Health: what each sensor and modality is doing, as technical alarms and one message per hop.

Two kinds of trouble reach the user:

- A chip in trouble (``Sensor`` state): it stopped answering (``sensor_missing``: NACK, EIO,
  timeouts, a wrong ID) or answers without delivering samples (``fifo_stuck``).
- A sensor off the body, seen in the samples or reported by the front-end (``Contact``):
  ``finger_off`` (PPG IR DC below a floor), ``lead_off`` (ADS1292R LOFF status bits, AD8232
  LO+/LO- pins, or the AD8232 output at a rail), ``gsr_open`` (the divider at the 0 V rail).

Each becomes a technical alarm in the pipeline's ``AlarmBook`` (raised once, cleared when the
condition ends) and a state in the ``painmon.health/1`` message: per sensor ok / missing / off
with the reason, since when, error/retry/re-init counts and dropped samples; per modality the
same; the queue's drops, the reader threads' restarts, the camera. A reader thread that
crashes raises ``reader_crash``; its restart is counted against the budget.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

from sensors.max3010x import FINGER_ON_MIN_FRACTION, finger_present

from device.processing.envelope import utc_iso_ago
from device.processing.wake import Wake

log = logging.getLogger(__name__)

#: Technical alarm priorities (IEC 60601-1-8 leaves them to the manufacturer): a sensor that
#: does not work at all needs a visit; one that slipped off needs one soon, but is ordinary.
PRIORITY = {"sensor_missing": "medium", "fifo_stuck": "medium", "reader_crash": "medium",
            "finger_off": "low", "lead_off": "low", "gsr_open": "low", "camera_missing": "medium"}
CONTACT_KIND = {"ppg": "finger_off", "ecg": "lead_off", "eda": "gsr_open"}
#: How much of the newest signal decides contact: long enough to span a heartbeat's worth of
#: railing R peaks, short enough to flag within a hop.
CONTACT_WINDOW_S = 0.5
#: A reader restarted after a crash counts as recovered once it has run this long.
READER_SETTLE_S = 5.0


def _latest(blocks, channel: str, seconds: float) -> np.ndarray | None:
    """The newest ``seconds`` of ``channel`` among ``blocks`` (None when there is none)."""
    mine = [b for b in blocks if b.channel == channel and len(b.samples)]
    if not mine:
        return None
    x = np.concatenate([np.asarray(b.samples, dtype=np.float64) for b in mine])
    return x[-max(1, round(seconds * mine[-1].rate_hz)):]


class Contact:
    """Sensor-off detection for the modalities on ``board`` (a ``device.acquisition.board.Board``)."""

    def __init__(self, board) -> None:
        self.board = board
        self.off: dict[str, str | None] = {}  # modality -> reason while off, None while on

    def observe(self, blocks) -> None:
        ppg = _latest(blocks, "ppg_ir", CONTACT_WINDOW_S)
        if ppg is None:
            ppg = _latest(blocks, "ppg_red", CONTACT_WINDOW_S)
        if ppg is not None:
            floor = FINGER_ON_MIN_FRACTION * self.board.ppg_full_scale
            self.off["ppg"] = (None if finger_present(ppg, self.board.ppg_full_scale) else
                               f"finger off: IR DC {np.median(ppg):,.0f} counts, "
                               f"below the {floor:,.0f} floor")
        eda = _latest(blocks, "eda", CONTACT_WINDOW_S)
        if eda is not None and self.board.gsr is not None:
            volts = self.board.gsr.volts_for(np.clip(eda, 0.0, None))
            self.off["eda"] = ("GSR open circuit: input at the 0 V rail (no skin contact)"
                               if np.mean(self.board.gsr.is_open_circuit(volts)) > 0.5 else None)
        self._observe_ecg(blocks)

    def _observe_ecg(self, blocks) -> None:
        chip, pins = self.board.ecg_chip, self.board.lead_off_pins
        ecg = _latest(blocks, "ecg", CONTACT_WINDOW_S)
        if chip is not None:
            if ecg is None:
                return  # no new frame: the status bits are stale
            off = [e.upper() for e, is_off in chip.lead_off.items() if is_off]
            self.off["ecg"] = (f"lead off: {', '.join(off)} electrode (ADS1292R lead-off status)"
                               if off else None)
            return
        if pins is not None and pins.lead_off:
            which = [n for n, is_off in pins.state().items() if is_off]
            self.off["ecg"] = f"lead off: AD8232 LO{'+' if 'plus' in which else '-'} high"
            return
        if ecg is not None and self.board.ecg_frontend is not None:
            railing = np.mean(self.board.ecg_frontend.is_railing(ecg))
            self.off["ecg"] = "lead off: AD8232 output at the rail" if railing > 0.5 else None
        elif pins is not None:
            self.off["ecg"] = None


class Health:
    """Sensor and modality states, their alarms, and the health message, for one pipeline."""

    def __init__(self, board, alarms, clock, *, queue=None, readers=(), face=None) -> None:
        self.board = board
        self.alarms = alarms
        self.clock = clock
        self.queue = queue
        self.readers = list(readers)
        self.face = face
        self.contact = Contact(board)
        #: Set from reader threads when a sensor changes state, so the loop raises at once,
        #: and by a stop request (from a signal handler too: it takes no lock).
        self.wake = Wake()
        self.modalities = self._modality_sensors()
        #: Further parts of the health message by name (the state directory's storage).
        self.sections: dict[str, Callable[[], dict]] = {}
        self._since: dict[str, tuple[str, int]] = {}
        self._crashes: dict[str, int] = {}
        self._reported: set[int] = set()
        for sensor in board.sensors:
            previous = sensor.on_state
            sensor.on_state = self._chain(previous)

    def _chain(self, previous):
        def on_state(state) -> None:
            if previous is not None:
                previous(state)
            self.wake.set()

        return on_state

    def _modality_sensors(self) -> dict[str, str]:
        names = {s.name for s in self.board.sensors}
        out = {m: m for m in ("ppg", "accel") if m in names}
        if "adc" in names and self.board.gsr is not None:
            out["eda"] = "adc"
        if "ecg" in names:
            out["ecg"] = "ecg"
        elif "adc" in names and self.board.ecg_frontend is not None:
            out["ecg"] = "adc"
        return out

    # -- on the hop --------------------------------------------------------------------------
    def observe(self, blocks) -> None:
        self.contact.observe(blocks)

    def modality_state(self, modality: str) -> tuple[str, str | None]:
        sensor = next(s for s in self.board.sensors if s.name == self.modalities[modality])
        if sensor.status.state != "ok":
            return sensor.status.state, sensor.status.reason
        reason = self.contact.off.get(modality)
        return ("off", reason) if reason else ("ok", None)

    def sensor_state(self, sensor) -> tuple[str, str | None]:
        if sensor.status.state != "ok":
            return sensor.status.state, sensor.status.reason
        off = [self.contact.off.get(m) for m, s in self.modalities.items() if s == sensor.name]
        off = [r for r in off if r]
        return ("off", "; ".join(off)) if off else ("ok", None)

    def update(self) -> None:
        """Raise and clear the technical alarms for the states now."""
        for sensor in self.board.sensors:
            st = sensor.status
            for kind in ("sensor_missing", "fifo_stuck"):
                if st.state == "missing" and st.fault == kind:
                    self.alarms.raise_alarm(kind, sensor.name, category="technical",
                                            priority=PRIORITY[kind],
                                            message=f"{sensor.name}: {st.reason}")
                else:
                    self.alarms.clear(kind, sensor.name)
        for modality, kind in CONTACT_KIND.items():
            if modality not in self.modalities:
                continue
            state, reason = self.modality_state(modality)
            if state == "off":
                self.alarms.raise_alarm(kind, modality, category="technical",
                                        priority=PRIORITY[kind], message=f"{modality}: {reason}")
            else:
                self.alarms.clear(kind, modality)
        if self.face is not None:
            self._update_camera()
        for reader in self.readers:
            if (reader.alive() and reader.name in self._crashes
                    and (self.clock.now_ns() - self._crashes[reader.name]) / 1e9 >= READER_SETTLE_S):
                del self._crashes[reader.name]
                self.alarms.clear("reader_crash", reader.name)

    def _update_camera(self) -> None:
        """The camera is a sensor like the others: missing (any failure, a dead thread) is a
        technical alarm, cleared when frames flow again. Starting up is not a failure."""
        if self.face.state == "missing":
            self.alarms.raise_alarm("camera_missing", "camera", category="technical",
                                    priority=PRIORITY["camera_missing"],
                                    message=f"camera: {self.face.reason}")
        elif self.face.state == "ok":
            self.alarms.clear("camera_missing", "camera")

    def reader_crashed(self, reader, restarted: bool, budget: int) -> None:
        """Report a crashed reader once per crash (the supervisor sees it dead on every hop)."""
        if id(reader.crash) in self._reported and reader.crash is not None:
            return
        self._reported.add(id(reader.crash))
        self._crashes[reader.name] = self.clock.now_ns()
        what = f"reader {reader.name} crashed: {reader.crash!r}"
        if restarted:
            what += f"; restarted ({reader.restarts} of {budget})"
            priority = PRIORITY["reader_crash"]
        else:
            what += f"; restart budget ({budget}) spent, its sensors are no longer read"
            priority = "high"
        log.error("%s", what)
        existing = self.alarms.get("reader_crash", reader.name)
        if existing is not None and existing.priority != priority:
            self.alarms.clear("reader_crash", reader.name)
        self.alarms.raise_alarm("reader_crash", reader.name, category="technical",
                                priority=priority, message=what)

    # -- views -------------------------------------------------------------------------------
    def _since_iso(self, key: str, state: str) -> str:
        seen = self._since.get(key)
        if seen is None or seen[0] != state:
            seen = (state, self.clock.now_ns())
            self._since[key] = seen
        return utc_iso_ago((self.clock.now_ns() - seen[1]) / 1e9)

    def sensor_states(self) -> dict[str, dict]:
        """Per sensor ``{"state", "reason"?}``: what the vitals message carries."""
        out = {}
        for sensor in self.board.sensors:
            state, reason = self.sensor_state(sensor)
            out[sensor.name] = {"state": state, **({"reason": reason} if reason else {})}
        return out

    def message(self) -> dict:
        """The body of ``painmon.health/1`` (the pipeline adds the envelope)."""
        sensors = {}
        for sensor in self.board.sensors:
            state, reason = self.sensor_state(sensor)
            sensors[sensor.name] = {
                "state": state, **({"reason": reason} if reason else {}),
                **({"fault": sensor.status.fault} if state == "missing" else {}),
                "since": (self._since_iso(f"sensor:{sensor.name}", reason) if state == "off"
                          else utc_iso_ago((self.clock.now_ns() - sensor.status.since_ns) / 1e9)),
                "errors": sensor.errors, "retries": sensor.retries, "reinits": sensor.reinits,
                "reopens": sensor.reopens, "dropped_samples": sensor.dropped_samples,
            }
        modalities = {}
        for modality, sensor_name in self.modalities.items():
            state, reason = self.modality_state(modality)
            modalities[modality] = {"state": state, "sensor": sensor_name,
                                    **({"reason": reason} if reason else {}),
                                    "since": self._since_iso(f"modality:{modality}", state)}
        if self.face is not None:
            modalities["face"] = {"state": self.face.status().get("state"), "sensor": "camera"}
        return {
            "sensors": sensors,
            "modalities": modalities,
            "camera": self.face.status() if self.face is not None else {"state": "disabled"},
            "queue": {"dropped_blocks": self.queue.dropped if self.queue is not None else 0},
            "readers": {r.name: {"alive": r.alive(), "restarts": r.restarts}
                        for r in self.readers},
            "alarms": [a.kind + "/" + a.source for a in self.alarms.active()
                       if a.category == "technical"],
            **{name: self._section(name, part) for name, part in self.sections.items()},
        }

    @staticmethod
    def _section(name: str, part: Callable[[], dict]) -> dict:
        try:
            return part()
        except Exception as exc:  # noqa: BLE001 - one part must not cost the whole message
            log.exception("health section %s failed", name)
            return {"state": "error", "reason": str(exc)}
