"""A Tucker BERT with a shared matrix bank (seed 001) through the host driver: its layers run on
the engine as their 3-core TT expansions, and the logits on the reference backend equal the
golden model's bit for bit, resident (prefetched) and without prefetch, and with the bank's
factors resident; on the sim backend (the generated RTL in Verilator) both ways too."""

from __future__ import annotations

import numpy as np
import pytest

from tests.spec.test_tucker import BANK, tucker_artifact
from ttaccel.host.backends import open_device
from ttaccel.host.bert import DeviceBert, tt_layer_order
from ttaccel.host.driver import Accelerator
from ttaccel.spec.accel_config import AccelConfig
from ttaccel.spec.artifact import load_artifact, save_artifact
from ttaccel.spec.formats import INT4, INT8
from ttaccel.spec.inference import LINEAR_NAMES, BertInference

IDS = [[2, 7, 9, 12, 3], [2, 5, 6, 3], [2, *range(4, 19), 3]]
CONFIG = AccelConfig(rows=4, cols=4, weight_buffer_depth=1024, act_buffer_depth=1024,
                     bias_buffer_depth=256)  # fmt: skip


@pytest.mark.parametrize("fmt", [INT8, INT4])
@pytest.mark.parametrize("prefetch", [True, False], ids=["prefetch", "no-prefetch"])
def test_reference_backend_logits_equal_the_golden_model(fmt, prefetch, tmp_path):
    path = tmp_path / "tucker.safetensors"
    save_artifact(path, tucker_artifact(seed=2, fmt=fmt, layers=2))
    artifact = load_artifact(path)
    assert not artifact.tt_linears and len(artifact.tucker_linears) == 12
    names = [f"bert.encoder.layer.{i}.{n}" for i in range(2) for n in LINEAR_NAMES]
    assert tt_layer_order(artifact) == names
    golden = BertInference(artifact).logits(IDS)
    model = DeviceBert(artifact, Accelerator(open_device("reference", config=CONFIG)),
                       prefetch=prefetch)  # fmt: skip
    np.testing.assert_array_equal(model.logits(IDS), golden)
    records = model.linears.records
    assert all(r.counters.macs_issued == r.expected_macs for r in records)
    assert {r.layer for r in records if r.kind == "run"} == set(artifact.tucker_linears)
    setups = sum(r.kind == "setup" for r in records)
    assert setups == (1 if prefetch else 12)


@pytest.mark.parametrize("fmt", [INT8, INT4])
@pytest.mark.parametrize("prefetch", [True, False], ids=["prefetch", "no-prefetch"])
def test_resident_factors_logits_equal_the_golden_model(fmt, prefetch):
    from ttaccel.host.tucker import ResidentTuckerBert

    artifact = tucker_artifact(seed=3, fmt=fmt, layers=2)
    golden = BertInference(artifact).logits(IDS)
    device = Accelerator(open_device("reference", config=CONFIG))
    plain = DeviceBert(artifact, device, prefetch=prefetch)
    resident = ResidentTuckerBert(artifact, device, prefetch=prefetch)
    for _ in range(2):  # two batches: the factors are loaded again for the second
        np.testing.assert_array_equal(resident.logits(IDS), golden)
    np.testing.assert_array_equal(plain.logits(IDS), golden)
    records = resident.linears.records
    assert all(r.counters.macs_issued == r.expected_macs for r in records)
    assert [r.layer for r in records if r.kind == "tucker-factors"] == [BANK, BANK]
    bank = artifact.tucker_banks[BANK]
    factor_beats = {r.beats_in for r in records if r.kind == "tucker-factors"}
    assert factor_beats == {(bank.d * bank.r * 2) * 8 // 64}  # int8 lanes on the int8 array
    streamed = sum(r.beats_in for r in plain.linears.records if r.kind == "setup")
    once = sum(r.beats_in for r in records[: len(records) // 2] if r.kind != "run")
    runs_plain = sum(r.beats_in for r in plain.linears.records if r.kind == "run")
    runs_resident = sum(r.beats_in for r in records[: len(records) // 2] if r.kind == "run")
    if not prefetch:  # every layer's own setup: the factors 12 times, against once
        assert once < streamed
        assert streamed - once == 11 * factor_beats.pop()
    else:  # prefetched constants ride in the run programs' streams
        assert runs_resident + once < runs_plain + streamed


# --- the simulated board: the generated RTL in Verilator (SMALL_BOARD, shared with
# tests/host/test_sim_device.py, built once under build/simboard) ---


@pytest.fixture(scope="module")
def small_library():
    from ttaccel.host.sim_build import SMALL_BOARD, build_simboard

    return build_simboard(SMALL_BOARD).library


def test_the_rtl_runs_the_tucker_bert_with_and_without_resident_factors(small_library, tmp_path):
    """The 4 x 4 int8 RTL (Verilator, streams with idle cycles and back-pressure) runs the
    2-layer Tucker artifact as 3-core TT expansions (:class:`DeviceBert`) and with the bank's
    factors resident (:class:`ResidentTuckerBert`): both logits equal the golden model's, and
    every run's MACS_ISSUED equals the compiler's count."""
    from ttaccel.host.sim import SimDevice
    from ttaccel.host.tucker import ResidentTuckerBert

    path = tmp_path / "tucker.safetensors"
    save_artifact(path, tucker_artifact(seed=2, fmt=INT8, layers=2))
    artifact = load_artifact(path)
    golden = BertInference(artifact).logits(IDS)
    with SimDevice(small_library, seed=5, input_idle=0.2, output_stall=0.2) as device:
        accel = Accelerator(device, timeout_s=600)
        plain = DeviceBert(artifact, accel)
        np.testing.assert_array_equal(plain.logits(IDS), golden)
        resident = ResidentTuckerBert(artifact, accel)
        np.testing.assert_array_equal(resident.logits(IDS), golden)
        assert device.violations == 0  # TVALID/TDATA stable until each handshake
    for model in (plain, resident):
        records = model.linears.records
        assert {r.layer for r in records if r.kind == "run"} == set(artifact.tucker_linears)
        assert all(r.counters.macs_issued == r.expected_macs for r in records)
    assert [r.layer for r in resident.linears.records if r.kind == "tucker-factors"] == [BANK]
