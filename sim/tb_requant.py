# amaranth: UnusedElaboratable=no
"""cocotb testbench of :class:`ttaccel.hw.requant.Requantizer` against ``spec.requantize``.

Configuration (``TTACCEL_TB``): ``lanes``, ``acc_bits``, ``seed``, ``beats``. The model is fed
from the source's record of accepted beats, so checking survives idles and back-pressure.
"""

from __future__ import annotations

import random

import cocotb
import numpy as np

from ttaccel.hw.requant import OutFormat, Requantizer
from ttaccel.sim.tb import Harness, StreamSink, StreamSource, tb_config
from ttaccel.spec.formats import ACC_BITS, FORMATS, MAX_SHIFT, Requant, requantize

INT32_MIN, INT32_MAX = -(2 ** (ACC_BITS - 1)), 2 ** (ACC_BITS - 1) - 1


def random_beat(rng: random.Random, lanes: int, acc_bits: int) -> dict:
    """One beat: extreme or random accumulators and biases (``acc + bias`` within int32,
    the spec's precondition), constants from the edges of their ranges or random."""
    lo, hi = -(2 ** (acc_bits - 1)), 2 ** (acc_bits - 1) - 1
    acc, bias = [], []
    for _ in range(lanes):
        a = rng.choice([lo, hi, 0, -1, 1, rng.randint(lo, hi), rng.randint(-300, 300)])
        b_lo, b_hi = max(INT32_MIN, INT32_MIN - a), min(INT32_MAX, INT32_MAX - a)
        b = rng.choice([0, b_lo, b_hi, rng.randint(-1000, 1000), rng.randint(b_lo, b_hi)])
        b = min(max(b, b_lo), b_hi)
        acc.append(a)
        bias.append(b)
    multiplier = rng.choice([1, 2**16 - 1, 2**15, rng.randint(1, 2**16 - 1), rng.randint(1, 300)])
    shift = rng.choice([0, 1, MAX_SHIFT, rng.randint(0, MAX_SHIFT), rng.randint(8, 24)])
    fmt = rng.choice(list(OutFormat))
    return {
        "acc": acc,
        "bias": bias,
        "multiplier": multiplier,
        "shift": shift,
        "out_format": fmt,
        "last": rng.randint(0, 1),
    }


def expected(beat: dict) -> dict:
    fmt = FORMATS[OutFormat(beat["out_format"]).name.lower()]
    codes = requantize(
        np.array(beat["acc"]),
        Requant(beat["multiplier"], beat["shift"], fmt),
        np.array(beat["bias"]),
    )
    return {"codes": [int(c) for c in codes], "last": beat["last"]}


@cocotb.test()
@cocotb.parametrize(idle=[0.0, 0.4], backpressure=[0.0, 0.4])
async def stream_matches_spec(dut, idle, backpressure):
    cfg = tb_config()
    dut_model = Requantizer(lanes=cfg["lanes"], acc_bits=cfg["acc_bits"])
    seed = cfg["seed"] + int(idle * 10) * 2 + int(backpressure * 10)
    rng = random.Random(seed)
    dut._log.info("seed %d (idle %s, back-pressure %s)", seed, idle, backpressure)
    harness = Harness(dut)
    source = StreamSource(harness, "i", dut_model.input_layout, idle=idle, rng=rng)
    sink = StreamSink(
        harness,
        "o",
        dut_model.output_layout,
        backpressure=backpressure,
        rng=random.Random(seed + 1),
    )
    await harness.start()
    sink.start()
    beats = [random_beat(rng, cfg["lanes"], cfg["acc_bits"]) for _ in range(cfg["beats"])]
    await source.send(beats)
    await sink.wait_for(len(beats), timeout_cycles=20 * len(beats) + 100)
    await sink.assert_quiet(2 * Requantizer.latency + 4)

    assert len(source.sent) == len(beats)
    for n, ((t_in, beat), (t_out, got)) in enumerate(zip(source.sent, sink.received, strict=True)):
        want = expected(beat)
        assert got == want, f"beat {n}: {beat} -> {got}, expected {want}"
        if backpressure == 0:
            assert t_out - t_in == Requantizer.latency, f"beat {n}: latency {t_out - t_in}"
        else:
            assert t_out - t_in >= Requantizer.latency
