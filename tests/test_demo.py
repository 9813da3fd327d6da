"""`ttaccel demo`: the bundled INT4 TT artifact, its tokenizer, and the demo command end to end."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ttaccel.demo import BUNDLED_ARTIFACT, DEFAULT_DATA, EXAMPLES, wordpiece_tokenizer
from ttaccel.spec.artifact import load_artifact
from ttaccel.spec.formats import INT4
from ttaccel.spec.inference import BertInference

pytest.importorskip("tokenizers")

TRICKY = [
    "Naïve café-goers ' ca n't stand it ' !!",
    "UNBELIEVABLY   dull\tand overlong ...",
    "a " + "very " * 100 + "long sentence that must be truncated",
    "émigré résumé Ω ≈ 42",
]


@pytest.fixture(scope="module")
def artifact():
    return load_artifact(BUNDLED_ARTIFACT)


def _dev_rows(folder: Path) -> list[tuple[str, int]]:
    lines = (folder / "dev.tsv").read_text(encoding="utf-8").splitlines()[1:]
    return [(s, int(label)) for s, label in (line.rsplit("\t", 1) for line in lines)]


def test_bundled_artifact_is_a_small_int4_tt_model(artifact):
    assert BUNDLED_ARTIFACT.stat().st_size < 5_000_000
    assert len(artifact.tt_linears) == 36  # six linears in each of MiniLM-L6's six layers
    assert all(layer.weight_format == INT4 for layer in artifact.tt_linears.values())
    assert all(c.min() >= INT4.qmin and c.max() <= INT4.qmax
               for layer in artifact.tt_linears.values() for c in layer.cores)  # fmt: skip
    assert list(artifact.tt_embeddings) == ["bert.embeddings.word_embeddings"]
    assert "bert.embeddings.word_embeddings.weight" not in artifact.tensors


def test_demo_tokenizer_gives_the_training_tokenizer_ids(artifact):
    pytest.importorskip("transformers")
    from ttaccel.models.data import load_tokenizer
    from ttaccel.pretrained import default_checkpoint_dir

    reference = load_tokenizer(default_checkpoint_dir())
    ours = wordpiece_tokenizer(artifact)
    max_length = artifact.model_config["max_length"]
    for sentence in [*EXAMPLES, *TRICKY]:
        expected = reference(sentence, truncation=True, max_length=max_length)
        got = ours.encode(sentence)
        assert list(got.ids) == expected["input_ids"], sentence
        assert list(got.type_ids) == expected["token_type_ids"], sentence


def _golden_correct(artifact, rows) -> int:
    tokenizer = wordpiece_tokenizer(artifact)
    encodings = [tokenizer.encode(s) for s, _ in rows]
    logits = BertInference(artifact).logits([e.ids for e in encodings],
                                            [e.type_ids for e in encodings])  # fmt: skip
    return int((logits.argmax(-1) == np.array([label for _, label in rows])).sum())


def test_demo_command_classifies_and_counts_a_dev_file(artifact, tmp_path):
    rows = [
        ("a triumph , moving and funny .", 1),
        ("tedious , shapeless and dull .", 0),
        ("one of the year 's best films .", 1),
        ("a waste of a fine cast .", 0),
    ] * 3
    (tmp_path / "dev.tsv").write_text(
        "sentence\tlabel\n" + "".join(f"{s} \t{label}\n" for s, label in rows), encoding="utf-8"
    )
    result = subprocess.run(
        [sys.executable, "-m", "ttaccel.cli", "demo", "--backend", "reference",
         "--data", str(tmp_path), "--sim-sentences", "4",
         "--sentence", "a gorgeous , witty , seductive movie ."],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    out = result.stdout
    assert re.search(
        r"(positive|negative) +\d+\.\d%  = golden  a gorgeous , witty , seductive movie \.", out
    )
    first, whole = re.findall(r"(\d+)/(\d+) correct", out)
    assert int(first[1]) == 4 and int(whole[1]) == len(rows)
    assert int(whole[0]) == _golden_correct(artifact, rows)
    assert f"equal to the golden model's on {len(rows)}/{len(rows)} sentences" in out
    assert "MACS_ISSUED = the compiler's count" in out and "programs: True" in out
    assert re.search(r"[\d,]+ cycles per sentence, utilization \d+\.\d%", out)
    assert re.search(r"projected at 100 MHz: \d+\.\d+ ms engine \+ \d+\.\d ms host", out)


def test_bundled_artifact_golden_accuracy_matches_its_training_accuracy(artifact):
    """The exported integer model lands within 0.3 points of the torch accuracy that training
    recorded (the issue's target), on the real SST-2 dev set."""
    if not (DEFAULT_DATA / "dev.tsv").is_file():
        pytest.skip(f"SST-2 dev set not found at {DEFAULT_DATA}")
    rows = _dev_rows(DEFAULT_DATA)
    accuracy = 100 * _golden_correct(artifact, rows) / len(rows)
    recorded = artifact.model_config["training"]["dev"]["accuracy"]
    assert abs(accuracy - recorded) <= 0.3, (accuracy, recorded)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--artifact", "{tmp}/missing.safetensors"],
            "--artifact {tmp}/missing.safetensors: no such file",
        ),
        (["--limit", "0"], "--limit must be positive, not 0"),
        (["--data", "{tmp}"], "{tmp}/dev.tsv does not exist (--data must be a GLUE task folder)"),
    ],
)
def test_demo_bad_input_is_one_clear_line(tmp_path, args, message):
    args = [a.format(tmp=tmp_path) for a in args]
    result = subprocess.run(
        [sys.executable, "-m", "ttaccel.cli", "demo", *args], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert result.stderr.strip() == f"ttaccel demo: error: {message.format(tmp=tmp_path)}"


def test_dense_size_the_demo_reports_counts_every_parameter_of_the_dense_model():
    transformers = pytest.importorskip("transformers")
    from ttaccel.demo import _dense_parameters

    config = transformers.BertConfig(
        vocab_size=101, hidden_size=24, num_hidden_layers=3, num_attention_heads=2,
        intermediate_size=40, max_position_embeddings=33, type_vocab_size=2, num_labels=3,
    )  # fmt: skip
    model = transformers.BertForSequenceClassification(config)
    described = {**config.to_dict(), "num_labels": 3}
    assert _dense_parameters(described) == sum(p.numel() for p in model.parameters())
