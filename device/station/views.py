"""What the screen shows, read from the store: the ward's tiles and one bed's 24 hours."""

from __future__ import annotations

import time
from collections import defaultdict

import sqlalchemy as sa

from device.station import api
from device.station import tables as T
from device.station.store import Store, parse_t

TREND_S = 3600
BED_HOURS = 24
#: A command's answer stays on its tile this long.
RECENT_COMMAND_S = 600


def availability(row, now: float, stale_after_s: float) -> str:
    """online, stale (online but silent), offline (its status or last will said so), unknown."""
    if row.state == "offline":
        return "offline"
    if row.state != "online":
        return "unknown"
    if row.last_seen_unix_s is None or now - row.last_seen_unix_s > stale_after_s:
        return "stale"
    return "online"


def ward(store: Store, stale_after_s: float, now: float | None = None) -> dict:
    """Every bed's tile, in bed order, and the station's counters."""
    now = time.time() if now is None else now
    with store.engine.connect() as conn:
        devices = conn.execute(sa.select(T.devices).order_by(T.devices.c.device_id)).all()
        trend = conn.execute(
            sa.select(T.pain_minutes.c.device_id, T.pain_minutes.c.minute_unix_s,
                      T.pain_minutes.c.score_mean)
            .where(T.pain_minutes.c.minute_unix_s >= int(now - TREND_S) // 60 * 60)
            .order_by(T.pain_minutes.c.minute_unix_s)).all()
        commands = conn.execute(
            sa.select(T.commands_sent).where(T.commands_sent.c.sent_unix_s >= now - RECENT_COMMAND_S)
            .order_by(T.commands_sent.c.sent_unix_s)).all()
        rejected = conn.execute(sa.select(sa.func.count()).select_from(T.rejected)).scalar()
        last_reject = conn.execute(sa.select(T.rejected.c.topic, T.rejected.c.reason,
                                             T.rejected.c.received_unix_s)
                                   .order_by(T.rejected.c.id.desc()).limit(1)).first()
    trends: dict[str, list] = defaultdict(list)
    for r in trend:
        if r.score_mean is not None:
            trends[r.device_id].append([r.minute_unix_s, round(r.score_mean, 2)])
    latest_command = {c.device_id: c for c in commands}
    beds = []
    for d in devices:
        alarms = [_alarm(a) for a in (d.active_alarms or [])]
        beds.append({
            "device_id": d.device_id,
            "availability": availability(d, now, stale_after_s),
            "last_seen_unix_s": d.last_seen_unix_s,
            "score": d.score, "level": d.level, "confidence": d.confidence,
            "pain_t_unix_s": d.pain_t_unix_s, "flags": d.pain_flags or [],
            "hr_bpm": d.hr_bpm, "eda_us": d.eda_us,
            "alarms": alarms, "loudest": d.loudest,
            "rejected": d.rejected,
            "trend": trends.get(d.device_id, []),
            "command": _command(latest_command.get(d.device_id)),
        })
    return {"now_unix_s": now, "beds": beds, "rejected": rejected,
            "last_reject": None if last_reject is None else
            {"topic": last_reject.topic, "reason": last_reject.reason,
             "at_unix_s": last_reject.received_unix_s}}


def _alarm(a: dict) -> dict:
    return {k: a.get(k) for k in ("alarm_id", "kind", "source", "category", "priority", "state",
                                   "message", "raised_t", "acknowledged_by")}


def _command(c) -> dict | None:
    if c is None:
        return None
    return {"request_id": c.request_id, "command": c.command, "by": c.username,
            "sent_unix_s": c.sent_unix_s, "ok": c.ok, "reason": c.reason, "result": c.result,
            "answered": c.result_unix_s is not None, "alarm_id": (c.payload or {}).get("alarm_id")}


#: The observational scales, each a command of that name (painad, cpot).
SCALES = tuple(api.published_schema("painmon.scale/1")["properties"]["scale"]["enum"])
#: The ratings that answer a dose's reassessment.
RATINGS = ("self_report", *SCALES)
#: The bedside commands whose accepted results the bed view reads: the device answers every
#: command on ``cmd/result`` through its outbox, whoever sent it, so these are complete.
BEDSIDE = (*RATINGS, "analgesia", "discharge")


def _t(text) -> float | None:
    """A result's ISO time as epoch seconds; None when missing or unreadable."""
    try:
        return parse_t(text, 0.0) if isinstance(text, str) and text else None
    except ValueError:
        return None


def scale_scores(results) -> list[dict]:
    """The nurses' PAINAD and CPOT scores among accepted command results, oldest first."""
    out = []
    for r in results:
        if r.command in SCALES and isinstance(r.result, dict):
            res = r.result
            out.append({"t_unix_s": r.t_unix_s, "scale": res.get("scale") or r.command,
                        "total": res.get("total"), "max_total": res.get("max_total"),
                        "score_0_10": res.get("score_0_10")})
    return out


def doses(results, now: float) -> list[dict]:
    """The doses among accepted command results, oldest first, each with its reassessment:
    ``answered`` (by the rating whose result lists it), ``due`` (still to come), ``overdue``,
    or ``discharged`` (the stay closed before it was answered)."""
    answers: dict = defaultdict(list)  # dose_id -> [(t, the rating, the dose as answered)]
    discharges = []
    for r in results:  # oldest first
        res = r.result if isinstance(r.result, dict) else {}
        if r.command in RATINGS:
            for d in res.get("reassessed") or ():
                if isinstance(d, dict):
                    answers[d.get("dose_id")].append((r.t_unix_s, r.command, d))
        elif r.command == "discharge":
            discharges.append((r.t_unix_s, res.get("reference")))
    out = []
    for r in results:
        if r.command != "analgesia" or not isinstance(r.result, dict):
            continue
        res = r.result
        given = _t(res.get("given_t")) or r.t_unix_s  # older devices: when it was entered
        interval_min = res.get("reassess_after_min")
        due = _t(res.get("due_t"))
        if due is None and isinstance(interval_min, (int, float)):
            due = given + 60.0 * interval_min
        dose = {"t_unix_s": given, "entered_unix_s": r.t_unix_s, "dose_id": res.get("dose_id"),
                "route": res.get("route"), "drug_class": res.get("drug_class"),
                "due_unix_s": due, "reassessment": None,
                "reassessed_unix_s": None, "reassessed_by": None,
                "score_before": res.get("score_before"), "score_after": None}
        # The first rating after it that lists its id (ids restart only with a new device).
        done = next((a for a in answers.get(res.get("dose_id"), ()) if a[0] >= r.t_unix_s), None)
        if done is not None:
            t, command, answered = done
            dose.update(reassessment="answered", reassessed_unix_s=t,
                        reassessed_by=answered.get("reassessed_by") or command,
                        score_after=answered.get("score_after"))
        elif any(t >= r.t_unix_s and ref in (None, res.get("stay")) for t, ref in discharges):
            dose["reassessment"] = "discharged"
        elif dose["due_unix_s"] is not None:
            dose["reassessment"] = "overdue" if dose["due_unix_s"] <= now else "due"
        out.append(dose)
    return out


def bed(store: Store, device_id: str, stale_after_s: float, now: float | None = None,
        hours: float = BED_HOURS) -> dict | None:
    """One bed: its state, 24 h of minute trends, alarm events, self-reports, scale scores,
    doses and their reassessment, commands."""
    now = time.time() if now is None else now
    since = now - hours * 3600
    with store.engine.connect() as conn:
        d = conn.execute(sa.select(T.devices).where(T.devices.c.device_id == device_id)).first()
        if d is None:
            return None
        pm, vm = T.pain_minutes.c, T.vitals_minutes.c
        pain = conn.execute(sa.select(pm.minute_unix_s, pm.score_mean, pm.score_max,
                                      pm.confidence_mean)
                            .where(pm.device_id == device_id, pm.minute_unix_s >= since)
                            .order_by(pm.minute_unix_s)).all()
        vitals = conn.execute(sa.select(vm.minute_unix_s, vm.hr_bpm_mean, vm.eda_us_mean)
                              .where(vm.device_id == device_id, vm.minute_unix_s >= since)
                              .order_by(vm.minute_unix_s)).all()
        ae = T.alarm_events.c
        events = conn.execute(sa.select(T.alarm_events)
                              .where(ae.device_id == device_id, ae.t_unix_s >= since)
                              .order_by(ae.t_unix_s.desc()).limit(200)).all()
        cr = T.command_results.c
        bedside = conn.execute(sa.select(cr.t_unix_s, cr.command, cr.result)
                               .where(cr.device_id == device_id, cr.command.in_(BEDSIDE),
                                      cr.ok.is_(True), cr.t_unix_s >= since)
                               .order_by(cr.t_unix_s, cr.id)).all()
        cs = T.commands_sent.c
        commands = conn.execute(sa.select(T.commands_sent)
                                .where(cs.device_id == device_id, cs.sent_unix_s >= since)
                                .order_by(cs.sent_unix_s.desc()).limit(50)).all()
    return {
        "device_id": device_id, "now_unix_s": now, "since_unix_s": since,
        "availability": availability(d, now, stale_after_s),
        "score": d.score, "level": d.level, "confidence": d.confidence,
        "flags": d.pain_flags or [], "contributions": d.contributions or {},
        "alarms": [_alarm(a) for a in (d.active_alarms or [])],
        "pain": [[r.minute_unix_s, r.score_mean, r.score_max] for r in pain],
        "confidence_trend": [[r.minute_unix_s, r.confidence_mean] for r in pain],
        "hr_bpm": [[r.minute_unix_s, r.hr_bpm_mean] for r in vitals],
        "eda_us": [[r.minute_unix_s, r.eda_us_mean] for r in vitals],
        "self_reports": [[r.t_unix_s, (r.result or {}).get("nrs"), (r.result or {}).get("source")]
                         for r in bedside if r.command == "self_report"],
        "scale_scores": scale_scores(bedside),
        "analgesia": doses(bedside, now),
        "alarm_events": [{"t_unix_s": e.t_unix_s, "event": e.event, "alarm_id": e.alarm_id,
                          "kind": e.kind, "priority": e.priority, "message": e.message,
                          "late": e.late, "by": e.acknowledged_by} for e in events],
        "commands": [_command(c) for c in commands],
    }


def top_contributions(contributions: dict, n: int = 5) -> list[tuple[str, str, float]]:
    """(modality, feature, weight) of the strongest features across modalities."""
    out = []
    for modality, part in (contributions or {}).items():
        for feature, weight in ((part or {}).get("top_features") or {}).items():
            if isinstance(weight, (int, float)):
                out.append((modality, feature, float(weight)))
    return sorted(out, key=lambda x: -abs(x[2]))[:n]
