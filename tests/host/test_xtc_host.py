"""A layer-reduced ternary / binary BERT (seed 003, XTC) through the host driver.

The artifact is built here in NumPy (no torch): every encoder linear a dense one-core layer of
ternary or binary codes. Its logits through :class:`~ttaccel.host.bert.DeviceBert` on the
reference backend must equal :class:`~ttaccel.spec.inference.BertInference`'s bit for bit, on
an int8 array whose buffers hold every layer (resident, prefetched) and on one so small that
the FFN weights stream through WBUF in every run, in pieces of tokens that fit ABUF; and on
the simulated board (the demo's 8 x 8 RTL), with a 384 x 768 layer that streams there.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.spec.tiny_bert import tiny_bert_frame
from ttaccel.host.backends import open_device
from ttaccel.host.bert import ArtifactDoesNotFit, DeviceBert
from ttaccel.host.driver import Accelerator
from ttaccel.spec.accel_config import AccelConfig
from ttaccel.spec.artifact import Artifact, load_artifact, save_artifact
from ttaccel.spec.formats import BINARY, TERNARY, Requant
from ttaccel.spec.golden import QuantTTLinear
from ttaccel.spec.inference import LINEAR_NAMES, BertInference

H, FFN, V, LAYERS = 16, 40, 30, 2


def _dense(rng, fmt, m, n) -> QuantTTLinear:
    values = [-1, 0, 1] if fmt == TERNARY else [-1, 1]
    core = rng.choice(values, size=(1, m, n, 1)).astype(np.int8)
    # acc ~ sqrt(m) * 40 codes: ratio 1 / sqrt(m) keeps the int8 output mostly unsaturated
    requant = Requant.from_ratio(1.0 / np.sqrt(m) / 2)
    return QuantTTLinear((core,), fmt, ((0, 1),), ((),), (requant,),
                         rng.integers(-50, 50, n).astype(np.int32), 0.03, 0.02)  # fmt: skip


def xtc_artifact(fmt, seed=0) -> Artifact:
    rng = np.random.default_rng(seed)
    linears = {}
    for layer in range(LAYERS):
        for name in LINEAR_NAMES:
            m, n = {"intermediate.dense": (H, FFN), "output.dense": (FFN, H)}.get(name, (H, H))
            linears[f"bert.encoder.layer.{layer}.{name}"] = _dense(rng, fmt, m, n)
    model, tensors = tiny_bert_frame(rng, hidden=H, ffn=FFN, vocab=V, layers=LAYERS)
    return Artifact(model, linears, {}, tensors, [f"t{i}" for i in range(V)])


IDS = [[2, 7, 9, 12, 3], [2, 5, 6, 3], [2, *range(4, 26), 3]]
RESIDENT = AccelConfig(rows=4, cols=4, weight_buffer_depth=1024, act_buffer_depth=1024,
                       bias_buffer_depth=256)  # fmt: skip
STREAMED = AccelConfig(rows=4, cols=4, weight_buffer_depth=96, act_buffer_depth=160,
                       bias_buffer_depth=256)  # fmt: skip


@pytest.mark.parametrize("fmt", [TERNARY, BINARY])
@pytest.mark.parametrize("config", [RESIDENT, STREAMED], ids=["resident", "streamed"])
def test_reference_backend_logits_equal_the_golden_model(fmt, config, tmp_path):
    path = tmp_path / "xtc.safetensors"
    save_artifact(path, xtc_artifact(fmt))
    artifact = load_artifact(path)
    golden = BertInference(artifact).logits(IDS)
    model = DeviceBert(artifact, Accelerator(open_device("reference", config=config)))
    np.testing.assert_array_equal(model.logits(IDS), golden)
    records = model.linears.records
    assert all(r.counters.macs_issued == r.expected_macs for r in records)

    def runs(linear):
        return [r for r in records if r.kind == "run" and r.layer.split(".", 4)[4] == linear]

    if config is RESIDENT:
        assert [r.kind for r in records].count("setup") == 1  # all the others prefetched
        assert len(runs("output.dense")) == LAYERS
    else:
        # 33 tokens; output.dense reads I = 40 A-words per block of 4 tokens, ABUF holds
        # 160 // 40 = 4 blocks: 16 tokens a run, 3 runs, each streaming the weights again
        assert len(runs("output.dense")) == 3 * LAYERS
        assert all(r.tokens <= 16 for r in runs("output.dense"))
        assert len(runs("intermediate.dense")) == LAYERS  # 16 A-words per block: one run


def test_a_ternary_artifact_is_refused_by_a_binary_engine():
    config = AccelConfig(rows=4, cols=4, weight_format=BINARY)
    with pytest.raises(ArtifactDoesNotFit, match=r"0\.attention\.self\.query.*ternary codes"):
        DeviceBert(xtc_artifact(TERNARY), Accelerator(open_device("reference", config=config)))


# --- the simulated board (the generated RTL in Verilator, built once under build/simboard) ---


@pytest.fixture(scope="module")
def library():
    from ttaccel.host.backends import SIM_DEMO_CONFIG
    from ttaccel.host.sim_build import build_simboard

    return build_simboard(SIM_DEMO_CONFIG).library


@pytest.mark.parametrize("fmt", [TERNARY, BINARY])
def test_the_rtl_runs_the_xtc_bert_and_a_streamed_dense_layer_exactly(library, fmt):
    from ttaccel.host.backends import SIM_DEMO_CONFIG
    from ttaccel.host.sim import SimDevice
    from ttaccel.spec.compiler import compile_layer
    from ttaccel.spec.golden import tt_linear_int

    artifact = xtc_artifact(fmt, seed=5)
    rng = np.random.default_rng(6)
    big = _dense(rng, fmt, 384, 768)  # 96 column tiles x 384 = 36,864 B-words > 32,768
    x = rng.integers(-128, 128, (12, 384), dtype=np.int8)
    compiled = compile_layer(big, 12, SIM_DEMO_CONFIG)
    assert compiled.streams_weights
    with SimDevice(library, seed=3, input_idle=0.2, output_stall=0.2) as device:
        accel = Accelerator(device, timeout_s=600)
        model = DeviceBert(artifact, accel)
        np.testing.assert_array_equal(model.logits(IDS), BertInference(artifact).logits(IDS))
        accel.run(compiled.setup, compiled.setup_stream, 0)
        result = accel.run(compiled.run, compiled.input_stream(x), compiled.output_beats)
        np.testing.assert_array_equal(compiled.decode_output(result.output), tt_linear_int(x, big))
        assert device.violations == 0
    assert all(r.counters.macs_issued == r.expected_macs for r in model.linears.records)
