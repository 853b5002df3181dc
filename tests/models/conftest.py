"""Photos for the face tests (the fetched face models come from tests/conftest.py)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def astronaut():
    from skimage import data

    return data.astronaut()
