"""The SOUP list names every runtime dependency with its version and purpose."""

from __future__ import annotations

import tomllib

import pytest

from tests.conftest import REPO
from tools.soup import DEVICE_EXTRAS, PURPOSE, _applies, direct_dependencies, markdown, soup


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


def test_markdown_and_unknown_extra():
    table = markdown([{"name": "x", "version": "1", "required_by": "painmon", "purpose": "y"}])
    assert table.splitlines()[-1] == "| x | 1 | painmon | y |"
    with pytest.raises(ValueError, match="no extra 'gpu'"):
        direct_dependencies(("gpu",))
