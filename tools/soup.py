"""The SOUP list (IEC 62304 5.3.3/8.1.2: software of unknown provenance): every runtime
dependency of the device with its installed version and its purpose.

    python -m tools.soup [--extras camera,record] [--write README.md]

Runtime means what runs on the device: ``[project] dependencies`` and the extras a device
installs (``DEVICE_EXTRAS``, as tools/install-pi.sh does), plus what those require in turn
(resolved from the installed packages' metadata). Versions come from the environment it runs
in: run it in the device's venv (/opt/painmon/venv) for the device's list. A dependency
without a purpose below is an error, so a new dependency cannot slip in undocumented.
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from collections import deque
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEVICE_EXTRAS = ("camera", "record")
BEGIN, END = "<!-- soup:start", "<!-- soup:end -->"

#: Why each direct runtime dependency is there, and what painmon uses it for.
PURPOSE = {
    "numpy": "arrays for every signal: SampleBlocks, filters, features",
    "smbus2": "I2C transactions to the MAX3010x, MPU-6050 and ADS1115",
    "spidev": "SPI transactions to the MCP3008 and ADS1292R",
    "gpiozero": "GPIO: data-ready, lead-off, alarm LEDs/buzzer, buttons",
    "paho-mqtt": "the MQTT 5 client that publishes estimates and receives commands",
    "pydantic": "configuration and command validation",
    "opencv-python-headless": "camera sources: V4L2 devices, video files, GStreamer (extra camera)",
    "pyedflib": "EDF+ recording of the raw channels (extra record)",
    "ai-edge-litert": "TFLite runtime for the face and physio models",
}
#: Pulled in by the direct dependencies; listed with the one that needs them.
TRANSITIVE_PURPOSE = {
    "annotated-types": "pydantic: constraint types",
    "pydantic-core": "pydantic: validation core (Rust)",
    "typing-extensions": "pydantic: typing backports",
    "typing-inspection": "pydantic: type introspection",
    "colorzero": "gpiozero: LED colour handling",
    "flatbuffers": "ai-edge-litert: model file format",
    "protobuf": "ai-edge-litert: runtime metadata",
    "tqdm": "ai-edge-litert: progress (unused at run time)",
    "backports-strenum": "ai-edge-litert: StrEnum backport",
    "ml-dtypes": "ai-edge-litert: int8/bfloat16 NumPy dtypes of quantized models",
    "setuptools": "colorzero: package resources",
}
#: The TFLite runtime is not a pyproject dependency (it differs per board) but runs on the
#: device: models/runtime.py loads ai-edge-litert, else tflite-runtime.
ALWAYS = ("ai-edge-litert",)


try:
    from packaging.requirements import Requirement
except ImportError:  # a bare device venv: pip carries its own copy
    from pip._vendor.packaging.requirements import Requirement


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _applies(requirement: str) -> str | None:
    """The requirement's name if it applies here (its environment marker holds, no extra)."""
    req = Requirement(requirement)
    if req.marker is not None and not req.marker.evaluate({"extra": ""}):
        return None
    return _canonical(req.name)


def direct_dependencies(extras=DEVICE_EXTRAS, pyproject: Path = REPO / "pyproject.toml") -> list[str]:
    project = tomllib.loads(pyproject.read_text())["project"]
    reqs = list(project["dependencies"])
    optional = project.get("optional-dependencies", {})
    for extra in extras:
        if extra not in optional:
            raise ValueError(f"pyproject.toml has no extra {extra!r} (has {', '.join(optional)})")
        reqs += optional[extra]
    names = {n for r in reqs if (n := _applies(r)) is not None}
    return sorted(names | set(ALWAYS))


def _requires(name: str) -> list[str]:
    try:
        reqs = metadata.requires(name) or []
    except metadata.PackageNotFoundError:
        return []
    return [n for r in reqs if (n := _applies(r)) is not None]


def soup(extras=DEVICE_EXTRAS) -> list[dict]:
    """Rows: name, version (installed, or "not installed"), purpose, required_by."""
    rows: dict[str, dict] = {}
    todo = deque((n, "painmon") for n in direct_dependencies(extras))  # breadth first
    while todo:
        name, by = todo.popleft()
        if name in rows:
            continue
        try:
            version = metadata.version(name)
        except metadata.PackageNotFoundError:
            version = "not installed"
        purpose = PURPOSE.get(name) or TRANSITIVE_PURPOSE.get(name)
        if purpose is None:
            raise ValueError(f"SOUP: {name} (required by {by}) has no purpose in tools/soup.py")
        rows[name] = {"name": name, "version": version, "purpose": purpose, "required_by": by}
        todo += [(dep, name) for dep in _requires(name)]
    return sorted(rows.values(), key=lambda r: (r["required_by"] != "painmon", r["name"]))


def markdown(rows: list[dict]) -> str:
    lines = ["| package | version | required by | purpose |", "|---|---|---|---|"]
    lines += [f"| {r['name']} | {r['version']} | {r['required_by']} | {r['purpose']} |" for r in rows]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="painmon's SOUP list (IEC 62304)")
    parser.add_argument("--extras", default=",".join(DEVICE_EXTRAS))
    parser.add_argument("--write", metavar="README", help="replace the README's SOUP block "
                        "(between the soup markers)")
    args = parser.parse_args(argv)
    try:
        table = markdown(soup(tuple(e for e in args.extras.split(",") if e)))
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    if args.write:
        path = Path(args.write)
        text = path.read_text()
        start, end = text.index(BEGIN), text.index(END)
        start = text.index("\n", start) + 1
        path.write_text(text[:start] + table + text[end:])
    else:
        sys.stdout.write(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
