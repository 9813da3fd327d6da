"""BERT inference on the simulated board: the driver unchanged over the real RTL.

The demo's board (:data:`~ttaccel.host.backends.SIM_DEMO_CONFIG`, 8 x 8, built once and shared
with ``make demo`` under ``build/simboard/``) runs the bundled artifact's 36 TT linears; the
logits are compared with :class:`~ttaccel.spec.inference.BertInference` on the same batch
(computed without any device), the MAC counters with the compiler's GEMMs, and a hang with the
driver's time-out path followed by an exact run.
"""

from __future__ import annotations

import numpy as np
import pytest

from ttaccel.host.backends import SIM_DEMO_CONFIG
from ttaccel.host.bert import DeviceBert
from ttaccel.host.driver import Accelerator, AcceleratorTimeout
from ttaccel.host.sim import SimDevice
from ttaccel.host.sim_build import build_simboard
from ttaccel.spec.compiler import compile_tt_linear
from ttaccel.spec.formats import INT8, Requant
from ttaccel.spec.inference import BertInference
from ttaccel.spec.isa import End, Gemm, execute


@pytest.fixture(scope="module")
def library():
    return build_simboard(SIM_DEMO_CONFIG).library


@pytest.fixture(scope="module")
def golden(artifact, ids):
    return BertInference(artifact).logits(ids)


@pytest.mark.parametrize("stall", [0.0, 0.3])
def test_logits_on_the_rtl_equal_the_golden_model(library, artifact, ids, golden, stall):
    with SimDevice(library, seed=11, input_idle=stall, output_stall=stall) as device:
        model = DeviceBert(artifact, Accelerator(device, timeout_s=600))
        np.testing.assert_array_equal(model.logits(ids), golden)
        assert device.violations == 0  # TVALID/TDATA stable until each handshake
        if stall:
            counters = device.counters()
            assert counters["in_idle_cycles"] > 0 and counters["out_stall_cycles"] > 0
    records = model.linears.records
    assert [r.kind for r in records].count("setup") == 1  # every other layer is prefetched
    assert all(r.counters.macs_issued == r.expected_macs for r in records)
    assert all(r.counters.busy_cycles > r.counters.stall_cycles for r in records if r.kind == "run")


def _layer(artifact, config):
    layer = artifact.tt_linears["bert.encoder.layer.0.attention.self.query"]
    compiled = compile_tt_linear(layer, 2 * config.rows, config)
    x = np.random.default_rng(3).integers(-128, 128, (2 * config.rows, 384), dtype=np.int8)
    machine = execute(compiled.setup, config, compiled.setup_stream).machine
    expected = execute(compiled.run, config, compiled.input_stream(x), machine).output
    return compiled, x, expected


def test_output_never_accepted_times_out_with_a_dump_then_the_next_run_is_exact(library, artifact):
    config = SIM_DEMO_CONFIG
    compiled, x, expected = _layer(artifact, config)
    with SimDevice(library, poll_cycles=5_000) as device:
        accel = Accelerator(device, timeout_s=600)
        accel.run(compiled.setup, compiled.setup_stream, 0)
        device.hold_output(True)
        with pytest.raises(AcceleratorTimeout) as caught:
            accel.run(compiled.run, compiled.input_stream(x), compiled.output_beats, timeout_s=1)
        dump = caught.value.dump
        assert dump["STATUS"]["busy"] == 1
        assert dump["output stream"].startswith(f"0 of {compiled.output_beats}")
        device.hold_output(False)
        result = accel.run(compiled.run, compiled.input_stream(x), compiled.output_beats)
        np.testing.assert_array_equal(result.output, expected)
        assert result.counters.macs_issued == sum(
            g.row_tiles * g.k * config.rows * g.n for g in compiled.run if isinstance(g, Gemm)
        )


def test_a_program_that_waits_forever_times_out_then_the_next_run_is_exact(library, artifact):
    """A GEMM waiting for a token no LOAD will ever signal: the engine hangs in the execute
    queue; the driver's deadline, dump and soft reset recover it."""
    config = SIM_DEMO_CONFIG
    compiled, x, expected = _layer(artifact, config)
    waits = Gemm(m_outer=1, m_inner=1, k=1, n=1, a_base=0, a_outer=0, a_inner=0, a_k=0,
                 b_base=0, b_tile=0, b_k=0, out_base=0, out_outer=0, out_inner=0, out_col=0,
                 requant=Requant(1, 0, INT8), dst_stream=True, wait=True)  # fmt: skip
    with SimDevice(library, poll_cycles=5_000) as device:
        accel = Accelerator(device, timeout_s=600)
        with pytest.raises(AcceleratorTimeout) as caught:
            accel.run([waits, End()], np.empty(0, np.uint64), 1, timeout_s=1)
        assert caught.value.dump["STATUS"]["busy"] == 1
        accel.run(compiled.setup, compiled.setup_stream, 0)
        result = accel.run(compiled.run, compiled.input_stream(x), compiled.output_beats)
        np.testing.assert_array_equal(result.output, expected)
