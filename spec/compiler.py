"""Compile one quantized layer into programs for an :class:`~.accel_config.AccelConfig`.

Data layout (the contract with the host driver)
================================================

Tokens are the array's rows: a *token block* is ``rows`` consecutive tokens (the last one zero
padded), and every activation lives in ABUF as A-words whose lane ``i`` is token
``block * rows + i``. Per token block, the state before TT stage ``s`` (merged core
``(r, m, n, r')``, ``P`` = product of the merged output modes before it, ``R`` = product of the
merged input modes after it) occupies ``P * r * m * R`` consecutive A-words in the natural
order of :func:`ttaccel.spec.tt.contract_core`'s ``(P, r, m, R)`` state, so stage ``s`` is one
GEMM with row tiles ``(p, q)`` in ``P x R``, ``K = r * m`` (stride ``R``) and ``N = n * r'``,
and its result word ``(p, q, c)`` at ``p * N * R + c * R + q`` is already the next stage's
state: no reshapes or transposes, ever. The merged cores live in WBUF as B-words, core ``s``
as ``K x N`` with column tile ``t`` at ``base + t * K + kk`` (columns past ``N`` zero).

Streams
    Input (run program): per token block ``b`` (in order), the ``in_features`` A-words of
    ``x[b*rows:(b+1)*rows, :].T`` (int8, zero padded tokens), 16 bytes per word for 16 rows.
    Output: per token block, the ``out_features`` result words (feature order), each ``rows``
    codes of the output format; :meth:`CompiledLayer.decode_output` undoes it.

Schedule
    A *setup* program loads the merged cores and the bias once; they stay resident for every
    later *run* program (one per batch of ``tokens``). The run program software-pipelines the
    token blocks: step ``t`` runs stage ``s`` on block ``t - s`` for ascending ``s``, so no
    GEMM reads what the GEMM just before it writes (no fences, no pipeline bubbles) and
    intermediate states are double buffered; the load engine streams block ``b + slots`` into
    the X slot that stage 0 of block ``b`` has finished with (``wait``/``signal`` tokens), so
    input transfers overlap compute. The last stage streams its results straight out.
    :func:`with_prefetch` adds the next layer's constants to a run program, in the load
    engine's idle gaps, so a chain of layers runs at the resident rate.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from .accel_config import AccelConfig
from .formats import NumberFormat, Requant
from .golden import QuantNMLinear, QuantTTLinear
from .isa import (
    STREAM_BITS,
    Buffer,
    End,
    Gemm,
    Instruction,
    Load,
    add_fences,
    check_program,
    pack_b_words,
    pack_bias,
    result_beats,
)
from .nm import NMPatternError, check_nm, nm_compress, nm_expand
from .packing import pack_words, unpack_words
from .tt import merged_shape, plan_macs, tt_shape_of

__all__ = [
    "CompiledLayer",
    "ConstantLoad",
    "LayerDoesNotFit",
    "NMPatternError",
    "StageInfo",
    "compile_attention_scores",
    "compile_dense",
    "compile_layer",
    "compile_nm_linear",
    "compile_sparse_linear",
    "compile_tt_linear",
    "dense_as_tt_linear",
    "nm_wbuf_lanes",
    "resident_cores_setup",
    "sparse_mode_takes",
    "tile_tokens",
    "untile_tokens",
    "with_prefetch",
]


class LayerDoesNotFit(ValueError):
    """A layer exceeds a limit of the accelerator configuration (the message names both)."""


@dataclass(frozen=True)
class StageInfo:
    """One GEMM stage of a layer: ``P x R`` row tiles per token block, ``K``, ``N``."""

    p: int
    r: int
    k: int
    n: int

    @property
    def in_words(self) -> int:
        """A-words of the stage's input state per token block."""
        return self.p * self.k * self.r

    @property
    def out_words(self) -> int:
        return self.p * self.n * self.r


@dataclass(frozen=True)
class _InputSegment:
    """One LOAD's data: token blocks ``blocks`` of x, packed back to back (if not empty), or
    constant ``beats``."""

    blocks: tuple[int, ...]
    beats: np.ndarray | None = None


@dataclass(frozen=True)
class _OutputChunk:
    """One streaming GEMM's results: word ``w`` holds feature ``features[w]`` of block
    ``blocks[w]``."""

    blocks: np.ndarray
    features: np.ndarray


@dataclass(frozen=True)
class ConstantLoad:
    """A LOAD of constant data: ``values`` are (count, lanes) codes for WBUF (of the
    configuration's weight format) or ABUF (int8), or int32 entries (count,) for BIAS;
    ``index``: the WBUF lanes' N:M indices (``sparse_nm`` configurations; None: zeros)."""

    buffer: Buffer
    base: int
    values: np.ndarray
    index: np.ndarray | None = None

    @property
    def count(self) -> int:
        return int(self.values.shape[0])

    def instruction(self, **flags: bool) -> Load:
        """The LOAD (``wait`` / ``signal`` from ``flags``)."""
        return Load(self.buffer, self.base, self.count, **flags)

    def beats(self, config: AccelConfig) -> np.ndarray:
        """The LOAD's input-stream beats."""
        if self.buffer == Buffer.BIAS:
            return pack_bias(self.values)
        if self.buffer == Buffer.WBUF:
            return pack_b_words(self.values, config, self.index)
        return pack_words(self.values.reshape(-1), config.activation_format, STREAM_BITS)

    def split(self, max_words: int, config: AccelConfig) -> list[ConstantLoad]:
        """Pieces of at most ``max_words`` words (at least one beat's worth), each a whole
        number of beats except the last, so the pieces' beats concatenate to this LOAD's."""
        bits = {Buffer.ABUF: config.a_word_bits, Buffer.WBUF: config.b_word_bits}.get(
            self.buffer, 32
        )
        unit = STREAM_BITS // math.gcd(STREAM_BITS, bits)  # words per whole number of beats
        step = max(unit, max_words // unit * unit)
        return [
            ConstantLoad(
                self.buffer,
                self.base + i,
                self.values[i : i + step],
                None if self.index is None else self.index[i : i + step],
            )
            for i in range(0, self.count, step)
        ]


def _constant_program(
    constants: Sequence[ConstantLoad], config: AccelConfig
) -> tuple[tuple[Instruction, ...], np.ndarray, tuple[ConstantLoad, ...]]:
    """Setup program (constants split at the 16-bit count limit, then END) and its stream."""
    pieces = [p for c in constants for p in c.split(2**16 - 1, config)]
    program = (*(p.instruction() for p in pieces), End())
    beats = [p.beats(config) for p in pieces]
    stream = np.concatenate(beats).astype(np.uint64) if beats else np.empty(0, np.uint64)
    return program, stream, tuple(pieces)


@dataclass(frozen=True)
class CompiledLayer:
    """Programs and stream formats for one layer on one configuration.

    ``setup``: loads the resident constants (ends with END); ``setup_stream``: its input beats.
    ``run``: the per-batch program; :meth:`input_stream` and :meth:`decode_output` convert
    between int8 codes ``(tokens, in_features)`` / ``(tokens, out_features)`` and its streams.
    ``useful_macs``: the layer's MACs for ``tokens`` tokens (no padding). ``constants``: the
    setup program's LOADs with their data (for :func:`with_prefetch`).
    """

    config: AccelConfig
    tokens: int
    in_features: int
    out_features: int
    out_format: NumberFormat
    setup: tuple[Instruction, ...]
    setup_stream: np.ndarray
    run: tuple[Instruction, ...]
    stages: tuple[StageInfo, ...]
    useful_macs: int
    constants: tuple[ConstantLoad, ...] = ()
    _inputs: tuple[_InputSegment, ...] = field(repr=False, default=())
    _outputs: tuple[_OutputChunk, ...] = field(repr=False, default=())

    @property
    def streams_weights(self) -> bool:
        """Whether the run program streams weights into WBUF itself (a streamed dense layer,
        :func:`compile_dense`): it then uses WBUF from address 0 and nothing may be prefetched
        beside it."""
        return any(isinstance(i, Load) and i.buffer == Buffer.WBUF for i in self.run)

    @property
    def sparse(self) -> bool:
        """Whether the run program's GEMMs are N:M sparse (:func:`compile_nm_linear`)."""
        return any(isinstance(i, Gemm) and i.sparse for i in self.run)

    @property
    def blocks(self) -> int:
        """Token blocks: ``ceil(tokens / rows)``."""
        return -(-self.tokens // self.config.rows)

    def input_stream(self, x: np.ndarray) -> np.ndarray:
        """The run program's input beats for int8 codes ``x`` (tokens, in_features)."""
        x = np.asarray(x)
        if x.shape != (self.tokens, self.in_features):
            raise ValueError(
                f"x must have shape ({self.tokens}, {self.in_features}), not {x.shape}"
            )
        tiled = tile_tokens(x, self.config.rows)  # (blocks, in_features, rows)
        chunks = []
        for segment in self._inputs:
            if not segment.blocks:
                chunks.append(segment.beats)
            else:
                codes = tiled[list(segment.blocks)].reshape(-1)
                chunks.append(pack_words(codes, self.config.activation_format, STREAM_BITS))
        return np.concatenate(chunks) if chunks else np.empty(0, np.uint64)

    def decode_output(self, beats: np.ndarray) -> np.ndarray:
        """Output-stream beats of the run program -> codes (tokens, out_features)."""
        beats = np.asarray(beats, dtype=np.uint64).reshape(-1)
        rows, fmt = self.config.rows, self.out_format
        tiled = np.zeros((self.blocks, self.out_features, rows), dtype=np.int8)
        cursor = 0
        for chunk in self._outputs:
            words = chunk.blocks.size
            count = result_beats(words, rows, fmt)
            if cursor + count > beats.size:
                raise ValueError(
                    f"output stream has {beats.size} beats; expected more than {cursor + count - 1}"
                )
            codes = unpack_words(beats[cursor : cursor + count], fmt, words * rows).reshape(
                words, rows
            )
            tiled[chunk.blocks, chunk.features] = codes
            cursor += count
        if cursor != beats.size:
            raise ValueError(f"output stream has {beats.size} beats; the program sends {cursor}")
        return untile_tokens(tiled, self.tokens)

    @property
    def output_beats(self) -> int:
        """Beats the run program sends."""
        return sum(
            result_beats(c.blocks.size, self.config.rows, self.out_format) for c in self._outputs
        )

    def cold(self) -> tuple[Instruction, ...]:
        """Setup and run as one program (constants loaded, then the batch)."""
        return (*self.setup[:-1], *self.run)

    def cold_stream(self, x: np.ndarray) -> np.ndarray:
        """Input beats of :meth:`cold`."""
        return np.concatenate([self.setup_stream, self.input_stream(x)])


def tile_tokens(x: np.ndarray, rows: int) -> np.ndarray:
    """(tokens, features) -> (blocks, features, rows): A-words, padded tokens zero."""
    x = np.asarray(x)
    tokens, features = x.shape
    blocks = -(-tokens // rows)
    padded = np.zeros((blocks * rows, features), dtype=x.dtype)
    padded[:tokens] = x
    return padded.reshape(blocks, rows, features).transpose(0, 2, 1)


def untile_tokens(tiled: np.ndarray, tokens: int) -> np.ndarray:
    """Inverse of :func:`tile_tokens`: (blocks, features, rows) -> (tokens, features)."""
    blocks, features, rows = tiled.shape
    return tiled.transpose(0, 2, 1).reshape(blocks * rows, features)[:tokens]


def _fits_format(layer_fmt: NumberFormat, config: AccelConfig) -> None:
    codes = np.array(
        [v for v in range(layer_fmt.qmin, layer_fmt.qmax + 1) if layer_fmt.has_zero or v], np.int64
    )
    if not config.weight_format.valid(codes).all():
        raise LayerDoesNotFit(
            f"weight format: the layer's {layer_fmt.name} codes are not all "
            f"{config.weight_format.name} codes, which the accelerator multiplies"
        )


def _limit(name: str, value: int, limit: int, limit_name: str) -> None:
    if value > limit:
        raise LayerDoesNotFit(f"{name} is {value}, but the configuration's {limit_name} is {limit}")


def _b_words(core_matrix: np.ndarray, cols: int, fmt: NumberFormat) -> np.ndarray:
    """(K, N) codes -> (tiles * K, cols) B-words, column tile major. Columns past N (never
    written out) hold 0, or +1 for binary, which has no zero."""
    k, n = core_matrix.shape
    tiles = -(-n // cols)
    padded = np.full((k, tiles * cols), 0 if fmt.has_zero else 1, dtype=np.int8)
    padded[:, :n] = core_matrix
    return padded.reshape(k, tiles, cols).transpose(1, 0, 2).reshape(tiles * k, cols)


def _loads(buffer: Buffer, base: int, count: int, **flags) -> list[Load]:
    """LOADs of ``count`` words, split at the 16-bit count limit (flags on the last)."""
    out, done = [], 0
    while done < count:
        step = min(count - done, 2**16 - 1)
        last = done + step == count
        out.append(Load(buffer, base + done, step, **(flags if last else {})))
        done += step
    return out


def compile_tt_linear(
    layer: QuantTTLinear,
    tokens: int,
    config: AccelConfig,
    *,
    weight_base: int = 0,
    bias_base: int = 0,
    resident_cores: Mapping[int, int] | None = None,
) -> CompiledLayer:
    """Compile ``layer`` (its plan's segments merged offline with
    :func:`~ttaccel.spec.golden.merge_cores_int`) for ``tokens`` tokens per run.

    ``resident_cores``: ``{stage: wbuf_base}`` for merged cores that are already in WBUF at
    that base (loaded once by :func:`resident_cores_setup`, e.g. a Tucker bank's shared ``V``
    and ``U^T``, the same for every layer of the bank): the run program reads them there and
    the setup program (and :attr:`CompiledLayer.constants`, so a prefetch) loads only the other
    cores, placed from ``weight_base``, and the bias. A resident region that leaves WBUF or
    overlaps the placed cores raises :class:`LayerDoesNotFit`.

    The run program computes exactly :func:`~ttaccel.spec.golden.tt_linear_int` on the codes
    given to :meth:`CompiledLayer.input_stream`. ``weight_base`` / ``bias_base``: where the
    merged cores and the bias start in WBUF and BIAS (give consecutive layers disjoint ranges
    to prefetch one's constants while the other runs, see :func:`with_prefetch`). Raises
    :class:`LayerDoesNotFit` naming the dimension and the limit when the layer or the batch
    exceeds the configuration.
    """
    if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 1:
        raise ValueError(f"tokens must be a positive integer, not {tokens!r}")
    shape = tt_shape_of(layer.cores)
    _limit("the number of TT cores", shape.num_cores, config.max_cores, "max_cores")
    _limit("the largest TT rank", max(shape.ranks), config.max_rank, "max_rank")
    _limit("the largest input mode", max(shape.in_modes), config.max_mode, "max_mode")
    _limit("the largest output mode", max(shape.out_modes), config.max_mode, "max_mode")
    _fits_format(layer.weight_format, config)
    merged = merged_shape(shape, layer.plan)
    cores = layer.merged_cores()
    rows, cols = config.rows, config.cols
    stages = []
    for s, (r, m, n, r_next) in enumerate(merged.core_shapes):
        info = StageInfo(
            p=math.prod(merged.out_modes[:s]),
            r=math.prod(merged.in_modes[s + 1 :]),
            k=r * m,
            n=n * r_next,
        )
        _limit(f"stage {s}'s reduction K = r * m", info.k, config.max_k, "max_k")
        stages.append(info)
    out_format = layer.stage_requants[-1].out_format

    # Weight buffer: merged cores back to back (resident ones where they already are).
    resident = _check_resident(resident_cores, len(stages))
    w_bases, w_words, cursor = [], [], weight_base
    for s, (core, info) in enumerate(zip(cores, stages, strict=True)):
        words = _b_words(np.asarray(core).reshape(info.k, info.n), cols, config.weight_format)
        w_bases.append(resident.get(s, cursor))
        w_words.append(words)
        if s not in resident:
            cursor += words.shape[0]
    _limit(
        "the merged cores' B-words" + (f" from weight_base {weight_base}" if weight_base else ""),
        cursor,
        config.weight_buffer_depth,
        "weight_buffer_depth",
    )
    for s, base in resident.items():
        end = base + w_words[s].shape[0]
        _limit(f"resident core {s}'s B-words from base {base}", end,
               config.weight_buffer_depth, "weight_buffer_depth")  # fmt: skip
        if cursor > weight_base and base < cursor and weight_base < end:
            raise LayerDoesNotFit(
                f"resident core {s} at WBUF [{base}, {end}) overlaps the layer's own cores at "
                f"[{weight_base}, {cursor})"
            )
    n_out = shape.out_features
    if layer.bias is not None:
        _limit(
            "the bias length (out_features)"
            + (f" from bias_base {bias_base}" if bias_base else ""),
            bias_base + n_out,
            config.bias_buffer_depth,
            "bias_buffer_depth",
        )

    # Activation buffer: X slots, then two slots per intermediate state.
    inter = [info.in_words for info in stages[1:]]
    for x_slots in (2, 1):
        need = x_slots * stages[0].in_words + 2 * sum(inter)
        if need <= config.act_buffer_depth:
            break
    else:
        raise LayerDoesNotFit(
            f"activations: one token block needs {stages[0].in_words + 2 * sum(inter)} A-words "
            f"(input {stages[0].in_words}, double-buffered intermediates {2 * sum(inter)}), "
            f"but the configuration's act_buffer_depth is {config.act_buffer_depth}"
        )
    x_base = [i * stages[0].in_words for i in range(x_slots)]
    cursor = x_slots * stages[0].in_words
    state_base: list[list[int]] = [x_base]
    for size in inter:
        state_base.append([cursor, cursor + size])
        cursor += 2 * size

    # Setup program: cores and bias.
    constants = [
        ConstantLoad(Buffer.WBUF, base, words)
        for s, (base, words) in enumerate(zip(w_bases, w_words, strict=True))
        if s not in resident
    ]
    if layer.bias is not None:
        constants.append(ConstantLoad(Buffer.BIAS, bias_base, np.asarray(layer.bias, np.int32)))
    setup, setup_stream, pieces = _constant_program(constants, config)

    # Run program: software-pipelined token blocks.
    blocks = -(-tokens // rows)
    num_stages = len(stages)
    run: list[Instruction] = []
    inputs: list[_InputSegment] = []
    outputs: list[_OutputChunk] = []

    def load_x(b: int) -> None:
        run.append(
            Load(
                Buffer.ABUF, x_base[b % x_slots], stages[0].in_words, wait=b >= x_slots, signal=True
            )
        )
        inputs.append(_InputSegment((b,)))

    for b in range(min(x_slots, blocks)):
        load_x(b)
    for step in range(blocks + num_stages - 1):
        for s, info in enumerate(stages):
            b = step - s
            if not 0 <= b < blocks:
                continue
            last = s == num_stages - 1
            slots = state_base[s]
            gemm = Gemm(
                m_outer=info.p,
                m_inner=info.r,
                k=info.k,
                n=info.n,
                a_base=slots[b % len(slots)],
                a_outer=info.k * info.r,
                a_inner=1,
                a_k=info.r,
                b_base=w_bases[s],
                b_tile=info.k,
                b_k=1,
                requant=layer.stage_requants[s],
                out_base=0 if last else state_base[s + 1][b % 2],
                out_outer=0 if last else info.n * info.r,
                out_inner=0 if last else 1,
                out_col=0 if last else info.r,
                bias_en=last and layer.bias is not None,
                bias_base=bias_base,
                bias_outer=info.n if last else 0,  # feature p * N + c
                dst_stream=last,
                wait=s == 0,
                signal=s == 0 and b + x_slots < blocks,
            )
            run.append(gemm)
            if last:  # R = 1: word (p, 0, c) is feature p * N + c
                outputs.append(_OutputChunk(np.full(n_out, b), np.arange(n_out)))
        if step + x_slots < blocks:
            load_x(step + x_slots)
    run.append(End())
    _limit(
        f"the run program for {tokens} tokens ({blocks} token blocks)",
        len(run),
        config.instruction_depth,
        "instruction_depth (instructions)",
    )
    run = add_fences(run, config)
    check_program(setup, config)
    check_program(run, config)
    online, _ = plan_macs(shape, layer.plan, batch=tokens)
    return CompiledLayer(
        config=config,
        tokens=tokens,
        in_features=shape.in_features,
        out_features=n_out,
        out_format=out_format,
        setup=setup,
        setup_stream=setup_stream,
        run=tuple(run),
        stages=tuple(stages),
        useful_macs=int(sum(online)),
        constants=pieces,
        _inputs=tuple(inputs),
        _outputs=tuple(outputs),
    )


def _check_resident(resident_cores: Mapping[int, int] | None, stages: int) -> dict[int, int]:
    resident = dict(resident_cores or {})
    for s, base in resident.items():
        if isinstance(s, bool) or not isinstance(s, int) or not 0 <= s < stages:
            raise ValueError(f"resident_cores: stage {s!r} is not one of the {stages} stages")
        if isinstance(base, bool) or not isinstance(base, int) or base < 0:
            raise ValueError(f"resident_cores[{s}]: base must be a non-negative int, not {base!r}")
    return resident


def resident_cores_setup(
    layer: QuantTTLinear, config: AccelConfig, resident_cores: Mapping[int, int]
) -> tuple[tuple[Instruction, ...], np.ndarray]:
    """The setup program and input stream that load only the merged cores ``resident_cores``
    (``{stage: wbuf_base}``) of ``layer`` into WBUF, as :func:`compile_tt_linear` lays them out:
    load these once, then run any layer compiled with the same ``resident_cores`` whose
    merged cores at those stages are the same (every Tucker layer of one bank: ``V`` at stage
    0, ``U^T`` at stage 2). Raises :class:`LayerDoesNotFit` when a core leaves WBUF."""
    resident = _check_resident(resident_cores, len(layer.plan))
    _fits_format(layer.weight_format, config)
    merged = merged_shape(tt_shape_of(layer.cores), layer.plan)
    constants = []
    for s, core in enumerate(layer.merged_cores()):
        if s not in resident:
            continue
        r, m, n, r_next = merged.core_shapes[s]
        words = _b_words(np.asarray(core).reshape(r * m, n * r_next), config.cols,
                         config.weight_format)  # fmt: skip
        _limit(f"resident core {s}'s B-words from base {resident[s]}",
               resident[s] + words.shape[0], config.weight_buffer_depth,
               "weight_buffer_depth")  # fmt: skip
        constants.append(ConstantLoad(Buffer.WBUF, resident[s], words))
    program, stream, _ = _constant_program(constants, config)
    check_program(program, config)
    return program, stream


def compile_layer(
    layer: QuantTTLinear | QuantNMLinear,
    tokens: int,
    config: AccelConfig,
    *,
    weight_base: int = 0,
    bias_base: int = 0,
) -> CompiledLayer:
    """Compile any integer linear of an artifact: a TT layer by :func:`compile_tt_linear`; a
    one-core layer (a dense weight, ``in_modes = [M]``, ``out_modes = [N]``, ranks ``[1, 1]``:
    seed 003's ternary / binary layers) the same way, resident in WBUF, when its B-words fit
    from ``weight_base`` and its modes ``max_mode``, and otherwise by :func:`compile_dense` with
    the weights streamed through WBUF (:attr:`CompiledLayer.streams_weights`; only at
    ``weight_base = bias_base = 0``). Either way the run program computes exactly
    :func:`~ttaccel.spec.golden.tt_linear_int` (a one-core layer: ``requantize(x @ W + bias)``).

    An N:M layer (:class:`~.golden.QuantNMLinear`, seed 002) runs sparse
    (:func:`compile_nm_linear`, :attr:`CompiledLayer.sparse`) when the configuration's sparse
    GEMM mode takes its pattern (:func:`sparse_mode_takes`) and its compressed weights fit
    WBUF from ``weight_base``; otherwise as the one-core dense layer it expands to
    (:meth:`~.golden.QuantNMLinear.as_tt_linear`, zeros included), as above. Both compute
    exactly :func:`~ttaccel.spec.golden.nm_linear_int`.
    Raises :class:`LayerDoesNotFit` as those functions do.
    """
    if isinstance(layer, QuantNMLinear):
        if sparse_mode_takes(layer.n, layer.m, config):
            try:
                return compile_nm_linear(layer, tokens, config, weight_base=weight_base,
                                         bias_base=bias_base)  # fmt: skip
            except LayerDoesNotFit:
                pass  # e.g. more compressed B-words than WBUF: the streamed dense layer may run
        layer = layer.as_tt_linear()
    shape = tt_shape_of(layer.cores)
    if shape.num_cores > 1:
        return compile_tt_linear(layer, tokens, config, weight_base=weight_base,
                                 bias_base=bias_base)  # fmt: skip
    m, n = shape.in_features, shape.out_features
    resident_words = -(-n // config.cols) * m
    if weight_base + resident_words <= config.weight_buffer_depth and max(m, n) <= config.max_mode:
        return compile_tt_linear(layer, tokens, config, weight_base=weight_base,
                                 bias_base=bias_base)  # fmt: skip
    if weight_base or bias_base:
        raise LayerDoesNotFit(
            f"a streamed dense layer ({m} x {n}: {resident_words} B-words, more than the "
            f"configuration's weight_buffer_depth {config.weight_buffer_depth} or max_mode "
            f"{config.max_mode}) uses WBUF and BIAS from 0, not weight_base {weight_base} / "
            f"bias_base {bias_base}"
        )
    return compile_dense(
        np.asarray(layer.cores[0]).reshape(m, n), layer.weight_format, layer.stage_requants[0],
        tokens, config, layer.bias, resident=False,
    )  # fmt: skip


def dense_as_tt_linear(
    weight: np.ndarray,
    weight_format: NumberFormat,
    requant: Requant,
    bias: np.ndarray | None = None,
) -> QuantTTLinear:
    """A dense integer layer ``y = requantize(x @ weight + bias)`` as a one-core TT layer
    (core ``(1, M, N, 1)``), which :func:`~ttaccel.spec.golden.tt_linear_int` computes as
    ``requantize(gemm_int(x, weight), requant, bias)``."""
    weight = np.asarray(weight)
    if weight.ndim != 2:
        raise ValueError(
            f"weight must be 2-D (in_features, out_features), not shape {weight.shape}"
        )
    return QuantTTLinear(
        cores=(weight.astype(np.int8).reshape(1, *weight.shape, 1),),
        weight_format=weight_format,
        plan=((0, 1),),
        merge_requants=((),),
        stage_requants=(requant,),
        bias=None if bias is None else np.asarray(bias, dtype=np.int32),
        input_scale=1.0,
        output_scale=1.0,
    )


def _one_stage_layer(
    program: str, config: AccelConfig, tokens: int, k: int, n: int, requant: Requant,
    setup, setup_stream: np.ndarray, run: list, pieces, inputs: list, outputs: list, *,
    useful_macs: int,
) -> CompiledLayer:  # fmt: skip
    """The :class:`CompiledLayer` of a one-stage (``k`` -> ``n``) layer, after checking that
    ``run`` (named ``program`` in the error) fits the instruction memory and both programs are
    legal (:func:`~.isa.check_program`)."""
    _limit(program, len(run), config.instruction_depth, "instruction_depth (instructions)")
    check_program(setup, config)
    check_program(run, config)
    return CompiledLayer(
        config=config,
        tokens=tokens,
        in_features=k,
        out_features=n,
        out_format=requant.out_format,
        setup=setup,
        setup_stream=setup_stream,
        run=tuple(run),
        stages=(StageInfo(p=1, r=1, k=k, n=n),),
        useful_macs=useful_macs,
        constants=pieces,
        _inputs=tuple(inputs),
        _outputs=tuple(outputs),
    )


def compile_dense(
    weight: np.ndarray,
    weight_format: NumberFormat,
    requant: Requant,
    tokens: int,
    config: AccelConfig,
    bias: np.ndarray | None = None,
    *,
    resident: bool | None = None,
) -> CompiledLayer:
    """Compile a dense int8 GEMM ``requantize(x @ weight (+ bias), requant)``.

    ``weight``: (in_features, out_features) codes of ``weight_format``. ``resident``: keep the
    weights in WBUF (loaded by the setup program, like TT cores); None chooses resident when
    they fit. Streamed weights flow through two WBUF slots of whole column tiles, one chunk per
    GEMM, overlapped with the previous chunk's compute; the whole batch's activations stay in
    ABUF, and the output stream is chunk major (:meth:`CompiledLayer.decode_output` knows).
    """
    layer = dense_as_tt_linear(weight, weight_format, requant, bias)
    m, n = np.shape(weight)
    tiles = -(-n // config.cols)
    fits = tiles * m <= config.weight_buffer_depth
    if resident is None:
        resident = fits
    if resident:
        return compile_tt_linear(layer, tokens, config)
    if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 1:
        raise ValueError(f"tokens must be a positive integer, not {tokens!r}")
    _fits_format(weight_format, config)
    _limit("the reduction K = in_features", m, config.max_k, "max_k")
    if bias is not None:
        _limit("the bias length (out_features)", n, config.bias_buffer_depth, "bias_buffer_depth")
    rows, cols = config.rows, config.cols
    blocks = -(-tokens // rows)
    _limit(
        f"the activations of {tokens} tokens (A-words)",
        blocks * m,
        config.act_buffer_depth,
        "act_buffer_depth",
    )
    chunk_tiles = (config.weight_buffer_depth // 2) // m
    if chunk_tiles < 1:
        raise LayerDoesNotFit(
            f"a streamed column tile needs K = {m} B-words in each of two slots, but the "
            f"configuration's weight_buffer_depth is {config.weight_buffer_depth}"
        )
    # One column tile per chunk keeps the first (exposed) weight load short; grow the chunks
    # only as far as the instruction memory requires (a LOAD and a GEMM per chunk).
    fewest = -(-tiles // max(1, (config.instruction_depth - blocks - 4) // 2))
    chunk_tiles = min(chunk_tiles, tiles, fewest)
    slot_words = chunk_tiles * m
    # (tiles * m, cols) B-words, column tile major
    matrix_words = _b_words(np.asarray(weight, dtype=np.int8), cols, config.weight_format)
    chunks = [(t, min(t + chunk_tiles, tiles)) for t in range(0, tiles, chunk_tiles)]

    constants = [] if bias is None else [ConstantLoad(Buffer.BIAS, 0, np.asarray(bias, np.int32))]
    setup, setup_stream, pieces = _constant_program(constants, config)

    run: list[Instruction] = [*_loads(Buffer.ABUF, 0, blocks * m)]
    inputs = [_InputSegment(tuple(range(blocks)))]
    outputs: list[_OutputChunk] = []

    def load_w(j: int) -> None:
        t0, t1 = chunks[j]
        words = matrix_words[t0 * m : t1 * m]
        run.extend(
            _loads(Buffer.WBUF, (j % 2) * slot_words, words.shape[0], wait=j >= 2, signal=True)
        )
        inputs.append(_InputSegment((), pack_b_words(words, config)))

    for j in range(min(2, len(chunks))):
        load_w(j)
    for j, (t0, t1) in enumerate(chunks):
        width = min(t1 * cols, n) - t0 * cols
        run.append(
            Gemm(
                m_outer=blocks,
                m_inner=1,
                k=m,
                n=width,
                a_base=0,
                a_outer=m,
                a_inner=0,
                a_k=1,
                b_base=(j % 2) * slot_words,
                b_tile=m,
                b_k=1,
                requant=requant,
                bias_en=bias is not None,
                bias_base=t0 * cols,
                dst_stream=True,
                wait=True,
                signal=j + 2 < len(chunks),
            )
        )
        features = t0 * cols + np.arange(width)
        outputs.append(_OutputChunk(np.repeat(np.arange(blocks), width), np.tile(features, blocks)))
        if j + 2 < len(chunks):
            load_w(j + 2)
    run.append(End())
    return _one_stage_layer(
        f"the streamed dense program ({len(chunks)} weight chunks)", config, tokens, m, n,
        requant, setup, setup_stream, run, pieces, inputs, outputs, useful_macs=tokens * m * n,
    )  # fmt: skip


def sparse_mode_takes(n: int, m: int, config: AccelConfig) -> bool:
    """Whether every ``n:m`` weight runs on ``config``'s sparse GEMM mode: True when the
    configuration has ``sparse_nm = (N, M)`` and any ``n:m`` weight is also ``N:M`` (each
    group of ``M`` consecutive inputs holds at most ``N`` non-zeros): for ``m >= M`` (group
    sizes are powers of two, so ``M`` divides ``m``) when ``min(n, M) <= N``, for ``m < M``
    when ``n * M / m <= N``. On a 2:4 build: 2:4, 1:4, 2:8, 1:8 and 1:2 yes; 4:8 and 3:8 no
    (they may be 2:4 by chance, which is not enough to decide from the pattern).
    Raises ValueError for an ``n:m`` that :func:`~.nm.check_nm` refuses."""
    n, m = check_nm(n, m)
    if config.sparse_nm is None:
        return False
    keep, group = config.sparse_nm
    most = min(n, group) if m >= group else n * (group // m)
    return most <= keep


def nm_wbuf_lanes(
    values: np.ndarray, indices: np.ndarray, n: int, m: int, in_features: int,
    config: AccelConfig, *, name: str = "weight",
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """The engine's sparse WBUF lanes of an N:M weight given in :mod:`.nm`'s compressed form
    (``values`` / ``indices`` ``(out_features, in_features // m, n)``, the artifact's), for a
    configuration with ``sparse_nm = (N, M)``: kept codes (int8) and in-group indices (uint8),
    each ``(in_features * N / M, out_features)``. Row ``g * N + j`` of column ``o`` is slot
    ``j`` of group ``g`` of output row ``o``: ``values[o, g, j]`` / ``indices[o, g, j]``
    transposed to the engine's (reduction, column) order, ascending indices and the canonical
    padding of :mod:`.nm` kept (a padded slot's code is 0, so its index adds nothing).

    This is the one derivation of the hardware's N:M layout: when ``(n, m) = (N, M)`` the
    lanes are the given arrays themselves; another pattern the engine takes
    (:func:`sparse_mode_takes`: 1:4, 2:8 on a 2:4 build) is first recompressed to ``N:M`` by
    :func:`~.nm.nm_compress` of its :func:`~.nm.nm_expand` (the same canonical form).
    Raises :class:`LayerDoesNotFit` without ``sparse_nm``, :class:`NMPatternError` naming
    ``name`` for a pattern the engine cannot take, ValueError (naming ``name``) for arrays
    that are not a valid compressed ``n:m`` weight (:func:`~.nm.nm_expand`'s checks).
    """
    if config.sparse_nm is None:
        raise LayerDoesNotFit(
            "a sparse layer needs a configuration with sparse_nm; this one has none"
        )
    keep, group = config.sparse_nm
    if not sparse_mode_takes(n, m, config):
        raise NMPatternError(
            f"{name}: a {n}:{m} weight is not always {keep}:{group} sparse, the pattern of the "
            f"configuration's sparse GEMM mode (sparse_nm = ({keep}, {group}))"
        )
    dense = nm_expand(values, indices, n, m, in_features, name=name)  # checks the arrays
    if (n, m) != (keep, group):
        values, indices = nm_compress(dense, keep, group, name=name)
    out = dense.shape[0]
    beats = in_features // group * keep
    lanes = np.asarray(values).reshape(out, beats).T  # (G, N) row major = g * N + j
    index = np.asarray(indices).reshape(out, beats).T
    return np.ascontiguousarray(lanes, np.int8), np.ascontiguousarray(index, np.uint8)


def compile_sparse_linear(
    weight: np.ndarray,
    weight_format: NumberFormat,
    requant: Requant,
    tokens: int,
    config: AccelConfig,
    bias: np.ndarray | None = None,
    *,
    name: str = "weight",
    weight_base: int = 0,
    bias_base: int = 0,
) -> CompiledLayer:
    """Compile ``requantize(x @ weight (+ bias), requant)`` with N:M sparse weights given as
    dense codes: ``weight`` (in_features, out_features) codes of ``weight_format`` in which
    every group of ``M`` consecutive input features holds at most ``N`` non-zeros per output
    column, for a configuration with ``sparse_nm = (N, M)``. The weight is compressed once by
    :func:`~.nm.nm_compress` (of ``weight.T``: the artifact's form) and compiled by
    :func:`compile_nm_linear`'s code; see there for the programs. Raises
    :class:`NMPatternError` (naming ``name``, the output column as "output row" and the input
    group) for a weight that is not ``N:M``, :class:`LayerDoesNotFit` for a layer beyond the
    configuration.
    """
    if config.sparse_nm is None:
        raise LayerDoesNotFit(
            "a sparse layer needs a configuration with sparse_nm; this one has none"
        )
    weight = np.asarray(weight)
    if weight.ndim != 2 or not np.issubdtype(weight.dtype, np.integer):
        raise ValueError(
            f"{name} must be 2-D integer codes (in_features, out_features), not "
            f"{weight.dtype} {weight.shape}"
        )
    keep, group = config.sparse_nm
    values, indices = nm_compress(weight.T, keep, group, name=name)
    return _compile_nm(values, indices, keep, group, weight.shape[0], weight_format, requant,
                       bias, tokens, config, name=name, weight_base=weight_base,
                       bias_base=bias_base)  # fmt: skip


def compile_nm_linear(
    layer: QuantNMLinear,
    tokens: int,
    config: AccelConfig,
    *,
    name: str = "weight",
    weight_base: int = 0,
    bias_base: int = 0,
) -> CompiledLayer:
    """Compile an artifact's N:M layer (:class:`~.golden.QuantNMLinear`, weights in
    :mod:`.nm`'s compressed form, used as they are) as sparse GEMMs (:mod:`.isa`, "Sparse
    GEMMs") for a configuration with ``sparse_nm = (N, M)`` whose mode takes the layer's
    pattern (:func:`sparse_mode_takes`). The run program computes exactly
    :func:`~.golden.nm_linear_int`.

    WBUF holds the lanes of :func:`nm_wbuf_lanes`, ``ceil(out / cols) * in * N / M``
    B-words of kept codes and indices from ``weight_base``, resident (the setup program loads
    them and the bias from ``bias_base``). The run program is the dense resident layer's
    (token blocks through two X slots, results streamed), each GEMM ``sparse`` with ``k =
    in_features``, so a tile takes ``in * N / M`` array beats instead of ``in``.
    ``useful_macs`` counts the engine's kept slots' MACs (``tokens * in * out * N / M``).
    Raises :class:`NMPatternError` (naming ``name``) for a pattern the mode does not take,
    :class:`LayerDoesNotFit` for a layer beyond the configuration (or one without
    ``sparse_nm``).
    """
    if not isinstance(layer, QuantNMLinear):
        raise TypeError(f"{name}: expected a QuantNMLinear, not {type(layer).__name__}")
    return _compile_nm(layer.values, layer.indices, layer.n, layer.m, layer.in_features,
                       layer.weight_format, layer.requant, layer.bias, tokens, config,
                       name=name, weight_base=weight_base, bias_base=bias_base)  # fmt: skip


def _compile_nm(
    values: np.ndarray, indices: np.ndarray, n_pattern: int, m_pattern: int, k: int,
    weight_format: NumberFormat, requant: Requant, bias: np.ndarray | None, tokens: int,
    config: AccelConfig, *, name: str, weight_base: int, bias_base: int,
) -> CompiledLayer:  # fmt: skip
    """:func:`compile_nm_linear` on the compressed arrays."""
    if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 1:
        raise ValueError(f"tokens must be a positive integer, not {tokens!r}")
    _fits_format(weight_format, config)
    lanes, index = nm_wbuf_lanes(values, indices, n_pattern, m_pattern, k, config, name=name)
    n_keep, group = config.sparse_nm
    beats, n = lanes.shape
    rows, cols = config.rows, config.cols
    _limit("the reduction K = in_features", k, config.max_k, "max_k")
    _limit("the output features", n, 2**16 - 1, "16-bit column count")
    tiles = -(-n // cols)
    w_words = _b_words(lanes, cols, config.weight_format)
    i_words = _b_words(index.astype(np.int8), cols, config.weight_format).astype(np.uint8)
    _limit(
        "the compressed weights' B-words" + (f" from weight_base {weight_base}" if weight_base
                                             else ""),
        weight_base + tiles * beats,
        config.weight_buffer_depth,
        "weight_buffer_depth",
    )  # fmt: skip
    constants = [ConstantLoad(Buffer.WBUF, weight_base, w_words, i_words)]
    if bias is not None:
        _limit("the bias length (out_features)", bias_base + n, config.bias_buffer_depth,
               "bias_buffer_depth")  # fmt: skip
        constants.append(ConstantLoad(Buffer.BIAS, bias_base, np.asarray(bias, np.int32)))
    setup, setup_stream, pieces = _constant_program(constants, config)

    x_slots = 2 if 2 * k <= config.act_buffer_depth else 1
    if k > config.act_buffer_depth:
        raise LayerDoesNotFit(
            f"activations: one token block needs {k} A-words, but the configuration's "
            f"act_buffer_depth is {config.act_buffer_depth}"
        )
    blocks = -(-tokens // rows)
    run: list[Instruction] = []
    inputs: list[_InputSegment] = []
    outputs: list[_OutputChunk] = []

    def load_x(b: int) -> None:
        run.append(Load(Buffer.ABUF, (b % x_slots) * k, k, wait=b >= x_slots, signal=True))
        inputs.append(_InputSegment((b,)))

    for b in range(min(x_slots, blocks)):
        load_x(b)
    for b in range(blocks):
        run.append(
            Gemm(
                m_outer=1,
                m_inner=1,
                k=k,
                n=n,
                a_base=(b % x_slots) * k,
                a_outer=k,
                a_inner=1,
                a_k=1,
                b_base=weight_base,
                b_tile=beats,
                b_k=1,
                requant=requant,
                bias_en=bias is not None,
                bias_base=bias_base,
                bias_outer=n,
                dst_stream=True,
                wait=True,
                signal=b + x_slots < blocks,
                sparse=True,
            )
        )
        outputs.append(_OutputChunk(np.full(n, b), np.arange(n)))
        if b + x_slots < blocks:
            load_x(b + x_slots)
    run.append(End())
    return _one_stage_layer(
        f"the run program for {tokens} tokens ({blocks} token blocks)", config, tokens, k, n,
        requant, setup, setup_stream, run, pieces, inputs, outputs,
        useful_macs=tokens * k * n * n_keep // group,
    )  # fmt: skip


def compile_attention_scores(
    tokens: int, head_dim: int, requant: Requant, config: AccelConfig
) -> CompiledLayer:
    """Compile attention scores ``S = requantize(q @ k.T, requant)`` for one head: an
    int8 x int8 GEMM whose B operand is read from ABUF (``b_from_abuf``), so keys computed on
    chip need no transposes.

    The layer's input is ``x = concatenate([q, k], axis=1)``, codes (tokens, 2 * head_dim);
    its output is ``S``, codes (tokens, tokens) (query, key). Both operands sit in ABUF as
    A-words (lane = token): block ``b`` at ``b * 2 * head_dim``, queries then keys, so the
    B-word of key tile ``t`` and step ``kk`` is the key block's A-word ``kk``. Needs a square
    array (``rows == cols``) with int8 weights (the PEs multiply int8 by int8).
    """
    if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 1:
        raise ValueError(f"tokens must be a positive integer, not {tokens!r}")
    if isinstance(head_dim, bool) or not isinstance(head_dim, int) or head_dim < 1:
        raise ValueError(f"head_dim must be a positive integer, not {head_dim!r}")
    if not config.supports_b_from_abuf:
        raise LayerDoesNotFit(
            f"attention scores read keys as B operands from the activation buffer, which needs "
            f"a square array with int8 weights, not {config.rows}x{config.cols} "
            f"{config.weight_format.name}"
        )
    _limit("the reduction K = head_dim", head_dim, config.max_k, "max_k")
    _limit("the key count (tokens)", tokens, 2**16 - 1, "16-bit column count")
    blocks = -(-tokens // config.rows)
    words = 2 * head_dim
    _limit(
        f"the queries and keys of {tokens} tokens (A-words)",
        blocks * words,
        config.act_buffer_depth,
        "act_buffer_depth",
    )
    run: list[Instruction] = [*_loads(Buffer.ABUF, 0, blocks * words, signal=True)]
    run.append(
        Gemm(
            m_outer=blocks,
            m_inner=1,
            k=head_dim,
            n=tokens,
            a_base=0,
            a_outer=words,
            a_inner=0,
            a_k=1,
            b_base=head_dim,
            b_tile=words,
            b_k=1,
            b_from_abuf=True,
            requant=requant,
            dst_stream=True,
            wait=True,
        )
    )
    run.append(End())
    check_program(run, config)
    setup: tuple[Instruction, ...] = (End(),)
    return CompiledLayer(
        config=config,
        tokens=tokens,
        in_features=words,
        out_features=tokens,
        out_format=requant.out_format,
        setup=setup,
        setup_stream=np.empty(0, np.uint64),
        run=tuple(run),
        stages=(StageInfo(p=1, r=1, k=head_dim, n=tokens),),
        useful_macs=tokens * tokens * head_dim,
        _inputs=(_InputSegment(tuple(range(blocks))),),
        _outputs=(
            _OutputChunk(np.repeat(np.arange(blocks), tokens), np.tile(np.arange(tokens), blocks)),
        ),
    )


def with_prefetch(
    layer: CompiledLayer, following: CompiledLayer, *, max_beats: int = 1024
) -> CompiledLayer:
    """``layer`` whose run program also loads ``following``'s constants (what its setup
    program loads), so the next layer's cores stream in while this one computes.

    The constants are cut into LOADs of at most ``max_beats`` beats and spread over the gaps
    the load engine has between ``layer``'s token-block loads (and after the last one).
    ``following`` must keep its constants where ``layer`` does not read (compile the two with
    disjoint ``weight_base`` / ``bias_base`` ranges): the result is checked for races and
    raises :class:`~ttaccel.spec.isa.HazardError` otherwise. After the run, ``following.run``
    can run without its setup. Input stream: :meth:`CompiledLayer.input_stream` of the result
    includes the constants; the output stream is unchanged.
    """
    config = layer.config
    if following.config != config:
        raise ValueError("with_prefetch needs two layers compiled for the same configuration")
    if isinstance(max_beats, bool) or not isinstance(max_beats, int) or max_beats < 1:
        raise ValueError(f"max_beats must be a positive integer, not {max_beats!r}")
    pieces: list[ConstantLoad] = []
    for constant in following.constants:
        bits = {Buffer.ABUF: config.a_word_bits, Buffer.WBUF: config.b_word_bits}.get(
            constant.buffer, 32
        )
        pieces += constant.split(max(1, max_beats * STREAM_BITS // bits), config)
    body = list(layer.run[:-1])  # without END
    gaps = 1 + sum(1 for i in body if isinstance(i, Load) and i.wait)
    per_gap = -(-len(pieces) // gaps)
    run: list[Instruction] = []
    inputs: list[_InputSegment] = []
    segments = iter(layer._inputs)
    queue = list(pieces)

    def insert(count: int) -> None:
        for piece in queue[:count]:
            run.append(piece.instruction())
            inputs.append(_InputSegment((), piece.beats(config)))
        del queue[:count]

    for instr in body:
        run.append(instr)
        if isinstance(instr, Load):
            inputs.append(next(segments))
            if instr.wait:
                insert(per_gap)
    insert(len(queue))
    run.append(End())
    _limit(
        "the run program with prefetched constants",
        len(run),
        config.instruction_depth,
        "instruction_depth (instructions)",
    )
    check_program(run, config)
    return dataclasses.replace(layer, run=tuple(run), _inputs=tuple(inputs))
