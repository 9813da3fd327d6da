"""A block RAM with a registered read: one write port and one read port whose data pass a
second register, the form that maps onto a block RAM with its output register.

The engine's buffers and the dispatcher's instruction memory are read through a register
(no logic between a block RAM and a flip-flop). yosys ``synth_xilinx`` can take that register
into a RAMB36E1 as its ``DOB_REG``. yosys ``synth_ecp5`` cannot: it maps every inferred memory
onto DP16KD blocks with ``REGMODE NOREG`` (``share/lattice/brams_map_16kd.v``) and leaves the
register in the fabric, so each read costs the DP16KD's 5.8 ns clock-to-out plus a route, and
no block-RAM read on the ECP5 proxy routes above about 120 MHz (``docs/hardware.md``, step
34). Elaborated for :data:`~.dsp.ECP5_PROXY`, :class:`RegisteredReadMemory` instantiates the
DP16KD blocks itself with ``REGMODE_B = "OUTREG"``: the same cycles and the same data, the
register inside the block RAM, as :func:`~.dsp.mult18x18d` does for the multipliers.
``sim/models/DP16KD.v`` is the behavioural model the ECP5-flavoured Verilog is simulated with.
"""

from __future__ import annotations

import math

from amaranth import ClockSignal, Const, Instance, Module, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .dsp import on_ecp5
from .interfaces import positive_int

__all__ = ["DP16KD_WIDTHS", "RegisteredReadMemory", "dp16kd_tiling"]

# DP16KD's data widths by the address bits they leave (16 Kbit; 1K x 18 .. 16K x 1).
DP16KD_WIDTHS = {10: 18, 11: 9, 12: 4, 13: 2, 14: 1}


def dp16kd_tiling(width: int, depth: int) -> tuple[int, int, int] | None:
    """How a ``depth x width`` memory is tiled onto DP16KD blocks of one aspect ratio:
    ``(address_bits, tile_width, tiles)``, or ``None`` when ``depth`` exceeds 16,384 words
    (one block's deepest aspect ratio; such a memory is left to yosys)."""
    address_bits = max(10, math.ceil(math.log2(depth)) if depth > 1 else 0)
    if address_bits > 14:
        return None
    tile_width = DP16KD_WIDTHS[address_bits]
    return address_bits, tile_width, math.ceil(width / tile_width)


class RegisteredReadMemory(wiring.Component):
    """A ``depth x width`` memory whose read takes two enabled stages.

    Ports (all in ``sync``):

    * ``w_en``, ``w_addr``, ``w_data``: the word ``w_data`` is written at ``w_addr`` at the
      end of a cycle with ``w_en``.
    * ``r_en``, ``r_addr``: the read stage. At the end of a cycle with ``r_en`` the word at
      ``r_addr`` is read, as it was before that cycle's write (a write to the same address in
      the same cycle is not seen). Without ``r_en`` the read word is held.
    * ``r_data_en``, ``r_data``: the output register. At the end of a cycle with
      ``r_data_en`` it takes the read word; ``r_data`` is that register (0 after
      configuration; never reset, also under a ``ResetInserter``). So a word read with
      ``r_en`` in cycle t and taken with ``r_data_en`` in cycle t + 1 is on ``r_data`` in
      cycle t + 2.

    An address at or above ``depth`` reads an unspecified word and a write there is lost.

    Elaborated for the ECP5 proxy (``on_ecp5(platform)``), a memory of at most 16,384 words
    is ``tiles`` DP16KD instances of one aspect ratio (:func:`dp16kd_tiling`): port A
    writes, port B reads with its output register (``CEB = r_en``, ``OCEB = r_data_en``).
    Anywhere else (and for deeper memories) it is a :class:`~amaranth.lib.memory.Memory`
    with a non-transparent read port and a fabric register.

    Parameters (keyword-only): ``width``, the word's bits; ``depth``, its words (both
    positive integers).
    """

    def __init__(self, *, width: int, depth: int):
        self._width = positive_int(width, "Width")
        self._depth = positive_int(depth, "Depth")
        super().__init__(
            {
                "w_en": In(1),
                "w_addr": In(range(depth)),
                "w_data": In(width),
                "r_en": In(1),
                "r_addr": In(range(depth)),
                "r_data_en": In(1),
                "r_data": Out(width),
            }
        )

    width = property(lambda self: self._width)
    depth = property(lambda self: self._depth)

    def elaborate(self, platform):
        m = Module()
        tiling = dp16kd_tiling(self._width, self._depth)
        if on_ecp5(platform) and tiling is not None:
            self._dp16kd_tiles(m, *tiling)
            return m
        m.submodules.storage = storage = Memory(
            shape=unsigned(self._width), depth=self._depth, init=[]
        )
        write = storage.write_port()
        read = storage.read_port()
        m.d.comb += [
            write.en.eq(self.w_en),
            write.addr.eq(self.w_addr),
            write.data.eq(self.w_data),
            read.en.eq(self.r_en),
            read.addr.eq(self.r_addr),
        ]
        output = Signal(self._width, name="output", reset_less=True)  # as RSTB = 0
        with m.If(self.r_data_en):
            m.d.sync += output.eq(read.data)
        m.d.comb += self.r_data.eq(output)
        return m

    def _dp16kd_tiles(self, m, address_bits: int, tile_width: int, tiles: int):
        """``tiles`` DP16KD blocks side by side, tile ``t`` holding bits ``t * tile_width``
        upwards of each word (the last tile's spare bits written 0). The address sits in
        the top ``address_bits`` of AD[13:0]; in the 1K x 18 aspect ratio AD[1:0] are
        port A's byte enables (both set) and otherwise the unused low bits are 0."""
        low = 14 - address_bits

        def address(value):
            bits = Signal(14, name=f"{value.name}_dp16kd")
            m.d.comb += bits.eq(value << low)
            if tile_width == 18:
                m.d.comb += bits[:2].eq(0b11)
            return bits

        write_address = address(self.w_addr)
        read_address = address(self.r_addr)
        padded = Signal(tiles * tile_width, name="w_data_padded")
        m.d.comb += padded.eq(self.w_data)
        read = Signal(tiles * tile_width, name="r_data_tiles")
        m.d.comb += self.r_data.eq(read)
        for t in range(tiles):
            ports = {f"i_ADA{i}": write_address[i] for i in range(14)}
            ports |= {f"i_ADB{i}": read_address[i] for i in range(14)}
            ports |= {f"i_DIA{i}": Const(0) for i in range(18)}
            ports |= {f"i_DIB{i}": Const(0) for i in range(18)}
            for i in range(tile_width):
                ports[f"i_DIA{i}"] = padded[t * tile_width + i]
                ports[f"o_DOB{i}"] = read[t * tile_width + i]
            m.submodules[f"dp16kd_{t}"] = Instance(
                "DP16KD",
                p_DATA_WIDTH_A=tile_width, p_DATA_WIDTH_B=tile_width,
                p_REGMODE_A="NOREG", p_REGMODE_B="OUTREG",
                p_RESETMODE="SYNC", p_ASYNC_RESET_RELEASE="SYNC",
                p_CSDECODE_A="0b000", p_CSDECODE_B="0b000",
                p_WRITEMODE_A="NORMAL", p_WRITEMODE_B="NORMAL", p_GSR="DISABLED",
                i_CLKA=ClockSignal("sync"), i_CEA=1, i_OCEA=1, i_WEA=self.w_en, i_RSTA=0,
                i_CSA0=0, i_CSA1=0, i_CSA2=0,
                i_CLKB=ClockSignal("sync"), i_CEB=self.r_en, i_OCEB=self.r_data_en,
                i_WEB=0, i_RSTB=0, i_CSB0=0, i_CSB1=0, i_CSB2=0,
                **ports,
            )  # fmt: skip
