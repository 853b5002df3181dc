"""The face models' files: where they are expected and whether they are the pinned ones."""

from __future__ import annotations

from pathlib import Path

from models.hashing import sha256_of
from models.thirdparty import load_manifest

FETCH_HINT = "run `painmon fetch-models` to download and verify them"


class FaceModelsUnavailable(RuntimeError):
    """A face model file is missing or is not the pinned one; the face modality cannot start."""


def verify_model_files(model_dir: str | Path) -> dict[str, Path]:
    """Role ("face_detector", "face_landmarks", "emotion") -> verified path, or raise."""
    model_dir = Path(model_dir)
    paths: dict[str, Path] = {}
    problems = []
    for package in load_manifest()["packages"]:
        for entry in package["files"]:
            path = model_dir / entry["file"]
            if not path.is_file():
                problems.append(f"{path} is missing")
                continue
            actual = sha256_of(path)
            if actual != entry["sha256"]:
                problems.append(
                    f"{path} has sha256 {actual}, expected {entry['sha256']} "
                    f"({package['name']}=={package['version']}:{entry['wheel_path']})"
                )
                continue
            paths[entry["role"]] = path
    if problems:
        raise FaceModelsUnavailable("face models unavailable: " + "; ".join(problems) + f"; {FETCH_HINT}")
    return paths
