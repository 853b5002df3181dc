"""UNBC-McMaster Shoulder Pain Expression Archive, frame level, in the archive's own layout.

Lucey, Cohn, Prkachin, Solomon & Matthews 2011, "Painful data: the UNBC-McMaster shoulder pain
expression archive database", IEEE FG. The archive is licensed to researchers by its holders
and is not shipped with painmon; users who hold it point the tools at its root:

    <root>/Images/<subject>/<sequence>/<frame>.png
    <root>/Frame_Labels/PSPI/<subject>/<sequence>/<frame>_facs.txt   one number, the PSPI 0..16
    <root>/Frame_Labels/FACS/<subject>/<sequence>/<frame>_facs.txt   one row per coded action:
                                                                     "AU intensity side side"

e.g. subject ``042-ll042``, sequence ``ll042t1aaaff``, frame ``ll042t1aaaff001``. The numbers are
written in scientific notation; an empty FACS file is a scored frame with no action. Coded AUs
are 4, 6, 7, 9, 10, 12, 20, 25, 26, 43 (intensities 0..5 on FACS A..E; AU43 0/1) and a few
others, kept as they are. Other folders of the archive (AAM_landmarks, Sequence_Labels) are not
read. ``write_frame`` writes one frame in the same layout (tests, and small derived sets).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


@dataclass(frozen=True)
class UnbcFrame:
    subject: str
    sequence: str
    frame: str
    image: Path
    pspi: float
    aus: dict[str, float] = field(default_factory=dict)  # "au4": 2.0, ...; absent = not coded 0


@dataclass(frozen=True)
class UnbcSet:
    root: Path
    frames: list[UnbcFrame]
    #: images without a PSPI label file (listed, not silently dropped)
    unlabelled: list[Path]

    def subjects(self) -> list[str]:
        return sorted({f.subject for f in self.frames})

    def sequences(self) -> dict[tuple[str, str], list[UnbcFrame]]:
        out: dict[tuple[str, str], list[UnbcFrame]] = {}
        for f in self.frames:
            out.setdefault((f.subject, f.sequence), []).append(f)
        return out


def _numbers(path: Path) -> list[list[float]]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ValueError(f"{path}: cannot be read ({exc})") from exc
    try:
        return [[float(x) for x in line.split()] for line in text.splitlines() if line.strip()]
    except ValueError as exc:
        raise ValueError(f"{path}: not a UNBC label file (numbers expected): {exc}") from exc


def read_pspi(path: Path) -> float:
    rows = _numbers(path)
    if len(rows) != 1 or len(rows[0]) != 1:
        raise ValueError(f"{path}: a PSPI label file holds one number, found {sum(map(len, rows))}")
    value = rows[0][0]
    if not (np.isfinite(value) and 0.0 <= value <= 16.0):
        raise ValueError(f"{path}: PSPI must be in 0..16, got {value}")
    return value


def read_facs(path: Path) -> dict[str, float]:
    out: dict[str, float] = {}
    for row in _numbers(path):
        if len(row) < 2:
            raise ValueError(f"{path}: FACS rows are 'AU intensity [side side]', got {row}")
        out[f"au{round(row[0])}"] = float(row[1])
    return out


def load(root: str | Path) -> UnbcSet:
    """Every labelled frame under ``root``, sorted by subject, sequence and frame."""
    root = Path(root)
    images, pspi_dir, facs_dir = root / "Images", root / "Frame_Labels" / "PSPI", root / "Frame_Labels" / "FACS"
    for needed in (images, pspi_dir):
        if not needed.is_dir():
            raise ValueError(f"{root}: not a UNBC-McMaster folder, {needed} is missing")
    frames, unlabelled = [], []
    for image in sorted(p for p in images.glob("*/*/*") if p.suffix.lower() in IMAGE_SUFFIXES):
        subject, sequence = image.parent.parent.name, image.parent.name
        label = pspi_dir / subject / sequence / f"{image.stem}_facs.txt"
        if not label.is_file():
            unlabelled.append(image)
            continue
        facs = facs_dir / subject / sequence / f"{image.stem}_facs.txt"
        aus = read_facs(facs) if facs.is_file() else {}
        frames.append(UnbcFrame(subject, sequence, image.stem, image, read_pspi(label), aus))
    if not frames:
        raise ValueError(f"{root}: no labelled frames (Images/<subject>/<sequence>/<frame>.png with "
                         f"Frame_Labels/PSPI/<subject>/<sequence>/<frame>_facs.txt)")
    return UnbcSet(root, frames, unlabelled)


def write_frame(root: str | Path, subject: str, sequence: str, frame: str, image: np.ndarray,
                pspi: float, aus: dict[str, float]) -> Path:
    """One frame, its PSPI and FACS labels, in the archive's layout (RGB uint8 image, PNG)."""
    from PIL import Image

    root = Path(root)
    out = root / "Images" / subject / sequence / f"{frame}.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(image, dtype=np.uint8)).save(out)
    for kind, lines in (("PSPI", [f"{pspi:.7e}"]),
                        ("FACS", [f"{float(k[2:]):.7e}   {v:.7e}   {0.0:.7e}   {0.0:.7e}"
                                  for k, v in aus.items() if v > 0])):
        path = root / "Frame_Labels" / kind / subject / sequence / f"{frame}_facs.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(f"   {line}\n" for line in lines))
    return out
