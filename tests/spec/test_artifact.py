"""The artifact: bit-exact round trip and one documented error per kind of bad artifact."""

import json
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ttaccel.spec.artifact import Artifact, ArtifactError, load_artifact, save_artifact
from ttaccel.spec.formats import FORMATS, INT4, Requant
from ttaccel.spec.golden import QuantTTEmbedding, QuantTTLinear
from ttaccel.spec.safetensors_io import load_safetensors, save_safetensors
from ttaccel.spec.tt import best_plan, merged_shape

from .strategies import int_cores, requants, tt_shapes


@st.composite
def artifacts(draw):
    linears = {}
    for index in range(draw(st.integers(1, 3))):
        shape = draw(tt_shapes(max_cores=4, max_mode=4, max_rank=4))
        fmt = FORMATS[draw(st.sampled_from(sorted(FORMATS)))]
        plan = best_plan(shape, draw(st.integers(1, 64)))
        merges = tuple(tuple(draw(requants(fmt)) for _ in range(b - a - 1)) for a, b in plan)
        stages = tuple(draw(requants()) for _ in range(merged_shape(shape, plan).num_cores))
        bias = None
        if draw(st.booleans()):
            bias = np.arange(shape.out_features, dtype=np.int32) * draw(st.integers(-999, 999))
        scale = st.floats(1e-6, 1e3, allow_nan=False)
        linears[f"encoder.layer.{index}.dense"] = QuantTTLinear(
            tuple(draw(int_cores(shape, fmt))), fmt, plan, merges, stages, bias,
            draw(scale), draw(scale),
        )  # fmt: skip
    shape = draw(tt_shapes(max_cores=3, max_mode=5, max_rank=3))
    embedding = QuantTTEmbedding(
        tuple(draw(int_cores(shape, INT4))), INT4,
        tuple(draw(requants()) for _ in range(shape.num_cores - 1)),
        draw(st.integers(1, shape.in_features)), 0.125,
    )  # fmt: skip
    token = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\n"), min_size=1)
    vocab = draw(st.lists(token, max_size=8))
    tensors = {"classifier.weight": np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4)}
    return Artifact({"hidden_size": 4, "note": "tiny"}, linears, {"emb": embedding}, tensors, vocab)


def assert_same(a: Artifact, b: Artifact):
    assert a.model_config == b.model_config and a.vocab == b.vocab
    assert a.activation_format == b.activation_format
    assert (
        a.tt_linears.keys() == b.tt_linears.keys()
        and a.tt_embeddings.keys() == b.tt_embeddings.keys()
    )
    for name, x in a.tt_linears.items():
        y = b.tt_linears[name]
        assert all(np.array_equal(p, q) for p, q in zip(x.cores, y.cores, strict=True))
        assert (x.weight_format, x.plan, x.merge_requants, x.stage_requants) == (
            y.weight_format, y.plan, y.merge_requants, y.stage_requants,
        )  # fmt: skip
        assert (x.input_scale, x.output_scale) == (y.input_scale, y.output_scale)  # exact floats
        assert (x.bias is None) == (y.bias is None)
        if x.bias is not None:
            assert np.array_equal(x.bias, y.bias) and y.bias.dtype == np.int32
    for name, x in a.tt_embeddings.items():
        y = b.tt_embeddings[name]
        assert all(np.array_equal(p, q) for p, q in zip(x.cores, y.cores, strict=True))
        assert (x.stage_requants, x.num_embeddings, x.output_scale) == (
            y.stage_requants, y.num_embeddings, y.output_scale,
        )  # fmt: skip
    for name, tensor in a.tensors.items():
        assert np.array_equal(tensor, b.tensors[name])


@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(artifacts())
def test_round_trip_is_bit_exact(tmp_path, artifact):
    path = tmp_path / "model.safetensors"
    save_artifact(path, artifact)
    assert_same(artifact, load_artifact(path))


def small_artifact():
    cores = (np.array([[[[1, -2]], [[3, 0]]]], np.int8), np.array([[[[-1]]], [[[2]]]], np.int8))
    layer = QuantTTLinear(
        cores, INT4, ((0, 2),), ((Requant(3, 2, INT4),),),
        (Requant(40000, 20),), np.array([5], np.int32), 0.5, 0.25,
    )  # fmt: skip
    return Artifact(
        {"hidden_size": 2}, {"lin": layer}, {},
        {"ln.weight": np.ones(2, np.float32)}, ["[PAD]", "hello"],
    )  # fmt: skip


@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "a.safetensors"
    save_artifact(path, small_artifact())
    return path


def rewrite(path, edit_manifest=None, edit_tensors=None):
    tensors, metadata = load_safetensors(path)
    manifest = json.loads(metadata["ttaccel"])
    if edit_manifest:
        edit_manifest(manifest)
    if edit_tensors:
        edit_tensors(tensors)
    save_safetensors(path, tensors, {"ttaccel": json.dumps(manifest)})


def test_the_reference_artifact_loads_and_runs(saved):
    artifact = load_artifact(saved)
    assert artifact.tt_linears["lin"](np.array([[10, -3]], np.int8)).shape == (1, 1)
    assert artifact.vocab == ["[PAD]", "hello"]


BAD_CASES = {
    "wrong schema version": (
        lambda m: m.update(schema_version=99), None, "schema_version", "expected 1, found 99",
    ),
    "missing tensor": (None, lambda t: t.pop("lin.core1"), "lin.core1", "tensor missing"),
    "shape mismatch": (
        None, lambda t: t.update({"lin.core0": np.zeros(3, np.uint8)}), "lin.core0",
        "shape mismatch",
    ),
    "rank mismatch": (
        lambda m: m["tt_linears"]["lin"].update(ranks=[1, 2, 2]), None,
        "tt_linears['lin'].ranks", "rank/mode mismatch",
    ),
    "bit width out of range": (
        lambda m: m["tt_linears"]["lin"].update(weight_format="int3"), None,
        "tt_linears['lin'].weight_format", "not one of",
    ),
    "value out of range for the bit width": (
        lambda m: m["tt_linears"]["lin"].update(weight_format="ternary"),
        lambda t: t.update({"lin.core0": np.array([0b10101010], np.uint8)}),
        "lin.core0", "value out of range for ternary",
    ),
    "requant constant out of range": (
        lambda m: m["tt_linears"]["lin"].update(stage_requants=[[70000, 3, "int8"]]), None,
        "tt_linears['lin'].stage_requants[0]", "multiplier",
    ),
    "NaN scale": (
        lambda m: m["tt_linears"]["lin"].update(input_scale=float("nan")), None,
        "tt_linears['lin'].input_scale", "positive and finite, found nan",
    ),
    "infinite scale": (
        lambda m: m["tt_linears"]["lin"].update(output_scale=float("inf")), None,
        "tt_linears['lin'].output_scale", "positive and finite, found inf",
    ),
    "negative scale": (
        lambda m: m["tt_linears"]["lin"].update(output_scale=-1.0), None,
        "tt_linears['lin'].output_scale", "positive and finite",
    ),
    "bias of the wrong shape": (
        None, lambda t: t.update({"lin.bias": np.zeros(4, np.int32)}), "lin.bias",
        "shape mismatch",
    ),
    "non-finite float tensor": (
        None, lambda t: t.update({"ln.weight": np.array([1, np.inf], np.float32)}), "ln.weight",
        "NaN or infinite",
    ),
    "wrong vocabulary size": (lambda m: m.update(vocab_size=3), None, "tokenizer.vocab", "holds 2"),
    "not an artifact": (lambda m: m.update(format="other"), None, "format", "ttaccel-artifact"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_artifacts_name_the_field(saved, case):
    edit_manifest, edit_tensors, field, message = BAD_CASES[case]
    rewrite(saved, edit_manifest, edit_tensors)
    with pytest.raises(ArtifactError, match=message) as info:
        load_artifact(saved)
    assert info.value.field == field


@pytest.mark.parametrize("keep", [0, 5, 100, -1])
def test_truncated_file(saved, keep):
    data = saved.read_bytes()
    saved.write_bytes(data[: keep if keep >= 0 else len(data) - 1])
    with pytest.raises(ArtifactError, match="truncated") as info:
        load_artifact(saved)
    assert info.value.field == "file"


@pytest.mark.parametrize(
    ("token", "message"), [("a\nb", "contains a newline"), ("\ud800", "not UTF-8")]
)
def test_vocab_tokens_must_be_utf8_lines(tmp_path, token, message):
    artifact = small_artifact()
    artifact.vocab = ["ok", token]
    with pytest.raises(ValueError, match=f"vocab token 1 .* {message}"):
        save_artifact(tmp_path / "x.safetensors", artifact)


def test_missing_manifest_and_missing_file(tmp_path):
    path = tmp_path / "plain.safetensors"
    save_safetensors(path, {"x": np.zeros(2, np.float32)})
    with pytest.raises(ArtifactError, match="not a ttaccel artifact"):
        load_artifact(path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_artifact(tmp_path / "nope.safetensors")


def test_nbytes_counts_packed_payload():
    artifact = small_artifact()
    # int4 cores: 4 codes -> 2 bytes, 2 codes -> 1 byte; bias 4; float 8; vocab "[PAD]\nhello" 11.
    assert artifact.nbytes() == 2 + 1 + 4 + 8 + 11


def test_header_is_valid_safetensors_for_the_reference_library(saved):
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    tensors = safetensors_numpy.load_file(str(saved))
    assert tensors["lin.bias"].tolist() == [5]
    (length,) = struct.unpack("<Q", saved.read_bytes()[:8])
    assert length % 8 == 0
