"""The kernel's buses as drivers get them: opened on first use, every transaction on a deadline.

Opening lazily means a missing ``/dev/i2c-N`` or ``/dev/spidevB.D`` (interface not enabled,
wrong number) marks the sensors on it missing, with the path in the reason, instead of stopping
the app. ``TimedBus`` puts a deadline on every transaction: the kernel's I2C adapter timeout
(``I2C_TIMEOUT``, set to 100 ms here) bounds a chip stretching SCL, and a transaction that
still comes back later than ``deadline_s`` - on the emulated board, a stalled bus - is failed
with ``ETIMEDOUT`` so it goes through the same retry path as any bus error.
"""

from __future__ import annotations

import errno
import fcntl
import logging

from sensors.bus import open_i2c
from sensors.clock import Clock

log = logging.getLogger(__name__)

#: linux/i2c-dev.h: adapter timeout, in units of 10 ms.
I2C_TIMEOUT = 0x0702
I2C_TIMEOUT_10MS = 10
TRANSACTIONS = frozenset({
    "read_byte", "read_byte_data", "write_byte_data", "read_i2c_block_data",
    "write_i2c_block_data", "xfer", "xfer2", "readbytes", "writebytes", "writebytes2",
})


class LazyI2C:
    """``smbus2.SMBus(number)`` opened on first use, with the adapter timeout set."""

    def __init__(self, number: int) -> None:
        self.number = number
        self.bus_number = number
        self._bus = None

    def __getattr__(self, name):
        if self._bus is None:
            self._bus = open_i2c(self.number)
            try:
                fcntl.ioctl(self._bus.fd, I2C_TIMEOUT, I2C_TIMEOUT_10MS)
            except (OSError, AttributeError, TypeError) as exc:
                log.debug("i2c-%d: cannot set I2C_TIMEOUT: %s", self.number, exc)
        return getattr(self._bus, name)

    def close(self) -> None:
        if self._bus is not None:
            self._bus.close()
            self._bus = None


class LazySpi:
    """``spidev.SpiDev`` opened on ``/dev/spidev<bus>.<device>`` on first use."""

    def __init__(self, bus: int, device: int) -> None:
        object.__setattr__(self, "bus", bus)
        object.__setattr__(self, "device", device)
        object.__setattr__(self, "_dev", None)

    def _open(self):
        if self._dev is None:
            import spidev

            dev = spidev.SpiDev()
            path = f"/dev/spidev{self.bus}.{self.device}"
            try:
                dev.open(self.bus, self.device)
            except OSError as exc:  # spidev leaves the path out
                raise type(exc)(exc.errno, exc.strerror or str(exc), path) from None
            object.__setattr__(self, "_dev", dev)
        return self._dev

    def __getattr__(self, name):
        return getattr(self._open(), name)

    def __setattr__(self, name, value) -> None:
        setattr(self._open(), name, value)

    def close(self) -> None:
        if self._dev is not None:
            self._dev.close()
            object.__setattr__(self, "_dev", None)


class TimedBus:
    """Any bus (smbus2- or spidev-like) whose transactions fail with ``ETIMEDOUT`` when they
    take longer than ``deadline_s`` of ``clock`` time; other attributes pass through."""

    def __init__(self, bus, clock: Clock, deadline_s: float, where: str) -> None:
        object.__setattr__(self, "_bus", bus)
        object.__setattr__(self, "_clock", clock)
        object.__setattr__(self, "deadline_s", deadline_s)
        object.__setattr__(self, "where", where)
        object.__setattr__(self, "timeouts", 0)

    def __getattr__(self, name):
        attr = getattr(self._bus, name)
        if name not in TRANSACTIONS:
            return attr

        def timed(*args, **kwargs):
            start = self._clock.now_ns()
            result = attr(*args, **kwargs)
            took_s = (self._clock.now_ns() - start) / 1e9
            if took_s > self.deadline_s:
                object.__setattr__(self, "timeouts", self.timeouts + 1)
                raise TimeoutError(errno.ETIMEDOUT, f"{self.where}: {name} took {took_s:.2f} s "
                                   f"(deadline {self.deadline_s:g} s)")
            return result

        return timed

    def __setattr__(self, name, value) -> None:
        setattr(self._bus, name, value)
