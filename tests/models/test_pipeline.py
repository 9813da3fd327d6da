"""End to end on a tiny random BERT: compress, train (QAT, distillation), save/load, export,
import, and the golden model against the torch model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ttaccel.cli import main
from ttaccel.models.compress import build_student, load_student, size_report, train_student
from ttaccel.models.config import CompressionConfig, LayerRule
from ttaccel.models.export import evaluate_student, export_student
from ttaccel.models.quant import LsqQuantizer
from ttaccel.models.teacher import load_bert_classifier
from ttaccel.models.train import LoopConfig
from ttaccel.spec.artifact import load_artifact

LOOP = LoopConfig(steps=6, batch_size=8, lr=1e-3, eval_every=6, save_every=3, eval_batch_size=16)


def _config(bits):
    return CompressionConfig(
        (LayerRule("encoder", 4), LayerRule("word_embeddings", 4, (5, 5), (4, 6))), bits
    )


@pytest.fixture(scope="module")
def int4_student(tmp_path_factory, tiny_checkpoint, tiny_data):
    out = tmp_path_factory.mktemp("student")
    result = train_student(tiny_checkpoint, tiny_data, out, _config(4), method="layerwise",
                           layer_steps=2, loop=LOOP, progress=False)  # fmt: skip
    return out, result


def test_layerwise_int4_student_trains_and_reports(int4_student):
    out, result = int4_student
    assert set(result["dev"]) >= {"accuracy"}
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    train_rows = [r for r in rows if r["split"] == "train"]
    assert train_rows and all(np.isfinite(r["loss"]) for r in train_rows)
    sizes = result["sizes"]
    assert sizes["encoder_linear_ratio"] > 1 and sizes["whole_model_ratio"] > 1
    assert (out / "student" / "student.pt").is_file()


def test_student_round_trip_gives_identical_outputs(int4_student):
    out, _ = int4_student
    model, cfg, meta = load_student(out / "student")
    again, _, _ = load_student(out / "student")
    ids = torch.tensor([[2, 7, 9, 12, 3]])
    with torch.no_grad():
        assert torch.equal(model(input_ids=ids).logits, again(input_ids=ids).logits)
    assert cfg == _config(4)
    assert meta["task"] == "SST-2"


def test_export_import_and_golden_agree_with_torch(int4_student, tiny_data, tmp_path):
    out, _ = int4_student
    info = export_student(out / "student", tmp_path / "a.safetensors")
    assert info["file_bytes"] == (tmp_path / "a.safetensors").stat().st_size
    artifact = load_artifact(tmp_path / "a.safetensors")
    assert len(artifact.tt_linears) == 12 and len(artifact.tt_embeddings) == 1
    assert all(layer.weight_format.name == "int4" for layer in artifact.tt_linears.values())
    # Import round trip: the artifact read back gives the same integer layers.
    model, _, _ = load_student(out / "student")
    q = model.bert.encoder.layer[0].attention.self.query.to_int()
    back = artifact.tt_linears["bert.encoder.layer.0.attention.self.query"]
    for a, b in zip(q.cores, back.cores, strict=True):
        np.testing.assert_array_equal(a, b)
    assert q.stage_requants == back.stage_requants and np.array_equal(q.bias, back.bias)
    result = evaluate_student(out / "student", tiny_data, artifact_path=tmp_path / "a.safetensors",
                              int_sim=True)  # fmt: skip
    # Evaluated, the fake-quant TT layers compute the integer model's numbers exactly, so the
    # torch integer simulation cannot differ; the golden model differs in its float parts only.
    assert result["torch_int_sim"] == result["torch"]
    assert result["golden_torch_prediction_agreement"] >= 0.95
    assert result["golden_torch_max_logit_diff"] < 0.05


def test_export_keeps_only_the_position_rows_max_length_reaches(int4_student):
    from ttaccel.models.export import _vocab, student_artifact
    from ttaccel.spec.inference import BertInference

    out, _ = int4_student
    model, _, meta = load_student(out / "student")
    vocab = _vocab(out / "student")
    full = student_artifact(model, {**meta, "max_length": None}, vocab)
    cut = student_artifact(model, {**meta, "max_length": 12}, vocab)
    rows = "bert.embeddings.position_embeddings.weight"
    assert len(full.tensors[rows]) == full.model_config["max_position_embeddings"] == 32
    assert cut.tensors[rows].shape == (12, full.tensors[rows].shape[1])
    assert cut.model_config["max_position_embeddings"] == 12
    np.testing.assert_array_equal(cut.tensors[rows], full.tensors[rows][:12])
    examples = [[2, 7, 9, 3], list(range(2, 14))]  # 4 and 12 tokens
    np.testing.assert_array_equal(
        BertInference(cut).logits(examples), BertInference(full).logits(examples)
    )
    with pytest.raises(ValueError, match="13 tokens is longer than the model's 12 positions"):
        BertInference(cut).logits([list(range(2, 15))])


@pytest.fixture(scope="module")
def float_student(tmp_path_factory, tiny_checkpoint, tiny_data):
    out = tmp_path_factory.mktemp("float")
    result = train_student(tiny_checkpoint, tiny_data, out, _config(None), method="e2e",
                           loop=LOOP, progress=False)  # fmt: skip
    return out / "student", result


def test_e2e_float_student_cannot_be_exported(float_student, tmp_path):
    student, result = float_student
    assert "accuracy" in result["dev"]
    with pytest.raises(ValueError, match="only quantized students can be exported"):
        export_student(student, tmp_path / "x.safetensors")


def test_init_from_a_float_student_keeps_its_weights_and_adds_quantizers(
    float_student, tiny_checkpoint
):
    folder, _ = float_student
    trained = load_student(folder)[0].state_dict()
    student, _ = build_student(tiny_checkpoint, _config(4), 2, init_from=folder)
    state = student.state_dict()
    shared = [name for name in state if name in trained]
    assert any(".cores." in name for name in shared) and "classifier.weight" in shared
    for name in shared:
        assert torch.equal(state[name], trained[name]), name
    assert any(isinstance(m, LsqQuantizer) for m in student.modules())
    fresh, _ = build_student(tiny_checkpoint, _config(4), 2)  # the TT-SVD initialisation
    core = "bert.encoder.layer.0.attention.self.query.cores.1"
    assert not torch.equal(fresh.state_dict()[core], state[core])


def test_init_from_a_student_of_other_ranks_names_the_tensor(float_student, tiny_checkpoint):
    folder, _ = float_student
    other = CompressionConfig((LayerRule("encoder", 2),), 4)
    with pytest.raises(
        ValueError, match=r"--init-from .*: tensor bert\.encoder\.layer\.0\..* has shape"
    ):
        build_student(tiny_checkpoint, other, 2, init_from=folder)


def test_size_report_counts_packed_bits(tiny_checkpoint):
    from ttaccel.models.compress import apply_compression

    teacher = load_bert_classifier(tiny_checkpoint, 2)
    student = load_bert_classifier(tiny_checkpoint, 2)
    apply_compression(student, CompressionConfig((LayerRule("ffn_in", 2),), 4))
    sizes = size_report(student, teacher, 4)
    # ffn_in is 24 x 48 (+48 bias) per layer, two layers; everything else unchanged.
    tt = student.bert.encoder.layer[0].intermediate.dense
    tt_bytes = sum((c.numel() + 1) // 2 for c in tt.cores) + 4 * 48
    saved = 2 * (4 * (24 * 48 + 48) - tt_bytes)
    assert sizes["dense_bytes"] - sizes["student_bytes"] == saved
    assert sizes["dense_encoder_linear_bytes"] - sizes["student_encoder_linear_bytes"] == saved


def test_resume_continues_from_the_checkpoint(tmp_path, tiny_checkpoint, tiny_data):
    short = LoopConfig(steps=3, batch_size=8, lr=1e-3, eval_every=3, save_every=3)
    train_student(tiny_checkpoint, tiny_data, tmp_path, _config(8), method="e2e", loop=short,
                  progress=False)  # fmt: skip
    full = LoopConfig(steps=6, batch_size=8, lr=1e-3, eval_every=6, save_every=3)
    train_student(tiny_checkpoint, tiny_data, tmp_path, _config(8), method="e2e", loop=full,
                  progress=False)  # fmt: skip
    steps = [json.loads(r)["step"] for r in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(steps) and max(steps) == 6
    state = torch.load(tmp_path / "state.pt", weights_only=False)
    assert state["step"] == 6


def test_cli_compress_evaluate_export(tmp_path, tiny_checkpoint, tiny_data):
    out = tmp_path / "cli"
    assert main(["compress", "--teacher", str(tiny_checkpoint), "--data", str(tiny_data),
                 "--out", str(out), "--rank", "3", "--bits", "8", "--method", "e2e",
                 "--steps", "2", "--batch-size", "8", "--no-progress"]) == 0  # fmt: skip
    assert main(["evaluate", "--student", str(out / "student"), "--data", str(tiny_data),
                 "--json", str(tmp_path / "r.json")]) == 0  # fmt: skip
    result = json.loads((tmp_path / "r.json").read_text())
    assert {"torch", "golden", "golden_torch_prediction_agreement"} <= set(result)
    assert main(["export", "--student", str(out / "student"),
                 "--out", str(tmp_path / "m.safetensors")]) == 0  # fmt: skip
    assert load_artifact(tmp_path / "m.safetensors").tt_linears
