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

import logging
import threading
from collections.abc import Iterable
from typing import Self

log = logging.getLogger(__name__)


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
