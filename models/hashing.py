"""The sha256 of a model file, read in chunks: how every pinned model is checked before loading
(the fetched face models against their manifest, the project's own against SHA256SUMS)."""

from __future__ import annotations

import hashlib
from pathlib import Path


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
