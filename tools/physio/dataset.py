"""Build the physio training set from Empatica E4 CSV folders.

    python -m tools.physio.dataset --data ../shared/data/stress-predict --out physio_steps.npz

Each subject folder (``SXX/`` with BVP.csv, EDA.csv, ACC.csv; first row the start time in
unix UTC, second the sample rate) gives one row of features per second
(``models.physio.features``; with ``--motion-clean``, beats from the BVP cleaned of motion
with the ACC's axes, as the vitals clean the device's PPG) and one label per second, from the
first source found:

1. a ``labels*.csv`` in the subject folder or the folder above, with columns ``Time(sec)``
   (unix UTC) and ``Label`` (1 stress / 0 baseline) and, when it holds several people,
   ``Participant`` (the subject number). Stress-Predict's ``labels_hr_resp_S01-S25.csv`` is
   one (it has S02-S25).
2. ``tags_SXX.csv``: button presses at task starts and ends; the time between the presses of
   each task is stress, the rest baseline. Stress-Predict's protocol is Stroop, rest,
   interview, rest, hyperventilation: presses 0-1, 2-3 and 4-5 by default. S01 has one extra
   press (at 09:31:47, during the first rest); ``Time_logs.xlsx`` places its tasks at presses
   0-1, 3-4 and 5-6, written down in ``TAG_TASKS``.

Seconds with no label are -1. The rest baseline of each subject is fitted on the rest before
the first task, from ``BASELINE_SKIP_S`` after the start (the E4's EDA electrodes settle).
"""

from __future__ import annotations

import argparse
import csv
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.physio.features import FEATURE_NAMES, Baseline, step_features

from device.recording import readers

E4_ACC_PER_G = 64.0
BASELINE_SKIP_S = 60.0
TAG_TASKS = {"S01": ((0, 1), (3, 4), (5, 6))}
DEFAULT_TAG_TASKS = ((0, 1), (2, 3), (4, 5))


@dataclass
class SubjectSteps:
    subject: str
    t0_s: float
    values: np.ndarray  # steps x 6 physical features
    quality: np.ndarray  # steps
    labels: np.ndarray  # steps, 1 / 0 / -1
    baseline: Baseline


def read_e4_csv(path: Path) -> tuple[float, float, np.ndarray]:
    """(start unix s, rate Hz, samples; one column squeezed to 1-D) of one E4 CSV file."""
    t0, rate, data = readers.read_e4_csv(path)
    return t0, rate, data[:, 0] if data.shape[1] == 1 else data


def subject_folders(data_dir: Path, subjects: list[str] | None = None) -> list[Path]:
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"data folder not found: {data_dir}")
    folders = sorted(p for p in data_dir.iterdir() if p.is_dir() and (p / "BVP.csv").is_file())
    if (data_dir / "BVP.csv").is_file():
        folders = [data_dir]
    if subjects:
        wanted = {s.upper() for s in subjects}
        missing = wanted - {p.name.upper() for p in folders}
        if missing:
            raise FileNotFoundError(f"subject folder(s) {sorted(missing)} not in {data_dir}")
        folders = [p for p in folders if p.name.upper() in wanted]
    if not folders:
        raise FileNotFoundError(f"no E4 subject folders (with BVP.csv) in {data_dir}")
    return folders


def _subject_number(name: str) -> int | None:
    m = re.search(r"(\d+)$", name)
    return int(m.group(1)) if m else None


def _labels_from_csv(folder: Path, t0_s: float, n_steps: int) -> np.ndarray | None:
    candidates = sorted(folder.glob("labels*.csv")) + sorted(folder.parent.glob("labels*.csv"))
    number = _subject_number(folder.name)
    for path in candidates:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        if not rows or "Label" not in rows[0] or "Time(sec)" not in rows[0]:
            continue
        if "Participant" in rows[0]:
            rows = [r for r in rows if number is not None and int(float(r["Participant"])) == number]
        if not rows:
            continue
        t = np.array([float(r["Time(sec)"]) for r in rows])
        lab = np.array([int(float(r["Label"])) for r in rows])
        # A label stamped at second t describes [t, t+1); the step ending at t0+k+1 covers it.
        k = np.floor(t - t0_s + 1e-6).astype(int)
        keep = (k >= 0) & (k < n_steps)
        labels = np.full(n_steps, -1, dtype=np.int8)
        labels[k[keep]] = lab[keep]
        return labels
    return None


def _labels_from_tags(folder: Path, t0_s: float, n_steps: int) -> np.ndarray | None:
    tags = sorted(folder.glob("tags*.csv"))
    if not tags:
        return None
    raw = np.atleast_1d(np.loadtxt(tags[0], delimiter=",", ndmin=1))
    end_s = t0_s + n_steps
    presses = raw[(raw >= t0_s) & (raw <= end_s)]
    tasks = TAG_TASKS.get(folder.name.upper(), DEFAULT_TAG_TASKS)
    if len(presses) < 2:
        return None
    labels = np.zeros(n_steps, dtype=np.int8)
    step_mid = t0_s + np.arange(n_steps) + 0.5
    for a, b in tasks:
        if b < len(presses):
            labels[(step_mid >= presses[a]) & (step_mid < presses[b])] = 1
    # After the last press the protocol's order is unknown.
    labels[step_mid >= presses[-1]] = -1
    return labels


def load_subject(folder: Path, motion_clean: bool = False) -> SubjectSteps:
    """Features, quality, labels and rest baseline of one E4 subject folder."""
    folder = Path(folder)
    t_bvp, r_bvp, bvp = read_e4_csv(folder / "BVP.csv")
    t_eda, r_eda, eda = read_e4_csv(folder / "EDA.csv")
    t_acc, r_acc, acc = read_e4_csv(folder / "ACC.csv")
    t0 = max(t_bvp, t_eda, t_acc)
    # The E4 files share a start second; trim any to a common start all the same.
    bvp = bvp[int(round((t0 - t_bvp) * r_bvp)):]
    eda = eda[int(round((t0 - t_eda) * r_eda)):]
    acc = acc[int(round((t0 - t_acc) * r_acc)):] / E4_ACC_PER_G
    # With motion_clean the accelerometer's axes clean the BVP before its beats are read, as
    # on the device; t0 places the cleaning windows on the clock the device's blocks carry.
    feats = step_features(bvp, r_bvp, eda, r_eda, acc, r_acc, t0_s=t0, motion_clean=motion_clean)
    n = len(feats.values)
    labels = _labels_from_csv(folder, t0, n)
    if labels is None:
        labels = _labels_from_tags(folder, t0, n)
    if labels is None:
        raise FileNotFoundError(f"{folder}: no labels*.csv with this subject and no tags*.csv")
    baseline = fit_rest_baseline(feats.values, feats.quality, labels, folder.name)
    return SubjectSteps(folder.name, t0, feats.values, feats.quality, labels, baseline)


def fit_rest_baseline(values, quality, labels, subject: str) -> Baseline:
    first_task = np.flatnonzero(labels == 1)
    end = int(first_task[0]) if len(first_task) else len(labels)
    rest = np.arange(int(BASELINE_SKIP_S), end)
    rest = rest[labels[rest] == 0]
    if len(rest) < 60:
        # S01's first task starts 79 s in: fall back to all its rest, recoveries included.
        rest = np.flatnonzero(labels == 0)
    if len(rest) < 60:
        raise ValueError(f"{subject}: only {len(rest)} s of rest to fit its baseline")
    return Baseline.fit(values[rest], quality[rest])


SETTINGS_KEY = "_settings/ppg_motion_clean"


def save_steps(subjects: list[SubjectSteps], path: Path, motion_clean: bool = False) -> None:
    arrays = {SETTINGS_KEY: np.array(bool(motion_clean))}
    for s in subjects:
        arrays[f"{s.subject}/values"] = s.values
        arrays[f"{s.subject}/quality"] = s.quality
        arrays[f"{s.subject}/labels"] = s.labels
        arrays[f"{s.subject}/t0_s"] = np.array(s.t0_s)
    np.savez_compressed(path, **arrays)


def load_steps(path: Path) -> list[SubjectSteps]:
    with np.load(path) as z:
        names = sorted({k.split("/")[0] for k in z.files if not k.startswith("_")})
        out = []
        for name in names:
            values, quality, labels = z[f"{name}/values"], z[f"{name}/quality"], z[f"{name}/labels"]
            out.append(SubjectSteps(name, float(z[f"{name}/t0_s"]), values, quality, labels,
                                    fit_rest_baseline(values, quality, labels, name)))
    return out


def motion_cleaned(path: Path) -> bool:
    """Whether a saved data set's beats were read from the motion-cleaned BVP."""
    with np.load(path) as z:
        return bool(z[SETTINGS_KEY]) if SETTINGS_KEY in z.files else False


def build(data_dir: Path, subjects: list[str] | None = None, progress: bool = True,
          motion_clean: bool = False) -> list[SubjectSteps]:
    from tqdm import tqdm

    folders = subject_folders(data_dir, subjects)
    return [load_subject(p, motion_clean)
            for p in tqdm(folders, desc="subjects", unit="subj", disable=not progress)]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, type=Path, help="folder of E4 subject folders")
    ap.add_argument("--out", required=True, type=Path, help="output .npz")
    ap.add_argument("--subjects", nargs="*", help="e.g. S02 S03 (default: all)")
    ap.add_argument("--motion-clean", action="store_true",
                    help="read beats from the BVP cleaned of motion with the ACC's axes")
    args = ap.parse_args(argv)
    subjects = build(args.data, args.subjects, motion_clean=args.motion_clean)
    save_steps(subjects, args.out, args.motion_clean)
    for s in subjects:
        known = s.labels >= 0
        print(f"{s.subject}: {len(s.labels)} s, stress {int((s.labels == 1).sum())} s, "
              f"rest {int((s.labels == 0).sum())} s, unlabelled {int((~known).sum())} s, "
              f"quality {float(np.mean(s.quality)):.2f}")
    print(f"wrote {args.out} ({len(subjects)} subjects, features {', '.join(FEATURE_NAMES)})")


if __name__ == "__main__":
    main()
