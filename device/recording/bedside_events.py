"""The bedside on a session report: stays, scale scores, doses and the estimate around each.

From the recorded events: admissions and discharges (topic ``stay``), PAINAD and CPOT scores
(``scale``, drawn on the pain axis at their 0-10 value), analgesia doses (``analgesia``) and
the rating that answered each dose's reassessment (a ``self_report`` or scale command whose
result lists it). For each dose the report gives the recorded estimate before it (the median
over a window ending at the dose) and after it (the same window ending at the reassessment,
or at its due time when none was entered): the window is a third of the reassessment interval,
at least 10 s and at most 5 min, so "before" and "after" never overlap.
"""

from __future__ import annotations

import numpy as np

MIN_WINDOW_S, MAX_WINDOW_S = 10.0, 300.0
SCALE_MARKERS = {"painad": ("s", "#5e35b1"), "cpot": ("^", "#00838f")}


def _ok_results(recording, topic: str) -> list[tuple[float, dict, dict]]:
    """(t_ns, request, result) of the accepted commands recorded under ``topic``."""
    return [(e["t_ns"], e["message"].get("request") or {}, e["message"].get("result") or {})
            for e in recording.messages(topic) if e["message"].get("ok")]


def stay_span_s(recording, reference: str) -> tuple[float, float]:
    """Where in the recording (s from its start) the estimates carry ``reference``."""
    t = [(e["t_ns"] - recording.start_ns) / 1e9 for e in recording.messages("pain")
         if e["message"].get("stay") == reference]
    if not t:
        raise ValueError(f"no estimate of stay {reference!r} in this recording")
    return min(t), max(t)


def stays_in(recording) -> list[str]:
    seen: list[str] = []
    for e in recording.messages("pain"):
        ref = e["message"].get("stay")
        if ref and ref not in seen:
            seen.append(ref)
    return seen


def median_score(pain_t_s: np.ndarray, pain: np.ndarray, end_s: float, window_s: float):
    inside = (pain_t_s > end_s - window_s) & (pain_t_s <= end_s) & np.isfinite(pain)
    return float(np.median(pain[inside])) if inside.any() else None


def dose_effects(recording, pain_t_s: np.ndarray, pain: np.ndarray) -> list[dict]:
    """Each dose: its time, route, class, window and the estimate before and after it."""
    t0 = recording.start_ns
    answered: dict[int, float] = {}
    for topic in ("self_report", "command"):
        for t_ns, _req, result in _ok_results(recording, topic):
            for dose in result.get("reassessed") or ():
                answered.setdefault(dose.get("dose_id"), (t_ns - t0) / 1e9)
    out = []
    for t_ns, req, result in _ok_results(recording, "analgesia"):
        t_s = (t_ns - t0) / 1e9 - 60.0 * float(req.get("minutes_ago") or 0.0)
        interval_s = 60.0 * float(result.get("reassess_after_min") or 30.0)
        window_s = min(MAX_WINDOW_S, max(MIN_WINDOW_S, interval_s / 3))
        after_at = answered.get(result.get("dose_id"), t_s + interval_s)
        after = (median_score(pain_t_s, pain, after_at, window_s)
                 if after_at <= recording.duration_s else None)
        out.append({"t_s": t_s, "route": result.get("route"), "drug_class": result.get("drug_class"),
                    "window_s": window_s, "before": median_score(pain_t_s, pain, t_s, window_s),
                    "after": after, "after_at_s": after_at,
                    "reassessed": result.get("dose_id") in answered})
    return out


def _fmt(value) -> str:
    return "--" if value is None else f"{value:.1f}"


def draw_bedside(ax_pain, ax_events, recording, pain_t_s: np.ndarray, pain: np.ndarray) -> list[dict]:
    """Scale scores and doses on the pain axis, stays and doses on the event axis."""
    t0 = recording.start_ns
    for scale, (marker, colour) in SCALE_MARKERS.items():
        points = [((e["t_ns"] - t0) / 1e9, e["message"].get("score_0_10"))
                  for e in recording.messages("scale") if e["message"].get("scale") == scale]
        if points:
            ax_pain.scatter(*zip(*points), marker=marker, color=colour, zorder=5,
                            label=f"{scale.upper()} (0-10)")
    for t_ns, req, result in _ok_results(recording, "stay"):
        t = (t_ns - t0) / 1e9
        admitted = result.get("discharged_t") is None
        ax_events.axvline(t, ymin=0.05, ymax=0.95, color="#1e88e5", linestyle="-" if admitted else "--")
        ax_events.text(t, 0.4, f" {'admit' if admitted else 'discharge'} {req.get('reference', '')}",
                       fontsize=6, color="#1e88e5")
    effects = dose_effects(recording, pain_t_s, pain)
    for dose in effects:
        ax_pain.axvline(dose["t_s"], color="#6d4c41", linewidth=1.2)
        ax_events.axvline(dose["t_s"], ymin=0.05, ymax=0.5, color="#6d4c41")
        ax_events.text(dose["t_s"], 0.1, f" dose {dose['route'] or ''} {dose['drug_class'] or ''}",
                       fontsize=6, color="#6d4c41")
        if dose["after_at_s"] <= recording.duration_s:
            ax_pain.axvline(dose["after_at_s"], color="#6d4c41", linewidth=0.8, linestyle=":")
        ax_pain.text(dose["t_s"], 9.3, f" before {_fmt(dose['before'])} -> after "
                     f"{_fmt(dose['after'])}" + ("" if dose["reassessed"] else " (not reassessed)"),
                     fontsize=7, color="#6d4c41")
    return effects
