"""to_int() through the spec's golden model equals the torch integer-simulation path exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from ttaccel.models.intsim import quantize_input
from ttaccel.models.intsim import tt_embedding_int as torch_embedding_int
from ttaccel.models.intsim import tt_linear_int as torch_linear_int
from ttaccel.models.tt import TTEmbedding, TTLinear
from ttaccel.spec.formats import INT2, INT4, INT8, quantize
from ttaccel.spec.golden import tt_embedding_int, tt_linear_int

SEED = 1234


def _trained_layer(fmt, power_of_two, plan, rank=5):
    torch.manual_seed(SEED)
    tt = TTLinear.from_linear(nn.Linear(48, 40), rank, (4, 12, 1, 1), (1, 1, 5, 8), plan=plan)
    tt.enable_quantization(fmt, power_of_two=power_of_two)
    tt.train()
    opt = torch.optim.SGD(tt.parameters(), lr=1e-2)
    for _ in range(3):  # move scales and cores off their initial values
        loss = tt(torch.randn(16, 48)).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return tt.eval()


@pytest.mark.parametrize("fmt", [INT8, INT4, INT2])
@pytest.mark.parametrize("power_of_two", [False, True])
@pytest.mark.parametrize("plan", [None, ((0, 4),), ((0, 1), (1, 3), (3, 4))])
def test_linear_golden_equals_torch_integer_path(fmt, power_of_two, plan):
    print(f"seed {SEED}")
    tt = _trained_layer(fmt, power_of_two, plan)
    layer = tt.to_int()
    x = torch.randn(33, 48) * 2
    codes = quantize(x.double().numpy(), layer.input_scale, INT8)
    np.testing.assert_array_equal(quantize_input(x, layer.input_scale).numpy(), codes)
    golden = tt_linear_int(codes, layer)
    ours = torch_linear_int(torch.from_numpy(codes), layer).numpy()
    np.testing.assert_array_equal(ours, golden)
    # The module's integer mode is the same path, dequantized.
    tt.int_mode = True
    with torch.no_grad():
        y_int = tt(x).numpy()
    np.testing.assert_allclose(y_int, golden * layer.output_scale, rtol=1e-6, atol=1e-7)
    # The fake-quant forward computes the hardware's numbers: same codes, bit for bit, and the
    # same float32 values as the golden codes dequantized.
    tt.int_mode = False
    with torch.no_grad():
        fake = tt(x).numpy()
    np.testing.assert_array_equal(fake, (golden * layer.output_scale).astype(np.float32))
    # Training runs the plain LSQ forward (float ratios): off by a step only near ties.
    tt.train()
    with torch.no_grad():
        trained = tt(x).numpy() / layer.output_scale
    assert np.mean(np.abs(trained - golden) > 0.5) < 0.02
    assert np.max(np.abs(trained - golden)) <= 3


def test_to_int_uses_the_layer_plan_and_legal_codes():
    tt = _trained_layer(INT4, False, ((0, 2), (2, 4)))
    layer = tt.to_int()
    assert layer.plan == ((0, 2), (2, 4))
    assert all(c.min() >= -8 and c.max() <= 7 for c in layer.cores)
    assert len(layer.stage_requants) == 2 and [len(m) for m in layer.merge_requants] == [1, 1]


@pytest.mark.parametrize("fmt", [INT8, INT4])
def test_embedding_golden_equals_torch_integer_path(fmt):
    torch.manual_seed(SEED)
    tt = TTEmbedding.from_embedding(nn.Embedding(57, 12), 3, (4, 4, 4), (2, 2, 3))
    tt.enable_quantization(fmt)
    ids = torch.randint(0, 57, (40,))
    tt(ids)  # calibrates
    layer = tt.to_int()
    golden = tt_embedding_int(ids.numpy(), layer)
    np.testing.assert_array_equal(torch_embedding_int(ids, layer).numpy(), golden)
    tt.eval()  # evaluated, the fake-quant forward computes the hardware's numbers
    with torch.no_grad():
        fake = tt(ids).numpy()
    np.testing.assert_array_equal(fake, (golden * layer.output_scale).astype(np.float32))


def test_to_int_before_calibration_is_a_clear_error():
    tt = TTLinear((4, 6, 1, 1), (1, 1, 6, 4), (1, 4, 3, 4, 1))
    with pytest.raises(ValueError, match="quantized, calibrated"):
        tt.to_int()
