"""The SOUP list (IEC 62304 5.3.3/8.1.2: software of unknown provenance): every runtime
dependency of the device with its version, where it comes from, and its purpose.

    python -m tools.soup [--lock FILE | --installed] [--write README.md]

Runtime means what runs on the device: ``[project] dependencies`` and the extras a device
installs (``DEVICE_EXTRAS``), plus what those require in turn. By default the list is the
device's lock (``DEVICE_LOCK``, what tools/install-pi.sh installs on Raspberry Pi OS trixie,
64-bit: tools/lock.sh generates it), so two devices installed a week apart carry the list's
versions; ``--installed`` lists the environment it runs in instead. A dependency without a
purpose below is an error, so a new dependency cannot slip in undocumented.
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
DEVICE_EXTRAS = ("record",)
DEVICE_LOCK = REPO / "requirements" / "device-py313-aarch64.txt"
BEGIN, END = "<!-- soup:start", "<!-- soup:end -->"

#: Why each direct runtime dependency is there, and what painmon uses it for.
PURPOSE = {
    "numpy": "arrays for every signal: SampleBlocks, filters, features",
    "smbus2": "I2C transactions to the MAX3010x, MPU-6050 and ADS1115",
    "spidev": "SPI transactions to the MCP3008 and ADS1292R",
    "gpiozero": "GPIO: data-ready, lead-off, alarm LEDs/buzzer, buttons",
    "paho-mqtt": "the MQTT 5 client that publishes estimates and receives commands",
    "pydantic": "configuration and command validation",
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


def parse_lock(path: Path) -> dict[str, dict]:
    """``name -> {"version", "via": [...]}`` from a lock ``uv pip compile`` annotated."""
    pins: dict[str, dict] = {}
    current = None
    for line in Path(path).read_text().splitlines():
        if line and not line.startswith((" ", "#")):
            name, _, version = line.partition("==")
            if not version:
                raise ValueError(f"{path}: {line!r} is not pinned with ==")
            current = pins.setdefault(_canonical(name.strip()), {"version": version.split()[0], "via": []})
        elif current is not None and (via := line.strip().lstrip("#").strip()):
            via = via.removeprefix("via").strip()
            if via:
                current["via"].append(via)
    return pins


def _lock_source(via: list[str]) -> str:
    for v in via:
        if v.startswith("-c ") and "distro-" in v:
            codename = v.rsplit("distro-", 1)[1].removesuffix(".txt")
            return f"Debian {codename} package"
    return "PyPI wheel"


def soup_from_lock(lock: Path = DEVICE_LOCK, extras=DEVICE_EXTRAS) -> list[dict]:
    """Rows as ``soup()`` plus ``source``, the versions the lock pins."""
    pins = parse_lock(lock)
    direct = set(direct_dependencies(extras))
    rows = []
    for name, pin in pins.items():
        parents = [_canonical(v.split()[0]) for v in pin["via"] if not v.startswith("-c ")]
        by = "painmon" if name in direct or "painmon" in parents else (parents[0] if parents else "?")
        purpose = PURPOSE.get(name) or TRANSITIVE_PURPOSE.get(name)
        if purpose is None:
            raise ValueError(f"SOUP: {name} (in {Path(lock).name}, required by {by}) has no purpose "
                             "in tools/soup.py")
        rows.append({"name": name, "version": pin["version"], "purpose": purpose, "required_by": by,
                     "source": _lock_source(pin["via"])})
    missing = direct - set(pins)
    if missing:
        raise ValueError(f"SOUP: {Path(lock).name} does not pin {', '.join(sorted(missing))}: run tools/lock.sh")
    return sorted(rows, key=lambda r: (r["required_by"] != "painmon", r["name"]))


def markdown(rows: list[dict]) -> str:
    if rows and "source" in rows[0]:
        lines = ["| package | version | from | required by | purpose |", "|---|---|---|---|---|"]
        lines += [f"| {r['name']} | {r['version']} | {r['source']} | {r['required_by']} | {r['purpose']} |"
                  for r in rows]
    else:
        lines = ["| package | version | required by | purpose |", "|---|---|---|---|"]
        lines += [f"| {r['name']} | {r['version']} | {r['required_by']} | {r['purpose']} |" for r in rows]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="painmon's SOUP list (IEC 62304)")
    parser.add_argument("--extras", default=",".join(DEVICE_EXTRAS))
    parser.add_argument("--lock", default=str(DEVICE_LOCK.relative_to(REPO)),
                        help="the lock whose versions to list (default: Raspberry Pi OS trixie, 64-bit)")
    parser.add_argument("--installed", action="store_true",
                        help="list the versions installed here instead of a lock's")
    parser.add_argument("--write", metavar="README", help="replace the README's SOUP block "
                        "(between the soup markers)")
    args = parser.parse_args(argv)
    try:
        extras = tuple(e for e in args.extras.split(",") if e)
        rows = soup(extras) if args.installed else soup_from_lock(REPO / args.lock, extras)
        table = markdown(rows)
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
