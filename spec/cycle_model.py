"""Analytic cycle model of a program on the output-stationary array.

The model follows the issue semantics of :mod:`.isa` with times attached, one clock domain,
streams at one 64-bit beat per cycle in each direction and no back-pressure from the DMA:

* Program load: the ``5 * len(program)`` instruction beats arrive first; nothing runs before.
* Dispatch: in program order into the load or execute queue (``queue_depth`` entries; a slot
  frees when its instruction starts), ``dispatch_gemm`` cycles per GEMM (decode and bounds
  check) and ``dispatch`` per other instruction. ``SYNC``/``END`` dispatch
  ``barrier_latency`` after everything before them has completed.
* Load engine: a ``LOAD`` starts when dispatched, when the previous LOAD is done and (with
  ``wait``) when its token has arrived; it takes ``load_setup`` + the larger of its beats and
  its words (one buffer write per cycle); its ``signal`` token is available when it ends.
* Execute engine, per GEMM tile (``k`` steps -- ``k * N / M`` array beats for a sparse GEMM
  on a ``sparse_nm = (N, M)`` build --, ``D`` drain cycles): the array computes tile ``i``
  in its accumulators while earlier tiles drain from the hold slots (``array_slots`` per
  array row, ``hw/systolic.py``); a tile's last beat enters only while a slot is free, and a
  slot frees once its tile's last column has left the array::

      compute_end(i) = max(compute_end(i - 1) + k, slot_free(i - slots))
      drain_start(i) = max(compute_end(i), drain_start(i - 1) + max(D(i - 1), cols))
      slot_free(i) = drain_start(i) + cols + pe_columns + slot_turnaround
                     + max(0, D(i) - cols - stream_slack)   # Timing.stream_slack

  ``D`` is the valid columns of the tile (one A-word per cycle through the requantizers), or,
  for results sent to the output stream, the larger of that and the tile's beats; the next
  tile's drain starts ``max(D, cols)`` after this one's (the array drains the invalid columns
  of a last column tile too, one per cycle), and a streamed drain also waits for the previous
  tile's beats to be sent. ``slot_free``: the array sends a tile's ``cols`` columns, the
  first ``pe_columns`` (the skew) plus a fixed pipeline after the drain slot, and a drain
  that the output stream slows (``D > cols``) sends its last columns later, less the
  ``stream_slack`` beats that wait below the array. So a steady run of tiles costs
  ``max(k, D)`` each. Results are written ``latency`` cycles after their drain slot (the skew of the
  array's PE columns, one per ``macs_per_dsp`` tokens, plus the MAC and requantizer
  pipelines; the output columns' skew is the drain's one column per cycle); a GEMM completes
  (``signal``) when its
  last result is written. A GEMM's first tile also waits ``gemm_issue`` cycles after the
  previous GEMM's last compute step (none when it is not fenced, follows a GEMM and was ready
  before that GEMM's last step), for its token (``wait``), and with ``fence`` for every
  earlier result to be written. A ``STORE`` starts when every earlier result is written and
  takes its beats on the output stream.

The run ends when ``END`` dispatches. Utilization is ``useful MACs / (cycles * lanes)``, with
useful MACs those of the layer itself (no padded tokens or columns).

Not modelled: ABUF's write port serves GEMM results before LOAD words (``hw/engine.py``), so a
LOAD into ABUF that overlaps a run of result writes loses input cycles once the input stage
and the gearbox are full (25 cycles on each of the first two token blocks of seed 000's layers
on the 12 x 32 default, 13-14 on 16 x 16): the model is that much optimistic there (0.11 % of
the attention layer at 12 x 32).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from .accel_config import AccelConfig
from .compiler import CompiledLayer
from .isa import (
    BEATS_PER_INSTRUCTION,
    STREAM_BITS,
    Gemm,
    Instruction,
    Load,
    Store,
    check_program,
    gemm_beats,
    load_beats,
    result_beats,
)

__all__ = ["CycleReport", "Timing", "array_slots", "estimate_layer", "pe_columns", "simulate"]


@dataclass(frozen=True)
class Timing:
    """Latencies of the implementation, in cycles (defaults: a plausible RTL; calibrate
    against simulation). ``mac_latency``: from a tile's drain slot to its first result at the
    requantizer besides the PE columns' skew: the buffers' read registers (each word taken
    straight from the block RAM) and operand FIFO, the PE pipeline (DSP48E1 operand, product
    and accumulator registers), the hold row and the drain's three stages (the second holds
    the bias word read in the first in the block RAM's output register, the third in a fabric
    register): 12 cycles (11 before issue 9's timing step 45, the fabric register; 9 before
    issue 9's timing step 15, which
    Verilator runs of 3 x 5, 4 x 4, 4 x 8, 8 x 4 and 8 x 8 builds, int8 packed and not,
    ternary and binary, matched exactly, ``sim/measure_xtc.py``; 10 before step 27, the read
    registers; checked to the cycle on ``pytest sim/``'s builds, e.g. ``sim/test_xtc.py``,
    which fails with 10);
    ``requant_latency``: the requantizer pipeline to the ABUF write or the stream (7: 5
    before issue 9's timing step 31 registered its range tests and split its shifter);
    ``output_latency``: the packer's input and placing registers and the engine's output
    register, between the last output word reaching the packer and the run's end (3: 2
    before issue 9's timing step 32 gave the packer its placing register); ``store_latency``: the
    register between a STORE's block-RAM reads and the packer;
    ``gemm_issue``: gap between the last compute step of one GEMM and the first of the next
    when the next one cannot follow directly (fence, or not ready in time);
    ``load_setup``: fixed cycles of a LOAD besides its beats; ``dispatch`` / ``dispatch_gemm``:
    cycles to dispatch one instruction / one GEMM; ``barrier_latency``: from the completion of
    everything before a ``SYNC`` / ``END`` (its last result written, plus ``output_latency``
    after stream output) to its retiring, when the dispatcher had it decoded and waiting
    (at least ``dispatch`` after the previous dispatch); ``assembler_latency`` /
    ``assembler_bypass_latency``: on a ``sparse_nm`` build, the cycles the group assembler
    (``hw/sparse.py``) adds to a sparse / a dense GEMM's beats (a sparse tile takes
    ``k * N / M`` beats, :func:`~ttaccel.spec.isa.gemm_beats`); ``slot_turnaround``: from a
    tile's first drain slot, besides its ``cols`` columns and the PE columns' skew, to the
    first cycle in which a tile ``array_slots`` later may finish (its hold slot is free);
    ``slack_words`` / ``slack_offset``: a streamed drain runs ahead of the output
    stream by ``slack_words`` results (the requantizer's pipeline and FIFO: its ``capacity``
    less its ``lead`` stages, ``hw/requant.py``) less
    ``slack_offset`` beats (:meth:`stream_slack`; the offset fitted to Verilator traces of
    seed 000's layers on the 12 x 32 default and on 16 x 16). The defaults follow ``hw/``
    (dispatcher, load engine, requantizer) as documented there."""

    mac_latency: int = 12
    requant_latency: int = 7
    output_latency: int = 3
    store_latency: int = 1
    gemm_issue: int = 1
    load_setup: int = 2
    dispatch: int = 5
    dispatch_gemm: int = 17
    assembler_latency: int = 2
    assembler_bypass_latency: int = 1
    barrier_latency: int = 2
    slot_turnaround: int = 4
    slack_words: int = 9
    slack_offset: int = 5

    def latency(self, config: AccelConfig) -> int:
        """Cycles from a result's drain slot to its write: the skew of the array's PE columns
        (:func:`pe_columns`) + MAC + requantizer."""
        return pe_columns(config) + self.mac_latency + self.requant_latency

    def stream_slack(self, config: AccelConfig) -> int:
        """Beats of a streamed tile its drain may send ahead of the output stream:
        ``slack_words`` A-words of ``config.a_word_bits`` in beats, less ``slack_offset``
        (8 on the 12 x 32 default, 13 on 16 x 16). Only drains slower than one column per
        cycle (A-words wider than a beat) use it."""
        return self.slack_words * config.a_word_bits // STREAM_BITS - self.slack_offset


def pe_columns(config: AccelConfig) -> int:
    """PE columns of the engine's (transposed) array: ``rows / 2`` where a DSP48E1 multiplies
    two tokens by one weight (``config.macs_per_dsp == 2``: int8, ``dsp_packing``, even
    ``rows``), else ``rows`` (one token per PE: int8 unpacked, int4, int2, ternary, binary).
    Each column adds one cycle of skew between a tile's last beat and its results."""
    return config.rows // 2 if config.macs_per_dsp == 2 else config.rows


def array_slots(config: AccelConfig) -> int:
    """Hold slots per row of the engine's array (``SystolicArray.hold_slots``):
    ``max(2, 1 + ceil((pe_columns + 4) / cols))``, the array's rows being the GEMM's
    ``cols``, 3 the PE pipeline and 1 the registered slot release. Enough that tiles of
    ``k >= cols`` never wait for one."""
    return max(2, 1 + -(-(pe_columns(config) + 4) // config.cols))


@dataclass(frozen=True)
class CycleReport:
    """What the model predicts for one run (the first three are the hardware's counters:
    ``BUSY_CYCLES``, ``MACS_ISSUED``, ``STALL_CYCLES``)."""

    cycles: int
    macs_issued: int
    stall_cycles: int
    compute_cycles: int
    tiles: int
    input_beats: int
    output_beats: int
    lanes: int
    clock_mhz: float

    def utilization(self, useful_macs: int) -> float:
        """``useful_macs / (cycles * lanes)``."""
        return useful_macs / (self.cycles * self.lanes)

    @property
    def microseconds(self) -> float:
        return self.cycles / self.clock_mhz


def simulate(
    program: Sequence[Instruction], config: AccelConfig, timing: Timing | None = None
) -> CycleReport:
    """Predict the cycles of ``program`` on ``config`` (see the module docstring).

    The program is checked first (:func:`~ttaccel.spec.isa.check_program`), so it does not
    deadlock.
    """
    timing = timing or Timing()
    program = list(program)
    check_program(program, config)
    latency = timing.latency(config)
    pe_cols = pe_columns(config)
    slack = timing.stream_slack(config)
    n = len(program)
    engine_of = [
        0 if isinstance(i, Load) else 1 if isinstance(i, Gemm | Store) else None for i in program
    ]
    position = {}  # index -> position in its engine's list
    lists: tuple[list[int], list[int]] = ([], [])
    for i, e in enumerate(engine_of):
        if e is not None:
            position[i] = len(lists[e])
            lists[e].append(i)

    start: dict[int, int] = {}
    done: dict[int, int] = {}
    dispatched = 0
    last_dispatch = BEATS_PER_INSTRUCTION * n  # the program arrives first
    queues: tuple[deque[int], deque[int]] = (deque(), deque())
    tokens: tuple[deque[int], deque[int]] = (deque(), deque())  # signal times, per producer
    load_free = BEATS_PER_INSTRUCTION * n  # the input stream is busy with the program until then
    barrier = 0
    all_done = 0
    # execute-engine state
    compute_free = 0
    drain_free = 0
    slots = array_slots(config)
    slot_free: deque[int] = deque([0] * slots)  # when each of the last `slots` tiles' slot frees
    written = 0  # time every issued result is written
    out_free = 0
    last_exec_gemm = False  # the execute engine's previous instruction was a GEMM
    compute_cycles = tiles = macs = in_beats = out_beats = 0
    dispatch_time: dict[int, int] = {}

    while True:
        progress = False
        while dispatched < n:
            i = dispatched
            e = engine_of[i]
            cost = timing.dispatch_gemm if isinstance(program[i], Gemm) else timing.dispatch
            t = last_dispatch  # the dispatcher is free; the instruction is queued ``cost`` later
            if e is None:
                if queues[0] or queues[1]:
                    break
                # decoded while the engines run; retires once everything before is done
                t = max(t + cost, all_done + timing.barrier_latency)
                barrier = t
            else:
                if len(queues[e]) >= config.queue_depth:
                    break
                pos = position[i]
                if pos >= config.queue_depth:
                    t = max(t, start[lists[e][pos - config.queue_depth]])
                queues[e].append(i)
                t += cost
            dispatch_time[i] = last_dispatch = t
            dispatched += 1
            progress = True
        for e in (0, 1):
            if not queues[e]:
                continue
            i = queues[e][0]
            instr = program[i]
            ready = max(dispatch_time[i], barrier)
            if instr.wait:
                if not tokens[1 - e]:
                    continue
                ready = max(ready, tokens[1 - e].popleft())
            if isinstance(instr, Load):
                beats = load_beats(instr, config)
                s = max(ready, load_free)
                end = s + timing.load_setup + max(beats, instr.count)
                load_free = end
                in_beats += beats
            elif isinstance(instr, Gemm):
                # Without fence, a GEMM already waiting when the previous GEMM issues its last
                # beat follows it directly; otherwise it starts ``gemm_issue`` later.
                chained = not instr.fence and last_exec_gemm and ready < compute_free
                s = max(ready, compute_free + (0 if chained else timing.gemm_issue))
                if instr.fence:
                    s = max(s, written)
                first = True
                bits = 0
                lanes_out = config.rows
                beats_per_tile = gemm_beats(instr, config)
                for _ in range(instr.row_tiles):
                    for t in range(instr.col_tiles(config.cols)):
                        valid = min(config.cols, instr.n - t * config.cols)
                        drain = valid
                        if instr.dst_stream:
                            # results are packed back to back; the GEMM's last beat is padded
                            bits_before = bits
                            bits += valid * lanes_out * instr.requant.out_format.bits
                            beats = -(-bits // STREAM_BITS) - -(-bits_before // STREAM_BITS)
                            drain = max(drain, beats)
                            out_beats += beats
                        c0 = s if first else compute_free
                        if first:
                            start_gemm = c0
                            first = False
                        c1 = max(c0 + beats_per_tile, slot_free.popleft())
                        d0 = max(c1, drain_free, out_free if instr.dst_stream else 0)
                        d1 = last_result = d0 + drain
                        # the array drains every column of the tile, the invalid ones too
                        drain_free = d0 + max(drain, config.cols)
                        slot_free.append(
                            d0
                            + config.cols
                            + pe_cols
                            + timing.slot_turnaround
                            + max(0, drain - config.cols - slack)
                        )
                        if instr.dst_stream:
                            out_free = d1
                        compute_free = c1
                        compute_cycles += beats_per_tile
                        macs += beats_per_tile * config.rows * valid
                        tiles += 1
                s = start_gemm
                end = last_result + latency
                if config.sparse_nm is not None:
                    end += (
                        timing.assembler_latency
                        if instr.sparse
                        else (timing.assembler_bypass_latency)
                    )
                written = end
                last_exec_gemm = True
            else:  # STORE
                beats = result_beats(instr.count, config.rows, instr.fmt)
                s = max(ready, written, out_free, compute_free)
                end = s + beats + timing.store_latency
                out_free = compute_free = end
                out_beats += beats
                last_exec_gemm = False
            start[i] = s
            done[i] = end
            sends = isinstance(instr, Store) or (isinstance(instr, Gemm) and instr.dst_stream)
            all_done = max(all_done, end + (timing.output_latency if sends else 0))
            if instr.signal:
                tokens[e].append(end)
            queues[e].popleft()
            progress = True
        if dispatched == n and not queues[0] and not queues[1]:
            break
        if not progress:  # pragma: no cover - check_program rules deadlocks out
            raise RuntimeError("cycle model made no progress")
    cycles = max(barrier, all_done)
    return CycleReport(
        cycles=cycles,
        macs_issued=macs,
        stall_cycles=cycles - compute_cycles,
        compute_cycles=compute_cycles,
        tiles=tiles,
        input_beats=in_beats + BEATS_PER_INSTRUCTION * n,
        output_beats=out_beats,
        lanes=config.lanes,
        clock_mhz=config.clock_mhz,
    )


def estimate_layer(
    layer: CompiledLayer, *, cold: bool = False, timing: Timing | None = None
) -> tuple[CycleReport, float]:
    """Cycles and utilization of one batch of a compiled layer: the run program with the
    constants resident, or with ``cold`` the setup and run programs as one."""
    program = layer.cold() if cold else layer.run
    report = simulate(program, layer.config, timing)
    return report, report.utilization(layer.useful_macs)
