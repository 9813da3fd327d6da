"""The engine's instruction set: bit-exact encoding and a NumPy reference executor.

Machine model
=============

Memories (block RAM, word addressed, addresses and counts :data:`ADDRESS_BITS` = 16 bits):

``ABUF``  activation buffer, ``act_buffer_depth`` *A-words* of ``rows`` int8 lanes.
``WBUF``  weight buffer, ``weight_buffer_depth`` *B-words* of ``cols`` lanes of the
          configuration's ``weight_format``.
``BIAS``  bias buffer, ``bias_buffer_depth`` int32 entries (one per output feature).

The array is output stationary: a *tile* is ``rows x cols`` outputs; PE ``(i, j)`` accumulates
``sum_k A[i, k] * B[k, j]`` while, each cycle, one A-word (the ``rows`` values ``A[:, k]``) and
one B-word (the ``cols`` values ``B[k, :]``) enter. A tile therefore needs no transposes: its
A operand is ``k`` A-words and its B operand ``k`` B-words, each at an affine address. Tiles run
back to back with double-buffered accumulators; a finished tile *drains* one column (an A-word
of ``rows`` results) per cycle through ``rows`` requantizers, to ``ABUF`` or to the output stream.
A-words are written whole, so a GEMM's output is directly the A operand of the next GEMM: for
TT layers the ``rows`` lanes are always ``rows`` consecutive tokens (see :mod:`.compiler`).

Two engines run concurrently, fed in program order by a dispatcher through one queue each
(``queue_depth`` entries): the *load engine* runs ``LOAD`` (input stream to a buffer); the
*execute engine* runs ``GEMM`` and ``STORE`` (and owns the output stream). ``SYNC`` and ``END``
wait until both engines are idle. The engines synchronise through two token counters
(VTA-style): an instruction with ``signal`` set pushes a token to the other engine when it has
completed (a GEMM: after its last result is written); one with ``wait`` set pops a token from
the other engine before it starts. Tokens are matched in order (the n-th wait of an engine
consumes the n-th signal of the other); at most 255 may be outstanding. Within the execute
engine a GEMM may start while the *previous* GEMM's last tile still drains; ``fence`` makes it
wait until every earlier result is written (needed exactly when it reads what the previous GEMM
writes). Everything earlier than the previous GEMM is written before a GEMM starts. A ``STORE``
always waits for all earlier results.

Runs and streams
================

On ``CONTROL.start`` (:mod:`.regmap`) the engine reads ``PROGRAM_LENGTH`` instructions from
the input stream into the instruction memory, then runs them; the LOADs consume the beats that
follow, in program order (:func:`execute_stream`). Input ``TLAST`` may be set only on the
program's last beat and on a LOAD's last beat (so the host may send the program and the data
as separate DMA transfers, or split the data at LOAD boundaries); anywhere else it is error 5.
The output stream carries the results of streaming GEMMs and of STOREs in execute order, whole
64-bit beats, with ``TLAST`` on the run's last beat. Buffer contents survive between runs and
a soft reset: a *setup* run can load constants (TT cores, bias) that later runs reuse.

Errors, soft reset, and what the host does
==========================================

The engine checks each instruction as it dispatches it and stops at the first error
(``STATUS.error_code``, :data:`ttaccel.spec.regmap.ERROR_CODES`; ``STATUS.error_pc`` = ``e``,
the failing instruction's index). The stop sequence, exactly:

1. No instruction at or after ``e`` starts; the dispatcher stops. ``PC`` keeps the number of
   instructions dispatched: ``e`` for the errors found at dispatch (1, 2, 3, and 5 inside the
   program), at least ``e + 1`` for those found while running (4, and 5 inside a LOAD).
   Every instruction before ``e`` runs to completion, unless it
   waits for a token that only an instruction at or after ``e`` would signal (it never
   starts). An instruction after ``e`` that had already started when the error was found
   (possible only for errors 4 and 5, which are found while running) also completes.
2. The output stream carries the complete output of every completed instruction, in order,
   then one all-zero beat with ``TLAST`` (unless this run's ``TLAST`` beat had already been
   sent). So the S2MM receive always completes; its last beat is that zero beat.
3. Then ``STATUS.busy`` falls, ``STATUS.error`` rises and the interrupt line rises (when
   ``CONTROL.irq_enable``), as for ``done``.
4. From then until the next ``CONTROL.start`` or ``CONTROL.soft_reset`` the engine accepts and
   discards every input beat, so MM2S transfers the host queued for this run complete.

What the host does after an error: wait for the interrupt (or poll ``STATUS``); wait for its
S2MM receive to complete (it ends with the ``TLAST`` beat of step 2: the zero beat, unless
the run's last output instruction had finished -- a receive sized for the whole run's output
therefore ends early, and its received length says so) and for every MM2S transfer of the run
to complete; read ``error_code`` and ``error_pc``; optionally use the output of the
instructions before ``error_pc``; clear ``STATUS.error`` (write 1, or ``start`` clears it).
Buffer contents are undefined after an error (a LOAD or GEMM may have written part of its
words): rerun the setup program before the next run that needs resident constants. If the
host had no S2MM receive pending, it must start one (of at least 8 bytes) to take the ``TLAST``
beat before it starts another run (``aresetn`` is the only other way to withdraw it).

``CONTROL.soft_reset`` (also the guarantee for a program that waits forever, e.g. for a token
no instruction signals: the engine has no watchdog): in the cycle after the write
``STATUS.busy`` is low, every engine, queue and token counter is idle, ``PC`` is 0, and
``STATUS.done`` / ``STATUS.error`` are cleared (so is the interrupt); no input is taken until
the next start. A beat already offered on the output stream (``TVALID`` high) stays offered,
unchanged, until it is accepted (the AXI4-Stream rule); nothing follows it, and no ``TLAST``
is added. After a soft reset in the middle of a run the host must therefore reset its DMA
channels (PYNQ: the DMA's ``MM2S`` / ``S2MM`` reset) before the next run, or accept that one
beat first. Buffer contents are kept. On an idle device soft reset changes nothing but
``STATUS`` (cleared) and ``PC`` (0).

Instruction encoding
====================

Every instruction is one :data:`INSTRUCTION_BITS` = 320-bit word, sent as five little-endian
64-bit stream beats (beat ``i`` carries bits ``[64 i, 64 i + 64)``). Fields are unsigned,
``[lsb, lsb + width)``; unused and reserved bits must be zero. Common to all:

======  =====  ===========================================================================
bits    name   meaning
======  =====  ===========================================================================
3:0     opcode ``END`` 0, ``LOAD`` 1, ``GEMM`` 2, ``STORE`` 3, ``SYNC`` 4
4       wait   pop a token from the other engine first (LOAD, GEMM, STORE)
5       signal push a token to the other engine when complete (LOAD, GEMM, STORE)
6       fence  GEMM only: wait until all earlier results are written
======  =====  ===========================================================================

``LOAD``: buffer 9:8 (``ABUF`` 0, ``WBUF`` 1, ``BIAS`` 2), base 31:16, count 47:32. Reads
``ceil(count * word_bits / 64)`` beats and writes words ``base .. base + count - 1``; the words
are packed back to back, lane 0 in the low bits (:mod:`.packing` order: A-words int8,
B-words in ``weight_format``, bias int32 little endian), the last beat zero padded.

``STORE``: format 10:8, base 31:16, count 47:32. Sends A-words ``base ..`` to the output
stream, each lane packed at the format's width (codes must be legal), zero padded to a beat.

``GEMM`` (``T = m_outer * m_inner`` row tiles, ``ceil(n / cols)`` column tiles, reduction
``k``; row tile ``(p, q)``, column ``c``, step ``kk``)::

    8        dst_stream   1: results to the output stream, 0: to ABUF
    9        b_from_abuf  1: B-words are read from ABUF (needs rows == cols and int8 weights)
    10       bias_en      add BIAS[bias_base + p*bias_outer + c] before requantizing
    13:11    out_format   format code of the results
    31:16    m_outer      row-tile count, outer loop
    47:32    m_inner      row-tile count, inner loop
    63:48    k            reduction length (1 .. max_k)
    79:64    n            columns (1 .. 65535)
    95:80    a_base       A-word (p, q, kk) at a_base + p*a_outer + q*a_inner + kk*a_k
    111:96   a_outer
    127:112  a_inner
    143:128  a_k
    159:144  b_base       B-word (column tile t, kk) at b_base + t*b_tile + kk*b_k
    175:160  b_tile
    191:176  b_k
    207:192  out_base     result column c of row tile (p, q) to A-word
    223:208  out_outer    out_base + p*out_outer + q*out_inner + c*out_col
    239:224  out_inner
    255:240  out_col
    271:256  bias_base
    287:272  multiplier   requantization (spec.formats.requantize), 1 .. 65535
    293:288  shift        0 .. 47
    319:304  bias_outer   (bits 303:294 reserved)

    14       sparse       1: N:M sparse B operand (needs the configuration's ``sparse_nm``)

Addresses are computed exactly (no wrap-around): every word a GEMM touches must lie inside its
buffer. Loop order is fixed: ``for p: for q: for t: tile`` (row tiles outer, so each row
tile's results leave in natural column order). Lane ``i`` of a result word is row ``i`` of the
tile; columns ``c >= n`` of the last column tile are computed but never written. The output
stream receives, per GEMM, the result words in that order (each ``rows`` lanes at
``out_format``'s width), the last beat zero padded.

Semantics per output: ``requantize(sum_kk A * B (+ bias), Requant(multiplier, shift,
out_format))`` exactly as :func:`ttaccel.spec.formats.requantize` (int32 accumulator; an
``acc + bias`` outside int32 is an error there and here). A GEMM must not write a word it reads,
nor write one word twice.

Sparse GEMMs (``sparse``, configurations with ``sparse_nm = (N, M)``)
=====================================================================

The weights (the B operand) are the sparse operand: in every group of ``M`` consecutive
reduction steps ``kk`` at most ``N`` weights of a column are non-zero. WBUF holds them
compressed, one *kept* weight per lane and B-word: lane ``c`` of a B-word is the weight's code
(the low ``weight_format.bits`` bits, as in a dense build) and, above it, its
``log2(M)``-bit *index* ``u`` in the group (:func:`pack_b_words`; a configuration with
``sparse_nm`` has B-word lanes of ``weight bits + log2(M)`` bits for every GEMM, the dense
ones ignoring the index). Group ``g`` of a column is the ``N`` consecutive B-words
``g * N .. g * N + N - 1`` (a group with fewer non-zeros pads with zero weights). A sparse
GEMM's ``k`` is still the dense reduction length (a multiple of ``M``, at most ``max_k``); it
sends ``beats = k * N / M`` B-words per tile into the array instead of ``k``::

    acc = sum_{b < beats} A(p, q, (b // N) * M + u(t, b)[c % cols]) * v(t, b)[c % cols]

with ``v(t, b)`` / ``u(t, b)`` the codes / indices of B-word ``b_base + t*b_tile + b*b_k``,
so ``b_tile`` steps ``beats`` words per column tile. The A operand is read as in a dense
GEMM (``k`` A-words per tile, stride ``a_k``): each beat takes two A-words (``M / N = 2``)
and every PE selects the activation its weight's index names. ``b_from_abuf`` cannot be
sparse. ``MACS_ISSUED`` counts ``rows * valid columns`` per beat, so a sparse GEMM issues
``N / M`` of the dense count. Sparse on a configuration without ``sparse_nm``, ``k`` not a
multiple of ``M``, or ``sparse`` with ``b_from_abuf`` is an illegal instruction (error 1).
"""

from __future__ import annotations

import dataclasses
import enum
import functools
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from typing import ClassVar

import numpy as np

from .accel_config import ADDRESS_BITS, INSTRUCTION_BITS, AccelConfig
from .formats import FORMATS, INT8, MULTIPLIER_BITS, Requant, requantize
from .packing import pack_words, unpack_words

__all__ = [
    "BEATS_PER_INSTRUCTION",
    "FORMAT_CODES",
    "INSTRUCTION_BITS",
    "STREAM_BITS",
    "TOKEN_LIMIT",
    "Buffer",
    "End",
    "ExecResult",
    "Gemm",
    "HazardError",
    "Instruction",
    "Load",
    "Machine",
    "Opcode",
    "Store",
    "Sync",
    "add_fences",
    "check_program",
    "decode",
    "decode_program",
    "encode",
    "encode_program",
    "encoding_table",
    "execute",
    "execute_stream",
    "gemm_beats",
    "happens_before",
    "load_beats",
    "pack_b_words",
    "pack_bias",
    "render_encoding_markdown",
    "result_beats",
    "unpack_b_words",
]

STREAM_BITS = 64
"""AXI4-Stream beat width."""
BEATS_PER_INSTRUCTION = INSTRUCTION_BITS // STREAM_BITS
TOKEN_LIMIT = 255
"""Largest number of outstanding tokens per direction (8-bit counters)."""

FORMAT_CODES: dict[str, int] = {"int8": 0, "int4": 1, "int2": 2, "ternary": 3, "binary": 4}
"""3-bit format codes used in instructions and in the ``CONFIG_ARRAY`` register."""
_FORMAT_BY_CODE = {code: FORMATS[name] for name, code in FORMAT_CODES.items()}
_ADDR_MAX = 2**ADDRESS_BITS - 1


class Opcode(enum.IntEnum):
    END = 0
    LOAD = 1
    GEMM = 2
    STORE = 3
    SYNC = 4


class Buffer(enum.IntEnum):
    ABUF = 0
    WBUF = 1
    BIAS = 2


class HazardError(ValueError):
    """A program whose result would depend on timing (a race), or that deadlocks."""


# -- instructions ------------------------------------------------------------------------------


def _check_uint(owner: str, name: str, value: object, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or not lo <= value <= hi:
        raise ValueError(f"{owner} {name} must be an integer in [{lo}, {hi}], not {value!r}")


def _check_flag(owner: str, name: str, value: object) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"{owner} {name} must be a bool, not {value!r}")


@dataclass(frozen=True)
class Instruction:
    """Base of all instructions; see the module docstring for the encoding."""

    opcode: ClassVar[Opcode]

    def encode(self) -> int:
        return encode(self)


@dataclass(frozen=True)
class End(Instruction):
    """Wait until both engines are idle, then finish the run (``STATUS.done``)."""

    opcode: ClassVar[Opcode] = Opcode.END


@dataclass(frozen=True)
class Sync(Instruction):
    """Wait until both engines are idle (a full barrier)."""

    opcode: ClassVar[Opcode] = Opcode.SYNC


@dataclass(frozen=True)
class Load(Instruction):
    """Input stream -> ``count`` words of ``buffer`` from ``base`` (load engine)."""

    opcode: ClassVar[Opcode] = Opcode.LOAD
    buffer: Buffer
    base: int
    count: int
    wait: bool = False
    signal: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.buffer, Buffer):
            try:
                object.__setattr__(self, "buffer", Buffer(self.buffer))
            except ValueError:
                raise ValueError(
                    f"LOAD buffer must be one of {list(Buffer)}, not {self.buffer!r}"
                ) from None
        _check_uint("LOAD", "base", self.base, 0, _ADDR_MAX)
        _check_uint("LOAD", "count", self.count, 1, _ADDR_MAX)
        _check_flag("LOAD", "wait", self.wait)
        _check_flag("LOAD", "signal", self.signal)


@dataclass(frozen=True)
class Store(Instruction):
    """``count`` A-words from ``base`` -> output stream, lanes packed at ``fmt`` (execute
    engine)."""

    opcode: ClassVar[Opcode] = Opcode.STORE
    base: int
    count: int
    fmt: object = INT8
    wait: bool = False
    signal: bool = False

    def __post_init__(self) -> None:
        _check_uint("STORE", "base", self.base, 0, _ADDR_MAX)
        _check_uint("STORE", "count", self.count, 1, _ADDR_MAX)
        if isinstance(self.fmt, str):
            object.__setattr__(self, "fmt", FORMATS.get(self.fmt, self.fmt))
        if getattr(self.fmt, "name", None) not in FORMAT_CODES:
            raise ValueError(f"STORE fmt must be one of {sorted(FORMAT_CODES)}, not {self.fmt!r}")
        _check_flag("STORE", "wait", self.wait)
        _check_flag("STORE", "signal", self.signal)


@dataclass(frozen=True)
class Gemm(Instruction):
    """A tiled GEMM with affine A/B/result addressing and requantization (execute engine).

    Computes, for row tile ``(p, q)`` in ``[0, m_outer) x [0, m_inner)``, lane ``i`` and column
    ``c`` in ``[0, n)``::

        acc = sum_{kk < k} A(p, q, kk)[i] * B(c // cols, kk)[c % cols]
        result = requantize(acc (+ BIAS[bias_base + p*bias_outer + c]), requant)

    with ``A(p, q, kk) = ABUF[a_base + p*a_outer + q*a_inner + kk*a_k]`` and
    ``B(t, kk) = (ABUF if b_from_abuf else WBUF)[b_base + t*b_tile + kk*b_k]``; the result
    word ``(p, q, c)`` goes to ``ABUF[out_base + p*out_outer + q*out_inner + c*out_col]`` or,
    with ``dst_stream``, to the output stream in ``(p, q, c)`` order. ``out_*`` fields are
    ignored with ``dst_stream``.
    """

    opcode: ClassVar[Opcode] = Opcode.GEMM
    m_outer: int
    m_inner: int
    k: int
    n: int
    a_base: int
    a_outer: int
    a_inner: int
    a_k: int
    b_base: int
    b_tile: int
    b_k: int
    requant: Requant
    out_base: int = 0
    out_outer: int = 0
    out_inner: int = 0
    out_col: int = 0
    bias_base: int = 0
    bias_outer: int = 0
    bias_en: bool = False
    dst_stream: bool = False
    b_from_abuf: bool = False
    wait: bool = False
    signal: bool = False
    fence: bool = False
    sparse: bool = False

    def __post_init__(self) -> None:
        for name in ("m_outer", "m_inner", "k", "n"):
            _check_uint("GEMM", name, getattr(self, name), 1, _ADDR_MAX)
        for name in (
            "a_base",
            "a_outer",
            "a_inner",
            "a_k",
            "b_base",
            "b_tile",
            "b_k",
            "out_base",
            "out_outer",
            "out_inner",
            "out_col",
            "bias_base",
            "bias_outer",
        ):
            _check_uint("GEMM", name, getattr(self, name), 0, _ADDR_MAX)
        for name in ("bias_en", "dst_stream", "b_from_abuf", "wait", "signal", "fence", "sparse"):
            _check_flag("GEMM", name, getattr(self, name))
        if not isinstance(self.requant, Requant):
            raise ValueError(f"GEMM requant must be a Requant, not {self.requant!r}")
        if self.requant.out_format.name not in FORMAT_CODES:
            raise ValueError(f"GEMM out_format must be one of {sorted(FORMAT_CODES)}")

    @property
    def row_tiles(self) -> int:
        return self.m_outer * self.m_inner

    def col_tiles(self, cols: int) -> int:
        """Column tiles on an array with ``cols`` columns: ``ceil(n / cols)``."""
        return -(-self.n // cols)


# Field layouts: (name, lsb, width). Flags are 1-bit fields. Shared by encode and decode.
_COMMON = (("opcode", 0, 4),)
_LAYOUTS: dict[Opcode, tuple[tuple[str, int, int], ...]] = {
    Opcode.END: _COMMON,
    Opcode.SYNC: _COMMON,
    Opcode.LOAD: (
        *_COMMON,
        ("wait", 4, 1),
        ("signal", 5, 1),
        ("buffer", 8, 2),
        ("base", 16, 16),
        ("count", 32, 16),
    ),
    Opcode.STORE: (
        *_COMMON,
        ("wait", 4, 1),
        ("signal", 5, 1),
        ("fmt", 8, 3),
        ("base", 16, 16),
        ("count", 32, 16),
    ),
    Opcode.GEMM: (
        *_COMMON,
        ("wait", 4, 1),
        ("signal", 5, 1),
        ("fence", 6, 1),
        ("dst_stream", 8, 1),
        ("b_from_abuf", 9, 1),
        ("bias_en", 10, 1),
        ("out_format", 11, 3),
        ("sparse", 14, 1),
        ("m_outer", 16, 16),
        ("m_inner", 32, 16),
        ("k", 48, 16),
        ("n", 64, 16),
        ("a_base", 80, 16),
        ("a_outer", 96, 16),
        ("a_inner", 112, 16),
        ("a_k", 128, 16),
        ("b_base", 144, 16),
        ("b_tile", 160, 16),
        ("b_k", 176, 16),
        ("out_base", 192, 16),
        ("out_outer", 208, 16),
        ("out_inner", 224, 16),
        ("out_col", 240, 16),
        ("bias_base", 256, 16),
        ("bias_outer", 304, 16),
        ("multiplier", 272, MULTIPLIER_BITS),
        ("shift", 288, 6),
    ),
}
_CLASSES: dict[Opcode, type[Instruction]] = {
    Opcode.END: End,
    Opcode.SYNC: Sync,
    Opcode.LOAD: Load,
    Opcode.STORE: Store,
    Opcode.GEMM: Gemm,
}


def encoding_table() -> dict[str, tuple[tuple[str, int, int], ...]]:
    """The field layout of every opcode: ``{name: ((field, lsb, width), ...)}``."""
    return {op.name: layout for op, layout in _LAYOUTS.items()}


def render_encoding_markdown() -> str:
    """The field layout of every opcode as a Markdown table (for the docs)."""
    lines = ["| opcode | bits | field |", "|---|---|---|"]
    for op, layout in _LAYOUTS.items():
        for i, (name, lsb, width) in enumerate(layout):
            bits = f"{lsb}" if width == 1 else f"{lsb + width - 1}:{lsb}"
            lines.append(f"| {f'`{op.name}` ({int(op)})' if i == 0 else ''} | {bits} | `{name}` |")
    return "\n".join(lines) + "\n"


def _field_values(instr: Instruction) -> dict[str, int]:
    values: dict[str, int] = {"opcode": int(instr.opcode)}
    for f in fields(instr):
        value = getattr(instr, f.name)
        if f.name == "requant":
            values["multiplier"] = value.multiplier
            values["shift"] = value.shift
            values["out_format"] = FORMAT_CODES[value.out_format.name]
        elif f.name == "fmt":
            values["fmt"] = FORMAT_CODES[value.name]
        else:
            values[f.name] = int(value)
    return values


def encode(instr: Instruction) -> int:
    """The instruction as an unsigned :data:`INSTRUCTION_BITS`-bit integer."""
    if not isinstance(instr, Instruction) or type(instr) not in _CLASSES.values():
        raise ValueError(
            f"encode expects an Instruction (Load, Gemm, Store, Sync, End), not {instr!r}"
        )
    values = _field_values(instr)
    word = 0
    for name, lsb, width in _LAYOUTS[instr.opcode]:
        value = values[name]
        if not 0 <= value < 2**width:  # unreachable after validation; keeps encode honest
            raise ValueError(f"{instr.opcode.name} field {name}={value} does not fit {width} bits")
        word |= value << lsb
    return word


def decode(word: int) -> Instruction:
    """Inverse of :func:`encode`. Raises ValueError for an unknown opcode, a set reserved bit,
    or a field value the instruction does not allow."""
    word = int(word)
    if not 0 <= word < 2**INSTRUCTION_BITS:
        raise ValueError(f"an instruction is {INSTRUCTION_BITS} bits; {word:#x} is out of range")
    try:
        opcode = Opcode(word & 0xF)
    except ValueError:
        raise ValueError(f"unknown opcode {word & 0xF} in instruction {word:#x}") from None
    layout = _LAYOUTS[opcode]
    used = 0
    values = {}
    for name, lsb, width in layout:
        values[name] = (word >> lsb) & ((1 << width) - 1)
        used |= ((1 << width) - 1) << lsb
    if word & ~used:
        raise ValueError(
            f"{opcode.name} instruction {word:#x} sets reserved bits {word & ~used:#x}"
        )
    values.pop("opcode")
    kwargs: dict[str, object] = {}
    for name, value in values.items():
        if name in ("wait", "signal", "fence", "dst_stream", "b_from_abuf", "bias_en", "sparse"):
            kwargs[name] = bool(value)
        elif name in ("fmt", "out_format"):
            if value not in _FORMAT_BY_CODE:
                raise ValueError(
                    f"{opcode.name} {name} code {value} is not a format code {FORMAT_CODES}"
                )
            kwargs[name] = _FORMAT_BY_CODE[value]
        else:
            kwargs[name] = value
    if opcode == Opcode.GEMM:
        kwargs["requant"] = Requant(
            int(kwargs.pop("multiplier")), int(kwargs.pop("shift")), kwargs.pop("out_format")
        )
    return _CLASSES[opcode](**kwargs)


def encode_program(program: Sequence[Instruction]) -> np.ndarray:
    """A program as uint64 stream beats (:data:`BEATS_PER_INSTRUCTION` per instruction)."""
    beats = []
    for instr in program:
        word = encode(instr)
        beats.extend(
            (word >> (STREAM_BITS * i)) & (2**STREAM_BITS - 1) for i in range(BEATS_PER_INSTRUCTION)
        )
    return np.array(beats, dtype=np.uint64)


def decode_program(beats: np.ndarray) -> list[Instruction]:
    """Inverse of :func:`encode_program`."""
    beats = np.asarray(beats, dtype=np.uint64).reshape(-1)
    if beats.size % BEATS_PER_INSTRUCTION:
        raise ValueError(
            f"a program is a multiple of {BEATS_PER_INSTRUCTION} beats, not {beats.size}"
        )
    program = []
    for i in range(0, beats.size, BEATS_PER_INSTRUCTION):
        word = sum(
            int(b) << (STREAM_BITS * j) for j, b in enumerate(beats[i : i + BEATS_PER_INSTRUCTION])
        )
        program.append(decode(word))
    return program


# -- stream sizes and packing ------------------------------------------------------------------


def _word_bits(buffer: Buffer, config: AccelConfig) -> int:
    if buffer == Buffer.ABUF:
        return config.a_word_bits
    if buffer == Buffer.WBUF:
        return config.b_word_bits
    return 32


def load_beats(instr: Load, config: AccelConfig) -> int:
    """Input-stream beats a LOAD consumes: ``ceil(count * word_bits / 64)``."""
    return -(-instr.count * _word_bits(instr.buffer, config) // STREAM_BITS)


def result_beats(words: int, lanes: int, fmt) -> int:
    """Output-stream beats of ``words`` result words of ``lanes`` codes of ``fmt``."""
    return -(-words * lanes * fmt.bits // STREAM_BITS)


def pack_b_words(
    codes: np.ndarray, config: AccelConfig, index: np.ndarray | None = None
) -> np.ndarray:
    """B-words (any shape of ``(..., cols)`` codes of the weight format) -> uint64 beats,
    back to back, lane 0 in the low bits. With ``sparse_nm`` each lane is
    :attr:`~.accel_config.AccelConfig.b_lane_bits` wide: the code's field, then its N:M
    ``index`` above it (zeros when None); without it this is :func:`.packing.pack_words`."""
    codes = np.asarray(codes)
    fmt = config.weight_format
    if config.sparse_nm is None:
        if index is not None and np.any(index):
            raise ValueError("B-word indices need a configuration with sparse_nm")
        return pack_words(codes.reshape(-1), fmt, STREAM_BITS)
    flat = codes.reshape(-1)
    fields = _fields(flat, fmt)
    index = np.zeros(flat.size, np.uint64) if index is None else np.asarray(index).reshape(-1)
    if index.size != flat.size:
        raise ValueError(f"{index.size} B-word indices for {flat.size} codes")
    group = config.sparse_nm[1]
    if index.size and (index.min() < 0 or index.max() >= group):
        raise ValueError(
            f"B-word indices must lie in [0, {group}), found {index.min()}..{index.max()}"
        )
    lanes = fields | (index.astype(np.uint64) << np.uint64(fmt.bits))
    return _pack_fields(lanes, config.b_lane_bits)


def unpack_b_words(
    beats: np.ndarray, config: AccelConfig, count: int
) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`pack_b_words` for ``count`` B-words: ``(codes, index)``, each
    ``(count, cols)`` (int8 codes, uint8 indices; zero indices without ``sparse_nm``)."""
    cols, fmt = config.cols, config.weight_format
    if config.sparse_nm is None:
        codes = unpack_words(beats, fmt, count * cols).reshape(count, cols)
        return codes, np.zeros((count, cols), np.uint8)
    lanes = _unpack_fields(beats, config.b_lane_bits, count * cols)
    field = lanes & np.uint64((1 << fmt.bits) - 1)
    index = (lanes >> np.uint64(fmt.bits)).astype(np.uint8)
    sign = 1 << (fmt.bits - 1)
    codes = ((field.astype(np.int64) ^ sign) - sign).astype(np.int8)
    bad = ~fmt.valid(codes)
    if bad.any():
        at = int(np.argmax(bad))
        raise ValueError(f"illegal {fmt.name} code {int(codes[at])} in B-word lane {at}")
    return codes.reshape(count, cols), index.reshape(count, cols)


def _fields(codes: np.ndarray, fmt) -> np.ndarray:
    """Legal codes -> their unsigned ``fmt.bits`` fields (two's complement; no binary here:
    ``sparse_nm`` excludes it)."""
    bad = ~fmt.valid(codes)
    if bad.any():
        at = int(np.argmax(bad))
        raise ValueError(f"code {int(codes[at])} at index {at} is not a legal {fmt.name} code")
    return codes.astype(np.int64).astype(np.uint64) & np.uint64((1 << fmt.bits) - 1)


def _pack_fields(fields: np.ndarray, bits: int) -> np.ndarray:
    """Unsigned ``bits``-wide fields -> uint64 beats, field 0 in the low bits, zero padded."""
    total = fields.size * bits
    out = np.zeros(-(-total // STREAM_BITS), np.uint64)
    position = np.arange(fields.size, dtype=np.int64) * bits
    for bit in range(bits):
        ones = ((fields >> np.uint64(bit)) & np.uint64(1)).astype(bool)
        at = position[ones] + bit
        np.bitwise_or.at(
            out,
            at // STREAM_BITS,
            np.left_shift(np.uint64(1), (at % STREAM_BITS).astype(np.uint64)),
        )
    return out


def _unpack_fields(beats: np.ndarray, bits: int, count: int) -> np.ndarray:
    """Inverse of :func:`_pack_fields`: the first ``count`` fields."""
    beats = np.asarray(beats, dtype=np.uint64).reshape(-1)
    need = -(-count * bits // STREAM_BITS)
    if beats.size < need:
        raise ValueError(
            f"{count} fields of {bits} bits need {need} beats, only {beats.size} given"
        )
    position = np.arange(count, dtype=np.int64) * bits
    fields = np.zeros(count, np.uint64)
    for bit in range(bits):
        at = position + bit
        one = (beats[at // STREAM_BITS] >> (at % STREAM_BITS).astype(np.uint64)) & np.uint64(1)
        fields |= one << np.uint64(bit)
    return fields


def pack_bias(bias: np.ndarray) -> np.ndarray:
    """int32 values -> uint64 beats (two per beat, entry ``2i`` in the low half), zero padded."""
    values = np.asarray(bias, dtype=np.int64).reshape(-1)
    if values.size and (values.min() < -(2**31) or values.max() > 2**31 - 1):
        raise ValueError(f"bias entries must fit int32, found [{values.min()}, {values.max()}]")
    padded = np.zeros(-(-values.size // 2) * 2, dtype="<i4")
    padded[: values.size] = values
    return padded.view("<u8").astype(np.uint64)


def _unpack_bias(beats: np.ndarray, count: int) -> np.ndarray:
    return np.asarray(beats, dtype="<u8").view("<i4")[:count].astype(np.int32)


# -- machine state and access analysis ---------------------------------------------------------


@dataclass
class Machine:
    """The persistent on-chip state: buffer contents survive between runs (resident cores).

    ``abuf``: int8 (act_buffer_depth, rows); ``wbuf``: int8 (weight_buffer_depth, cols) codes of
    the weight format; ``bias``: int32 (bias_buffer_depth,); ``wbuf_index``: uint8, the B-word
    lanes' N:M indices (zeros, and unused, without ``sparse_nm``). Fresh buffers hold zeros
    (the hardware's are undefined: programs must not read what they did not load).
    """

    abuf: np.ndarray
    wbuf: np.ndarray
    bias: np.ndarray
    wbuf_index: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.wbuf_index is None:
            self.wbuf_index = np.zeros(np.shape(self.wbuf), dtype=np.uint8)

    @classmethod
    def empty(cls, config: AccelConfig) -> Machine:
        return cls(
            abuf=np.zeros((config.act_buffer_depth, config.rows), dtype=np.int8),
            wbuf=np.zeros((config.weight_buffer_depth, config.cols), dtype=np.int8),
            bias=np.zeros(config.bias_buffer_depth, dtype=np.int32),
        )

    def copy(self) -> Machine:
        return Machine(self.abuf.copy(), self.wbuf.copy(), self.bias.copy(), self.wbuf_index.copy())


@dataclass(frozen=True)
class _Access:
    reads: dict[Buffer, np.ndarray]
    writes: dict[Buffer, np.ndarray]


def gemm_beats(g: Gemm, config: AccelConfig) -> int:
    """Beats (B-words) one tile of ``g`` sends into the array: ``k``, or ``k * N / M`` for a
    sparse GEMM on a ``sparse_nm = (N, M)`` configuration."""
    if g.sparse and config.sparse_nm is not None:
        n, m = config.sparse_nm
        return g.k * n // m
    return g.k


def _gemm_addresses(
    g: Gemm, cols: int, beats: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A addresses (T, k), B addresses (tiles, beats), result addresses (T, n) as int64;
    ``beats`` (B-words per tile) defaults to ``k``."""
    p = np.arange(g.m_outer, dtype=np.int64)[:, None]
    q = np.arange(g.m_inner, dtype=np.int64)[None, :]
    kk = np.arange(g.k, dtype=np.int64)
    rows = (p * g.a_outer + q * g.a_inner).reshape(-1)
    a = g.a_base + rows[:, None] + kk[None, :] * g.a_k
    t = np.arange(g.col_tiles(cols), dtype=np.int64)
    bb = kk if beats is None else np.arange(beats, dtype=np.int64)
    b = g.b_base + t[:, None] * g.b_tile + bb[None, :] * g.b_k
    out_rows = (p * g.out_outer + q * g.out_inner).reshape(-1)
    c = np.arange(g.n, dtype=np.int64)
    out = g.out_base + out_rows[:, None] + c[None, :] * g.out_col
    return a, b, out


def _bias_addresses(g: Gemm) -> np.ndarray:
    """Bias entries, shape (T, n): row tile (p, q), column c -> ``bias_base + p*bias_outer + c``."""
    p = np.repeat(np.arange(g.m_outer, dtype=np.int64), g.m_inner)
    return g.bias_base + p[:, None] * g.bias_outer + np.arange(g.n, dtype=np.int64)[None, :]


def _depth(buffer: Buffer, config: AccelConfig) -> int:
    return {
        Buffer.ABUF: config.act_buffer_depth,
        Buffer.WBUF: config.weight_buffer_depth,
        Buffer.BIAS: config.bias_buffer_depth,
    }[buffer]


def _check_range(what: str, addresses: np.ndarray, buffer: Buffer, config: AccelConfig) -> None:
    depth = _depth(buffer, config)
    if addresses.size and (addresses.min() < 0 or addresses.max() >= depth):
        raise ValueError(
            f"{what} addresses reach {int(addresses.max())}, but {buffer.name} has {depth} words"
        )


def _analyse(index: int, instr: Instruction, config: AccelConfig) -> _Access:
    """Validate one instruction against ``config`` and list the words it reads and writes
    (ValueError names the instruction by ``index``)."""
    try:
        return _access_of(instr, config)
    except ValueError as error:
        raise ValueError(f"instruction {index} ({instr.opcode.name}): {error}") from None


@functools.lru_cache(maxsize=2048)
def _access_of(instr: Instruction, config: AccelConfig) -> _Access:
    """:func:`_analyse` without the index, memoized: compiled programs repeat the same
    instructions block after block and layer after layer, and the address sets are the cost
    of checking and executing them. The arrays are read-only."""
    access = _access_uncached(instr, config)
    for words in (*access.reads.values(), *access.writes.values()):
        words.setflags(write=False)
    return access


def _access_uncached(instr: Instruction, config: AccelConfig) -> _Access:
    if isinstance(instr, Load):
        words = np.arange(instr.base, instr.base + instr.count, dtype=np.int64)
        _check_range("LOAD", words, instr.buffer, config)
        return _Access({}, {instr.buffer: words})
    if isinstance(instr, Store):
        words = np.arange(instr.base, instr.base + instr.count, dtype=np.int64)
        _check_range("STORE", words, Buffer.ABUF, config)
        return _Access({Buffer.ABUF: words}, {})
    if isinstance(instr, Gemm):
        if instr.k > config.max_k:
            raise ValueError(f"k = {instr.k} exceeds the configuration's max_k {config.max_k}")
        if instr.b_from_abuf and not config.supports_b_from_abuf:
            raise ValueError(
                f"b_from_abuf needs rows == cols and int8 weights, but the array is "
                f"{config.rows}x{config.cols} with {config.weight_format.name} weights"
            )
        if instr.sparse:
            if config.sparse_nm is None:
                raise ValueError("sparse needs a configuration with sparse_nm")
            if instr.b_from_abuf:
                raise ValueError("a sparse GEMM reads its B operand from WBUF, not b_from_abuf")
            if instr.k % config.sparse_nm[1]:
                raise ValueError(
                    f"a sparse GEMM's k must be a multiple of M = {config.sparse_nm[1]}, "
                    f"not {instr.k}"
                )
        a, b, out = _gemm_addresses(instr, config.cols, gemm_beats(instr, config))
        b_buffer = Buffer.ABUF if instr.b_from_abuf else Buffer.WBUF
        _check_range("A", a, Buffer.ABUF, config)
        _check_range("B", b, b_buffer, config)
        reads = {Buffer.ABUF: np.unique(a)}
        reads[b_buffer] = np.union1d(reads.get(b_buffer, np.empty(0, np.int64)), np.unique(b))
        if instr.bias_en:
            bias = _bias_addresses(instr)
            _check_range("bias", bias, Buffer.BIAS, config)
            reads[Buffer.BIAS] = np.unique(bias)
        writes: dict[Buffer, np.ndarray] = {}
        if not instr.dst_stream:
            _check_range("result", out, Buffer.ABUF, config)
            unique = np.unique(out)
            if unique.size != out.size:
                raise ValueError("writes some result word more than once")
            if np.intersect1d(unique, reads[Buffer.ABUF]).size:
                raise ValueError("writes ABUF words it also reads")
            writes[Buffer.ABUF] = unique
        return _Access(reads, writes)
    if isinstance(instr, Sync | End):
        return _Access({}, {})
    raise ValueError(f"not an instruction: {instr!r}")


def _overlap(x: dict[Buffer, np.ndarray], y: dict[Buffer, np.ndarray]) -> tuple[Buffer, int] | None:
    for buffer, words in x.items():
        other = y.get(buffer)
        if other is None or not words.size or not other.size:
            continue
        if words[-1] < other[0] or other[-1] < words[0]:
            continue
        common = np.intersect1d(words, other, assume_unique=True)
        if common.size:
            return buffer, int(common[0])
    return None


# -- issue semantics: happens-before, deadlock, races ------------------------------------------

_LOAD_ENGINE, _EXEC_ENGINE = 0, 1


def _engine(instr: Instruction) -> int | None:
    if isinstance(instr, Load):
        return _LOAD_ENGINE
    if isinstance(instr, Gemm | Store):
        return _EXEC_ENGINE
    return None


def happens_before(program: Sequence[Instruction], queue_depth: int) -> list[tuple[int, int]]:
    """Vector clocks of the issue semantics (see the module docstring).

    Returns, per instruction, ``(loads, execs)``: how many load-engine and execute-engine
    instructions have certainly *completed* before it completes (itself included). A load
    ``L`` (the ``l``-th, 1-based) certainly precedes an execute instruction ``E`` iff
    ``clock[E][0] >= l``, and ``E`` (the ``x``-th) precedes ``L`` iff ``clock[L][1] >= x``;
    otherwise they may overlap in time. Raises :class:`HazardError` if the program deadlocks
    (a wait no signal can satisfy, or a full queue in front of the signal it waits for), or if
    more than :data:`TOKEN_LIMIT` tokens are outstanding.
    """
    n = len(program)
    clocks: list[tuple[int, int] | None] = [None] * n
    queues: tuple[deque[int], deque[int]] = (deque(), deque())
    tokens: tuple[deque[tuple[int, int]], deque[tuple[int, int]]] = (deque(), deque())
    completed = [0, 0]
    last = [(0, 0), (0, 0)]
    barrier = (0, 0)
    dispatched = 0
    while True:
        progress = False
        while dispatched < n:
            instr = program[dispatched]
            engine = _engine(instr)
            if engine is None:  # SYNC / END: wait for both engines to drain
                if queues[0] or queues[1]:
                    break
                barrier = (max(last[0][0], last[1][0]), max(last[0][1], last[1][1]))
                clocks[dispatched] = barrier
                dispatched += 1
                progress = True
                continue
            if len(queues[engine]) >= queue_depth:
                break
            queues[engine].append(dispatched)
            dispatched += 1
            progress = True
        for engine in (_LOAD_ENGINE, _EXEC_ENGINE):
            if not queues[engine]:
                continue
            index = queues[engine][0]
            instr = program[index]
            source = (0, 0)
            if instr.wait:
                available = tokens[1 - engine]
                if not available:
                    continue
                source = available.popleft()
            completed[engine] += 1
            clock = [max(a, b, c) for a, b, c in zip(last[engine], source, barrier, strict=True)]
            clock[engine] = completed[engine]
            clocks[index] = last[engine] = (clock[0], clock[1])
            if instr.signal:
                tokens[engine].append(last[engine])
                if len(tokens[engine]) > TOKEN_LIMIT:
                    raise HazardError(
                        f"instruction {index} leaves more than {TOKEN_LIMIT} tokens outstanding"
                    )
            queues[engine].popleft()
            progress = True
        if dispatched == n and not queues[0] and not queues[1]:
            return [c if c is not None else (0, 0) for c in clocks]
        if not progress:
            stuck = [program[q[0]] for q in queues if q]
            heads = ", ".join(
                f"{i.opcode.name} at {q[0]}"
                for q, i in zip([q for q in queues if q], stuck, strict=True)
            )
            raise HazardError(
                f"program deadlocks: dispatch stopped at instruction {dispatched}; queue heads "
                f"waiting for tokens that never come: {heads or 'none'}"
            )


def check_program(program: Sequence[Instruction], config: AccelConfig) -> list[_Access]:
    """Validate a program statically against ``config`` and its issue semantics.

    Checks: a non-empty program of at most ``instruction_depth`` instructions with ``END`` last
    and only last; every address inside its buffer, ``k <= max_k``; no GEMM writing a word it
    reads or twice; no deadlock; no race (a LOAD and a GEMM/STORE that may overlap in time and
    touch the same word, one of them writing); ``fence`` on every GEMM that reads ABUF words the
    previous GEMM writes. Raises ValueError (:class:`HazardError` for races and deadlocks).
    Returns the per-instruction accesses (for the executor).
    """
    program = list(program)
    if not program:
        raise ValueError("a program needs at least an END instruction")
    if len(program) > config.instruction_depth:
        raise ValueError(
            f"program has {len(program)} instructions; the instruction memory holds "
            f"{config.instruction_depth}"
        )
    for i, instr in enumerate(program):
        if isinstance(instr, End) and i != len(program) - 1:
            raise ValueError(f"END at instruction {i} is not the last instruction")
    if not isinstance(program[-1], End):
        raise ValueError(f"the last instruction must be END, not {program[-1].opcode.name}")
    accesses = [_analyse(i, instr, config) for i, instr in enumerate(program)]
    clocks = happens_before(program, config.queue_depth)

    loads = [i for i, ins in enumerate(program) if _engine(ins) == _LOAD_ENGINE]
    execs = [i for i, ins in enumerate(program) if _engine(ins) == _EXEC_ENGINE]
    for x, e in enumerate(execs, start=1):
        for l_seq in range(clocks[e][0] + 1, len(loads) + 1):  # loads not known to precede e
            li = loads[l_seq - 1]
            if clocks[li][1] >= x:
                break  # e completed before this load and (in order) every later one
            hit = _overlap(accesses[li].writes, accesses[e].reads) or _overlap(
                accesses[li].writes, accesses[e].writes
            )
            if hit:
                buffer, word = hit
                raise HazardError(
                    f"race: LOAD at instruction {li} and {program[e].opcode.name} at instruction "
                    f"{e} may overlap in time and both touch {buffer.name} word {word}; add "
                    f"wait/signal tokens between them"
                )
    previous: int | None = None
    for e in execs:
        instr = program[e]
        if isinstance(instr, Gemm):
            if previous is not None and not instr.fence:
                hit = _overlap(accesses[previous].writes, accesses[e].reads)
                if hit:
                    raise HazardError(
                        f"GEMM at instruction {e} reads {hit[0].name} word {hit[1]} that the "
                        f"previous GEMM (instruction {previous}) writes: set fence"
                    )
            previous = e
        else:
            previous = None  # STORE waits for every earlier result
    return accesses


def add_fences(program: Sequence[Instruction], config: AccelConfig) -> list[Instruction]:
    """``program`` with ``fence`` set on exactly the GEMMs that read ABUF words the previous
    GEMM (in execute-engine order, with no STORE between) writes."""
    out = list(program)
    previous: np.ndarray | None = None  # ABUF words the previous GEMM writes (sorted, unique)
    for i, instr in enumerate(out):
        if isinstance(instr, Store):
            previous = None
        if not isinstance(instr, Gemm):
            continue
        access = _analyse(i, instr, config)
        reads = access.reads.get(Buffer.ABUF, np.empty(0, np.int64))
        needs = previous is not None and _overlap({Buffer.ABUF: previous}, {Buffer.ABUF: reads})
        out[i] = dataclasses.replace(instr, fence=bool(needs))
        previous = access.writes.get(Buffer.ABUF, np.empty(0, np.int64))
    return out


# -- the executor ------------------------------------------------------------------------------


@dataclass
class ExecResult:
    """What a run produced: output-stream beats (uint64), the machine state afterwards, the
    lane-MACs issued (``rows * valid columns * k`` per tile, what ``MACS_ISSUED`` counts) and
    the number of tiles."""

    output: np.ndarray
    machine: Machine
    macs_issued: int = 0
    tiles: int = 0
    instructions: int = 0
    beats_in: int = 0
    stream_chunks: list[np.ndarray] = field(default_factory=list)


def _sparse_b(g: Gemm, config: AccelConfig, machine: Machine, b_addr: np.ndarray) -> np.ndarray:
    """The dense ``(k, n)`` B operand a sparse GEMM's compressed B-words stand for: beat ``b``
    of column ``c`` adds its code at row ``(b // N) * M + index`` (scatter-add, so the sum
    over rows equals the sum over beats exactly, whatever the indices)."""
    n_keep, group = config.sparse_nm
    beats = b_addr.shape[1]
    codes = machine.wbuf[b_addr].astype(np.int64)  # (tiles, beats, cols)
    index = machine.wbuf_index[b_addr].astype(np.int64)
    codes = codes.transpose(1, 0, 2).reshape(beats, -1)[:, : g.n]  # (beats, n)
    index = index.transpose(1, 0, 2).reshape(beats, -1)[:, : g.n]
    rows = (np.arange(beats, dtype=np.int64)[:, None] // n_keep) * group + index
    dense = np.zeros((g.k, g.n), np.int64)
    np.add.at(dense, (rows, np.broadcast_to(np.arange(g.n), rows.shape)), codes)
    return dense


def _gemm(g: Gemm, config: AccelConfig, machine: Machine) -> tuple[np.ndarray | None, int]:
    beats = gemm_beats(g, config)
    a_addr, b_addr, out_addr = _gemm_addresses(g, config.cols, beats)
    a = machine.abuf[a_addr].astype(np.int64)  # (T, k, rows)
    if g.sparse:
        b = _sparse_b(g, config, machine, b_addr)
    else:
        b_source = machine.abuf if g.b_from_abuf else machine.wbuf
        b = b_source[b_addr].astype(np.int64)  # (tiles, k, cols)
        b = b.transpose(1, 0, 2).reshape(g.k, -1)[:, : g.n]  # (k, n): column c = tile c // cols
    # float64 products of int8 x int8 codes summed over k < 2**16 stay below 2**53: exact, and
    # BLAS-fast (int64 einsum is not).
    acc = np.matmul(a.transpose(0, 2, 1).astype(np.float64), b.astype(np.float64))
    acc = acc.astype(np.int64)  # (T, rows, n)
    bias = machine.bias[_bias_addresses(g)][:, None, :] if g.bias_en else None  # (T, 1, n)
    if acc.size and (acc.min() < -(2**31) or acc.max() > 2**31 - 1):
        raise OverflowError(f"GEMM accumulator leaves int32: [{int(acc.min())}, {int(acc.max())}]")
    codes = requantize(acc, g.requant, bias)  # (T, rows, n) int8
    words = codes.transpose(0, 2, 1)  # (T, n, rows): result word (p, q, c)
    macs = g.row_tiles * beats * config.rows * g.n
    if g.dst_stream:
        return pack_words(words.reshape(-1), g.requant.out_format, STREAM_BITS), macs
    machine.abuf[out_addr.reshape(-1)] = words.reshape(-1, config.rows)
    return None, macs


def execute(
    program: Sequence[Instruction],
    config: AccelConfig,
    data: np.ndarray | Iterable[int] = (),
    machine: Machine | None = None,
    *,
    check: bool = True,
) -> ExecResult:
    """Run ``program`` on a model of the on-chip buffers, bit-exactly.

    ``data``: the input-stream beats after the program (uint64), consumed by the LOADs in
    program order; every beat must be consumed. ``machine``: state left by an earlier run
    (e.g. resident cores), updated in place; a fresh zeroed one if None. ``check`` runs
    :func:`check_program` first (races, deadlocks, fences, bounds); without it only the bounds
    are checked. Instructions then take effect in program order, which the checks guarantee is
    what the concurrent hardware computes. Raises ValueError for a malformed program or stream
    and OverflowError where the golden models would.
    """
    program = list(program)
    machine = Machine.empty(config) if machine is None else machine
    if (
        machine.abuf.shape != (config.act_buffer_depth, config.rows)
        or machine.wbuf.shape != (config.weight_buffer_depth, config.cols)
        or machine.bias.shape != (config.bias_buffer_depth,)
    ):
        raise ValueError("machine buffers do not match the configuration's shapes")
    if check:
        check_program(program, config)
    else:
        for i, instr in enumerate(program):
            _analyse(i, instr, config)
    data = np.asarray(
        list(data) if not isinstance(data, np.ndarray) else data, dtype=np.uint64
    ).reshape(-1)
    cursor = 0
    out_chunks: list[np.ndarray] = []
    result = ExecResult(np.empty(0, np.uint64), machine)
    for i, instr in enumerate(program):
        if isinstance(instr, Load):
            beats = load_beats(instr, config)
            if cursor + beats > data.size:
                raise ValueError(
                    f"instruction {i} (LOAD) needs {beats} beats at beat {cursor}, but the input "
                    f"stream has only {data.size}"
                )
            chunk = data[cursor : cursor + beats]
            cursor += beats
            span = slice(instr.base, instr.base + instr.count)
            if instr.buffer == Buffer.ABUF:
                codes = unpack_words(chunk, config.activation_format, instr.count * config.rows)
                machine.abuf[span] = codes.reshape(instr.count, config.rows)
            elif instr.buffer == Buffer.WBUF:
                codes, index = unpack_b_words(chunk, config, instr.count)
                machine.wbuf[span] = codes
                machine.wbuf_index[span] = index
            else:
                machine.bias[span] = _unpack_bias(chunk, instr.count)
        elif isinstance(instr, Gemm):
            beats_out, macs = _gemm(instr, config, machine)
            result.macs_issued += macs
            result.tiles += instr.row_tiles * instr.col_tiles(config.cols)
            if beats_out is not None:
                out_chunks.append(beats_out)
        elif isinstance(instr, Store):
            words = machine.abuf[instr.base : instr.base + instr.count]
            out_chunks.append(pack_words(words.reshape(-1), instr.fmt, STREAM_BITS))
        result.instructions += 1
    if cursor != data.size:
        raise ValueError(
            f"the program consumed {cursor} input beats, but the stream has {data.size}"
        )
    result.output = np.concatenate(out_chunks) if out_chunks else np.empty(0, np.uint64)
    result.stream_chunks = out_chunks
    result.beats_in = cursor
    return result


def execute_stream(
    stream: np.ndarray,
    program_length: int,
    config: AccelConfig,
    machine: Machine | None = None,
) -> ExecResult:
    """What the hardware does on ``CONTROL.start``: decode ``program_length`` instructions from
    the head of the input ``stream`` (5 beats each), then :func:`execute` on the rest."""
    stream = np.asarray(stream, dtype=np.uint64).reshape(-1)
    head = program_length * BEATS_PER_INSTRUCTION
    if program_length < 1 or head > stream.size:
        raise ValueError(
            f"PROGRAM_LENGTH {program_length} needs {head} beats; the stream has {stream.size}"
        )
    return execute(decode_program(stream[:head]), config, stream[head:], machine)
