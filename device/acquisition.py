"""Acquisition: each chip behind a `Sensor` that never lets a bus error escape, and one
reader thread per bus.

A chip is driven through an *acquirer*: ``open()`` (reset, ID check, configure),
``next_due_ns()`` (when it next needs the bus), ``poll()`` (the SampleBlocks it has) and
``close()``. FIFO chips (MAX3010x, MPU-6050) are polled at their FIFO's pace; a scanned ADC
(ADS1115) is polled on its conversion schedule.

A bus error (``OSError``: EIO, ETIMEDOUT, a NACK from an unplugged chip) is retried with
backoff; when the retries run out the chip is re-initialised, and when that fails the sensor
is marked missing with the reason, and re-opened every ``retry_s`` until it answers again.
"""

from __future__ import annotations

import errno
import logging
import threading
from dataclasses import dataclass
from typing import Callable, Protocol

from sensors.bus import ChipIdError
from sensors.clock import Clock
from sensors.types import SampleBlock

log = logging.getLogger(__name__)


class Acquirer(Protocol):
    def open(self) -> None: ...

    def next_due_ns(self) -> int: ...

    def poll(self) -> list[SampleBlock]: ...

    def close(self) -> None: ...


class FifoChip:
    """A FIFO sensor (``read()`` drains it, ``poll_interval_s`` paces it) as an acquirer."""

    def __init__(self, driver, clock: Clock) -> None:
        self.driver = driver
        self.clock = clock
        self._due_ns = clock.now_ns()

    def open(self) -> None:
        self.driver.open()
        self._due_ns = self.clock.now_ns() + round(self.driver.poll_interval_s * 1e9)

    def next_due_ns(self) -> int:
        return self._due_ns

    def poll(self) -> list[SampleBlock]:
        self._due_ns = self.clock.now_ns() + round(self.driver.poll_interval_s * 1e9)
        return self.driver.read()

    def close(self) -> None:
        self.driver.close()


class ScannedAdc:
    """An ADC whose channels are converted one by one on a schedule (``AnalogSampler``)."""

    def __init__(self, adc, sampler) -> None:
        self.adc = adc
        self.sampler = sampler

    def open(self) -> None:
        self.adc.open()

    def next_due_ns(self) -> int:
        return self.sampler.next_due_ns()

    def poll(self) -> list[SampleBlock]:
        return self.sampler.poll()

    def close(self) -> None:
        self.adc.close()


@dataclass
class SensorState:
    name: str
    state: str  # "starting" | "ok" | "missing"
    reason: str | None = None
    since_ns: int = 0


def describe_error(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.errno is not None:
        return f"{errno.errorcode.get(exc.errno, exc.errno)}: {exc.strerror or exc}"
    return f"{type(exc).__name__}: {exc}"


class Sensor:
    """One chip as the application sees it: ok, or missing with a reason, and retried."""

    def __init__(
        self,
        name: str,
        acquirer: Acquirer,
        clock: Clock,
        *,
        max_retries: int = 3,
        retry_backoff_s: float = 0.05,
        reopen_s: float = 2.0,
        on_state: Callable[[SensorState], None] | None = None,
    ) -> None:
        self.name = name
        self.acquirer = acquirer
        self.clock = clock
        self.max_retries = max_retries
        self.retry_backoff_s = retry_backoff_s
        self.reopen_s = reopen_s
        self.on_state = on_state
        self.status = SensorState(name, "starting", None, clock.now_ns())
        self.failures = 0
        self.errors = 0
        self._due_ns = clock.now_ns()

    # -- state -------------------------------------------------------------------------------
    def _set(self, state: str, reason: str | None) -> None:
        if state == self.status.state and reason == self.status.reason:
            return
        self.status = SensorState(self.name, state, reason, self.clock.now_ns())
        (log.info if state == "ok" else log.warning)(
            "sensor %s: %s%s", self.name, state, f" ({reason})" if reason else ""
        )
        if self.on_state is not None:
            self.on_state(self.status)

    @property
    def ok(self) -> bool:
        return self.status.state == "ok"

    def next_due_ns(self) -> int:
        if not self.ok:
            return self._due_ns
        return max(self.acquirer.next_due_ns(), self._due_ns)

    # -- work --------------------------------------------------------------------------------
    def open(self) -> bool:
        """Reset, identify and configure the chip; False (and missing) when it does not answer."""
        try:
            self.acquirer.open()
        except (OSError, ChipIdError, TimeoutError) as exc:
            self._due_ns = self.clock.now_ns() + round(self.reopen_s * 1e9)
            self._set("missing", describe_error(exc))
            return False
        self.failures = 0
        self._due_ns = self.clock.now_ns()
        self._set("ok", None)
        return True

    def step(self) -> list[SampleBlock]:
        """Do what is due; never raises a bus error."""
        now = self.clock.now_ns()
        if now < self.next_due_ns():
            return []
        if not self.ok:
            self.open()
            return []
        try:
            blocks = self.acquirer.poll()
        except (OSError, TimeoutError) as exc:
            self.errors += 1
            self.failures += 1
            if self.failures <= self.max_retries:
                backoff_s = self.retry_backoff_s * 2 ** (self.failures - 1)
                self._due_ns = now + round(backoff_s * 1e9)
                log.debug("sensor %s: %s, retry in %.2f s", self.name, describe_error(exc), backoff_s)
                return []
            log.warning("sensor %s: %s after %d retries, re-initialising",
                        self.name, describe_error(exc), self.max_retries)
            self.open()
            return []
        self.failures = 0
        return blocks

    def close(self) -> None:
        try:
            self.acquirer.close()
        except (OSError, TimeoutError) as exc:
            log.debug("sensor %s: close failed: %s", self.name, exc)


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
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self.crash = None
        self._thread = threading.Thread(target=self._run, name=f"reader-{self.name}", daemon=True)
        self._thread.start()

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout_s: float = 2.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _run(self) -> None:
        try:
            for sensor in self.sensors:
                if sensor.status.state == "starting":
                    sensor.open()
            speed = getattr(self.clock, "speed", 1.0)
            while not self._stop.is_set():
                for sensor in self.sensors:
                    for block in sensor.step():
                        self.sink(block)
                now = self.clock.now_ns()
                due = min((s.next_due_ns() for s in self.sensors), default=now + 100_000_000)
                wait_real_s = max(0.0, (due - now) / 1e9 / speed)
                # Waiting on the event (not sleeping) lets stop() end the thread at once.
                self._stop.wait(min(wait_real_s, 0.05))
        except BaseException as exc:  # noqa: BLE001 - reported to the supervisor, never silent
            self.crash = exc
            log.exception("reader %s crashed", self.name)
