"""Seed 001 (Tucker decomposition with a shared matrix bank) in models/: the initialisation, the
bank shared by reference, the config's errors, the pipeline on a tiny BERT (torch eval forward
== golden model bit for bit, bytes counted with the bank once), resume after a kill, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.models.resume import kill_and_resume
from ttaccel.cli import main
from ttaccel.models.compress import build_student, load_student, train_student
from ttaccel.models.config import CompressionConfig, LayerRule
from ttaccel.models.export import evaluate_student, export_student, student_artifact
from ttaccel.models.train import LoopConfig
from ttaccel.models.tucker import (
    TuckerBank,
    TuckerLinear,
    assemble_blocks,
    block_weights,
    tucker_banks,
    tucker_init,
    tucker_modules,
)
from ttaccel.spec.artifact import load_artifact
from ttaccel.spec.formats import INT4
from ttaccel.spec.tucker import tucker_linear_int

LOOP = LoopConfig(steps=4, batch_size=8, lr=1e-3, eval_every=4, save_every=2, eval_batch_size=16)


# --- blocks and initialisation ------------------------------------------------------------------


def test_blocks_follow_the_spec_orders_and_assemble_back():
    d = 3
    w_in = np.arange(d * 2 * d).reshape(d, 2 * d)  # d -> 2d: blocks along the outputs
    blocks = block_weights(w_in, d)
    np.testing.assert_array_equal(blocks[1], w_in[:, d:])
    w_out = np.arange(2 * d * d).reshape(2 * d, d)  # 2d -> d: interleaved inputs
    blocks = block_weights(w_out, d)
    np.testing.assert_array_equal(blocks[1], w_out[[1, 3, 5]])
    np.testing.assert_array_equal(assemble_blocks(blocks, 2 * d, d), w_out)


def test_full_rank_and_full_bank_reproduce_every_block():
    rng = np.random.default_rng(0)
    blocks = [rng.normal(size=(6, 6)) for _ in range(5)]
    v, u, c, mix = tucker_init(blocks, 6, 5)
    for i, w in enumerate(blocks):
        np.testing.assert_allclose(v @ np.tensordot(mix[i], c, axes=1) @ u.T, w, atol=1e-10)
    # a smaller bank cannot: the stacked cores have rank 5
    v, u, c, mix = tucker_init(blocks, 6, 3)
    assert max(np.abs(v @ np.tensordot(mix[i], c, axes=1) @ u.T - w).max()
               for i, w in enumerate(blocks)) > 1e-3  # fmt: skip


def test_a_full_tucker_student_is_the_teacher(tiny_checkpoint):
    from ttaccel.models.teacher import load_bert_classifier

    teacher = load_bert_classifier(tiny_checkpoint, 2).eval()
    cfg = CompressionConfig.tucker(24, 16, None)  # d = 24, 2 layers x (4 + 2 + 2) blocks
    student, report = build_student(tiny_checkpoint, cfg, 2)
    assert set(report) == set(tucker_modules(student))
    assert max(v["svd_error"] for v in report.values()) < 1e-12
    ids = torch.tensor([[2, 7, 9, 12, 3]])
    with torch.no_grad():
        torch.testing.assert_close(student.eval()(input_ids=ids).logits,
                                   teacher(input_ids=ids).logits, atol=1e-5, rtol=0)  # fmt: skip


def test_the_bank_is_one_parameter_set_shared_by_reference(tiny_checkpoint):
    student, _ = build_student(tiny_checkpoint, CompressionConfig.tucker(8, 5, 4), 2)
    banks = tucker_banks(student)
    layers = tucker_modules(student)
    assert list(banks) == ["encoder"] and len(layers) == 12
    assert all(layer.bank is banks["encoder"] for layer in layers.values())
    names = [n for n, _ in student.named_parameters()]
    assert sum(n.endswith("in_factor") for n in names) == 1  # not one per layer
    assert not any(isinstance(m, TuckerBank) for layer in layers.values()
                   for m in layer.modules())  # fmt: skip
    student, _ = build_student(
        tiny_checkpoint, CompressionConfig.tucker(8, 5, 4, bank_scope="layer"), 2
    )
    assert list(tucker_banks(student)) == ["layer0", "layer1"]
    layer = student.bert.encoder.layer[1].output.dense
    assert isinstance(layer, TuckerLinear) and layer.bank_name == "layer1"


# --- config errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(weight_bits=2), "scheme 'tucker' cannot take 2"),
        (dict(weight_bits="ternary"), "cannot take 'ternary'"),
        (dict(rank=65), "a Tucker rank is at most 64"),
        (dict(bank_size=0), "bank_size must be a positive integer"),
        (dict(bank_scope="head"), "bank_scope must be one of"),
    ],
)
def test_bad_tucker_configs_name_the_field(kwargs, message):
    args = dict(rank=8, bank_size=4, weight_bits=4, bank_scope="model")
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        CompressionConfig.tucker(args["rank"], args["bank_size"], args["weight_bits"],
                                 bank_scope=args["bank_scope"])  # fmt: skip


def test_other_tucker_rule_errors():
    with pytest.raises(ValueError, match="same rank"):
        CompressionConfig((LayerRule("attention", 8), LayerRule("ffn", 16)), 4,
                          scheme="tucker", bank_size=4)  # fmt: skip
    with pytest.raises(ValueError, match="leave in_modes and out_modes out"):
        CompressionConfig((LayerRule("encoder", 8, (4, 6), (6, 4)),), 4, scheme="tucker",
                          bank_size=4)  # fmt: skip
    with pytest.raises(ValueError, match="bank_size and bank_scope are for scheme 'tucker'"):
        CompressionConfig((LayerRule("encoder", 8),), 4, bank_size=4)


def test_tucker_config_round_trips():
    cfg = CompressionConfig.tucker(64, 24, 4, embedding_rank=64)
    data = json.loads(cfg.to_json())
    assert data["bank_size"] == 24 and data["bank_scope"] == "model"
    assert "in_modes" not in data["layers"][0] and "in_modes" in data["layers"][1]
    assert CompressionConfig.from_json(cfg.to_json()) == cfg
    assert "bank_size" not in CompressionConfig.uniform(8, 4).to_dict()


def test_a_bank_larger_than_its_blocks_or_a_rank_above_d_is_refused(tiny_checkpoint):
    with pytest.raises(ValueError, match=r"bank_size 17 is larger than bank 'encoder'.s 16 blocks"):
        build_student(tiny_checkpoint, CompressionConfig.tucker(8, 17, 4), 2)
    with pytest.raises(ValueError, match=r"bank_size 9 is larger than bank 'layer0'.s 8 blocks"):
        build_student(tiny_checkpoint, CompressionConfig.tucker(8, 9, 4, bank_scope="layer"), 2)
    with pytest.raises(ValueError, match=r"rank 32 must be in 1 \.\. 24"):
        build_student(tiny_checkpoint, CompressionConfig.tucker(32, 4, 4), 2)


# --- the pipeline -------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["model", "layer"])
def tucker_student(request, tmp_path_factory, tiny_checkpoint, tiny_data):
    out = tmp_path_factory.mktemp(f"tucker-{request.param}")
    cfg = CompressionConfig.tucker(8, 6, 4, bank_scope=request.param, embedding_rank=8,
                                   weight_scale_init="mse")  # fmt: skip
    result = train_student(tiny_checkpoint, tiny_data, out, cfg, method="onestage", loop=LOOP,
                           progress=False)  # fmt: skip
    return out, result


def test_the_tucker_student_exports_and_golden_equals_torch(tucker_student, tiny_data, tmp_path):
    out, result = tucker_student
    model, _, _ = load_student(out / "student")
    banks, layers = tucker_banks(model), tucker_modules(model)
    path = tmp_path / "tucker.safetensors"
    info = export_student(out / "student", path)
    artifact = load_artifact(path)
    assert set(artifact.tucker_linears) == set(layers) and not artifact.tt_linears
    assert set(artifact.tucker_banks) == {f"tucker_banks.{k}" for k in banks}
    assert all(b.weight_format == INT4 for b in artifact.tucker_banks.values())
    assert info["payload_bytes"] == artifact.nbytes()
    # bytes: each bank once (V, U, C at 4 bits), every layer's int8 mix, uint16 ids, int32 bias
    d, r, l_ = 24, 8, 6
    bank_bytes = len(banks) * (2 * d * r + l_ * r * r) // 2
    layer_bytes = sum(lay.blocks * l_ + 2 * l_ + 4 * lay.out_features for lay in layers.values())
    assert result["sizes"]["student_encoder_linear_bytes"] == bank_bytes + layer_bytes
    ev = evaluate_student(out / "student", tiny_data, artifact_path=path, int_sim=True)
    assert ev["torch_int_sim"] == ev["torch"] and ev["golden"] == ev["torch"]
    assert ev["golden_torch_prediction_agreement"] == 1.0
    assert ev["golden_torch_max_logit_diff"] < 1e-5


def test_every_tucker_layer_in_eval_is_the_golden_layer_bit_for_bit(tucker_student):
    out, _ = tucker_student
    model, _, meta = load_student(out / "student")
    artifact = student_artifact(model, meta, ["[PAD]"] * model.config.vocab_size)
    g = torch.Generator().manual_seed(5)
    for name, layer in tucker_modules(model).items():
        quant = artifact.tucker_linears[name]
        codes = torch.randint(-128, 128, (7, layer.in_features), generator=g)
        x = (codes.double() * quant.input_scale).float()
        with torch.no_grad():
            torch_out = layer(x).double().numpy()
        golden = tucker_linear_int(codes.numpy(), quant, artifact.tucker_banks[quant.bank])
        np.testing.assert_array_equal(torch_out, (golden * quant.output_scale).astype(np.float32))


def test_the_student_round_trips_through_its_folder(tucker_student):
    out, _ = tucker_student
    model, cfg, meta = load_student(out / "student")
    again, _, _ = load_student(out / "student")
    assert cfg.scheme == "tucker" and "tucker" in meta
    ids = torch.tensor([[2, 7, 9, 12, 3]])
    with torch.no_grad():
        assert torch.equal(model(input_ids=ids).logits, again(input_ids=ids).logits)


def test_a_killed_tucker_run_resumes_to_the_uninterrupted_state(
    tmp_path, tiny_checkpoint, tiny_data, monkeypatch
):
    cfg = CompressionConfig.tucker(8, 6, 4)
    loop = LoopConfig(steps=4, batch_size=8, lr=1e-3, eval_every=4, save_every=2)

    def run(out):
        return train_student(tiny_checkpoint, tiny_data, out, cfg, method="onestage", loop=loop,
                             progress=False)  # fmt: skip

    state = kill_and_resume(monkeypatch, tmp_path, run, steps=4)
    assert "tucker_banks.encoder.cores" in state["model"]


def test_cli_compress_scheme_tucker(tmp_path, tiny_checkpoint, tiny_data, capsys):
    out = tmp_path / "cli"
    assert main(["compress", "--scheme", "tucker", "--rank", "8", "--bank-size", "4",
                 "--bank-scope", "layer", "--bits", "8", "--teacher", str(tiny_checkpoint),
                 "--data", str(tiny_data), "--out", str(out), "--steps", "2", "--batch-size",
                 "8", "--no-progress"]) == 0  # fmt: skip
    result = json.loads((out / "result.json").read_text())
    assert result["method"] == "onestage" and result["compression"]["bank_scope"] == "layer"
    assert main(["compress", "--scheme", "tucker", "--rank", "8", "--teacher",
                 str(tiny_checkpoint), "--data", str(tiny_data),
                 "--out", str(tmp_path / "bad")]) != 0  # fmt: skip
    assert "needs --rank R and --bank-size L" in capsys.readouterr().err
