"""Random legal engine programs built from the ISA's rules, not by the compiler.

:func:`random_program` draws LOADs, GEMMs (random affine strides, shapes, formats, bias, B
from ABUF, results to ABUF or the stream), STOREs, SYNCs and wait/signal tokens one
instruction at a time and keeps an instruction only when the program so far (closed with END)
passes :func:`ttaccel.spec.isa.check_program` (bounds, races, deadlocks, token limit); fences
come from :func:`ttaccel.spec.isa.add_fences`, plus random redundant ones. What the hardware
must compute is then :func:`ttaccel.spec.isa.execute` of the result: the compiler's layouts
and its habits (one token per block, fixed strides) play no part.

Plain NumPy on top of the spec; used by the cocotb testbenches only.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ttaccel.spec.accel_config import AccelConfig
from ttaccel.spec.formats import FORMATS, INT8, Requant
from ttaccel.spec.isa import (
    STREAM_BITS,
    Buffer,
    End,
    Gemm,
    HazardError,
    Instruction,
    Load,
    Store,
    Sync,
    add_fences,
    check_program,
    load_beats,
    pack_bias,
)
from ttaccel.spec.packing import pack_words

__all__ = ["clear_program", "load_data", "random_program"]

_BIAS_LIMIT = 2**20  # |bias| bound: acc + bias stays far inside int32 for these shapes


def load_data(rng: np.random.Generator, load: Load, config: AccelConfig) -> np.ndarray:
    """Random beats for ``load``: legal codes of the buffer's format (int8 activations, the
    configuration's weight format, int32 bias in ``[-2**20, 2**20)``), ``load_beats`` long."""
    if load.buffer == Buffer.ABUF:
        codes = rng.integers(-128, 128, size=load.count * config.rows)
        beats = pack_words(codes, config.activation_format, STREAM_BITS)
    elif load.buffer == Buffer.WBUF:
        fmt = config.weight_format
        values = np.array([v for v in range(fmt.qmin, fmt.qmax + 1) if fmt.has_zero or v])
        beats = pack_words(rng.choice(values, size=load.count * config.cols), fmt, STREAM_BITS)
    else:
        beats = pack_bias(rng.integers(-_BIAS_LIMIT, _BIAS_LIMIT, size=load.count))
    beats = np.asarray(beats, np.uint64)
    assert beats.size == load_beats(load, config)
    return beats


def clear_program(config: AccelConfig) -> tuple[list[Instruction], np.ndarray]:
    """A program that zeroes every word of ABUF, WBUF and BIAS (so a model with zeroed
    buffers is exact afterwards), and its data beats."""
    program: list[Instruction] = []
    beats = []
    for buffer, depth in (
        (Buffer.ABUF, config.act_buffer_depth),
        (Buffer.WBUF, config.weight_buffer_depth),
        (Buffer.BIAS, config.bias_buffer_depth),
    ):
        load = Load(buffer, 0, depth)
        program.append(load)
        beats.append(np.zeros(load_beats(load, config), np.uint64))
    return [*program, End()], np.concatenate(beats)


def _random_gemm(rng: np.random.Generator, config: AccelConfig) -> Gemm:
    cols = config.cols
    r = lambda lo, hi: int(rng.integers(lo, hi + 1))  # noqa: E731
    m_outer, m_inner, k = r(1, 2), r(1, 2), r(1, min(8, config.max_k))
    n = r(1, 3 * cols)
    b_from_abuf = config.supports_b_from_abuf and rng.random() < 0.25
    dst_stream = rng.random() < 0.5
    a_k = r(0, 2) if k > 1 else 0
    a_inner = r(0, k * max(a_k, 1) + 3)
    a_outer = r(0, m_inner * max(a_inner, 1) + 3)
    a_span = (m_outer - 1) * a_outer + (m_inner - 1) * a_inner + (k - 1) * a_k + 1
    tiles = -(-n // cols)
    b_k = r(0, 2) if k > 1 else 0
    b_tile = r(0, k * max(b_k, 1) + 2)
    b_span = (tiles - 1) * b_tile + (k - 1) * b_k + 1
    b_depth = config.act_buffer_depth if b_from_abuf else config.weight_buffer_depth
    out_col = r(1, 2)
    out_inner = n * out_col + r(0, 2)
    out_outer = m_inner * out_inner + r(0, 3)
    o_span = (m_outer - 1) * out_outer + (m_inner - 1) * out_inner + (n - 1) * out_col + 1
    bias_en = rng.random() < 0.5
    bias_outer = r(0, n + 2)
    bias_span = (m_outer - 1) * bias_outer + n
    fmt = list(FORMATS.values())[r(0, len(FORMATS) - 1)]
    return Gemm(
        m_outer=m_outer, m_inner=m_inner, k=k, n=n,
        a_base=r(0, config.act_buffer_depth - a_span), a_outer=a_outer, a_inner=a_inner,
        a_k=a_k, b_base=r(0, b_depth - b_span), b_tile=b_tile, b_k=b_k,
        requant=Requant(r(1, 2**16 - 1), r(0, 24), fmt),
        out_base=0 if dst_stream else r(0, config.act_buffer_depth - o_span),
        out_outer=0 if dst_stream else out_outer, out_inner=0 if dst_stream else out_inner,
        out_col=0 if dst_stream else out_col,
        bias_base=r(0, config.bias_buffer_depth - bias_span) if bias_en else 0,
        bias_outer=bias_outer if bias_en else 0, bias_en=bias_en, dst_stream=dst_stream,
        b_from_abuf=b_from_abuf,
    )  # fmt: skip


def _random_load(rng: np.random.Generator, config: AccelConfig) -> Load:
    buffer = Buffer(int(rng.integers(3)))
    depth = {
        Buffer.ABUF: config.act_buffer_depth,
        Buffer.WBUF: config.weight_buffer_depth,
        Buffer.BIAS: config.bias_buffer_depth,
    }[buffer]
    count = int(rng.integers(1, min(24, depth) + 1))
    return Load(buffer, int(rng.integers(0, depth - count + 1)), count)


def random_program(
    rng: np.random.Generator, config: AccelConfig, length: int = 16
) -> tuple[list[Instruction], np.ndarray]:
    """A legal program of ``length`` instructions before END (fewer if ``instruction_depth``
    is smaller) and its data beats.

    Mix: about 35% LOAD, 35% GEMM, 15% STORE (int8, so any ABUF contents are legal codes),
    15% SYNC; a LOAD signals with probability 0.4 and an execute instruction waits when a
    load token is outstanding (probability 0.7), and vice versa; a candidate that makes the
    program illegal is redrawn (after 50 failures a SYNC goes in). Reads only words the
    program, or an earlier run, loaded: run :func:`clear_program` first on a fresh device.
    """
    length = min(length, config.instruction_depth - 1)
    program: list[Instruction] = []
    tokens = [0, 0]  # outstanding signals from the load engine / the execute engine
    failures = 0
    chain: int | None = None  # out_base of the last GEMM that wrote ABUF
    while len(program) < length:
        roll = rng.random()
        if roll < 0.35:
            candidate: Instruction = _random_load(rng, config)
            wait = tokens[1] > 0 and rng.random() < 0.7
            signal = rng.random() < 0.4
            candidate = dataclasses.replace(candidate, wait=wait, signal=signal)
        elif roll < 0.85:
            if roll < 0.7:
                candidate = _random_gemm(rng, config)
            else:
                count = int(rng.integers(1, 17))
                base = int(rng.integers(0, config.act_buffer_depth - count + 1))
                candidate = Store(base, count, INT8)
            wait = tokens[0] > 0 and rng.random() < 0.7
            signal = rng.random() < 0.3
            candidate = dataclasses.replace(candidate, wait=wait, signal=signal)
        else:
            candidate = Sync()
        if failures >= 50:
            candidate, failures = Sync(), 0
        if isinstance(candidate, Gemm) and chain is not None and rng.random() < 0.4:
            # Read what the previous ABUF-writing GEMM wrote (a fence or a STORE between).
            a_base = min(chain, config.act_buffer_depth - 1)
            candidate = dataclasses.replace(candidate, a_base=a_base)
        try:
            trial = add_fences([*program, candidate, End()], config)
            check_program(trial, config)
        except (HazardError, ValueError):
            failures += 1
            continue
        failures = 0
        program = trial[:-1]
        if isinstance(candidate, Sync):
            continue
        if isinstance(candidate, Gemm) and not candidate.dst_stream:
            chain = candidate.out_base
        engine = 0 if isinstance(candidate, Load) else 1
        tokens[1 - engine] -= int(candidate.wait)
        tokens[engine] += int(candidate.signal)
    # Redundant fences are legal (they only order more): add some.
    program = [
        dataclasses.replace(i, fence=True) if isinstance(i, Gemm) and rng.random() < 0.2 else i
        for i in program
    ]
    program.append(End())
    check_program(program, config)
    data = [load_data(rng, i, config) for i in program if isinstance(i, Load)]
    beats = np.concatenate(data) if data else np.empty(0, np.uint64)
    return program, beats
