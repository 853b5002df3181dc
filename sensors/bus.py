"""Bus seams. A driver receives its bus; it never opens one itself.

The real I2C bus is ``smbus2.SMBus(n)``; the emulated one (``sensors.emulated.i2c``) answers
the same calls at register level. Only the calls below are used by painmon's drivers, so any
object providing them works. Failures are ``OSError`` as the kernel reports them: a chip that
does not acknowledge its address gives ``EREMOTEIO`` (121), a disturbed bus ``EIO`` (5), a
stuck bus ``ETIMEDOUT`` (110).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class I2CBus(Protocol):
    def read_byte(self, i2c_addr: int) -> int: ...

    def read_byte_data(self, i2c_addr: int, register: int) -> int: ...

    def write_byte_data(self, i2c_addr: int, register: int, value: int) -> None: ...

    def read_i2c_block_data(self, i2c_addr: int, register: int, length: int) -> list[int]: ...

    def write_i2c_block_data(self, i2c_addr: int, register: int, data: Sequence[int]) -> None: ...

    def close(self) -> None: ...


class SPIDevice(Protocol):
    """The ``spidev.SpiDev`` calls painmon's SPI drivers use."""

    max_speed_hz: int
    mode: int

    def xfer2(self, data: Sequence[int]) -> list[int]: ...

    def readbytes(self, n: int) -> list[int]: ...

    def close(self) -> None: ...


#: smbus2 limits one SMBus block transfer to 32 bytes (I2C_SMBUS_BLOCK_MAX).
SMBUS_BLOCK_MAX = 32


class ChipIdError(RuntimeError):
    """The chip at an address answered, but its ID register says it is another chip."""


def describe_i2c_bus(bus, bus_number: int | None = None) -> str:
    """``i2c-<n>`` for messages: the number given, else the bus's own, else just ``i2c``."""
    number = bus_number if bus_number is not None else getattr(bus, "bus_number", None)
    return f"i2c-{number}" if number is not None else "i2c"


def open_i2c(bus: int):
    """Open the kernel's /dev/i2c-<bus> through smbus2."""
    from smbus2 import SMBus

    return SMBus(bus)
