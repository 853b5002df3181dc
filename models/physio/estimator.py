"""The on-device physio estimate: features of the last second, the last minute (with its
change against the minutes before) through the LSTM, an arousal probability turned
into a 0..10 score with a confidence.

The model learnt sympathetic arousal (stress tasks vs rest, Stress-Predict), a proxy for
pain, not pain itself: see MODEL_CARD.md.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from models.modality import ModalityEstimate
from models.physio.features import (
    FEATURE_NAMES,
    HISTORY_S,
    SEQUENCE_STEPS,
    STEP_S,
    Baseline,
    step_features,
)
from models.physio.inputs import CONTEXT_FROM_S, HISTORY_STEPS, INPUT_NAMES, model_inputs
from models.physio.integrity import verify_model
from models.runtime import TFLiteModel
from sensors.types import SampleBlock

MODEL_DIR = Path(__file__).resolve().parent
# The device model: float32, chosen by measurement over float16, dynamic-range and full int8
# (MODEL_CARD.md, "Choosing the device model").
DEFAULT_MODEL = MODEL_DIR / "physio_lstm_float.tflite"
META_NAME = "physio_lstm.json"
# Steps of raw features kept for calibration (``calibrate``), the provisional baseline and
# the model's trailing context (``HISTORY_STEPS``).
CALIBRATION_KEEP_S = max(600, HISTORY_STEPS)
# Until calibrated, the median of what has been seen stands in for the rest baseline; with
# less than this there is nothing to compare against.
PROVISIONAL_MIN_STEPS = 30
UNCALIBRATED_CONFIDENCE = 0.4
_EDA_UNITS = ("", "uS", "µS", "us")
_ACCEL_UNITS = ("", "g")


def trained_motion_clean(model_path: Path) -> bool:
    """Whether the model beside this .json was trained on beats from the motion-cleaned PPG
    (``ppg_motion_clean`` in its ``physio_lstm.json``; absent: it was not)."""
    meta = Path(model_path).with_name(META_NAME)
    if not meta.is_file():
        return False
    return bool(json.loads(meta.read_text()).get("ppg_motion_clean", False))


class _Channel:
    """The last ``HISTORY_S`` seconds of one signal, contiguous; a gap starts it afresh."""

    def __init__(self, name: str, width: int = 1) -> None:
        self.name = name
        self.width = width
        self.rate_hz: float | None = None
        self.samples = np.empty((0, width)) if width > 1 else np.empty(0)
        self.t_end_ns: int | None = None

    def push(self, samples: np.ndarray, rate_hz: float, t0_ns: int, t_end_ns: int) -> None:
        gap = (self.t_end_ns is None or self.rate_hz != rate_hz
               or abs(t0_ns - self.t_end_ns) > 1e9 / rate_hz)
        self.samples = samples if gap else np.concatenate([self.samples, samples])
        self.rate_hz = rate_hz
        self.t_end_ns = t_end_ns
        keep = int(np.ceil(HISTORY_S * rate_hz))
        self.samples = self.samples[-keep:]

    def seconds(self) -> float:
        return 0.0 if self.rate_hz is None else len(self.samples) / self.rate_hz

    def last(self, end_ns: int, seconds: float) -> np.ndarray:
        """Samples of the ``seconds`` ending at ``end_ns`` (<= this channel's end)."""
        drop = int(round((self.t_end_ns - end_ns) * self.rate_hz / 1e9))
        stop = len(self.samples) - max(drop, 0)
        return self.samples[max(stop - int(round(seconds * self.rate_hz)), 0):stop]


class PhysioEstimator:
    """Feeds on PPG, EDA, acceleration and (when fitted) ECG blocks; answers once per 1 s hop.

    ``baseline`` is the patient's rest calibration (``Baseline.from_dict`` of a stored one,
    or ``calibrate()`` after a few quiet minutes). ``ppg_polarity`` is -1 for raw reflectance
    counts, whose value falls with each pulse. With ``motion_clean`` (by default what the
    model was trained on: ``ppg_motion_clean`` in the .json beside it), acceleration given as
    x, y, z cleans the PPG of motion before its beats are read, as the vitals clean it. An
    ECG, when blocks of it arrive, gives the heart rate and RMSSD from its R peaks. The ECG is optional: a hop with
    no ECG in the last minute reads them from the PPG, and nothing else changes.
    """

    def __init__(self, model_path: str | Path | None = None, num_threads: int = 1,
                 baseline: Baseline | None = None, ppg_polarity: int = 1,
                 motion_clean: bool | None = None) -> None:
        path = verify_model(model_path or DEFAULT_MODEL)
        self.model = TFLiteModel(path, num_threads=num_threads)
        self.motion_clean = trained_motion_clean(path) if motion_clean is None else motion_clean
        shape = self.model.input_shape()
        if len(shape) != 3 or shape[2] != len(INPUT_NAMES):
            raise ValueError(f"{self.model.path.name}: input shape {shape} is not "
                             f"(1, steps, {len(INPUT_NAMES)})")
        self.steps = shape[1] or SEQUENCE_STEPS
        self.baseline = baseline
        self.ppg_polarity = ppg_polarity
        self._ppg = _Channel("ppg")
        self._eda = _Channel("eda")
        self._accel = _Channel("accel", width=3)
        self._ecg = _Channel("ecg")
        self._raw: deque[np.ndarray] = deque(maxlen=CALIBRATION_KEEP_S)
        self._quality: deque[float] = deque(maxlen=CALIBRATION_KEEP_S)
        self._from_ecg: deque[bool] = deque(maxlen=CALIBRATION_KEEP_S)
        self._last_end_ns: int | None = None
        #: Whether the last hop took heart rate and RMSSD from the ECG.
        self.beats_from_ecg = False

    # -- input ---------------------------------------------------------------------------
    def push(self, ppg: SampleBlock | None = None, eda: SampleBlock | None = None,
             accel: SampleBlock | Sequence[SampleBlock] | None = None,
             ecg: SampleBlock | None = None) -> None:
        """Add new samples. ``accel`` is one block of magnitude in g, or x, y, z blocks (which
        also clean the PPG of motion)."""
        if ecg is not None:
            self._ecg.push(np.asarray(ecg.samples, float), ecg.rate_hz, ecg.t0_ns, ecg.t_end_ns)
        if ppg is not None:
            self._ppg.push(np.asarray(ppg.samples, float), ppg.rate_hz, ppg.t0_ns, ppg.t_end_ns)
        if eda is not None:
            if eda.unit not in _EDA_UNITS:
                raise ValueError(f"eda block {eda.channel!r}: unit must be uS, got {eda.unit!r}")
            self._eda.push(np.asarray(eda.samples, float), eda.rate_hz, eda.t0_ns, eda.t_end_ns)
        if accel is not None:
            blocks = [accel] if isinstance(accel, SampleBlock) else list(accel)
            if len(blocks) not in (1, 3):
                raise ValueError(f"accel: one magnitude block or x, y, z blocks, got {len(blocks)}")
            for b in blocks:
                if b.unit not in _ACCEL_UNITS:
                    raise ValueError(f"accel block {b.channel!r}: unit must be g, got {b.unit!r}")
            n = min(len(b) for b in blocks)
            xyz = np.stack([np.asarray(b.samples[:n], float) for b in blocks], 1)
            if len(blocks) == 1:  # a magnitude: kept in the first column, the others NaN
                xyz = np.concatenate([xyz, np.full((n, 2), np.nan)], axis=1)
            first = blocks[0]
            self._accel.push(xyz, first.rate_hz, first.t0_ns,
                             first.t0_ns + round(n * first.period_ns))

    def update(self, ppg: SampleBlock | None = None, eda: SampleBlock | None = None,
               accel: SampleBlock | Sequence[SampleBlock] | None = None,
               ecg: SampleBlock | None = None) -> ModalityEstimate:
        """``push`` then ``process``: one call per hop."""
        self.push(ppg, eda, accel, ecg)
        return self.process()

    # -- calibration -----------------------------------------------------------------------
    def calibrate(self, last_s: float | None = None) -> Baseline:
        """Fit the rest baseline from the features seen (the last ``last_s`` seconds) and use
        it; call after the patient has rested quietly for a few minutes."""
        raw = np.array(self._raw)
        quality = np.array(self._quality)
        from_ecg = np.array(self._from_ecg, bool)
        if last_s is not None:
            n = int(last_s / STEP_S)
            raw, quality, from_ecg = raw[-n:], quality[-n:], from_ecg[-n:]
        if len(raw) == 0:
            raise ValueError("calibrate: no features yet; feed signals first")
        self.baseline = replace(Baseline.fit(raw, quality),
                                beats_from_ecg=bool(from_ecg.mean() >= 0.5))
        return self.baseline

    # -- one hop ---------------------------------------------------------------------------
    def process(self) -> ModalityEstimate:
        """Features of the second just ended, then the model on the last minute."""
        flags: list[str] = []
        channels = [c for c in (self._ppg, self._eda, self._accel) if c.t_end_ns is not None]
        for c, flag in ((self._ppg, "no_ppg"), (self._eda, "no_eda"), (self._accel, "no_accel")):
            if c.t_end_ns is None:
                flags.append(flag)
        if not channels:
            return ModalityEstimate("physio", None, 0.0, 0.0, {}, tuple(flags))
        end_ns = min(c.t_end_ns for c in channels)
        span_s = min(c.seconds() - (c.t_end_ns - end_ns) / 1e9 for c in channels)
        span_s = np.floor(max(span_s, 0.0) / STEP_S) * STEP_S
        if span_s < STEP_S or end_ns == self._last_end_ns:
            return ModalityEstimate("physio", None, 0.0, 0.0, {}, tuple(flags + ["no_new_data"]))
        self._last_end_ns = end_ns

        def window(c):
            return (c.last(end_ns, span_s), c.rate_hz) if c.t_end_ns is not None else (None, None)

        (ppg, r_ppg), (eda, r_eda), (acc, r_acc) = map(window, (self._ppg, self._eda, self._accel))
        if acc is not None and np.isnan(acc[:, 1:]).all():
            acc = acc[:, 0]  # magnitude only: motion, no cleaning
        # The ECG is used when it covers the window the other signals give (a lead that came
        # off a while ago is not read as a heart that stopped).
        ecg = r_ecg = None
        if (self._ecg.t_end_ns is not None and self._ecg.t_end_ns >= end_ns
                and self._ecg.seconds() - (self._ecg.t_end_ns - end_ns) / 1e9 >= span_s - STEP_S):
            ecg, r_ecg = window(self._ecg)
            short = int(round(span_s * r_ecg)) - len(ecg)
            if short > 0:  # under a sample step of the window: edge-filled
                ecg = np.concatenate([np.full(short, ecg[0]), ecg])
        self.beats_from_ecg = ecg is not None
        feats = step_features(ppg, r_ppg, eda, r_eda, acc, r_acc,
                              n_steps=int(span_s / STEP_S), ppg_polarity=self.ppg_polarity,
                              ecg=ecg, ecg_rate_hz=r_ecg, t0_s=end_ns / 1e9 - span_s,
                              motion_clean=self.motion_clean)
        raw = feats.values[-1]
        quality = float(feats.quality[-1])
        self._raw.append(raw)
        self._quality.append(quality)
        self._from_ecg.append(self.beats_from_ecg)
        return self._estimate(raw, quality, flags)

    def _estimate(self, raw: np.ndarray, quality: float, flags: list[str]) -> ModalityEstimate:
        baseline = self.baseline
        calibrated = baseline is not None
        if not calibrated:
            flags.append("uncalibrated")
            if len(self._raw) >= PROVISIONAL_MIN_STEPS:
                baseline = Baseline.fit(np.array(self._raw), np.array(self._quality),
                                        min_steps=PROVISIONAL_MIN_STEPS)
        features = {name: float(v) for name, v in zip(FEATURE_NAMES, raw)}
        features["beats_from_ecg"] = float(self.beats_from_ecg)
        # A baseline taken with the other beat source (an ECG fitted or removed since the
        # calibration): heart rate and RMSSD no longer compare like with like.
        mismatched = (calibrated and baseline.beats_from_ecg is not None
                      and baseline.beats_from_ecg != self.beats_from_ecg)
        if mismatched:
            flags.append("beat_source_changed")
        if np.isnan(raw[0]) and "no_ppg" not in flags:
            flags.append("poor_ppg")
        if raw[FEATURE_NAMES.index("motion_g")] > 0.1:
            flags.append("motion")
        if baseline is None:
            return ModalityEstimate("physio", None, 0.0, float(np.clip(quality, 0, 1)),
                                    features, tuple(flags + ["warming_up"]))
        history = np.array(self._raw)[-(self.steps + CONTEXT_FROM_S):]
        seq = model_inputs(baseline, history)[-self.steps:]
        filled = len(seq) / self.steps
        if len(seq) < self.steps:
            flags.append("warming_up")
            seq = np.concatenate([np.zeros((self.steps - len(seq), seq.shape[1]), np.float32), seq])
        p = float(np.clip(self.model.run(seq[None].astype(np.float32))[0].ravel()[0], 0.0, 1.0))
        recent_q = float(np.mean(np.array(self._quality)[-self.steps:]))
        confidence = recent_q * filled * (
            1.0 if calibrated and not mismatched else UNCALIBRATED_CONFIDENCE)
        features["arousal_probability"] = p
        return ModalityEstimate("physio", 10.0 * p, float(np.clip(confidence, 0.0, 1.0)),
                                float(np.clip(quality, 0.0, 1.0)), features, tuple(flags))
