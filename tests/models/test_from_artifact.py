"""Reading a student's float weights back from its integer artifact (``--init-from A.safetensors``).

The artifact keeps codes and requantization ratios, not the scales: the rebuilt cores must still
multiply to the matrix the student's own dequantized cores multiply to (a TT-matrix is defined up
to a gauge: only the product is fixed), with the float tensors and biases unchanged."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ttaccel.models.compress import build_student, load_student, train_student, tt_modules
from ttaccel.models.config import CompressionConfig, LayerRule
from ttaccel.models.export import export_student
from ttaccel.models.train import LoopConfig
from ttaccel.models.tt import TTLinear
from ttaccel.spec.artifact import load_artifact
from ttaccel.spec.tt import tt_svd, tt_to_dense


def _config(rank: int = 4) -> CompressionConfig:
    return CompressionConfig(
        (LayerRule("encoder", rank), LayerRule("word_embeddings", 4, (5, 5), (4, 6))), 4
    )


@pytest.fixture(scope="module")
def exported(tmp_path_factory, tiny_checkpoint, tiny_data):
    out = tmp_path_factory.mktemp("from-artifact")
    loop = LoopConfig(steps=4, batch_size=8, lr=1e-3, eval_every=4, save_every=4)
    train_student(tiny_checkpoint, tiny_data, out, _config(), method="e2e", loop=loop,
                  progress=False)  # fmt: skip
    export_student(out / "student", out / "a.safetensors")
    return out / "student", out / "a.safetensors"


def _dequantized_product(layer) -> np.ndarray:
    """The dense matrix of the student's quantized cores (codes times their learned scales)."""
    cores = []
    for q, core in zip(layer.core_q, layer.cores, strict=True):
        codes, scale = q.to_int(core)
        cores.append(np.asarray(codes, dtype=np.float64) * scale)
    return tt_to_dense(cores)


def test_rebuilt_cores_multiply_to_the_quantized_matrix(exported, tiny_checkpoint):
    student_dir, artifact_path = exported
    trained, _, _ = load_student(student_dir)
    rebuilt, _ = build_student(tiny_checkpoint, _config(), 2, init_from=artifact_path)
    layers = tt_modules(rebuilt)
    checked = 0
    for name, original in tt_modules(trained).items():
        new_cores = [c.detach().double().numpy() for c in layers[name].cores]
        expected = _dequantized_product(original)
        np.testing.assert_allclose(tt_to_dense(new_cores), expected, rtol=1e-4,
                                   atol=1e-4 * np.abs(expected).max(), err_msg=name)  # fmt: skip
        if isinstance(original, TTLinear) and original.bias is not None:
            # The bias comes back at the accumulator's scale (steps of about 1e-4 here).
            np.testing.assert_allclose(
                layers[name].bias.detach().numpy(),
                original.bias.detach().numpy(),
                atol=1e-3,
                err_msg=name,
            )
        checked += 1
    assert checked == 13  # 12 encoder linears and the word embedding
    rms = [float(c.detach().pow(2).mean().sqrt())
           for c in layers["bert.encoder.layer.0.output.dense"].cores]  # fmt: skip
    assert max(rms) / min(rms) < 1.0001  # the gauge is spread evenly over the cores


def test_float_tensors_come_back_unchanged(exported, tiny_checkpoint):
    student_dir, artifact_path = exported
    trained = load_student(student_dir)[0].state_dict()
    rebuilt = build_student(tiny_checkpoint, _config(), 2, init_from=artifact_path)[0].state_dict()
    for name in ("classifier.weight", "bert.embeddings.LayerNorm.weight",
                 "bert.encoder.layer.1.attention.output.LayerNorm.bias"):  # fmt: skip
        assert torch.equal(rebuilt[name], trained[name]), name
    positions = "bert.embeddings.position_embeddings.weight"
    kept = load_artifact(artifact_path).tensors[positions].shape[0]
    assert torch.equal(rebuilt[positions][:kept], trained[positions][:kept])


def test_a_lower_rank_student_starts_from_the_truncated_trained_matrix(exported, tiny_checkpoint):
    student_dir, artifact_path = exported
    trained, _, _ = load_student(student_dir)
    rebuilt, _ = build_student(tiny_checkpoint, _config(rank=2), 2, init_from=artifact_path)
    name = "bert.encoder.layer.1.intermediate.dense"
    original, layer = tt_modules(trained)[name], tt_modules(rebuilt)[name]
    assert max(layer.shape.ranks) == 2 and max(original.shape.ranks) > 2
    expected = _dequantized_product(original)
    best, _ = tt_svd(expected, layer.shape.in_modes, layer.shape.out_modes, 2)
    got = tt_to_dense([c.detach().double().numpy() for c in layer.cores])
    np.testing.assert_allclose(got, tt_to_dense(best), rtol=1e-3,
                               atol=1e-3 * np.abs(expected).max())  # fmt: skip
    # not the TT-SVD of the teacher's weights at rank 2
    fresh = tt_modules(build_student(tiny_checkpoint, _config(rank=2), 2)[0])[name]
    assert not np.allclose(tt_to_dense([c.detach().double().numpy() for c in fresh.cores]), got)


def test_an_artifact_of_other_modes_is_refused_by_name(exported, tiny_checkpoint):
    _, artifact_path = exported
    other = CompressionConfig(
        (
            LayerRule("encoder", 4, cores_per_side=3),
            LayerRule("word_embeddings", 4, (5, 5), (4, 6)),
        ),
        4,
    )
    with pytest.raises(ValueError, match=r"--init-from .*a\.safetensors: TT layer "
                       r"bert\.encoder\.layer\.0\.\S+: the artifact's modes"):  # fmt: skip
        build_student(tiny_checkpoint, other, 2, init_from=artifact_path)
