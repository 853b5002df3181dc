"""Emulated chips driving gpiozero mock pins: DRDY, INT, ALERT/RDY, LO+/LO-.

gpiozero's ``MockFactory`` is the test double for GPIO: ``factory.pin(n)`` is the pin a
``DigitalInputDevice(n, pin_factory=factory)`` reads, and ``drive_high``/``drive_low`` change
its level as a chip's output would, firing the device's callbacks in the caller's thread.

    factory = MockFactory()
    drdy = EmulatedPinDriver(factory, 17, level=True)      # idle high
    chip = EmulatedAds1292r(clock, ecg, drdy_pin=drdy)

Chip emulators compute what happened lazily, when they are talked to. A data-ready line has
to move without being talked to, so something must let time pass for the chip: a test calls
``chip.tick()`` after advancing its clock; the demo runs a ``Ticker`` thread.
"""

from __future__ import annotations

import heapq
import logging
import threading
from collections.abc import Iterable
from typing import Self

log = logging.getLogger(__name__)

#: How many level changes a ``bounded_mock_factory`` pin remembers. gpiozero's ``MockPin``
#: keeps every one in ``states`` (for tests' ``assert_states``): a data-ready line at 100 Hz
#: would add ~0.6 MB a minute, for as long as the demo runs.
PIN_HISTORY = 256


def bounded_mock_factory():
    """A gpiozero ``MockFactory`` whose pins keep only their last ``PIN_HISTORY`` states."""
    from gpiozero.pins.mock import MockFactory, MockPin

    class BoundedMockPin(MockPin):
        def _change_state(self, value):
            changed = super()._change_state(value)
            if changed and len(self.states) > 2 * PIN_HISTORY:
                del self.states[:-PIN_HISTORY]  # amortised: one trim per PIN_HISTORY changes
            return changed

    return MockFactory(pin_class=BoundedMockPin)


class EmulatedPinDriver:
    """The output of an emulated chip wired to GPIO ``pin_number`` of a gpiozero MockFactory."""

    def __init__(self, factory, pin_number, *, level: bool | None = None) -> None:
        self.factory = factory
        self.pin_number = pin_number
        self.pin = factory.pin(pin_number)
        self.transitions = 0
        if level is not None:
            self.set(level)

    @property
    def level(self) -> bool:
        return bool(self.pin.state)

    def set(self, level: bool) -> None:
        if bool(level) == self.level:
            return
        self.transitions += 1
        if level:
            self.pin.drive_high()
        else:
            self.pin.drive_low()

    def high(self) -> None:
        self.set(True)

    def low(self) -> None:
        self.set(False)

    def __repr__(self) -> str:
        return f"EmulatedPinDriver({self.pin!r}, level={int(self.level)})"


class Ticker:
    """A thread calling ``tick()`` on emulated chips (or ``EmulatedSpiDev``s) every ``period_s``
    of real time, so their pins move while nobody talks to them. A chip that raises is logged
    and dropped from the list, never silently."""

    def __init__(self, targets: Iterable, period_s: float = 0.002, name: str = "emulator-ticker") -> None:
        if not period_s > 0:
            raise ValueError(f"period_s must be > 0, got {period_s}")
        self.targets = list(targets)
        self.period_s = period_s
        self.name = name
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Self:
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            for target in list(self.targets):
                try:
                    target.tick()
                except Exception as exc:  # reported, and the chip is dropped
                    log.exception("%s: %r failed, no longer ticked", self.name, target)
                    self.errors.append(exc)
                    self.targets.remove(target)

    def stop(self, timeout_s: float = 1.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class PinScheduler:
    """A thread that runs callbacks at given times of a clock: the moment a conversion ends or
    a FIFO reaches its threshold, when an emulated chip's interrupt line has to move without
    anybody talking to the chip.

    ``call_at(t_ns, fn)`` runs ``fn()`` in the scheduler's thread once ``clock.now_ns()`` has
    reached ``t_ns``; it returns a handle for ``cancel``. On a real or scaled clock the thread
    sleeps until then; on a ``SteppedClock`` (infinite speed) it looks every ``step_s`` of real
    time whether the clock has been advanced. A callback that raises is logged and counted in
    ``errors``; the others still run.
    """

    def __init__(self, clock, *, step_s: float = 0.001, name: str = "emulator-pins") -> None:
        self.clock = clock
        self.step_s = step_s
        self.name = name
        self.errors: list[BaseException] = []
        self._queue: list[tuple[int, int, object]] = []  # heap of (t_ns, seq, fn)
        self._cancelled: set[int] = set()
        self._seq = 0
        self._cond = threading.Condition()
        self._stopped = False
        self._thread: threading.Thread | None = None

    def call_at(self, t_ns: int, fn) -> int:
        with self._cond:
            if self._stopped:
                raise RuntimeError(f"{self.name} is closed")
            self._seq += 1
            heapq.heappush(self._queue, (int(t_ns), self._seq, fn))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._thread.start()
            self._cond.notify()
            return self._seq

    def cancel(self, handle: int | None) -> None:
        if handle is None:
            return
        with self._cond:
            if any(seq == handle for _, seq, _ in self._queue):
                self._cancelled.add(handle)

    def pending(self) -> int:
        with self._cond:
            return len(self._queue) - len(self._cancelled)

    def _wait_s(self, t_ns: int) -> float:
        speed = getattr(self.clock, "speed", 1.0)
        if speed == float("inf"):
            return self.step_s
        return max(0.0, (t_ns - self.clock.now_ns()) / 1e9 / speed)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopped:
                    if not self._queue:
                        self._cond.wait()
                        continue
                    t_ns, seq, fn = self._queue[0]
                    if seq in self._cancelled:
                        heapq.heappop(self._queue)
                        self._cancelled.discard(seq)
                        continue
                    if self.clock.now_ns() >= t_ns:
                        heapq.heappop(self._queue)
                        break
                    self._cond.wait(self._wait_s(t_ns))
                else:
                    return
            try:
                fn()
            except Exception as exc:  # reported; the other callbacks still run
                log.exception("%s: callback %r failed", self.name, fn)
                self.errors.append(exc)

    def close(self, timeout_s: float = 1.0) -> None:
        with self._cond:
            self._stopped = True
            self._queue.clear()
            self._cancelled.clear()
            self._cond.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout_s)


class InterruptLine:
    """An emulated chip's active-low, open-drain interrupt output (MAX30102 INT, ADS1115
    ALERT/RDY) on a mock pin: low while the chip asserts it, pulled high otherwise.

    The chip calls ``assert_``/``release`` as its state changes, and ``wake_at(t_ns, fn)`` to
    have ``fn`` run (under the chip's bus lock) when its state will next change by itself.
    Only one wake-up is pending at a time: a new one replaces the old. ``disconnect()`` is the
    cable pulled: the wake-up is dropped and the pull-up takes the line high.
    """

    def __init__(self, driver: EmulatedPinDriver, scheduler: PinScheduler) -> None:
        self.driver = driver
        self.scheduler = scheduler
        self.lock = threading.RLock()  # replaced by the bus lock when the chip is attached
        self._wake: int | None = None
        self.driver.high()

    @property
    def asserted(self) -> bool:
        return not self.driver.level

    def assert_(self) -> None:
        self.driver.low()

    def release(self) -> None:
        self.driver.high()

    def pulse(self) -> None:
        """A short low pulse (the ADS1115's 8 us RDY pulse in continuous mode)."""
        self.driver.low()
        self.driver.high()

    def wake_at(self, t_ns: int | None, fn) -> None:
        self.scheduler.cancel(self._wake)
        self._wake = None
        if t_ns is None:
            return

        def run() -> None:
            with self.lock:
                self._wake = None
                fn()

        self._wake = self.scheduler.call_at(t_ns, run)

    def disconnect(self) -> None:
        self.scheduler.cancel(self._wake)
        self._wake = None
        self.driver.high()
