"""Seed 003 (XTC) through the TT pipeline: ternary / binary quantizers, layer reduction,
one-stage distillation, export at 2 / 1 bits and the golden model against torch."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from tests.models.resume import kill_and_resume
from ttaccel.cli import main
from ttaccel.models.compress import build_student, distill_losses, load_student, train_student
from ttaccel.models.config import CompressionConfig, LayerRule
from ttaccel.models.export import evaluate_student, export_student
from ttaccel.models.quant import LsqQuantizer, fake_quantize, format_for_bits, init_scale
from ttaccel.models.teacher import load_bert_classifier
from ttaccel.models.train import LoopConfig
from ttaccel.models.tt import TTLinear
from ttaccel.spec.artifact import load_artifact
from ttaccel.spec.formats import BINARY, INT4, TERNARY

LOOP = LoopConfig(steps=6, batch_size=8, lr=1e-3, eval_every=6, save_every=3, eval_batch_size=16)


# --- quantizers ---------------------------------------------------------------------------------


def test_ternary_codes_are_minus_one_zero_one_with_threshold_half_the_scale():
    x = torch.tensor([-3.0, -1.1, -0.9, -0.2, 0.0, 0.4, 0.6, 1.0, 2.5])
    value = fake_quantize(x, torch.tensor(1.2), TERNARY)
    # threshold 0.6 (half to even at the tie: 0.6 / 1.2 = 0.5 -> 0); values +-1.2
    assert value.tolist() == pytest.approx([-1.2, -1.2, -1.2, 0, 0, 0, 0, 1.2, 1.2])


def test_binary_codes_are_the_sign_with_zero_to_plus_one_and_match_the_spec():
    x = torch.tensor([-3.0, -0.1, 0.0, 0.1, 5.0], dtype=torch.float64)
    value = fake_quantize(x, torch.tensor(0.5, dtype=torch.float64), BINARY)
    assert value.tolist() == [-0.5, -0.5, 0.5, 0.5, 0.5]
    q = LsqQuantizer(BINARY, init="twn")
    q.init_from(x)
    codes, scale = q.to_int(x)
    assert codes.tolist() == [-1, -1, 1, 1, 1] and scale == pytest.approx(8.2 / 5)


@pytest.mark.parametrize("fmt", [TERNARY, BINARY])
def test_ste_gradients_pass_inside_the_range_and_the_scale_gets_lsq(fmt):
    x = torch.tensor([-2.0, -0.7, -0.3, 0.2, 0.9, 3.0], dtype=torch.float64, requires_grad=True)
    s = torch.tensor(1.0, dtype=torch.float64, requires_grad=True)
    fake_quantize(x, s, fmt).sum().backward()
    inside = [0.0, 1.0, 1.0, 1.0, 1.0, 0.0]  # |x| <= s
    assert x.grad.tolist() == inside
    codes = [-1, -1, 0, 0, 1, 1] if fmt == TERNARY else [-1, -1, -1, 1, 1, 1]
    xs = [-2.0, -0.7, -0.3, 0.2, 0.9, 3.0]
    # LSQ: d value / d s = code - x / s inside the range, the clipped code outside
    expected = sum(c - v if abs(v) <= 1 else c for c, v in zip(codes, xs, strict=True))
    assert float(s.grad) == pytest.approx(expected)


def test_twn_scale_init_is_1_4_mean_abs_for_ternary_and_mean_abs_for_binary():
    x = torch.tensor([-2.0, -1.0, 1.0, 2.0])  # mean |x| = 1.5
    assert init_scale(x, TERNARY, "twn") == pytest.approx(2.1)
    assert init_scale(x, BINARY, "twn") == pytest.approx(1.5)
    assert init_scale(x, BINARY, "mse") == pytest.approx(1.5)  # least squares for sign codes
    with pytest.raises(ValueError, match=r"twn scale init is for ternary or binary.*int4"):
        init_scale(x, INT4, "twn")


def test_format_names_select_ternary_and_binary():
    assert format_for_bits("ternary") is TERNARY and format_for_bits("binary") is BINARY
    with pytest.raises(ValueError, match="quantization bits"):
        format_for_bits(3)


# --- config -------------------------------------------------------------------------------------


def test_xtc_config_round_trips_and_tt_configs_keep_their_json():
    cfg = CompressionConfig.xtc("binary", [1, 3, 5], word_embeddings=True)
    assert CompressionConfig.from_json(cfg.to_json()) == cfg
    data = cfg.to_dict()
    assert data["scheme"] == "xtc" and data["keep_layers"] == [1, 3, 5]
    assert data["weight_scale_init"] == "twn" and data["layers"] == [
        {"name": "encoder"}, {"name": "word_embeddings"}
    ]  # fmt: skip
    tt = CompressionConfig.uniform(8, 4)
    assert "scheme" not in tt.to_dict() and "keep_layers" not in tt.to_dict()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"layers": [{"name": "encoder", "rank": 4}], "weight_bits": "binary"},
         "weight_bits must be .* for scheme 'tt', not 'binary': scheme 'tt' cannot take"),
        ({"layers": [{"name": "encoder"}], "weight_bits": 3, "scheme": "xtc"},
         r"weight_bits must be one of \[8, 4, 2, 'ternary', 'binary'\] .* not 3$"),
        ({"layers": [{"name": "encoder", "rank": 4}], "weight_bits": "ternary", "scheme": "xtc"},
         r"layers\[0\] \('encoder'\): scheme 'xtc' keeps every layer dense"),
        ({"layers": [{"name": "encoder"}], "weight_bits": 4}, "scheme 'tt' needs a rank"),
        ({"layers": [{"name": "encoder"}], "weight_bits": "ternary", "scheme": "xtc",
          "keep_layers": [2, 2]}, "keep_layers .* names a teacher layer twice"),
        ({"layers": [{"name": "encoder"}], "weight_bits": "ternary", "scheme": "xtc",
          "keep_layers": []}, "keep_layers must be a non-empty list"),
        ({"layers": [{"name": "encoder"}], "weight_bits": "ternary", "scheme": "svd"},
         "scheme must be one of"),
    ],
)  # fmt: skip
def test_bad_configs_name_the_field(data, message):
    with pytest.raises(ValueError, match=message):
        CompressionConfig.from_dict(data)


def test_keep_layers_out_of_range_is_refused_naming_it(tiny_checkpoint):
    cfg = CompressionConfig.xtc("ternary", [0, 2])  # the tiny teacher has layers 0 and 1
    with pytest.raises(ValueError, match=r"keep_layers has 2; the teacher has encoder layers 0..1"):
        build_student(tiny_checkpoint, cfg, 2)


# --- layer reduction ----------------------------------------------------------------------------


def test_layer_reduction_copies_the_kept_teacher_layers(tiny_checkpoint):
    teacher = load_bert_classifier(tiny_checkpoint, 2)
    cfg = CompressionConfig.xtc(None, [1])  # float: the dense weights exactly as the teacher's
    student, report = build_student(tiny_checkpoint, cfg, 2)
    assert student.config.num_hidden_layers == 1 and len(student.bert.encoder.layer) == 1
    assert set(report) == {f"bert.encoder.layer.0.{n}" for n in (
        "attention.self.query", "attention.self.key", "attention.self.value",
        "attention.output.dense", "intermediate.dense", "output.dense")}  # fmt: skip
    t_layer, s_layer = teacher.bert.encoder.layer[1], student.bert.encoder.layer[0]
    query = s_layer.attention.self.query
    assert isinstance(query, TTLinear) and query.shape.ranks == (1, 1)
    assert query.shape.in_modes == (24,) and query.shape.out_modes == (24,)
    # the one core is the teacher layer 1's weight (in, out), bias copied
    w = t_layer.attention.self.query.weight.detach().T
    torch.testing.assert_close(query.cores[0].detach().reshape(24, 24), w, rtol=0, atol=1e-6)
    torch.testing.assert_close(query.bias.detach(), t_layer.attention.self.query.bias.detach())
    torch.testing.assert_close(s_layer.output.LayerNorm.weight, t_layer.output.LayerNorm.weight)
    w0 = teacher.bert.encoder.layer[0].attention.self.query.weight.detach().T
    assert not torch.allclose(query.cores[0].detach().reshape(24, 24), w0)


def test_distillation_maps_each_student_layer_to_its_teacher_layer():
    class Out:
        def __init__(self, hidden, attentions):
            self.hidden_states, self.attentions = hidden, attentions

    g = torch.Generator().manual_seed(0)
    t_hidden = [torch.randn(2, 3, 4, generator=g) for _ in range(4)]  # embeddings + 3 layers
    t_att = [torch.softmax(torch.randn(2, 1, 3, 3, generator=g), -1) for _ in range(3)]
    keep = [0, 2]  # student hidden 1 <- teacher hidden 1, student hidden 2 <- teacher hidden 3
    student = Out([t_hidden[0], t_hidden[1], t_hidden[3]], [t_att[0], t_att[2]])
    mask = torch.ones(2, 3)
    terms = distill_losses(student, Out(t_hidden, t_att), mask, 2, layer_map=keep)
    assert all(float(v) == pytest.approx(0, abs=1e-6) for v in terms.values())
    plain = distill_losses(student, Out(t_hidden, t_att), mask, 2)  # identity map: mismatched
    assert float(plain["mse"]) > 0.1 and float(plain["att_kl"]) > 0


# --- the pipeline on a tiny BERT ----------------------------------------------------------------


@pytest.fixture(scope="module", params=["ternary", "binary"])
def xtc_student(request, tmp_path_factory, tiny_checkpoint, tiny_data):
    out = tmp_path_factory.mktemp(f"xtc-{request.param}")
    cfg = CompressionConfig.xtc(request.param, [1], word_embeddings=True)
    result = train_student(tiny_checkpoint, tiny_data, out, cfg, method="onestage", loop=LOOP,
                           progress=False)  # fmt: skip
    return request.param, out, result


def test_xtc_student_exports_small_and_the_golden_model_agrees(xtc_student, tiny_data, tmp_path):
    bits, out, result = xtc_student
    assert set(result["dev"]) >= {"accuracy"} and result["method"] == "onestage"
    path = tmp_path / "xtc.safetensors"
    info = export_student(out / "student", path)
    artifact = load_artifact(path)
    model = artifact.model_config
    assert model["num_hidden_layers"] == 1
    assert model["compression"]["keep_layers"] == [1] and model["compression"]["scheme"] == "xtc"
    assert sorted({n.split(".")[3] for n in artifact.tt_linears}) == ["0"]  # renumbered
    fmt = TERNARY if bits == "ternary" else BINARY
    assert all(layer.weight_format == fmt for layer in artifact.tt_linears.values())
    assert all(len(layer.cores) == 1 for layer in artifact.tt_linears.values())
    embedding = artifact.tt_embeddings["bert.embeddings.word_embeddings"]
    assert embedding.weight_format == fmt and embedding.cores[0].shape == (1, 25, 24, 1)
    codes = np.concatenate([layer.cores[0].ravel() for layer in artifact.tt_linears.values()])
    assert set(np.unique(codes)) <= ({-1, 0, 1} if bits == "ternary" else {-1, 1})
    # packed at 2 or 1 bits: 4 * 24 * 24 + 2 * 24 * 48 weights (+ the 25 x 24 table)
    weights = 4 * 24 * 24 + 2 * 24 * 48 + 25 * 24
    int_bytes = weights * fmt.bits // 8 + 4 * (4 * 24 + 48 + 24)
    assert info["payload_bytes"] - artifact.nbytes() == 0
    floats = sum(t.nbytes for t in artifact.tensors.values())
    vocab = len("\n".join(artifact.vocab).encode())
    assert artifact.nbytes() == int_bytes + floats + vocab
    # the torch fake-quant model computes the integer path exactly; the golden model differs
    # in float rounding only (stated tolerance 1e-5 on the logits)
    ev = evaluate_student(out / "student", tiny_data, artifact_path=path, int_sim=True)
    assert ev["torch_int_sim"] == ev["torch"] and ev["golden"] == ev["torch"]
    assert ev["golden_torch_prediction_agreement"] == 1.0
    assert ev["golden_torch_max_logit_diff"] < 1e-5


def test_xtc_student_round_trips_through_its_folder(xtc_student):
    _, out, _ = xtc_student
    model, cfg, meta = load_student(out / "student")
    again, _, _ = load_student(out / "student")
    assert cfg.scheme == "xtc" and meta["hf_config"]["num_hidden_layers"] == 1
    ids = torch.tensor([[2, 7, 9, 12, 3]])
    with torch.no_grad():
        assert torch.equal(model(input_ids=ids).logits, again(input_ids=ids).logits)


def test_a_killed_xtc_run_resumes_to_the_uninterrupted_state(
    tmp_path, tiny_checkpoint, tiny_data, monkeypatch
):
    cfg = CompressionConfig.xtc("ternary", [1])
    loop = LoopConfig(steps=4, batch_size=8, lr=1e-3, eval_every=4, save_every=2)

    def run(out):
        return train_student(tiny_checkpoint, tiny_data, out, cfg, method="onestage", loop=loop,
                             progress=False)  # fmt: skip

    kill_and_resume(monkeypatch, tmp_path, run, steps=4)


def test_cli_compress_scheme_xtc(tmp_path, tiny_checkpoint, tiny_data):
    out = tmp_path / "cli"
    assert main(["compress", "--scheme", "xtc", "--bits", "binary", "--keep-layers", "0",
                 "--teacher", str(tiny_checkpoint), "--data", str(tiny_data), "--out", str(out),
                 "--steps", "2", "--batch-size", "8", "--no-progress"]) == 0  # fmt: skip
    result = json.loads((out / "result.json").read_text())
    assert result["method"] == "onestage"
    assert result["compression"]["weight_bits"] == "binary"
    assert result["compression"]["weight_scale_init"] == "twn"
    assert main(["export", "--student", str(out / "student"),
                 "--out", str(tmp_path / "b.safetensors")]) == 0  # fmt: skip
    artifact = load_artifact(tmp_path / "b.safetensors")
    core = artifact.tt_linears["bert.encoder.layer.0.intermediate.dense"].cores[0]
    assert core.shape == (1, 24, 48, 1) and math.prod(core.shape) == 24 * 48


def test_tt_with_ternary_cores_composes(tmp_path, tiny_checkpoint):
    cfg = CompressionConfig((LayerRule("encoder", 4),), "ternary", weight_scale_init="twn")
    student, _ = build_student(tiny_checkpoint, cfg, 2)
    layer = student.bert.encoder.layer[0].intermediate.dense
    assert layer.weight_format == TERNARY and len(layer.cores) == 4
    student.eval()
    with torch.no_grad():
        student(input_ids=torch.tensor([[2, 7, 9, 3]]))
    integer = layer.to_int()
    assert all(set(np.unique(c)) <= {-1, 0, 1} for c in integer.cores)
