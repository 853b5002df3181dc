"""The vitals of one window as the device publishes them: each value None where it was not
measurable or not trusted, with the qualities and signal-quality indices behind it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple


class Estimate(NamedTuple):
    """One vital from one window, before gating: ``value`` None when nothing was measurable."""

    value: float | None
    quality: float


def _r(x: float | None, digits: int) -> float | None:
    return None if x is None else round(float(x), digits)


@dataclass
class Vitals:
    """Vitals over the window ending at ``t_ns``; None where not measurable or not trusted.

    ``heart_rate`` reconciles ``hr_bpm["ppg"]`` and ``hr_bpm["ecg"]``; ``hrv`` covers the
    last 60 s of ECG beats; ``resp`` the last 32 s; ``pat`` is the median R-to-foot time of
    the window's beats; ``scr`` counts the skin-conductance responses of the last minute;
    ``sqi`` holds the indices behind each channel's quality.
    """

    t_ns: int
    hr_bpm: dict[str, float | None] = field(default_factory=lambda: {"ppg": None, "ecg": None})
    eda_us: float | None = None
    motion_g: float | None = None
    quality: dict[str, float] = field(
        default_factory=lambda: {"ppg": 0.0, "ecg": 0.0, "eda": 0.0, "accel": 0.0}
    )
    ppg_channel: str | None = None  # which PPG channel weighed most in hr_bpm["ppg"]
    heart_rate: dict = field(default_factory=lambda: {"bpm": None, "quality": 0.0, "source": None})
    hrv: dict = field(default_factory=lambda: {"rmssd_ms": None, "sdnn_ms": None, "pnn50": None,
                                               "n_beats": 0, "ectopic_fraction": 0.0})
    resp: dict = field(default_factory=lambda: {"rate_bpm": None, "quality": 0.0, "source": None})
    pat: dict = field(default_factory=lambda: {"ms": None, "quality": 0.0, "n_beats": 0})
    scl_us: float | None = None
    scr: dict = field(default_factory=lambda: {"rate_per_min": None, "new": []})
    sqi: dict = field(default_factory=lambda: {"ppg": {}, "ecg": {}})

    def to_dict(self) -> dict:
        return {
            "t_ns": int(self.t_ns),
            "hr_bpm": {k: _r(v, 1) for k, v in self.hr_bpm.items()},
            "eda_us": _r(self.eda_us, 3),
            "motion_g": _r(self.motion_g, 4),
            "quality": {k: _r(v, 3) for k, v in self.quality.items()},
            "ppg_channel": self.ppg_channel,
            "heart_rate": {"bpm": _r(self.heart_rate["bpm"], 1),
                           "quality": _r(self.heart_rate["quality"], 3),
                           "source": self.heart_rate["source"]},
            "hrv": {"rmssd_ms": _r(self.hrv["rmssd_ms"], 1), "sdnn_ms": _r(self.hrv["sdnn_ms"], 1),
                    "pnn50": _r(self.hrv["pnn50"], 3), "n_beats": int(self.hrv["n_beats"]),
                    "ectopic_fraction": _r(self.hrv["ectopic_fraction"], 3)},
            "resp": {"rate_bpm": _r(self.resp["rate_bpm"], 1), "quality": _r(self.resp["quality"], 3),
                     "source": self.resp["source"]},
            "pat": {"ms": _r(self.pat["ms"], 1), "quality": _r(self.pat["quality"], 3),
                    "n_beats": int(self.pat["n_beats"])},
            "scl_us": _r(self.scl_us, 3),
            "scr": {"rate_per_min": _r(self.scr["rate_per_min"], 2),
                    "new": [{"onset_ns": int(s.onset_ns), "amplitude_us": round(s.amplitude_us, 3),
                             "rise_s": round(s.rise_s, 2)} for s in self.scr["new"]]},
            "sqi": self.sqi,
        }
