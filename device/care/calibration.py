"""Per-patient calibration: a neutral face and resting physiology, recorded on request and kept
in the state directory so a restart (power cut, update) does not forget the patient.

The file is replaced atomically (temp file in the same directory, fsync, rename, fsync of the
directory): after a power cut it holds either the old calibration or the new one, never half.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from device.config.paths import private_dir
from device.processing.envelope import utc_iso
from device.processing.state_files import OnDamaged, StateFileError, check_json

log = logging.getLogger(__name__)

CALIBRATION_SCHEMA = "painmon.calibration/1"
CALIBRATION_FILE = "calibration.json"
# The physio baseline needs this many one-second feature steps (Baseline.fit's default).
MIN_PHYSIO_S = 30.0
# The neutral face is the median of the faces seen; ask for half the frames of the period so a
# few seconds out of view still complete it.
FACE_FRAME_SHARE = 0.5


def atomic_write_json(path: Path, data: dict) -> None:
    path = Path(path)
    private_dir(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class CalibrationStore:
    """``state_dir/calibration.json``: {"face": NeutralBaseline dict, "physio": Baseline dict,
    "mapping": PersonalMapping dict, each with its time}; parts are updated independently."""

    def __init__(self, state_dir: Path, on_damaged: OnDamaged | None = None) -> None:
        self.path = Path(state_dir) / CALIBRATION_FILE
        check_json(self.path, on_damaged, valid=self._valid)

    def _valid(self, data: object) -> str | None:
        """Why ``data`` is not a calibration this release wrote; a newer release's stops the
        start (kept for that release, never set aside as damaged)."""
        schema = data.get("schema") if isinstance(data, dict) else None
        if schema == CALIBRATION_SCHEMA:
            return None
        name, _, major = str(schema).rpartition("/")
        if name == CALIBRATION_SCHEMA.rpartition("/")[0] and major.isdigit() and int(major) > 1:
            raise StateFileError(f"state file {self.path} has schema {schema}, written by a newer "
                                 "painmon that this one cannot read; start that release again, "
                                 "or move the file away to start uncalibrated")
        return f"no {CALIBRATION_SCHEMA} schema"

    def load(self) -> dict:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning("calibration file %s unreadable, starting uncalibrated: %s", self.path, exc)
            return {}
        if not isinstance(data, dict) or data.get("schema") != CALIBRATION_SCHEMA:
            log.warning("calibration file %s has no %s schema; ignored", self.path, CALIBRATION_SCHEMA)
            return {}
        return data

    def save(self, **parts: dict | None) -> dict:
        """Replace the given parts (None removes one), keep the others."""
        data = self.load() or {"schema": CALIBRATION_SCHEMA}
        now = utc_iso(timespec="seconds")
        for name, value in parts.items():
            if value is None:
                data.pop(name, None)
            else:
                data[name] = {**value, "saved_t": now}
        atomic_write_json(self.path, data)
        return data


@dataclass
class CalibrationRun:
    started_ns: int
    duration_s: float
    face_started: bool
    previous_face: dict | None
    physio_steps: int = 0

    def remaining_s(self, now_ns: int) -> float:
        return max(0.0, self.duration_s - (now_ns - self.started_ns) / 1e9)


class PatientCalibration:
    """Starts, finishes and restores a patient's calibration on the live estimators.

    ``face`` is the FaceWorker (its estimator appears once the camera thread opened the models),
    ``physio`` the PhysioStage; either may be None.
    """

    def __init__(self, store: CalibrationStore, face=None, physio=None, face_fps: float = 10.0) -> None:
        self.store = store
        self.face = face
        self.physio = physio
        self.face_fps = face_fps
        self.run: CalibrationRun | None = None
        self.last_result: dict | None = None
        self.saved = store.load()
        self._face_restored = False
        self._restore_physio()

    # -- restore -----------------------------------------------------------------------------
    def _restore_physio(self) -> None:
        from models.physio.features import Baseline

        part = self.saved.get("physio")
        if part is None or self.physio is None:
            return
        try:
            self.physio.estimator.baseline = Baseline.from_dict(part)
            log.info("physio rest baseline restored from %s", self.store.path)
        except ValueError as exc:
            log.warning("stored physio baseline ignored: %s", exc)

    def _face_estimator(self):
        return None if self.face is None else getattr(self.face, "estimator", None)

    def restore_face(self) -> None:
        """Apply the stored neutral face once the face estimator exists (call on every hop)."""
        estimator = self._face_estimator()
        if self._face_restored or estimator is None:
            return
        self._face_restored = True
        part = self.saved.get("face")
        if part is None or estimator.calibrating:
            return
        try:
            estimator.set_neutral({k: v for k, v in part.items() if k != "saved_t"})
            log.info("neutral face restored from %s", self.store.path)
        except ValueError as exc:
            log.warning("stored neutral face ignored: %s", exc)

    @property
    def calibrated(self) -> dict[str, bool]:
        estimator = self._face_estimator()
        physio_ok = self.physio is not None and self.physio.estimator.baseline is not None
        face_ok = bool(estimator is not None and estimator.calibrated) or (
            estimator is None and "face" in self.saved)
        return {"face": face_ok, "physio": physio_ok}

    def physio_rest(self) -> dict | None:
        if self.physio is None or self.physio.estimator.baseline is None:
            return None
        return self.physio.estimator.baseline.centers

    # -- a run -------------------------------------------------------------------------------
    def start(self, now_ns: int, duration_s: float) -> dict:
        if duration_s < MIN_PHYSIO_S and self.physio is not None:
            raise ValueError(f"duration_s must be >= {MIN_PHYSIO_S:g} s for the resting "
                             f"physiology, got {duration_s:g}")
        if self.run is not None:
            raise RuntimeError(f"a calibration is already running "
                               f"({self.run.remaining_s(now_ns):.0f} s left)")
        estimator = self._face_estimator()
        previous = None
        if estimator is not None:
            previous = estimator.neutral.to_dict() if estimator.calibrated else None
            estimator.start_calibration(max(5, round(FACE_FRAME_SHARE * duration_s * self.face_fps)))
        self.run = CalibrationRun(now_ns, float(duration_s), estimator is not None, previous)
        log.info("calibration started for %.0f s: keep the patient at rest, face relaxed", duration_s)
        return {"state": "running", "duration_s": duration_s, "face": estimator is not None,
                "physio": self.physio is not None}

    def tick(self, now_ns: int) -> dict | None:
        """Finish the run when its time is up; returns the result then, else None."""
        run = self.run
        if run is None or run.remaining_s(now_ns) > 0:
            return None
        # Hops skipped under load leave fewer feature steps than seconds: wait for enough of
        # them, up to twice the asked duration.
        overdue_s = (now_ns - run.started_ns) / 1e9 - run.duration_s
        if self.physio is not None and run.physio_steps < MIN_PHYSIO_S and overdue_s < run.duration_s:
            return None
        self.run = None
        result: dict = {"state": "done", "duration_s": run.duration_s}
        parts: dict = {}
        estimator = self._face_estimator()
        if run.face_started and estimator is not None:
            if estimator.calibrating:  # too few faces seen: keep the previous neutral face
                estimator.set_neutral(run.previous_face)
                result["face"] = "failed: too few frames with a face"
            else:
                parts["face"] = estimator.neutral.to_dict()
                result["face"] = "ok"
        else:
            result["face"] = "unavailable"
        if self.physio is not None:
            try:
                # Only the steps computed during the run (one per second) are the rest.
                baseline = self.physio.estimator.calibrate(last_s=float(run.physio_steps))
                parts["physio"] = baseline.to_dict()
                result["physio"] = "ok"
            except ValueError as exc:
                result["physio"] = f"failed: {exc}"
        else:
            result["physio"] = "unavailable"
        if parts:
            self.saved = self.store.save(**parts)
        log.info("calibration finished: face %s, physio %s", result["face"], result["physio"])
        self.last_result = result
        return result

    def note_physio_step(self) -> None:
        """One new physio feature step was computed (call once per hop that had new data)."""
        if self.run is not None:
            self.run.physio_steps += 1

    def save_mapping(self, mapping: dict | None) -> None:
        self.saved = self.store.save(mapping=mapping)

    def status(self, now_ns: int) -> dict:
        out: dict = {"calibrated": self.calibrated}
        if self.run is not None:
            out["running"] = {"remaining_s": round(self.run.remaining_s(now_ns), 1)}
        if self.last_result is not None:
            out["last"] = self.last_result
        return out
