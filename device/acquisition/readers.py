"""The reader threads: one per bus, so the transactions of chips sharing a bus never
interleave; each polls its sensors when they are due and puts their blocks on the queue."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from sensors.clock import Clock
from sensors.types import SampleBlock

from device.acquisition.sensor import Sensor

log = logging.getLogger(__name__)


class BusReader:
    """The one thread that talks to one bus: it polls each sensor when it is due.

    Devices on a shared I2C bus are read by one thread so their transactions never interleave.
    Blocks go to ``sink`` (a bounded queue). A crash of the thread is recorded in ``crash``;
    the pipeline's supervisor restarts it.
    """

    def __init__(self, name: str, sensors: list[Sensor], sink: Callable[[SampleBlock], None],
                 clock: Clock) -> None:
        self.name = name
        self.sensors = sensors
        self.sink = sink
        self.clock = clock
        self.crash: BaseException | None = None
        self.restarts = 0
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        for sensor in sensors:
            if hasattr(sensor.acquirer, "wake"):
                sensor.acquirer.wake = self.wake

    def wake(self) -> None:
        """Look at the sensors now (a data-ready edge came); safe from any thread."""
        self._wake.set()

    def start(self) -> None:
        self._stop.clear()
        self.crash = None
        self._thread = threading.Thread(target=self._run, name=f"reader-{self.name}", daemon=True)
        self._thread.start()

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout_s: float = 2.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def poll_due(self) -> int:
        """Step every sensor that is due, pass on what they read; when the next one is due.
        The thread does this in its loop; a stepped replay calls it itself, between hops."""
        for sensor in self.sensors:
            for block in sensor.step():
                self.sink(block)
        now = self.clock.now_ns()
        return min((s.next_due_ns() for s in self.sensors), default=now + 100_000_000)

    def _run(self) -> None:
        try:
            for sensor in self.sensors:
                if sensor.status.state == "starting":
                    sensor.open()
            speed = getattr(self.clock, "speed", 1.0)
            while not self._stop.is_set():
                self._wake.clear()  # an edge from here on ends the wait below at once
                due = self.poll_due()
                wait_real_s = max(0.0, (due - self.clock.now_ns()) / 1e9 / speed)
                # Waiting on an event (not sleeping) lets stop() and data-ready edges end it.
                self._wake.wait(min(wait_real_s, 0.05))
        except BaseException as exc:  # noqa: BLE001 - reported to the supervisor, never silent
            self.crash = exc
            log.exception("reader %s crashed", self.name)
