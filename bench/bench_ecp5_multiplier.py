"""The ECP5 proxy's ceiling on multiply paths: lone multipliers and PEs, placed and routed.

The routed ECP5 proxy Fmax of the engine (docs/hardware.md) ends, after issue 9's step 8, on
a packed PE's multiply. This measures what the proxy flow (yosys ``synth_ecp5`` + nextpnr-ecp5
on an LFE5U-85F, ``hw/synth.py``) can reach on such paths at all, with nothing else on the
chip (the best placement there is):

* an 18 x 18 signed multiply between fabric registers, as yosys infers it (a MULT18X18D in
  its combinational mode: yosys does not map registers into the ECP5's DSP registers);
* the same multiply as an instantiated MULT18X18D whose input and output registers are used
  (``REG_INPUTA_CLK`` / ``REG_INPUTB_CLK`` / ``REG_OUTPUT_CLK``), as yosys maps a DSP48E1's
  AREG / BREG / MREG for the xc7z020;
* one processing element (``hw/pe.py``) of each MAC provider, as the engine builds it;
* a sketch of an ECP5 build of the packed int8 PE with its operand and product stages in
  two MULT18X18D (``_PackedPeSketch``; not in ``hw/``, not simulated).

Writes docs/results.md, section ``ecp5-multiplier``. About a minute (each design routes in
seconds).

    python bench/bench_ecp5_multiplier.py [--no-write]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from amaranth import Cat, ClockSignal, Instance, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_doc import write_section

from ttaccel.hw.pe import (
    BinaryNegate,
    Int8Dsp,
    Int8DspPacked,
    LutMultiply,
    ProcessingElement,
    TernarySelect,
)
from ttaccel.hw.synth import ecp5_proxy_fmax
from ttaccel.spec.formats import INT2, INT4

K_MAX = 1024  # the PEs' accumulator width: the default configuration's max_k


class _Multiply18(wiring.Component):
    """An 18 x 18 signed multiply from fabric registers to a fabric register. Plain: the
    operand registers feed ``*`` and the product register takes its result (one stage, as
    yosys infers it, a combinational MULT18X18D). With ``primitive``: an instantiated
    MULT18X18D whose own input and output registers add the operand and product stages, so
    the fabric registers on either side only route to and from it."""

    def __init__(self, *, primitive: bool):
        self._primitive = primitive
        super().__init__({"a": In(signed(18)), "b": In(signed(18)), "q": Out(signed(36))})

    def elaborate(self, platform):
        m = Module()
        a_q, b_q = Signal(signed(18)), Signal(signed(18))
        m.d.sync += [a_q.eq(self.a), b_q.eq(self.b)]
        if not self._primitive:
            m.d.sync += self.q.eq(a_q * b_q)
            return m
        product = Signal(36)
        ports = {f"i_A{i}": a_q[i] for i in range(18)}
        ports |= {f"i_B{i}": b_q[i] for i in range(18)}
        ports |= {f"o_P{i}": product[i] for i in range(36)}
        m.submodules.mult = Instance(
            "MULT18X18D",
            p_REG_INPUTA_CLK="CLK0", p_REG_INPUTB_CLK="CLK0", p_REG_OUTPUT_CLK="CLK0",
            p_REG_PIPELINE_CLK="NONE",
            i_CLK0=ClockSignal("sync"), i_CE0=1, i_RST0=0, i_SIGNEDA=1, i_SIGNEDB=1,
            i_SOURCEA=0, i_SOURCEB=0, **ports,
        )  # fmt: skip
        m.d.sync += self.q.eq(product.as_signed())
        return m


def _mult18x18d(m, name, a, b, *, signed_a, en):
    """A MULT18X18D computing ``a * b`` with its input registers and output register used
    (clock enable ``en``); returns its 36-bit product (the registered one)."""
    product = Signal(36, name=f"{name}_p")
    ports = {f"i_A{i}": a[i] for i in range(18)}
    ports |= {f"i_B{i}": b[i] for i in range(18)}
    ports |= {f"o_P{i}": product[i] for i in range(36)}
    m.submodules[name] = Instance(
        "MULT18X18D",
        p_REG_INPUTA_CLK="CLK0", p_REG_INPUTB_CLK="CLK0", p_REG_OUTPUT_CLK="CLK0",
        p_REG_PIPELINE_CLK="NONE",
        i_CLK0=ClockSignal("sync"), i_CE0=en, i_RST0=0, i_SIGNEDA=int(signed_a), i_SIGNEDB=1,
        i_SOURCEA=0, i_SOURCEB=0, **ports,
    )  # fmt: skip
    return product


class _PackedPeSketch(wiring.Component):
    """A sketch of an ECP5 build of the packed int8 PE (not in hw/, not simulated): the same
    three stages as ``ProcessingElement`` with ``Int8DspPacked`` (operands, product,
    accumulators), the first two inside two MULT18X18D. The 25-bit packed weight
    ``w1 * 2**16 + w0`` is split into its low 18 bits (unsigned) and high 7 (signed), each
    multiplied by the activation; the accumulate stage recombines them: lane 0 adds the low
    product's low 16 bits (sign-extended), lane 1 ``4 * P_hi + (P_lo >> 16) + P_lo[15]``
    (``Int8DspPacked``'s lane split, rewritten for the two partial products; the identity
    holds for all 2**24 operand triples, checked with NumPy when this was written). It
    measures what such a build could reach; its netlist is not verified."""

    def __init__(self, *, acc_bits: int):
        self._acc_bits = acc_bits
        super().__init__({
            "a": In(signed(8)), "w0": In(signed(8)), "w1": In(signed(8)), "en": In(1),
            "valid": In(1), "first": In(1), "last": In(1),
            "acc0": Out(signed(acc_bits)), "acc1": Out(signed(acc_bits)), "done": Out(1),
        })  # fmt: skip

    def elaborate(self, platform):
        m = Module()
        packed = Signal(signed(25))
        m.d.comb += packed.eq((self.w1 << 16) + self.w0)
        a18 = Signal(signed(18))
        hi18 = Signal(signed(18))
        m.d.comb += [a18.eq(self.a), hi18.eq(packed[18:].as_signed())]
        p_lo = _mult18x18d(m, "lo", packed[:18], a18, signed_a=False, en=self.en)
        p_hi = _mult18x18d(m, "hi", hi18, a18, signed_a=True, en=self.en)
        flags = [Signal(3, name=f"flags_{i}") for i in range(2)]  # valid, first, last
        with m.If(self.en):
            m.d.sync += [flags[0].eq(Cat(self.valid, self.first, self.last)),
                         flags[1].eq(flags[0])]  # fmt: skip
        lo = p_lo[:26].as_signed()
        hi = p_hi[:16].as_signed()
        terms = [lo[:16].as_signed(), (hi << 2) + (lo >> 16) + lo[15]]
        acc = [Signal(signed(self._acc_bits), name=f"acc{i}") for i in range(2)]
        done = Signal()
        valid, first, last = flags[1][0], flags[1][1], flags[1][2]
        with m.If(self.en):
            m.d.sync += done.eq(valid & last)
            with m.If(valid):
                for lane in range(2):
                    m.d.sync += acc[lane].eq(Mux(first, 0, acc[lane]) + terms[lane])
        m.d.comb += [self.acc0.eq(acc[0]), self.acc1.eq(acc[1]), self.done.eq(done)]
        return m


def designs() -> list[tuple[str, wiring.Component]]:
    """(what, component) for every row of the table."""
    rows = [
        ("18 x 18 multiply, inferred (combinational MULT18X18D)", _Multiply18(primitive=False)),
        ("18 x 18 multiply, MULT18X18D with its input and output registers",
         _Multiply18(primitive=True)),
    ]  # fmt: skip
    providers = [
        ("int8 x2 packed (25 x 8: two MULT18X18D and an adder)", Int8DspPacked()),
        ("int8 (8 x 8: one MULT18X18D)", Int8Dsp()),
        ("int4 (shift-and-add in LUTs)", LutMultiply(weight_format=INT4)),
        ("int2 (shift-and-add in LUTs)", LutMultiply(weight_format=INT2)),
        ("ternary (select)", TernarySelect()),
        ("binary (negate)", BinaryNegate()),
    ]
    for what, provider in providers:
        rows.append((f"one PE, {what}", ProcessingElement(provider=provider, k_max=K_MAX)))
    acc_bits = Int8DspPacked().accumulator_bits(K_MAX)
    sketch = "one PE, int8 x2 packed, sketch of an ECP5 build (two MULT18X18D holding the "
    sketch += "operand and product stages; not in hw/)"
    rows.append((sketch, _PackedPeSketch(acc_bits=acc_bits)))
    return rows


def to_markdown(results: list[tuple[str, float]], command: str) -> str:
    lines = [
        "## The ECP5 proxy's ceiling on multiply paths (issue 9)",
        "",
        "Each design alone on an LFE5U-85F (yosys `synth_ecp5` + nextpnr-ecp5, "
        "`hw/synth.py`'s proxy flow, pins placed automatically): the routed Fmax of its clock, "
        "register to register. An ECP5 proxy figure, not a Zynq one. The PEs are "
        f"`hw/pe.py`'s, with the accumulators of `max_k` = {K_MAX}. Command: `{command}`.",
        "",
        "| design | ECP5 proxy Fmax (routed, alone) |",
        "|---|---:|",
    ]
    lines += [f"| {what} | {fmax:.2f} MHz |" for what, fmax in results]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/ alone")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for index, (what, component) in enumerate(designs()):
            fmax = ecp5_proxy_fmax(component, "bench_top", Path(tmp) / str(index))
            print(f"{fmax:8.2f} MHz  {what}", flush=True)
            results.append((what, fmax))
    table = to_markdown(results, "python bench/bench_ecp5_multiplier.py")
    print(table)
    if not args.no_write:
        write_section("ecp5-multiplier", table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
