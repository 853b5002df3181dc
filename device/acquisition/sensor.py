"""Each chip behind a `Sensor` that never lets a bus error escape (the reader threads, one per
bus, are in ``device.acquisition.readers``).

A chip is driven through an *acquirer*: ``open()`` (reset, ID check, configure),
``next_due_ns()`` (when it next needs the bus), ``poll()`` (the SampleBlocks it has) and
``close()``. FIFO chips (MAX3010x, MPU-6050) are polled at their FIFO's pace, or, with a
data-ready line wired (the MAX3010x's INT), read when it signals and polled only as a safety
net; a scanned ADC (ADS1115) is polled on its conversion schedule.

A bus error (``OSError``: EIO, ETIMEDOUT, a NACK from an unplugged chip) is retried with
backoff; when the retries run out the chip is re-initialised, and when that fails the sensor
is marked missing with the reason, and re-opened every ``reopen_s`` until it answers again.
A chip that answers but delivers no new samples for ``stall_s`` (a stuck FIFO, conversions
that stopped) is marked missing too, with the fault ``fifo_stuck``, and re-initialised every
``reopen_s`` until samples flow again.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from sensors.bus import ChipIdError
from sensors.clock import Clock
from sensors.types import SampleBlock

try:  # a pin the platform cannot drive (no GPIO chip, pin in use) is a missing sensor too
    from gpiozero.exc import GPIOZeroError
except ImportError:  # pragma: no cover - gpiozero is a dependency
    GPIOZeroError = OSError

#: Polls that found nothing, at least, before a silence counts as a stall.
MIN_EMPTY_POLLS = 3
#: What a chip that does not answer properly raises, as opposed to a bug in the code.
DEVICE_ERRORS = (OSError, ChipIdError, TimeoutError, GPIOZeroError)

log = logging.getLogger(__name__)


class Acquirer(Protocol):
    def open(self) -> None: ...

    def next_due_ns(self) -> int: ...

    def poll(self) -> list[SampleBlock]: ...

    def close(self) -> None: ...


class FifoChip:
    """A FIFO sensor (``read()`` drains it, ``poll_interval_s`` paces it) as an acquirer.

    A driver with a ``data_ready`` line (``sensors.gpio.DataReadyPin``) is due as soon as an
    edge is pending, and each edge calls ``wake`` (set by the ``BusReader``) so the reader
    does not sleep through it.
    """

    def __init__(self, driver, clock: Clock) -> None:
        self.driver = driver
        self.clock = clock
        self.wake: Callable[[], None] | None = None
        self._due_ns = clock.now_ns()

    def _ready_line(self):
        return getattr(self.driver, "data_ready", None)

    def _on_ready(self) -> None:
        wake = self.wake
        if wake is not None:
            wake()

    def open(self) -> None:
        self.driver.open()
        line = self._ready_line()
        if line is not None:
            line.when_ready = self._on_ready
        self._due_ns = self.clock.now_ns() + round(self.driver.poll_interval_s * 1e9)

    def next_due_ns(self) -> int:
        line = self._ready_line()
        if line is not None and line.pending():
            return 0  # overdue: an edge is waiting
        return self._due_ns

    def poll(self) -> list[SampleBlock]:
        line = self._ready_line()
        if line is not None:
            line.consume()
        self._due_ns = self.clock.now_ns() + round(self.driver.poll_interval_s * 1e9)
        return self.driver.read()

    def close(self) -> None:
        self.driver.close()

    @property
    def dropped_samples(self) -> int:
        return int(getattr(self.driver, "dropped_samples", 0))


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

    @property
    def dropped_samples(self) -> int:
        return int(sum(self.sampler.missed_samples.values()))


@dataclass
class SensorState:
    name: str
    state: str  # "starting" | "ok" | "missing"
    reason: str | None = None
    since_ns: int = 0
    fault: str | None = None  # with "missing": "sensor_missing" or "fifo_stuck"


def describe_error(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.errno is not None:
        where = f": {exc.filename}" if getattr(exc, "filename", None) else ""
        return f"{errno.errorcode.get(exc.errno, exc.errno)}: {exc.strerror or exc}{where}"
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
        stall_s: float | None = 1.0,
        on_state: Callable[[SensorState], None] | None = None,
    ) -> None:
        self.name = name
        self.acquirer = acquirer
        self.clock = clock
        self.max_retries = max_retries
        self.retry_backoff_s = retry_backoff_s
        self.reopen_s = reopen_s
        self.on_state = on_state
        self.stall_s = stall_s
        self.status = SensorState(name, "starting", None, clock.now_ns())
        self.failures = 0
        self.errors = 0  # bus errors seen
        self.retries = 0  # polls retried after a bus error
        self.reinits = 0  # re-initialisations after retries ran out or a stall
        self.reopens = 0  # attempts to open a missing chip
        self._due_ns = clock.now_ns()
        self._last_data_ns = clock.now_ns()
        self._stuck = False
        self._empty_polls = 0
        self._reinit_due_ns = 0

    @property
    def dropped_samples(self) -> int:
        return int(getattr(self.acquirer, "dropped_samples", 0))

    # -- state -------------------------------------------------------------------------------
    def _set(self, state: str, reason: str | None, fault: str | None = None) -> None:
        if state == "missing" and fault is None:
            fault = "sensor_missing"
        if state == self.status.state and reason == self.status.reason:
            return
        self.status = SensorState(self.name, state, reason, self.clock.now_ns(), fault)
        (log.info if state == "ok" else log.warning)(
            "sensor %s: %s%s", self.name, state, f" ({reason})" if reason else ""
        )
        if self.on_state is not None:
            self.on_state(self.status)

    @property
    def ok(self) -> bool:
        return self.status.state == "ok" or self._stuck

    def next_due_ns(self) -> int:
        if not self.ok:
            return self._due_ns
        return max(self.acquirer.next_due_ns(), self._due_ns)

    # -- work --------------------------------------------------------------------------------
    def open(self) -> bool:
        """Reset, identify and configure the chip; False (and missing) when it does not answer."""
        fresh = not self.ok  # starting or missing; a re-init keeps counting the silence
        if self.status.state == "missing" and not self._stuck:
            self.reopens += 1
        try:
            self.acquirer.open()
        except DEVICE_ERRORS as exc:
            self._stuck = False
            self._due_ns = self.clock.now_ns() + round(self.reopen_s * 1e9)
            self._set("missing", describe_error(exc))
            return False
        self.failures = 0
        self._due_ns = self.clock.now_ns()
        if fresh:
            self._last_data_ns = self._due_ns
            self._empty_polls = 0
        if not self._stuck:  # a stall ends with new samples, not with a successful re-init
            self._set("ok", None)
        return True

    def _check_stall(self, now: int, got_data: bool) -> bool:
        """Track new samples; on a stall, re-initialise every ``reopen_s``. True: handled."""
        if got_data:
            self._last_data_ns = now
            self._empty_polls = 0
            if self._stuck:
                self._stuck = False
                self._set("ok", None)
            return False
        self._empty_polls += 1
        silent_s = (now - self._last_data_ns) / 1e9
        # A starved reader (a loaded host) polls rarely; only a chip asked often enough and
        # silent throughout is stuck.
        if self.stall_s is None or silent_s <= self.stall_s or self._empty_polls < MIN_EMPTY_POLLS:
            return False
        if not self._stuck:
            self._stuck = True
            self._reinit_due_ns = now
            self._set("missing", f"no new samples for {silent_s:.1f} s while the chip answers",
                      "fifo_stuck")
        if now >= self._reinit_due_ns:
            self._reinit_due_ns = now + round(self.reopen_s * 1e9)
            self.reinits += 1
            try:
                self.acquirer.open()  # soft reset, reconfigure, ID check
            except DEVICE_ERRORS as exc:
                self._stuck = False
                self._due_ns = now + round(self.reopen_s * 1e9)
                self._set("missing", describe_error(exc))
            return True
        return False

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
        except DEVICE_ERRORS as exc:
            self.errors += 1
            self.failures += 1
            # Errors for longer than stall_s (a chip that times out but answers its re-init,
            # like an ADS1292R whose DRDY stopped) are a stall as well.
            if self._check_stall(now, False):
                return []
            if self.failures <= self.max_retries:
                self.retries += 1
                backoff_s = self.retry_backoff_s * 2 ** (self.failures - 1)
                self._due_ns = now + round(backoff_s * 1e9)
                log.debug("sensor %s: %s, retry in %.2f s", self.name, describe_error(exc), backoff_s)
                return []
            log.warning("sensor %s: %s after %d retries, re-initialising",
                        self.name, describe_error(exc), self.max_retries)
            self.reinits += 1
            self.open()
            return []
        self.failures = 0
        if self._check_stall(now, bool(blocks)):
            return []
        return blocks

    def close(self) -> None:
        try:
            self.acquirer.close()
        except (OSError, TimeoutError) as exc:
            log.debug("sensor %s: close failed: %s", self.name, exc)
