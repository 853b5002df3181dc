"""The SOUP list names every runtime dependency with its version and purpose."""

from __future__ import annotations

import tomllib

import pytest

from tests.conftest import REPO
from tools.soup import (
    DEVICE_EXTRAS,
    DEVICE_LOCK,
    PURPOSE,
    _applies,
    direct_dependencies,
    markdown,
    soup,
    soup_from_lock,
)


def runtime_requirements() -> set[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    reqs = project["dependencies"] + [r for e in DEVICE_EXTRAS
                                      for r in project["optional-dependencies"][e]]
    return {n for r in reqs if (n := _applies(r)) is not None}


def test_every_runtime_dependency_of_pyproject_is_listed():
    rows = {r["name"]: r for r in soup()}
    missing = runtime_requirements() - set(rows)
    assert not missing, missing
    for name in runtime_requirements():
        assert rows[name]["required_by"] == "painmon"
        assert rows[name]["purpose"] == PURPOSE[name]
        assert rows[name]["version"] != "not installed", name  # the test env installs them


def test_transitive_dependencies_are_resolved_and_explained():
    rows = {r["name"]: r for r in soup()}
    assert rows["pydantic-core"]["required_by"] == "pydantic"
    assert all(r["purpose"] for r in rows.values())


def test_readme_lists_every_direct_dependency():
    readme = (REPO / "README.md").read_text()
    block = readme[readme.index("<!-- soup:start"):readme.index("<!-- soup:end -->")]
    for name in direct_dependencies():
        assert f"| {name} |" in block, name


def test_readme_table_is_the_device_lock():
    """The SOUP list is what a device gets: the lock's packages at the lock's versions."""
    readme = (REPO / "README.md").read_text()
    block = readme[readme.index("<!-- soup:start"):readme.index("<!-- soup:end -->")]
    table = block.split("\n", 1)[1]
    assert table == markdown(soup_from_lock(DEVICE_LOCK)), \
        "README's SOUP table is not the lock's: python -m tools.soup --write README.md"


def test_lock_rows_name_their_source_and_parent():
    rows = {r["name"]: r for r in soup_from_lock(DEVICE_LOCK)}
    assert rows["numpy"]["source"] == "Debian trixie package"  # the system's numpy, never PyPI's
    assert rows["spidev"]["source"] == "Debian trixie package"
    assert rows["pydantic"]["source"] == "PyPI wheel"
    assert rows["pydantic-core"]["required_by"] == "pydantic"
    assert "opencv-python-headless" not in rows  # OpenCV on a device is the distribution's


def test_a_lock_with_an_unexplained_package_is_refused(tmp_path):
    lock = tmp_path / "lock.txt"
    lock.write_text(DEVICE_LOCK.read_text() + "leftpad==1.0\n    # via painmon (pyproject.toml)\n")
    with pytest.raises(ValueError, match="leftpad .*has no purpose"):
        soup_from_lock(lock)
    unpinned = "\n".join(line for line in DEVICE_LOCK.read_text().splitlines()
                         if not line.startswith("smbus2=="))
    lock.write_text(unpinned)
    with pytest.raises(ValueError, match="does not pin smbus2"):
        soup_from_lock(lock)


def test_markdown_and_unknown_extra():
    table = markdown([{"name": "x", "version": "1", "required_by": "painmon", "purpose": "y"}])
    assert table.splitlines()[-1] == "| x | 1 | painmon | y |"
    with pytest.raises(ValueError, match="no extra 'gpu'"):
        direct_dependencies(("gpu",))
