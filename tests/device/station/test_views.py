"""The bed view's data, read from stored command results, on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import pytest

from device.processing.envelope import utc_iso
from device.station import views
from device.station.ingest import check

NOW = time.time()
H = 3600.0


class Device:
    """Command results as a device publishes them on ``cmd/result``, checked as ingest checks
    them (the published schema) and stored as ingest stores them."""

    def __init__(self, store, device_id: str) -> None:
        self.store, self.device_id, self.seq = store, device_id, 0

    def result(self, ago_s: float, command: str, result: dict | None = None, *,
               ok: bool = True) -> None:
        self.seq += 1
        body = {"schema": "painmon.command_result/1", "device_id": self.device_id,
                "boot_id": "boot-1", "seq": self.seq, "t": iso(ago_s),
                "command": command, "request_id": f"r{self.seq}", "ok": ok}
        if ok:
            body["result"] = result or {}
        else:
            body["reason"] = "refused"
        received = check("painmon", f"painmon/{self.device_id}/cmd/result",
                         json.dumps(body).encode(), NOW)
        assert not isinstance(received, str), received
        self.store.write([received])


def iso(ago_s: float) -> str:
    return utc_iso(datetime.fromtimestamp(NOW - ago_s, UTC))


def dose(dose_id: int, route: str | None, drug_class: str | None, given_ago_s: float,
         due_in_s: float) -> dict:
    return {"dose_id": dose_id, "t": iso(given_ago_s), "route": route, "drug_class": drug_class,
            "score_before": 6.0, "reassessed_t": None, "score_after": None,
            "reassessed_by": None, "stay": "stay-01", "reassess_after_min": due_in_s / 60,
            "given_t": iso(given_ago_s), "due_t": iso(given_ago_s - due_in_s)}


def painad(total: int, reassessed: list | None = None) -> dict:
    out = {"scale_id": 1, "stay": "stay-01", "scale": "painad", "total": total,
           "max_total": 10, "score_0_10": float(total), "fused_score": 5.0}
    if reassessed:
        out["reassessed"] = reassessed
    return out


def test_the_bed_view_lists_scale_scores_and_doses_with_their_reassessment(store):
    bed = Device(store, "bed-3")
    bed.result(25 * H, "painad", painad(9))  # older than the view's 24 h
    bed.result(4 * H, "admit", {"stay_id": 1, "reference": "stay-01"})
    # An iv opioid entered 10 min after it was given, answered by a PAINAD once due.
    first = {**dose(1, "iv", "opioid", 3 * H + 600, 1800), "t": iso(3 * H)}
    bed.result(3 * H, "analgesia", first)
    bed.result(2.5 * H, "painad", painad(
        3, [{**first, "reassessed_t": iso(2.5 * H), "score_after": 2.5, "reassessed_by": "painad"}]))
    bed.result(2 * H, "self_report", {"nrs": 4, "source": "nurse", "stay": "stay-01"})
    bed.result(1 * H, "analgesia", dose(2, "im", "nsaid", 1 * H, 1800))  # not answered
    bed.result(600, "analgesia", dose(3, "oral", None, 600, 3600))  # not yet due
    # From a device before given_t and due_t: given when entered, due by the interval.
    old = {k: v for k, v in dose(4, None, "paracetamol", 1200, 3600).items()
           if k not in ("given_t", "due_t")}
    bed.result(1200, "analgesia", old)
    bed.result(300, "cpot", {"scale": "cpot", "total": 3, "max_total": 8, "score_0_10": 3.75,
                             "stay": "stay-01"})
    bed.result(200, "painad", ok=False)
    other = Device(store, "bed-4")
    other.result(900, "analgesia", {**dose(1, "sc", "opioid", 900, 1800), "stay": "stay-02"})
    other.result(800, "discharge", {"stay_id": 2, "reference": "stay-02",
                                    "unanswered_reassessments": 1})

    view = views.bed(store, "bed-3", stale_after_s=10, now=NOW)

    assert [(s["scale"], s["total"], s["max_total"], s["score_0_10"])
            for s in view["scale_scores"]] == [("painad", 3, 10, 3.0), ("cpot", 3, 8, 3.75)]
    assert view["scale_scores"][0]["t_unix_s"] == pytest.approx(NOW - 2.5 * H, abs=0.01)
    assert [r[1:] for r in view["self_reports"]] == [[4, "nurse"]]
    doses = view["analgesia"]
    assert [(d["route"], d["drug_class"], d["reassessment"]) for d in doses] == [
        ("iv", "opioid", "answered"), ("im", "nsaid", "overdue"),
        (None, "paracetamol", "due"), ("oral", None, "due")]  # in the order they were entered
    answered, overdue, old_style, due = doses
    assert answered["t_unix_s"] == pytest.approx(NOW - 3 * H - 600, abs=0.01)  # when given
    assert answered["reassessed_unix_s"] == pytest.approx(NOW - 2.5 * H, abs=0.01)
    assert answered["reassessed_by"] == "painad" and answered["score_after"] == 2.5
    assert overdue["due_unix_s"] == pytest.approx(NOW - 0.5 * H, abs=0.01)
    assert overdue["reassessed_unix_s"] is None
    assert old_style["t_unix_s"] == pytest.approx(NOW - 1200, abs=0.01)
    assert old_style["due_unix_s"] == pytest.approx(NOW - 1200 + 3600, abs=0.01)
    assert due["due_unix_s"] == pytest.approx(NOW + 3000, abs=0.01)

    other_view = views.bed(store, "bed-4", stale_after_s=10, now=NOW)
    assert other_view["scale_scores"] == []
    assert [(d["route"], d["reassessment"]) for d in other_view["analgesia"]] == [
        ("sc", "discharged")]
    # Before its due time a dose is due, not overdue.
    assert views.bed(store, "bed-3", stale_after_s=10, now=NOW - 0.75 * H)["analgesia"][1][
        "reassessment"] == "due"
