"""An N:M sparse BERT (seed 002) through the host driver: its N:M layers run on the engine as
the dense one-core layers they expand to (zeros included: no sparse GEMM mode yet), and the
logits on the reference backend equal the golden model's bit for bit, resident and with the
weights streamed through WBUF."""

from __future__ import annotations

import numpy as np
import pytest

from tests.spec.test_nm import nm_artifact
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
