"""An emulated I2C bus that answers smbus2's calls from register-level chip emulators.

    bus = EmulatedI2CBus(clock)
    bus.attach(0x57, EmulatedMax30102(clock, simulator))
    Max30102(bus).open()          # the real driver, unchanged

A chip emulator implements ``read(register, length) -> list[int]`` and
``write(register, data)`` on raw bytes, as the chip sees an I2C transaction: a register
pointer followed by bytes read or written. An address with no chip raises ``OSError`` with
``EREMOTEIO``, exactly what the kernel reports for a NACK.

Fault injection: each callable in ``fault_hooks`` is called with the address before every
transaction, inside the bus lock. It may raise (``OSError(EIO)`` is what a disturbed bus
gives, ``ETIMEDOUT`` a chip stretching the clock for ever) or block (a stalled bus).
"""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Callable, Sequence
from typing import Protocol

from sensors.bus import SMBUS_BLOCK_MAX


class EmulatedI2CChip(Protocol):
    def read(self, register: int, length: int) -> list[int]: ...

    def write(self, register: int, data: Sequence[int]) -> None: ...


def _oserror(code: int) -> OSError:
    return OSError(code, os.strerror(code))


class EmulatedI2CBus:
    """The smbus2 surface painmon's drivers use, routed to attached chip emulators."""

    def __init__(self, bus_number: int = 1) -> None:
        self.bus_number = bus_number
        self.chips: dict[int, EmulatedI2CChip] = {}
        self.transactions = 0
        self.closed = False
        self.fault_hooks: list[Callable[[int], None]] = []
        self._lock = threading.RLock()

    # -- wiring ------------------------------------------------------------------------------
    def attach(self, address: int, chip: EmulatedI2CChip) -> EmulatedI2CChip:
        if not 0x03 <= address <= 0x77:
            raise ValueError(f"0x{address:02x} is not a 7-bit I2C device address")
        with self._lock:
            if address in self.chips:
                raise ValueError(f"i2c-{self.bus_number}: 0x{address:02x} is taken")
            self.chips[address] = chip
            # A chip that moves an interrupt line by itself does so under the bus lock, so
            # its state never changes in the middle of a transaction.
            line = getattr(chip, "interrupt", None)
            if line is not None:
                line.lock = self._lock
        return chip

    def detach(self, address: int) -> EmulatedI2CChip | None:
        """Unplug the chip at ``address``: it NACKs, and its interrupt line floats high."""
        with self._lock:
            chip = self.chips.pop(address, None)
            line = getattr(chip, "interrupt", None)
            if line is not None:
                line.disconnect()
            return chip

    def _chip(self, address: int) -> EmulatedI2CChip:
        if self.closed:
            raise _oserror(errno.EBADF)
        self.transactions += 1
        for hook in list(self.fault_hooks):
            hook(address)
        chip = self.chips.get(address)
        if chip is None:
            raise _oserror(errno.EREMOTEIO)
        return chip

    # -- smbus2 calls --------------------------------------------------------------------------
    def read_byte(self, i2c_addr: int) -> int:
        with self._lock:
            return self._chip(i2c_addr).read(0, 1)[0]

    def read_byte_data(self, i2c_addr: int, register: int) -> int:
        with self._lock:
            return self._chip(i2c_addr).read(register, 1)[0]

    def write_byte_data(self, i2c_addr: int, register: int, value: int) -> None:
        if not 0 <= value <= 0xFF:
            raise ValueError(f"byte out of range: {value}")
        with self._lock:
            self._chip(i2c_addr).write(register, [value])

    def read_i2c_block_data(self, i2c_addr: int, register: int, length: int) -> list[int]:
        if not 1 <= length <= SMBUS_BLOCK_MAX:
            raise ValueError(f"Desired block length over {SMBUS_BLOCK_MAX} bytes")
        with self._lock:
            return list(self._chip(i2c_addr).read(register, length))

    def write_i2c_block_data(self, i2c_addr: int, register: int, data: Sequence[int]) -> None:
        if len(data) > SMBUS_BLOCK_MAX:
            raise ValueError(f"Data length cannot exceed {SMBUS_BLOCK_MAX} bytes")
        with self._lock:
            self._chip(i2c_addr).write(register, list(data))

    def close(self) -> None:
        self.closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class RegisterChip:
    """Base for chip emulators whose registers are one byte wide and auto-increment.

    Subclasses override ``on_read``/``on_write`` for registers with side effects (FIFO data,
    reset bits, status registers cleared on read).
    """

    def __init__(self, regfile) -> None:
        self.regs = regfile

    def on_read(self, address: int) -> int:
        return self.regs.values.get(address, 0)

    def on_write(self, address: int, value: int) -> None:
        reg = self.regs.map.at(address)
        if reg is not None and "w" in reg.access:
            self.regs.values[address] = value

    def read(self, register: int, length: int) -> list[int]:
        return [self.on_read((register + i) & 0xFF) for i in range(length)]

    def write(self, register: int, data: Sequence[int]) -> None:
        for i, value in enumerate(data):
            self.on_write((register + i) & 0xFF, value)
