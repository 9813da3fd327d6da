# amaranth: UnusedElaboratable=no
"""cocotb testbench of :class:`ttaccel.hw.systolic.SystolicArray` against ``spec.gemm_int``.

Configuration (``TTACCEL_TB``): ``rows``, ``cols``, ``weight_format``, ``packed``, ``k_max``,
``seed``, ``tiles``. The scoreboard is fed from the source's record of accepted beats: it cuts
them into tiles at ``last`` and computes every tile's ``A @ B`` with ``gemm_int``.
"""

from __future__ import annotations

import random

import cocotb
import numpy as np
from cocotb.triggers import ReadOnly, RisingEdge

from ttaccel.hw.pe import mac_provider
from ttaccel.hw.systolic import SystolicArray
from ttaccel.sim.layouts import unpack
from ttaccel.sim.stimulus import encode_weight, random_activations, random_codes
from ttaccel.sim.tb import Harness, StreamSink, StreamSource, tb_config
from ttaccel.spec.formats import format_by_name
from ttaccel.spec.golden import gemm_int


def make_dut():
    cfg = tb_config()
    fmt = format_by_name(cfg["weight_format"])
    array = SystolicArray(
        rows=cfg["rows"],
        cols=cfg["cols"],
        macp=mac_provider(fmt, packed=cfg["packed"]),
        k_max=cfg["k_max"],
    )
    return cfg, fmt, array


def tile_beats(fmt, a: np.ndarray, b: np.ndarray) -> list[dict]:
    """Beats of one tile: A (rows, K) column by column, B (K, cols) row by row."""
    k = a.shape[1]
    return [
        {
            "a": [int(x) for x in a[:, n]],
            "w": [encode_weight(fmt, x) for x in b[n]],
            "last": int(n == k - 1),
        }
        for n in range(k)
    ]


def decode_beats(fmt, beats) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """Accepted ``(cycle, beat)`` records back to tiles ``(cycle of last, A, B)``."""
    tiles, a_cols, b_rows = [], [], []
    for cycle, beat in beats:
        a_cols.append(beat["a"])
        b_rows.append([(1 if x else -1) if fmt.name == "binary" else x for x in beat["w"]])
        if beat["last"]:
            tiles.append((cycle, np.array(a_cols).T, np.array(b_rows)))
            a_cols, b_rows = [], []
    assert not a_cols, "the stimulus ended inside a tile"
    return tiles


async def check_drained_acc(dut, array, mismatches: list) -> None:
    """Forever: in the cycle after every transfer on ``o``, ``drained_acc`` must equal the
    transferred ``acc``; appends ``(cycle, got, expected)`` to ``mismatches`` otherwise."""
    row = array.output_layout["acc"].shape
    expected = None
    cycle = 0
    while True:
        await RisingEdge(dut.clk)
        await ReadOnly()
        cycle += 1
        if expected is not None:
            got = unpack(row, int(dut.drained_acc.value))
            if list(got) != expected:
                mismatches.append((cycle, list(got), expected))
        moved = int(dut.o__valid.value) and int(dut.o__ready.value)
        payload = unpack(array.output_layout, int(dut.o__payload.value))
        expected = payload["acc"] if moved else None


async def run_tiles(dut, tiles, *, idle, backpressure, seed, exact_latency=False):
    """Send ``tiles`` [(A, B)], check every output row against ``gemm_int``, the stream's
    ``last`` flags, the latency (exact or a lower bound), ``drained_acc`` the cycle after
    every row and that nothing else comes out."""
    _, fmt, array = make_dut()
    rng = random.Random(seed)
    harness = Harness(dut)
    source = StreamSource(harness, "i", array.input_layout, idle=idle, rng=rng)
    sink = StreamSink(
        harness, "o", array.output_layout, backpressure=backpressure, rng=random.Random(seed + 7)
    )
    await harness.start()
    sink.start()
    mismatches = []
    cocotb.start_soon(check_drained_acc(dut, array, mismatches))
    beats = [beat for a, b in tiles for beat in tile_beats(fmt, a, b)]
    await source.send(beats)
    rows = array.rows
    await sink.wait_for(rows * len(tiles), timeout_cycles=12 * (len(beats) + rows * len(tiles)))
    await sink.assert_quiet(array.latency + rows + 8)

    assert not mismatches, f"drained_acc is not the row moved a cycle before: {mismatches[:3]}"
    check_rows(fmt, array, source, sink, len(tiles), exact_latency=exact_latency)
    return source, sink, array


def check_rows(fmt, array, source, sink, count, *, exact_latency=False):
    """The ``count`` tiles the source sent came out as ``gemm_int`` rows, in order, with
    ``last`` on each tile's final row, each row at least (or exactly) ``latency + r`` cycles
    after its tile's last beat."""
    rows = array.rows
    accepted = decode_beats(fmt, source.sent)
    assert len(accepted) == count
    assert len(sink.received) == rows * count
    for t, (t_last, a, b) in enumerate(accepted):
        want = gemm_int(a, b)
        for r in range(rows):
            cycle, got = sink.received[t * rows + r]
            assert got["acc"] == [int(x) for x in want[r]], (
                f"tile {t} (K={a.shape[1]}) row {r}: {got['acc']}, expected {list(want[r])}"
            )
            assert got["last"] == int(r == rows - 1)
            delay = cycle - t_last
            if exact_latency:
                assert delay == array.latency + r, f"tile {t} row {r}: latency {delay}"
            else:
                assert delay >= array.latency + r, f"tile {t} row {r}: latency {delay}"


def random_tiles(rng: np.random.Generator, fmt, rows, cols, k_max, count):
    tiles = []
    for _ in range(count):
        k = int(rng.choice([1, 2, 3, rows, k_max, int(rng.integers(1, k_max + 1))]))
        tiles.append((random_activations(rng, (rows, k)), random_codes(rng, fmt, (k, cols))))
    return tiles


@cocotb.test()
@cocotb.parametrize(idle=[0.0, 0.3], backpressure=[0.0, 0.5])
async def random_tiles_match_gemm_int(dut, idle, backpressure):
    """Random K (1 .. k_max) and values, with and without idles and back-pressure."""
    cfg, fmt, _ = make_dut()
    seed = cfg["seed"] + int(idle * 10) * 100 + int(backpressure * 10)
    dut._log.info("seed %d", seed)
    rng = np.random.default_rng(seed)
    tiles = random_tiles(rng, fmt, cfg["rows"], cfg["cols"], cfg["k_max"], cfg["tiles"])
    source, _, array = await run_tiles(dut, tiles, idle=idle, backpressure=backpressure, seed=seed)
    if idle == 0 and backpressure == 0:
        # Throughput: a run of tiles costs at most sum(max(K, bubble_free_k)) cycles.
        lasts = [cycle for cycle, _, _ in decode_beats(fmt, source.sent)]
        budget = 0
        for n in range(1, len(tiles)):
            budget += max(tiles[n][0].shape[1], array.bubble_free_k)
            assert lasts[n] - lasts[0] <= budget, (
                f"tiles 1..{n} took {lasts[n] - lasts[0]} > {budget} cycles; K: "
                f"{[t[0].shape[1] for t in tiles]}, last beats at {lasts}"
            )


@cocotb.test()
@cocotb.parametrize(idle=[0.0, 0.3])
async def back_to_back_tiles_have_no_bubbles(dut, idle):
    """Tiles of K = ``bubble_free_k`` and longer, output always ready: every row
    appears exactly ``latency + r`` cycles after its tile's last beat; without input idles
    the input is accepted on every cycle (no bubble between tiles)."""
    cfg, fmt, array = make_dut()
    seed = cfg["seed"] + 1000 + int(idle * 10)
    dut._log.info("seed %d", seed)
    rng = np.random.default_rng(seed)
    k_min = array.bubble_free_k
    tiles = []
    for n in range(6):
        k = k_min if n % 2 == 0 else int(rng.integers(k_min, max(k_min, cfg["k_max"]) + 1))
        k = min(k, cfg["k_max"])
        tiles.append(
            (random_activations(rng, (array.rows, k)), random_codes(rng, fmt, (k, array.cols)))
        )
    if k_min > cfg["k_max"]:
        raise AssertionError(f"configure k_max >= {k_min} to test back-to-back tiles")
    source, _, _ = await run_tiles(
        dut, tiles, idle=idle, backpressure=0.0, seed=seed, exact_latency=True
    )
    if idle == 0:
        cycles = [cycle for cycle, _ in source.sent]
        assert cycles == list(range(cycles[0], cycles[0] + len(cycles))), "input stalled"


@cocotb.test()
@cocotb.parametrize(backpressure=[0.0, 0.6])
async def extreme_sums_are_exact(dut, backpressure):
    """K = k_max of the extreme products (largest positive and negative sums, mixed per
    column) and K = 1 tiles in between: no accumulator overflows, no stale hold row."""
    cfg, fmt, array = make_dut()
    rows, cols, k = array.rows, array.cols, cfg["k_max"]
    a_min = np.full((rows, k), -128)
    w_min, w_max = np.full((k, cols), fmt.qmin), np.full((k, cols), fmt.qmax)
    mixed = np.where(np.arange(cols) % 2 == 0, fmt.qmin, fmt.qmax)[None, :].repeat(k, axis=0)
    ones = np.full((1, cols), fmt.qmax)
    tiles = [
        (a_min, w_min),
        (np.full((rows, 1), 127), ones),
        (a_min, w_max),
        (a_min, mixed),
        (np.full((rows, 1), -128), ones),
        (np.full((rows, k), 127), w_min),
    ]
    await run_tiles(dut, tiles, idle=0.0, backpressure=backpressure, seed=cfg["seed"] + 5000)


@cocotb.test()
async def a_held_output_admits_one_tile_per_hold_slot(dut):
    """Output held off: of ``2 * hold_slots + 2`` one-beat tiles, exactly ``hold_slots`` are
    accepted (the next ``last`` beat waits for a slot, ready low), and none is lost. Then the
    output runs under back-pressure 0.75: every row exact, so no slot was reused before its
    tile's last row had left (freeing a slot at its first row would overwrite later rows)."""
    cfg, fmt, array = make_dut()
    rng = np.random.default_rng(cfg["seed"] + 7000)
    slots, rows = array.hold_slots, array.rows
    tiles = [
        (random_activations(rng, (rows, 1)), random_codes(rng, fmt, (1, array.cols)))
        for _ in range(2 * slots + 2)
    ]
    harness = Harness(dut)
    source = StreamSource(harness, "i", array.input_layout)
    sink = StreamSink(harness, "o", array.output_layout, backpressure=1.0,
                      rng=random.Random(cfg["seed"] + 7001))  # fmt: skip
    await harness.start()
    sink.start()
    sending = cocotb.start_soon(source.send([b for a, w in tiles for b in tile_beats(fmt, a, w)]))
    await harness.cycles(array.latency + rows + 20)
    assert len(source.sent) == slots, f"{len(source.sent)} tiles accepted, {slots} hold slots"
    assert not int(dut.i__ready.value), "the next tile's last beat is not refused"
    assert not sink.received
    sink.backpressure = 0.75
    await sink.wait_for(rows * len(tiles), timeout_cycles=40 * rows * len(tiles))
    await harness.join(sending, 50, "the tile stream")
    await sink.assert_quiet(array.latency + rows + 8)
    check_rows(fmt, array, source, sink, len(tiles))
