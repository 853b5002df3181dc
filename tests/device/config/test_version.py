"""One version source: the git tag through setuptools-scm, in the built package, in
``painmon --version`` and in every health message; a tree without git metadata builds as the
fallback version."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile

import pytest

from sensors.clock import SteppedClock
from tests.conftest import REPO

from device.app.root import build_monitor
from device.config import default_config
from device.config.version import painmon_version

pytest.importorskip("setuptools_scm", reason="setuptools-scm (test extra) not installed")


def test_painmon_version_prints_the_installed_version():
    out = subprocess.run(check=False, args=[sys.executable, "-m", "device.cli", "--version"], cwd=REPO,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"painmon {painmon_version()}"


def test_health_carries_the_version():
    config = default_config()
    config = config.model_copy(update={"face": config.face.model_copy(update={"enabled": False})})
    sent: list[tuple[str, dict]] = []
    monitor = build_monitor(config, SteppedClock(), outputs=[lambda topic, message: sent.append((topic, message))])
    pipeline = monitor.pipeline
    try:
        pipeline.step(1_000_000_000)
    finally:
        pipeline.stop()
    health = [message for topic, message in sent if topic == "health"]
    assert health and health[0]["sw_version"] == painmon_version()


def _wheel_version(source, tmp_path) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SETUPTOOLS_SCM_PRETEND")}
    out = subprocess.run(check=False, args=[sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet",
                          "--wheel-dir", str(tmp_path / "wheel"), str(source)],
                         capture_output=True, text=True, timeout=300, env=env)
    if out.returncode != 0:
        pytest.skip(f"could not build a wheel here (the build backend needs the package registry): "
                    f"{out.stderr.strip()[-300:]}")
    (wheel,) = (tmp_path / "wheel").glob("painmon-*.whl")
    version = wheel.name.split("-")[1]
    with zipfile.ZipFile(wheel) as zf:
        written = zf.read("device/_version.py").decode()
    assert f"version = '{version}'" in written or f'version = "{version}"' in written, written
    return version


@pytest.mark.skipif(not (REPO / ".git").exists(), reason="not a git checkout")
def test_the_wheel_is_versioned_by_git(tmp_path):
    expected = subprocess.run([sys.executable, "-m", "setuptools_scm"], cwd=REPO, capture_output=True,
                              text=True, timeout=60, check=True).stdout.strip()  # pyproject's settings
    assert _wheel_version(REPO, tmp_path) == expected
    assert re.match(r"^\d+\.\d+", expected)


def test_a_tree_without_git_metadata_builds_as_the_fallback_version(tmp_path):
    source = tmp_path / "src"
    git = shutil.which("git")
    listed = subprocess.run([git, "ls-files"], check=False, cwd=REPO, capture_output=True, text=True) if git else None
    if listed is None or listed.returncode != 0:
        pytest.skip("not a git checkout")
    for name in listed.stdout.splitlines():
        wanted = name.startswith(("sensors/", "models/", "device/")) or name in ("pyproject.toml", "README.md")
        if wanted and (REPO / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    fallback = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools_scm"]["fallback_version"]
    assert _wheel_version(source, tmp_path) == fallback
