"""spec/inference.py: the float64-exact TT contraction equals the golden integer model, and
the float helpers match torch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ttaccel.spec.formats import INT4, INT8, Requant
from ttaccel.spec.golden import tt_contract_int
from ttaccel.spec.inference import gelu, layer_norm, tt_contract_exact


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_exact_contraction_equals_golden(seed):
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    cores = [
        rng.integers(-128, 128, size=(1, 64, 1, 20)),
        rng.integers(-8, 8, size=(20, 1, 96, 1)),
    ]
    requants = (Requant(40_000 + seed, 20, INT8), Requant(51_234, 18 + seed, INT8))
    x = rng.integers(-128, 128, size=(37, 64))
    bias = rng.integers(-50_000, 50_000, size=96).astype(np.int32)
    golden = tt_contract_int(x, cores, requants, bias)
    np.testing.assert_array_equal(tt_contract_exact(x, cores, requants, bias), golden)
    assert golden.min() < 0 < golden.max()  # a non-trivial range was exercised


def test_exact_contraction_keeps_the_int32_check():
    cores = [np.full((1, 4, 1, 2), 127), np.full((2, 1, 3, 1), 127)]
    with pytest.raises(OverflowError, match="int32"):
        tt_contract_exact(np.full((1, 4), 127), cores,
                          (Requant(1, 0, INT8), Requant(1, 0, INT4)),
                          np.full(3, 2**31 - 1, dtype=np.int32))  # fmt: skip


def test_gelu_and_layer_norm_match_torch():
    x = np.linspace(-6, 6, 1001, dtype=np.float32)
    expected = torch.nn.functional.gelu(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(gelu(x), expected, rtol=1e-5, atol=1e-6)
    rng = np.random.default_rng(0)
    h = rng.normal(size=(5, 24)).astype(np.float32)
    w, b = rng.normal(size=24).astype(np.float32), rng.normal(size=24).astype(np.float32)
    ln = torch.nn.functional.layer_norm(torch.from_numpy(h), (24,), torch.from_numpy(w),
                                        torch.from_numpy(b), 1e-12).numpy()  # fmt: skip
    np.testing.assert_allclose(layer_norm(h, w, b, 1e-12), ln, rtol=1e-5, atol=1e-5)
