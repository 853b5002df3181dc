"""Self-reports: the patient's or nurse's own rating (NRS 0-10), kept with the moment's features.

Each report is one row of ``state_dir/selfreports.sqlite``: when, the rating, who gave it, the
fused score it is compared with (before any personal mapping) and the features of that moment
(the pain estimate with its contributions and each modality's full feature set) as JSON. The
rows are the labelled moments ``painmon export-labels`` writes for retraining.
"""

from __future__ import annotations

import csv
import json
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from device.config.paths import private_dir, private_file
from device.processing.state_files import OnDamaged, Step, check_sqlite, migrate

REPORTS_FILE = "selfreports.sqlite"
SOURCES = ("patient", "nurse")

SCHEMA_STEPS = (
    Step(("""CREATE TABLE IF NOT EXISTS reports (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        t TEXT NOT NULL,
        device_id TEXT NOT NULL,
        nrs INTEGER NOT NULL CHECK (nrs BETWEEN 0 AND 10),
        source TEXT NOT NULL CHECK (source IN ('patient', 'nurse')),
        fused_score REAL,
        features TEXT NOT NULL)""",)),
)


@dataclass(frozen=True)
class SelfReport:
    id: int
    t: str
    device_id: str
    nrs: int
    source: str
    fused_score: float | None
    features: dict

    def to_dict(self) -> dict:
        return {"id": self.id, "t": self.t, "device_id": self.device_id, "nrs": self.nrs,
                "source": self.source, "fused_score": self.fused_score, "features": self.features}


class SelfReportStore:
    """SQLite in WAL mode; one connection, guarded by a lock (the command thread writes, the
    processing loop reads). The file is created on the first report, not before."""

    def __init__(self, state_dir: Path, on_damaged: OnDamaged | None = None) -> None:
        self.path = Path(state_dir) / REPORTS_FILE
        check_sqlite(self.path, on_damaged)  # at start, not at the first report
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def _db(self, create: bool) -> sqlite3.Connection | None:
        if self._conn is None:
            if not create and not self.path.exists():
                return None
            private_file(private_dir(self.path.parent) / self.path.name)
            conn = sqlite3.connect(self.path, check_same_thread=False)
            try:  # kept only once set up: a full disk here is retried at the next report
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=FULL")  # a report is a clinical record
                migrate(conn, self.path, SCHEMA_STEPS)
            except sqlite3.Error:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    def add(self, t: str, device_id: str, nrs: int, source: str, fused_score: float | None,
            features: dict) -> SelfReport:
        if isinstance(nrs, bool) or not isinstance(nrs, int) or not 0 <= nrs <= 10:
            raise ValueError(f"self-report nrs must be an integer 0..10, got {nrs!r}")
        if source not in SOURCES:
            raise ValueError(f"self-report source must be one of {SOURCES}, got {source!r}")
        payload = json.dumps(features, separators=(",", ":"), allow_nan=False)
        with self._lock:
            db = self._db(create=True)
            try:
                cur = db.execute(
                    "INSERT INTO reports (t, device_id, nrs, source, fused_score, features) "
                    "VALUES (?, ?, ?, ?, ?, ?)", (t, device_id, nrs, source, fused_score, payload))
                db.commit()
            except sqlite3.Error:
                db.rollback()  # a failed report must not ride along with the next one
                raise
            row_id = int(cur.lastrowid)
        return SelfReport(row_id, t, device_id, nrs, source, fused_score, features)

    def reports(self) -> list[SelfReport]:
        with self._lock:
            db = self._db(create=False)
            if db is None:
                return []
            rows = db.execute("SELECT id, t, device_id, nrs, source, fused_score, features "
                              "FROM reports ORDER BY id").fetchall()
        return [SelfReport(r[0], r[1], r[2], r[3], r[4], r[5], json.loads(r[6])) for r in rows]

    def count(self) -> int:
        with self._lock:
            db = self._db(create=False)
            return 0 if db is None else int(db.execute("SELECT COUNT(*) FROM reports").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


def flat_features(report: SelfReport) -> dict[str, float | None]:
    """One column per number of the moment: the estimate's and each modality's features."""
    out: dict[str, float | None] = {}
    pain = report.features.get("pain") or {}
    for key in ("score", "raw_score", "confidence"):
        out[f"pain_{key}"] = pain.get(key)
    for modality, est in (report.features.get("modalities") or {}).items():
        if not isinstance(est, dict):
            continue
        out[f"{modality}_score"] = est.get("score")
        out[f"{modality}_confidence"] = est.get("confidence")
        for name, value in (est.get("features") or {}).items():
            out[f"{modality}_{name}"] = value
    return out


def export_labels(store: SelfReportStore, out: TextIO, fmt: str = "jsonl") -> int:
    """Write every labelled moment to ``out`` as JSON lines or CSV; returns the count."""
    reports = store.reports()
    if fmt == "jsonl":
        for r in reports:
            out.write(json.dumps(r.to_dict(), separators=(",", ":")) + "\n")
    elif fmt == "csv":
        rows = [{"id": r.id, "t": r.t, "device_id": r.device_id, "nrs": r.nrs, "source": r.source,
                 "fused_score": r.fused_score, **flat_features(r)} for r in reports]
        columns: list[str] = []
        for row in rows:
            columns += [k for k in row if k not in columns]
        writer = csv.DictWriter(out, fieldnames=columns or ["id"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    else:
        raise ValueError(f"export format must be jsonl or csv, got {fmt!r}")
    return len(reports)

