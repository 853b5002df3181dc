"""The README is what a user reads first: its commands and reference must stay true."""

import re

from tests.conftest import REPO

from device.config import reference_markdown

README = (REPO / "README.md").read_text()


def test_config_reference_in_readme_is_current():
    block = re.search(r"<!-- config-reference:start[^>]*-->\n(.*?)<!-- config-reference:end -->",
                      README, re.S)
    assert block, "README lost its config reference markers"
    assert block.group(1) == reference_markdown()


def test_ci_runs_the_readme_test_command():
    assert "bash tools/test.sh" in README
    assert "tools/test.sh" in (REPO / ".ci" / "run").read_text()
    assert "bash tools/demo.sh" in README
