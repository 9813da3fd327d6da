"""LSQ fake quantization: spec rounding, straight-through gradients, scale gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ttaccel.models.quant import (
    LsqQuantizer,
    fake_quantize,
    format_for_bits,
    quantize_exact,
    requantize_exact,
)
from ttaccel.spec.formats import INT2, INT4, INT8, Requant, quantize, requantize


@pytest.mark.parametrize("fmt", [INT8, INT4, INT2])
def test_fake_quantize_matches_spec_codes(fmt):
    rng = np.random.default_rng(0)
    x = rng.normal(size=1000).astype(np.float32) * 3
    x[:4] = [0.5, 1.5, -2.5, 2.5]  # ties: half to even, like numpy.rint
    scale = 1.0 if fmt is not INT8 else 0.05
    expected = quantize(x, scale, fmt) * scale
    got = fake_quantize(torch.from_numpy(x), torch.tensor(scale), fmt)
    np.testing.assert_allclose(got.numpy(), expected, rtol=0, atol=1e-6)


def test_half_up_rounding_is_the_requantizer_rounding():
    x = torch.tensor([0.5, 1.5, -0.5, -1.5, 2.5])
    even = fake_quantize(x, torch.tensor(1.0), INT8)
    up = fake_quantize(x, torch.tensor(1.0), INT8, half_up=True)
    assert even.tolist() == [0.0, 2.0, -0.0, -2.0, 2.0]
    assert up.tolist() == [1.0, 2.0, 0.0, -1.0, 3.0]


def test_ste_gradient_passes_inside_the_range_and_stops_outside():
    x = torch.tensor([-20.0, -0.37, 0.0, 0.81, 3.49, 20.0], requires_grad=True)
    y = fake_quantize(x, torch.tensor(0.5), INT4)  # range [-4, 3.5]
    y.sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 1.0, 0.0]


def test_lsq_scale_gets_a_scaled_gradient_and_initialises_from_max_abs():
    q = LsqQuantizer(INT4)
    x = torch.linspace(-1.4, 0.9, 50)
    y = q(x)
    assert float(q.scale.detach()) == pytest.approx(1.4 / 7)
    y.square().sum().backward()
    assert q.scale.grad is not None and float(q.scale.grad) != 0.0
    codes, scale = q.to_int(x)
    assert codes.min() >= -8 and codes.max() <= 7
    np.testing.assert_allclose(codes * scale, y.detach().numpy(), atol=1e-6)


def test_power_of_two_scale():
    q = LsqQuantizer(INT8, power_of_two=True)
    q.init_from(torch.tensor([3.0]))  # 3 / 127 -> 2**-5
    assert q.effective_scale() == 2.0**-5
    y = q(torch.tensor([0.1, -0.2]))
    assert torch.allclose(y / 2.0**-5, torch.round(y / 2.0**-5))


def test_format_for_bits_rejects_unknown_bits():
    assert format_for_bits(4) is INT4 and format_for_bits("int2") is INT2
    with pytest.raises(ValueError, match=r"bits must be one of \[2, 4, 8\].*not 3"):
        format_for_bits(3)


def test_requantize_exact_forwards_the_hardware_codes_and_lsq_gradients():
    # A ratio the 16-bit multiplier cannot represent: floats and hardware disagree on ties.
    q = LsqQuantizer(INT8, half_up=True)
    q.init_from(torch.tensor([127 * 0.37]))
    acc_scale = 0.0123457
    acc_codes = torch.arange(-4000, 4000, dtype=torch.float64)
    acc_value = (acc_codes * acc_scale).float().requires_grad_()
    out = requantize_exact(q, acc_value, acc_codes, acc_scale)
    requant = Requant.from_ratio(acc_scale / q.effective_scale(), INT8)
    np.testing.assert_array_equal(out.codes.numpy(), requantize(acc_codes.numpy(), requant))
    np.testing.assert_array_equal(out.value.detach().numpy(),
                                  (out.codes * out.scale).float().numpy())  # fmt: skip
    plain = q(acc_value).detach()  # plain float fake quantization differs on a few ties
    assert 0 < int((plain != out.value.detach()).sum()) < 50
    out.value.sum().backward()
    assert q.scale.grad is not None and float(q.scale.grad) != 0
    ratio = acc_value.detach() / q.effective_scale()
    assert torch.all(acc_value.grad[ratio.abs() < 126] == 1)  # straight through inside the range
    assert torch.all(acc_value.grad[ratio.abs() > 129] == 0)  # and stopped outside it
    assert bool((ratio.abs() > 129).any())


def test_quantize_exact_codes_are_the_spec_codes():
    q = LsqQuantizer(INT4)
    x = torch.randn(500) * 2
    q.init_from(x)
    out = quantize_exact(q, x)
    np.testing.assert_array_equal(out.codes.numpy(),
                                  quantize(x.double().numpy(), out.scale, INT4))  # fmt: skip
