"""Scale initialisation before QAT: max/Qp, LSQ's rule, MSE-optimal and percentile scales."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ttaccel.models.config import CompressionConfig
from ttaccel.models.quant import (
    LsqQuantizer,
    init_scale,
    lsq_scale,
    max_scale,
    mse_scale,
    percentile_scale,
)
from ttaccel.spec.formats import INT4, INT8, quantize


def _sq_error(x: np.ndarray, scale: float, fmt) -> float:
    """Quantization error by the spec's own quantize (independent of models/quant.py)."""
    return float(((quantize(x, scale, fmt) * scale - x) ** 2).sum())


def _entropy_bits(codes: np.ndarray) -> float:
    _, counts = np.unique(codes, return_counts=True)
    p = counts / counts.sum()
    return float(-(p * np.log2(p)).sum())


def _heavy_tailed(n: int = 50_000, seed: int = 0) -> np.ndarray:
    """Gaussian bulk (sigma 1) and three outliers at +-60: the shape of a TT core whose one
    large entry sets max|x|."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    x[[5, 500, 4000]] = [60.0, -55.0, 58.0]
    return x


def test_mse_scale_beats_max_on_a_heavy_tailed_tensor_and_uses_the_codes():
    x = _heavy_tailed()
    s_max, s_mse = max_scale(torch.from_numpy(x), INT4), mse_scale(torch.from_numpy(x), INT4)
    assert s_max == pytest.approx(60.0 / 7)
    assert _sq_error(x, s_mse, INT4) < 0.5 * _sq_error(x, s_max, INT4)
    at_max, at_mse = quantize(x, s_max, INT4), quantize(x, s_mse, INT4)
    # max/Qp: the Gaussian bulk lies below s/2 = 4.3 sigma, so nearly every code is 0.
    assert np.mean(at_max == 0) > 0.99
    assert _entropy_bits(at_max) < 0.1
    # MSE-optimal: a broad histogram (more than 3 of the 4 bits) with few zeros.
    assert np.mean(at_mse == 0) < 0.3
    assert _entropy_bits(at_mse) > 3.0
    assert len(np.unique(at_mse)) >= 14


def test_mse_scale_is_the_best_scale_of_an_independent_brute_force_search():
    rng = np.random.default_rng(1)
    x = rng.standard_t(df=3, size=4000)
    peak = np.abs(x).max() / INT4.qpos
    grid = peak * np.linspace(0.002, 1.0, 2000)
    best = min(_sq_error(x, s, INT4) for s in grid)
    got = _sq_error(x, mse_scale(torch.from_numpy(x), INT4), INT4)
    assert got <= best * 1.01


def test_mse_scale_of_a_tensor_on_the_grid_is_that_grid():
    # Every code of int4 used once on the grid s = 0.25: the error is 0 only at 0.25 (= max/Qp).
    x = torch.arange(-7, 8, dtype=torch.float64) * 0.25
    assert mse_scale(x, INT4) == pytest.approx(0.25)


def test_lsq_and_percentile_rules_by_construction():
    x = torch.tensor([1.0, -1.0] * 50)
    assert lsq_scale(x, INT4) == pytest.approx(2.0 / np.sqrt(7))
    ramp = torch.arange(1, 1001, dtype=torch.float64)  # |x| = 1 .. 1000
    assert percentile_scale(ramp, INT8, 50.0) == pytest.approx(500.5 / 127)
    assert percentile_scale(ramp, INT8, 100.0) == pytest.approx(1000 / 127)
    assert init_scale(torch.zeros(10), INT8, "mse") == 1.0
    with pytest.raises(ValueError, match="scale init must be one of"):
        init_scale(ramp, INT8, "minmax")


@pytest.mark.parametrize("rule", ["max", "lsq", "mse", "percentile"])
def test_quantizer_initialises_by_its_rule(rule):
    x = torch.from_numpy(_heavy_tailed()).float()
    q = LsqQuantizer(INT4, init=rule)
    q.train()
    q(x)
    assert bool(q.initialized)
    assert q.effective_scale() == pytest.approx(init_scale(x, INT4, rule), rel=1e-6)
    if rule == "max":  # the old behaviour, unchanged
        assert q.effective_scale() == pytest.approx(60.0 / 7, rel=1e-6)
    else:
        assert q.effective_scale() < 60.0 / 7 / 2
    with pytest.raises(ValueError, match="not 'bogus'"):
        LsqQuantizer(INT4, init="bogus")


def test_config_scale_inits_round_trip_and_default_to_max():
    cfg = CompressionConfig.uniform(16, 4)
    assert (cfg.weight_scale_init, cfg.activation_scale_init) == ("max", "max")
    new = CompressionConfig(cfg.layers, 4, weight_scale_init="mse", activation_scale_init="lsq")
    back = CompressionConfig.from_json(new.to_json())
    assert back == new
    assert json.loads(new.to_json())["weight_scale_init"] == "mse"
    old = json.loads(cfg.to_json())
    del old["weight_scale_init"], old["activation_scale_init"]  # a config from before
    assert CompressionConfig.from_dict(old).weight_scale_init == "max"
    short = CompressionConfig.uniform(16, 4, weight_scale_init="mse", activation_scale_init="lsq")
    assert (short.weight_scale_init, short.activation_scale_init) == ("mse", "lsq")
    from ttaccel.cli import build_parser
    from ttaccel.models.cmd_compress import config_from_args

    args = build_parser().parse_args(
        ["compress", "--teacher", "t", "--data", "d", "--out", "o", "--rank", "16", "--bits",
         "4", "--weight-scale-init", "mse", "--activation-scale-init", "percentile"]
    )  # fmt: skip
    cfg_cli = config_from_args(args)
    assert (cfg_cli.weight_scale_init, cfg_cli.activation_scale_init) == ("mse", "percentile")
    with pytest.raises(ValueError, match="activation_scale_init must be one of"):
        CompressionConfig(cfg.layers, 4, activation_scale_init="optimal")


def test_compression_gives_each_quantizer_its_rule(tiny_checkpoint):
    from ttaccel.models.compress import apply_compression, calibrate, tt_modules
    from ttaccel.models.teacher import load_bert_classifier

    model = load_bert_classifier(tiny_checkpoint, 2)
    cfg = CompressionConfig.from_dict({
        "layers": [{"name": "encoder", "rank": 4}, {"name": "word_embeddings", "rank": 4}],
        "weight_bits": 8, "weight_scale_init": "mse", "activation_scale_init": "percentile",
    })  # fmt: skip
    apply_compression(model, cfg)
    ids = torch.tensor([[2, 10, 11, 12, 3]])
    calibrate(model, {"input_ids": ids, "token_type_ids": torch.zeros_like(ids),
                      "attention_mask": torch.ones_like(ids)})  # fmt: skip
    layers = tt_modules(model)
    assert len(layers) == 13
    for layer in layers.values():
        for q in layer.core_q:
            assert q.init == "mse" and bool(q.initialized)
        for q in layer.stage_q:
            assert q.init == "percentile"
        if hasattr(layer, "input_q"):
            assert layer.input_q.init == "percentile"
            for seg in layer.merge_q:
                assert all(q.init == "mse" for q in seg)
        core = layer.cores[0].detach()
        expected = mse_scale(core, layer.weight_format)
        assert layer.core_q[0].effective_scale() == pytest.approx(expected)
