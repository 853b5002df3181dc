"""The committed physio model files are the ones trained and evaluated: their sha256 is
pinned in ``SHA256SUMS`` beside them (``sha256sum`` format) and checked before loading, as
the face models are checked against their manifest. A flipped byte can change the output
without any error from the runtime; here it stops the load, naming the file and both hashes.

After training a new model: ``python -m models.physio.integrity --write`` (and commit).
"""

from __future__ import annotations

import sys
from pathlib import Path

from models.hashing import sha256_of

MODEL_DIR = Path(__file__).resolve().parent
SUMS_FILE = "SHA256SUMS"
PINNED_SUFFIXES = (".tflite",)


class ModelIntegrityError(RuntimeError):
    """A model file is not the one pinned for it."""


def pinned(directory: Path) -> dict[str, str] | None:
    """File name -> sha256 from ``directory/SHA256SUMS``, or None without one."""
    sums = directory / SUMS_FILE
    if not sums.is_file():
        return None
    out = {}
    for line in sums.read_text().splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            out[name.lstrip("*")] = digest.lower()
    return out


def verify_model(path: str | Path) -> Path:
    """``path`` if it is the pinned file; a model among the committed ones must be pinned,
    one elsewhere is checked when a SHA256SUMS sits beside it (a training run's output)."""
    path = Path(path).resolve()
    sums = pinned(path.parent)
    committed = path.parent == MODEL_DIR
    if sums is None:
        if committed:
            raise ModelIntegrityError(f"{path}: no {SUMS_FILE} beside it to check it against")
        return path
    expected = sums.get(path.name)
    if expected is None:
        if committed:
            raise ModelIntegrityError(f"{path}: not listed in {path.parent / SUMS_FILE}")
        return path
    actual = sha256_of(path)
    if actual != expected:
        raise ModelIntegrityError(f"{path} has sha256 {actual}, expected {expected} "
                                  f"({path.parent / SUMS_FILE}); the file was changed")
    return path


def write_sums(directory: Path = MODEL_DIR) -> Path:
    files = sorted(p for p in directory.iterdir() if p.suffix in PINNED_SUFFIXES)
    target = directory / SUMS_FILE
    target.write_text("".join(f"{sha256_of(p)}  {p.name}\n" for p in files))
    return target


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python -m models.physio.integrity --write")
    print(write_sums())
