"""cocotb test: one-core dense layers with the build's own weight codes (XTC: ternary, binary).

Configuration (``TTACCEL_TB``): ``config`` (an :class:`AccelConfig`; its ``weight_format``
sets the codes: int8 on an int8 build, {-1, 0, +1} on a ternary build, {-1, +1} on a binary
one), ``seed``, ``layers`` (``[[in_features, out_features, tokens, resident], ...]``),
``tolerance`` (cycles the run programs may differ from the cycle model's; default 0).

For each entry a random ``requantize(x @ W + bias)`` layer is compiled with
:func:`ttaccel.spec.compiler.compile_dense` (``resident``: weights loaded into WBUF by the setup
program; else streamed through WBUF by the run program) and run as two programs, setup then
run. :class:`~ttaccel.sim.tb_engine.EngineBench` checks every output beat against the reference
executor (:func:`ttaccel.spec.isa.execute_stream`) and the decoded output against the golden
model (``requantize(gemm_int(x, W), requant, bias)``); the run program's ``BUSY_CYCLES`` must
be within ``tolerance`` of the cycle model's prediction. Writes each program's ``BUSY_CYCLES``,
``STALL_CYCLES``, input beats, the cycle model's prediction
(:func:`ttaccel.spec.cycle_model.simulate`) and the share of saturated outputs to
``measure.json``.
"""

from __future__ import annotations

import json

import cocotb
import numpy as np

from ttaccel.sim.engine_programs import Case, random_codes
from ttaccel.sim.tb_engine import EngineBench, bench_setup
from ttaccel.spec.compiler import compile_dense
from ttaccel.spec.cycle_model import simulate
from ttaccel.spec.formats import INT8, Requant, requantize
from ttaccel.spec.golden import gemm_int


def dense_layer_cases(rng, config, m: int, n: int, tokens: int, resident: bool):
    """``(setup, run)`` Cases of a random ``m -> n`` layer of ``config.weight_format`` codes for
    ``tokens`` int8 tokens; the run Case carries the golden output."""
    fmt = config.weight_format
    weight = random_codes(rng, fmt, (m, n))
    x = random_codes(rng, INT8, (tokens, m))
    acc = gemm_int(x, weight)
    spread = max(int(np.abs(acc).max()), 1)
    bias = rng.integers(-(spread // 4) - 1, spread // 4 + 1, size=n).astype(np.int32)
    # The shift maps the largest accumulator (plus a bias) to about 100: mostly unsaturated.
    multiplier = int(rng.integers(1 << 7, 1 << 9))
    shift = max(int(np.ceil(np.log2(1.25 * spread * multiplier / 100))), 1)
    requant = Requant(multiplier, shift, INT8)
    compiled = compile_dense(weight, fmt, requant, tokens, config, bias, resident=resident)
    name = f"{fmt.name} {m}x{n} tokens {tokens} {'resident' if resident else 'streamed'}"
    setup = Case(f"{name} setup", list(compiled.setup), compiled.setup_stream)
    want = requantize(acc, requant, bias)
    run = Case(f"{name} run", list(compiled.run), compiled.input_stream(x), want,
               compiled.decode_output, tokens * m * n, compiled)  # fmt: skip
    return setup, run


@cocotb.test()
async def dense_layer_cycles(dut):
    cfg, config, seed = bench_setup(dut)
    bench = EngineBench(dut, config, seed)
    await bench.start()
    rng = np.random.default_rng(seed)
    report, tolerance = [], cfg.get("tolerance", 0)
    for m, n, tokens, resident in cfg["layers"]:
        setup, run = dense_layer_cases(rng, config, m, n, tokens, bool(resident))
        entry = {"weight_format": config.weight_format.name, "in_features": m,
                 "out_features": n, "tokens": tokens, "resident": bool(resident),
                 "saturated": float(np.mean(np.abs(run.want) >= 127))}  # fmt: skip
        for kind, case in (("setup", setup), ("run", run)):
            counters = await bench.run(case)
            entry |= {
                f"{kind}_cycles": counters["busy_cycles"],
                f"{kind}_stall_cycles": counters["stall_cycles"],
                f"{kind}_model_cycles": simulate(case.program, config).cycles,
                f"{kind}_beats_in": int(case.data.size),
            }
        dut._log.info("measure %s", entry)
        # The run program costs the model's cycles whatever the weight format (the PE
        # columns' skew, spec/cycle_model.py), within ``tolerance``.
        assert abs(entry["run_cycles"] - entry["run_model_cycles"]) <= tolerance, entry
        report.append(entry)
    with open("measure.json", "w") as handle:
        json.dump(report, handle, indent=2)
