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
* the packed int8 PE of the ECP5 proxy build (``hw/dsp.py``), whose operand and product
  stages are two MULT18X18D's own registers (the engine's ECP5 proxy Fmax is measured on it).

Writes docs/results.md, section ``ecp5-multiplier``. About a minute (each design routes in
seconds).

    python bench/bench_ecp5_multiplier.py [--no-write]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from amaranth import Module, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_doc import write_section

from ttaccel.hw.dsp import ECP5_PROXY, mult18x18d
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
        product = mult18x18d(m, "mult", a_q, b_q, en=1, signed_a=True, signed_b=True)
        m.d.sync += self.q.eq(product.as_signed())
        return m


def designs() -> list[tuple[str, wiring.Component, object | None]]:
    """(what, component, platform) for every row of the table."""
    rows = [
        ("18 x 18 multiply, inferred (combinational MULT18X18D)", _Multiply18(primitive=False),
         None),
        ("18 x 18 multiply, MULT18X18D with its input and output registers",
         _Multiply18(primitive=True), None),
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
        pe = ProcessingElement(provider=provider, k_max=K_MAX)
        rows.append((f"one PE, {what}, portable build (as yosys infers it)", pe, None))
    rows.append(
        (
            "one PE, int8 x2 packed, ECP5 proxy build (`hw/dsp.py`: two MULT18X18D holding "
            "the operand and product stages)",
            ProcessingElement(provider=Int8DspPacked(), k_max=K_MAX),
            ECP5_PROXY,
        )
    )
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
        for index, (what, component, platform) in enumerate(designs()):
            fmax = ecp5_proxy_fmax(component, "bench_top", Path(tmp) / str(index),
                                   platform=platform)  # fmt: skip
            print(f"{fmax:8.2f} MHz  {what}", flush=True)
            results.append((what, fmax))
    table = to_markdown(results, "python bench/bench_ecp5_multiplier.py")
    print(table)
    if not args.no_write:
        write_section("ecp5-multiplier", table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
