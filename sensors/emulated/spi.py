"""An emulated ``spidev.SpiDev``: one chip select of an SPI controller with a chip behind it.

    spi = EmulatedSpiDev(EmulatedMcp3008(clock, source), bus=0, device=0)
    adc = Mcp3008(spi, clock)            # the driver sees the spidev calls it would on a Pi

SPI is full duplex: while the controller shifts a byte out on MOSI, the chip shifts one back on
MISO. Each transaction (chip select held low from the first byte to the last, which is what
``xfer2`` does) is handed to the chip as ``chip.transfer(tx) -> rx``, one byte back for each
byte sent. ``readbytes(n)`` clocks ``n`` zero bytes out (the kernel sends zeros when it has no
transmit buffer); ``writebytes`` discards what comes back.

What a real bus does when things are wrong, and what this one does:

- No chip (``detach()``: cable pulled): nothing drives MISO, so every byte reads as the line's
  idle level, ``miso_idle`` - 0x00 by default because the Raspberry Pi's GPIO9 (SPI0 MISO)
  has its pull-down enabled at reset (BCM2835 ARM Peripherals, 6.2 "Alternative Function
  Assignments": GPIO 9-27 default to pull-down), 0xFF for a board with a pull-up. There is
  no error: SPI has no acknowledge, so drivers must notice an absent chip from its ID or
  from implausible data. Chips also use ``miso_idle`` for the bits during which they leave
  DOUT in high impedance.
- Wrong SPI mode: a chip sampling MOSI on the other clock edge sees the controller's bits one
  clock late, and the controller samples MISO one clock early: the emulation delays both bit
  streams by one bit. The result is garbage a driver must catch (an ID that does not match,
  a null bit that is not null), not an exception - exactly the symptom on a real board.
- Clock faster than the chip's ``max_speed_hz``: DOUT settles too late for the controller's
  sampling edge, so the controller reads each MISO bit one clock late (garbage again); the
  chip still reads MOSI.
- Closed device: ``OSError(EBADF)``, as an ioctl on a closed file descriptor gives.
- A transfer longer than spidev's buffer (4096 bytes, the ``bufsiz`` module parameter):
  ``OverflowError``, as spidev raises.
- Fault injection: each callable in ``fault_hooks`` is called with ``(bus, device)`` before
  every transaction, inside the device lock; it may raise (``OSError(EIO)``, ``ETIMEDOUT``
  as an SPI controller's DMA timeout gives) or block.

A chip is any object with ``transfer(tx: list[int]) -> list[int]``; optional attributes
``spi_modes`` (modes it accepts, default all), ``max_speed_hz`` (default unlimited) and
``miso_idle`` (set by the bus on attach). ``spi_mode``/``spi_speed_hz`` of the last
transaction are passed as attributes before ``transfer`` for chips whose timing depends
on them.
"""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Sequence

#: spidev's default transfer buffer size (the spidev module parameter ``bufsiz``).
SPIDEV_BUFSIZ = 4096
#: A Raspberry Pi's spidev starts at the controller's maximum until a driver sets a speed.
DEFAULT_SPEED_HZ = 125_000_000


def _bits(data: Sequence[int]) -> list[int]:
    return [(byte >> (7 - i)) & 1 for byte in data for i in range(8)]


def _bytes(bits: Sequence[int]) -> list[int]:
    out = []
    for k in range(0, len(bits), 8):
        value = 0
        for bit in bits[k:k + 8]:
            value = (value << 1) | bit
        out.append(value)
    return out


def delay_one_bit(data: Sequence[int], first_bit: int) -> list[int]:
    """The bit stream of ``data`` one clock late: ``first_bit`` enters, the last bit is lost."""
    bits = _bits(data)
    return _bytes([first_bit & 1] + bits[:-1]) if bits else []


class EmulatedSpiDev:
    """The ``spidev.SpiDev`` surface painmon's SPI drivers use, with an emulated chip behind it."""

    def __init__(self, chip=None, *, bus: int = 0, device: int = 0, miso_idle: int = 0x00) -> None:
        if miso_idle not in (0x00, 0xFF):
            raise ValueError(f"miso_idle must be 0x00 (pull-down) or 0xFF (pull-up), got {miso_idle!r}")
        self.bus = bus
        self.device = device
        self.miso_idle = miso_idle
        self.chip = None
        self.closed = False
        self.transactions = 0
        self.fault_hooks: list = []
        #: Transactions the chip could not have understood (wrong mode, clock too fast).
        self.garbled = 0
        self._mode = 0
        self._bits_per_word = 8
        self.max_speed_hz = DEFAULT_SPEED_HZ
        self.lsbfirst = False
        self.cshigh = False
        # Re-entrant: a chip may drive a gpiozero mock pin whose callback, in the same thread,
        # runs a driver that reads this device again.
        self._lock = threading.RLock()
        if chip is not None:
            self.attach(chip)

    @property
    def bus_number(self) -> int:
        return self.bus

    def held(self) -> threading.RLock:
        """The device's lock, for a change to the chip that must not interleave with a
        transaction (``with spidev.held(): ...``)."""
        return self._lock

    # -- wiring ----------------------------------------------------------------------------------
    def attach(self, chip):
        """Plug ``chip`` in behind this chip select; returns it."""
        if not callable(getattr(chip, "transfer", None)):
            raise TypeError(f"{chip!r} has no transfer(tx) -> rx method")
        with self._lock:
            self.chip = chip
            if hasattr(chip, "miso_idle"):
                chip.miso_idle = self.miso_idle
        return chip

    def detach(self) -> None:
        """Pull the chip's cable: MISO floats to ``miso_idle`` from now on."""
        with self._lock:
            self.chip = None

    @property
    def plugged(self) -> bool:
        return self.chip is not None

    def tick(self) -> None:
        """Let the chip catch up with time (data-ready pins), serialised with transactions."""
        with self._lock:
            if self.chip is not None and hasattr(self.chip, "tick"):
                self.chip.tick()

    # -- spidev attributes ----------------------------------------------------------------------
    @property
    def mode(self) -> int:
        return self._mode

    @mode.setter
    def mode(self, value: int) -> None:
        if not isinstance(value, int) or value not in (0, 1, 2, 3):
            raise TypeError("The mode attribute must be an integer between 0 and 3.")
        self._mode = value

    @property
    def bits_per_word(self) -> int:
        return self._bits_per_word

    @bits_per_word.setter
    def bits_per_word(self, value: int) -> None:
        if not isinstance(value, int) or not 8 <= value <= 16:
            raise TypeError("The bits_per_word attribute must be an integer from 8 to 16.")
        self._bits_per_word = value

    # -- spidev calls -----------------------------------------------------------------------------
    def open(self, bus: int, device: int) -> None:
        """Open /dev/spidev<bus>.<device>; only the chip select this object models exists."""
        if (bus, device) != (self.bus, self.device):
            path = f"/dev/spidev{bus}.{device}"
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
        self.closed = False

    def close(self) -> None:
        self.closed = True

    def xfer2(self, data: Sequence[int], speed_hz: int = 0, delay_usec: int = 0,
              bits_per_word: int = 0) -> list[int]:
        """One transaction, chip select held low throughout: the bytes the chip shifted out."""
        tx = self._check(data)
        speed = speed_hz or self.max_speed_hz
        with self._lock:
            self.transactions += 1
            for hook in list(self.fault_hooks):
                hook(self.bus, self.device)
            chip = self.chip
            if chip is None:
                return [self.miso_idle] * len(tx)
            mode_ok = self._mode in getattr(chip, "spi_modes", (0, 1, 2, 3))
            speed_ok = speed <= getattr(chip, "max_speed_hz", float("inf"))
            chip.spi_mode = self._mode
            chip.spi_speed_hz = speed
            if not (mode_ok and speed_ok):
                self.garbled += 1
            seen = tx if mode_ok else delay_one_bit(tx, 0)
            rx = [int(b) & 0xFF for b in chip.transfer(list(seen))]
            if len(rx) != len(tx):
                raise RuntimeError(f"{type(chip).__name__}.transfer returned {len(rx)} bytes "
                                   f"for {len(tx)} sent")
            if not (mode_ok and speed_ok):
                rx = delay_one_bit(rx, self.miso_idle)
            return rx

    def xfer(self, data: Sequence[int], *args) -> list[int]:
        return self.xfer2(data, *args)

    def readbytes(self, n: int) -> list[int]:
        if not isinstance(n, int) or n < 0:
            raise ValueError(f"readbytes: n must be a non-negative int, got {n!r}")
        return self.xfer2([0] * n)

    def writebytes(self, data: Sequence[int]) -> None:
        self.xfer2(data)

    def writebytes2(self, data: Sequence[int]) -> None:
        self.xfer2(data)

    def _check(self, data: Sequence[int]) -> list[int]:
        if self.closed:
            raise OSError(errno.EBADF, os.strerror(errno.EBADF))
        tx = list(data)
        if len(tx) > SPIDEV_BUFSIZ:
            raise OverflowError(f"Argument list size exceeds {SPIDEV_BUFSIZ} bytes.")
        for b in tx:
            if not isinstance(b, int) or not 0 <= b <= 0xFF:
                raise TypeError(f"Non-Int/Long value in arguments: {b!r} (bytes are 0..255)")
        if self._bits_per_word != 8:
            raise OSError(errno.EINVAL, f"{os.strerror(errno.EINVAL)}: emulated chips "
                          f"take 8-bit words, bits_per_word is {self._bits_per_word}")
        return tx

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
