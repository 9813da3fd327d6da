# amaranth: UnusedElaboratable=no
"""Requantizer: parameter checks, an Amaranth-simulator unit test, cocotb on both simulators."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

from ttaccel.hw.requant import OutFormat, Requantizer
from ttaccel.sim.runner import SIMULATORS, run_cocotb, test_seed
from ttaccel.spec.formats import FORMATS, INT2, INT4, INT8, Requant, requantize


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lanes": 0}, "Lanes must be a positive integer, not 0"),
        ({"lanes": 2, "acc_bits": 33}, "Acc bits must be an integer in [1, 32], not 33"),
        ({"lanes": 2, "lead": 9}, "Lead must be an integer in [0, 8], not 9"),
        ({"lanes": 2, "lead": True}, "Lead must be an integer in [0, 8], not True"),
    ],
)
def test_rejects_bad_parameters(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        Requantizer(**kwargs)


def _amaranth_requantize(cases, lanes=4):
    """Beats ``(acc lanes, bias lanes, multiplier, shift, format)`` through the pipeline in
    Amaranth's simulator (output always ready): the codes of each, in order."""
    dut = Requantizer(lanes=lanes, acc_bits=32)
    got = []

    async def bench(ctx):
        ctx.set(dut.o.ready, 1)
        for acc, bias, mult, shift, fmt in cases:
            payload = {"acc": acc, "bias": bias, "multiplier": mult, "shift": shift,
                       "out_format": OutFormat.of(fmt), "last": 0}  # fmt: skip
            ctx.set(dut.i.payload, payload)
            ctx.set(dut.i.valid, 1)
            await ctx.tick().until(dut.i.ready)
            if ctx.get(dut.o.valid):
                got.append([int(x) for x in ctx.get(dut.o.payload.codes)])
        ctx.set(dut.i.valid, 0)
        while len(got) < len(cases):
            await ctx.tick()
            if ctx.get(dut.o.valid):
                got.append([int(x) for x in ctx.get(dut.o.payload.codes)])

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return got


def _spec_requantize(cases):
    return [
        [int(c) for c in requantize(np.array(acc), Requant(mult, shift, fmt), np.array(bias))]
        for acc, bias, mult, shift, fmt in cases
    ]


def test_amaranth_sim_round_half_up_and_saturation():
    """Hand-picked cases through the pipeline in Amaranth's simulator."""
    cases = [  # acc lanes, bias lanes, multiplier, shift, format
        ([5, -5, 6, -6], [0, 0, 0, 0], 1, 1, INT8),  # 2.5 -> 3, -2.5 -> -2, 3, -3
        ([2**31 - 1, -(2**31), 1000, -1000], [0, 0, 7, -7], 65535, 0, INT8),
        ([40, -40, 17, -17], [0, 0, -1, 1], 3, 4, INT4),
        ([1, 2, 3, -3], [0, 0, 0, 0], 1, 0, INT2),
    ]
    got = _amaranth_requantize(cases)
    assert got == _spec_requantize(cases)
    assert got[0] == [3, -2, 3, -3]  # round half up, by hand


def test_amaranth_sim_saturation_at_every_threshold():
    """Every value of the rounded-and-shifted sum ``t`` from -1100 to 1100 (across the edges of
    every format's range and of the 10-bit window the range tests compare), in every
    format, and the widest sums: the codes equal the spec's."""
    values = [*range(-1100, 1101), 2**31 - 1, -(2**31), 2**30, -(2**30) - 1]
    cases = []
    for fmt in FORMATS.values():
        for shift in (0, 1):  # t = 2 * sum (shift 0) or the sum itself (shift 1)
            for at in range(0, len(values), 4):
                acc = [*values[at : at + 4], 0, 0, 0][:4]
                cases.append((acc, [0, 0, 0, 0], 1, shift, fmt))
    assert _amaranth_requantize(cases) == _spec_requantize(cases)


@pytest.mark.parametrize("lead", [0, 2])
def test_credits_cover_the_lead_stages(lead):
    """With the output stalled, exactly ``latency + 2 + lead`` beats get a credit (claimed
    ``lead`` cycles ahead of ``i`` through a never-stalling delay line, or at ``i`` itself);
    released, every one comes out in order with its codes, and the credits return."""
    dut = Requantizer(lanes=2, acc_bits=32, lead=lead)
    capacity = Requantizer.latency + 2 + lead
    assert dut.capacity == capacity
    out = []

    async def bench(ctx):
        ctx.set(dut.o.ready, 0)
        line = [None] * lead  # the caller's lead stages: beat numbers, None for a bubble
        sent = 0
        for _ in range(3 * capacity):
            credit = ctx.get(dut.credit)
            take = credit and sent < 2 * capacity
            beat = sent if take else None
            if lead:
                ctx.set(dut.claim, int(take))
                line.append(beat)
                beat = line.pop(0)
            payload = {"acc": [beat or 0, -(beat or 0)], "bias": [0, 0], "multiplier": 1,
                       "shift": 0, "out_format": OutFormat.INT8, "last": 0}  # fmt: skip
            ctx.set(dut.i.payload, payload)
            ctx.set(dut.i.valid, int(beat is not None))
            assert ctx.get(dut.i.ready) == (1 if lead else credit)
            sent += take
            await ctx.tick()
        assert sent == capacity  # the stalled output holds them all; no credit is left
        ctx.set(dut.i.valid, 0)
        if lead:
            ctx.set(dut.claim, 0)
        ctx.set(dut.o.ready, 1)
        for _ in range(2 * capacity):
            if ctx.get(dut.o.valid):
                out.append([int(x) for x in ctx.get(dut.o.payload.codes)])
            await ctx.tick()
        assert ctx.get(dut.credit) == 1

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert out == [[b, -b] for b in range(capacity)]  # multiplier 1, shift 0: y = acc


@pytest.mark.parametrize("sim", SIMULATORS)
@pytest.mark.parametrize(("lanes", "acc_bits"), [(4, 32), (3, 22)])
def test_requantizer_cocotb(sim, lanes, acc_bits):
    dut = Requantizer(lanes=lanes, acc_bits=acc_bits)
    run_cocotb(
        dut,
        sim=sim,
        config_name=f"requant-l{lanes}-a{acc_bits}",
        test_module="ttaccel.sim.tb_requant",
        config={
            "lanes": lanes,
            "acc_bits": acc_bits,
            "seed": test_seed(),
            "beats": 400 if sim == "verilator" else 150,
        },
    )
