"""Reference model of the register semantics documented in :mod:`ttaccel.spec.regmap`.

Written from the spec's text, not from :mod:`ttaccel.hw.csr`: a word at any byte address
(low two bits ignored, unmapped words read 0 and ignore writes), per-field access kinds
(RO / RW / WO / W1C), byte strobes, and 64-bit counters read low word first with the high
word latched by the low-word read. The hardware-driven values (RO fields, W1C set/clear,
counters) are set by the test through :meth:`drive`, :meth:`flag_event` and ``counters``.
"""

from __future__ import annotations

from ttaccel.spec.regmap import IP_IDENTIFIER, IP_VERSION, REGMAP, config_register_values

__all__ = ["RegisterModel", "strobe_mask"]


def strobe_mask(strb: int) -> int:
    """The bit mask of the bytes whose write strobe is set."""
    return sum(0xFF << (8 * i) for i in range(4) if strb >> i & 1)


class RegisterModel:
    """Expected register contents after any sequence of bus writes and hardware events."""

    def __init__(self, config, regmap=REGMAP):
        self.regmap = regmap
        major, minor, patch = IP_VERSION
        self.fixed = {"ID": IP_IDENTIFIER, "VERSION": (major << 16) | (minor << 8) | patch}
        self.fixed.update(config_register_values(config))
        self.counters = {}  # name -> 64-bit value the hardware drives now
        self.latched = {}  # name -> latched high word
        self.values = {}  # (register, field) -> value of RW / W1C / RO fields
        for reg in regmap:
            if reg.name.endswith("_LO"):
                base = reg.name[:-3]
                self.counters[base] = 0
                self.latched[base] = 0
        for reg in self._field_registers():
            for field in reg.fields:
                self.values[reg.name, field.name] = field.reset or 0

    def _field_registers(self):
        for reg in self.regmap:
            if reg.name in self.fixed or reg.name.endswith(("_LO", "_HI")):
                continue
            yield reg

    def reset(self) -> None:
        """Back to the reset state (counters driven by the hardware keep their values)."""
        for name in self.latched:
            self.latched[name] = 0
        for reg in self._field_registers():
            for field in reg.fields:
                self.values[reg.name, field.name] = field.reset or 0

    def drive(self, register: str, field: str, value: int) -> None:
        """The hardware now drives RO field ``register.field`` with ``value``."""
        assert self.regmap.field(register, field).access == "RO"
        self.values[register, field] = value

    def flag_event(self, register: str, field: str, *, set_bits: int = 0, clear_bits: int = 0):
        """The hardware sets and/or clears bits of a W1C flag in one cycle (set wins)."""
        assert self.regmap.field(register, field).access == "W1C"
        value = self.values[register, field]
        self.values[register, field] = (value & ~clear_bits) | set_bits

    def _register_at(self, address: int):
        word = address & ~3
        for reg in self.regmap:
            if reg.offset == word:
                return reg
        return None

    def read(self, address: int) -> int:
        """The word a read of byte ``address`` returns (and its side effects)."""
        reg = self._register_at(address)
        if reg is None:
            return 0
        if reg.name in self.fixed:
            return self.fixed[reg.name]
        if reg.name.endswith("_LO"):
            base = reg.name[:-3]
            self.latched[base] = self.counters[base] >> 32
            return self.counters[base] & 0xFFFF_FFFF
        if reg.name.endswith("_HI"):
            return self.latched[reg.name[:-3]]
        word = 0
        for field in reg.fields:
            if field.access != "WO":
                word |= self.values[reg.name, field.name] << field.lsb
        return word

    def write(self, address: int, data: int, strb: int = 0xF) -> dict[str, int]:
        """Apply a write; returns ``{field: bits}`` of the WO fields it pulses (non-zero)."""
        reg = self._register_at(address)
        pulses: dict[str, int] = {}
        if reg is None or reg.name in self.fixed or reg.name.endswith(("_LO", "_HI")):
            return pulses
        data &= strobe_mask(strb)
        mask = strobe_mask(strb)
        for field in reg.fields:
            bits, bmask = field.extract(data), field.extract(mask)
            key = (reg.name, field.name)
            if field.access == "RW":
                self.values[key] = (self.values[key] & ~bmask) | bits
            elif field.access == "W1C":
                self.values[key] &= ~bits
            elif field.access == "WO" and bits:
                pulses[field.name] = bits
        return pulses
