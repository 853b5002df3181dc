"""The camera thread yields the CPU to the hop: it runs nicer than the rest of the process."""

from __future__ import annotations

import os
import threading

import pytest

from device.processing.face import FACE_NICE_INCREMENT, lower_thread_priority

pytestmark = pytest.mark.skipif(not hasattr(os, "setpriority"), reason="needs per-thread nice (Linux)")


def _nice_of(tid: int) -> int:
    return os.getpriority(os.PRIO_PROCESS, tid)


def test_lower_thread_priority_changes_only_the_calling_thread():
    main_before = _nice_of(threading.get_native_id())
    seen: dict[str, int] = {}

    def camera() -> None:
        tid = threading.get_native_id()
        seen["before"] = _nice_of(tid)
        lower_thread_priority(3)
        seen["after"] = _nice_of(tid)

    thread = threading.Thread(target=camera)
    thread.start()
    thread.join(5)
    assert seen["after"] == min(19, seen["before"] + 3)
    assert _nice_of(threading.get_native_id()) == main_before  # the rest of the process keeps its


def test_face_worker_thread_runs_nicer_once_it_has_a_first_estimate():
    from models.face import FaceModelsUnavailable, verify_model_files
    from sensors.clock import MonotonicClock

    from device.config import default_config
    from device.config.paths import default_model_dir
    from device.processing.face import FaceWorker

    pytest.importorskip("skimage", reason="the demo photo ships with scikit-image")
    try:
        verify_model_files(default_model_dir())
    except FaceModelsUnavailable as exc:
        pytest.skip(f"face models not fetched: {exc}")
    config = default_config().face.model_copy(update={"camera": "photo", "fps": 5.0})
    worker = FaceWorker(config, MonotonicClock(), default_model_dir())
    main_nice = _nice_of(threading.get_native_id())
    worker.start()
    try:
        waiting = threading.Event()
        for _ in range(600):  # models load and a first frame is analysed: well within 60 s
            if worker.frames >= 2 or not worker.alive():
                break
            waiting.wait(0.1)
        assert worker.frames >= 2, worker.status()
        assert _nice_of(worker._thread.native_id) == min(19, main_nice + FACE_NICE_INCREMENT)
        assert _nice_of(threading.get_native_id()) == main_nice
    finally:
        worker.stop()
