"""An N:M sparse BERT (seed 002) through the host driver: without a sparse GEMM mode its N:M
layers run as the dense one-core layers they expand to (zeros included), on a 2:4 build as
sparse GEMMs where the mode takes their pattern; the logits on the reference backend equal the
golden model's bit for bit, resident, with the weights streamed through WBUF, and sparse; on
the sim backend (the generated RTL in Verilator) the 2:4 build runs them sparse and the plain
4 x 4 board dense, with the golden logits."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tests.spec.test_nm import H, nm_artifact, nm_layer
from ttaccel.host.backends import open_device
from ttaccel.host.bert import DeviceBert, tt_layer_order
from ttaccel.host.driver import Accelerator
from ttaccel.spec.accel_config import AccelConfig
from ttaccel.spec.artifact import load_artifact, save_artifact
from ttaccel.spec.formats import INT4, INT8, TERNARY
from ttaccel.spec.inference import LINEAR_NAMES, BertInference

IDS = [[2, 7, 9, 12, 3], [2, 5, 6, 3], [2, *range(4, 19), 3]]
RESIDENT = AccelConfig(rows=4, cols=4, weight_buffer_depth=1024, act_buffer_depth=1024,
                       bias_buffer_depth=256)  # fmt: skip
STREAMED = AccelConfig(rows=4, cols=4, weight_buffer_depth=96, act_buffer_depth=160,
                       bias_buffer_depth=256)  # fmt: skip


@pytest.mark.parametrize("fmt", [INT8, INT4, TERNARY])
@pytest.mark.parametrize("config", [RESIDENT, STREAMED], ids=["resident", "streamed"])
def test_reference_backend_logits_equal_the_golden_model(fmt, config, tmp_path):
    path = tmp_path / "nm.safetensors"
    save_artifact(path, nm_artifact(seed=1, fmt=fmt))
    artifact = load_artifact(path)
    assert not artifact.tt_linears and len(artifact.nm_linears) == 6
    assert tt_layer_order(artifact) == [f"bert.encoder.layer.0.{n}" for n in LINEAR_NAMES]
    golden = BertInference(artifact).logits(IDS)
    # an int8 array (the demo board's) multiplies int4 and ternary codes exactly
    model = DeviceBert(artifact, Accelerator(open_device("reference", config=config)))
    np.testing.assert_array_equal(model.logits(IDS), golden)
    records = model.linears.records
    assert all(r.counters.macs_issued == r.expected_macs for r in records)
    runs = {r.layer for r in records if r.kind == "run"}
    assert runs == set(artifact.nm_linears)


SPARSE = dataclasses.replace(RESIDENT, sparse_nm=(2, 4))


@pytest.mark.parametrize("fmt", [INT8, TERNARY])
def test_a_sparse_build_runs_the_nm_layers_sparse_with_the_golden_logits(fmt, tmp_path):
    """On a 2:4 build (found through CONFIG_MAX_MODE) the 2:4, 1:4 and 2:8 layers run as
    sparse GEMMs and a 4:8 layer (which the mode cannot take) as its dense expansion; logits
    equal the golden model's, and every sparse run issues exactly half the MACs of the same
    layer on the dense build (counted from the layer's shape, not from the compiler)."""
    art = nm_artifact(seed=2, fmt=fmt)
    wide = "bert.encoder.layer.0.attention.output.dense"
    art.nm_linears[wide] = nm_layer(np.random.default_rng(9), 4, 8, H, H, fmt)
    path = tmp_path / "nm.safetensors"
    save_artifact(path, art)
    artifact = load_artifact(path)
    golden = BertInference(artifact).logits(IDS)
    accel = Accelerator(open_device("reference", config=SPARSE))
    assert accel.config.sparse_nm == (2, 4)  # read back from the registers, not passed in
    sparse = DeviceBert(artifact, accel)
    np.testing.assert_array_equal(sparse.logits(IDS), golden)
    dense = DeviceBert(artifact, Accelerator(open_device("reference", config=RESIDENT)))
    np.testing.assert_array_equal(dense.logits(IDS), golden)
    runs = {m: {r.layer: r for r in m.linears.records if r.kind == "run"} for m in (sparse, dense)}
    want = {n: "nm-dense" if n == wide else "nm-sparse" for n in artifact.nm_linears}
    assert {n: r.mode for n, r in runs[sparse].items()} == want
    assert {r.mode for r in runs[dense].values()} == {"nm-dense"}
    padded = -(-sum(map(len, IDS)) // SPARSE.rows) * SPARSE.rows  # one batch, 4-token blocks
    for name, layer in artifact.nm_linears.items():
        full = padded * layer.in_features * layer.out_features
        assert runs[dense][name].counters.macs_issued == full
        assert runs[sparse][name].counters.macs_issued == (full if name == wide else full // 2)
    for model in (sparse, dense):
        assert all(r.counters.macs_issued == r.expected_macs for r in model.linears.records)


# --- the simulated board: the 2:4 build's RTL in Verilator (built once under build/simboard) ---


@pytest.fixture(scope="module")
def sparse_library():
    from ttaccel.host.sim_build import build_simboard

    return build_simboard(SPARSE).library


def test_the_rtl_of_a_sparse_build_runs_the_nm_bert_sparse_with_the_golden_logits(
    sparse_library, tmp_path
):
    """The generated RTL of the 2:4 build (Verilator, streams with idle cycles and
    back-pressure) advertises its mode in CONFIG_MAX_MODE, runs the 2:4, 1:4 and 2:8 layers as
    sparse GEMMs and a 4:8 layer as its dense expansion, with the golden model's logits and
    every run's MACS_ISSUED equal to the compiler's count (half the dense one where sparse)."""
    from ttaccel.host.sim import SimDevice

    art = nm_artifact(seed=4, fmt=INT8)
    wide = "bert.encoder.layer.0.attention.output.dense"
    art.nm_linears[wide] = nm_layer(np.random.default_rng(5), 4, 8, H, H, INT8)
    path = tmp_path / "nm.safetensors"
    save_artifact(path, art)
    artifact = load_artifact(path)
    golden = BertInference(artifact).logits(IDS)
    with SimDevice(sparse_library, seed=7, input_idle=0.2, output_stall=0.2) as device:
        accel = Accelerator(device, timeout_s=600)
        assert accel.config == dataclasses.replace(SPARSE, device=accel.config.device)
        assert accel.config.sparse_nm == (2, 4)  # CONFIG_MAX_MODE.sparse_n / sparse_m
        model = DeviceBert(artifact, accel)
        np.testing.assert_array_equal(model.logits(IDS), golden)
        assert device.violations == 0  # TVALID/TDATA stable until each handshake
    runs = {r.layer: r for r in model.linears.records if r.kind == "run"}
    want = {n: "nm-dense" if n == wide else "nm-sparse" for n in artifact.nm_linears}
    assert {n: r.mode for n, r in runs.items()} == want
    padded = -(-sum(map(len, IDS)) // SPARSE.rows) * SPARSE.rows
    for name, layer in artifact.nm_linears.items():
        full = padded * layer.in_features * layer.out_features
        assert runs[name].counters.macs_issued == (full if name == wide else full // 2)
    assert all(r.counters.macs_issued == r.expected_macs for r in model.linears.records)


def test_the_rtl_of_a_dense_build_runs_the_nm_bert_as_dense_expansions(tmp_path):
    """On the 4 x 4 int8 RTL without a sparse mode (SMALL_BOARD, shared with
    tests/host/test_sim_device.py) every N:M layer runs as its dense expansion, int4 codes on
    the int8 array, with the golden model's logits."""
    from ttaccel.host.sim import SimDevice
    from ttaccel.host.sim_build import SMALL_BOARD, build_simboard

    path = tmp_path / "nm.safetensors"
    save_artifact(path, nm_artifact(seed=6, fmt=INT4))
    artifact = load_artifact(path)
    golden = BertInference(artifact).logits(IDS)
    with SimDevice(build_simboard(SMALL_BOARD).library, seed=8, input_idle=0.2,
                   output_stall=0.2) as device:  # fmt: skip
        accel = Accelerator(device, timeout_s=600)
        assert accel.config.sparse_nm is None
        model = DeviceBert(artifact, accel)
        np.testing.assert_array_equal(model.logits(IDS), golden)
        assert device.violations == 0
    records = model.linears.records
    assert {r.mode for r in records if r.kind == "run"} == {"nm-dense"}
    assert all(r.counters.macs_issued == r.expected_macs for r in records)
