"""Compression config round trip and the errors a user's mistakes get."""

from __future__ import annotations

import pytest

from ttaccel.models.compress import apply_compression, train_student
from ttaccel.models.config import CompressionConfig, LayerRule
from ttaccel.models.data import infer_task, load_split
from ttaccel.models.teacher import check_checkpoint_dir, load_bert_classifier
from ttaccel.models.train import LoopConfig


def test_config_round_trips_through_json():
    cfg = CompressionConfig(
        (
            LayerRule("attention", 8, (4, 6), (6, 4)),
            LayerRule("ffn", [3, 5, 3]),
            LayerRule("word_embeddings", 6, (5, 5), (4, 6)),
            LayerRule("bert.encoder.layer.1.output.dense", 2, cores_per_side=1),
        ),
        weight_bits=2, power_of_two=True, encoder_layers=(0, 1),
    )  # fmt: skip
    again = CompressionConfig.from_json(cfg.to_json())
    assert again == cfg
    assert again.layers[1].rank == (3, 5, 3)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"layers": [{"name": "querry", "rank": 4}]}, r"unknown layer name 'querry'"),
        ({"layers": [{"name": "query", "rank": 0}]}, r"rank must be a positive integer"),
        ({"layers": [{"name": "query", "rank": 4, "in_modes": [2, 2]}]}, "both in_modes"),
        ({"layers": [{"name": "query", "rank": 4}], "weight_bits": 3}, "weight_bits must be"),
        ({"layers": [{"name": "query", "rnak": 4}]}, r"unknown keys \['rnak'\]"),
        ({"layers": [], "bits": 4}, r"unknown compression config keys \['bits'\]"),
    ],
)
def test_config_errors_name_the_input(data, message):
    with pytest.raises(ValueError, match=message):
        CompressionConfig.from_dict(data)


def test_unknown_module_name_in_the_model(tiny_checkpoint):
    model = load_bert_classifier(tiny_checkpoint, 2)
    cfg = CompressionConfig((LayerRule("bert.encoder.layer.7.attention.self.query", 4),))
    with pytest.raises(ValueError, match=r"unknown layer name 'bert.encoder.layer.7"):
        apply_compression(model, cfg)


def test_modes_that_do_not_multiply_to_the_dimension(tiny_checkpoint):
    model = load_bert_classifier(tiny_checkpoint, 2)
    cfg = CompressionConfig((LayerRule("query", 4, (5, 5), (4, 6)),))
    with pytest.raises(ValueError, match=r"modes \[5, 5\] x \[4, 6\] multiply to 25 x 24, but the "
                       r"layer is 24 \(in\) x 24 \(out\)"):  # fmt: skip
        apply_compression(model, cfg)


def test_ranks_larger_than_the_modes_allow(tiny_checkpoint):
    model = load_bert_classifier(tiny_checkpoint, 2)
    cfg = CompressionConfig((LayerRule("query", [9, 5, 4], (4, 6), (6, 4)),))
    with pytest.raises(
        ValueError, match=r"rank 9 at boundary 1 is larger than the modes .* allow \(at most 4"
    ):
        apply_compression(model, cfg)


def test_checkpoint_folder_without_weights(tmp_path, tiny_checkpoint):
    (tmp_path / "config.json").write_text((tiny_checkpoint / "config.json").read_text())
    with pytest.raises(FileNotFoundError, match=r"has no weights: expected one of"):
        check_checkpoint_dir(tmp_path)
    with pytest.raises(FileNotFoundError, match="has no weights"):
        train_student(tmp_path, tmp_path, tmp_path / "o", CompressionConfig.uniform(2, 4),
                      loop=LoopConfig(steps=1), progress=False)  # fmt: skip


def test_data_folder_in_the_wrong_format(tmp_path):
    folder = tmp_path / "SST-2"
    folder.mkdir()
    (folder / "train.tsv").write_text("text,label\nhello,1\n")
    with pytest.raises(ValueError, match=r"not in the GLUE SST-2 format: expected columns "
                       r"\['sentence', 'label'\]"):  # fmt: skip
        load_split(folder, "train", infer_task(folder))
    (folder / "train.tsv").write_text("sentence\tlabel\nhello\tmaybe\n")
    with pytest.raises(ValueError, match=r"line 2: label 'maybe' is not one of \['0', '1'\]"):
        load_split(folder, "train", infer_task(folder))
    with pytest.raises(FileNotFoundError, match=r"expected a GLUE SST-2 file dev.tsv"):
        load_split(folder, "dev", infer_task(folder))
    with pytest.raises(ValueError, match=r"data folder name 'weird' is not a known GLUE task"):
        infer_task(tmp_path / "weird")
