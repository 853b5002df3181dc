"""Reading recordings back as what the sensors would have delivered: ``SampleBlock``s per
painmon channel on a monotonic time line, plus the events recorded beside them.

- painmon's own EDF+ segments (one ``.edf``, or a folder of rotated ones) with their
  ``.events.jsonl`` sidecars. A segment whose file was never closed (power cut) still says
  ``-1`` data records in its header; it is read through a repaired copy, its record count
  taken from the file's size.
- Empatica E4 CSV folders (``BVP.csv``, ``EDA.csv``, ``ACC.csv``; first row the start time in
  unix seconds, second row the rate, then samples; ACC in 1/64 g).
- IEEE SPC 2015 ``.mat`` files (``sig``: 6 rows ECG, PPG1, PPG2, acc x/y/z in the training
  layout, 5 rows without the ECG in the test layout; 125 Hz).
- WFDB records (MIT-BIH and other PhysioNet ECG databases), through the ``wfdb`` package.

External formats are mapped onto painmon's channel names (``ppg_green``, ``ecg`` in mV,
``eda`` in uS, ``acc_x/y/z`` in g), starting at t = 0.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sensors.types import SampleBlock

from device.recording.writer import T0_PREFIX

log = logging.getLogger(__name__)

SPC_RATE_HZ = 125.0
E4_FILES = {"BVP.csv": ("ppg_green", "au"), "EDA.csv": ("eda", "uS"), "ACC.csv": ("acc", "g")}


@dataclass
class Recording:
    """Channels as blocks on the recording's monotonic time line, and its events."""

    name: str
    source: str  # "painmon" | "e4" | "spc2015" | "wfdb"
    blocks: dict[str, list[SampleBlock]] = field(default_factory=dict)
    events: list[dict] = field(default_factory=list)  # sidecar lines: t_ns, topic, message

    def add(self, block: SampleBlock) -> None:
        if len(block):
            self.blocks.setdefault(block.channel, []).append(block)

    @property
    def start_ns(self) -> int:
        return min(b[0].t0_ns for b in self.blocks.values())

    @property
    def end_ns(self) -> int:
        return max(b[-1].t_end_ns for b in self.blocks.values())

    @property
    def duration_s(self) -> float:
        return (self.end_ns - self.start_ns) / 1e9

    def messages(self, topic: str) -> list[dict]:
        return [e for e in self.events if e.get("topic") == topic]


def open_recording(path: str | Path) -> Recording:
    """Whatever ``path`` holds, as a ``Recording``; a clear error when it is none of them."""
    path = Path(path)
    if not path.exists() and not path.with_suffix(".hea").exists():
        raise ValueError(f"recording {path} does not exist")
    if path.is_dir():
        if sorted(path.glob("*.edf")):
            return read_painmon(path)
        if any((path / name).exists() for name in E4_FILES):
            return read_e4(path)
        heads = sorted(path.glob("*.hea"))
        if len(heads) == 1:
            return read_wfdb(heads[0].with_suffix(""))
        raise ValueError(f"{path}: no painmon .edf files, E4 CSVs (BVP/EDA/ACC.csv) or single "
                         "WFDB record in this folder")
    suffix = path.suffix.lower()
    if suffix == ".edf":
        return read_painmon(path)
    if suffix == ".mat":
        return read_spc2015(path)
    if suffix in (".hea", ".dat", "") or path.with_suffix(".hea").exists():
        return read_wfdb(path.with_suffix(""))
    raise ValueError(f"{path}: not a recording painmon reads (.edf, E4 folder, SPC 2015 .mat, "
                     "WFDB record)")


# -- painmon EDF+ ----------------------------------------------------------------------------
def _repaired(path: Path, workdir: Path) -> Path:
    """A copy of an unclosed EDF+ (``-1`` data records) with the count of complete records."""
    raw = path.read_bytes()
    if raw[236:244].strip() != b"-1":
        return path
    n_signals = int(raw[252:256])
    header_bytes = 256 + 256 * n_signals
    spr_at = 256 + n_signals * 216
    spr = [int(raw[spr_at + 8 * i: spr_at + 8 * i + 8]) for i in range(n_signals)]
    record_bytes = 2 * sum(spr)
    n_records = (len(raw) - header_bytes) // record_bytes
    if n_records < 1:
        raise ValueError(f"{path}: unclosed and holds no complete data record")
    log.warning("%s was not closed (power cut?): reading its %d complete records",
                path.name, n_records)
    fixed = workdir / path.name
    fixed.write_bytes(raw[:236] + f"{n_records:<8d}".encode() + raw[244:header_bytes]
                      + raw[header_bytes:header_bytes + n_records * record_bytes])
    return fixed


def _read_events(path: Path) -> list[dict]:
    if not path.exists():
        return []
    events = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            try:
                events.append(json.loads(line))
            except ValueError:  # the tail of a line cut by a power loss
                log.warning("%s:%d: unreadable event line skipped", path.name, n)
    return events


def read_painmon(path: Path) -> Recording:
    import pyedflib

    files = sorted(path.glob("*.edf")) if path.is_dir() else [path]
    if not files:
        raise ValueError(f"{path}: no .edf files")
    rec = Recording(path.stem if path.is_file() else path.name, "painmon")
    with tempfile.TemporaryDirectory(prefix="painmon-edf-") as tmp:
        for file in files:
            sidecar = file.with_name(file.stem + ".events.jsonl")
            events = _read_events(sidecar)
            rec.events.extend(events)
            try:
                reader = pyedflib.EdfReader(str(_repaired(file, Path(tmp))))
            except OSError as exc:
                raise ValueError(f"{file}: not a readable EDF+ file ({exc})") from None
            try:
                t0_ns = _segment_t0_ns(reader, events, file)
                gaps = [e["message"] for e in events
                        if (e.get("message") or {}).get("event") == "gap"]
                for i, label in enumerate(reader.getSignalLabels()):
                    block = SampleBlock(label, float(reader.getSampleFrequency(i)), t0_ns,
                                        reader.readSignal(i), reader.getPhysicalDimension(i))
                    for piece in without_gaps(block, [g for g in gaps if g["channel"] == label]):
                        rec.add(piece)
            finally:
                reader.close()
    rec.events.sort(key=lambda e: e.get("t_ns", 0))
    return rec


def without_gaps(block: SampleBlock, gaps: list[dict]) -> list[SampleBlock]:
    """``block`` without the samples the recorder filled in for acquisition gaps, so a
    replay sees the gaps the live pipeline saw."""
    if not gaps:
        return [block]
    keep = np.ones(len(block), dtype=bool)
    for gap in gaps:
        i0 = round((int(gap["from_ns"]) - block.t0_ns) * block.rate_hz / 1e9)
        keep[max(i0, 0):max(i0 + int(gap["samples"]), 0)] = False
    edges = np.flatnonzero(np.diff(np.concatenate([[0], keep.astype(np.int8), [0]])))
    return [SampleBlock(block.channel, block.rate_hz,
                        block.t0_ns + round(start * 1e9 / block.rate_hz),
                        block.samples[start:stop], block.unit)
            for start, stop in zip(edges[::2], edges[1::2])]


def _segment_t0_ns(reader, events: list[dict], file: Path) -> int:
    for text in reader.readAnnotations()[2]:
        if text.startswith(T0_PREFIX):
            return int(text[len(T0_PREFIX):])
    for e in events:
        if (e.get("message") or {}).get("event") == "segment_start":
            return int(e["message"]["t0_ns"])
    raise ValueError(f"{file}: no '{T0_PREFIX}' annotation and no sidecar: not a painmon EDF+")


# -- external formats ------------------------------------------------------------------------
def _triaxial(rec: Recording, xyz: np.ndarray, rate_hz: float, t0_ns: int, unit: str) -> None:
    for axis, column in zip("xyz", np.asarray(xyz, dtype=float)):
        rec.add(SampleBlock(f"acc_{axis}", rate_hz, t0_ns, column, unit))


def read_e4_csv(path: Path) -> tuple[float, float, np.ndarray]:
    """One E4 CSV file: (start, unix s; rate, Hz; samples (N, columns) as stored)."""
    try:
        raw = np.loadtxt(path, delimiter=",", ndmin=2)
    except ValueError as exc:
        raise ValueError(f"{path}: not an E4 CSV ({exc})") from None
    if raw.shape[0] < 3 or not raw[1, 0] > 0:
        raise ValueError(f"{path}: needs a start-time row, a rate row (> 0 Hz) and samples")
    return float(raw[0, 0]), float(raw[1, 0]), raw[2:]


def read_mat(path: Path, key: str) -> np.ndarray:
    """Variable ``key`` of a MATLAB file as a float array; a clear error for anything else."""
    try:
        from scipy.io import loadmat
    except ImportError:
        raise ValueError(f"{path}: reading MATLAB files needs scipy "
                         "(pip install 'painmon[replay]')") from None
    try:
        content = loadmat(path)
    except Exception as exc:  # noqa: BLE001 - scipy raises several types for a bad file
        raise ValueError(f"{path}: not a readable MATLAB file ({exc})") from None
    if key not in content:
        found = sorted(k for k in content if not k.startswith("__"))
        raise ValueError(f"{path}: has no variable {key!r} (found {found})")
    return np.asarray(content[key], dtype=float)


def read_e4(directory: Path) -> Recording:
    rec = Recording(directory.name, "e4")
    tables: dict[str, tuple[float, float, np.ndarray, str]] = {}
    for name, (channel, unit) in E4_FILES.items():
        path = directory / name
        if path.exists():
            tables[channel] = (*read_e4_csv(path), unit)
    if not tables:
        raise ValueError(f"E4 folder {directory}: none of BVP.csv, EDA.csv, ACC.csv")
    start_s = min(t[0] for t in tables.values())
    for channel, (t_start_s, rate, samples, unit) in tables.items():
        t0_ns = round((t_start_s - start_s) * 1e9)
        if channel == "acc":
            _triaxial(rec, samples.T / 64.0, rate, t0_ns, unit)  # E4 ACC: 1/64 g per count
        elif channel == "ppg_green":
            # BVP rises with blood volume; reflectance counts (what painmon's PPG is) fall.
            rec.add(SampleBlock(channel, rate, t0_ns, -samples[:, 0], unit))
        else:
            rec.add(SampleBlock(channel, rate, t0_ns, samples[:, 0], unit))
    return rec


def read_spc2015(path: Path) -> Recording:
    sig = read_mat(path, "sig")
    if sig.ndim != 2 or sig.shape[0] not in (5, 6):
        raise ValueError(f"{path}: sig must be 6 x N (ECG, PPG1, PPG2, acc) or 5 x N, got {sig.shape}")
    rec = Recording(path.stem, "spc2015")
    if sig.shape[0] == 6:
        rec.add(SampleBlock("ecg", SPC_RATE_HZ, 0, sig[0], "mV"))
        sig = sig[1:]
    rec.add(SampleBlock("ppg_green", SPC_RATE_HZ, 0, -sig[0], "au"))  # PPG1: 515 nm (green)
    _triaxial(rec, sig[2:5], SPC_RATE_HZ, 0, "g")
    return rec


def read_wfdb(record: Path) -> Recording:
    try:
        import wfdb
    except ImportError:
        raise ValueError(f"{record}: reading WFDB records needs the wfdb package "
                         "(pip install 'painmon[replay]')") from None
    if not record.with_suffix(".hea").exists():
        raise ValueError(f"WFDB record {record}: header {record.name}.hea missing")
    data = wfdb.rdrecord(str(record))
    names = [n.upper() for n in data.sig_name]
    lead = names.index("MLII") if "MLII" in names else 0
    units = (data.units or ["mV"])[lead]
    ecg = np.asarray(data.p_signal[:, lead], dtype=float)
    if units.lower() in ("uv", "µv"):
        ecg = ecg / 1000.0
    rec = Recording(record.name, "wfdb")
    rec.add(SampleBlock("ecg", float(data.fs), 0, np.nan_to_num(ecg), "mV"))
    return rec

