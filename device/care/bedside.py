"""The bedside workflow: admission and discharge, observational scales, analgesia and its
reassessment. A hop stage beside the pain stage, built by ``device.app.root``.

- ``admit`` opens a stay (``device.care.stay``) and hands its calibration, self-reports and
  mapping to the pain stage; ``discharge`` closes it and the device is uncalibrated again,
  on the population mapping. A stay open at a restart continues: its calibration, mapping and
  pending reassessments are back at start.
- No admission (the safe default): the pain estimate, the vitals and every alarm run as
  usual, without a stay (``stay: null``) and uncalibrated; calibration, self-reports, scale
  scores and analgesia are refused, since they would belong to nobody.
- ``painad`` and ``cpot``: a nurse's score, stored beside the moment's features like a
  self-report, published on ``scale`` and fed to the personal mapping (``device.care.scales``).
- ``analgesia``: a dose (route and drug class optional, from fixed lists; no free text); its
  reassessment falls due ``care.reassess_min.<route>`` minutes later. Its result says when it
  was given (``given_t``: ``minutes_ago`` before it was entered, ``t``) and when its
  reassessment falls due (``due_t``). Then a low-priority
  ``reassessment_due`` alarm stays until a self-report or a scale score is entered, which
  records the estimate after the dose beside the one before.

Times of doses are wall-clock seconds (``wall_s``) so that a due time survives a restart.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import Field

from sensors.clock import Clock

from device.care.pain import NO_STAY, PAIN_ALARM, PainStage
from device.care.scales import SCALE_SCHEMA, SCALES, items_of, rescaled_0_10
from device.care.stay import BED_RULE, DRUG_CLASSES, REFERENCE_RULE, Dose, Stay, StayStore
from device.config import PainmonConfig
from device.config.sections import ROUTES
from device.processing.alarms import AlarmBook
from device.processing.answered import AnsweredRequests
from device.processing.commands import CARERS, CommandRefused, CommandRequest, CommandRouter
from device.processing.envelope import utc_iso
from device.processing.pipeline import Hop

log = logging.getLogger(__name__)

REASSESSMENT = "reassessment_due"
PURGE_EVERY_S = 3600.0
Route = Literal["iv", "im", "sc", "oral", "sublingual", "intranasal", "rectal", "transdermal",
                "epidural", "other"]
DrugClass = Literal["opioid", "nsaid", "paracetamol", "metamizole", "ketamine",
                    "local_anaesthetic", "other"]
assert set(Route.__args__) == set(ROUTES) and set(DrugClass.__args__) == set(DRUG_CLASSES)


class AdmitRequest(CommandRequest):
    reference: str = Field(..., description=f"The patient's pseudonymous reference: {REFERENCE_RULE}.")
    bed: str | None = Field(None, description=f"Bed or room label: {BED_RULE}.")


class DischargeRequest(CommandRequest):
    reference: str = Field(..., min_length=1, max_length=32,
                           description="The open stay's reference (guards against discharging "
                           "the wrong patient).")


class AnalgesiaRequest(CommandRequest):
    route: Route | None = Field(None, description="Route; sets the reassessment interval "
                                "(care.reassess_min), 'other' when not given.")
    drug_class: DrugClass | None = Field(None, description="Drug class.")
    minutes_ago: float = Field(0.0, ge=0, le=720, description="Given this long before the "
                               "command (0: now).")


def anchored_wall(clock: Clock) -> Callable[[], float]:
    """Wall seconds that advance with ``clock``: real time on the device, scaled in the demo."""
    wall0, clock0 = time.time(), clock.now_ns()
    return lambda: wall0 + (clock.now_ns() - clock0) / 1e9


class Bedside:
    def __init__(self, config: PainmonConfig, clock: Clock, *, pain: PainStage,
                 alarms: AlarmBook, publish: Callable[[str, dict], None] | None = None,
                 envelope: Callable[[str], dict] | None = None,
                 wall_s: Callable[[], float] | None = None) -> None:
        self.config = config
        self.care = config.care
        self.pain = pain
        self.alarms = alarms
        self.publish = publish or (lambda topic, message: None)
        self.envelope = envelope or (lambda schema: {"schema": schema})
        self.wall_s = wall_s or anchored_wall(clock)
        self.store = StayStore(config.state_dir)
        self.stay: Stay | None = None
        self.answered: AnsweredRequests | None = None  # the router's, once registered
        self._pending: list[Dose] = []
        # Called with the open stay's folder, or None, whenever a stay opens or closes.
        self.stay_listeners: list[Callable[[Path | None], None]] = []
        self._purged_s = -PURGE_EVERY_S
        self.purge()
        legacy = [n for n in ("calibration.json", "selfreports.sqlite")
                  if (config.state_dir / n).exists()]
        if legacy:  # an unknown patient's: never applied to anyone (export with --legacy)
            log.warning("%s in %s date from before stays and are not used", " and ".join(legacy),
                        config.state_dir)
        stay = self.store.open_stay()
        if stay is not None:
            self._open(stay)
            log.info("stay %s continues (admitted %s, %d reassessment(s) pending)",
                     stay.reference, stay.admitted_t, len(self._pending))
        pain.scale_pairs = self._scale_pairs
        pain.rating_listeners.append(self._on_rating)
        pain.stay_button = self.stay_button

    # -- stays -------------------------------------------------------------------------------
    def _open(self, stay: Stay) -> None:
        self.stay = stay
        self.pain.open_stay(stay.reference, self.store.directory(stay))
        self.alarms.stay = stay.reference
        self._pending = self.store.doses(stay, pending=True)
        self.tick()
        self._tell(self.store.directory(stay))

    def _answer_under_this_stay(self) -> None:
        """The request_ids answered from now on are remembered under the open stay (or none)."""
        if self.answered is not None:
            self.answered.stay = None if self.stay is None else self.stay.key

    def _tell(self, directory: Path | None) -> None:
        self._answer_under_this_stay()
        for listener in self.stay_listeners:
            try:
                listener(directory)
            except Exception:  # noqa: BLE001 - the stay is open or closed whatever a listener does
                log.exception("stay listener %r failed", listener)

    def purge(self) -> None:
        now = self.wall_s()
        self._purged_s = now
        for stay in self.store.purge(now, self.care.retention_days * 86400.0):
            log.info("stay %s (discharged %s) deleted after its retention", stay.reference,
                     stay.discharged_t)
        self._forget_deleted_stays()

    def _forget_deleted_stays(self) -> None:
        if self.answered is not None:
            self.answered.keep_stays({stay.key for stay in self.store.stays()})

    def admit(self, reference: str, bed: str | None = None) -> dict:
        with self.pain.lock:
            try:
                stay = self.store.admit(reference, bed, self.wall_s())
            except (ValueError, RuntimeError) as exc:
                raise CommandRefused(str(exc)) from None
            self._open(stay)
        log.info("admitted stay %s%s", stay.reference, f" in bed {bed}" if bed else "")
        return {**stay.to_dict(), "calibrated": False}

    def discharge(self, reference: str) -> dict:
        with self.pain.lock:
            stay = self.stay
            if stay is None:
                raise CommandRefused("no stay is open")
            if reference != stay.reference:
                raise CommandRefused(f"the open stay is not {reference[:32]!r}: nothing discharged")
            for dose in self._pending:  # unanswered notices go with the patient
                self.alarms.clear(REASSESSMENT, _source(dose))
            self.alarms.clear(*PAIN_ALARM)
            self.pain.close_stay()
            self.alarms.stay = None
            closed = self.store.discharge(stay, self.wall_s())
            self.stay, self._pending = None, []
            self._tell(None)
        kept_days = self.care.retention_days
        log.info("discharged stay %s; kept %g days for export", stay.reference, kept_days)
        return {**closed.to_dict(), "kept_days": kept_days,
                "unanswered_reassessments": len(self.store.doses(closed, pending=True))}

    def stay_button(self) -> dict:
        """The local stay button: admit under a generated reference, or discharge."""
        stay = self.stay
        if stay is not None:
            return self.discharge(stay.reference)
        today = datetime.now(UTC).strftime("%Y%m%d")
        return self.admit(f"local-{today}-{secrets.token_hex(2)}", None)

    def _require_stay(self, what: str) -> Stay:
        if self.stay is None:
            raise CommandRefused(f"{what} belongs to a stay; {NO_STAY}")
        return self.stay

    # -- scales ------------------------------------------------------------------------------
    def score(self, scale: str, request: CommandRequest) -> dict:
        items = items_of(scale, request)
        total = sum(items.values())
        score_0_10 = rescaled_0_10(scale, total)
        with self.pain.lock:
            stay = self._require_stay(f"a {scale} score")
            fused, features = self.pain.moment()
            row = self.store.add_scale(stay, scale, items, total, score_0_10, fused, features)
            answer = {"scale_id": row.id, "stay": stay.reference, "scale": scale,
                      "total": total, "max_total": SCALES[scale][1], "score_0_10": score_0_10,
                      "fused_score": fused}
            answer.update(self.pain.refit())
            answer.update(self._on_rating(scale, fused))
        message = self.envelope(SCALE_SCHEMA)
        message.update({"stay": stay.reference, "scale_id": row.id, "scale": scale,
                        "items": items, "total": total, "max_total": SCALES[scale][1],
                        "score_0_10": score_0_10, "fused_score": fused,
                        "estimate": features["pain"] and features["pain"].get("score")})
        self.publish("scale", message)
        return answer

    def _scale_pairs(self) -> list[tuple[float, float]]:
        if self.stay is None:
            return []
        return [(s.fused_score, s.score_0_10) for s in self.store.scale_scores(self.stay)
                if s.fused_score is not None]

    # -- analgesia ---------------------------------------------------------------------------
    def analgesia(self, route: str | None, drug_class: str | None, minutes_ago: float = 0.0) -> dict:
        with self.pain.lock:
            stay = self._require_stay("a dose")
            given_s = self.wall_s() - 60.0 * minutes_ago
            interval_min = self.care.reassess_min.minutes(route)
            latest = self.pain.latest
            before = None if latest is None else latest.score
            dose = self.store.add_dose(stay, given_s, route, drug_class,
                                       given_s + 60.0 * interval_min, before)
            self._pending.append(dose)
            self.tick()  # a dose entered late may be due at once
        return {**dose.to_dict(), "stay": stay.reference, "reassess_after_min": interval_min,
                "given_t": _iso(dose.given_s), "due_t": _iso(dose.due_s)}

    def _on_rating(self, kind: str, _fused: float | None) -> dict:
        """A rating answers every reassessment already due (not those still to come)."""
        now = self.wall_s()
        due = [d for d in self._pending if d.due_s <= now]
        if not due:
            return {}
        latest = self.pain.latest
        after = None if latest is None else latest.score
        done = []
        for dose in due:
            done.append(self.store.reassess(dose, after, kind))
            self._pending.remove(dose)
            self.alarms.clear(REASSESSMENT, _source(dose))
        return {"reassessed": [d.to_dict() for d in done]}

    def tick(self) -> None:
        """Raise the notices that fell due (idempotent: an active one is not raised again)."""
        now = self.wall_s()
        for dose in list(self._pending):
            if dose.due_s <= now and self.alarms.get(REASSESSMENT, _source(dose)) is None:
                late_min = (now - dose.given_s) / 60.0
                self.alarms.raise_alarm(
                    REASSESSMENT, _source(dose), category="physiological", priority="low",
                    message=f"reassess pain: {dose.route or 'analgesia'} dose "
                    f"{late_min:.{0 if late_min >= 10 else 1}f} min ago (a rating or a scale "
                    "score answers it)")
        if now - self._purged_s >= PURGE_EVERY_S:
            self.purge()

    # -- the hop stage -------------------------------------------------------------------------
    def start(self) -> None:
        pass

    def stop(self) -> None:
        self.store.close()

    def step(self, hop: Hop) -> list[tuple[str, dict]]:
        try:
            with self.pain.lock:
                self.tick()
        except Exception:  # noqa: BLE001 - the estimate goes on without the reminders
            log.exception("bedside tick failed")
        return []

    # -- commands ----------------------------------------------------------------------------
    def register(self, router: CommandRouter) -> None:
        self.answered = router.answered
        self._answer_under_this_stay()
        self._forget_deleted_stays()
        router.register("admit", AdmitRequest, lambda r: self.admit(r.reference, r.bed),
                        "Open a stay: a pseudonymous reference (never a name), a bed label.",
                        roles=CARERS)
        router.register("discharge", DischargeRequest, lambda r: self.discharge(r.reference),
                        "Close the open stay; the device returns to uncalibrated.",
                        roles=CARERS)
        for scale, (model, max_total) in SCALES.items():
            router.register(scale, model, lambda r, s=scale: self.score(s, r),
                            f"A nurse's {scale.upper()} score (each item 0-2, total 0-{max_total}).",
                            roles=CARERS)
        router.register("analgesia", AnalgesiaRequest,
                        lambda r: self.analgesia(r.route, r.drug_class, r.minutes_ago),
                        "An analgesic dose; its reassessment falls due by route.", roles=CARERS)


def _iso(wall_s: float) -> str:
    return utc_iso(datetime.fromtimestamp(wall_s, UTC))


def _source(dose: Dose) -> str:
    return f"dose-{dose.id}"
