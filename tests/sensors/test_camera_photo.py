"""The demo photo is loaded without importing scikit-image, and it is the same picture."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import REPO

skimage_data = pytest.importorskip("skimage.data", reason="the demo photo ships with scikit-image")


def test_astronaut_photo_is_scikit_images_astronaut():
    from sensors.emulated.photo import astronaut_photo

    photo = astronaut_photo()
    assert photo.dtype == np.uint8 and photo.shape == (512, 512, 3)
    assert photo.flags.writeable
    assert np.array_equal(photo, skimage_data.astronaut())


def test_astronaut_photo_does_not_import_scikit_image():
    code = ("import json, sys; from sensors.emulated.photo import astronaut_photo; p = astronaut_photo(); "
            "print(json.dumps({'skimage': any(m == 'skimage' or m.startswith('skimage.') "
            "for m in sys.modules), 'sum': int(p.sum())}))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["skimage"] is False
    assert result["sum"] == int(skimage_data.astronaut().sum())
