"""Integer golden models against independent naive-loop implementations (Python ints)."""

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ttaccel.spec.formats import FORMATS, INT4, INT8, Requant, dequantize, quantize
from ttaccel.spec.golden import (
    QuantTTEmbedding,
    QuantTTLinear,
    gemm_int,
    merge_cores_int,
    tt_contract_int,
    tt_embedding_int,
)
from ttaccel.spec.ptq import calibrate_tt_linear
from ttaccel.spec.tt import TTShape, best_plan, tt_contract, tt_layer_modes, tt_svd

from .strategies import int_cores, requants, tt_shapes


def py_requant(total: int, r: Requant) -> int:
    value = total * r.multiplier
    if r.shift:
        value = (value + (1 << (r.shift - 1))) // (1 << r.shift)
    fmt = r.out_format
    if fmt.name == "binary":
        return 1 if value >= 0 else -1
    return min(max(value, fmt.qmin), fmt.qmax)


def naive_contract_int(x, cores, stage_requants, bias):
    """Stage by stage with explicit index loops. State axes before core k:
    (b, j_0..j_{k-1}, r_k, i_k..i_{d-1}), exactly as the layout documents."""
    d = len(cores)
    in_modes = [c.shape[1] for c in cores]
    out_modes = [c.shape[2] for c in cores]
    batch = x.shape[0]
    state = {}
    for b in range(batch):
        for i, ii in enumerate(itertools.product(*map(range, in_modes))):
            state[(b, (), 0, ii)] = int(x[b, i])
    for k, core in enumerate(cores):
        r_in, m, n, r_out = core.shape
        new = {}
        for b in range(batch):
            for jj in itertools.product(*map(range, out_modes[:k])):
                for rest in itertools.product(*map(range, in_modes[k + 1 :])):
                    for jk in range(n):
                        for r2 in range(r_out):
                            total = sum(
                                state[(b, jj, r1, (ik, *rest))] * int(core[r1, ik, jk, r2])
                                for r1 in range(r_in)
                                for ik in range(m)
                            )
                            new[(b, (*jj, jk), r2, rest)] = total
        if k == d - 1:
            out = np.zeros((batch, math.prod(out_modes)), dtype=np.int64)
            for b in range(batch):
                for j, jj in enumerate(itertools.product(*map(range, out_modes))):
                    total = new[(b, jj, 0, ())] + (int(bias[j]) if bias is not None else 0)
                    out[b, j] = py_requant(total, stage_requants[k])
            return out
        state = {key: py_requant(v, stage_requants[k]) for key, v in new.items()}
    raise AssertionError


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_integer_contraction_equals_naive_loops(data):
    shape = data.draw(tt_shapes(max_cores=3, max_mode=3, max_rank=3))
    fmt = FORMATS[data.draw(st.sampled_from(["int8", "int4", "int2", "ternary", "binary"]))]
    cores = data.draw(int_cores(shape, fmt))
    batch = data.draw(st.integers(1, 3))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    x = rng.choice([-128, 127, -1, 0, 1, 5, -77], size=(batch, shape.in_features)).astype(np.int8)
    stage_requants = [data.draw(requants()) for _ in range(shape.num_cores)]
    bias = rng.integers(-(2**20), 2**20, size=shape.out_features).astype(np.int32)
    expected = naive_contract_int(x, cores, stage_requants, bias)
    got = tt_contract_int(x, cores, stage_requants, bias)
    assert np.array_equal(got, expected)


def naive_merge_int(left, right, requant):
    r0, m0, n0, _ = left.shape
    r1, m1, n1, r2 = right.shape
    out = np.zeros((r0, m0 * m1, n0 * n1, r2), dtype=np.int64)
    for a, i0, j0, i1, j1, c in itertools.product(*map(range, (r0, m0, n0, m1, n1, r2))):
        total = sum(int(left[a, i0, j0, b]) * int(right[b, i1, j1, c]) for b in range(r1))
        out[a, i0 * m1 + i1, j0 * n1 + j1, c] = py_requant(total, requant)
    return out


@settings(max_examples=30)
@given(data=st.data())
def test_integer_merge_equals_naive_loops(data):
    shape = data.draw(
        tt_shapes(max_cores=2, max_mode=3, max_rank=4).filter(lambda s: s.num_cores == 2)
    )
    cores = data.draw(int_cores(shape, INT4))
    requant = data.draw(requants(INT4))
    assert np.array_equal(merge_cores_int(*cores, requant), naive_merge_int(*cores, requant))


def naive_embedding(ids, layer):
    rows = []
    modes = [c.shape[1] for c in layer.cores]
    for i in ids.tolist():
        digits = np.unravel_index(i, modes)
        state = layer.cores[0][0, digits[0]].astype(object)  # (n0, r1) as Python ints
        for k in range(1, len(layer.cores)):
            core = layer.cores[k][:, digits[k]].astype(object)  # (r, n, r')
            prod = np.einsum("ar,rnc->anc", state, core).reshape(-1, core.shape[2])
            state = np.vectorize(lambda v, k=k: py_requant(int(v), layer.stage_requants[k - 1]))(
                prod
            ).astype(object)
        rows.append([int(v) for v in np.ravel(state)])
    return np.array(rows)


@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_integer_embedding_equals_naive_loops(data):
    shape = data.draw(tt_shapes(max_cores=3, max_mode=4, max_rank=3))
    cores = data.draw(int_cores(shape, INT8))
    stages = tuple(data.draw(requants()) for _ in range(shape.num_cores - 1))
    layer = QuantTTEmbedding(tuple(cores), INT8, stages, shape.in_features, 0.1)
    ids = np.array(
        data.draw(st.lists(st.integers(0, shape.in_features - 1), min_size=1, max_size=5))
    )
    assert np.array_equal(tt_embedding_int(ids, layer), naive_embedding(ids, layer))


def test_embedding_rejects_out_of_range_ids():
    cores = (np.ones((1, 4, 2, 1), dtype=np.int8),)
    layer = QuantTTEmbedding(cores, INT8, (), 3, 1.0)
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        layer(np.array([3]))


def test_gemm_int_overflow_is_an_error():
    a = np.full((1, 2**17 + 1), -128, dtype=np.int8)
    with pytest.raises(OverflowError, match="int32"):
        gemm_int(a, np.full((2**17 + 1, 1), -128))


def test_quant_layer_validates_its_fields():
    cores = (np.zeros((1, 2, 1, 2), np.int8), np.zeros((2, 1, 3, 1), np.int8))
    r = Requant(1, 0)
    with pytest.raises(ValueError, match="merge requants"):
        QuantTTLinear(cores, INT8, ((0, 2),), ((),), (r,), None, 1.0, 1.0)
    with pytest.raises(ValueError, match="not a legal int4 code"):
        QuantTTLinear(
            (np.full((1, 2, 3, 1), 9, np.int8),), INT4, ((0, 1),), ((),), (r,), None, 1, 1
        )
    with pytest.raises(ValueError, match=r"bias must have shape \(3,\)"):
        QuantTTLinear(cores, INT8, ((0, 1), (1, 2)), ((), ()), (r, r), np.zeros(2), 1.0, 1.0)


def test_calibrated_int8_layer_tracks_the_float_layer():
    """Post-training int8 quantization of a TT layer stays close to its float output.

    Float tolerance: each of the ~3 requantization points adds up to half an LSB of an int8
    max-abs scale, so the relative output error stays at a few percent; 6% is the bound.
    """
    rng = np.random.default_rng(0)
    w = rng.standard_normal((96, 64)) / 10
    modes = tt_layer_modes([8, 12], [8, 8])
    cores, _ = tt_svd(w, *modes, ranks=8)
    shape = TTShape(*modes, (1, 8, 8, 8, 1))
    x = rng.standard_normal((64, 96))
    bias = rng.standard_normal(64) / 10
    layer = calibrate_tt_linear(cores, x, INT8, best_plan(shape, 64), bias)
    y = dequantize(layer(quantize(x, layer.input_scale, INT8)), layer.output_scale)
    ref = tt_contract(x, cores) + bias
    assert np.linalg.norm(y - ref) / np.linalg.norm(ref) < 0.06
