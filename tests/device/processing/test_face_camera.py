"""A camera that fails in any way is the face modality's technical alarm, retried like a
sensor: an exception of any kind when opening or reading, a source that stops, a dead thread."""

from __future__ import annotations

import time

import pytest

from sensors.clock import MonotonicClock
from sensors.emulated.photo import PhotoSource

from device.acquisition.board import Board
from device.config import default_config
from device.processing.alarms import AlarmBook
from device.processing.face import FaceWorker
from device.processing.health import Health


class FlakyCamera:
    """A real photo source that raises ``error`` on read ``fail_at`` (once), like a driver
    that throws something nobody expected."""

    def __init__(self, error: BaseException, fail_at: int) -> None:
        self.source = PhotoSource(rate_hz=20.0)
        self.error, self.fail_at, self.reads = error, fail_at, 0
        self.frames_dropped = 0

    def read(self):
        self.reads += 1
        if self.reads == self.fail_at:
            raise self.error
        return self.source.read()

    def close(self) -> None:
        self.source.close()


def wait_for(condition, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not within {timeout_s} s")
        time.sleep(0.02)


def worker(face_model_dir, open_source, **kw) -> tuple[FaceWorker, Health, AlarmBook]:
    config = default_config().face.model_copy(update={"fps": 20.0, "model_dir": face_model_dir})
    clock = MonotonicClock()
    # A retry 2 s later: the test sees the missing state before the camera is opened again.
    face = FaceWorker(config, clock, face_model_dir, retry_s=2.0, open_source=open_source, **kw)
    alarms = AlarmBook(clock)
    return face, Health(Board(), alarms, clock, face=face), alarms


@pytest.mark.parametrize("error", [RuntimeError("libcamera: dequeue failed"),
                                   ValueError("numpy.dtype size changed"), KeyError("buffer"),
                                   OSError(5, "EIO")], ids=lambda e: type(e).__name__)
def test_a_camera_raising_anything_is_an_alarm_then_recovers(face_model_dir, error):
    opened: list[FlakyCamera] = []

    def open_source():
        opened.append(FlakyCamera(error, fail_at=5 if not opened else 10**9))
        return opened[-1]

    face, health, alarms = worker(face_model_dir, open_source)
    face.start()
    try:
        wait_for(lambda: face.camera_failures >= 1, 20, "the camera failure noticed")
        health.update()
        alarm = alarms.get("camera_missing", "camera")
        assert alarm is not None and alarm.category == "technical"
        assert type(error).__name__ in alarm.message
        assert face.alive()  # the thread lives on
        wait_for(lambda: face.state == "ok" and len(opened) == 2, 10, "the camera re-opened")
        frames = face.frames
        wait_for(lambda: face.frames > frames + 3, 10, "frames again")
        health.update()
        assert alarms.get("camera_missing", "camera") is None
        # The failure stays counted in the health message's camera once recovered.
        assert health.message()["camera"]["failures"] == 1
        assert face.status()["restarts"] == 0
    finally:
        face.stop()


def test_a_camera_that_cannot_open_is_an_alarm_and_retried(face_model_dir):
    tries = []

    def open_source():
        tries.append(time.monotonic())
        raise TypeError("picamera2 built against another numpy")

    face, health, alarms = worker(face_model_dir, open_source)
    face.start()
    try:
        wait_for(lambda: len(tries) >= 2, 20, "a second attempt to open")
        health.update()
        assert "picamera2 built against" in alarms.get("camera_missing", "camera").message
    finally:
        face.stop()


class ThreadKiller(BaseException):
    """Not an Exception: nothing in the camera thread catches it, so the thread dies."""


def test_a_dead_camera_thread_is_restarted_and_reported(face_model_dir):
    opened: list[FlakyCamera] = []

    def open_source():
        opened.append(FlakyCamera(ThreadKiller(), fail_at=5 if not opened else 10**9))
        return opened[-1]

    face, health, alarms = worker(face_model_dir, open_source)
    face.start()
    try:
        wait_for(lambda: not face.alive(), 20, "the camera thread dead")
        assert face.supervise()
        health.update()
        assert "thread stopped" in alarms.get("camera_missing", "camera").message
        assert face.restarts == 1 and not face.supervise()  # alive again: nothing to do
        wait_for(lambda: face.state == "ok" and face.frames > 5, 20, "frames after the restart")
    finally:
        face.stop()
