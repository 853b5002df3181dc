"""Stays: one patient's time on the device, from admission to discharge, and everything
personal that belongs to it.

``state_dir/stays.sqlite`` lists the stays (pseudonymous reference, optional bed label,
admitted and discharged times) with each stay's observational scale scores and analgesia
doses. Each stay also has a folder, ``state_dir/stays/<id>/``, holding its calibration
(``calibration.json``: neutral face, rest baseline, personal mapping) and its self-reports
(``selfreports.sqlite``), written by the same stores as before stays existed. So nothing
personal lives outside a stay, and deleting a stay is deleting its rows and its folder.

At most one stay is open (admitted, not discharged). Discharge closes it; a closed stay is kept
``care.retention_days`` for export, then deleted (``purge``).

The reference is a pseudonym from the ward's system (e.g. an encounter number), never a name:
``REFERENCE_RULE`` - 3 to 32 letters, digits, ``-`` or ``_``, starting with a letter or digit
and holding at least one digit. A name has a space ("Jane Doe") or no digit ("JaneDoe"), so
it is refused; a label the ward made up like "bed4-0312" passes.
"""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

from device.processing.envelope import utc_iso
from device.processing.state_files import Step, migrate

STAYS_FILE = "stays.sqlite"
STAYS_DIR = "stays"
REFERENCE_PATTERN = re.compile(r"^(?=.*[0-9])[A-Za-z0-9][A-Za-z0-9_-]{2,31}$")
REFERENCE_RULE = ("3-32 letters, digits, '-' or '_', at least one digit (a pseudonym, "
                  "never a name)")
BED_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,15}$")
BED_RULE = "1-16 letters, digits, spaces, '.', '_' or '-'"
DRUG_CLASSES = ("opioid", "nsaid", "paracetamol", "metamizole", "ketamine",
                "local_anaesthetic", "other")

SCHEMA_STEPS = (
    Step(("""CREATE TABLE IF NOT EXISTS stays (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            reference TEXT NOT NULL,
            bed TEXT,
            admitted_t TEXT NOT NULL,
            admitted_s REAL NOT NULL,
            discharged_t TEXT,
            discharged_s REAL
        )""",
          """CREATE TABLE IF NOT EXISTS scale_scores (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            stay_id INTEGER NOT NULL REFERENCES stays(id) ON DELETE CASCADE,
            t TEXT NOT NULL,
            scale TEXT NOT NULL CHECK (scale IN ('painad', 'cpot')),
            items TEXT NOT NULL,
            total INTEGER NOT NULL,
            score_0_10 REAL NOT NULL,
            fused_score REAL,
            features TEXT NOT NULL
        )""",
          """CREATE TABLE IF NOT EXISTS doses (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            stay_id INTEGER NOT NULL REFERENCES stays(id) ON DELETE CASCADE,
            t TEXT NOT NULL,
            given_s REAL NOT NULL,
            route TEXT,
            drug_class TEXT,
            due_s REAL NOT NULL,
            score_before REAL,
            reassessed_t TEXT,
            score_after REAL,
            reassessed_by TEXT
        )""")),
)


def check_reference(reference: str) -> str:
    if not isinstance(reference, str) or not REFERENCE_PATTERN.match(reference):
        raise ValueError(f"reference must be {REFERENCE_RULE}, got {str(reference)[:40]!r}")
    return reference


@dataclass(frozen=True)
class Stay:
    id: int
    reference: str
    bed: str | None
    admitted_t: str
    admitted_s: float
    discharged_t: str | None = None
    discharged_s: float | None = None

    @property
    def open(self) -> bool:
        return self.discharged_t is None

    @property
    def key(self) -> str:
        """Unique across stays, even after the stays' database was deleted and ids restart."""
        return f"{self.id}@{self.admitted_t}"

    def to_dict(self) -> dict:
        return {"stay_id": self.id, "reference": self.reference, "bed": self.bed,
                "admitted_t": self.admitted_t, "discharged_t": self.discharged_t}


@dataclass(frozen=True)
class ScaleScore:
    id: int
    stay_id: int
    t: str
    scale: str
    items: dict
    total: int
    score_0_10: float
    fused_score: float | None
    features: dict

    def to_dict(self) -> dict:
        return {"id": self.id, "t": self.t, "scale": self.scale, "items": self.items,
                "total": self.total, "score_0_10": self.score_0_10,
                "fused_score": self.fused_score, "features": self.features}


@dataclass(frozen=True)
class Dose:
    id: int
    stay_id: int
    t: str
    given_s: float
    route: str | None
    drug_class: str | None
    due_s: float
    score_before: float | None
    reassessed_t: str | None = None
    score_after: float | None = None
    reassessed_by: str | None = None

    def to_dict(self) -> dict:
        return {"dose_id": self.id, "t": self.t, "route": self.route,
                "drug_class": self.drug_class, "score_before": self.score_before,
                "reassessed_t": self.reassessed_t, "score_after": self.score_after,
                "reassessed_by": self.reassessed_by}


_STAY_COLUMNS = "id, reference, bed, admitted_t, admitted_s, discharged_t, discharged_s"
_DOSE_COLUMNS = ("id, stay_id, t, given_s, route, drug_class, due_s, score_before, "
                 "reassessed_t, score_after, reassessed_by")


class StayStore:
    """SQLite in WAL mode, one connection behind a lock (commands and the hop both use it)."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = Path(state_dir)
        self.path = self.state_dir / STAYS_FILE
        self._lock = threading.RLock()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(self.path, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")  # admissions and doses are records
        self._conn.execute("PRAGMA foreign_keys=ON")
        migrate(self._conn, self.path, SCHEMA_STEPS)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def directory(self, stay: Stay) -> Path:
        """The stay's own folder (calibration, self-reports)."""
        return self.state_dir / STAYS_DIR / str(stay.id)

    # -- stays -------------------------------------------------------------------------------
    def open_stay(self) -> Stay | None:
        with self._lock:
            row = self._conn.execute(f"SELECT {_STAY_COLUMNS} FROM stays WHERE discharged_t IS "
                                     "NULL ORDER BY id DESC LIMIT 1").fetchone()
        return None if row is None else Stay(*row)

    def stays(self, reference: str | None = None) -> list[Stay]:
        query, args = f"SELECT {_STAY_COLUMNS} FROM stays", ()
        if reference is not None:
            query, args = query + " WHERE reference = ?", (reference,)
        with self._lock:
            rows = self._conn.execute(query + " ORDER BY id", args).fetchall()
        return [Stay(*r) for r in rows]

    def admit(self, reference: str, bed: str | None, now_s: float) -> Stay:
        check_reference(reference)
        if bed is not None and not BED_PATTERN.match(bed):
            raise ValueError(f"bed must be {BED_RULE}, got {bed[:40]!r}")
        with self._lock:
            current = self.open_stay()
            if current is not None:
                raise RuntimeError(f"stay {current.reference!r} is still open: discharge it first")
            t = utc_iso()
            cur = self._conn.execute(
                "INSERT INTO stays (reference, bed, admitted_t, admitted_s) VALUES (?, ?, ?, ?)",
                (reference, bed, t, now_s))
            self._conn.commit()
            stay = Stay(int(cur.lastrowid), reference, bed, t, now_s)
        # A folder left by a deleted database must not leak into the new stay.
        shutil.rmtree(self.directory(stay), ignore_errors=True)
        self.directory(stay).mkdir(parents=True)
        return stay

    def discharge(self, stay: Stay, now_s: float) -> Stay:
        t = utc_iso()
        with self._lock:
            self._conn.execute("UPDATE stays SET discharged_t = ?, discharged_s = ? WHERE id = ?",
                               (t, now_s, stay.id))
            self._conn.commit()
        return Stay(stay.id, stay.reference, stay.bed, stay.admitted_t, stay.admitted_s, t, now_s)

    def purge(self, now_s: float, retention_s: float) -> list[Stay]:
        """Delete the stays discharged more than ``retention_s`` ago, rows and folder."""
        with self._lock:
            rows = self._conn.execute(f"SELECT {_STAY_COLUMNS} FROM stays WHERE discharged_s "
                                      "IS NOT NULL AND discharged_s < ?",
                                      (now_s - retention_s,)).fetchall()
            gone = [Stay(*r) for r in rows]
            for stay in gone:
                shutil.rmtree(self.directory(stay), ignore_errors=True)
                self._conn.execute("DELETE FROM stays WHERE id = ?", (stay.id,))
            self._conn.commit()
        return gone

    # -- scale scores ------------------------------------------------------------------------
    def add_scale(self, stay: Stay, scale: str, items: dict, total: int, score_0_10: float,
                  fused_score: float | None, features: dict) -> ScaleScore:
        t = utc_iso()
        payload = json.dumps(features, separators=(",", ":"), allow_nan=False)
        with self._lock:
            cur = self._conn.execute(
                "INSERT INTO scale_scores (stay_id, t, scale, items, total, score_0_10, "
                "fused_score, features) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (stay.id, t, scale, json.dumps(items), total, score_0_10, fused_score, payload))
            self._conn.commit()
        return ScaleScore(int(cur.lastrowid), stay.id, t, scale, items, total, score_0_10,
                          fused_score, features)

    def scale_scores(self, stay: Stay) -> list[ScaleScore]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT id, stay_id, t, scale, items, total, score_0_10, fused_score, features "
                "FROM scale_scores WHERE stay_id = ? ORDER BY id", (stay.id,)).fetchall()
        return [ScaleScore(r[0], r[1], r[2], r[3], json.loads(r[4]), r[5], r[6], r[7],
                           json.loads(r[8])) for r in rows]

    # -- analgesia ---------------------------------------------------------------------------
    def add_dose(self, stay: Stay, given_s: float, route: str | None, drug_class: str | None,
                 due_s: float, score_before: float | None) -> Dose:
        t = utc_iso()
        with self._lock:
            cur = self._conn.execute(
                "INSERT INTO doses (stay_id, t, given_s, route, drug_class, due_s, score_before) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (stay.id, t, given_s, route, drug_class, due_s, score_before))
            self._conn.commit()
        return Dose(int(cur.lastrowid), stay.id, t, given_s, route, drug_class, due_s,
                    score_before)

    def doses(self, stay: Stay, *, pending: bool = False) -> list[Dose]:
        query = f"SELECT {_DOSE_COLUMNS} FROM doses WHERE stay_id = ?"
        if pending:
            query += " AND reassessed_t IS NULL"
        with self._lock:
            rows = self._conn.execute(query + " ORDER BY id", (stay.id,)).fetchall()
        return [Dose(*r) for r in rows]

    def reassess(self, dose: Dose, score_after: float | None, by: str) -> Dose:
        t = utc_iso()
        with self._lock:
            self._conn.execute("UPDATE doses SET reassessed_t = ?, score_after = ?, "
                               "reassessed_by = ? WHERE id = ?", (t, score_after, by, dose.id))
            self._conn.commit()
        return Dose(dose.id, dose.stay_id, dose.t, dose.given_s, dose.route, dose.drug_class,
                    dose.due_s, dose.score_before, t, score_after, by)
