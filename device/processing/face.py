"""The face modality on the device: its own camera thread, frames in, the latest face estimate
out. It is optional: when its models or its camera are not there it is reported missing with
the reason, retried, and the rest of the app runs on."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

from models.modality import ModalityEstimate
from sensors.camera import FrameSource
from sensors.clock import Clock

from device.config.sections import FaceConfig

log = logging.getLogger(__name__)

#: The camera thread runs this much nicer than the rest of the process. On one core a frame's
#: analysis (~100 ms) would otherwise share the CPU evenly with the hop, and every hop that
#: coincides with a frame would publish late; the face estimate only needs to be fresh within
#: a hop, a late frame is simply skipped. Linux applies nice per thread.
FACE_NICE_INCREMENT = 10


def lower_thread_priority(increment: int) -> None:
    """Make the calling thread ``increment`` nicer (Linux: nice is per thread); else nothing."""
    if not hasattr(os, "setpriority"):
        return
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + increment))
    except OSError as exc:  # e.g. a seccomp filter: run at the normal priority
        log.warning("camera thread priority unchanged: %s", exc)



class FaceWorker:
    """The camera thread: frames → ``FaceEstimator`` → the latest face estimate.

    Frames stay in this thread: they are analysed and dropped, never stored or passed on.
    A slow analysis makes the source skip frames (counted), never queue them.
    """

    def __init__(self, config: FaceConfig, clock: Clock, model_dir: Path, *,
                 retry_s: float = 5.0, calibrate_frames: int = 0,
                 expression: Callable[[float], float] | None = None,
                 open_source: Callable[[], FrameSource] | None = None) -> None:
        self.config = config
        # How the camera is opened (again after a failure); by default what face.camera names.
        self.open_source = open_source or self._open_configured
        self.calibrate_frames = calibrate_frames
        # The demo only: ``t_s -> 0..1``, the pain the demo photo's face shows.
        self.expression = expression
        self.clock = clock
        self.model_dir = model_dir
        self.retry_s = retry_s
        self.state = "starting"
        self.reason: str | None = None
        self.frames = 0
        self.errors = 0
        self.camera_failures = 0
        self.restarts = 0
        self.estimator = None
        self.source = None
        from models.face.temporal import FaceHopAggregator

        # Every frame of a hop goes into its face estimate (sustained peak, held eye closure).
        self._hop = FaceHopAggregator()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- life --------------------------------------------------------------------------------
    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="camera", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 3.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        if self.source is not None:
            self.source.close()

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def supervise(self) -> bool:
        """Start the camera thread again if it died (it should not: every failure in it is
        caught); returns whether it had to."""
        if self._thread is None or self._stop.is_set() or self._thread.is_alive():
            return False
        self.restarts += 1
        self._set("missing", "camera thread stopped; restarted")
        self.source = None
        self.start()
        return True

    def _set(self, state: str, reason: str | None = None) -> None:
        changed = (state, reason) != (self.state, self.reason)
        self.state, self.reason = state, reason  # seen by the hop before anything is logged
        if changed:
            (log.info if state == "ok" else log.warning)(
                "face: %s%s", state, f" ({reason})" if reason else "")

    def _open_configured(self) -> FrameSource:
        from device.acquisition.cameras import open_frame_source

        return open_frame_source(self.config.camera, clock=self.clock, rate_hz=self.config.fps,
                                 expression=self.expression)

    def _open(self) -> bool:
        from models.face import FaceEstimator

        try:
            if self.estimator is None:
                self.estimator = FaceEstimator(self.model_dir, num_threads=self.config.num_threads,
                                               tracking=self.config.tracking)
                if self.calibrate_frames:
                    self.estimator.start_calibration(self.calibrate_frames)
            if self.source is None:
                self.source = self.open_source()
        except Exception as exc:  # noqa: BLE001 - whatever the camera raises is its alarm
            self._set("missing", _describe(exc))
            return False
        self._set("ok")
        return True

    def _drop_source(self, reason: str) -> None:
        source, self.source = self.source, None
        self._set("missing", reason)
        self.camera_failures += 1  # after the state: whoever sees the count sees it missing
        if source is not None:
            try:
                source.close()
            except Exception as exc:  # noqa: BLE001 - it is being replaced anyway
                log.debug("face: closing the failed camera: %s", exc)

    def _run(self) -> None:
        speed = getattr(self.clock, "speed", 1.0)
        while not self._stop.is_set():
            if self.state != "ok" and not self._open():
                self._stop.wait(self.retry_s / speed)
                continue
            try:
                frame = self.source.read()
            except Exception as exc:  # noqa: BLE001 - a camera failing in any way is retried
                self._drop_source(f"camera failed: {_describe(exc)}")
                log.warning("face: the camera failed: %s", _describe(exc))
                self._stop.wait(self.retry_s / speed)
                continue
            if frame is None:
                self._drop_source("camera stopped delivering frames")
                continue
            try:
                estimate = self.estimator.process(frame)
            except Exception as exc:  # noqa: BLE001 - one bad frame must not end the modality
                self.errors += 1
                log.exception("face: frame %d failed", self.frames)
                self._set("ok" if self.errors < 10 else "missing", f"analysis failed: {exc}")
                continue
            self.frames += 1
            if self.frames == 1:  # models loaded, first estimate out at full speed: now yield
                lower_thread_priority(FACE_NICE_INCREMENT)
            with self._lock:
                self._hop.add(frame.t_ns, estimate)

    # -- for the hop -------------------------------------------------------------------------
    def latest(self, t_ns: int, max_age_s: float) -> ModalityEstimate | None:
        """The estimate of the frames since the last hop (``FaceHopAggregator``), or the previous
        hop's while its newest frame is no older than ``max_age_s`` at ``t_ns``."""
        with self._lock:
            return self._hop.take(t_ns, max_age_s)

    def status(self) -> dict:
        # failures: the camera failed or stopped since the start, recovered or not (one that
        # comes back before the next hop is never "missing" there, but is counted here).
        out = {"state": self.state, "frames": self.frames, "failures": self.camera_failures,
               "restarts": self.restarts}
        if self.reason:
            out["reason"] = self.reason
        if self.source is not None:
            out["frames_dropped"] = self.source.frames_dropped
        return out


def _describe(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
