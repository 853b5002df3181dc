"""The device's dependency locks (tools/lock.sh): one per Python the device OS ships and per
machine, each pinning every runtime requirement of pyproject.toml at a version that satisfies
it, with the distribution's own builds (numpy, spidev) at the versions the OS ships."""

from __future__ import annotations

import re
import tomllib

import pytest

try:
    from packaging.requirements import Requirement
    from packaging.version import Version
except ImportError:  # pragma: no cover - pip's vendored copy
    from pip._vendor.packaging.requirements import Requirement
    from pip._vendor.packaging.version import Version

from tests.conftest import REPO
from tools.soup import DEVICE_EXTRAS, parse_lock

REQUIREMENTS = REPO / "requirements"
#: (Python, Debian codename of the OS that ships it)
TARGETS = (("3.13", "trixie"), ("3.11", "bookworm"))
MACHINES = ("aarch64", "x86_64")
LOCKS = [(py, codename, machine) for py, codename in TARGETS for machine in MACHINES]


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _runtime_requirements() -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in DEVICE_EXTRAS:
        reqs += project["optional-dependencies"][extra]
    return [Requirement(r) for r in reqs]


@pytest.mark.parametrize("py,codename,machine", LOCKS)
def test_lock_pins_every_runtime_requirement(py, codename, machine):
    lock = REQUIREMENTS / f"device-py{py.replace('.', '')}-{machine}.txt"
    assert lock.is_file(), f"{lock} missing: run tools/lock.sh"
    pins = parse_lock(lock)
    env = {"python_version": py, "python_full_version": f"{py}.0", "platform_machine": machine,
           "sys_platform": "linux", "platform_system": "Linux", "os_name": "posix", "extra": ""}
    for req in _runtime_requirements():
        if req.marker is not None and not req.marker.evaluate(env):
            continue
        name = _canonical(req.name)
        assert name in pins, f"{lock.name} does not pin {name}: run tools/lock.sh"
        assert req.specifier.contains(Version(pins[name]["version"]), prereleases=True), \
            f"{lock.name}: {name}=={pins[name]['version']} does not satisfy {req}"


@pytest.mark.parametrize("py,codename,machine", LOCKS)
def test_distribution_builds_are_pinned_to_the_os_versions(py, codename, machine):
    lock = parse_lock(REQUIREMENTS / f"device-py{py.replace('.', '')}-{machine}.txt")
    distro = dict(re.findall(r"^([\w.-]+)==(\S+)", (REQUIREMENTS / f"distro-{codename}.txt").read_text(), re.MULTILINE))
    assert {"numpy", "spidev"} <= set(distro)
    for name, version in distro.items():
        assert lock[name]["version"] == version, (name, codename, machine)
    # The venv never gets PyPI's OpenCV (it pulls a numpy over the system's).
    assert not any(name.startswith("opencv") for name in lock)
