"""N:M sparse weights (seed 002) in the spec: the compressed layout, index packing, the integer
golden layer against the dense path, the artifact's ``nm_linears`` kind and its errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.spec.tiny_bert import doctored_artifact, tiny_bert_frame
from ttaccel.spec.artifact import Artifact, ArtifactError, load_artifact, save_artifact
from ttaccel.spec.formats import BINARY, INT4, INT8, TERNARY, Requant
from ttaccel.spec.golden import QuantNMLinear, gemm_int, nm_linear_int, tt_linear_int
from ttaccel.spec.inference import BertInference
from ttaccel.spec.nm import (
    check_nm,
    indices_nbytes,
    nm_compress,
    nm_expand,
    nm_magnitude_mask,
    pack_indices,
    parse_nm,
    unpack_indices,
)
from ttaccel.spec.safetensors_io import load_safetensors

PATTERNS = [(2, 4), (1, 4), (2, 8), (1, 2), (4, 8), (3, 16)]


@st.composite
def nm_weights(draw):
    """An N:M sparse int8 weight (out, in): random codes, pruned by magnitude, plus (n, m)."""
    n, m = draw(st.sampled_from(PATTERNS))
    rows, groups = draw(st.integers(1, 5)), draw(st.integers(1, 4))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    codes = rng.integers(-8, 8, (rows, groups * m))
    codes[rng.random(codes.shape) < 0.3] = 0  # some groups end with fewer than n nonzeros
    keep = nm_magnitude_mask(codes + rng.random(codes.shape) * 0.5, n, m)
    return (codes * keep).astype(np.int8), n, m


@given(nm_weights())
@settings(max_examples=150, deadline=None)
def test_compress_expand_round_trip_in_canonical_order(case):
    weight, n, m = case
    values, indices = nm_compress(weight, n, m)
    rows, k = weight.shape
    assert values.shape == indices.shape == (rows, k // m, n)
    assert values.dtype == np.int8 and indices.dtype == np.uint8
    assert (indices < m).all() and (np.diff(indices.astype(int), axis=-1) > 0).all()
    np.testing.assert_array_equal(nm_expand(values, indices, n, m, k), weight)
    # each kept value is the weight at its index; every nonzero weight is kept
    groups = weight.reshape(rows, k // m, m)
    np.testing.assert_array_equal(np.take_along_axis(groups, indices.astype(int), -1), values)
    assert np.count_nonzero(values) == np.count_nonzero(weight)
    # canonical: compressing the expansion gives the same arrays back
    again = nm_compress(nm_expand(values, indices, n, m, k), n, m)
    np.testing.assert_array_equal(again[0], values)
    np.testing.assert_array_equal(again[1], indices)


@given(st.sampled_from(PATTERNS), st.integers(0, 2**32 - 1))
@settings(max_examples=60, deadline=None)
def test_the_magnitude_mask_keeps_the_n_largest_of_every_group(pattern, seed):
    n, m = pattern
    w = np.random.default_rng(seed).normal(size=(3, 4 * m))
    mask = nm_magnitude_mask(w, n, m)
    groups, kept = np.abs(w).reshape(3, 4, m), mask.reshape(3, 4, m)
    assert (kept.sum(-1) == n).all()
    smallest_kept = np.where(kept, groups, np.inf).min(-1)
    largest_dropped = np.where(kept, -np.inf, groups).max(-1)
    assert (smallest_kept >= largest_dropped).all()


def test_a_group_with_zeros_is_padded_at_its_lowest_free_positions():
    weight = np.array([[0, 0, 5, 0, 3, 0, 0, -2]], dtype=np.int8)
    values, indices = nm_compress(weight, 2, 4)
    assert indices.tolist() == [[[0, 2], [0, 3]]] and values.tolist() == [[[0, 5], [3, -2]]]


@pytest.mark.parametrize("m", [2, 4, 8, 16])
def test_index_packing_round_trips(m):
    rng = np.random.default_rng(m)
    for count in (0, 1, 7, 8, 9, 37):
        idx = rng.integers(0, m, count).astype(np.uint8)
        data = pack_indices(idx, m)
        assert data.dtype == np.uint8 and data.shape == (indices_nbytes(count, m),)
        np.testing.assert_array_equal(unpack_indices(data, m, count), idx)


def test_index_packing_is_a_little_endian_bit_stream():
    # 2 bits: index 0 in the low bits of byte 0 (spec.packing's lane order)
    assert pack_indices(np.array([0, 1, 2, 3]), 4).tolist() == [0b11100100]
    # 3 bits straddle bytes: 1 = 001, 7 = 111, 5 = 101, least significant bit first
    assert pack_indices(np.array([1, 7, 5]), 8).tolist() == [0b01111001, 0b00000001]
    assert indices_nbytes(3, 8) == 2 and indices_nbytes(8, 8) == 3


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: nm_compress(np.array([[1, 2, 0, 3]]), 2, 4, name="bert.x.weight"),
         r"bert\.x\.weight is not 2:4 sparse: output row 0, input group 0 \(inputs 0\.\.3\) "
         r"holds 3 nonzero codes, more than 2"),
        (lambda: nm_compress(np.zeros((2, 6), np.int8), 2, 4, name="w"),
         r"w: in_features 6 is not a multiple of the group size m = 4"),
        (lambda: nm_expand(np.zeros((1, 1, 2)), np.array([[[0, 4]]]), 2, 4, 4, name="w"),
         r"w: index 4 out of range 0\.\.3 at output row 0, group 0, slot 1"),
        (lambda: nm_expand(np.zeros((1, 1, 2)), np.array([[[2, 1]]]), 2, 4, 4, name="w"),
         r"w: indices \[2, 1\] of output row 0, group 0 are not strictly ascending"),
        (lambda: nm_expand(np.zeros((1, 2, 2)), np.zeros((1, 2, 2)), 2, 4, 4, name="w"),
         r"w: values of shape \(1, 2, 2\) are not \(out_features, 1, 2\)"),
        (lambda: check_nm(2, 3), r"group size m must be one of \[2, 4, 8, 16\].* not 3"),
        (lambda: check_nm(5, 4), r"n must be in 1\.\.4 for m = 4, not 5"),
        (lambda: parse_nm("2-4"), r"expected 'N:M' such as '2:4'"),
        (lambda: pack_indices(np.array([0, 4]), 4), r"index 4 at position 1 is out of range"),
    ],
)  # fmt: skip
def test_bad_input_is_refused_naming_it(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# --- the integer layer ------------------------------------------------------------------------


def nm_layer(rng, n, m, k, out, fmt=INT4, bias=True) -> QuantNMLinear:
    codes = rng.integers(fmt.qmin, fmt.qmax + 1, (out, k))
    weight = (codes * nm_magnitude_mask(codes + rng.random(codes.shape), n, m)).astype(np.int8)
    values, indices = nm_compress(weight, n, m)
    requant = Requant.from_ratio(1.0 / (8 * np.sqrt(k)), INT8)
    b = rng.integers(-300, 300, out).astype(np.int32) if bias else None
    return QuantNMLinear(values, indices, n, m, k, fmt, requant, b, 0.05, 0.1)


@pytest.mark.parametrize(("n", "m"), [(2, 4), (1, 4), (2, 8)])
@pytest.mark.parametrize("fmt", [INT8, INT4, TERNARY])
def test_the_nm_golden_layer_is_the_dense_layer_it_expands_to(n, m, fmt):
    rng = np.random.default_rng(n * 10 + m)
    layer = nm_layer(rng, n, m, 32, 12, fmt)
    x = rng.integers(-128, 128, (5, 32)).astype(np.int8)
    dense = layer.dense_codes()  # (out, in)
    acc = x.astype(np.int64) @ dense.T.astype(np.int64) + layer.bias
    expected = np.clip(
        (acc * layer.requant.multiplier + (1 << (layer.requant.shift - 1)))
        >> layer.requant.shift, -128, 127,
    )  # fmt: skip
    np.testing.assert_array_equal(nm_linear_int(x, layer), expected)
    np.testing.assert_array_equal(layer(x), tt_linear_int(x, layer.as_tt_linear()))
    np.testing.assert_array_equal(gemm_int(x, dense.T), x.astype(np.int64) @ dense.T)
    again = QuantNMLinear.from_tt_linear(layer.as_tt_linear(), n, m)
    np.testing.assert_array_equal(again.values, layer.values)
    np.testing.assert_array_equal(again.indices, layer.indices)


def test_a_dense_layer_that_is_not_nm_cannot_be_stored_nm():
    rng = np.random.default_rng(0)
    dense = nm_layer(rng, 4, 4, 8, 3).as_tt_linear()  # 4:4 = dense: groups of 4 nonzeros
    with pytest.raises(ValueError, match=r"layer\.q is not 2:4 sparse: output row \d"):
        QuantNMLinear.from_tt_linear(dense, 2, 4, name="layer.q")


def test_binary_weights_are_refused_by_the_nm_layer():
    rng = np.random.default_rng(0)
    layer = nm_layer(rng, 2, 4, 8, 3, INT4)
    with pytest.raises(ValueError, match="cannot take binary weights"):
        QuantNMLinear(layer.values, layer.indices, 2, 4, 8, BINARY, layer.requant, None, 1, 1)
    with pytest.raises(ValueError, match="values hold 9, not a legal int4 code"):
        bad = layer.values.copy()
        bad[0, 0, 0] = 9
        QuantNMLinear(bad, layer.indices, 2, 4, 8, INT4, layer.requant, None, 1, 1)


# --- the artifact ----------------------------------------------------------------------------

H, FFN, V = 16, 32, 20


def nm_artifact(seed=0, fmt=INT4) -> Artifact:
    """A tiny 1-layer BERT whose six encoder linears are N:M layers (2:4, 1:4, 2:8 mixed)."""
    rng = np.random.default_rng(seed)
    patterns = [(2, 4), (1, 4), (2, 8), (2, 4), (2, 4), (1, 4)]
    shapes = {"intermediate.dense": (H, FFN), "output.dense": (FFN, H)}
    from ttaccel.spec.inference import LINEAR_NAMES

    nm = {}
    for name, (n, m) in zip(LINEAR_NAMES, patterns, strict=True):
        k, out = shapes.get(name, (H, H))
        nm["bert.encoder.layer.0." + name] = nm_layer(rng, n, m, k, out, fmt)
    model, tensors = tiny_bert_frame(rng, hidden=H, ffn=FFN, vocab=V, layers=1)
    return Artifact(model, {}, {}, tensors, [f"t{i}" for i in range(V)], nm_linears=nm)


@pytest.mark.parametrize("fmt", [INT8, INT4, TERNARY])
def test_the_artifact_stores_nm_layers_compressed_and_reads_them_back(fmt, tmp_path):
    art = nm_artifact(fmt=fmt)
    path = tmp_path / "nm.safetensors"
    save_artifact(path, art)
    tensors, meta = load_safetensors(path)
    manifest = json.loads(meta["ttaccel"])
    name = "bert.encoder.layer.0.intermediate.dense"
    assert manifest["tt_linears"] == {} and set(manifest["nm_linears"]) == set(art.nm_linears)
    entry = manifest["nm_linears"][name]
    assert entry["n"] == 2 and entry["m"] == 4 and entry["weight_format"] == fmt.name
    assert (entry["in_features"], entry["out_features"]) == (H, FFN)
    count = FFN * (H // 4) * 2
    assert tensors[f"{name}.nm_values"].shape == (-(-count * fmt.bits // 8),)
    assert tensors[f"{name}.nm_indices"].shape == (count * 2 // 8,)
    assert f"{name}.core0" not in tensors
    back = load_artifact(path)
    for n_, layer in art.nm_linears.items():
        got = back.nm_linears[n_]
        np.testing.assert_array_equal(got.values, layer.values)
        np.testing.assert_array_equal(got.indices, layer.indices)
        np.testing.assert_array_equal(got.bias, layer.bias)
        assert (got.n, got.m, got.requant, got.weight_format) == (
            layer.n, layer.m, layer.requant, layer.weight_format)  # fmt: skip
    payload = sum(t.nbytes for n_, t in tensors.items() if n_ != "tokenizer.vocab")
    assert back.nbytes() == payload + len("\n".join(back.vocab).encode())


def test_inference_runs_nm_layers_as_their_dense_expansion(tmp_path):
    art = nm_artifact()
    ids = [[2, 7, 9, 12, 3], [2, 5, 3]]
    dense = Artifact(art.model_config, art.integer_linears(), {}, art.tensors, art.vocab)
    assert all(len(layer.cores) == 1 for layer in dense.tt_linears.values())
    np.testing.assert_array_equal(BertInference(art).logits(ids), BertInference(dense).logits(ids))


NAME = "bert.encoder.layer.0.attention.self.query"


def _set(entry_key, value):
    def edit(tensors, manifest):
        manifest["nm_linears"][NAME][entry_key] = value

    return edit


def _swap_indices(tensors, manifest):
    idx = unpack_indices(tensors[f"{NAME}.nm_indices"], 4, H * (H // 4) * 2)
    idx[0], idx[1] = idx[1], idx[0]  # group 0 of row 0 now descending
    tensors[f"{NAME}.nm_indices"] = pack_indices(idx, 4)


def _short_values(tensors, manifest):
    tensors[f"{NAME}.nm_values"] = tensors[f"{NAME}.nm_values"][:-1]


@pytest.mark.parametrize(
    ("edit", "field", "message"),
    [
        (_set("weight_format", "binary"), f"nm_linears['{NAME}'].weight_format",
         "not one an N:M layer can take"),
        (_set("weight_format", "int3"), f"nm_linears['{NAME}'].weight_format", "not one of"),
        (_set("m", 3), f"nm_linears['{NAME}'].m", "group size m must be one of"),
        (_set("in_features", 18), f"nm_linears['{NAME}'].in_features", "multiple of m = 4"),
        (_swap_indices, f"{NAME}.nm_indices", "not strictly ascending"),
        (_short_values, f"{NAME}.nm_values", "shape mismatch"),
    ],
)  # fmt: skip
def test_a_bad_nm_layer_is_refused_naming_the_tensor(edit, field, message, tmp_path):
    path = tmp_path / "nm.safetensors"
    save_artifact(path, nm_artifact())
    bad = doctored_artifact(path, tmp_path / "bad.safetensors", edit)
    with pytest.raises(ArtifactError, match=message) as info:
        load_artifact(bad)
    assert info.value.field == field


def test_a_layer_cannot_be_both_tt_and_nm(tmp_path):
    art = nm_artifact()
    art.tt_linears[NAME] = art.nm_linears[NAME].as_tt_linear()
    with pytest.raises(ValueError, match=r"query' is both a TT linear and an N:M linear"):
        save_artifact(tmp_path / "both.safetensors", art)


def test_an_artifact_without_nm_layers_has_no_nm_key(tmp_path):
    art = nm_artifact()
    plain = Artifact(art.model_config, art.integer_linears(), {}, art.tensors, art.vocab)
    save_artifact(tmp_path / "a.safetensors", plain)
    _, meta = load_safetensors(tmp_path / "a.safetensors")
    assert "nm_linears" not in json.loads(meta["ttaccel"])
    assert load_artifact(tmp_path / "a.safetensors").nm_linears == {}


def test_docs_artifact_section_10_lists_every_nm_field_and_tensor(tmp_path):
    """docs/artifact.md section 10 against what save_artifact writes for an N:M layer."""
    from tests.spec.test_artifact_doc import DOC, _keys, _sections, _tables

    save_artifact(tmp_path / "nm.safetensors", nm_artifact())
    tensors, meta = load_safetensors(tmp_path / "nm.safetensors")
    manifest = json.loads(meta["ttaccel"])
    section = _sections(DOC.read_text(encoding="utf-8"))["10"]
    fields, names = _tables(section)[:2]
    for entry in manifest["nm_linears"].values():
        assert _keys(fields[1]) == set(entry)
    documented = {key.replace("<name>.", "") for key in _keys(names[1])}
    written = {t.rsplit(".", 1)[1] for t in tensors if t.startswith(NAME + ".")}
    assert documented == written == {"nm_values", "nm_indices", "bias"}
