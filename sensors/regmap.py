"""Register maps as data.

A chip's registers and bit fields are written once, as a table that reads like the
datasheet. The driver and the chip's emulator both use that table, so they cannot drift apart.

    MODE_CONFIG = Register("MODE_CONFIG", 0x09, reset=0x00, fields=(
        Field("SHDN", 7), Field("RESET", 6), Field("MODE", 2, 0)))
    MODE_CONFIG.encode(MODE=0b011)          # -> 0x03
    MODE_CONFIG.decode(0x43)["RESET"]       # -> 1
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Field:
    """Bits ``msb`` down to ``lsb`` (inclusive) of a register; ``lsb`` defaults to ``msb``."""

    name: str
    msb: int
    lsb: int | None = None

    @property
    def low(self) -> int:
        return self.msb if self.lsb is None else self.lsb

    @property
    def width(self) -> int:
        return self.msb - self.low + 1

    @property
    def mask(self) -> int:
        return ((1 << self.width) - 1) << self.low

    def get(self, register_value: int) -> int:
        return (register_value & self.mask) >> self.low

    def put(self, register_value: int, value: int) -> int:
        if not 0 <= value < (1 << self.width):
            raise ValueError(f"field {self.name}: {value} does not fit in {self.width} bit(s)")
        return (register_value & ~self.mask) | (value << self.low)


@dataclass(frozen=True)
class Register:
    """One register: address, size in bytes (multi-byte registers are big-endian on the wire
    unless the map says otherwise), reset value, access ("rw", "r", "w") and bit fields."""

    name: str
    address: int
    reset: int = 0
    access: str = "rw"
    fields: tuple[Field, ...] = ()
    size: int = 1

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"register {self.name} has no field {name!r}")

    def encode(self, base: int | None = None, **values: int) -> int:
        """Put field values into ``base`` (default: the reset value)."""
        value = self.reset if base is None else base
        for name, v in values.items():
            value = self.field(name).put(value, int(v))
        return value

    def decode(self, value: int) -> dict[str, int]:
        return {f.name: f.get(value) for f in self.fields}


@dataclass
class RegisterMap:
    """All registers of one chip; ``byteorder`` is how its multi-byte registers go on the wire."""

    chip: str
    registers: Iterable[Register]
    byteorder: str = "big"
    _by_name: dict[str, Register] = field(init=False, repr=False)
    _by_address: dict[int, Register] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.registers = tuple(self.registers)
        self._by_name = {r.name: r for r in self.registers}
        self._by_address = {r.address: r for r in self.registers}
        if len(self._by_name) != len(self.registers) or len(self._by_address) != len(self.registers):
            raise ValueError(f"{self.chip}: duplicate register name or address")

    def __getitem__(self, name: str) -> Register:
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"{self.chip} has no register {name!r}") from None

    def __iter__(self):
        return iter(self.registers)

    def at(self, address: int) -> Register | None:
        return self._by_address.get(address)

    def reset_values(self) -> dict[int, int]:
        return {r.address: r.reset for r in self.registers}


class RegisterFile:
    """The state of a chip's registers, for emulators: reset values, then what is written."""

    def __init__(self, regmap: RegisterMap) -> None:
        self.map = regmap
        self.values: dict[int, int] = {}
        self.reset()

    def reset(self) -> None:
        self.values = self.map.reset_values()

    def get(self, name: str) -> int:
        return self.values[self.map[name].address]

    def set(self, name: str, value: int) -> None:
        self.values[self.map[name].address] = value

    def get_field(self, register: str, field_name: str) -> int:
        return self.map[register].field(field_name).get(self.get(register))

    def set_field(self, register: str, field_name: str, value: int) -> None:
        reg = self.map[register]
        self.set(register, reg.field(field_name).put(self.get(register), value))


class I2CRegisters:
    """Named register access to one chip on an I2C bus, for drivers.

    ``read``/``write`` move whole registers (multi-byte ones in the map's byte order);
    ``update`` is a read-modify-write of some fields.
    """

    def __init__(self, bus, address: int, regmap: RegisterMap) -> None:
        self.bus = bus
        self.address = address
        self.map = regmap

    def read(self, name: str) -> int:
        reg = self.map[name]
        if reg.size == 1:
            return self.bus.read_byte_data(self.address, reg.address)
        data = self.bus.read_i2c_block_data(self.address, reg.address, reg.size)
        return int.from_bytes(bytes(data), self.map.byteorder)

    def write(self, name: str, value: int) -> None:
        reg = self.map[name]
        if reg.size == 1:
            self.bus.write_byte_data(self.address, reg.address, value & 0xFF)
        else:
            data = list(int(value).to_bytes(reg.size, self.map.byteorder))
            self.bus.write_i2c_block_data(self.address, reg.address, data)

    def read_fields(self, name: str) -> dict[str, int]:
        return self.map[name].decode(self.read(name))

    def update(self, name: str, **fields: int) -> int:
        value = self.map[name].encode(base=self.read(name), **fields)
        self.write(name, value)
        return value
