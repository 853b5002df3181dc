"""A running pipeline on the emulated board, and the clock times at which its alarms moved."""

from __future__ import annotations

import threading
import time

from sensors.clock import ScaledClock

from device.app.root import build_monitor
from device.config import default_config


def emulated_config(config=None, **sensors):
    """``config`` (defaults) on the emulated board, rest scenario, face off; ``sensors`` are
    section -> {key: value} changes of ``[sensors]``."""
    config = config or default_config()
    s = config.sensors
    changes = {name: getattr(s, name).model_copy(update=upd) for name, upd in sensors.items()}
    return config.model_copy(update={
        "hardware": "emulated",
        "face": config.face.model_copy(update={"enabled": False}),
        "simulator": config.simulator.model_copy(update={"scenario": "rest", "seed": 5}),
        "sensors": s.model_copy(update=changes),
    })


class RunningPipeline:
    """``Pipeline.run()`` in a thread on a ScaledClock; records every message and alarm event."""

    def __init__(self, config, speed: float = 2.0) -> None:
        self.clock = ScaledClock(speed)
        self.messages: list[tuple[int, str, dict]] = []
        self.alarm_events: list[tuple[int, str, str, str]] = []  # (t_ns, event, kind, source)
        self.monitor = build_monitor(config, self.clock, [self._keep])
        self.pipeline = self.monitor.pipeline
        self.pipeline.alarms.listeners.append(
            lambda event, alarm: self.alarm_events.append(
                (self.clock.now_ns(), event, alarm.kind, alarm.source)))
        self.board = self.pipeline.board.emulated
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _keep(self, topic: str, message: dict) -> None:
        self.messages.append((self.clock.now_ns(), topic, message))

    def _run(self) -> None:
        try:
            self.pipeline.run()
        except BaseException as exc:  # noqa: BLE001 - the test reports it
            self.error = exc

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.pipeline.stop()
        self._thread.join(10)

    def now_s(self) -> float:
        return self.clock.now_ns() / 1e9

    def sleep(self, seconds: float) -> None:
        """``seconds`` of clock time."""
        self.clock.sleep(seconds)

    def wait_for_alarm(self, event: str, kind: str, source: str, after_s: float,
                       timeout_s: float) -> float | None:
        """Clock seconds from ``after_s`` to the first such event after it (None: none came)."""
        end = time.monotonic() + timeout_s / self.clock.speed + 2.0
        while time.monotonic() < end:
            for t_ns, ev, k, src in list(self.alarm_events):
                if (ev, k, src) == (event, kind, source) and t_ns / 1e9 >= after_s:
                    return t_ns / 1e9 - after_s
            if self.now_s() - after_s > timeout_s:
                break
            time.sleep(0.02)
        return None

    def topic(self, name: str, after_s: float = 0.0) -> list[dict]:
        return [m for t, topic, m in list(self.messages) if topic == name and t / 1e9 >= after_s]
