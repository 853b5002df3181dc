"""Where the physio model fails: its out-of-subject scores broken down by task and by time
since the last label change.

    python -m tools.physio.breakdown --cv cv.npz --data physio_steps.npz [--model device]

``--cv`` is what ``tools.physio.train --cv-predictions`` saved (each subject's sequence ends,
labels and scores from the fold that held it out); ``--data`` the dataset it was trained on
(``tools.physio.dataset``), for the label runs. A subject's label runs are taken in order:
the tasks as Stroop, interview, hyperventilation (Stress-Predict's protocol), the rests as
the one before the tasks and the ones after each task.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from tools.physio.dataset import load_steps
from tools.physio.sequences import auroc

TASKS = ("Stroop", "interview", "hyperventilation")
SINCE_CHANGE_S = ((0, 20), (20, 60), (60, 180), (180, None))


def label_runs(labels: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """(start index of each run of equal labels, its name: a task, ``rest 0`` before the
    tasks, ``rest k`` after task k, or ``unlabelled``)."""
    labels = np.asarray(labels)
    starts = np.concatenate(([0], np.flatnonzero(np.diff(labels) != 0) + 1))
    names, tasks_seen = [], 0
    for start in starts:
        if labels[start] == 1:
            names.append(TASKS[min(tasks_seen, len(TASKS) - 1)])
            tasks_seen += 1
        elif labels[start] == 0:
            names.append(f"rest {tasks_seen}")
        else:
            names.append("unlabelled")
    return starts, names


def breakdown(cv: dict, subjects, model: str = "device") -> list[tuple[str, float | None, int]]:
    """Rows of (comparison, AUROC, sequences)."""
    by_run: dict[str, list[float]] = {}
    since, y_all, p_all = [], [], []
    for s in subjects:
        if f"{s.subject}/ends" not in cv:
            continue
        ends, y, p = cv[f"{s.subject}/ends"], cv[f"{s.subject}/y"], cv[f"{s.subject}/{model}"]
        starts, names = label_runs(s.labels)
        run = np.searchsorted(starts, ends, side="right") - 1
        for k, score in zip(run, p):
            by_run.setdefault(names[k], []).append(float(score))
        since.append(ends - starts[run])
        y_all.append(y)
        p_all.append(p)

    def versus(positive: list[str], negative: list[str]) -> tuple[float | None, int]:
        pos = [v for name in positive for v in by_run.get(name, [])]
        neg = [v for name in negative for v in by_run.get(name, [])]
        y = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
        return auroc(y, np.r_[pos, neg]), len(y)

    rows = [(f"{task} vs the rest before the tasks", *versus([task], ["rest 0"])) for task in TASKS]
    rows.append(("all tasks vs the rest before the tasks", *versus(list(TASKS), ["rest 0"])))
    for k, task in enumerate(TASKS, start=1):
        rows.append((f"all tasks vs the rest after {task}", *versus(list(TASKS), [f"rest {k}"])))
    since, y_all, p_all = np.concatenate(since), np.concatenate(y_all), np.concatenate(p_all)
    for lo, hi in SINCE_CHANGE_S:
        keep = (since >= lo) & (since < (hi if hi is not None else np.inf))
        label = f"sequences ending {f'{lo}-{hi}' if hi else f'> {lo}'} s into their run"
        rows.append((label, auroc(y_all[keep], p_all[keep]), int(keep.sum())))
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cv", required=True, type=Path, help="train --cv-predictions output (.npz)")
    ap.add_argument("--data", required=True, type=Path, help="dataset .npz (tools.physio.dataset)")
    ap.add_argument("--model", default="device",
                    choices=("device", "float", "float32", "float16", "dynamic", "int8", "logreg"))
    args = ap.parse_args(argv)
    with np.load(args.cv) as z:
        cv = {k: z[k] for k in z.files}
    for name, value, n in breakdown(cv, load_steps(args.data), args.model):
        shown = "  -  " if value is None else f"{value:.3f}"
        print(f"{name:48} {shown}  (n {n})")


if __name__ == "__main__":
    main()
