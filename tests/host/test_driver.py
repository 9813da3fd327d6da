"""The driver and BERT inference over the reference backend (the spec's functional model).

What is checked against what: logits against :class:`ttaccel.spec.inference.BertInference`
(the golden model, computed independently of the device path), ``MACS_ISSUED`` against the
compiler's GEMMs, refusals against the limits they name, and recovery after a hang or an error
against a fresh run of the same program.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ttaccel.host.bert import ArtifactDoesNotFit, DeviceBert
from ttaccel.host.classify import Classifier, read_dev_set
from ttaccel.host.driver import (
    Accelerator,
    AcceleratorError,
    AcceleratorTimeout,
    IncompatibleDevice,
)
from ttaccel.host.reference import ReferenceDevice
from ttaccel.spec.accel_config import AccelConfig
from ttaccel.spec.compiler import compile_tt_linear
from ttaccel.spec.inference import BertInference
from ttaccel.spec.isa import Buffer, End, Load, execute
from ttaccel.spec.regmap import IP_VERSION

SST2 = Path(__file__).resolve().parents[3] / "shared" / "data" / "SST-2"


def accelerator(config: AccelConfig | None = None) -> Accelerator:
    return Accelerator(ReferenceDevice(config), timeout_s=5.0)


@pytest.mark.parametrize("prefetch", [True, False])
def test_logits_equal_the_golden_model_and_cores_stream_once_per_batch(artifact, ids, prefetch):
    model = DeviceBert(artifact, accelerator(), prefetch=prefetch)
    for _ in range(2):  # two batches: the second streams every core again
        np.testing.assert_array_equal(model.logits(ids), BertInference(artifact).logits(ids))
    records = model.linears.records
    tt_layers = len(artifact.tt_linears)
    setups = [r for r in records if r.kind == "setup"]
    runs = [r for r in records if r.kind == "run"]
    assert len(runs) == 2 * tt_layers
    # with prefetch only the first layer of a batch needs a setup program (the default buffers
    # hold two consecutive layers of this model); without, every layer has one
    assert len(setups) == (2 if prefetch else 2 * tt_layers)
    assert all(r.counters.macs_issued == r.expected_macs for r in records)
    assert all(r.counters.instructions > 0 for r in records)


def test_prefetched_constants_are_the_setup_programs(artifact, ids):
    """Prefetching moves each layer's constants into the previous layer's run program: the
    input beats of a batch grow by nothing but the programs' own instructions."""
    with_prefetch = DeviceBert(artifact, accelerator(), prefetch=True)
    without = DeviceBert(artifact, accelerator(), prefetch=False)
    with_prefetch.logits(ids)
    without.logits(ids)
    data = [sum(r.beats_in for r in m.linears.records) for m in (with_prefetch, without)]
    assert data[0] == data[1]


@pytest.mark.data
def test_dev_sentences_on_the_reference_backend(artifact):
    if not SST2.is_dir():
        pytest.skip(f"{SST2} is absent")
    sentences, labels = read_dev_set(SST2, limit=24)
    device = accelerator()
    classifier = Classifier(artifact, device, batch_size=8)
    predictions = classifier.classify(sentences)
    assert all(p.exact for p in predictions)
    golden = BertInference(artifact)
    for i in range(0, 24, 8):
        batch = [list(classifier.tokenizer.encode(s).ids) for s in sentences[i : i + 8]]
        expected = golden.logits(batch).argmax(-1)
        assert [p.label for p in predictions[i : i + 8]] == expected.tolist()
    summary = classifier.report.summary(device.config.lanes, device.config.clock_mhz)
    assert summary["macs_issued_equal_compiler_count"]
    assert summary["logits_exactly_equal_spec"] == "24/24"
    assert 0.5 < summary["engine_utilization"] <= 1.0
    assert sum(p.label == y for p, y in zip(predictions, labels, strict=True)) >= 18


class _WrongId(ReferenceDevice):
    def _read_word(self, offset):
        return 0x12345678 if offset == 0 else super()._read_word(offset)


class _WrongVersion(ReferenceDevice):
    def _read_word(self, offset):
        return (IP_VERSION[0] + 1) << 16 if offset == 4 else super()._read_word(offset)


def test_a_device_that_is_not_ttaccel_or_of_another_version_is_refused():
    with pytest.raises(IncompatibleDevice, match=r"0x12345678.*ttAC"):
        Accelerator(_WrongId())
    with pytest.raises(IncompatibleDevice, match=r"version 1\.0\.0"):
        Accelerator(_WrongVersion())


def test_the_configuration_is_read_from_the_registers():
    config = AccelConfig(rows=8, cols=4, max_rank=48, queue_depth=5, clock_mhz=125.0)
    assert accelerator(config).config == config


@pytest.mark.parametrize(
    ("config", "limit"),
    [
        (AccelConfig(max_rank=32), "max_rank is 32"),
        (AccelConfig(weight_format="int2"), "weight format"),
        (AccelConfig(weight_buffer_depth=1024), "weight_buffer_depth is 1024"),
        (AccelConfig(max_k=1024), "max_k is 1024"),
    ],
)
def test_an_artifact_the_hardware_cannot_run_is_refused_before_any_transfer(
    artifact, config, limit
):
    device = ReferenceDevice(config)
    accel = Accelerator(device)
    with pytest.raises(ArtifactDoesNotFit, match=rf"TT layer bert\.encoder\.layer\.0\..*{limit}"):
        DeviceBert(artifact, accel)
    assert device.transfer_state().to_send == 0  # nothing was sent


def _small_program():
    """A LOAD of bias words and a STORE-free END: runs on any configuration."""
    return [Load(Buffer.BIAS, 0, 4), End()], np.arange(2, dtype=np.uint64)


def test_a_program_longer_than_the_instruction_memory_is_refused_before_the_device():
    config = AccelConfig(instruction_depth=4)
    device = ReferenceDevice(config)
    accel = Accelerator(device)
    program = [Load(Buffer.BIAS, i, 1) for i in range(4)] + [End()]
    with pytest.raises(ValueError, match="5 instructions does not fit the instruction memory of 4"):
        accel.run(program, np.zeros(4, np.uint64), 0)
    assert device.transfer_state().to_send == 0


def _layer_case(artifact, config):
    layer = artifact.tt_linears["bert.encoder.layer.0.attention.self.query"]
    compiled = compile_tt_linear(layer, 2 * config.rows, config)
    x = np.random.default_rng(0).integers(-128, 128, (2 * config.rows, 384), dtype=np.int8)
    return compiled, x


def test_a_hang_ends_in_a_timeout_with_a_register_dump_and_the_next_run_is_exact(artifact):
    config = AccelConfig()
    accel = accelerator(config)
    compiled, x = _layer_case(artifact, config)
    accel.run(compiled.setup, compiled.setup_stream, 0)
    # an output transfer one beat short: the engine waits on back-pressure forever
    with pytest.raises(AcceleratorTimeout) as caught:
        accel.run(compiled.run, compiled.input_stream(x), compiled.output_beats - 1, timeout_s=0.2)
    dump = caught.value.dump
    assert dump["STATUS"]["busy"] == 1 and dump["STATUS"]["done"] == 0
    assert {"PC", "counters", "input stream", "output stream"} <= set(dump)
    assert "STATUS" in str(caught.value) and "soft reset" in str(caught.value)
    # after the driver's soft reset the resident cores are still there and the next run is exact
    result = accel.run(compiled.run, compiled.input_stream(x), compiled.output_beats)
    machine = execute(compiled.setup, config, compiled.setup_stream).machine
    expected = execute(compiled.run, config, compiled.input_stream(x), machine).output
    np.testing.assert_array_equal(result.output, expected)


def test_an_error_is_raised_with_its_code_and_the_next_run_is_exact(artifact):
    config = AccelConfig(bias_buffer_depth=1024)
    accel = accelerator(config)
    bad = [Load(Buffer.BIAS, 1022, 4), End()]  # words 1022..1025 leave the bias buffer
    with pytest.raises(AcceleratorError, match=r"error 2 \(buffer address out of range\)") as e:
        accel.run(bad, np.zeros(2, np.uint64), 0)
    assert e.value.dump["STATUS"]["error"] == 1
    compiled, x = _layer_case(artifact, config)
    accel.run(compiled.setup, compiled.setup_stream, 0)
    result = accel.run(compiled.run, compiled.input_stream(x), compiled.output_beats)
    machine = execute(compiled.setup, config, compiled.setup_stream).machine
    expected = execute(compiled.run, config, compiled.input_stream(x), machine).output
    np.testing.assert_array_equal(result.output, expected)
