"""Virtual pins: a component's ports behind registers, on one input and one output pad.

On the Zynq the accelerator's ports face the PS7, the AXI DMA and the interconnect inside the
fabric; on the ECP5 proxy board they would face pads. nextpnr pulls every flip-flop wired to
a pad towards that pad (the pads of an 85F's CABGA756 ring the die), which stretches the
logic next to the ports (the input stage, the output register, the register bank) across the
die: an artefact of the proxy, not of the design. :class:`VirtualPins` does what an
out-of-context build (Vivado's, or Quartus's virtual pins) does for place and route: every
input port of ``inner`` is driven by a bit of a shift register fed from one pad (``din``),
every output port is sampled into a register and folded by a registered XOR tree into one
pad (``dout``), so each port ends at a flip-flop the placer may put next to it, and yosys can
remove nothing (every output bit reaches ``dout``, every input bit comes from ``din``).

Each port has a flip-flop of its own between it and the chain (issue 9, after step 47): the
input ports read a register copy of the shift register (``pins_held``), the output ports are
sampled twice (``pins_out``, then ``pins_sampled``, which the XOR tree reads). A chain bit is
pulled towards its two neighbours in the chain and an XOR tree input towards its tree, so a
port driven by or sampled into those alone sat wherever the chain or the tree went (c7c18fb
and 389a02b routed TREADY's and TVALID's logic at the chain's end of the die, 3 ns from the
output register it feeds). With a register of its own a port's logic is free to sit by
its block; bc91e96's route still placed the output stage's enable LUT near the die's edge,
so this does not by itself keep that stage compact.

Used for the ECP5 proxy Fmax only (:func:`ttaccel.hw.synth.ecp5_proxy_fmax`); it computes
nothing useful and is never part of the Zynq build.
"""

from __future__ import annotations

from amaranth import Cat, ClockDomain, ClockSignal, Module, ResetSignal, Shape, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["XOR_FAN_IN", "VirtualPins"]

XOR_FAN_IN = 4
"""Output bits folded per XOR stage (one ECP5 LUT4 per bit of the next stage)."""


class VirtualPins(wiring.Component):
    """``inner`` with its ports on flip-flops; see the module docstring.

    Ports: ``clk`` (the one clock), ``din`` (shifted in, one bit per cycle; an input port
    reads the shift register's bits ``input_latency`` = 1 cycle late, from ``pins_held``),
    ``dout`` (the XOR of every output bit, ``latency`` cycles after they were driven).

    ``inner``: a component whose ports may sit in nested interfaces (streams, say: they are
    taken in ``signature.flatten`` order, each with the flow it has seen from outside).
    ``clock``: the name of ``inner``'s 1-bit clock input (a top such as ``ZynqTop``, which
    makes its own domains), or ``None`` for a block clocked by the ``sync`` domain (an
    engine block alone): the wrapper then creates ``sync``, clocked by ``clk``, with its
    reset from the shift register's last bit. The other inputs, in flatten order, take bits
    ``0 ..`` of the shift register (bit 0 the newest); the outputs, in flatten order, are
    concatenated (first port lowest) into the sampled word. Raises ``ValueError`` for a
    missing clock port.
    """

    def __init__(self, inner: wiring.Component, *, clock: str | None = "aclk"):
        members = inner.signature.members
        if clock is not None and (
            clock not in members
            or members[clock].flow != In
            or not members[clock].is_port
            or Shape.cast(members[clock].shape).width != 1
        ):
            raise ValueError(f"{inner!r} has no 1-bit input {clock!r} to clock it by")
        self._inner = inner
        self._clock = clock
        ports = [(path, member.flow, Value.cast(value))
                 for path, member, value in inner.signature.flatten(inner)]  # fmt: skip
        self._inputs = [v for path, flow, v in ports if flow == In and path != (clock,)]
        self._outputs = [v for _, flow, v in ports if flow == Out]
        super().__init__({"clk": In(1), "din": In(1), "dout": Out(1)})

    @property
    def inner(self) -> wiring.Component:
        return self._inner

    @property
    def input_bits(self) -> int:
        """Width of the shift register: the sum of ``inner``'s input widths (clock excluded),
        plus the ``sync`` reset's bit when ``clock`` is ``None``."""
        return sum(len(v) for v in self._inputs) + (self._clock is None)

    @property
    def output_bits(self) -> int:
        """Width of the sampled output word."""
        return sum(len(v) for v in self._outputs)

    input_latency = 1
    """Cycles from a bit's place in the shift register to the input port: ``pins_held``."""

    @property
    def latency(self) -> int:
        """Cycles from an output port's value to its effect on ``dout``: the two sample
        registers and one register per XOR stage."""
        stages, width = 2, self.output_bits
        while width > 1:
            width = -(-width // XOR_FAN_IN)
            stages += 1
        return stages

    def elaborate(self, platform):
        m = Module()
        m.submodules.inner = inner = self._inner
        m.domains.pins = ClockDomain("pins", reset_less=True, local=True)
        m.d.comb += ClockSignal("pins").eq(self.clk)

        shift = Signal(max(self.input_bits, 1), name="pins_in")
        held = Signal(len(shift), name="pins_held")
        m.d.pins += [shift.eq(Cat(self.din, shift[:-1])), held.eq(shift)]
        at = 0
        for port in self._inputs:
            m.d.comb += port.eq(held[at : at + len(port)])
            at += len(port)
        if self._clock is None:
            m.domains.sync = ClockDomain("sync")
            m.d.comb += [ClockSignal("sync").eq(self.clk), ResetSignal("sync").eq(shift[at])]
        else:
            m.d.comb += getattr(inner, self._clock).eq(self.clk)

        sampled = Signal(max(self.output_bits, 1), name="pins_out")
        word = Signal(len(sampled), name="pins_sampled")
        m.d.pins += [sampled.eq(Cat(*self._outputs)), word.eq(sampled)]
        stage = 0
        while len(word) > 1:
            groups = [word[i : i + XOR_FAN_IN] for i in range(0, len(word), XOR_FAN_IN)]
            folded = Signal(len(groups), name=f"pins_xor{stage}")
            m.d.pins += folded.eq(Cat(*(g.xor() for g in groups)))
            word, stage = folded, stage + 1
        m.d.comb += self.dout.eq(word)
        return m
