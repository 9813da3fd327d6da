"""models/code_stats: histogram statistics, and the recorder on a tiny synthetic artifact whose
code statistics are known by construction."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ttaccel.models.code_stats import CodeHistogram, artifact_code_stats, code_summary
from ttaccel.spec.artifact import Artifact
from ttaccel.spec.formats import INT4, INT8, Requant
from ttaccel.spec.golden import QuantTTLinear
from ttaccel.spec.inference import LINEAR_NAMES

H = 4
B_EMB = np.array([1.0, -1.0, 2.0, -2.0], dtype=np.float32)  # every token's embedding LN output
B_ATT = np.array([0.5, 0.25, -0.5, 0.0], dtype=np.float32)  # every token's attention LN output


def test_summary_of_known_histograms():
    h = CodeHistogram(INT4)
    h.add(np.arange(-8, 8))  # every int4 code once: uniform, 4 bits
    s = h.summary()
    assert s["total"] == 16 and s["entropy_bits"] == pytest.approx(4.0)
    assert s["zero"] == pytest.approx(1 / 16) and s["small"] == pytest.approx(3 / 16)
    assert s["saturated"] == pytest.approx(2 / 16)  # -8 and 7
    h.add(np.zeros(16, dtype=np.int8))
    s = h.summary()
    assert s["zero"] == pytest.approx(17 / 32) and (s["min"], s["max"]) == (-8, 7)
    assert s["counts"][8] == 17 and s["qmin"] == -8
    only_zero = code_summary(np.eye(256, dtype=np.int64)[128], INT8)
    assert only_zero["entropy_bits"] == 0.0 and only_zero["zero"] == 1.0
    with pytest.raises(ValueError, match=r"codes must lie in \[-8, 7\]"):
        h.add(np.array([8]))
    with pytest.raises(ValueError, match="must have 16 entries"):
        code_summary(np.ones(15), INT4)


def _layer(cores, stage_requants, input_scale, output_scale) -> QuantTTLinear:
    return QuantTTLinear(
        cores=tuple(np.asarray(c, dtype=np.int8) for c in cores), weight_format=INT4,
        plan=tuple((k, k + 1) for k in range(len(cores))), merge_requants=((),) * len(cores),
        stage_requants=tuple(stage_requants), bias=None, input_scale=input_scale,
        output_scale=output_scale,
    )  # fmt: skip


def _tiny_artifact() -> Artifact:
    """One encoder layer of width 4, one head. Both LayerNorms have weight 0, so every token's
    hidden state is their bias: the inputs of query/key/value are ``quantize(B_EMB)`` and that
    of intermediate.dense ``quantize(B_ATT)`` whatever the sentence. Every TT linear is 2 x 2
    -> 2 x 2 in two cores (ranks 1, 2, 1), each core a (1, 2, 2, 2) / (2, 2, 2, 1) block of
    known codes, planned as two stages (one intermediate stage). The stage requants of
    output.dense have ratio 2**-20: its intermediate and output codes are all 0."""
    core0 = np.array([-8, 7, 0, 0, 1, -1, 3, 0]).reshape(1, 2, 2, 2)  # 3 zeros of 8
    core1 = np.array([0, 0, 0, 0, 2, -3, 7, 0]).reshape(2, 2, 2, 1)  # 5 zeros of 8
    unit = Requant(1, 0)
    tiny = Requant(1, 20)
    linears = {}
    for name in LINEAR_NAMES:
        full = f"bert.encoder.layer.0.{name}"
        if name == "output.dense":
            linears[full] = _layer([core0, core1], [tiny, tiny], 1.0, 1.0)
        else:
            linears[full] = _layer([core0, core1], [unit, unit], 1 / 32, 1.0)
    linears["bert.encoder.layer.0.intermediate.dense"] = _layer(
        [core0, core1], [unit, unit], 1 / 64, 1.0
    )
    f32 = lambda *s: np.zeros(s, dtype=np.float32)  # noqa: E731
    e, a, o = "bert.embeddings.", "bert.encoder.layer.0.attention.output.", "bert.encoder.layer.0."
    tensors = {
        f"{e}word_embeddings.weight": np.random.default_rng(0).normal(size=(10, H)).astype("f4"),
        f"{e}token_type_embeddings.weight": f32(2, H),
        f"{e}position_embeddings.weight": f32(16, H),
        f"{e}LayerNorm.weight": f32(H), f"{e}LayerNorm.bias": B_EMB,
        f"{a}LayerNorm.weight": f32(H), f"{a}LayerNorm.bias": B_ATT,
        f"{o}output.LayerNorm.weight": f32(H), f"{o}output.LayerNorm.bias": f32(H),
        "bert.pooler.dense.weight": f32(H, H), "bert.pooler.dense.bias": f32(H),
        "classifier.weight": f32(2, H), "classifier.bias": f32(2),
    }  # fmt: skip
    config = {"architecture": "bert-sequence-classification", "hidden_size": H,
              "num_hidden_layers": 1, "num_attention_heads": 1, "intermediate_size": H,
              "layer_norm_eps": 1e-12, "hidden_act": "gelu", "num_labels": 2}  # fmt: skip
    return Artifact(config, linears, {}, tensors, [])


def test_recorded_statistics_equal_the_construction():
    artifact = _tiny_artifact()
    ids = [[1, 2, 3], [4, 5], [6, 7, 8, 9]]  # 9 tokens
    stats = artifact_code_stats(artifact, ids)
    assert (stats["examples"], stats["tokens"]) == (3, 9)
    p = "bert.encoder.layer.0."
    cores = stats["layers"][p + "attention.self.query"]["cores"]
    assert cores["total"] == 16 and cores["zero"] == pytest.approx(8 / 16)
    assert cores["small"] == pytest.approx(10 / 16)  # zeros, 1 and -1
    assert cores["saturated"] == pytest.approx(3 / 16)  # -8, 7, 7
    each = stats["layers"][p + "attention.self.key"]["cores_each"]
    assert [c["zero"] for c in each] == [3 / 8, 5 / 8]
    assert stats["all_cores"]["int4"]["total"] == 6 * 16
    # query input: quantize([1, -1, 2, -2], 1/32) = [32, -32, 64, -64] for every token.
    q_in = stats["layers"][p + "attention.self.query"]["input"]
    assert q_in["total"] == 9 * 4 and q_in["entropy_bits"] == pytest.approx(2.0)
    counts = np.asarray(q_in["counts"])
    assert {c - 128: counts[c] for c in np.flatnonzero(counts)} == {-64: 9, -32: 9, 32: 9, 64: 9}
    assert q_in["zero"] == 0.0 and q_in["saturated"] == 0.0
    # intermediate.dense input: quantize([0.5, 0.25, -0.5, 0], 1/64) = [32, 16, -32, 0].
    i_in = stats["layers"][p + "intermediate.dense"]["input"]
    assert i_in["zero"] == pytest.approx(1 / 4) and i_in["min"] == -32 and i_in["max"] == 32
    # output.dense: the 2**-20 requants turn every stage and output code to 0.
    out = stats["layers"][p + "output.dense"]
    assert len(out["stages"]) == 1
    assert out["stages"][0]["zero"] == 1.0 and out["stages"][0]["total"] == 9 * 2 * 2 * 2
    assert out["output"]["zero"] == 1.0 and out["output"]["entropy_bits"] == 0.0
    assert out["output"]["total"] == 9 * 4
    json.dumps(stats)  # JSON-able


def test_query_output_is_the_golden_layer_on_the_known_input():
    from ttaccel.spec.formats import quantize
    from ttaccel.spec.golden import tt_linear_int

    artifact = _tiny_artifact()
    stats = artifact_code_stats(artifact, [[1, 2], [3]])
    layer = artifact.tt_linears["bert.encoder.layer.0.attention.self.query"]
    row = tt_linear_int(quantize(B_EMB[None], 1 / 32, INT8), layer)  # golden, not the recorder
    expected = np.zeros(256, dtype=np.int64)
    np.add.at(expected, row.reshape(-1).astype(np.int64) + 128, 3)  # 3 tokens, same row
    got = stats["layers"]["bert.encoder.layer.0.attention.self.query"]["output"]["counts"]
    assert got == expected.tolist()


def test_cli_writes_the_picture_and_the_json(tmp_path, capsys):
    from ttaccel.cli import main
    from ttaccel.spec.artifact import save_artifact

    artifact = _tiny_artifact()
    artifact.vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "good", "bad", "film", "a", "b", "c"]
    save_artifact(tmp_path / "tiny.safetensors", artifact)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "dev.tsv").write_text("sentence\tlabel\ngood film\t1\nbad\t0\na b c\t1\n")
    code = main(["code-stats", "--artifact", str(tmp_path / "tiny.safetensors"),
                 "--data", str(tmp_path / "data"), "--limit", "2",
                 "--out", str(tmp_path / "h.png"), "--json", str(tmp_path / "h.json")])  # fmt: skip
    assert code == 0
    assert (tmp_path / "h.png").read_bytes()[:4] == b"\x89PNG"
    stats = json.loads((tmp_path / "h.json").read_text())
    assert (
        stats["examples"] == 2 and stats["tokens"] == 4 + 3
    )  # [CLS] good film [SEP], [CLS] bad [SEP]
    assert "all int4 cores: 96 codes, 50.0% zero" in capsys.readouterr().out
    assert main(["code-stats", "--data", str(tmp_path / "data"), "--limit", "0",
                 "--out", str(tmp_path / "x.png")]) == 2  # fmt: skip
