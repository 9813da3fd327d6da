"""Target-specific multipliers: the ECP5 proxy build's MULT18X18D with its own registers.

The engine is written for the xc7z020: a multiply between an operand register and a product
register, which yosys ``synth_xilinx`` maps into one DSP48E1 with its A/B (or AD) and M
registers. yosys ``synth_ecp5`` maps the same multiply into a MULT18X18D in its
*combinational* mode and leaves both registers in the fabric (it does not absorb registers
into ECP5 DSPs), so on the ECP5 proxy every multiply costs a route into the DSP, its 3.93 ns
and a route out: an 18 x 18 multiply alone routes at 144 MHz that way and at 473 MHz with
the DSP's own registers (``bench/bench_ecp5_multiplier.py``).

Elaborating with :data:`ECP5_PROXY` as the platform (``hw/synth.py`` does for the proxy Fmax)
asks the multipliers that know it (:class:`~ttaccel.hw.pe.Int8DspPacked`) to instantiate
MULT18X18D with its input registers as their operand stage and its output register as their
product stage: the same cycles and the same results, a netlist mapped as a DSP48E1 build is.
Every other platform (``None`` in simulation and for the xc7z020) gets the portable code.
``sim/models/MULT18X18D.v`` is the behavioural model the ECP5-flavoured Verilog is simulated
with (``sim/test_ecp5_build.py``).
"""

from __future__ import annotations

from amaranth import ClockSignal, Instance, Signal, Value

__all__ = ["ECP5_PROXY", "Ecp5Proxy", "mult18x18d", "on_ecp5"]


class Ecp5Proxy:
    """The elaboration platform of the ECP5 proxy build: a marker (no resources, no
    toolchain), whose ``dsp_family`` tells the multipliers to use ECP5 primitives."""

    dsp_family = "ecp5"

    def __repr__(self) -> str:
        return "ECP5_PROXY"


ECP5_PROXY = Ecp5Proxy()


def on_ecp5(platform) -> bool:
    """Whether ``platform`` is the ECP5 proxy build's (anything with ``dsp_family ==
    "ecp5"``)."""
    return getattr(platform, "dsp_family", None) == "ecp5"


def mult18x18d(m, name: str, a: Value, b: Value, *, en: Value, signed_a: bool,
               signed_b: bool) -> Signal:  # fmt: skip
    """A MULT18X18D named ``name`` in ``m`` computing ``a * b`` through its A and B input
    registers and its output register, all clocked by ``sync`` and enabled by ``en``.

    ``a``, ``b``: at most 18 bits each, extended to 18 as ``signed_a`` / ``signed_b`` say
    (the DSP's SIGNEDA / SIGNEDB). Returns the 36-bit registered product ``P``: the product of
    the operands presented two enabled cycles before (sign-extended when either is signed).
    Raises ValueError for a wider operand.
    """
    operands = {}
    for port, value, is_signed in (("A", a, signed_a), ("B", b, signed_b)):
        value = Value.cast(value)
        if len(value) > 18:
            raise ValueError(f"MULT18X18D operand {port} must be at most 18 bits, not {len(value)}")
        extended = Signal(18, name=f"{name}_{port.lower()}")
        m.d.comb += extended.eq(value.as_signed() if is_signed else value.as_unsigned())
        operands[port] = extended
    product = Signal(36, name=f"{name}_p")
    ports = {f"i_A{i}": operands["A"][i] for i in range(18)}
    ports |= {f"i_B{i}": operands["B"][i] for i in range(18)}
    ports |= {f"o_P{i}": product[i] for i in range(36)}
    m.submodules[name] = Instance(
        "MULT18X18D",
        p_REG_INPUTA_CLK="CLK0", p_REG_INPUTA_CE="CE0", p_REG_INPUTA_RST="RST0",
        p_REG_INPUTB_CLK="CLK0", p_REG_INPUTB_CE="CE0", p_REG_INPUTB_RST="RST0",
        p_REG_PIPELINE_CLK="NONE", p_REG_OUTPUT_CLK="CLK0", p_REG_OUTPUT_CE="CE0",
        p_REG_OUTPUT_RST="RST0", p_RESETMODE="SYNC",
        i_CLK0=ClockSignal("sync"), i_CE0=en, i_RST0=0,
        i_SIGNEDA=int(signed_a), i_SIGNEDB=int(signed_b), i_SOURCEA=0, i_SOURCEB=0,
        **ports,
    )  # fmt: skip
    return product
