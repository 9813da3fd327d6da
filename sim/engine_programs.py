"""Programs and stimulus for the engine tests: random TT layers, seed 000's layers, a dense
GEMM, an attention-score GEMM, and malformed programs for the error paths.

Everything here is plain NumPy on top of the spec (compiler, reference executor, golden
models): a :class:`Case` is a program, its input-stream data and what the golden models say
the decoded output must be, independent of the hardware.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from ttaccel.spec.accel_config import AccelConfig
from ttaccel.spec.compiler import (
    CompiledLayer,
    LayerDoesNotFit,
    compile_attention_scores,
    compile_dense,
    compile_tt_linear,
)
from ttaccel.spec.formats import FORMATS, INT8, NumberFormat, Requant, requantize
from ttaccel.spec.golden import QuantTTLinear, gemm_int, tt_linear_int
from ttaccel.spec.isa import (
    Buffer,
    End,
    Gemm,
    Instruction,
    Load,
    Store,
    encode,
    execute,
    gemm_beats,
    load_beats,
)
from ttaccel.spec.packing import pack_words
from ttaccel.spec.tt import TTShape, best_plan, tt_layer_modes

__all__ = [
    "Case",
    "attention_scores_case",
    "compiled_scores_case",
    "compute_beats",
    "dense_case",
    "random_codes",
    "random_tt_case",
    "seed000_case",
    "tt_case",
]

SEED000_LAYERS = {
    # name: (in_modes, out_modes, ranks) of seed 000's layout (tests/spec/test_compiler.py)
    "attention": ((24, 32), (32, 24), (1, 24, 30, 24, 1)),
    "ffn": ((32, 24), (48, 64), (1, 30, 30, 30, 1)),
}


@dataclass
class Case:
    """One program run: ``program`` (instructions or raw 320-bit words), ``data`` (the input
    beats after the program), ``want`` (decoded output the golden model computes, or None),
    ``decode`` (output beats -> codes), ``name``; ``useful_macs`` for utilization."""

    name: str
    program: list
    data: np.ndarray
    want: np.ndarray | None = None
    decode: object = None
    useful_macs: int = 0
    layer: CompiledLayer | None = None


def random_codes(rng: np.random.Generator, fmt: NumberFormat, size, *, extreme=False):
    """Legal codes of ``fmt``; with ``extreme`` only ``qmin`` / ``qmax`` (saturating sums)."""
    values = [v for v in range(fmt.qmin, fmt.qmax + 1) if fmt.has_zero or v]
    pool = [fmt.qmin, fmt.qmax] if extreme else values
    return rng.choice(pool, size=size).astype(np.int8)


def _requant(rng, out_format, extreme):
    shift = int(rng.integers(0, 6)) if extreme else int(rng.integers(4, 22))
    return Requant(int(rng.integers(1, 2**16)), shift, out_format)


def _layer(rng, shape, fmt, plan, *, extreme, out_format, with_bias):
    cores = tuple(random_codes(rng, fmt, s, extreme=extreme) for s in shape.core_shapes)
    return QuantTTLinear(
        cores=cores,
        weight_format=fmt,
        plan=plan,
        merge_requants=tuple(
            tuple(_requant(rng, fmt, extreme) for _ in range(b - a - 1)) for a, b in plan
        ),
        stage_requants=tuple(
            _requant(rng, INT8 if s < len(plan) - 1 else out_format, extreme)
            for s in range(len(plan))
        ),
        bias=rng.integers(-(2**20), 2**20, size=shape.out_features).astype(np.int32)
        if with_bias
        else None,
        input_scale=1.0,
        output_scale=1.0,
    )


def _weight_formats(config: AccelConfig) -> list[NumberFormat]:
    """Layer weight formats whose codes the configuration's weight format holds."""
    ok = []
    for fmt in FORMATS.values():
        codes = np.array([v for v in range(fmt.qmin, fmt.qmax + 1) if fmt.has_zero or v])
        if config.weight_format.valid(codes).all():
            ok.append(fmt)
    return ok


def tt_case(
    name,
    layer: QuantTTLinear,
    tokens: int,
    config: AccelConfig,
    x: np.ndarray,
    *,
    cold: bool = True,
) -> Case:
    """The run (``cold``: setup and run as one program) of ``layer`` on codes ``x``."""
    compiled = compile_tt_linear(layer, tokens, config)
    program = list(compiled.cold() if cold else compiled.run)
    data = compiled.cold_stream(x) if cold else compiled.input_stream(x)
    return Case(
        name,
        program,
        data,
        tt_linear_int(x, layer),
        compiled.decode_output,
        compiled.useful_macs,
        compiled,
    )


def random_tt_case(
    rng: np.random.Generator, config: AccelConfig, index: int, *, max_features: int = 64
) -> Case:
    """A random TT layer that fits ``config``: 2 to 6 cores, mostly odd modes, ranks 1 to
    ``max_rank``, random plan, weight and output formats, extreme (saturating) values in some,
    1 to ``3 * rows`` tokens, at most ``max_features`` input and output features."""
    for _ in range(1000):
        d = int(rng.integers(2, 7))
        modes = [1, 1, 3, 3, 5, 7, 2]
        in_modes = tuple(int(rng.choice(modes)) for _ in range(d))
        out_modes = tuple(int(rng.choice(modes)) for _ in range(d))
        ranks = (1, *(int(rng.integers(1, config.max_rank + 1)) for _ in range(d - 1)), 1)
        shape = TTShape(in_modes, out_modes, ranks)
        if max(shape.in_features, shape.out_features) > max_features:
            continue
        cuts = sorted({int(c) for c in rng.integers(1, d, size=int(rng.integers(0, d)))})
        bounds = [0, *cuts, d]
        plan = tuple(itertools.pairwise(bounds))
        fmt = _weight_formats(config)[int(rng.integers(len(_weight_formats(config))))]
        out_format = list(FORMATS.values())[int(rng.integers(len(FORMATS)))]
        extreme = bool(rng.integers(2))
        layer = _layer(
            rng,
            shape,
            fmt,
            plan,
            extreme=extreme,
            out_format=out_format,
            with_bias=bool(rng.integers(2)),
        )
        tokens = int(rng.integers(1, 3 * config.rows + 1))
        x = random_codes(rng, INT8, (tokens, shape.in_features), extreme=extreme)
        try:
            case = tt_case(f"tt{index}", layer, tokens, config, x)
        except LayerDoesNotFit:
            continue
        case.name = (
            f"tt{index}: modes {in_modes}->{out_modes} ranks {ranks} plan {plan} "
            f"{fmt.name}->{out_format.name} tokens {tokens} extreme {extreme}"
        )
        return case
    raise AssertionError("no random TT layer fits the configuration")


def seed000_case(
    rng: np.random.Generator, name: str, tokens: int, config: AccelConfig, *, cold: bool = True
) -> Case:
    """Seed 000's ``attention`` (768 x 768) or ``ffn`` (768 x 3072) TT layer, best plan."""
    in_modes, out_modes, ranks = SEED000_LAYERS[name]
    shape = TTShape(*tt_layer_modes(in_modes, out_modes), ranks)
    layer = _layer(
        rng, shape, INT8, best_plan(shape, tokens), extreme=False, out_format=INT8, with_bias=True
    )
    x = random_codes(rng, INT8, (tokens, shape.in_features))
    case = tt_case(f"seed000-{name}-{tokens}", layer, tokens, config, x, cold=cold)
    return case


def dense_case(rng, config: AccelConfig, m: int, n: int, tokens: int, *, resident: bool) -> Case:
    """``requantize(x @ W + bias)`` through :func:`compile_dense` (weights resident in WBUF,
    or streamed through two WBUF slots with tokens), setup and run as one program."""
    fmt = config.weight_format
    weight = random_codes(rng, fmt, (m, n))
    bias = rng.integers(-5000, 5000, size=n).astype(np.int32)
    requant = Requant(int(rng.integers(1, 2**16)), int(rng.integers(10, 22)), INT8)
    compiled = compile_dense(weight, fmt, requant, tokens, config, bias, resident=resident)
    x = random_codes(rng, INT8, (tokens, m))
    program = list(compiled.cold())
    data = compiled.cold_stream(x)
    want = requantize(gemm_int(x, weight), requant, bias)
    return Case(
        f"dense {m}x{n} tokens {tokens} resident {resident}",
        program,
        data,
        want,
        compiled.decode_output,
        tokens * m * n,
        compiled,
    )


def _a_words(x: np.ndarray, rows: int) -> np.ndarray:
    """(tokens, features) int8 -> (blocks * features, rows) A-words, block major."""
    tokens, features = x.shape
    blocks = -(-tokens // rows)
    padded = np.zeros((blocks * rows, features), np.int8)
    padded[:tokens] = x
    return padded.reshape(blocks, rows, features).transpose(0, 2, 1).reshape(-1, rows)


def attention_scores_case(
    rng, config: AccelConfig, tokens: int, dim: int, *, via_store: bool
) -> Case:
    """int8 x int8 scores ``requantize(Q @ K.T)`` with B-words read from ABUF
    (``b_from_abuf``): Q and K stored as A-words (token blocks), K's blocks are the B-words.
    ``via_store``: results to ABUF, then a fenced second GEMM-free STORE sends them; else
    straight to the stream."""
    rows, cols = config.rows, config.cols
    assert rows == cols and config.weight_format == INT8
    q = random_codes(rng, INT8, (tokens, dim), extreme=bool(rng.integers(2)))
    k = random_codes(rng, INT8, (tokens, dim))
    blocks = -(-tokens // rows)
    q_words, k_words = _a_words(q, rows), _a_words(k, rows)
    k_base = q_words.shape[0]
    out_base = k_base + k_words.shape[0]
    requant = Requant(int(rng.integers(1, 2**16)), int(rng.integers(8, 20)), INT8)
    gemm = Gemm(
        m_outer=blocks,
        m_inner=1,
        k=dim,
        n=tokens,
        a_base=0,
        a_outer=dim,
        a_inner=0,
        a_k=1,
        b_base=k_base,
        b_tile=dim,
        b_k=1,
        requant=requant,
        b_from_abuf=True,
        dst_stream=not via_store,
        out_base=out_base,
        out_outer=tokens,
        out_inner=0,
        out_col=1,
    )
    program: list[Instruction] = [
        Load(Buffer.ABUF, 0, q_words.shape[0]),
        Load(Buffer.ABUF, k_base, k_words.shape[0], signal=True),
        Gemm(**{**gemm.__dict__, "wait": True}),
    ]
    if via_store:
        program.append(Store(out_base, blocks * tokens))
    program.append(End())
    data = np.concatenate(
        [pack_words(q_words.reshape(-1), INT8, 64), pack_words(k_words.reshape(-1), INT8, 64)]
    )
    want = requantize(gemm_int(q, k.T), requant)

    def decode(beats):
        codes = np.asarray(beats, np.uint64).view(np.uint8).view(np.int8)
        words = codes[: blocks * tokens * rows].reshape(blocks, tokens, rows)
        return words.transpose(0, 2, 1).reshape(blocks * rows, tokens)[:tokens]

    return Case(
        f"scores {tokens}x{tokens} dim {dim} store {via_store}",
        program,
        data,
        want,
        decode,
        tokens * tokens * dim,
    )


def compiled_scores_case(rng, config: AccelConfig, tokens: int, head_dim: int) -> Case:
    """Attention scores through :func:`compile_attention_scores` (the compiler's layout:
    queries and keys interleaved per token block), checked against ``gemm_int``."""
    requant = Requant(int(rng.integers(1, 2**16)), int(rng.integers(8, 20)), INT8)
    compiled = compile_attention_scores(tokens, head_dim, requant, config)
    q = random_codes(rng, INT8, (tokens, head_dim), extreme=True)
    k = random_codes(rng, INT8, (tokens, head_dim))
    x = np.concatenate([q, k], axis=1)
    want = requantize(gemm_int(q, k.T), requant)
    return Case(
        f"compiled scores {tokens} tokens, head {head_dim}",
        list(compiled.cold()),
        compiled.cold_stream(x),
        want,
        compiled.decode_output,
        tokens * tokens * head_dim,
        compiled,
    )


def compute_beats(program, config: AccelConfig) -> int:
    """Beats a program sends into the array: ``k`` per tile, ``k * N / M`` for a sparse GEMM
    (what ``STALL_CYCLES`` leaves out of ``BUSY_CYCLES``)."""
    return sum(
        g.row_tiles * g.col_tiles(config.cols) * gemm_beats(g, config)
        for g in program
        if isinstance(g, Gemm)
    )


def program_words(program) -> list[int]:
    """Instructions (or raw words) as 320-bit integers."""
    return [w if isinstance(w, int) else encode(w) for w in program]


def reference(case: Case, config: AccelConfig, machine):
    """What the reference executor produces for ``case`` (updating ``machine``)."""
    return execute(case.program, config, case.data, machine)


def data_beats(config: AccelConfig, load: Load) -> int:
    return load_beats(load, config)
