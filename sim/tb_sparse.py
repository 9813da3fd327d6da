"""cocotb testbench of the engine's N:M sparse GEMM mode (``AccelConfig.sparse_nm``).

Configuration (``TTACCEL_TB``): ``config`` (an :class:`AccelConfig` with ``sparse_nm``),
``seed``, ``layers`` (random sparse layers), ``measure`` (``[in_features, out_features,
tokens]``: one layer run dense and sparse on this build, cycles written to ``measure.json``).

Every run goes through :class:`ttaccel.sim.tb_engine.EngineBench`: each output beat is
compared with :func:`ttaccel.spec.isa.execute_stream` on the stream actually sent, TLAST,
``PC`` and the counters are checked (``MACS_ISSUED`` counts the sparse beats), and the decoded
output equals the golden model (``requantize(gemm_int(x, W) + bias)`` of the dense codes).
Runs without idle cycles or back-pressure are timed against
:func:`ttaccel.spec.cycle_model.simulate`: array beats (``BUSY_CYCLES - STALL_CYCLES``) exactly
``k * N / M`` per sparse tile, the measured layers' cycles (dense and sparse) exactly the
model's, and small random layers (each next to its dense twin) within 6 cycles: where a
token block's LOAD waits for an earlier GEMM's token the model can be a few cycles
pessimistic, in both modes.
"""

from __future__ import annotations

import dataclasses
import json

import cocotb
import numpy as np

from ttaccel.sim.engine_programs import Case, attention_scores_case, dense_case, random_codes
from ttaccel.sim.tb_engine import ADDRESS, ILLEGAL, EngineBench, bench_setup
from ttaccel.spec.accel_config import AccelConfig
from ttaccel.spec.compiler import compile_dense, compile_sparse_linear
from ttaccel.spec.cycle_model import simulate
from ttaccel.spec.formats import INT4, INT8, Requant, requantize
from ttaccel.spec.golden import gemm_int
from ttaccel.spec.isa import (
    STREAM_BITS,
    Buffer,
    End,
    Gemm,
    Load,
    Store,
    pack_b_words,
    pack_bias,
)
from ttaccel.spec.packing import pack_words


def nm_weights(rng, config: AccelConfig, k: int, n: int, keep: int, group: int) -> np.ndarray:
    """Random (k, n) codes with at most ``keep`` non-zeros in each group of ``group`` rows
    per column (some groups with fewer)."""
    w = random_codes(rng, config.weight_format, (k, n)).astype(np.int64)
    w = np.where(w == 0, 1, w).reshape(k // group, group, n)
    mask = np.zeros_like(w, dtype=bool)
    for g in range(k // group):
        for c in range(n):
            kept = rng.choice(group, size=int(rng.integers(0, keep + 1)), replace=False)
            mask[g, kept, c] = True
    return (w * mask).reshape(k, n).astype(np.int8)


def sparse_layer_case(rng, config: AccelConfig, k: int, n: int, tokens: int, keep: int,
                      group: int, *, dense: bool = False, weight=None, bias=None, requant=None,
                      x=None) -> Case:  # fmt: skip
    """A compiled N:M layer (or, with ``dense``, the same layer compiled dense) as one cold
    program, with the golden model's output."""
    weight = nm_weights(rng, config, k, n, keep, group) if weight is None else weight
    if bias is None and rng.integers(2):
        bias = rng.integers(-3000, 3000, size=n).astype(np.int32)
    if requant is None:
        out_format = INT8 if rng.integers(3) else INT4
        requant = Requant(int(rng.integers(1, 2**16)), int(rng.integers(12, 22)), out_format)
    x = random_codes(rng, INT8, (tokens, k)) if x is None else x
    fmt = config.weight_format
    if dense:
        layer = compile_dense(weight, fmt, requant, tokens, config, bias, resident=True)
    else:
        layer = compile_sparse_linear(weight, fmt, requant, tokens, config, bias,
                                      name=f"layer {k}x{n}")  # fmt: skip
    want = requantize(gemm_int(x, weight), requant, bias)
    kind = "dense" if dense else f"{keep}:{group}"
    case = Case(f"{kind} {k}x{n} tokens {tokens}", list(layer.cold()), layer.cold_stream(x),
                want, layer.decode_output, layer.useful_macs, layer)  # fmt: skip
    case.layer_weight, case.layer_bias, case.layer_requant, case.layer_x = weight, bias, requant, x
    return case


async def timed_run(bench: EngineBench, case: Case) -> tuple[dict, int]:
    """Run ``case`` with the streams always ready; returns the counters and the cycles minus
    the cycle model's. The array beats must be the model's exactly."""
    counters = await bench.run(case)
    model = simulate(case.program, bench.config)
    beats = counters["busy_cycles"] - counters["stall_cycles"]
    assert beats == model.compute_cycles, (case.name, counters, model)
    error = counters["busy_cycles"] - model.cycles
    bench.dut._log.info("%s: %d cycles, model %d (%+d)", case.name, counters["busy_cycles"],
                        model.cycles, error)  # fmt: skip
    return counters, error


@cocotb.test()
async def sparse_layers_match_the_reference(dut):
    """``layers`` random N:M layers (2:4 and patterns that are also 2:4: 1:4, 2:8; some groups
    empty), compiled by ``compile_sparse_linear``: cold runs with and without idle cycles and
    back-pressure, bit-exact; the undisturbed ones timed against the cycle model."""
    cfg, config, seed = bench_setup(dut)
    bench = EngineBench(dut, config, seed)
    await bench.start()
    rng = np.random.default_rng(seed)
    keep, group = config.sparse_nm
    patterns = [(keep, group), (max(1, keep // 2), group), (keep, 2 * group)]
    errors = set()
    for index in range(cfg["layers"]):
        p_keep, p_group = patterns[index % len(patterns)]
        k = p_group * int(rng.integers(1, 48 // p_group + 1))
        n = int(rng.integers(1, 3 * config.cols + 1))
        tokens = int(rng.integers(1, 3 * config.rows + 1))
        case = sparse_layer_case(rng, config, k, n, tokens, p_keep, p_group)
        if index % 2 == 0:
            error = (await timed_run(bench, case))[1]
            twin = sparse_layer_case(rng, config, k, n, tokens, p_keep, p_group, dense=True,
                                     weight=case.layer_weight, bias=case.layer_bias,
                                     requant=case.layer_requant, x=case.layer_x)  # fmt: skip
            errors.add((error, (await timed_run(bench, twin))[1]))
        else:
            await bench.run(case, idle=0.3, backpressure=0.3)
    # The cycle model is not exact for small layers in either mode (tokens waiting on short
    # GEMMs); the bound is the one the dense layers show here too.
    assert all(abs(sparse) <= 6 and abs(dense) <= 6 for sparse, dense in errors), errors


@cocotb.test()
async def sparse_gemms_with_any_indices(dut):
    """Hand-built sparse GEMMs over random B-words and indices (repeated indices too): row
    tiles ``m_outer x m_inner`` with strides, ``a_k`` and ``b_k`` above 1, several column
    tiles, results to ABUF and STOREd or streamed, each followed without fence by a dense GEMM
    (the assembler switching modes); then a dense layer with streamed weights and attention
    scores (``b_from_abuf``) on the same build: the reference executor's results, beat for
    beat."""
    _, config, seed = bench_setup(dut)
    bench = EngineBench(dut, config, seed + 1)
    await bench.start()
    rng = np.random.default_rng(seed + 1)
    rows, cols = config.rows, config.cols
    keep, group = config.sparse_nm
    for trial in range(6):
        m_outer, m_inner = int(rng.integers(1, 3)), int(rng.integers(1, 3))
        k = group * int(rng.integers(1, 5))
        beats = k * keep // group
        a_k = int(rng.integers(1, 3))
        a_inner = k * a_k
        a_outer = m_inner * a_inner + int(rng.integers(0, 3))
        a_words = m_outer * a_outer + 4
        n = int(rng.integers(1, 3 * cols + 1))
        tiles = -(-n // cols)
        b_k = int(rng.integers(1, 3))
        b_tile = beats * b_k + int(rng.integers(0, 2))
        b_words = tiles * b_tile + b_k
        codes = random_codes(rng, config.weight_format, (b_words, cols))
        index = rng.integers(0, group, size=(b_words, cols))
        a_codes = random_codes(rng, INT8, (a_words, rows), extreme=trial == 0)
        bias = rng.integers(-2000, 2000, size=n * m_outer).astype(np.int32)
        to_abuf = trial % 2 == 1
        out_base = 600
        sparse = Gemm(
            m_outer=m_outer, m_inner=m_inner, k=k, n=n, a_base=2, a_outer=a_outer,
            a_inner=a_inner, a_k=a_k, b_base=3, b_tile=b_tile, b_k=b_k,
            requant=Requant(int(rng.integers(1, 2**16)), int(rng.integers(10, 20)), INT8),
            bias_en=bool(trial % 3), bias_base=0, bias_outer=n, dst_stream=not to_abuf,
            out_base=out_base, out_outer=m_inner * n, out_inner=n, out_col=1, wait=True,
            sparse=True,
        )  # fmt: skip
        dense = dataclasses.replace(sparse, k=beats, sparse=False, bias_en=False, wait=False,
                                    dst_stream=True, out_base=0, out_outer=0, out_inner=0,
                                    out_col=0)  # fmt: skip
        program = [
            Load(Buffer.ABUF, 0, a_words),
            Load(Buffer.WBUF, 0, b_words + 3),
            Load(Buffer.BIAS, 0, bias.size, signal=True),
            sparse,
            dense,
        ]
        if to_abuf:
            program.append(Store(out_base, m_outer * m_inner * n))
        program.append(End())
        b_all = np.vstack([np.zeros((3, cols), np.int8), codes])
        i_all = np.vstack([np.zeros((3, cols), np.int64), index])
        data = np.concatenate(
            [
                pack_words(a_codes.reshape(-1), INT8, STREAM_BITS),
                pack_b_words(b_all, config, i_all),
                pack_bias(bias),
            ]
        )
        await bench.run(Case(f"sparse gemm {trial}", program, data), idle=0.2 * (trial % 2),
                        backpressure=0.3 * (trial % 3 == 2))  # fmt: skip
    # Dense GEMMs through the same operand path: streamed weights (wide B-words with zero
    # indices) and, where the array allows it, B-words from ABUF (attention scores).
    await bench.run(dense_case(rng, config, 24, 3 * cols + 1, 6, resident=False), idle=0.2)
    if config.supports_b_from_abuf:
        await bench.run(attention_scores_case(rng, config, 7, 12, via_store=True))


@cocotb.test()
async def sparse_errors_stop_the_run(dut):
    """A sparse GEMM with ``k`` not a multiple of ``M``, or with ``b_from_abuf``, is illegal
    (error 1); its B-words are bounded by ``k * N / M`` beats: ending at WBUF's last word
    runs, one word further is error 2."""
    _, config, seed = bench_setup(dut)
    bench = EngineBench(dut, config, seed + 2)
    await bench.start()
    rng = np.random.default_rng(seed + 2)
    keep, group = config.sparse_nm
    k = 2 * group
    beats = k * keep // group
    load = Load(Buffer.ABUF, 0, k)
    data = pack_words(random_codes(rng, INT8, (k, config.rows)).reshape(-1), INT8, STREAM_BITS)
    gemm = Gemm(m_outer=1, m_inner=1, k=k, n=1, a_base=0, a_outer=0, a_inner=0, a_k=1,
                b_base=config.weight_buffer_depth - beats, b_tile=0, b_k=1,
                requant=Requant(3, 2, INT8), dst_stream=True, sparse=True)  # fmt: skip
    word = gemm.encode()
    k_field = 0xFFFF << 48
    await bench.expect_error([load, (word & ~k_field) | ((k + 1) << 48), End()], data, ILLEGAL, 1)
    if config.supports_b_from_abuf:
        await bench.expect_error([load, word | (1 << 9), End()], data, ILLEGAL, 1)
    further = dataclasses.replace(gemm, b_base=gemm.b_base + 1)
    await bench.expect_error([load, further, End()], data, ADDRESS, 1)
    w_load = Load(Buffer.WBUF, gemm.b_base, beats, signal=True)
    w_data = pack_b_words(random_codes(rng, config.weight_format, (beats, config.cols)), config,
                          rng.integers(0, group, size=(beats, config.cols)))  # fmt: skip
    gemm = dataclasses.replace(gemm, wait=True)
    await bench.run(Case("last WBUF words", [load, w_load, gemm, End()],
                         np.concatenate([data, w_data])))  # fmt: skip


@cocotb.test()
async def dense_and_sparse_layer_cycles(dut):
    """``measure``: one layer with N:M weights, setup (weights resident) then a run, compiled
    dense and sparse on this build: both bit-exact, both exactly the cycle model's cycles;
    the cycles go to ``measure.json``."""
    cfg, config, seed = bench_setup(dut)
    bench = EngineBench(dut, config, seed + 3)
    await bench.start()
    rng = np.random.default_rng(seed + 3)
    keep, group = config.sparse_nm
    report = []
    for k, n, tokens in cfg["measure"]:
        weight = nm_weights(rng, config, k, n, keep, group)
        bias = rng.integers(-3000, 3000, size=n).astype(np.int32)
        requant = Requant(20000, 18, INT8)
        x = random_codes(rng, INT8, (tokens, k))
        entry = {"in_features": k, "out_features": n, "tokens": tokens,
                 "config": config.to_dict()}  # fmt: skip
        for dense in (True, False):
            cold = sparse_layer_case(rng, config, k, n, tokens, keep, group, dense=dense,
                                     weight=weight, bias=bias, requant=requant, x=x)  # fmt: skip
            layer = cold.layer
            await bench.run(Case(f"{cold.name} setup", list(layer.setup), layer.setup_stream))
            run = Case(f"{cold.name} run", list(layer.run), layer.input_stream(x), cold.want,
                       layer.decode_output)  # fmt: skip
            counters, error = await timed_run(bench, run)
            kind = "dense" if dense else "sparse"
            entry[f"{kind}_model_error"] = error
            entry[f"{kind}_cycles"] = counters["busy_cycles"]
            entry[f"{kind}_model_cycles"] = simulate(run.program, config).cycles
            entry[f"{kind}_macs_issued"] = counters["macs_issued"]
            entry[f"{kind}_array_beats"] = counters["busy_cycles"] - counters["stall_cycles"]
        entry["ratio"] = entry["sparse_cycles"] / entry["dense_cycles"]
        assert entry["sparse_model_error"] == entry["dense_model_error"] == 0, entry
        dut._log.info("measure %s", entry)
        report.append(entry)
    with open("measure.json", "w") as handle:
        json.dump(report, handle, indent=2)
