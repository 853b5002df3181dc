"""A session on paper: ``painmon report PATH --out FILE.png|pdf``.

From a recording folder (EDF+ segments and their event sidecars) it draws, on one time axis:
the raw signals (min/max envelope per pixel column, so a night still shows every artefact),
the vitals, the pain estimate over its level bands (models.pain.LEVEL_EDGES) with the
modality scores, and the events: alarms (raised to cleared), self-reports (NRS on the pain
axis), calibrations and acquisition gaps; and the bedside (``bedside_events``): stays, PAINAD and
CPOT scores, doses with the estimate before and after each. ``stay`` limits the drawing to the
part of the session where the estimates carry that stay's reference. Matplotlib only (the
``report`` extra), no display.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from models.pain import LEVEL_EDGES, LEVELS

from device.recording.bedside_events import draw_bedside, stay_span_s, stays_in
from device.recording.readers import Recording, open_recording

SIGNAL_ROWS = (("PPG", ("ppg_green", "ppg_ir", "ppg_red")), ("ECG", ("ecg",)),
               ("EDA", ("eda",)), ("motion", ("acc_x",)))
LEVEL_COLOURS = ("#e8f5e9", "#fff8e1", "#ffe0b2", "#ffcdd2")
ENVELOPE_COLUMNS = 2000


def envelope(t_s: np.ndarray, y: np.ndarray, columns: int = ENVELOPE_COLUMNS):
    """(t, low, high) with at most ``columns`` points: min and max of each bin."""
    if len(y) <= 2 * columns:
        return t_s, y, y
    per = -(-len(y) // columns)
    bins = -(-len(y) // per)
    padded = np.concatenate([y, np.full(bins * per - len(y), y[-1])])  # the last bin's tail
    lo = padded.reshape(bins, per).min(axis=1)
    hi = padded.reshape(bins, per).max(axis=1)
    return t_s[::per], lo, hi


def _series(recording: Recording, channel: str, t0_ns: int):
    blocks = recording.blocks.get(channel)
    if not blocks:
        return None
    t = np.concatenate([(b.times_ns() - t0_ns) / 1e9 for b in blocks])
    y = np.concatenate([np.asarray(b.samples, dtype=float) for b in blocks])
    if channel == "acc_x":  # motion: the magnitude of the three axes, gravity removed
        axes = [recording.blocks.get(a) for a in ("acc_x", "acc_y", "acc_z")]
        if all(axes) and all(len(a) == len(blocks) for a in axes):
            xyz = np.stack([np.concatenate([b.samples for b in a]) for a in axes])
            y = np.sqrt((xyz ** 2).sum(axis=0)) - 1.0
    return t, y


def _values(events: list[dict], t0_ns: int, pick) -> tuple[np.ndarray, np.ndarray]:
    t, v = [], []
    for e in events:
        value = pick(e["message"])
        t.append((e["t_ns"] - t0_ns) / 1e9)
        v.append(np.nan if value is None else float(value))
    return np.asarray(t), np.asarray(v)


def _get(*keys):
    def pick(message):
        for key in keys:
            message = message.get(key) if isinstance(message, dict) else None
        return message if isinstance(message, (int, float)) and not isinstance(message, bool) else None
    return pick


def scored(pick):
    """``pick``, but None for a modality message taken while it calibrates: its score has no
    baseline yet (the fusion gives it no weight) and would draw a spike that never was."""
    def pick_scored(message):
        return None if "calibrating" in (message.get("flags") or ()) else pick(message)
    return pick_scored


def render_report(path: str | Path, out: str | Path, stay: str | None = None) -> Path:
    """Draw the session at ``path`` (one stay of it) into ``out`` (.png or .pdf)."""
    out = Path(out)
    if out.suffix.lower() not in (".png", ".pdf"):
        raise ValueError(f"--out must end in .png or .pdf, got {out.name!r}")
    recording = open_recording(path)
    if recording.source != "painmon":
        raise ValueError(f"{path}: a report needs a painmon recording (EDF+ and sidecar), "
                         f"this is {recording.source}")
    span = None if stay is None else stay_span_s(recording, stay)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t0 = recording.start_ns
    signal_rows = [(title, ch) for title, names in SIGNAL_ROWS
                   for ch in [next((n for n in names if n in recording.blocks), None)] if ch]
    n_rows = len(signal_rows) + 3
    fig, axes = plt.subplots(n_rows, 1, figsize=(14, 2.0 * n_rows), sharex=True,
                             gridspec_kw={"height_ratios": [1] * len(signal_rows) + [1.3, 1.6, 0.7]})
    for ax, (title, channel) in zip(axes, signal_rows):
        t, y = _series(recording, channel, t0)
        te, lo, hi = envelope(t, y)
        ax.fill_between(te, lo, hi, color="#455a64", linewidth=0.4)
        unit = recording.blocks[channel][0].unit
        ax.set_ylabel(f"{title}\n{'g' if title == 'motion' else unit}")
    ax_vitals, ax_pain, ax_events = axes[len(signal_rows):]

    vitals = recording.messages("vitals")
    for label, pick, colour in (("HR (PPG)", _get("hr_bpm", "ppg"), "#c62828"),
                                ("HR (ECG)", _get("hr_bpm", "ecg"), "#6a1b9a")):
        ax_vitals.plot(*_values(vitals, t0, pick), color=colour, label=label, linewidth=1)
    ax_vitals.set_ylabel("HR\nbpm")
    ax_eda = ax_vitals.twinx()
    ax_eda.plot(*_values(vitals, t0, _get("eda_us")), color="#1565c0", linewidth=1, label="EDA")
    ax_eda.set_ylabel("EDA uS")
    ax_vitals.legend(loc="upper left", fontsize=7)

    bounds = (0.0, *LEVEL_EDGES, 10.0)
    for level, colour, lo, hi in zip(LEVELS, LEVEL_COLOURS, bounds, bounds[1:]):
        ax_pain.axhspan(lo, hi, color=colour, zorder=0)
        ax_pain.text(1.002, (lo + hi) / 2, level, transform=ax_pain.get_yaxis_transform(),
                     fontsize=7, va="center")
    pain_t_s, pain = _values(recording.messages("pain"), t0, _get("score"))
    ax_pain.plot(pain_t_s, pain, color="black", linewidth=1.5, label="pain")
    ax_pain.plot(*_values(vitals, t0, _get("physio", "score")), color="#00897b",
                 linewidth=0.8, label="physio")
    ax_pain.plot(*_values(recording.messages("face"), t0, scored(_get("score"))), color="#f57c00",
                 linewidth=0.8, label="face")
    reports = [e for e in recording.messages("self_report") if e["message"].get("ok")]
    if reports:
        ax_pain.scatter(*_values(reports, t0, _get("request", "nrs")), marker="D",
                        color="#d81b60", zorder=5, label="self-report")
    draw_bedside(ax_pain, ax_events, recording, pain_t_s, pain)
    ax_pain.set_ylim(0, 10)
    ax_pain.set_ylabel("pain\n0-10")
    ax_pain.legend(loc="upper left", fontsize=7, ncol=4)

    _draw_events(ax_events, recording, t0)
    axes[-1].set_xlabel("time since recording start [s]")
    if span is not None:
        axes[-1].set_xlim(span[0] - 5.0, span[1] + 5.0)
    stays = [stay] if stay else stays_in(recording)
    first = recording.events[0]["message"] if recording.events else {}
    synced = "synced" if first.get("t_synced") else "NOT synced (no NTP yet)"
    fig.suptitle(f"painmon session {recording.name}: {first.get('device_id', '')}, "
                 f"start {first.get('wall_start', '?')} (wall clock {synced}), "
                 f"{recording.duration_s / 60:.1f} min"
                 + (f", stay {', '.join(stays)}" if stays else ", no stay"), fontsize=10)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _draw_events(ax, recording: Recording, t0: int) -> None:
    end_s = recording.duration_s
    raised: dict[str, tuple[float, dict]] = {}
    spans = []
    for e in recording.messages("alarm"):
        m, t = e["message"], (e["t_ns"] - t0) / 1e9
        if m.get("event") == "raised":
            raised[m.get("alarm_id")] = (t, m)
        elif m.get("event") == "cleared" and m.get("alarm_id") in raised:
            start, first = raised.pop(m.get("alarm_id"))
            spans.append((start, t, first))
    spans += [(start, end_s, m) for start, m in raised.values()]
    colours = {"high": "#d32f2f", "medium": "#fb8c00", "low": "#fdd835"}
    for start, stop, m in spans:
        ax.axvspan(start, stop, ymin=0.55, ymax=0.95, color=colours.get(m.get("priority"), "grey"))
        ax.text(start, 0.75, f" {m.get('kind')} {m.get('source')}", fontsize=6, va="center")
    for e in recording.messages("calibration"):
        if e["message"].get("ok"):
            ax.axvline((e["t_ns"] - t0) / 1e9, ymin=0.05, ymax=0.5, color="#2e7d32")
            ax.text((e["t_ns"] - t0) / 1e9, 0.25, " calibration", fontsize=6, color="#2e7d32")
    gaps = [e for e in recording.messages("recording") if e["message"].get("event") == "gap"]
    for e in gaps:
        ax.plot([(int(e["message"]["from_ns"]) - t0) / 1e9], [0.1], "|", color="grey")
    ax.set_ylim(0, 1)
    ax.set_yticks([])
    ax.set_ylabel("alarms\nevents")
