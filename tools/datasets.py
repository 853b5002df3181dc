"""Loaders for the public recordings the signal path is measured on.

- IEEE Signal Processing Cup 2015 (Zhang et al., TROIKA, IEEE TBME 2015), both layouts:
  training ``DATA_XX_TYPEYY.mat`` (``sig`` 6 x N: ECG, PPG1, PPG2, acc x/y/z) with
  ``DATA_XX_TYPEYY_BPMtrace.mat`` (``BPM0``), and the competition's test layout
  ``TEST_SXX_TYPEYY.mat`` (``sig`` 5 x N: PPG1, PPG2, acc x/y/z) with ``True_SXX_TYPEYY.mat``
  (``BPM0``). 125 Hz; one BPM0 value per 8 s window, windows every 2 s.
- WFDB records (MIT-BIH and other PhysioNet databases) through the ``wfdb`` package.
- Empatica E4 CSV folders (``BVP.csv``, ``EDA.csv``, ``ACC.csv``, ``TEMP.csv``, ``HR.csv``,
  ``IBI.csv``): first row the start time (unix s), second row the rate, then samples.

Only ``tools/`` and tests import this. The file parsers are the replay's (``device.recording.readers``),
so a recording that replays also loads here and fails the same way when it is broken.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tools.physio.dataset import read_e4_csv

from device.recording.readers import SPC_RATE_HZ, read_mat

SPC_WINDOW_S, SPC_STEP_S = 8.0, 2.0


def shared_data_dir() -> Path | None:
    """``$PAINMON_DATA``, else ``<repo>/../shared/data``; None when neither exists."""
    env = os.environ.get("PAINMON_DATA")
    candidates = [Path(env)] if env else []
    candidates.append(Path(__file__).resolve().parents[1].parent / "shared" / "data")
    return next((p for p in candidates if p.is_dir()), None)


@dataclass
class SpcRecording:
    """One SPC 2015 recording: ``ppg`` (2, N), ``acc`` (3, N), ``ecg`` (N,) or None."""

    name: str
    ppg: np.ndarray
    acc: np.ndarray
    bpm0: np.ndarray
    ecg: np.ndarray | None = None
    rate_hz: float = SPC_RATE_HZ

    @property
    def n_windows(self) -> int:
        """Windows of the protocol that fit in the recording (and have a reference)."""
        n_fit = int((self.ppg.shape[1] / self.rate_hz - SPC_WINDOW_S) // SPC_STEP_S) + 1
        return min(n_fit, self.bpm0.size)

    def window_end_s(self, i: int) -> float:
        return SPC_WINDOW_S + i * SPC_STEP_S


_TRAIN = re.compile(r"^DATA_(\d+)_TYPE(\d+)\.mat$")
_TEST = re.compile(r"^TEST_(S\d+)_T(?:YPE)?(\d+)\.mat$")


def load_spc_recording(path: str | Path) -> SpcRecording:
    """Load one recording given its signal file (either layout); finds its ground truth."""
    path = Path(path)
    if not (_TRAIN.match(path.name) or _TEST.match(path.name)):
        raise ValueError(f"{path}: not an SPC 2015 file name (DATA_XX_TYPEYY.mat or TEST_SXX_TYPEYY.mat)")
    sig = read_mat(path, "sig")
    if _TRAIN.match(path.name):
        if sig.shape[0] != 6:
            raise ValueError(f"{path}: training layout needs sig 6 x N, got {sig.shape}")
        truth = path.with_name(path.stem + "_BPMtrace.mat")
        ecg, ppg, acc = sig[0], sig[1:3], sig[3:6]
    elif _TEST.match(path.name):
        if sig.shape[0] != 5:
            raise ValueError(f"{path}: test layout needs sig 5 x N, got {sig.shape}")
        truth = path.with_name("True_" + path.name[len("TEST_"):])
        ecg, ppg, acc = None, sig[0:2], sig[2:5]
    if not truth.exists():
        raise ValueError(f"{path}: ground truth {truth.name} is missing")
    bpm0 = read_mat(truth, "BPM0").ravel()
    return SpcRecording(path.stem, ppg, acc, bpm0, ecg)


def find_spc_recordings(directory: str | Path) -> list[Path]:
    """Every SPC 2015 signal file in ``directory`` and its subfolders, in name order (so
    ``--data ../shared/data`` finds ``spc2015/``)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ValueError(f"SPC 2015 folder {directory} does not exist")
    found = (p for p in directory.rglob("*.mat") if _TRAIN.match(p.name) or _TEST.match(p.name))
    return sorted(found, key=lambda p: (p.name, str(p)))


@dataclass
class WfdbRecord:
    """One WFDB record: ``signal`` (N, leads) in physical units, ``beats_s`` reference beats."""

    name: str
    rate_hz: float
    signal: np.ndarray
    leads: list[str]
    beats_s: np.ndarray


# Annotation symbols that mark a beat (PhysioNet's annotation codes; not rhythm or noise marks).
WFDB_BEAT_SYMBOLS = frozenset("NLRBAaJSVrFejnE/fQ?")


def load_wfdb_record(path: str | Path, annotation: str = "atr") -> WfdbRecord:
    """Load ``path`` (without extension) and its beat annotations."""
    import wfdb

    path = Path(path)
    if not path.with_suffix(".hea").exists():
        raise ValueError(f"WFDB record {path}: header {path.with_suffix('.hea').name} missing")
    record = wfdb.rdrecord(str(path))
    ann = wfdb.rdann(str(path), annotation)
    symbols = np.asarray(ann.symbol)
    beats = np.asarray(ann.sample)[np.isin(symbols, list(WFDB_BEAT_SYMBOLS))]
    return WfdbRecord(path.name, float(record.fs), np.asarray(record.p_signal, dtype=float),
                      list(record.sig_name), beats / float(record.fs))


def find_wfdb_records(directory: str | Path) -> list[Path]:
    """Every annotated WFDB record (``.hea`` with ``.atr``) in ``directory`` and its subfolders."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ValueError(f"WFDB folder {directory} does not exist")
    return sorted((p.with_suffix("") for p in directory.rglob("*.hea") if p.with_suffix(".atr").exists()),
                  key=lambda p: (p.name, str(p)))


@dataclass
class E4Channel:
    start_unix_s: float
    rate_hz: float
    samples: np.ndarray  # (N,) or (N, 3) for ACC


@dataclass
class E4Recording:
    """An Empatica E4 session folder; ACC is converted from 1/64 g to g."""

    name: str
    channels: dict[str, E4Channel] = field(default_factory=dict)
    ibi: np.ndarray | None = None  # (N, 2): seconds after start, interval s
    tags_unix_s: np.ndarray | None = None


def _e4_csv(path: Path) -> E4Channel:
    return E4Channel(*read_e4_csv(path))


def load_e4_folder(directory: str | Path) -> E4Recording:
    directory = Path(directory)
    if not directory.is_dir():
        raise ValueError(f"E4 folder {directory} does not exist")
    rec = E4Recording(directory.name)
    for name in ("BVP", "EDA", "TEMP", "HR", "ACC"):
        path = directory / f"{name}.csv"
        if path.exists():
            rec.channels[name] = _e4_csv(path)
    if "ACC" in rec.channels:
        rec.channels["ACC"].samples = rec.channels["ACC"].samples / 64.0
    if not rec.channels:
        raise ValueError(f"E4 folder {directory}: none of BVP/EDA/TEMP/HR/ACC .csv found")
    ibi = directory / "IBI.csv"
    if ibi.exists() and ibi.stat().st_size > 0:
        rows = np.loadtxt(ibi, delimiter=",", skiprows=1, ndmin=2)
        rec.ibi = rows if rows.size else None
    tags = sorted(directory.glob("tags*.csv"))
    if tags and tags[0].stat().st_size > 0:
        rec.tags_unix_s = np.loadtxt(tags[0], delimiter=",", ndmin=1)
    return rec
