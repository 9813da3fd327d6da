"""Seed 002 (N:M sparsity + low bits) in models/: masks, pruning schedules, ADMM, the config,
the pipeline on a tiny BERT (torch integer simulation == golden model), resume after a kill,
the CLI and the per-layer search."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.models.resume import kill_and_resume
from ttaccel.cli import main
from ttaccel.models.compress import build_student, load_student, train_student
from ttaccel.models.config import CompressionConfig, LayerRule
from ttaccel.models.export import evaluate_student, export_student, student_artifact
from ttaccel.models.intsim import tt_linear_int as torch_tt_linear_int
from ttaccel.models.nm import (
    NMLinear,
    NMSchedule,
    NMTraining,
    gradual_keep,
    nm_layer_nbytes,
    nm_mask,
    nm_modules,
    nm_project,
)
from ttaccel.models.nm_search import NMOption, greedy_search, search_config
from ttaccel.models.train import LoopConfig
from ttaccel.spec.artifact import load_artifact
from ttaccel.spec.formats import INT4, INT8
from ttaccel.spec.golden import QuantNMLinear, nm_linear_int
from ttaccel.spec.nm import nm_magnitude_mask

LOOP = LoopConfig(steps=6, batch_size=8, lr=1e-3, eval_every=6, save_every=3, eval_batch_size=16)

# --- masks and projection ---------------------------------------------------------------------


@given(st.sampled_from([(2, 4), (1, 4), (2, 8), (3, 8)]), st.integers(0, 2**32 - 1))
@settings(max_examples=60, deadline=None)
def test_the_torch_mask_is_the_spec_mask_along_the_input_dimension(pattern, seed):
    n, m = pattern
    w = np.random.default_rng(seed).normal(size=(3 * m, 5))  # (in, out): groups along dim 0
    mask = nm_mask(torch.from_numpy(w), n, m).numpy().astype(bool)
    np.testing.assert_array_equal(mask, nm_magnitude_mask(w.T, n, m).T)
    assert (mask.reshape(3, m, 5).sum(1) == n).all()


def test_the_projection_is_the_nearest_nm_weight():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(8, 3, generator=g, dtype=torch.float64)
    z = nm_project(w, 2, 4)
    torch.testing.assert_close(nm_project(z, 2, 4), z)  # idempotent
    # brute force over every 2-of-4 support of each (group, column)
    for group, col in itertools.product(range(2), range(3)):
        v = w[4 * group : 4 * group + 4, col]
        best = min(float((v**2).sum() - (v[list(s)] ** 2).sum())
                   for s in itertools.combinations(range(4), 2))  # fmt: skip
        got = float(((v - z[4 * group : 4 * group + 4, col]) ** 2).sum())
        assert got == pytest.approx(best)


def test_the_gradual_schedule_goes_from_m_to_n():
    keeps = [gradual_keep(t, 2, 8, 100) for t in range(0, 121, 10)]
    assert keeps[0] == 8 and keeps[10:] == [2, 2, 2]
    assert all(a >= b for a, b in itertools.pairwise(keeps))
    assert gradual_keep(50, 1, 4, 100) == 1  # cubic: most of the pruning early


def _layer(n=2, m=4, k=8, out=3, bits=4):
    torch.manual_seed(0)
    return NMLinear.from_dense(torch.nn.Linear(k, out), n, m, bits=bits)


def test_a_pruned_layer_computes_with_the_masked_weight_and_gets_no_gradient_there():
    layer = _layer()
    assert not layer.is_nm()
    layer.prune_()
    assert layer.is_nm() and float(layer.mask.sum()) == 8 * 3 / 2
    x = torch.randn(5, 8)
    w = (layer.cores[0] * layer.mask).reshape(8, 3)
    torch.testing.assert_close(layer(x), x @ w + layer.bias)
    layer(x).sum().backward()
    assert (layer.cores[0].grad[layer.mask == 0] == 0).all()
    assert (layer.cores[0].grad[layer.mask == 1] != 0).any()


def test_the_integer_layer_is_nm_and_torch_int_sim_equals_the_golden_layer():
    layer = _layer(2, 4, 16, 6)
    layer.prune_()
    layer.enable_quantization(INT4)
    layer.eval()
    x = torch.randn(7, 16)
    layer(x)  # initialises the scales
    integer = layer.to_int()
    nm = QuantNMLinear.from_tt_linear(integer, 2, 4, name="layer")
    codes = torch.randint(-128, 128, (7, 16))
    sim = torch_tt_linear_int(codes, integer)
    np.testing.assert_array_equal(sim.numpy(), nm_linear_int(codes.numpy(), nm))
    assert layer.compressed_nbytes() == nm_layer_nbytes(16, 6, 2, 4, 4, bias=False) == 24 + 12


def test_binary_weights_and_bad_groups_are_refused():
    with pytest.raises(ValueError, match="cannot take binary"):
        NMLinear(8, 3, 2, 4, bits="binary")
    with pytest.raises(ValueError, match="in_features 6 is not a multiple of the N:M group size"):
        NMLinear(6, 3, 2, 4)


# --- ADMM ----------------------------------------------------------------------------------


class _Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = _layer(2, 4, 8, 3), _layer(1, 4, 8, 2)


def test_admm_updates_z_u_and_ends_with_the_support_of_the_projection():
    model = _Model()
    schedule = NMSchedule(model, NMTraining("admm", prune_steps=4, admm_every=2, rho=0.5))
    schedule.prepare()
    for layer in nm_modules(model).values():
        torch.testing.assert_close(layer.admm_z, nm_project(layer.cores[0].detach(), layer.n,
                                                            layer.m))  # fmt: skip
        assert (layer.admm_u == 0).all() and (layer.mask == 1).all()
    penalty = schedule.penalty(0)
    expected = sum(0.25 * float(((l.cores[0].detach() - l.admm_z) ** 2).sum())
                   for l in nm_modules(model).values())  # noqa: E741  # fmt: skip
    assert float(penalty.detach()) == pytest.approx(expected) and penalty.requires_grad
    with torch.no_grad():
        for layer in nm_modules(model).values():
            layer.cores[0].add_(0.1)  # a training step moved W
    schedule.before_step(1)  # not an ADMM step: nothing changes
    a = model.a
    assert (a.admm_u == 0).all()
    u_before = a.admm_u.clone()
    schedule.before_step(2)
    w = a.cores[0].detach()
    torch.testing.assert_close(a.admm_z, nm_project(w + u_before, 2, 4))
    torch.testing.assert_close(a.admm_u, u_before + w - a.admm_z)
    schedule.before_step(4)
    assert schedule.penalty(4) is None
    for layer in nm_modules(model).values():
        torch.testing.assert_close(layer.mask, nm_mask(layer.cores[0] + layer.admm_u, layer.n,
                                                       layer.m))  # fmt: skip
        assert layer.is_nm()


def test_gradual_pruning_never_revives_a_pruned_weight():
    model = _Model()
    schedule = NMSchedule(model, NMTraining("gradual", prune_steps=6, prune_every=2))
    schedule.prepare()
    previous = model.b.mask.clone()
    for step in range(8):
        schedule.before_step(step)
        with torch.no_grad():  # grow the pruned weights: they must stay pruned
            model.b.cores[0].add_((1 - model.b.mask) * 10)
        assert (model.b.mask <= previous).all()
        previous = model.b.mask.clone()
    assert model.b.is_nm() and float(model.b.mask.sum()) == 8 * 2 / 4


# --- config -----------------------------------------------------------------------------------


def test_nm_configs_round_trip_with_per_layer_patterns_and_bits():
    cfg = CompressionConfig(
        (LayerRule("encoder", nm="2:4"),
         LayerRule("bert.encoder.layer.1.output.dense", nm=(1, 4), weight_bits=4)),
        8, scheme="nm",
    )  # fmt: skip
    assert CompressionConfig.from_json(cfg.to_json()) == cfg
    assert cfg.to_dict()["layers"] == [
        {"name": "encoder", "nm": "2:4"},
        {"name": "bert.encoder.layer.1.output.dense", "nm": "1:4", "weight_bits": 4},
    ]
    assert "nm" not in json.dumps(CompressionConfig.uniform(8, 4).to_dict())


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"layers": [{"name": "encoder", "nm": "2:4"}], "weight_bits": "binary", "scheme": "nm"},
         r"scheme 'nm' cannot take 'binary' \(N:M needs a zero code"),
        ({"layers": [{"name": "encoder", "nm": "2:4", "weight_bits": "binary"}],
          "weight_bits": 8, "scheme": "nm"}, r"layers\[0\].*weight_bits must be one of"),
        ({"layers": [{"name": "encoder"}], "weight_bits": 8, "scheme": "nm"},
         r"scheme 'nm' needs an N:M pattern"),
        ({"layers": [{"name": "encoder", "nm": "2:3"}], "weight_bits": 8, "scheme": "nm"},
         r"layer 'encoder': nm: group size m must be one of"),
        ({"layers": [{"name": "encoder", "nm": "2:4", "rank": 4}], "weight_bits": 8,
          "scheme": "nm"}, r"scheme 'nm' keeps every layer dense"),
        ({"layers": [{"name": "encoder", "rank": 4, "nm": "2:4"}], "weight_bits": 8},
         r"only scheme 'nm' takes a per-layer nm pattern"),
        ({"layers": [{"name": "word_embeddings", "nm": "2:4"}], "weight_bits": 8,
          "scheme": "nm"}, "prunes linears, not the embedding"),
    ],
)  # fmt: skip
def test_bad_nm_configs_name_the_field(data, message):
    with pytest.raises(ValueError, match=message):
        CompressionConfig.from_dict(data)


# --- the pipeline on a tiny BERT ----------------------------------------------------------------


@pytest.fixture(scope="module")
def nm_student(tmp_path_factory, tiny_checkpoint, tiny_data):
    out = tmp_path_factory.mktemp("nm")
    cfg = CompressionConfig(
        (LayerRule("encoder", nm="2:4"),
         LayerRule("bert.encoder.layer.1.intermediate.dense", nm="1:4", weight_bits=8),
         LayerRule("bert.encoder.layer.0.output.dense", nm="2:8")),
        4, scheme="nm", weight_scale_init="mse",
    )  # fmt: skip
    result = train_student(tiny_checkpoint, tiny_data, out, cfg, method="onestage", loop=LOOP,
                           progress=False, nm_training=NMTraining("gradual", prune_steps=4,
                                                                  prune_every=2))  # fmt: skip
    return out, result


def test_the_nm_student_exports_compressed_and_golden_equals_torch(nm_student, tiny_data,
                                                                   tmp_path):  # fmt: skip
    out, result = nm_student
    assert result["nm_training"]["mode"] == "gradual"
    model, _, _ = load_student(out / "student")
    layers = nm_modules(model)
    assert len(layers) == 12 and all(layer.is_nm() for layer in layers.values())
    ffn = layers["bert.encoder.layer.1.intermediate.dense"]
    assert (ffn.n, ffn.m, ffn.weight_format) == (1, 4, INT8)
    assert layers["bert.encoder.layer.0.attention.self.query"].weight_format == INT4
    path = tmp_path / "nm.safetensors"
    info = export_student(out / "student", path)
    artifact = load_artifact(path)
    assert not artifact.tt_linears and set(artifact.nm_linears) == set(layers)
    assert artifact.nm_linears["bert.encoder.layer.0.output.dense"].m == 8
    assert info["payload_bytes"] == artifact.nbytes()
    # sizes: the training result counts the encoder linears as export writes them
    nm_bytes = sum(nm_layer_nbytes(lay.in_features, lay.out_features, lay.n, lay.m, lay.bits)
                   for lay in layers.values())  # fmt: skip
    assert result["sizes"]["student_encoder_linear_bytes"] == nm_bytes
    # the torch fake-quant model is the integer model; the golden one differs in float
    # rounding only (LayerNorm, softmax, GELU: 1e-5 on the logits)
    ev = evaluate_student(out / "student", tiny_data, artifact_path=path, int_sim=True)
    assert ev["torch_int_sim"] == ev["torch"] and ev["golden"] == ev["torch"]
    assert ev["golden_torch_prediction_agreement"] == 1.0
    assert ev["golden_torch_max_logit_diff"] < 1e-5


def test_every_nm_layer_of_the_student_is_bit_exact_against_the_golden_layer(nm_student):
    out, _ = nm_student
    model, _, meta = load_student(out / "student")
    artifact = student_artifact(model, meta, ["[PAD]"] * model.config.vocab_size)
    g = torch.Generator().manual_seed(3)
    for name, layer in nm_modules(model).items():
        codes = torch.randint(-128, 128, (9, layer.in_features), generator=g)
        sim = torch_tt_linear_int(codes, layer.to_int()).numpy()
        np.testing.assert_array_equal(sim, nm_linear_int(codes.numpy(), artifact.nm_linears[name]))


def test_a_weight_that_is_not_nm_is_refused_at_export_naming_it(nm_student):
    out, _ = nm_student
    model, _, meta = load_student(out / "student")
    layer = model.bert.encoder.layer[0].attention.self.key
    layer.mask.fill_(1.0)  # un-pruned: a dense weight in an N:M layer
    with pytest.raises(ValueError, match=r"bert\.encoder\.layer\.0\.attention\.self\.key is not "
                                         r"2:4 sparse: output row"):  # fmt: skip
        student_artifact(model, meta, ["[PAD]"] * model.config.vocab_size)


def test_a_killed_admm_run_resumes_to_the_uninterrupted_state(
    tmp_path, tiny_checkpoint, tiny_data, monkeypatch
):
    cfg = CompressionConfig.nm("2:4", 4)
    loop = LoopConfig(steps=5, batch_size=8, lr=1e-3, eval_every=5, save_every=2)
    training = NMTraining("admm", prune_steps=3, admm_every=1, rho=0.1)

    def run(out):
        return train_student(tiny_checkpoint, tiny_data, out, cfg, method="onestage", loop=loop,
                             progress=False, nm_training=training)  # fmt: skip

    # killed after the step-2 checkpoint (ADMM Z and U updated twice)
    state = kill_and_resume(monkeypatch, tmp_path, run, steps=5)
    assert any(k.endswith("admm_u") for k in state["model"])
    saved = torch.load(tmp_path / "whole" / "student" / "student.pt", weights_only=True)
    assert not any(k.endswith(("admm_z", "admm_u")) for k in saved)  # training state only


def test_binary_bits_for_nm_fail_before_training(tiny_checkpoint):
    with pytest.raises(ValueError, match="cannot take 'binary'"):
        build_student(tiny_checkpoint, CompressionConfig.nm("2:4", "binary"), 2)


# --- the search ---------------------------------------------------------------------------------


def test_greedy_search_spends_the_bytes_where_the_sensitivity_is():
    options = [NMOption(2, 4, 8), NMOption(2, 4, 4), NMOption(1, 4, 4)]
    layers = {"a": (64, 64, True), "b": (64, 64, True)}
    sens = {"a": {"2:4/8": 0.0, "2:4/4": 0.1, "1:4/4": 5.0},   # a: sensitive to 1:4
            "b": {"2:4/8": 0.0, "2:4/4": 0.2, "1:4/4": 0.3}}  # fmt: skip
    cost = {o.key: o.nbytes(64, 64) for o in options}
    assert cost == {"2:4/8": 2048 + 512 + 256, "2:4/4": 1024 + 512 + 256, "1:4/4": 512 + 256 + 256}
    chosen, moves = greedy_search(layers, options, sens, cost["2:4/4"] + cost["1:4/4"])
    assert {n: o.key for n, o in chosen.items()} == {"a": "2:4/4", "b": "1:4/4"}
    assert moves[-1]["total_bytes"] <= cost["2:4/4"] + cost["1:4/4"]
    with pytest.raises(ValueError, match=r"cannot be met: the cheapest candidates .* need 2048"):
        greedy_search(layers, options, sens, 2000)
    cfg = search_config({f"bert.encoder.layer.0.{n}.dense": o for n, o in chosen.items()})
    assert cfg.scheme == "nm" and cfg.weight_bits == 4
    assert [(r.nm, r.weight_bits) for r in cfg.layers] == [((2, 4), None), ((1, 4), None)]


def test_cli_compress_scheme_nm_and_nm_search(tmp_path, tiny_checkpoint, tiny_data):
    search = tmp_path / "search.json"
    assert main(["nm-search", "--teacher", str(tiny_checkpoint), "--data", str(tiny_data),
                 "--ratio", "8", "--measure", "layer", "--batches", "2", "--batch-size", "8",
                 "--out", str(search)]) == 0  # fmt: skip
    report = json.loads(search.with_suffix(".search.json").read_text())
    assert report["encoder_linear_bytes"] <= report["budget_bytes"]
    assert len(report["chosen"]) == 12 and len(report["sensitivities"]) == 12
    cfg = CompressionConfig.load(search)
    assert cfg.scheme == "nm" and len(cfg.layers) == 12
    out = tmp_path / "cli"
    assert main(["compress", "--config", str(search), "--teacher", str(tiny_checkpoint),
                 "--data", str(tiny_data), "--out", str(out), "--steps", "2",
                 "--batch-size", "8", "--no-progress", "--nm-mode", "oneshot"]) == 0  # fmt: skip
    result = json.loads((out / "result.json").read_text())
    assert result["compression"]["scheme"] == "nm"
    assert result["sizes"]["student_encoder_linear_bytes"] == report["encoder_linear_bytes"]
    out2 = tmp_path / "shorthand"
    assert main(["compress", "--scheme", "nm", "--nm", "1:4", "--bits", "8",
                 "--teacher", str(tiny_checkpoint), "--data", str(tiny_data), "--out", str(out2),
                 "--steps", "1", "--batch-size", "8", "--no-progress"]) == 0  # fmt: skip
    result = json.loads((out2 / "result.json").read_text())
    assert result["compression"]["layers"] == [{"name": "encoder", "nm": "1:4"}]
    assert result["nm_training"]["mode"] == "oneshot"
