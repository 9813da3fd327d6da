"""cocotb test: one Tucker layer (seed 001) and the dense layer of the same size on one engine.

Configuration (``TTACCEL_TB``): ``config``, ``seed``, ``layers`` (``[[d, r, tokens], ...]``).
For each entry: a random INT8-bank Tucker layer ``d -> d`` of rank ``r`` runs as its 3-core TT
expansion (setup program: ``V``, ``S_0``, ``U^T`` and the bias into the buffers; then the run
program, warm), and the dense ``d x d`` layer as one program with its weights streamed through
WBUF (``dense_case``, resident=False: a 384 x 384 int8 weight does not fit WBUF on a 4 x 4
array). :class:`~ttaccel.sim.tb_engine.EngineBench` checks every output beat against the
reference executor and the decoded output against the golden model
(:func:`ttaccel.spec.tucker.tucker_linear_int`, ``gemm_int`` + ``requantize``). Writes the
cycles (``BUSY_CYCLES``) and the cycle model's prediction to ``measure.json``.
"""

from __future__ import annotations

import json

import cocotb
import numpy as np

from ttaccel.sim.engine_programs import Case, dense_case, random_codes
from ttaccel.sim.tb_engine import EngineBench, bench_setup
from ttaccel.spec.compiler import compile_tt_linear
from ttaccel.spec.cycle_model import simulate
from ttaccel.spec.formats import INT8, Requant
from ttaccel.spec.tucker import (
    QuantTuckerLinear,
    TuckerBank,
    tucker_as_tt_linear,
    tucker_linear_int,
)


def tucker_case(rng, d: int, r: int, tokens: int, config):
    """A random ``d -> d`` Tucker layer of an 8-core INT8 bank, compiled for ``tokens``."""
    fmt = config.weight_format
    bank = TuckerBank(random_codes(rng, fmt, (d, r)), random_codes(rng, fmt, (d, r)),
                      random_codes(rng, fmt, (8, r, r)), fmt)  # fmt: skip
    # Shifts about log2 of each stage's accumulator spread: the outputs stay mostly unsaturated.
    layer = QuantTuckerLinear(
        "bank", np.array([1, 4, 6]), random_codes(rng, INT8, (1, 3)), INT8,
        Requant(1, 9, fmt), (Requant(1, 9), Requant(1, 8), Requant(1, 8)),
        rng.integers(-3000, 3000, size=d).astype(np.int32), d, d, 1.0, 1.0,
    )  # fmt: skip
    compiled = compile_tt_linear(tucker_as_tt_linear(layer, bank), tokens, config)
    x = random_codes(rng, INT8, (tokens, d))
    return compiled, x, tucker_linear_int(x, layer, bank)


@cocotb.test()
async def tucker_and_dense_cycles(dut):
    cfg, config, seed = bench_setup(dut)
    bench = EngineBench(dut, config, seed)
    await bench.start()
    rng = np.random.default_rng(seed)
    report = []
    for d, r, tokens in cfg["layers"]:
        compiled, x, want = tucker_case(rng, d, r, tokens, config)
        await bench.run(Case(f"tucker {d} r{r} setup", list(compiled.setup),
                             compiled.setup_stream))  # fmt: skip
        run = Case(f"tucker {d} r{r} run", list(compiled.run), compiled.input_stream(x), want,
                   compiled.decode_output, compiled.useful_macs, compiled)  # fmt: skip
        tucker = await bench.run(run)
        dense = dense_case(rng, config, d, d, tokens, resident=False)
        dense_counters = await bench.run(dense)
        entry = {
            "d": d, "r": r, "tokens": tokens,
            "tucker_cycles": tucker["busy_cycles"],
            "tucker_model_cycles": simulate(list(compiled.run), config).cycles,
            "tucker_setup_beats": int(compiled.setup_stream.size),
            "dense_cycles": dense_counters["busy_cycles"],
            "dense_model_cycles": simulate(dense.program, config).cycles,
            "dense_stream_beats": int(dense.data.size),
        }  # fmt: skip
        dut._log.info("measure %s", entry)
        report.append(entry)
    with open("measure.json", "w") as handle:
        json.dump(report, handle, indent=2)
