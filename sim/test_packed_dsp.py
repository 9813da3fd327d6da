# amaranth: UnusedElaboratable=no
"""Exhaustive test of the two-MACs-per-DSP48E1 packing (``hw.pe.Int8DspPacked``).

The RTL under test is a bank of 32 packed PEs sharing the activation ``a`` and the low weight
``w0``, PE n with high weight ``w1 = 8 * n + j`` (as int8). A counter sweeps a, w0 and j, so
every one of the 2**24 (a, w0, w1) triples passes through a packed multiplier in 2**19
cycles. The oracle is a plain ``a * w`` multiplier per product, compared in the simulator each
cycle (2**29 result bits are too many to carry through VPI to Python); a fault-injection run
proves the comparison can fail, and :func:`test_packing_identity_numpy` checks the same
arithmetic in NumPy. Verilator only: Icarus would need minutes for the sweep (the packed PE
runs on Icarus in the systolic-array tests).
"""

import numpy as np
from amaranth import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ttaccel.hw.pe import Int8DspPacked, ProcessingElement
from ttaccel.sim.runner import run_cocotb


class PackedProductChecker(wiring.Component):
    """Sweeps all (a, w0, w1) int8 triples after reset, 32 per cycle, and compares every
    product of the packed PEs with an independent plain multiplier,
    ``ProcessingElement.latency`` cycles later. Outputs: ``done``; ``checked`` (cycles
    compared); ``errors`` (cycles with any wrong product); ``bad_a``/``bad_w0`` (the first
    wrong cycle's pair). ``fault`` high corrupts PE 0's oracle low product for the pair
    (a, w0) = (0, -128), early in the sweep: one error per value of the sweep's low w1 bits
    if the checker works."""

    PE_BITS = 5
    CYCLES = 1 << (8 + 8 + 8 - PE_BITS)

    def __init__(self):
        super().__init__(
            {
                "fault": In(1),
                "done": Out(1),
                "checked": Out(32),
                "errors": Out(32),
                "bad_a": Out(signed(8)),
                "bad_w0": Out(signed(8)),
            }
        )

    def elaborate(self, platform):
        m = Module()
        latency, pe_bits = ProcessingElement.latency, self.PE_BITS
        count = Signal(range(self.CYCLES + latency + 1))
        running = Signal()
        m.d.comb += running.eq(count < self.CYCLES + latency)
        with m.If(running):
            m.d.sync += count.eq(count + 1)
        m.d.comb += self.done.eq(~running)
        a, w0, j = Signal(signed(8)), Signal(signed(8)), Signal(8 - pe_bits)
        m.d.comb += [
            a.eq(count[16 - pe_bits : 24 - pe_bits]),
            w0.eq(count[8 - pe_bits : 16 - pe_bits]),
            j.eq(count[: 8 - pe_bits]),
        ]

        # The sweep as it was `latency` cycles ago, for the oracle.
        a_d, w0_d, j_d, valid_d = a, w0, j, running & (count < self.CYCLES)
        for stage in range(latency):
            a_q = Signal(signed(8), name=f"a_d{stage + 1}")
            w0_q = Signal(signed(8), name=f"w0_d{stage + 1}")
            j_q = Signal(8 - pe_bits, name=f"j_d{stage + 1}")
            valid_q = Signal(name=f"valid_d{stage + 1}")
            m.d.sync += [a_q.eq(a_d), w0_q.eq(w0_d), j_q.eq(j_d), valid_q.eq(valid_d)]
            a_d, w0_d, j_d, valid_d = a_q, w0_q, j_q, valid_q

        wrong = []
        fault_here = self.fault & (a_d == 0) & (w0_d == -128)
        for n in range(1 << pe_bits):
            w1, w1_d = Signal(signed(8), name=f"w1_{n}"), Signal(signed(8), name=f"w1_{n}_d")
            m.d.comb += [w1.eq(Cat(j, Const(n, pe_bits))), w1_d.eq(Cat(j_d, Const(n, pe_bits)))]
            pe = m.submodules[f"pe_{n}"] = Int8DspPacked().pe(k_max=1)
            m.d.comb += [
                pe.a.eq(a),
                pe.w[0].eq(w0),
                pe.w[1].eq(w1),
                pe.valid.eq(1),
                pe.first.eq(1),
                pe.last.eq(1),
                pe.en.eq(1),
            ]
            oracle_low = a_d * w0_d
            if n == 0:
                oracle_low = Mux(fault_here, oracle_low + 1, oracle_low)
            wrong.append((pe.acc[0] != oracle_low) | (pe.acc[1] != a_d * w1_d))
        any_wrong = Signal()
        m.d.comb += any_wrong.eq(Cat(*wrong).any())
        with m.If(valid_d):
            m.d.sync += self.checked.eq(self.checked + 1)
            with m.If(any_wrong):
                m.d.sync += self.errors.eq(self.errors + 1)
                with m.If(self.errors == 0):
                    m.d.sync += [self.bad_a.eq(a_d), self.bad_w0.eq(w0_d)]
        return m


def test_packing_identity_numpy():
    """The arithmetic the RTL implements, over all 2**24 triples: p = a * (w1 * 2**16 + w0);
    low = sign-extended p[0:16]; high = (p >> 16) + p[15]."""
    a = np.arange(-128, 128, dtype=np.int64)[:, None, None]
    w0 = np.arange(-128, 128, dtype=np.int64)[None, :, None]
    w1 = np.arange(-128, 128, dtype=np.int64)[None, None, :]
    packed = w1 * 2**16 + w0
    assert packed.min() >= -(2**24) and packed.max() < 2**24  # fits the 25-bit port
    p = a * packed
    low = ((p & 0xFFFF) ^ 0x8000) - 0x8000
    high = (p >> 16) + ((p >> 15) & 1)
    assert np.array_equal(low, np.broadcast_to(a * w0, low.shape))
    assert np.array_equal(high, np.broadcast_to(a * w1, high.shape))


def test_packed_dsp_exhaustive():
    run_cocotb(
        PackedProductChecker(),
        sim="verilator",
        config_name="packed-dsp-exhaustive",
        test_module="ttaccel.sim.tb_packed_dsp",
        config={
            "cycles": PackedProductChecker.CYCLES,
            "a_stride": 1 << (16 - PackedProductChecker.PE_BITS),
            "fault_errors": 1 << (8 - PackedProductChecker.PE_BITS),
        },
    )
