"""TT layers: full-rank TT-SVD reproduces dense layers; plans; mode/rank validation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from ttaccel.models.quant import LsqQuantizer
from ttaccel.models.tt import (
    TTEmbedding,
    TTLinear,
    auto_embedding_modes,
    auto_linear_modes,
    cheapest_training_plan,
    resolve_ranks,
    tt_to_dense,
)
from ttaccel.spec.formats import INT4
from ttaccel.spec.tt import TTShape, best_plan, plan_macs


@pytest.mark.parametrize(
    ("in_f", "out_f", "in_modes", "out_modes"),
    [
        (24, 36, (2, 3, 4, 1), (1, 1, 6, 6)),  # seed 000 layout, 4 cores
        (24, 48, None, None),  # automatic modes
        (12, 20, (3, 4), (4, 5)),  # paired TT-matrix modes
    ],
)
def test_full_rank_tt_linear_equals_dense(in_f, out_f, in_modes, out_modes):
    torch.manual_seed(1)
    dense = nn.Linear(in_f, out_f)
    tt = TTLinear.from_linear(dense, 10_000, in_modes, out_modes)
    x = torch.randn(7, 5, in_f)
    assert tt.svd_error < 1e-10
    torch.testing.assert_close(tt(x), dense(x), rtol=1e-5, atol=1e-5)
    # The reconstructed weight is the dense weight, transposed (W is (in, out)).
    torch.testing.assert_close(tt_to_dense(list(tt.cores)), dense.weight.T, rtol=1e-5, atol=1e-5)


def test_low_rank_tt_linear_matches_its_own_reconstruction():
    torch.manual_seed(2)
    dense = nn.Linear(48, 48)
    tt = TTLinear.from_linear(dense, 3, (6, 8, 1, 1), (1, 1, 8, 6))
    assert tt.shape.ranks == (1, 3, 3, 3, 1)
    assert 0.1 < tt.svd_error < 1.0  # a random matrix is far from rank 3
    x = torch.randn(4, 48)
    expected = x @ tt_to_dense(list(tt.cores)) + tt.bias
    torch.testing.assert_close(tt(x), expected, rtol=1e-5, atol=1e-5)


def test_full_rank_tt_embedding_equals_table_with_padding():
    torch.manual_seed(3)
    table = nn.Embedding(57, 12, padding_idx=0)
    tt = TTEmbedding.from_embedding(table, 10_000, (4, 4, 4), (2, 2, 3))  # 64 >= 57 rows
    ids = torch.randint(0, 57, (3, 9))
    torch.testing.assert_close(tt(ids), table(ids), rtol=1e-5, atol=1e-5)
    assert tt(ids).shape == (3, 9, 12)


def test_seed000_plan_is_two_skinny_gemms():
    # Seed 000: 768x768 as [24, 32] -> [32, 24], ranks [1, 24, 30, 24, 1].
    shape = TTShape((24, 32, 1, 1), (1, 1, 32, 24), (1, 24, 30, 24, 1))
    assert best_plan(shape) == ((0, 2), (2, 4))
    online, _ = plan_macs(shape, ((0, 2), (2, 4)))
    assert sum(online) == 2 * 768 * 30  # 46k MAC per token instead of 590k
    # With cores changing every step, the training plan also pays the merges; for a large
    # batch it is the same plan, and never the full weight.
    assert cheapest_training_plan(shape, 4096) == ((0, 2), (2, 4))


def test_training_plan_forms_the_full_weight_only_when_cheaper():
    full = TTShape((4, 4, 1, 1), (1, 1, 4, 4), (1, 4, 16, 4, 1))  # full rank: dense is cheapest
    assert cheapest_training_plan(full, 1000) == ((0, 4),)
    low = TTShape((16, 24, 1, 1), (1, 1, 24, 16), (1, 16, 8, 16, 1))
    assert len(cheapest_training_plan(low, 1000)) >= 2


def test_auto_modes():
    assert auto_linear_modes(768, 768) == ((24, 32, 1, 1), (1, 1, 32, 24))
    ins, outs = auto_linear_modes(384, 1536)
    assert math.prod(ins) == 384 and math.prod(outs) == 1536
    rows, cols = auto_embedding_modes(30522, 384)
    assert 30522 <= math.prod(rows) <= 30522 * 1.02 + 1 and math.prod(cols) == 384


def test_resolve_ranks_caps_ints_and_rejects_too_large_lists():
    modes = ((4, 6, 1, 1), (1, 1, 6, 4))
    assert resolve_ranks(modes, 10) == (1, 4, 10, 4, 1)
    assert resolve_ranks(modes, [3, 5, 3]) == (1, 3, 5, 3, 1)
    with pytest.raises(ValueError, match=r"rank 9 at boundary 1 is larger than the modes"):
        resolve_ranks(modes, [9, 5, 3])
    with pytest.raises(ValueError, match="ranks must be"):
        resolve_ranks(modes, [3, 5])


def test_from_linear_rejects_modes_not_multiplying_to_the_layer():
    with pytest.raises(ValueError, match=r"multiply to 25 x 36, but the layer is 24 x 36"):
        TTLinear.from_linear(nn.Linear(24, 36), 4, (5, 5, 1, 1), (1, 1, 6, 6))


def test_tt_linear_backward_reaches_every_core():
    tt = TTLinear((4, 6, 1, 1), (1, 1, 6, 4), (1, 4, 3, 4, 1))
    tt(torch.randn(5, 24)).square().sum().backward()
    for core in tt.cores:
        assert core.grad is not None and float(core.grad.abs().sum()) > 0
    assert np.isfinite(float(tt.bias.grad.abs().sum()))


def test_quantized_tt_linear_backward_reaches_cores_bias_and_every_scale():
    tt = TTLinear.from_linear(nn.Linear(24, 24), 3, (4, 6, 1, 1), (1, 1, 6, 4),
                              plan=((0, 2), (2, 4)))  # fmt: skip
    tt.enable_quantization(INT4)
    tt.train()
    tt(torch.randn(16, 24)).square().sum().backward()
    for core in tt.cores:
        assert float(core.grad.abs().sum()) > 0
    assert float(tt.bias.grad.abs().sum()) > 0
    scales = [m.scale for m in tt.modules() if isinstance(m, LsqQuantizer)]
    assert len(scales) == 1 + 4 + 2 + 2  # input, cores, one merge per segment, stages
    assert all(s.grad is not None and float(s.grad) != 0 for s in scales)
