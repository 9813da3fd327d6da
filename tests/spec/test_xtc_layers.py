"""Seed 003 (XTC) layers in the spec: a dense ternary / binary weight as a one-core TT layer,
packed at 2 / 1 bits in the artifact, compiled resident or streamed through WBUF, and run by
the reference executor bit-exactly against the golden model."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ttaccel.spec.accel_config import AccelConfig
from ttaccel.spec.artifact import Artifact, ArtifactError, load_artifact, save_artifact
from ttaccel.spec.compiler import LayerDoesNotFit, compile_layer, dense_as_tt_linear
from ttaccel.spec.formats import BINARY, INT8, TERNARY, Requant
from ttaccel.spec.golden import QuantTTLinear, tt_linear_int
from ttaccel.spec.isa import execute
from ttaccel.spec.safetensors_io import load_safetensors, save_safetensors


def _dense(fmt, m, n, seed=0, bias=True):
    rng = np.random.default_rng(seed)
    values = [-1, 0, 1] if fmt == TERNARY else [-1, 1]
    weight = rng.choice(values, size=(m, n)).astype(np.int8)
    b = rng.integers(-500, 500, n).astype(np.int32) if bias else None
    return dense_as_tt_linear(weight, fmt, Requant.from_ratio(1 / 37), b), weight, b


def _run(compiled, x, config):
    machine = execute(compiled.setup, config, compiled.setup_stream).machine
    beats = execute(compiled.run, config, compiled.input_stream(x), machine).output
    return compiled.decode_output(beats)


def _reference(x, weight, bias):
    """``requantize(x @ W + b)`` written out here: ratio 1/37 by the spec's constants."""
    requant = Requant.from_ratio(1 / 37)
    acc = x.astype(np.int64) @ weight.astype(np.int64) + bias
    p = acc * requant.multiplier + (1 << (requant.shift - 1))
    return np.clip(p >> requant.shift, -128, 127).astype(np.int8)


SMALL = AccelConfig(rows=4, cols=4, weight_buffer_depth=256, act_buffer_depth=512,
                    bias_buffer_depth=256, instruction_depth=1024)  # fmt: skip


@pytest.mark.parametrize("fmt", [TERNARY, BINARY])
@pytest.mark.parametrize(
    ("config", "m", "n", "streamed"),
    [
        (SMALL, 16, 24, False),  # 6 tiles x 16 = 96 B-words: resident
        (SMALL, 24, 64, True),  # 16 tiles x 24 = 384 B-words > 256: streamed
        (AccelConfig(rows=8, cols=8, weight_buffer_depth=32768, act_buffer_depth=4096,
                     bias_buffer_depth=4096, instruction_depth=1024), 384, 1536, True),
    ],
)  # fmt: skip
def test_a_dense_layer_runs_resident_or_streamed_exactly(fmt, config, m, n, streamed):
    layer, weight, bias = _dense(fmt, m, n)
    x = np.random.default_rng(1).integers(-128, 128, (10, m), dtype=np.int8)
    compiled = compile_layer(layer, 10, config)
    assert compiled.streams_weights == streamed
    out = _run(compiled, x, config)
    np.testing.assert_array_equal(out, tt_linear_int(x, layer))
    np.testing.assert_array_equal(out, _reference(x, weight, bias))


@pytest.mark.parametrize(
    ("layer_fmt", "engine_fmt"), [(TERNARY, TERNARY), (BINARY, BINARY), (BINARY, TERNARY)]
)
def test_multiplier_free_engines_run_their_formats(layer_fmt, engine_fmt):
    config = AccelConfig(rows=4, cols=4, weight_format=engine_fmt, weight_buffer_depth=64,
                         act_buffer_depth=512, bias_buffer_depth=256)  # fmt: skip
    layer, weight, bias = _dense(layer_fmt, 16, 24, seed=2)
    x = np.random.default_rng(3).integers(-128, 128, (6, 16), dtype=np.int8)
    for compiled in (compile_layer(layer, 6, config),):
        assert compiled.streams_weights  # 6 tiles x 16 > 64 B-words
        np.testing.assert_array_equal(_run(compiled, x, config), _reference(x, weight, bias))


def test_ternary_codes_are_refused_by_a_binary_engine():
    config = AccelConfig(rows=4, cols=4, weight_format=BINARY)
    layer, _, _ = _dense(TERNARY, 16, 24)
    with pytest.raises(LayerDoesNotFit, match="ternary codes are not all binary codes"):
        compile_layer(layer, 4, config)


def test_a_binary_layer_with_a_zero_code_is_refused_naming_the_core():
    weight = np.ones((4, 4), np.int8)
    weight[2, 1] = 0
    with pytest.raises(ValueError, match="core 0 holds 0, not a legal binary code"):
        dense_as_tt_linear(weight, BINARY, Requant(1, 0))


def _artifact(fmt):
    layer, _, _ = _dense(fmt, 24, 40, bias=True)
    layer = QuantTTLinear(layer.cores, fmt, layer.plan, layer.merge_requants,
                          layer.stage_requants, layer.bias, 0.02, 0.05)  # fmt: skip
    return Artifact({"architecture": "test"}, {"lin": layer}, vocab=["a", "b"])


@pytest.mark.parametrize("fmt", [TERNARY, BINARY])
def test_dense_layers_are_packed_at_their_bit_width(fmt, tmp_path):
    path = tmp_path / "a.safetensors"
    artifact = _artifact(fmt)
    save_artifact(path, artifact)
    tensors, _ = load_safetensors(path)
    assert tensors["lin.core0"].shape == (24 * 40 * fmt.bits // 8,)  # 240 or 120 bytes
    back = load_artifact(path).tt_linears["lin"]
    assert back.weight_format == fmt
    np.testing.assert_array_equal(back.cores[0], artifact.tt_linears["lin"].cores[0])


def test_a_ternary_layer_relabelled_binary_is_refused_naming_the_tensor(tmp_path):
    path = tmp_path / "a.safetensors"
    save_artifact(path, _artifact(TERNARY))
    tensors, meta = load_safetensors(path)
    manifest = json.loads(meta["ttaccel"])
    manifest["tt_linears"]["lin"]["weight_format"] = "binary"  # 2-bit codes read as 1-bit
    save_safetensors(path, tensors, {"ttaccel": json.dumps(manifest)})
    with pytest.raises(ArtifactError, match="shape mismatch") as caught:
        load_artifact(path)
    assert caught.value.field == "lin.core0"


def test_int8_engine_multiplies_binary_codes_as_plus_minus_one():
    """The int8 array's B-words of a binary layer hold the int8 numbers -1 and +1."""
    config = AccelConfig(rows=4, cols=4, weight_format=INT8)
    layer, weight, _ = _dense(BINARY, 8, 4, bias=False)
    compiled = compile_layer(layer, 4, config)
    (load,) = [c for c in compiled.constants if c.buffer.name == "WBUF"]
    np.testing.assert_array_equal(load.values, weight)  # one tile of 4 columns: K x cols
    assert load.values.dtype == np.int8 and set(np.unique(load.values)) == {-1, 1}
