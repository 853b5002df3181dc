"""Loader for the BioVid Heat Pain Database, Part A biosignals, for those who have it.

BioVid is not redistributable (access on request from its authors), so nothing here ships
with painmon. Expected layout, as distributed::

    biosignals_filtered/<subject>/<subject>-<CLASS>-<NNN>_bio.csv

one file per 5.5 s window, tab-separated with a header row ``time gsr ecg emg_trapezius
emg_corrugator emg_zygomaticus``, sampled at 512 Hz; ``CLASS`` is BL1 (no pain) or PA1..PA4
(rising heat pain). ``gsr`` is skin conductance in µS; heart beats come from the ``ecg``
column (R peaks, ``beat_source="ecg"``), so there is no pulse amplitude; BioVid has no
accelerometer, so motion is unmeasured; 5.5 s hold no breathing cycle worth a spectrum. All
of these sit at the baseline value 0 after normalising.

A window is 5.5 s, so a sequence is 5 one-second steps, not 60, with no trailing minutes
(the ``_change`` inputs are 0): a pain model trained on it has input (1, 5, 20). The rest
baseline of each subject is fitted on its BL1 windows. Labels:
PA3 and PA4 are pain (1), BL1 no pain (0), PA1 and PA2 left out (-1), the usual split for
"pain vs no pain" on Part A (PA1-PA2 are near threshold).

    python -m tools.physio.biovid --data DIR/biosignals_filtered --out biovid_sequences.npz
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np

from models.physio.features import Baseline, step_features
from models.physio.inputs import model_inputs

RATE_HZ = 512.0
WINDOW_STEPS = 5
LABELS = {"BL1": 0, "PA1": -1, "PA2": -1, "PA3": 1, "PA4": 1}
_NAME = re.compile(r"-(BL1|PA[1-4])-\d+_bio\.csv$")


def read_window(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(gsr_us, ecg) of one ``*_bio.csv`` window."""
    with open(path) as f:
        header = f.readline().split()
    missing = {"gsr", "ecg"} - set(header)
    if missing:
        raise ValueError(f"{path}: missing column(s) {sorted(missing)} in header {header}")
    data = np.loadtxt(path, skiprows=1, ndmin=2)
    return data[:, header.index("gsr")], data[:, header.index("ecg")]


def load_subject(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """(sequences: n x 5 x inputs, normalised against the subject's BL1 windows, labels: n)."""
    folder = Path(folder)
    files = sorted(p for p in folder.glob("*_bio.csv") if _NAME.search(p.name))
    if not files:
        raise FileNotFoundError(f"{folder}: no BioVid *-BL1-*/*-PA?-* _bio.csv windows")
    raw, labels, is_rest = [], [], []
    for path in files:
        cls = _NAME.search(path.name).group(1)
        gsr, ecg = read_window(path)
        f = step_features(ecg, RATE_HZ, gsr, RATE_HZ, n_steps=WINDOW_STEPS, beat_source="ecg")
        raw.append(f.values)
        labels.append(LABELS[cls])
        is_rest.append(cls == "BL1")
    raw = np.stack(raw)
    rest = raw[np.array(is_rest)].reshape(-1, raw.shape[-1])
    baseline = Baseline.fit(rest, min_steps=min(30, len(rest)))
    x = np.stack([model_inputs(baseline, window) for window in raw])
    return x, np.array(labels, np.int8)


def main(argv: list[str] | None = None) -> None:
    from tqdm import tqdm

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, type=Path, help="the biosignals_filtered folder")
    ap.add_argument("--out", required=True, type=Path)
    args = ap.parse_args(argv)
    folders = sorted(p for p in args.data.iterdir() if p.is_dir())
    if not folders:
        raise SystemExit(f"no subject folders in {args.data}")
    arrays = {}
    for folder in tqdm(folders, desc="subjects", unit="subj"):
        x, y = load_subject(folder)
        arrays[f"{folder.name}/x"], arrays[f"{folder.name}/y"] = x, y
    np.savez_compressed(args.out, **arrays)
    print(f"wrote {args.out} ({len(folders)} subjects)")


if __name__ == "__main__":
    main()
