"""AXI4-Lite control and status registers, generated from :data:`ttaccel.spec.regmap.REGMAP`.

:class:`CsrBank` is an AXI4-Lite subordinate whose registers, offsets, fields and access
kinds all come from a :class:`~ttaccel.spec.regmap.RegisterMap`; no offset is written here.
Registers fall in three groups:

* *constants*: registers given a fixed word at generation (``ID``, ``VERSION`` and the
  ``CONFIG_*`` words of an :class:`~ttaccel.spec.accel_config.AccelConfig`, see
  :func:`constant_words`).
* *counters*: each ``<NAME>_LO`` / ``<NAME>_HI`` pair of read-only 32-bit registers at
  consecutive offsets is one 64-bit input ``counters.<name>``. Reading ``_LO`` returns the low
  word and latches the high word of the same cycle; reading ``_HI`` returns the latch, so a
  low-then-high read pair is one consistent 64-bit value.
* *fields*: every other field is a port ``fields.<register>.<field>`` (lower case), by access:

  ======  ===========================================================================
  RW      ``Out(width)``: the stored value (reset value from the map).
  WO      ``Out(width)``: the written bits for exactly one cycle, zero otherwise.
  RO      ``In(width)``: the value the hardware drives.
  W1C     ``Out(Signature(value: Out, set: In, clear: In))``: a sticky flag; ``set``
          bits set it, writing 1 or a ``clear`` bit clears it; set wins over clear.
  ======  ===========================================================================

Bus behaviour: byte addresses of ``ceil_log2(ADDRESS_SPACE)`` bits, the two low bits ignored
(a register is addressed by any byte address inside it). Unmapped reads return 0 and writes
to them are ignored; responses are always OKAY. ``WSTRB`` is honoured: only bytes with their
strobe set are written (for WO and W1C: only their bits can pulse or clear). A write is
performed once both its address and data have been accepted (in either order, or together)
and its response is held until ``BREADY``; a new write is accepted only after that. A read
returns its data one cycle after the address is accepted. Read data is registered at address
acceptance, so ``RDATA`` is stable while ``RVALID`` waits for ``RREADY``. Throughput: one
write per three cycles, one read per two cycles (plenty for control traffic). No
combinational path from any ``*VALID`` to any ``*READY``.
"""

from __future__ import annotations

from collections.abc import Mapping

from amaranth import C, Cat, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from ..spec.accel_config import AccelConfig
from ..spec.regmap import (
    ADDRESS_SPACE,
    DATA_WIDTH,
    REGMAP,
    Field,
    Register,
    RegisterMap,
    config_register_values,
)

__all__ = ["ADDRESS_WIDTH", "CsrBank", "axi_lite_signature", "constant_words", "counter_pairs"]

ADDRESS_WIDTH = ceil_log2(ADDRESS_SPACE)
"""Bits of an AXI4-Lite byte address into the register window."""


def axi_lite_signature(*, addr_width: int = ADDRESS_WIDTH, data_width: int = DATA_WIDTH):
    """AXI4-Lite channels with directions as the manager sees them (a subordinate is
    ``In(axi_lite_signature())``). ``AWPROT`` / ``ARPROT`` are left out: nothing here
    depends on them."""
    if not isinstance(addr_width, int) or addr_width < 2:
        raise ValueError(f"Address width must be an integer of at least 2, not {addr_width!r}")
    if data_width not in (32, 64):
        raise ValueError(f"Data width must be 32 or 64, not {data_width!r}")
    return wiring.Signature({
        "awaddr": Out(addr_width), "awvalid": Out(1), "awready": In(1),
        "wdata": Out(data_width), "wstrb": Out(data_width // 8), "wvalid": Out(1),
        "wready": In(1),
        "bresp": In(2), "bvalid": In(1), "bready": Out(1),
        "araddr": Out(addr_width), "arvalid": Out(1), "arready": In(1),
        "rdata": In(data_width), "rresp": In(2), "rvalid": In(1), "rready": Out(1),
    })  # fmt: skip


def constant_words(config: AccelConfig, regmap: RegisterMap = REGMAP) -> dict[str, int]:
    """Registers fixed at generation: ``ID`` and ``VERSION`` (their reset words) and the
    ``CONFIG_*`` words of ``config`` (:func:`~ttaccel.spec.regmap.config_register_values`)."""
    words = {name: regmap[name].reset for name in ("ID", "VERSION")}
    words.update(config_register_values(config))
    return words


def counter_pairs(regmap: RegisterMap = REGMAP) -> dict[str, tuple[Register, Register]]:
    """``{name: (NAME_LO, NAME_HI)}`` for every 64-bit counter of the map: a ``_LO`` register
    and its ``_HI`` register 4 bytes above, each one read-only 32-bit field."""
    pairs = {}
    for reg in regmap:
        if not reg.name.endswith("_LO"):
            continue
        base = reg.name[: -len("_LO")]
        try:
            high = regmap[f"{base}_HI"]
        except KeyError:
            continue
        for part in (reg, high):
            if len(part.fields) != 1 or part.fields[0].width != DATA_WIDTH or part.access != "RO":
                raise ValueError(
                    f"counter register {part.name} must be one read-only {DATA_WIDTH}-bit field"
                )
        if high.offset != reg.offset + DATA_WIDTH // 8:
            raise ValueError(
                f"counter {base}: {high.name} must be at {reg.offset + 4:#x}, not {high.offset:#x}"
            )
        pairs[base.lower()] = (reg, high)
    return pairs


def _field_member(field: Field):
    if field.access == "RW":
        return Out(field.width, init=field.reset)
    if field.access == "WO":
        return Out(field.width)
    if field.access == "RO":
        return In(field.width)
    return Out(wiring.Signature({  # W1C
        "value": Out(field.width, init=field.reset),
        "set": In(field.width),
        "clear": In(field.width),
    }))  # fmt: skip


class CsrBank(wiring.Component):
    """The register file of ``regmap`` behind an AXI4-Lite subordinate port (module doc).

    ``constants``: ``{register name: word}`` for the registers fixed at generation; each must
    be a read-only register of the map and its word must fit :data:`DATA_WIDTH` bits and
    agree with every field that has a reset value.

    Ports: ``bus`` (``In(axi_lite_signature())``), ``fields`` and ``counters`` (module doc).
    """

    def __init__(self, *, constants: Mapping[str, int], regmap: RegisterMap = REGMAP):
        if not isinstance(regmap, RegisterMap):
            raise ValueError(f"Register map must be a RegisterMap, not {regmap!r}")
        constants = dict(constants)
        for name, word in constants.items():
            reg = regmap[name]  # KeyError names the registers
            if reg.access != "RO":
                raise ValueError(f"Constant register {name} must be read only, not {reg.access}")
            if isinstance(word, bool) or not isinstance(word, int) or not 0 <= word < 2**32:
                raise ValueError(f"Constant of register {name} must be a 32-bit word, not {word!r}")
            for field in reg.fields:
                if field.reset is not None and field.extract(word) != field.reset:
                    raise ValueError(
                        f"Constant of register {name} has {field.name} = "
                        f"{field.extract(word)}, but the map fixes it at {field.reset}"
                    )
        self._regmap = regmap
        self._constants = constants
        self._counters = counter_pairs(regmap)
        counter_regs = {r.name for pair in self._counters.values() for r in pair}
        self._field_regs = tuple(
            reg for reg in regmap if reg.name not in constants and reg.name not in counter_regs
        )
        super().__init__({
            "bus": In(axi_lite_signature()),
            "fields": Out(wiring.Signature({
                reg.name.lower(): Out(wiring.Signature(
                    {f.name: _field_member(f) for f in reg.fields}
                ))
                for reg in self._field_regs
            })),
            "counters": In(wiring.Signature({name: Out(64) for name in self._counters})),
        })  # fmt: skip

    @property
    def regmap(self) -> RegisterMap:
        return self._regmap

    @property
    def constants(self) -> dict[str, int]:
        return dict(self._constants)

    def elaborate(self, platform):
        m = Module()
        bus = self.bus

        def word_index(offset: int) -> int:
            return offset >> 2

        # -- write channel: capture address and data (either order), then write and respond.
        aw_full = Signal()
        aw_addr = Signal(ADDRESS_WIDTH - 2)
        w_full = Signal()
        w_data = Signal(DATA_WIDTH)
        w_strb = Signal(DATA_WIDTH // 8)
        bvalid = Signal()
        m.d.comb += [
            bus.awready.eq(~aw_full & ~bvalid),
            bus.wready.eq(~w_full & ~bvalid),
            bus.bvalid.eq(bvalid),
            bus.bresp.eq(0),  # OKAY, also for unmapped offsets
        ]
        with m.If(bus.awvalid & bus.awready):
            m.d.sync += [aw_full.eq(1), aw_addr.eq(bus.awaddr[2:])]
        with m.If(bus.wvalid & bus.wready):
            m.d.sync += [w_full.eq(1), w_data.eq(bus.wdata), w_strb.eq(bus.wstrb)]
        write = Signal()  # one cycle: address and data are both here
        m.d.comb += write.eq(aw_full & w_full)
        with m.If(write):
            m.d.sync += [aw_full.eq(0), w_full.eq(0), bvalid.eq(1)]
        with m.If(bvalid & bus.bready):
            m.d.sync += bvalid.eq(0)

        byte_mask = Signal(DATA_WIDTH)
        m.d.comb += byte_mask.eq(Cat(w_strb[i].replicate(8) for i in range(DATA_WIDTH // 8)))
        # One strobe per register: this cycle writes it.
        written = {}
        for reg in self._field_regs:
            hit = Signal(name=f"write_{reg.name.lower()}")
            m.d.comb += hit.eq(write & (aw_addr == word_index(reg.offset)))
            written[reg.name] = hit

        # -- fields: stored values, pulses and sticky flags.
        for reg in self._field_regs:
            ports = getattr(self.fields, reg.name.lower())
            hit = written[reg.name]
            for field in reg.fields:
                port = getattr(ports, field.name)
                bits = slice(field.lsb, field.lsb + field.width)
                data, mask = w_data[bits], byte_mask[bits]
                if field.access == "RW":
                    with m.If(hit):
                        m.d.sync += port.eq((port & ~mask) | (data & mask))
                elif field.access == "WO":
                    m.d.sync += port.eq(0)
                    with m.If(hit):
                        m.d.sync += port.eq(data & mask)
                elif field.access == "W1C":
                    cleared = Signal(field.width, name=f"clear_{reg.name.lower()}_{field.name}")
                    m.d.comb += cleared.eq(port.clear | (data & mask & hit.replicate(field.width)))
                    m.d.sync += port.value.eq((port.value & ~cleared) | port.set)

        # -- counter latches: the high word as of the last read of the low word.
        latches = {name: Signal(DATA_WIDTH, name=f"{name}_hi_latch") for name in self._counters}

        # -- read channel: the word at the accepted address, registered.
        rvalid = Signal()
        rdata = Signal(DATA_WIDTH)
        m.d.comb += [
            bus.arready.eq(~rvalid),
            bus.rvalid.eq(rvalid),
            bus.rdata.eq(rdata),
            bus.rresp.eq(0),
        ]
        with m.If(rvalid & bus.rready):
            m.d.sync += rvalid.eq(0)
        with m.If(bus.arvalid & bus.arready):
            m.d.sync += rvalid.eq(1)
            with m.Switch(bus.araddr[2:]):
                for name, word in self._constants.items():
                    with m.Case(word_index(self._regmap[name].offset)):
                        m.d.sync += rdata.eq(word)
                for name, (low, high) in self._counters.items():
                    value = getattr(self.counters, name)
                    with m.Case(word_index(low.offset)):
                        m.d.sync += [rdata.eq(value[:32]), latches[name].eq(value[32:])]
                    with m.Case(word_index(high.offset)):
                        m.d.sync += rdata.eq(latches[name])
                for reg in self._field_regs:
                    ports = getattr(self.fields, reg.name.lower())
                    word = []
                    for field in reg.fields:
                        port = getattr(ports, field.name)
                        value = {"RW": port, "RO": port, "WO": None}.get(field.access)
                        if field.access == "W1C":
                            value = port.value
                        word.append((field.lsb, value))
                    with m.Case(word_index(reg.offset)):
                        m.d.sync += rdata.eq(_assemble(word))
                with m.Default():
                    m.d.sync += rdata.eq(0)
        return m


def _assemble(parts):
    """A 32-bit word from ``(lsb, value or None)`` parts; gaps and None read as zero."""
    pieces, at = [], 0
    for lsb, value in sorted(parts, key=lambda p: p[0]):
        if value is None:
            continue
        if lsb > at:
            pieces.append(C(0, lsb - at))
        pieces.append(value)
        at = lsb + len(value)
    if at < DATA_WIDTH:
        pieces.append(C(0, DATA_WIDTH - at))
    return Cat(*pieces)
