"""The pain estimate on the device: fusion on every hop, the pain alarm, calibration,
self-reports and the personal mapping, the local alarm output and the buttons.

A composition root (``device.app.root``) builds it, registers its ``calibrate``,
``self_report`` and ``acknowledge`` commands on the command router (``register``) and adds it
to the pipeline as a hop stage: on each hop it returns the ``pain`` message (schema
painmon.pain/1).

Everything personal (calibration, self-reports, the personal mapping) belongs to the open
stay (``device.care.bedside``), which hands it over with ``open_stay`` and takes it back with
``close_stay``. With no stay open the estimate runs on the population model, uncalibrated,
and calibrations and self-reports are refused: nothing is kept that the next patient's
stay could inherit.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from gpiozero import Factory
from pydantic import Field

from models.fusion import FusionContext, FusionSettings, PainFusion
from models.pain import PainEstimate
from models.personal import PersonalMapping
from sensors.clock import Clock

from device.care.buttons import Buttons
from device.care.calibration import CalibrationStore, PatientCalibration
from device.care.indicators import AlarmOutput
from device.care.selfreport import SelfReportStore
from device.config import PainmonConfig
from device.processing.alarms import AlarmBook
from device.processing.commands import (
    ANYONE,
    CARERS,
    LOCAL,
    PATIENT,
    CommandRefused,
    CommandRequest,
    CommandRouter,
)
from device.processing.envelope import Envelope, utc_iso
from device.processing.face import FaceWorker
from device.processing.physio import PhysioStage
from device.processing.pipeline import Hop
from device.processing.state_files import alarm_reporter

log = logging.getLogger(__name__)

PAIN_SCHEMA = "painmon.pain/1"
PAIN_ALARM = ("pain_high", "pain")
NO_STAY = "no patient admitted: admit one first (command admit)"


class NoStayCalibration:
    """The calibration store while no stay is open: nothing to load, nothing may be saved."""

    path = Path("(no stay)")

    def load(self) -> dict:
        return {}

    def save(self, **_parts) -> dict:
        raise RuntimeError(NO_STAY)


class CalibrateRequest(CommandRequest):
    duration_s: float | None = Field(
        None, ge=30, le=1800, description="How long to record the patient at rest "
        "(default: pain.calibration_s).")


class SelfReportRequest(CommandRequest):
    nrs: int = Field(..., ge=0, le=10, description="Pain on the 0-10 numeric rating scale.")
    source: Literal["patient", "nurse"] = Field("patient", description="Who rated.")


class AcknowledgeRequest(CommandRequest):
    # Required: an empty payload (what clearing a retained message sends) acknowledges nothing.
    alarm_id: str = Field(..., min_length=1, max_length=64,
                          description='The alarm to acknowledge, or "all" (said explicitly).')
    by: str = Field("remote", min_length=1, max_length=64, description="Who acknowledged "
                    "(recorded after the sender's role, e.g. nurse/ward-3).")


class PainAlarm:
    """Raised when the score stays >= ``threshold`` for ``after_s``; cleared when it stays
    under ``threshold - margin`` for ``clear_after_s``. Medium priority, escalating to high
    when not acknowledged within ``escalate_after_s`` (the AlarmBook's tick does that)."""

    def __init__(self, book: AlarmBook, *, threshold: float, after_s: float,
                 clear_after_s: float, escalate_after_s: float, margin: float) -> None:
        self.book = book
        self.threshold, self.after_s, self.clear_after_s = threshold, after_s, clear_after_s
        self.escalate_after_s, self.margin = escalate_after_s, margin
        self._above_ns: int | None = None
        self._below_ns: int | None = None

    def update(self, score: float | None, t_ns: int) -> None:
        if score is None:  # not known now: neither start nor end anything
            return
        active = self.book.get(*PAIN_ALARM) is not None
        if score >= self.threshold:
            self._below_ns = None
            self._above_ns = t_ns if self._above_ns is None else self._above_ns
            if not active and (t_ns - self._above_ns) / 1e9 >= self.after_s:
                self.book.raise_alarm(
                    *PAIN_ALARM, category="physiological", priority="medium",
                    message=f"pain score {score:.1f} at or above {self.threshold:g} "
                    f"for {self.after_s:g} s", escalate_after_s=self.escalate_after_s)
        elif score < self.threshold - self.margin:
            self._above_ns = None
            if active:
                self._below_ns = t_ns if self._below_ns is None else self._below_ns
                if (t_ns - self._below_ns) / 1e9 >= self.clear_after_s:
                    self.book.clear(*PAIN_ALARM)
                    self._below_ns = None
        else:
            self._above_ns = self._below_ns = None


class PainStage:
    def __init__(self, config: PainmonConfig, clock: Clock, *, alarms: AlarmBook,
                 face: FaceWorker | None = None, physio: PhysioStage | None = None,
                 envelope: Envelope | None = None, pin_factory: Factory | None = None) -> None:
        p = config.pain
        self.config = config
        self.clock = clock
        self.alarms = alarms
        self.face = face
        self.physio = physio
        self.envelope = envelope or (lambda schema: {"schema": schema})
        self.settings = FusionSettings(
            priors={"physio": p.physio_weight, "face": p.face_weight},
            motion_high_g=p.motion_high_g, motion_full_g=max(0.5, 3 * p.motion_high_g),
            smoothing_s=p.smoothing_s, hysteresis=p.hysteresis)
        self.stay: str | None = None  # the open stay's reference
        self.calibration = PatientCalibration(NoStayCalibration(), face, physio,
                                              face_fps=config.face.fps)
        self.reports: SelfReportStore | None = None
        # Labels beside the self-reports for the personal fit: (fused score, rating 0-10).
        self.scale_pairs: Callable[[], list[tuple[float, float]]] = list
        # Called with (kind, fused score) after each rating; their answers join the result.
        self.rating_listeners: list[Callable[[str, float | None], dict]] = []
        self.fusion = PainFusion(self.settings, None)
        self.stay_button: Callable[[], None] | None = None  # the bedside's admit/discharge
        self._damaged = alarm_reporter(alarms)  # a damaged state file is a technical alarm
        self.alarm = PainAlarm(alarms, threshold=p.alarm_threshold, after_s=p.alarm_after_s,
                               clear_after_s=p.alarm_clear_after_s,
                               escalate_after_s=p.alarm_escalate_after_s, margin=p.hysteresis)
        self.latest: PainEstimate | None = None
        self._modalities: dict = {}
        self._held_physio: tuple[int, object] | None = None
        self._lock = threading.RLock()
        self.output = self._local(lambda: AlarmOutput.from_config(alarms, clock, config.alarm,
                                                                  pin_factory), "alarm output")
        self.buttons = self._local(lambda: Buttons.from_config(
            clock, config.buttons, pin_factory, on_acknowledge=self._button_acknowledge,
            on_calibrate=self._button_calibrate, on_report=self._button_report,
            on_stay=self._button_stay), "buttons")

    def _local(self, make, what: str):
        try:
            return make()
        except Exception as exc:  # noqa: BLE001 - GPIO busy or absent: say so loudly, run on
            log.error("%s unavailable: %s", what, exc)
            self.alarms.raise_alarm(what.replace(" ", "_"), "gpio", category="technical",
                                    priority="medium", message=f"{what} unavailable: {exc}")
            return None

    def _saved_mapping(self) -> PersonalMapping | None:
        part = self.calibration.saved.get("mapping")
        if part is None:
            return None
        try:
            return PersonalMapping.from_dict(part)
        except ValueError as exc:
            log.warning("stored personal mapping ignored: %s", exc)
            return None

    @property
    def lock(self) -> threading.RLock:
        return self._lock

    # -- stays -------------------------------------------------------------------------------
    def open_stay(self, reference: str, directory: Path) -> None:
        """Take the stay's calibration, self-reports and mapping (stored in ``directory``)."""
        with self._lock:
            self._forget_patient()
            self.stay = reference
            self.calibration = PatientCalibration(CalibrationStore(directory, self._damaged), self.face,
                                                  self.physio, face_fps=self.config.face.fps)
            self.reports = SelfReportStore(directory, self._damaged)
            self.fusion.mapping = self._saved_mapping()

    def close_stay(self) -> None:
        """Back to uncalibrated, population mapping, no stay."""
        with self._lock:
            self._forget_patient()
            self.stay = None
            self.calibration = PatientCalibration(NoStayCalibration(), self.face, self.physio,
                                                  face_fps=self.config.face.fps)

    def _forget_patient(self) -> None:
        estimator = getattr(self.face, "estimator", None)
        if estimator is not None:
            estimator.set_neutral(None)
        if self.physio is not None:
            self.physio.estimator.baseline = None
        self.calibration.run = None
        self.fusion.mapping = None
        if self.reports is not None:
            self.reports.close()
            self.reports = None

    def moment(self) -> tuple[float | None, dict]:
        """The fused score (before the personal mapping) and the features of this moment."""
        with self._lock:
            latest = self.latest
            features = {"pain": latest.to_dict() if latest is not None else None,
                        "modalities": dict(self._modalities)}
            return (None if latest is None else latest.raw_score), features

    # -- life --------------------------------------------------------------------------------
    def start(self) -> None:
        if self.output is not None:
            self.output.start()

    def stop(self) -> None:
        for part in (self.output, self.buttons):
            if part is not None:
                part.close()
        self.output = self.buttons = None
        if self.reports is not None:
            self.reports.close()

    # -- commands ----------------------------------------------------------------------------
    def register(self, router: CommandRouter) -> None:
        router.register("calibrate", CalibrateRequest, self._cmd_calibrate,
                        "Record the patient's neutral face and resting physiology.",
                        roles=CARERS)
        router.register("self_report", SelfReportRequest, self._cmd_self_report,
                        "The patient's or nurse's pain rating (NRS 0-10), kept as a label.",
                        roles=ANYONE)
        if "acknowledge" not in router.commands:
            router.register("acknowledge", AcknowledgeRequest, self._cmd_acknowledge,
                            'Acknowledge an alarm by id, or "all".', roles=CARERS, urgent=True)

    def _cmd_calibrate(self, req: CalibrateRequest) -> dict:
        return self.start_calibration(req.duration_s)

    def start_calibration(self, duration_s: float | None = None) -> dict:
        duration_s = self.config.pain.calibration_s if duration_s is None else duration_s
        with self._lock:
            if self.stay is None:
                raise CommandRefused(f"calibration belongs to a stay; {NO_STAY}")
            try:
                return self.calibration.start(self.clock.now_ns(), duration_s)
            except (ValueError, RuntimeError) as exc:
                raise CommandRefused(str(exc)) from None

    def _cmd_self_report(self, req: SelfReportRequest) -> dict:
        # The source is the sender's role where there is one: a patient's tablet cannot file
        # a nurse's rating.
        if req.role == PATIENT and req.source != "patient":
            raise CommandRefused("role patient may only report source 'patient'")
        return self.self_report(req.nrs, req.source)

    def self_report(self, nrs: int, source: str) -> dict:
        """Store a rating with the moment's features; refit the mapping when enough are in."""
        with self._lock:
            if self.stay is None or self.reports is None:
                raise CommandRefused(f"a self-report belongs to a stay; {NO_STAY}")
            fused, features = self.moment()
            report = self.reports.add(utc_iso(), self.config.device_id, nrs, source,
                                      fused, features)
            answer = {"report_id": report.id, "stay": self.stay, "nrs": nrs, "source": source,
                      "fused_score": fused}
            answer.update(self.refit())
            for listener in self.rating_listeners:
                answer.update(listener("nrs", fused))
        return answer

    def refit(self) -> dict:
        """Refit the personal mapping on the stay's self-reports and scale scores."""
        reports = [] if self.reports is None else self.reports.reports()
        pairs = [(r.fused_score, r.nrs) for r in reports if r.fused_score is not None]
        pairs += self.scale_pairs()
        p = self.config.pain
        if len(pairs) < p.min_reports:
            return {"personalised": self.fusion.mapping is not None,
                    "reports_until_personalised": p.min_reports - len(pairs)}
        mapping = PersonalMapping.fit([s for s, _ in pairs], [y for _, y in pairs],
                                      prior_strength=p.mapping_prior, min_reports=p.min_reports)
        self.fusion.mapping = mapping
        self.calibration.save_mapping(mapping.to_dict())
        log.info("personal mapping refitted on %d ratings: rating = %.2f + %.2f x score",
                 mapping.n_reports, mapping.intercept, mapping.slope)
        return {"personalised": True, "mapping": _mapping_dict(mapping)}

    def _cmd_acknowledge(self, req: AcknowledgeRequest) -> dict:
        by = req.by if req.role == LOCAL else f"{req.role}/{req.by}"
        if req.alarm_id == "all":
            done = self.alarms.acknowledge_all(by)
            return {"acknowledged": [a.id for a in done]}
        alarm = self.alarms.acknowledge(req.alarm_id, by)
        if alarm is None:
            raise CommandRefused(f"no active alarm with id {req.alarm_id!r}")
        return {"acknowledged": [alarm.id]}

    def _button_acknowledge(self) -> None:
        self.alarms.acknowledge_all("button")

    def _button_calibrate(self) -> None:
        try:
            self.start_calibration()
        except CommandRefused as exc:
            log.warning("calibration by button refused: %s", exc)

    def _button_stay(self) -> None:
        if self.stay_button is None:
            log.warning("stay button: no bedside workflow on this device")
            return
        try:
            self.stay_button()
        except CommandRefused as exc:
            log.warning("stay button refused: %s", exc)

    def _button_report(self, nrs: int, source: str) -> None:
        try:
            self.self_report(nrs, source)
        except CommandRefused as exc:
            log.warning("self-report by button refused: %s", exc)

    # -- the hop -----------------------------------------------------------------------------
    def update(self, t_ns: int, *, physio=None, face=None, motion_g: float | None = None,
               sensors_off: tuple[str, ...] = ()) -> PainEstimate:
        with self._lock:
            self.calibration.restore_face()
            self.calibration.tick(self.clock.now_ns())
            if self.buttons is not None:
                self.buttons.tick()
            context = FusionContext(motion_g=motion_g, sensors_off=tuple(sensors_off),
                                    physio_rest=self.calibration.physio_rest())
            estimate = self.fusion.update(t_ns, {"physio": physio, "face": face}, context)
            self.latest = estimate
            self._modalities = {name: est.to_dict() for name, est in
                                (("physio", physio), ("face", face)) if est is not None}
        self.alarm.update(estimate.score, self.clock.now_ns())
        return estimate

    def message(self, estimate: PainEstimate) -> dict:
        message = self.envelope(PAIN_SCHEMA)
        body = estimate.to_dict()
        calibrated = self.calibration.calibrated
        body["calibrated"] = "uncalibrated" not in estimate.flags and any(calibrated.values())
        body["calibration"] = self.calibration.status(self.clock.now_ns())
        if self.fusion.mapping is not None:
            body["mapping"] = _mapping_dict(self.fusion.mapping)
        pain_alarm = self.alarms.get(*PAIN_ALARM)
        body["alarm"] = None if pain_alarm is None else {
            "alarm_id": pain_alarm.id, "priority": pain_alarm.priority, "state": pain_alarm.state}
        body["stay"] = self.stay
        message.update(body)
        return message

    def step(self, hop: Hop) -> list[tuple[str, dict]]:
        """One hop from the pipeline: the pain message to publish (none if fusion failed)."""
        try:
            return [("pain", self._step(hop.t_ns, hop.vitals, hop.physio, hop.sensors))]
        except Exception:  # noqa: BLE001 - the vitals and the other topics go on
            log.exception("pain estimate failed")
            return []

    def _step(self, t_ns: int, vitals, physio, sensor_states: dict | None) -> dict:
        face = None
        if self.face is not None:
            face = self.face.latest(t_ns, max_age_s=2 * self.config.processing.hop_s)
        off = [name for name, s in (sensor_states or {}).items() if s.get("state") != "ok"]
        if self.face is not None and self.face.state == "missing":
            off.append("camera")
        motion = None if vitals is None else vitals.motion_g
        if physio is not None and "no_new_data" not in physio.flags:
            self.calibration.note_physio_step()
        # A hop whose reader delivered nothing new ("no_new_data") keeps the last physio
        # estimate for a couple of hops, rather than flapping physio_missing under CPU load.
        if physio is not None and physio.score is None and "no_new_data" in physio.flags:
            held = self._held_physio
            if held is not None and (t_ns - held[0]) / 1e9 <= 2.5 * self.config.processing.hop_s:
                physio = held[1]
        elif physio is not None and physio.score is not None:
            self._held_physio = (t_ns, physio)
        return self.message(self.update(t_ns, physio=physio, face=face, motion_g=motion,
                                        sensors_off=tuple(off)))


def _mapping_dict(mapping: PersonalMapping) -> dict:
    return {"intercept": round(mapping.intercept, 3), "slope": round(mapping.slope, 3),
            "n_reports": mapping.n_reports}
