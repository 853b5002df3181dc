"""The bedside workflow on a stepped clock: stays that share nothing, PAINAD and CPOT scores,
analgesia and its reassessment notice, the safe default with no admission."""

from __future__ import annotations

import io
import json
from datetime import datetime

import pytest

from models.modality import ModalityEstimate
from sensors.clock import SteppedClock

from device.care.bedside import REASSESSMENT, Bedside
from device.care.labels import export_stay_labels
from device.care.pain import PainStage
from device.care.stay import check_reference
from device.config import default_config
from device.processing.alarms import AlarmBook
from device.processing.answered import ANSWERED_FILE, AnsweredRequests
from device.processing.commands import CommandRouter

WALL0_S = 1.8e9  # an arbitrary epoch second the stepped clock starts at


def config(tmp_path, **care):
    base = default_config()
    return base.model_copy(update={
        "state_dir": tmp_path,
        "pain": base.pain.model_copy(update={"smoothing_s": 0.0, "min_reports": 3}),
        "care": base.care.model_copy(update=care)})


class Bed:
    """A pain stage and its bedside on one stepped clock, as the composition root wires them."""

    def __init__(self, cfg, clock: SteppedClock | None = None, wall0_s: float = WALL0_S) -> None:
        self.clock = clock or SteppedClock()
        self.published: list[tuple[str, dict]] = []
        self.alarms = AlarmBook(self.clock)
        self.events: list[tuple[str, str, str, str | None]] = []
        self.alarms.listeners.append(lambda e, a: self.events.append((e, a.kind, a.source, a.stay)))
        self.router = CommandRouter(self.clock, rate_per_s=100, burst=100,
                                    answered=AnsweredRequests(cfg.state_dir / ANSWERED_FILE))
        self.pain = PainStage(cfg, self.clock, alarms=self.alarms)
        self.pain.register(self.router)
        self.bedside = Bedside(cfg, self.clock, pain=self.pain, alarms=self.alarms,
                               publish=lambda t, m: self.published.append((t, m)),
                               wall_s=lambda: wall0_s + self.clock.now_ns() / 1e9)
        self.bedside.register(self.router)

    def cmd(self, name: str, **payload) -> dict:
        return self.router.handle(name, json.dumps(payload).encode())

    def hop(self, score: float, seconds: int = 1) -> dict:
        for _ in range(seconds):
            self.clock.advance(1.0)
            face = ModalityEstimate("face", score, 0.9, 0.9, {"pspi": score * 1.6})
            physio = ModalityEstimate("physio", score, 0.9, 0.9, {"arousal_probability": score / 10})
            estimate = self.pain.update(self.clock.now_ns(), physio=physio, face=face, motion_g=0.0)
            self.bedside.tick()
        return self.pain.message(estimate)

    def stop(self) -> None:
        self.pain.stop()
        self.bedside.stop()
        self.router.answered.close()


def test_references_are_pseudonyms_never_names():
    for good in ("enc-4711", "A12", "bed4_0312"):
        assert check_reference(good) == good
    for bad in ("Jane Doe", "JaneDoe", "x1", "a" * 33 + "1", "-12", "name@1", ""):
        with pytest.raises(ValueError, match="never a name"):
            check_reference(bad)


def test_no_admission_is_the_safe_default(tmp_path):
    bed = Bed(config(tmp_path))
    message = bed.hop(4.0)
    assert message["stay"] is None and message["score"] == pytest.approx(4.0)  # still estimated
    for name, payload in (("calibrate", {"duration_s": 30}), ("self_report", {"nrs": 5}),
                          ("analgesia", {"route": "iv"}),
                          ("painad", dict.fromkeys(("breathing", "negative_vocalization",
                                                    "facial_expression", "body_language",
                                                    "consolability"), 1))):
        answer = bed.cmd(name, **payload)
        assert not answer["ok"] and "admit" in answer["reason"], (name, answer)
    assert not (tmp_path / "stays").exists() or not any((tmp_path / "stays").iterdir())
    assert not bed.cmd("discharge", reference="enc-1")["ok"]
    bed.stop()


def test_two_stays_in_sequence_share_nothing(tmp_path):
    bed = Bed(config(tmp_path, retention_days=1.0))
    assert bed.cmd("admit", reference="enc-1001", bed="4")["ok"]
    refused = bed.cmd("admit", reference="enc-1002")
    assert not refused["ok"] and "enc-1001" in refused["reason"]  # one stay at a time
    # the first patient rates 3 points above the device: a personal mapping is fitted
    for score, nrs in ((1.0, 4), (3.0, 6), (5.0, 8), (6.0, 9)):
        bed.hop(score)
        assert bed.cmd("self_report", nrs=nrs, source="nurse")["ok"]
    first = bed.hop(4.0)
    # (the personal mapping is bounded: four ratings earn it part of its 2-point room)
    assert first["stay"] == "enc-1001" and first["personalised"] and first["score"] > 4.5
    assert not bed.cmd("discharge", reference="enc-9999")["ok"]  # not the open stay
    closed = bed.cmd("discharge", reference="enc-1001")
    assert closed["ok"] and closed["result"]["discharged_t"] is not None
    between = bed.hop(4.0)
    assert between["stay"] is None and not between["personalised"]
    assert between["score"] == pytest.approx(4.0)

    assert bed.cmd("admit", reference="enc-1002")["ok"]
    second = bed.hop(4.0)
    assert second["stay"] == "enc-1002" and not second["personalised"]
    assert second["score"] == pytest.approx(4.0)  # the first patient's mapping is not used
    assert second["calibrated"] is False and bed.pain.calibration.saved == {}
    answer = bed.cmd("self_report", nrs=2, source="patient")["result"]
    assert answer["reports_until_personalised"] == 2  # counts this stay's reports only
    # alarms carry the stay they were raised in
    bed.alarms.raise_alarm("test", "x", category="technical", priority="low", message="m")
    assert bed.events[-1][3] == "enc-1002"

    def labels(reference):
        out = io.StringIO()
        export_stay_labels(tmp_path, out, "jsonl", reference)
        return [json.loads(line) for line in out.getvalue().splitlines()]

    assert [r["nrs"] for r in labels("enc-1001")] == [4, 6, 8, 9]
    assert [r["nrs"] for r in labels("enc-1002")] == [2]
    assert {r["stay"] for r in labels(None)} == {"enc-1001", "enc-1002"}
    bed.stop()

    # the second stay continues across a restart; the first goes after its retention
    bed = Bed(config(tmp_path, retention_days=1.0), wall0_s=WALL0_S + 2 * 86400)
    assert bed.bedside.stay.reference == "enc-1002" and bed.hop(1.0)["stay"] == "enc-1002"
    assert labels("enc-1001") == [] and not (tmp_path / "stays" / "1").exists()
    assert [r["nrs"] for r in labels("enc-1002")] == [2]
    bed.stop()


PAINAD_OK = {"breathing": 1, "negative_vocalization": 2, "facial_expression": 2,
             "body_language": 1, "consolability": 1}


def test_scale_scores_refused_by_item_stored_published_and_mapped(tmp_path):
    bed = Bed(config(tmp_path))
    assert bed.cmd("admit", reference="icu-77")["ok"]
    refused = bed.cmd("painad", **{**PAINAD_OK, "consolability": 3})
    assert not refused["ok"] and refused["reason"].startswith("consolability:")
    refused = bed.cmd("painad", **{k: v for k, v in PAINAD_OK.items() if k != "breathing"})
    assert not refused["ok"] and "breathing" in refused["reason"]
    refused = bed.cmd("cpot", facial_expression=1, body_movements=1, muscle_tension=1)
    assert not refused["ok"] and "vocalization" in refused["reason"]
    refused = bed.cmd("cpot", facial_expression=1, body_movements=-1, muscle_tension=1,
                      vocalization=0)
    assert not refused["ok"] and refused["reason"].startswith("body_movements:")
    assert bed.published == []

    # This patient's behaviour scores well above the device: the mapping follows the scales.
    bed.hop(2.0)
    answer = bed.cmd("painad", **PAINAD_OK)
    assert answer["ok"], answer
    assert answer["result"]["total"] == 7 and answer["result"]["score_0_10"] == 7.0
    topic, message = bed.published[-1]
    assert topic == "scale" and message["schema"] == "painmon.scale/1"
    assert message["stay"] == "icu-77" and message["items"] == PAINAD_OK
    assert message["fused_score"] == pytest.approx(2.0)
    bed.hop(3.0)
    cpot = bed.cmd("cpot", facial_expression=2, body_movements=2, muscle_tension=2,
                   ventilator_compliance=1)["result"]
    assert cpot["total"] == 7 and cpot["score_0_10"] == pytest.approx(8.75)  # 7 x 10/8
    assert not cpot["personalised"]
    bed.hop(1.0)
    fitted = bed.cmd("self_report", nrs=5, source="nurse")["result"]
    assert fitted["personalised"] and fitted["mapping"]["n_reports"] == 3
    mapped = bed.hop(2.0)
    # raised towards the scales (the bounded mapping: three ratings earn part of its room)
    assert mapped["personalised"] and mapped["score"] > 2.5

    out = io.StringIO()
    assert export_stay_labels(tmp_path, out, "csv", "icu-77") == 3
    rows = out.getvalue().splitlines()
    assert rows[0].startswith("stay,") and "item_consolability" in rows[0]
    bed.stop()


def test_reassessment_notice_on_time_after_a_dose_and_cleared_by_a_rating(tmp_path):
    bed = Bed(config(tmp_path))
    assert bed.cmd("admit", reference="enc-5")["ok"]
    bed.hop(6.0)
    refused = bed.cmd("analgesia", route="by-mouth")
    assert not refused["ok"] and "route" in refused["reason"]
    dose = bed.cmd("analgesia", route="iv", drug_class="opioid")
    assert dose["ok"] and dose["result"]["reassess_after_min"] == 30.0
    assert dose["result"]["score_before"] == pytest.approx(6.0)
    bed.hop(6.0, 30 * 60 - 2)
    assert bed.alarms.get(REASSESSMENT, "dose-1") is None  # not yet due
    early = bed.cmd("self_report", nrs=6, source="patient")["result"]
    assert "reassessed" not in early  # a rating before the due time does not answer it
    bed.hop(2.0, 2)
    notice = bed.alarms.get(REASSESSMENT, "dose-1")
    assert notice is not None and notice.priority == "low" and notice.stay == "enc-5"
    bed.hop(2.0, 600)
    assert bed.events.count(("raised", REASSESSMENT, "dose-1", "enc-5")) == 1  # one notice
    answer = bed.cmd("cpot", facial_expression=0, body_movements=0, muscle_tension=1,
                     vocalization=0)["result"]
    done = answer["reassessed"][0]
    assert done["score_before"] == pytest.approx(6.0) and done["score_after"] == pytest.approx(2.0)
    assert done["reassessed_by"] == "cpot"
    assert bed.alarms.get(REASSESSMENT, "dose-1") is None
    assert bed.events[-1] == ("cleared", REASSESSMENT, "dose-1", "enc-5")
    bed.stop()


def test_a_dose_answers_when_it_was_given_and_when_its_reassessment_falls_due(tmp_path):
    bed = Bed(config(tmp_path))
    assert bed.cmd("admit", reference="enc-6")["ok"]
    bed.hop(3.0, 5)
    now_s = WALL0_S + bed.clock.now_ns() / 1e9

    def at(text: str) -> float:
        return datetime.fromisoformat(text).timestamp()

    now = bed.cmd("analgesia", route="iv", drug_class="opioid")["result"]
    assert at(now["given_t"]) == pytest.approx(now_s, abs=0.01)
    assert at(now["due_t"]) == pytest.approx(now_s + 30 * 60, abs=0.01)
    late = bed.cmd("analgesia", route="oral", minutes_ago=45)["result"]  # entered late
    assert at(late["given_t"]) == pytest.approx(now_s - 45 * 60, abs=0.01)
    assert at(late["due_t"]) == pytest.approx(now_s + 15 * 60, abs=0.01)
    bed.stop()


def test_stay_button_admits_then_discharges(tmp_path):
    import time

    from gpiozero.pins.mock import MockFactory

    factory = MockFactory()
    base = config(tmp_path)
    cfg = base.model_copy(update={"buttons": base.buttons.model_copy(
        update={"stay_pin": 13, "hold_s": 0.5})})
    clock = SteppedClock()
    alarms = AlarmBook(clock)
    pain = PainStage(cfg, clock, alarms=alarms, pin_factory=factory)
    bedside = Bedside(cfg, clock, pain=pain, alarms=alarms)
    button = factory.pin(13)

    def hold(seconds: float) -> None:
        button.drive_low()
        time.sleep(seconds)  # gpiozero times holds in real time
        button.drive_high()

    try:
        hold(0.1)  # a short press does nothing
        assert bedside.stay is None
        hold(0.9)
        assert bedside.stay is not None and bedside.stay.reference.startswith("local-")
        check_reference(bedside.stay.reference)
        hold(0.9)
        assert bedside.stay is None and bedside.store.stays()[0].discharged_t is not None
    finally:
        pain.stop()
        bedside.stop()
        factory.reset()


def test_files_from_before_stays_are_never_applied(tmp_path, caplog):
    from device.care.calibration import CalibrationStore

    CalibrationStore(tmp_path).save(mapping={"intercept": 3.0, "slope": 1.0, "n_reports": 9})
    bed = Bed(config(tmp_path))
    assert "date from before stays" in caplog.text
    assert bed.cmd("admit", reference="enc-77")["ok"]
    message = bed.hop(4.0)
    assert not message["personalised"] and message["score"] == pytest.approx(4.0)
    bed.stop()


def test_pending_reassessment_survives_a_restart_on_time(tmp_path):
    bed = Bed(config(tmp_path))
    assert bed.cmd("admit", reference="enc-9")["ok"]
    bed.hop(5.0, 10)
    assert bed.cmd("analgesia", route="oral")["ok"]  # due 60 min after WALL0_S + 10 s
    bed.hop(5.0, 20 * 60)
    bed.stop()
    # the device is off for 30 min; its monotonic clock starts again from zero
    wall0_s = WALL0_S + 10 + 20 * 60 + 30 * 60
    bed = Bed(config(tmp_path), wall0_s=wall0_s)
    assert bed.bedside.stay.reference == "enc-9"
    bed.hop(5.0, 10 * 60 - 1)
    assert bed.alarms.get(REASSESSMENT, "dose-1") is None
    bed.hop(5.0, 1)
    assert bed.alarms.get(REASSESSMENT, "dose-1") is not None  # 60 min after the dose exactly
    assert bed.cmd("self_report", nrs=3)["result"]["reassessed"][0]["dose_id"] == 1
    assert bed.alarms.get(REASSESSMENT, "dose-1") is None
    bed.stop()


def test_request_ids_are_answered_once_per_stay_and_never_across_patients(tmp_path):
    cfg = config(tmp_path, retention_days=1)
    bed = Bed(cfg)
    assert bed.cmd("admit", reference="stay-01", request_id="adm-1")["ok"]
    bed.hop(3.0)
    first = bed.cmd("self_report", nrs=4, request_id="sr-1")
    assert first["ok"] and first["result"]["stay"] == "stay-01"
    assert bed.cmd("self_report", nrs=4, request_id="sr-1") == first  # a retry: the same answer
    assert bed.cmd("admit", reference="stay-01", request_id="adm-1")["ok"]  # idem, not refused
    assert bed.cmd("discharge", reference="stay-01", request_id="dis-1")["ok"]
    assert bed.cmd("admit", reference="stay-02", request_id="adm-2")["ok"]
    # The last patient's late retry: neither run for the new patient nor answered with the old
    # patient's result.
    late = bed.cmd("self_report", nrs=4, request_id="sr-1")
    assert not late["ok"] and "another stay" in late["reason"] and "result" not in late
    bed.hop(3.0)
    assert bed.cmd("self_report", nrs=1)["result"]["reports_until_personalised"] == 2  # the 1st
    bed.stop()
    # A restart within the stay: still answered once, from the state directory.
    bed = Bed(cfg)
    again = bed.cmd("admit", reference="stay-02", request_id="adm-2")
    assert again["ok"] and again["result"]["reference"] == "stay-02"
    # Once the first stay is deleted after its retention, its answers go with it.
    assert bed.cmd("discharge", reference="stay-02", request_id="dis-2")["ok"]
    bed.stop()
    bed = Bed(cfg, wall0_s=WALL0_S + 3 * 86400)
    assert bed.bedside.store.stays() == []
    assert bed.bedside.answered.get("sr-1") is None and bed.bedside.answered.get("dis-2") is not None
    bed.stop()
