"""Directed cocotb tests of :class:`ttaccel.hw.engine.Engine`: each one pins down one ordering,
addressing or arithmetic rule with scripted timing, so a design that breaks the rule fails on
every seed (see ``tools/mutate.py``), plus resident cores, ``with_prefetch``, token overflow
and random (non-compiler) legal programs.

Configuration (``TTACCEL_TB``): ``config`` (an :class:`AccelConfig` as a dict; the directed
programs assume 4 x 4 int8 with ``instruction_depth`` >= 257), ``seed`` (only the resident,
prefetch and random-program tests use it; the directed tests use fixed data so their verdict
does not depend on it), ``random_programs`` (how many).

Every run is checked as in :mod:`ttaccel.sim.tb_engine` (every output beat against
:func:`ttaccel.spec.isa.execute_stream`, TLAST, counters) and, in addition, the output stream
must follow the stream rules: once ``valid`` is high without ``ready``, ``valid`` and the
payload stay unchanged until the transfer.

Timing scripts: ``holds`` delays given data beats (index after the program -> idle cycles
before it), ``ready_hold`` keeps the output's ``ready`` low for the first cycles of a run.
They make the hardware wait where the rule under test matters (a LOAD still streaming in when
the GEMM that waits for it is ready to start; a GEMM stalled on a full output while the LOAD
that waits for it could overwrite its operands).
"""

from __future__ import annotations

import dataclasses
import itertools
import random

import cocotb
import numpy as np
from cocotb.triggers import ReadOnly, RisingEdge

from ttaccel.hw.interfaces import STREAM_BEAT
from ttaccel.sim.engine_programs import Case
from ttaccel.sim.layouts import unpack
from ttaccel.sim.random_programs import clear_program, random_program
from ttaccel.sim.tb import StreamSink, StreamSource
from ttaccel.sim.tb_engine import EngineBench, bench_setup, stream_of
from ttaccel.spec.accel_config import AccelConfig
from ttaccel.spec.compiler import compile_tt_linear, with_prefetch
from ttaccel.spec.formats import INT4, INT8, Requant
from ttaccel.spec.golden import QuantTTLinear, tt_linear_int
from ttaccel.spec.isa import (
    TOKEN_LIMIT,
    Buffer,
    End,
    Gemm,
    HazardError,
    Load,
    Store,
    Sync,
    check_program,
    execute_stream,
    pack_bias,
)
from ttaccel.spec.packing import pack_words
from ttaccel.spec.regmap import ERROR_CODES
from ttaccel.spec.tt import TTShape

TOKENS = next(code for code, text in ERROR_CODES.items() if "token" in text)
ADDRESS = next(code for code, text in ERROR_CODES.items() if "address" in text)
TLAST = next(code for code, text in ERROR_CODES.items() if "TLAST" in text)
HOLD = 300  # cycles a scripted stall lasts: far longer than any GEMM or LOAD here


class CheckedSink(StreamSink):
    """A :class:`StreamSink` that also checks the stream rules (``valid`` and payload stable
    while waiting for ``ready``) and keeps ``ready`` low for the first ``hold`` cycles."""

    def __init__(self, *args, hold: int = 0, **kwargs):
        super().__init__(*args, **kwargs)
        self.hold = hold
        self.violations: list[str] = []

    async def _run(self) -> None:
        clk = self.harness.clk
        start = self.harness.cycle
        waiting: int | None = None  # the raw payload offered last cycle without a transfer
        while True:
            await RisingEdge(clk)
            held = self.harness.cycle - start < self.hold
            accept = not held and (self.backpressure == 0 or self.rng.random() >= self.backpressure)
            self.ready.value = int(accept)
            await ReadOnly()
            valid = int(self.valid.value)
            raw = int(self.payload.value) if valid else None
            if waiting is not None and (not valid or raw != waiting):
                what = "valid withdrawn" if not valid else f"payload {waiting:#x} -> {raw:#x}"
                self.violations.append(f"cycle {self.harness.cycle}: {what} before ready")
            if valid and accept:
                self.received.append((self.harness.cycle, unpack(self.layout, raw)))
            waiting = raw if valid and not accept else None


class DirectedBench(EngineBench):
    """:class:`EngineBench` with scripted stalls (``holds``, ``ready_hold``) and the stream
    rules checked on every run."""

    def __init__(self, dut, config: AccelConfig, seed: int):
        super().__init__(dut, config, seed)
        self.holds: dict[int, int] = {}
        self.ready_hold = 0
        self.sink: CheckedSink | None = None

    async def launch(self, program, data, *, idle=0.0, backpressure=0.0, length=None, last_at=None):
        beats = stream_of(program, data)
        head = len(beats) - len(data)
        last_at = len(beats) - 1 if last_at is None else last_at
        payloads = [{"data": b, "last": int(i == last_at)} for i, b in enumerate(beats)]
        source = StreamSource(
            self.harness, "inp", STREAM_BEAT, idle=idle, rng=random.Random(self.rng.random())
        )
        self.sink = sink = CheckedSink(
            self.harness, "out", STREAM_BEAT, backpressure=backpressure, hold=self.ready_hold,
            rng=random.Random(self.rng.random()),
        )  # fmt: skip
        sink.start()
        self.dut.program_length.value = len(program) if length is None else length
        await self.pulse("start")
        started = self.harness.cycle
        holds = {head + index: cycles for index, cycles in self.holds.items()}

        async def send():
            cuts = sorted({0, *holds, len(payloads)})
            for lo, hi in itertools.pairwise(cuts):
                await self.harness.cycles(holds.get(lo, 0))
                await source.send(payloads[lo:hi])

        task = cocotb.start_soon(send())
        return source, sink, task, started, len(payloads)

    async def run_checked(
        self, case: Case, *, holds=None, ready_hold=0, idle=0.0, backpressure=0.0
    ) -> dict:
        """:meth:`EngineBench.run` under a timing script; also asserts the stream rules."""
        self.holds, self.ready_hold = dict(holds or {}), ready_hold
        try:
            counters = await self.run(case, idle=idle, backpressure=backpressure)
        finally:
            self.holds, self.ready_hold = {}, 0
        assert self.sink is not None and not self.sink.violations, (
            f"{case.name}: output stream rules broken: {self.sink.violations[:5]}"
        )
        return counters

    def case(self, name: str, program, data) -> Case:
        """A directed program and its data beats (a list of beat arrays); asserts the
        program is legal by the spec (:func:`check_program`)."""
        check_program(program, self.config)
        beats = [np.asarray(d, np.uint64).reshape(-1) for d in data]
        return Case(name, list(program), np.concatenate(beats) if beats else np.empty(0, np.uint64))


# -- fixed data -------------------------------------------------------------------------------


def _a_beats(words: np.ndarray) -> np.ndarray:
    return pack_words(np.asarray(words, np.int64).reshape(-1), INT8, 64)


def _fixed(seed: int, shape, lo=-128, hi=128) -> np.ndarray:
    return np.random.default_rng(seed).integers(lo, hi, size=shape)


async def _bench(dut, salt: int) -> tuple[DirectedBench, AccelConfig, dict]:
    cfg, config, seed = bench_setup(dut)
    assert (config.rows, config.cols, config.weight_format) == (4, 4, INT8), config
    bench = DirectedBench(dut, config, seed + salt)
    await bench.start()
    return bench, config, cfg


def _gemm(**fields) -> Gemm:
    base = {"m_outer": 1, "m_inner": 1, "a_outer": 0, "a_inner": 0, "a_k": 1, "b_tile": 0,
            "b_k": 1, "b_base": 0, "a_base": 0, "requant": Requant(181, 9, INT8)}  # fmt: skip
    return Gemm(**{**base, **fields})


# -- ordering: fence, previous GEMM, STORE, tokens ---------------------------------------------


@cocotb.test()
async def fence_waits_for_the_previous_gemm(dut):
    """GEMM 2 (``fence``) reads the four words GEMM 1 has just written; ABUF held other
    values there before, so starting GEMM 2 while GEMM 1 drains reads stale words. Then the
    same with an unrelated GEMM between: the one before the previous GEMM is always written
    before a GEMM starts (no fence needed)."""
    bench, _, _ = await _bench(dut, 10)
    a, w, stale = _fixed(1, (4, 4)), _fixed(2, (4, 4)), np.full((4, 4), 77)
    loads = [
        Load(Buffer.ABUF, 0, 4),
        Load(Buffer.ABUF, 16, 4),
        Load(Buffer.WBUF, 0, 4, signal=True),
    ]
    data = [_a_beats(a), _a_beats(stale), _a_beats(w)]
    first = _gemm(k=4, n=4, out_base=16, out_col=1, wait=True)
    read_back = _gemm(k=4, n=4, a_base=16, dst_stream=True, requant=Requant(97, 7, INT8))
    # The data arrive late, so every GEMM is queued when the first one's token comes (the
    # dispatcher's checks do not space them out).
    fenced = [*loads, first, dataclasses.replace(read_back, fence=True), End()]
    await bench.run_checked(bench.case("fence", fenced, data), holds={0: HOLD})
    between = _gemm(k=1, n=1, a_base=1, dst_stream=True)
    two_back = [*loads, first, between, read_back, End()]
    await bench.run_checked(bench.case("two GEMMs back", two_back, data), holds={0: HOLD})


@cocotb.test()
async def store_waits_for_every_result(dut):
    """A STORE right after a GEMM that writes the words it sends (ABUF held other values)."""
    bench, _, _ = await _bench(dut, 11)
    a, w, stale = _fixed(3, (4, 4)), _fixed(4, (8, 4)), np.full((8, 4), -3)
    program = [
        Load(Buffer.ABUF, 0, 4), Load(Buffer.ABUF, 32, 8), Load(Buffer.WBUF, 0, 8, signal=True),
        _gemm(k=4, n=8, b_tile=4, out_base=32, out_col=1, wait=True),
        Store(32, 8), End(),
    ]  # fmt: skip
    case = bench.case("store after gemm", program, [_a_beats(x) for x in (a, stale, w)])
    await bench.run_checked(case, holds={0: HOLD})  # GEMM and STORE queued before the data


@cocotb.test()
async def wait_holds_a_gemm_until_its_load(dut):
    """A GEMM that waits for a LOAD whose data arrive late, after a setup run left other
    values in the same words."""
    bench, _, _ = await _bench(dut, 12)
    old_a, old_w = _fixed(5, (4, 4)), _fixed(6, (4, 4))
    setup = [Load(Buffer.ABUF, 0, 4), Load(Buffer.WBUF, 0, 4), End()]
    await bench.run_checked(bench.case("setup", setup, [_a_beats(old_a), _a_beats(old_w)]))
    a, w = _fixed(7, (4, 4)), _fixed(8, (4, 4))
    program = [
        Load(Buffer.ABUF, 0, 4), Load(Buffer.WBUF, 0, 4, signal=True),
        _gemm(k=4, n=4, dst_stream=True, wait=True), End(),
    ]  # fmt: skip
    await bench.run_checked(
        bench.case("late load", program, [_a_beats(a), _a_beats(w)]), holds={0: HOLD}
    )


@cocotb.test()
async def wait_holds_a_load_until_its_gemm(dut):
    """A LOAD that overwrites the B-words of a GEMM (16 column tiles) waits for the GEMM's
    token; the GEMM is stalled by a full output stream (``ready`` low) meanwhile."""
    bench, _, _ = await _bench(dut, 13)
    a, w1, w2 = _fixed(9, (4, 4)), _fixed(10, (64, 4)), _fixed(11, (64, 4))
    program = [
        Load(Buffer.ABUF, 0, 4), Load(Buffer.WBUF, 0, 64, signal=True),
        _gemm(k=4, n=64, b_tile=4, dst_stream=True, wait=True, signal=True),
        Load(Buffer.WBUF, 0, 64, wait=True, signal=True),
        _gemm(k=4, n=64, b_tile=4, dst_stream=True, wait=True, requant=Requant(77, 8, INT8)),
        End(),
    ]  # fmt: skip
    case = bench.case("load waits for gemm", program, [_a_beats(x) for x in (a, w1, w2)])
    await bench.run_checked(case, ready_hold=HOLD)


def _two_token_gemms(*, words: int, k: int) -> list:
    """LOAD A and B (``words`` each; B signals), a GEMM (``k`` beats) waiting for that token,
    a LOAD of ``words`` B-words at 8 (signals), and a GEMM waiting for it that reads them."""
    return [
        Load(Buffer.ABUF, 0, words), Load(Buffer.WBUF, 0, words, signal=True),
        _gemm(k=k, n=4, dst_stream=True, wait=True),
        Load(Buffer.WBUF, 8, words, signal=True),
        _gemm(k=k, n=4, b_base=8, dst_stream=True, wait=True, requant=Requant(300, 10, INT8)),
        End(),
    ]  # fmt: skip


@cocotb.test()
async def each_token_is_consumed_once(dut):
    """Two LOAD -> GEMM token pairs; the second LOAD's data arrive late, so a GEMM that
    reuses the first token reads the stale words a setup run left (also when the second
    GEMM is chained in the cycle after the first took its token)."""
    bench, _, _ = await _bench(dut, 14)
    setup = [Load(Buffer.WBUF, 8, 4), End()]
    await bench.run_checked(bench.case("setup", setup, [_a_beats(np.full((4, 4), 55))]))
    a, w1, w2 = _fixed(12, (4, 4)), _fixed(13, (4, 4)), _fixed(14, (4, 4))
    program = _two_token_gemms(words=4, k=4)
    data = [_a_beats(x) for x in (a, w1, w2)]
    await bench.run_checked(bench.case("two tokens", program, data), holds={4: HOLD})
    # Back to back: two one-beat GEMMs, both queued before the first token comes (its LOAD's
    # beat is held), so the second is chained in the cycle after the first took the only
    # token; its own token (and the word it reads) comes a hold later.
    a1, w7, w8 = _fixed(16, (2, 4)), _fixed(17, (2, 4)), _fixed(18, (2, 4))
    chained = _two_token_gemms(words=2, k=1)
    data = [_a_beats(x) for x in (a1, w7, w8)]
    await bench.run_checked(bench.case("chained waits", chained, data), holds={1: HOLD, 2: HOLD})
    # The other direction: two GEMM -> LOAD tokens; the second LOAD overwrites the B-words
    # of the second GEMM (16 column tiles), which the full output stream stalls.
    w4, w5, w6 = _fixed(15, (64, 4)), _fixed(25, (4, 4)), _fixed(26, (64, 4))
    back = [
        Load(Buffer.ABUF, 0, 4), Load(Buffer.WBUF, 0, 64, signal=True),
        _gemm(k=4, n=4, b_base=0, dst_stream=True, wait=True, signal=True),
        _gemm(k=4, n=64, b_tile=4, dst_stream=True, signal=True, requant=Requant(5, 2, INT8)),
        Load(Buffer.WBUF, 100, 4, wait=True), Load(Buffer.WBUF, 0, 64, wait=True, signal=True),
        _gemm(k=4, n=64, b_tile=4, dst_stream=True, wait=True, requant=Requant(9, 3, INT8)),
        End(),
    ]  # fmt: skip
    data = [_a_beats(x) for x in (a, w4, w5, w6)]
    await bench.run_checked(bench.case("tokens back", back, data), ready_hold=HOLD)


# -- addressing and arithmetic ---------------------------------------------------------------


@cocotb.test()
async def every_address_stride_and_bound(dut):
    """One GEMM with every stride distinct and non-trivial (2 x 2 row tiles, three column
    tiles, the last one partial, ``a_k`` = ``b_k`` = ``out_col`` = 2, bias rows), results to
    ABUF then STOREd; a second one with B from ABUF to the stream at int4; then LOADs, GEMMs
    (one reading A up to the last ABUF word) and a STORE that touch the last word of every
    buffer (bounds are exact)."""
    bench, config, _ = await _bench(dut, 15)
    program, data = clear_program(config)  # the STORE sends the gaps between strided results
    await bench.run_checked(Case("clear", program, data))
    a, w, bias = _fixed(16, (64, 4)), _fixed(17, (24, 4)), _fixed(18, 24, -4000, 4000)
    b2 = _fixed(19, (24, 4))
    strided = _gemm(
        m_outer=2, m_inner=2, k=3, n=9, a_base=5, a_outer=40, a_inner=13, a_k=2, b_base=3,
        b_tile=7, b_k=2, out_base=100, out_outer=50, out_inner=20, out_col=2, bias_en=True,
        bias_base=2, bias_outer=11, requant=Requant(1234, 12, INT8), wait=True,
    )  # fmt: skip
    from_abuf = dataclasses.replace(
        strided, b_from_abuf=True, b_base=203, bias_en=False, dst_stream=True, out_base=0,
        out_outer=0, out_inner=0, out_col=0, requant=Requant(999, 13, INT4), wait=False,
    )  # fmt: skip
    program = [
        Load(Buffer.ABUF, 0, 64), Load(Buffer.ABUF, 200, 24), Load(Buffer.BIAS, 0, 24),
        Load(Buffer.WBUF, 0, 24, signal=True), strided, from_abuf, Store(100, 87), End(),
    ]  # fmt: skip
    data = [_a_beats(a), _a_beats(b2), pack_bias(bias), _a_beats(w)]
    await bench.run_checked(bench.case("strides", program, data))
    top_a, top_w, top_b = (
        config.act_buffer_depth,
        config.weight_buffer_depth,
        config.bias_buffer_depth,
    )
    edge = [
        Load(Buffer.ABUF, top_a - 8, 4), Load(Buffer.WBUF, top_w - 4, 4),
        Load(Buffer.BIAS, top_b - 4, 4, signal=True),
        _gemm(k=4, n=4, a_base=top_a - 8, b_base=top_w - 4, bias_en=True, bias_base=top_b - 4,
              out_base=top_a - 4, out_col=1, wait=True),
        _gemm(k=4, n=4, a_base=top_a - 4, b_base=top_w - 4, dst_stream=True, fence=True),
        Store(top_a - 1, 1), End(),
    ]  # fmt: skip
    data = [_a_beats(_fixed(20, (4, 4))), _a_beats(_fixed(21, (4, 4))), pack_bias([7, -7, 1, 0])]
    await bench.run_checked(bench.case("last words", edge, data))


@cocotb.test()
async def biases_stay_with_their_columns_under_a_stalled_output(dut):
    """A GEMM of 2 x 2 row tiles and three column tiles (the last one partial) with a distinct
    bias per column and outer row tile, 40 results to the stream, while the output's ``ready``
    is held low for ``HOLD`` cycles: the requantizer fills, the drain stops with a column in
    each of its two stages, and each column's bias word, read as it enters the first stage,
    must stay with it into the second (timing step 15's register) although the drain's
    column index has moved on."""
    bench, _, _ = await _bench(dut, 23)
    a, w = _fixed(25, (32, 4), -8, 8), _fixed(26, (24, 4), -8, 8)
    # distinct and far apart, so a neighbour's bias changes the code (|acc| <= 512, >> 6)
    bias = np.array([300 * (c + 1) * (-1) ** c for c in range(20)])
    program = [
        Load(Buffer.ABUF, 0, 32), Load(Buffer.BIAS, 0, 20), Load(Buffer.WBUF, 0, 24, signal=True),
        _gemm(m_outer=2, m_inner=2, a_outer=16, a_inner=8, k=8, n=10, b_tile=8, bias_en=True,
              bias_outer=10, dst_stream=True, wait=True, requant=Requant(1, 6, INT8)),
        End(),
    ]  # fmt: skip
    data = [_a_beats(a), pack_bias(bias), _a_beats(w)]
    await bench.run_checked(bench.case("biases under a stall", program, data), ready_hold=HOLD)


@cocotb.test()
async def end_waits_for_the_last_output_beat(dut):
    """A GEMM to the stream and END, eight runs under output back-pressure 0.7: END may
    retire only once the engine's output register has sent its beat (timing step 17's
    registered ``drained`` test keeps the output term), so each run gets exactly its own
    beats and none is left over for the next. The last beat waits at least one cycle in
    7 of 10 runs, so a design that ignores the output register passes all eight with
    probability 0.3 ** 8 (below 1e-4) on any seed."""
    bench, _, _ = await _bench(dut, 24)
    a, w = _fixed(27, (4, 4)), _fixed(28, (1, 4))
    program = [
        Load(Buffer.ABUF, 0, 4), Load(Buffer.WBUF, 0, 1, signal=True),
        _gemm(k=1, n=4, dst_stream=True, wait=True), End(),
    ]  # fmt: skip
    case = bench.case("end after a waiting beat", program, [_a_beats(a), _a_beats(w)])
    for _ in range(8):
        await bench.run_checked(case, backpressure=0.7)


@cocotb.test()
async def a_run_takes_only_its_own_beats(dut):
    """Two runs' streams sent back to back as one transfer: the first run takes exactly its
    program and its LOADs' beats (the last LOAD is one beat, straight behind the one
    before), and the second run's program waits at the port until the second start. Both
    outputs against the reference. A design that takes one beat more than the queued LOADs
    owe (the input stage still open the cycle after the last owed beat) swallows the
    second program's first beat on any seed."""
    bench, config, _ = await _bench(dut, 29)
    a, w = _fixed(29, (4, 4)), _fixed(30, (1, 4))
    first = [
        Load(Buffer.ABUF, 0, 4), Load(Buffer.WBUF, 0, 1, signal=True),
        _gemm(k=1, n=4, dst_stream=True, wait=True), End(),
    ]  # fmt: skip
    second = [_gemm(k=1, n=4, dst_stream=True, requant=Requant(3, 2, INT8)), End()]
    streams = [stream_of(first, np.concatenate([_a_beats(a), _a_beats(w)])), stream_of(second, [])]
    for program in (first, second):
        check_program(program, config)
    payloads = [{"data": b, "last": int(i == len(s) - 1)} for s in streams for i, b in enumerate(s)]
    source = StreamSource(bench.harness, "inp", STREAM_BEAT, rng=random.Random(29))
    sink = StreamSink(bench.harness, "out", STREAM_BEAT, rng=random.Random(30))
    sink.start()
    sending = cocotb.start_soon(source.send(payloads))
    machine, want, taken = bench.machine.copy(), [], 0
    for name, program, stream in zip(("first", "second"), (first, second), streams, strict=True):
        dut.program_length.value = len(program)
        await bench.pulse("start")
        how, _ = await bench.wait_end(20_000)
        assert how == "done", f"{name} run: error {int(dut.error_code.value)}"
        await bench.harness.cycles(16)  # the next run's beats stay offered meanwhile
        taken += len(stream)
        assert len(source.sent) == taken, (
            f"after the {name} run the engine took {len(source.sent)} beats, want {taken}"
        )
        want += [int(b) for b in execute_stream(np.array(stream, np.uint64), len(program),
                                                config, machine).output]  # fmt: skip
    await bench.harness.join(sending, 50, "the input stream of both runs")
    assert [p["data"] for _, p in sink.received] == want
    bench.machine = machine


@cocotb.test()
async def requantizer_rounds_ties_half_up(dut):
    """Accumulators that sit exactly half-way between two codes (positive and negative) at
    shifts 1, 2 and 5, and values that saturate, through GEMMs with k = 1."""
    bench, _, _ = await _bench(dut, 16)
    a = np.array([[1, -1, 3, -5], [7, -7, 2, -2], [5, 9, -9, -3], [11, -11, 13, -13]])
    w = np.array([[1, -1, 3, -3]])
    program = [Load(Buffer.ABUF, 0, 4), Load(Buffer.WBUF, 0, 1, signal=True)]
    ties = 0
    for index, (mult, shift) in enumerate([(1, 1), (2, 2), (4, 3), (16, 5), (1, 0)]):
        word = index % 4
        program.append(_gemm(k=1, n=4, a_base=word, dst_stream=True, wait=index == 0,
                             requant=Requant(mult, shift, INT8)))  # fmt: skip
        acc = a[word][:, None] * w[0][None, :]  # (lane, column) accumulators of this GEMM
        if shift:
            ties += int(((acc * mult) % (1 << shift) == 1 << (shift - 1)).sum())
    program.append(_gemm(k=1, n=4, dst_stream=True, requant=Requant(65535, 0, INT4)))
    program.append(End())
    assert ties >= 40, f"the data must hold ties to test the rounding, found {ties}"
    await bench.run_checked(bench.case("ties", program, [_a_beats(a), _a_beats(w)]))


@cocotb.test()
async def loads_share_abuf_with_results(dut):
    """A long LOAD into ABUF streams in while a GEMM writes its results to ABUF (results
    have the write port first); a SYNC, then both regions are STOREd."""
    bench, _, _ = await _bench(dut, 17)
    a, w, big = _fixed(22, (4, 4)), _fixed(23, (32, 4)), _fixed(24, (128, 4))
    program = [
        Load(Buffer.ABUF, 0, 4), Load(Buffer.WBUF, 0, 32, signal=True),
        _gemm(k=2, n=64, b_tile=2, out_base=100, out_col=1, wait=True),
        Load(Buffer.ABUF, 300, 128), Sync(), Store(100, 64), Store(300, 128), End(),
    ]  # fmt: skip
    await bench.run_checked(bench.case("abuf sharing", program, [_a_beats(x) for x in (a, w, big)]))


# -- token overflow (error 4) ---------------------------------------------------------------


async def _expect_code(bench: DirectedBench, program, data, code: int, pc: int) -> None:
    """Run to an error; its code and index must be ``code`` and ``pc``."""
    _, _, task, _, _ = await bench.launch(program, data)
    how, _ = await bench.wait_end(40000)
    assert how == "error", f"expected error {code}, got {how}"
    await RisingEdge(bench.harness.clk)
    await ReadOnly()
    got = (int(bench.dut.error_code.value), int(bench.dut.error_pc.value))
    assert got == (code, pc), f"error (code, pc) {got}, want {(code, pc)}"
    await RisingEdge(bench.harness.clk)
    task.cancel()
    bench.dut.inp__valid.value = 0
    bench.sink.stop()
    await bench.harness.cycles(20)
    bench.machine = type(bench.machine).empty(bench.config)


@cocotb.test()
async def token_overflow_is_error_4(dut):
    """255 outstanding tokens are fine; the instruction that would leave a 256th outstanding
    stops the run with error 4 at its index -- for LOAD -> execute and execute -> LOAD."""
    bench, config, _ = await _bench(dut, 18)
    assert config.instruction_depth > TOKEN_LIMIT + 1, "needs room for 256 signalling LOADs"
    word = _a_beats(np.arange(4))

    def loads(n):
        program = [Load(Buffer.ABUF, i % 8, 1, signal=True) for i in range(n)]
        data = np.concatenate([word] * n) if n else np.empty(0, np.uint64)
        return [*program, End()], data

    program, data = loads(TOKEN_LIMIT)
    await bench.run_checked(bench.case("255 tokens", program, [data]))
    program, data = loads(TOKEN_LIMIT + 1)
    try:
        check_program(program, config)
        raise AssertionError("the spec must reject 256 outstanding tokens")
    except HazardError:
        pass
    await _expect_code(bench, program, data, TOKENS, TOKEN_LIMIT)
    stores = [Load(Buffer.ABUF, 0, 1)] + [Store(0, 1, signal=True) for _ in range(TOKEN_LIMIT + 1)]
    await _expect_code(bench, [*stores, End()], word, TOKENS, TOKEN_LIMIT + 1)
    ok = [Load(Buffer.ABUF, 0, 1, signal=True), Store(0, 1, wait=True), End()]
    await bench.run_checked(bench.case("after overflow", ok, [word]))


@cocotb.test()
async def no_head_starts_as_an_overflow_is_registered(dut):
    """The LOAD queued behind the overflowing one never starts: its word held back, the
    256th signalling LOAD waits until the LOAD behind it is the load queue's head; the load
    engine is free the cycle after that word, which is the cycle its overflow is registered
    and a cycle before the error is pending, so only the token-overflow term of the queue
    heads' gate keeps the head from starting (:mod:`ttaccel.spec.isa`, "Errors": no
    instruction at or after the error's index starts). That LOAD would write ABUF word 100,
    which a later run STOREs: it must still hold what was loaded before."""
    bench, config, _ = await _bench(dut, 30)
    assert config.instruction_depth > TOKEN_LIMIT + 2, "needs room for 257 LOADs and END"
    before, after = _fixed(31, (1, 4)), _fixed(32, (1, 4))
    keep = [Load(Buffer.ABUF, 100, 1), End()]
    await bench.run_checked(bench.case("word 100 kept", keep, [_a_beats(before)]))
    kept = bench.machine.copy()
    word = _a_beats(np.arange(4))
    program = [Load(Buffer.ABUF, i % 8, 1, signal=True) for i in range(TOKEN_LIMIT + 1)]
    program += [Load(Buffer.ABUF, 100, 1), End()]
    data = np.concatenate([word] * (TOKEN_LIMIT + 1) + [_a_beats(after)])
    bench.holds = {TOKEN_LIMIT: 40}  # the LOAD behind is queued before that last word comes
    try:
        await bench.expect_error(program, data, TOKENS, TOKEN_LIMIT)
    finally:
        bench.holds = {}
    bench.machine = kept  # only ABUF word 100 is read below; the error run did not write it
    await bench.run_checked(bench.case("word 100 still kept", [Store(100, 1), End()], []))


@cocotb.test()
async def no_instruction_after_the_error_starts(dut):
    """A queue head that reaches its engine as the run stops never starts when it is at or
    after the error's index (:mod:`ttaccel.spec.isa`, "Errors"), also when the engine is
    freed by the error itself in the cycle the error is applied.

    A LOAD's stray TLAST resets the load engine, which is then idle while the LOAD queued
    behind it is the queue's head; that LOAD (index 1, after the error's index 0) must not
    start and take the beats that follow the TLAST into WBUF. The run before stops with an
    error at index 3, so a head compared with a bound not yet updated (that earlier run's)
    would pass. Afterwards a GEMM reads the WBUF words loaded before both error runs."""
    bench, config, _ = await _bench(dut, 25)
    weights, a = _fixed(26, (2, 4)), _fixed(27, (2, 4))
    keep = [Load(Buffer.WBUF, 0, 2), End()]
    await bench.run_checked(bench.case("weights kept", keep, [_a_beats(weights)]))
    kept = bench.machine.copy()
    depth = config.act_buffer_depth
    late = [Load(Buffer.ABUF, 0, 2), Sync(), Sync(), Load(Buffer.ABUF, depth - 1, 2), End()]
    await bench.expect_error(late, _a_beats(_fixed(28, (2, 4))), ADDRESS, 3)
    long_load = Load(Buffer.ABUF, 0, 8)
    program = [long_load, Load(Buffer.WBUF, 0, 2), End()]
    stray = np.full(8 * config.a_word_bits // 64 + 4, 0x5A5A_5A5A_5A5A_5A5A, np.uint64)
    head = len(stream_of(program, []))
    bench.holds = {0: 40}  # both LOADs are queued before the TLAST beat comes
    try:
        await bench.expect_error(program, stray, TLAST, 0, last_at=head)
    finally:
        bench.holds = {}
    bench.machine = kept  # nothing at or after either error wrote WBUF
    gemm = _gemm(k=2, n=1, dst_stream=True, wait=True, requant=Requant(1, 8, INT8))
    use = [Load(Buffer.ABUF, 0, 2, signal=True), gemm, End()]
    await bench.run_checked(bench.case("weights still kept", use, [_a_beats(a)]))


# -- resident cores, prefetch, random programs ------------------------------------------------


def _tt_layer(rng: np.random.Generator, shape: TTShape, plan, *, bias: bool) -> QuantTTLinear:
    def requant(fmt=INT8):
        return Requant(int(rng.integers(1, 2**16)), int(rng.integers(8, 18)), fmt)

    return QuantTTLinear(
        cores=tuple(rng.integers(-128, 128, size=s).astype(np.int8) for s in shape.core_shapes),
        weight_format=INT8,
        plan=plan,
        merge_requants=tuple(tuple(requant() for _ in range(b - a - 1)) for a, b in plan),
        stage_requants=tuple(requant() for _ in plan),
        bias=rng.integers(-(2**16), 2**16, size=shape.out_features).astype(np.int32)
        if bias
        else None,
        input_scale=1.0,
        output_scale=1.0,
    )


def _run_case(compiled, layer, x, name, *, program=None) -> Case:
    return Case(
        name,
        list(compiled.run if program is None else program),
        compiled.input_stream(x),
        tt_linear_int(x, layer),
        compiled.decode_output,
    )


@cocotb.test()
async def setup_once_then_several_runs(dut):
    """A setup program loads a TT layer's cores and bias; three run programs then reuse them
    (different tokens each), each checked against tt_linear_int."""
    bench, config, cfg = await _bench(dut, 19)
    rng = np.random.default_rng(cfg["seed"] + 19)
    shape = TTShape((3, 5), (5, 3), (1, 4, 1))
    layer = _tt_layer(rng, shape, ((0, 1), (1, 2)), bias=True)
    tokens = 2 * config.rows + 1
    compiled = compile_tt_linear(layer, tokens, config)
    await bench.run_checked(Case("setup", list(compiled.setup), compiled.setup_stream))
    for run in range(3):
        x = rng.integers(-128, 128, size=(tokens, shape.in_features)).astype(np.int8)
        await bench.run_checked(
            _run_case(compiled, layer, x, f"run {run}"), backpressure=0.3 * run, idle=0.1 * run
        )


@cocotb.test()
async def prefetch_loads_the_next_layer_while_one_runs(dut):
    """Layer 1 runs with layer 2's constants prefetched (``with_prefetch``); layer 2 then runs
    without a setup program. Both outputs against tt_linear_int."""
    bench, config, cfg = await _bench(dut, 20)
    rng = np.random.default_rng(cfg["seed"] + 20)
    tokens = 3 * config.rows - 1
    one = _tt_layer(rng, TTShape((3, 5), (5, 3), (1, 3, 1)), ((0, 2),), bias=True)
    two = _tt_layer(rng, TTShape((5, 3), (3, 3), (1, 5, 1)), ((0, 1), (1, 2)), bias=True)
    first = compile_tt_linear(one, tokens, config)
    second = compile_tt_linear(
        two, tokens, config, weight_base=config.weight_buffer_depth // 2,
        bias_base=config.bias_buffer_depth // 2,
    )  # fmt: skip
    both = with_prefetch(first, second, max_beats=4)
    assert sum(isinstance(i, Load) for i in both.run) > sum(isinstance(i, Load) for i in first.run)
    await bench.run_checked(Case("setup 1", list(first.setup), first.setup_stream))
    x = rng.integers(-128, 128, size=(tokens, first.in_features)).astype(np.int8)
    await bench.run_checked(_run_case(both, one, x, "layer 1 + prefetch"), backpressure=0.2)
    y = rng.integers(-128, 128, size=(tokens, second.in_features)).astype(np.int8)
    await bench.run_checked(_run_case(second, two, y, "layer 2"), idle=0.2)


@cocotb.test()
async def random_legal_programs(dut):
    """``random_programs`` random legal programs (:mod:`ttaccel.sim.random_programs`: random
    strides, formats, tokens, fences, SYNCs, STOREs), buffers persisting from one to the next,
    each with random input idles and output back-pressure, against the reference executor."""
    bench, config, cfg = await _bench(dut, 21)
    rng = np.random.default_rng(cfg["seed"] + 21)
    program, data = clear_program(config)
    await bench.run_checked(Case("clear", program, data))
    for index in range(cfg["random_programs"]):
        program, data = random_program(rng, config, int(rng.integers(4, 24)))
        idle, bp = [(0.0, 0.0), (0.3, 0.0), (0.0, 0.5), (0.2, 0.3)][index % 4]
        kinds = [type(i).__name__ for i in program]
        name = f"random {index}: " + ", ".join(f"{kinds.count(k)} {k}" for k in sorted(set(kinds)))
        dut._log.info("%s (idle %.1f, back-pressure %.1f)", name, idle, bp)
        await bench.run_checked(Case(name, program, data), idle=idle, backpressure=bp)
