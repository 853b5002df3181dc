"""Digital pins from the chips, through gpiozero: data-ready / interrupt lines and lead-off flags.

``DataReadyPin`` wraps a ``gpiozero.DigitalInputDevice`` on a chip's "data ready" output - the
ADS1292R's DRDY, the MAX30102's INT, the ADS1115's ALERT/RDY - and counts its activating edges
in gpiozero's callback, so a reader can tell how many events happened since it last looked
(``pending``/``consume``) or wait for the next one with a deadline (``wait``). ``LeadOffPins``
reads the AD8232's LO+ / LO- outputs (high while an electrode is off, AD8232 data sheet,
"Leads Off Detection").

gpiozero picks the pin factory (lgpio, RPi.GPIO, ...) on a Pi; tests and the demo pass
``pin_factory=MockFactory()`` and the emulators drive the mock pins
(``sensors.emulated.pins.EmulatedPinDriver``).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from typing import Self

from gpiozero import DigitalInputDevice


def _input(pin, pin_factory, *, active_high: bool, pull_up: bool | None) -> DigitalInputDevice:
    if pull_up is None:
        return DigitalInputDevice(pin, pull_up=None, active_state=active_high,
                                  pin_factory=pin_factory)
    # gpiozero derives the active level from the pull: a pull-up means active low.
    return DigitalInputDevice(pin, pull_up=pull_up, pin_factory=pin_factory)


class DataReadyPin:
    """A chip's data-ready line; counts activating edges (falling ones when ``active_low``).

    ``pin`` is a GPIO number / gpiozero pin name, or an existing ``DigitalInputDevice`` (then it
    is used as configured and left open by ``close``). ``pull_up``: None for a push-pull output
    (ADS1292R DRDY), True for an open-drain one (MAX30102 INT, ADS1115 ALERT/RDY), which must
    then be active low. ``when_ready`` is called (no arguments) after each counted edge, in
    gpiozero's callback thread. ``clock`` only scales ``wait``'s timeout for a virtual clock.
    """

    def __init__(
        self,
        pin,
        *,
        pin_factory=None,
        active_low: bool = True,
        pull_up: bool | None = None,
        name: str = "data-ready",
        clock=None,
    ) -> None:
        self.name = name
        self.clock = clock
        if hasattr(pin, "when_activated"):  # a gpiozero input device made by the caller
            self.device = pin
            self._owned = False
        else:
            if pull_up is not None and pull_up != active_low:
                pull = "pull-up" if pull_up else "pull-down"
                level = "low" if active_low else "high"
                raise ValueError(f"{name}: a {pull} cannot be used with an active-{level} line "
                                 f"(pull_up={pull_up}, active_low={active_low})")
            self.device = _input(pin, pin_factory, active_high=not active_low, pull_up=pull_up)
            self._owned = True
        self.edges = 0
        self.when_ready: Callable[[], None] | None = None
        self._pending = 0
        self._cond = threading.Condition()
        self._closed = False
        self.device.when_activated = self._on_edge

    def _on_edge(self) -> None:
        with self._cond:
            self.edges += 1
            self._pending += 1
            self._cond.notify_all()
        callback = self.when_ready
        if callback is not None:
            callback()

    @property
    def is_active(self) -> bool:
        """The line's level now: True while the chip signals data ready."""
        return bool(self.device.is_active)

    def pending(self) -> int:
        """Edges since the last ``consume``."""
        with self._cond:
            return self._pending

    def consume(self) -> int:
        """Edges since the last ``consume``, and start counting afresh."""
        with self._cond:
            n, self._pending = self._pending, 0
            return n

    def wait(self, timeout_s: float) -> bool:
        """Wait until an edge is pending; False if none came within ``timeout_s`` (of
        ``clock``'s time when one was given). Never waits longer than that."""
        if timeout_s < 0 or math.isnan(timeout_s):
            raise ValueError(f"{self.name}: timeout_s must be >= 0, got {timeout_s}")
        speed = getattr(self.clock, "speed", 1.0) if self.clock is not None else 1.0
        real_s = 0.0 if math.isinf(speed) else timeout_s / speed
        with self._cond:
            if self._closed:
                raise RuntimeError(f"{self.name} is closed")
            return self._cond.wait_for(lambda: self._pending > 0, timeout=real_s)

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Stop counting; close the gpiozero device if this object made it. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self.when_ready = None
        self.device.when_activated = None
        if self._owned:
            self.device.close()
        with self._cond:
            self._cond.notify_all()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class LeadOffPins:
    """The AD8232's LO+ and LO- outputs: each is high while its electrode (+IN, -IN) is off.

    ``lead_off_events`` counts how often a lead came off (either pin rising);
    ``when_changed(state)`` is called with ``state()`` after every change.
    """

    def __init__(self, lo_plus, lo_minus, *, pin_factory=None) -> None:
        self.plus = _input(lo_plus, pin_factory, active_high=True, pull_up=None)
        try:
            self.minus = _input(lo_minus, pin_factory, active_high=True, pull_up=None)
        except Exception:
            self.plus.close()
            raise
        self.lead_off_events = 0
        self.when_changed: Callable[[dict[str, bool]], None] | None = None
        self._closed = False
        for device in (self.plus, self.minus):
            device.when_activated = self._on_off
            device.when_deactivated = self._on_change

    def _on_off(self) -> None:
        self.lead_off_events += 1
        self._on_change()

    def _on_change(self) -> None:
        callback = self.when_changed
        if callback is not None:
            callback(self.state())

    @property
    def plus_off(self) -> bool:
        return bool(self.plus.is_active)

    @property
    def minus_off(self) -> bool:
        return bool(self.minus.is_active)

    @property
    def lead_off(self) -> bool:
        """True while any electrode is off."""
        return self.plus_off or self.minus_off

    def state(self) -> dict[str, bool]:
        return {"plus": self.plus_off, "minus": self.minus_off}

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.when_changed = None
        for device in (self.plus, self.minus):
            device.when_activated = None
            device.when_deactivated = None
            device.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
