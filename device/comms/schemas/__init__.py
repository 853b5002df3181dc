"""The JSON Schemas of everything painmon publishes and accepts (the public MQTT API).

``<name>.v<major>.schema.json`` describes payloads whose ``schema`` field is
``painmon.<name>/<major>``. The command schemas (``command.<name>.v1.schema.json``) are
generated from the commands' pydantic models by ``python -m tools.api_docs``; the others are
written by hand. Versioning: a major version only ever gains optional fields, so consumers
must ignore fields they do not know; removing, renaming or retyping a field, changing its unit
or meaning, or making it required is a new major version (a new file; the old one stays while
consumers move over).
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path

SCHEMA_DIR = Path(__file__).resolve().parent
_NAME = re.compile(r"^painmon\.(?P<name>[a-z_.]+)/(?P<major>\d+)$")


def command_schema_name(command: str, major: int = 1) -> str:
    return f"painmon.command.{command}/{major}"


def schema_file(schema_name: str) -> Path:
    """The file of ``painmon.<name>/<major>``; ValueError for a malformed name."""
    m = _NAME.match(schema_name)
    if m is None:
        raise ValueError(f"not a painmon schema name: {schema_name!r}")
    return SCHEMA_DIR / f"{m['name']}.v{m['major']}.schema.json"


@cache
def load(schema_name: str) -> dict:
    """The JSON Schema for ``painmon.<name>/<major>`` (FileNotFoundError when unknown)."""
    return json.loads(schema_file(schema_name).read_text(encoding="utf-8"))


def load_file(file_name: str) -> dict:
    return json.loads((SCHEMA_DIR / file_name).read_text(encoding="utf-8"))


def all_files() -> list[Path]:
    return sorted(SCHEMA_DIR.glob("*.schema.json"))
