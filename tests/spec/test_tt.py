"""TT-matrix layout, TT-SVD, float contraction, plans and counts (seed 000's figures)."""

import functools
import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ttaccel.spec.formats import INT4, INT8
from ttaccel.spec.tt import (
    TTShape,
    balanced_factorization,
    best_plan,
    merge_cores,
    merged_shape,
    plan_macs,
    tt_contract,
    tt_layer_modes,
    tt_shape_of,
    tt_svd,
    tt_to_dense,
)

from .strategies import tt_shapes

ATTENTION = TTShape(*tt_layer_modes([24, 32], [32, 24]), (1, 24, 30, 24, 1))
FFN = TTShape(*tt_layer_modes([32, 24], [48, 64]), (1, 30, 30, 30, 1))
EMBEDDING = TTShape((16, 20, 10, 10), (4, 4, 8, 6), (1, 20, 20, 20, 1))


def test_seed_000_parameter_counts():
    assert ATTENTION.num_params == 47_232
    assert ATTENTION.in_features == ATTENTION.out_features == 768
    assert FFN.num_params == 67_680
    assert (FFN.in_features, FFN.out_features) == (768, 3072)
    assert EMBEDDING.num_params == 66_480
    # Per encoder layer: Q, K, V, O and the two FFN linears (the second one reversed).
    ffn_out = TTShape(*tt_layer_modes([64, 48], [24, 32]), (1, 30, 30, 30, 1))
    assert 4 * ATTENTION.num_params + FFN.num_params + ffn_out.num_params == 324_288


def test_bytes_at_bit_width():
    assert ATTENTION.nbytes(INT8) == 47_232
    assert ATTENTION.nbytes(INT4) == 47_232 // 2


def test_seed_000_merged_plan_is_two_skinny_gemms():
    plan = best_plan(ATTENTION, batch=128)
    assert plan == ((0, 2), (2, 4))
    online, offline = plan_macs(ATTENTION, plan, batch=1)
    assert online == [768 * 30, 30 * 768]  # 46k MAC/token instead of 590k
    assert offline == 24 * 32 * 24 * 30 + 30 * 32 * 24 * 24
    assert sum(plan_macs(ATTENTION, ((0, 1), (1, 2), (2, 3), (3, 4)))[0]) > sum(online)


def all_plans(d):
    for cuts in itertools.product([False, True], repeat=d - 1):
        bounds = [0] + [k + 1 for k, c in enumerate(cuts) if c] + [d]
        yield tuple(itertools.pairwise(bounds))


@given(tt_shapes(max_cores=5, max_mode=6, max_rank=6), st.integers(1, 9))
def test_best_plan_is_minimal_over_all_plans(shape, batch):
    cost = sum(plan_macs(shape, best_plan(shape, batch), batch)[0])
    assert cost == min(sum(plan_macs(shape, p, batch)[0]) for p in all_plans(shape.num_cores))


def naive_dense(cores):
    """W[i, j] from the layout's definition, by explicit loops over multi-indices."""
    shape = tt_shape_of(cores)
    w = np.zeros((shape.in_features, shape.out_features))
    for i, ii in enumerate(itertools.product(*map(range, shape.in_modes))):
        for j, jj in enumerate(itertools.product(*map(range, shape.out_modes))):
            prod = np.eye(1)
            for k, core in enumerate(cores):
                prod = prod @ core[:, ii[k], jj[k], :]
            w[i, j] = prod[0, 0]
    return w


@settings(max_examples=30)
@given(tt_shapes(max_cores=3, max_mode=3, max_rank=3), st.integers(0, 2**32 - 1))
def test_reconstruction_follows_the_layout_definition(shape, seed):
    rng = np.random.default_rng(seed)
    cores = [rng.standard_normal(s) for s in shape.core_shapes]
    np.testing.assert_allclose(tt_to_dense(cores), naive_dense(cores), rtol=1e-12, atol=1e-12)


@given(tt_shapes(max_cores=4, max_mode=4, max_rank=5), st.integers(1, 6), st.integers(0, 2**32 - 1))
def test_contraction_equals_product_with_reconstruction(shape, batch, seed):
    # float64 throughout: both sides sum the same terms in different orders, so they agree to a
    # few ulps of the magnitudes involved; 1e-9 relative to the output norm is ample.
    rng = np.random.default_rng(seed)
    cores = [rng.standard_normal(s) for s in shape.core_shapes]
    x = rng.standard_normal((batch, shape.in_features))
    expected = x @ tt_to_dense(cores)
    got = tt_contract(x, cores)
    assert got.shape == (batch, shape.out_features)
    assert np.linalg.norm(got - expected) <= 1e-9 * max(1.0, np.linalg.norm(expected))


@given(tt_shapes(max_cores=4, max_mode=4, max_rank=4), st.integers(0, 2**32 - 1))
def test_merging_along_any_plan_keeps_the_matrix(shape, seed):
    rng = np.random.default_rng(seed)
    cores = [rng.standard_normal(s) for s in shape.core_shapes]
    plan = best_plan(shape, batch=3)
    merged = [functools.reduce(merge_cores, cores[a:b]) for a, b in plan]
    assert tt_shape_of(merged) == merged_shape(shape, plan)
    np.testing.assert_allclose(tt_to_dense(merged), tt_to_dense(cores), rtol=1e-9, atol=1e-9)


@settings(max_examples=25)
@given(
    st.lists(st.integers(1, 4), min_size=1, max_size=3),
    st.lists(st.integers(1, 4), min_size=1, max_size=3),
    st.integers(0, 2**32 - 1),
)
def test_full_rank_tt_svd_reconstructs(in_modes, out_modes, seed):
    d = min(len(in_modes), len(out_modes))
    in_modes, out_modes = in_modes[:d], out_modes[:d]
    w = np.random.default_rng(seed).standard_normal((math.prod(in_modes), math.prod(out_modes)))
    cores, error = tt_svd(w, in_modes, out_modes, ranks=10_000)
    assert error < 1e-12
    np.testing.assert_allclose(tt_to_dense(cores), w, atol=1e-10)


def test_tt_svd_caps_ranks_and_reports_the_error():
    w = np.random.default_rng(0).standard_normal((24 * 32, 32 * 24))
    cores, error = tt_svd(w, *tt_layer_modes([24, 32], [32, 24]), ranks=[1, 24, 30, 24, 1])
    assert tt_shape_of(cores).ranks == (1, 24, 30, 24, 1)
    measured = np.linalg.norm(w - tt_to_dense(cores)) / np.linalg.norm(w)
    assert error == pytest.approx(measured)
    assert 0.5 < error < 1.0  # a random matrix is far from rank 30


def test_low_rank_matrix_is_recovered_exactly_at_its_rank():
    rng = np.random.default_rng(1)
    w = rng.standard_normal((12, 3)) @ rng.standard_normal((3, 20))
    # Boundary ranks: 3 (i0 has 3 values), 3 (the matrix rank), 5 (j1 has 5 values).
    _, error = tt_svd(w, *tt_layer_modes([3, 4], [4, 5]), ranks=[3, 3, 5])
    assert error < 1e-12


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(in_modes=(2, 3), out_modes=(2,), ranks=(1, 1)), "same length"),
        (dict(in_modes=(2,), out_modes=(2,), ranks=(1, 2, 1)), "2 entries"),
        (dict(in_modes=(2, 2), out_modes=(2, 2), ranks=(2, 2, 1)), "start and end with 1"),
        (dict(in_modes=(0,), out_modes=(2,), ranks=(1, 1)), "in_modes"),
    ],
)
def test_shape_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TTShape(**kwargs)


def test_core_chain_and_matrix_shape_errors():
    with pytest.raises(ValueError, match="core 1 has input rank 3 but core 0 has output rank 2"):
        tt_shape_of([np.zeros((1, 2, 2, 2)), np.zeros((3, 2, 2, 1))])
    with pytest.raises(ValueError, match="multiply to"):
        tt_svd(np.zeros((10, 10)), (2, 4), (2, 5), 4)
    with pytest.raises(ValueError, match=r"x must have shape \(B, 4\)"):
        tt_contract(np.zeros((2, 5)), [np.zeros((1, 4, 3, 1))])


@given(st.integers(1, 5000), st.integers(1, 4))
def test_balanced_factorization(n, parts):
    factors = balanced_factorization(n, parts)
    assert len(factors) == parts and math.prod(factors) == n
    assert list(factors) == sorted(factors, reverse=True)


def test_balanced_factorization_examples():
    assert balanced_factorization(768, 2) == (32, 24)
    assert balanced_factorization(3072, 2) == (64, 48)
