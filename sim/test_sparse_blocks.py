# amaranth: UnusedElaboratable=no
"""``hw/sparse.py`` on its own (Amaranth simulator): the group assembler against a list model
under random input gaps and output back-pressure, and the selecting PE."""

from __future__ import annotations

import random

import pytest
from amaranth.sim import Simulator

from ttaccel.hw.pe import Int8Dsp
from ttaccel.hw.sparse import GroupAssembler, SparseSelect
from ttaccel.hw.systolic import SystolicArray
from ttaccel.sim.runner import test_seed

TOKENS, COLS = 3, 2


def _assembler(group: int) -> GroupAssembler:
    array = SystolicArray(rows=COLS, cols=TOKENS, macp=SparseSelect(inner=Int8Dsp(), group=group),
                          k_max=64)  # fmt: skip
    return GroupAssembler(beat_layout=array.input_layout, tokens=TOKENS, group=group,
                          macs_shape=range(64))  # fmt: skip


def _entries(rng: random.Random, group: int, count: int) -> list[dict]:
    """Random operand entries: sparse groups of N entries and single dense ones."""
    beats, out = group // 2, []
    while len(out) < count:
        sparse = rng.random() < 0.7
        for s in range(beats if sparse else 1):
            out.append({
                "pair": [[rng.randrange(-128, 128) for _ in range(TOKENS)] for _ in range(2)],
                "weights": [{"a": rng.randrange(-128, 128),
                             "index": rng.randrange(group) if sparse else group - 2}
                            for _ in range(COLS)],
                "sparse": int(sparse), "group_end": int(not sparse or s == beats - 1),
                "last": rng.randrange(2), "macs": rng.randrange(64),
            })  # fmt: skip
    return out


def _model(entries: list[dict], group: int) -> list[dict]:
    """Expected beats: a group's activations per token, and each entry's weights and flags."""
    beats, out, pending = group // 2, [], []
    for entry in entries:
        pending.append(entry)
        if not entry["group_end"]:
            continue
        slots = [None] * group
        first = 0 if entry["sparse"] else beats - 1
        for s, e in enumerate(pending[-(beats - first) :], start=first):
            slots[2 * s], slots[2 * s + 1] = e["pair"][0], e["pair"][1]
        for e in pending[-(beats - first) :]:
            out.append({"slots": slots, "weights": e["weights"], "last": e["last"],
                        "macs": e["macs"]})  # fmt: skip
        pending = []
    return out


@pytest.mark.parametrize("group", [2, 4, 8])
def test_group_assembler_matches_a_model(group):
    seed = test_seed()
    rng = random.Random(seed)
    dut = _assembler(group)
    entries = _entries(rng, group, 60)
    want = _model(entries, group)
    layout = dut.entry_layout
    got: list[dict] = []

    async def source(ctx):
        for entry in entries:
            while rng.random() < 0.3:
                ctx.set(dut.i.valid, 0)
                await ctx.tick()
            ctx.set(dut.i.valid, 1)
            ctx.set(dut.i.payload, layout.const(entry))
            await ctx.tick().until(dut.i.ready)
        ctx.set(dut.i.valid, 0)

    async def sink(ctx):
        held = None
        while len(got) < len(want):
            ready = rng.random() < 0.7
            ctx.set(dut.o.ready, ready)
            await ctx.delay(1e-9)
            valid = ctx.get(dut.o.valid)
            payload = ctx.get(dut.o.payload)
            if held is not None:
                assert valid and payload == held, "valid fell or the payload changed"
            held = None
            if valid and ready:
                beat = payload.beat
                got.append({
                    "slots": [[beat.w[r][u] for r in range(TOKENS)] for u in range(group)],
                    "weights": [{"a": beat.a[j].a, "index": beat.a[j].index}
                                for j in range(COLS)],
                    "last": beat.last, "macs": payload.macs,
                })  # fmt: skip
            elif valid:
                held = payload
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(source)
    sim.add_testbench(sink)
    sim.run_until(1e-6 * 20 * len(entries))
    assert len(got) == len(want), f"seed {seed}: {len(got)} beats, want {len(want)}"
    for index, (g, w) in enumerate(zip(got, want, strict=True)):
        for u, slot in enumerate(w["slots"]):
            if slot is not None:  # a dense beat's other slots are don't-care
                assert g["slots"][u] == slot, (seed, index, u)
        assert g["weights"] == w["weights"], (seed, index)
        assert (g["last"], g["macs"]) == (w["last"], w["macs"]), (seed, index)


def test_sparse_select_rejects_bad_parameters():
    with pytest.raises(ValueError, match="Group must be 2, 4 or 8, not 3"):
        SparseSelect(inner=Int8Dsp(), group=3)
    with pytest.raises(TypeError, match="Inner provider must be a MacProvider"):
        SparseSelect(inner=None, group=4)
