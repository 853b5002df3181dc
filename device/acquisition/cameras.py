"""The face modality's camera, by the name the configuration gives it (``face.camera``):
the demo's photo (emulated, it can grimace on cue) or a real source (``sensors.camera``)."""

from __future__ import annotations

from collections.abc import Callable

from sensors.camera import FrameSource, open_camera
from sensors.clock import Clock

from device.config.sections import DEMO_CAMERA


def open_frame_source(spec: str, clock: Clock | None = None, rate_hz: float = 15.0, *,
                      expression: Callable[[float], float] | None = None) -> FrameSource:
    """The camera ``spec`` names. ``expression`` (the demo photo's pain intensity over time)
    can only be drawn on the demo photo."""
    if spec == DEMO_CAMERA:
        from sensors.emulated.photo import PhotoSource  # the demo's: no import cost elsewhere

        return PhotoSource(rate_hz=rate_hz, clock=clock, expression=expression)
    if expression is not None:
        from sensors.emulated.expression import ExpressionUnavailable

        raise ExpressionUnavailable(f"camera {spec!r}: an expression can only be drawn on the demo photo")
    return open_camera(spec, clock=clock, rate_hz=rate_hz)
