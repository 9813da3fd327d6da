"""The joint intent + slot architecture (``bert-joint-intent-slot``) in the artifact and the
golden model, NumPy only: the bundled SST-2 artifact with a slot head added."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from ttaccel.demo import BUNDLED_ARTIFACT
from ttaccel.spec.artifact import (
    JOINT_ARCHITECTURE,
    SEQUENCE_ARCHITECTURE,
    ArtifactError,
    load_artifact,
    save_artifact,
)
from ttaccel.spec.inference import BertInference

SLOTS = 7
EXAMPLES = [[101, 7592, 2088, 102], [101, 2023, 3185, 2003, 2204, 1012, 102]]


@pytest.fixture(scope="module")
def bundled():
    return load_artifact(BUNDLED_ARTIFACT)


def _joint(artifact, rng, *, slots=SLOTS, rows=SLOTS, bias_rows=SLOTS):
    hidden = artifact.model_config["hidden_size"]
    tensors = dict(artifact.tensors)
    tensors["slot_classifier.weight"] = rng.standard_normal((rows, hidden)).astype(np.float32)
    tensors["slot_classifier.bias"] = rng.standard_normal(bias_rows).astype(np.float32)
    config = {**artifact.model_config, "architecture": JOINT_ARCHITECTURE,
              "num_slot_labels": slots}  # fmt: skip
    return dataclasses.replace(artifact, model_config=config, tensors=tensors)


def test_the_bundled_artifact_is_still_a_sequence_classifier(bundled):
    assert bundled.model_config["architecture"] == SEQUENCE_ARCHITECTURE
    assert "num_slot_labels" not in bundled.model_config
    with pytest.raises(ValueError, match="joint_logits needs a 'bert-joint-intent-slot'"):
        BertInference(bundled).joint_logits(EXAMPLES)


def test_joint_logits_are_the_intent_head_and_a_slot_head_on_every_token(bundled, tmp_path):
    rng = np.random.default_rng(0)
    save_artifact(tmp_path / "joint.safetensors", _joint(bundled, rng))
    joint = load_artifact(tmp_path / "joint.safetensors")
    inference = BertInference(joint)
    intent, slots = inference.joint_logits(EXAMPLES)
    # the intent head is the sequence classifier of the unchanged model, bit for bit
    np.testing.assert_array_equal(intent, BertInference(bundled).logits(EXAMPLES))
    assert [s.shape for s in slots] == [(4, SLOTS), (7, SLOTS)]
    assert all(s.dtype == np.float32 for s in slots)
    # each token's slot logits: W h + b on its own final hidden state (section 7.8)
    x, starts = inference.hidden_states(EXAMPLES)
    w, b = joint.tensors["slot_classifier.weight"], joint.tensors["slot_classifier.bias"]
    for example, s in enumerate(slots):
        rows = x[starts[example] : starts[example + 1]]
        np.testing.assert_allclose(s, rows @ w.T + b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"slots": SLOTS + 1}, "slot_classifier.weight", "shape mismatch: model.num_slot_labels"),
        ({"rows": SLOTS - 1}, "slot_classifier.weight", "found (6, 384)"),
        ({"bias_rows": SLOTS + 2}, "slot_classifier.bias", "needs (7,), found (9,)"),
    ],
)
def test_a_slot_head_with_the_wrong_label_count_is_refused(bundled, tmp_path, change, field,
                                                           message):  # fmt: skip
    save_artifact(tmp_path / "bad.safetensors", _joint(bundled, np.random.default_rng(1), **change))
    with pytest.raises(ArtifactError, match=message.replace("(", r"\(").replace(")", r"\)")) as e:
        load_artifact(tmp_path / "bad.safetensors")
    assert e.value.field == field


def test_a_joint_artifact_without_its_slot_head_is_refused(bundled, tmp_path):
    joint = _joint(bundled, np.random.default_rng(2))
    del joint.tensors["slot_classifier.weight"]
    save_artifact(tmp_path / "bad.safetensors", joint)
    with pytest.raises(ArtifactError, match="tensor missing") as e:
        load_artifact(tmp_path / "bad.safetensors")
    assert e.value.field == "slot_classifier.weight"
    no_count = _joint(bundled, np.random.default_rng(2))
    del no_count.model_config["num_slot_labels"]
    save_artifact(tmp_path / "bad2.safetensors", no_count)
    with pytest.raises(ArtifactError, match="missing") as e:
        load_artifact(tmp_path / "bad2.safetensors")
    assert e.value.field == "model.num_slot_labels"


def test_an_intent_head_disagreeing_with_num_labels_is_refused(bundled, tmp_path):
    wrong = dataclasses.replace(bundled, model_config={**bundled.model_config, "num_labels": 3})
    save_artifact(tmp_path / "bad.safetensors", wrong)
    with pytest.raises(ArtifactError, match="shape mismatch") as e:
        load_artifact(tmp_path / "bad.safetensors")
    assert e.value.field == "classifier.weight"
