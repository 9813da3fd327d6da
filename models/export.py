"""Export a quantized student to the spec's artifact, and evaluate both ways.

:func:`student_artifact` collects ``to_int()`` of every TT module (integer cores and
requantization constants, computed by the spec's ``ptq`` functions), every other parameter as
a float32 tensor under its Hugging Face name, the vocabulary and the model description that
:class:`ttaccel.spec.inference.BertInference` reads. :func:`evaluate_student` reports dev
metrics of the torch fake-quant model and of the artifact through the spec's integer golden
model, and how often their predictions agree.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from torch import nn

from ttaccel.spec.artifact import Artifact, load_artifact, save_artifact
from ttaccel.spec.golden import QuantNMLinear
from ttaccel.spec.inference import BertInference

from .compress import load_student, tt_modules
from .data import Encoded, encode, infer_task, load_split, load_tokenizer
from .nm import NMLinear
from .quant import LsqQuantizer
from .train import evaluate_logits, predictions, task_metrics
from .tt import TTEmbedding, TTLinear
from .tucker import tucker_banks, tucker_modules

__all__ = [
    "evaluate_student",
    "export_student",
    "golden_logits",
    "student_artifact",
    "write_artifact",
]


def _vocab(student_dir: Path) -> list[str]:
    path = student_dir / "vocab.txt"
    if path.is_file():
        return path.read_text(encoding="utf-8").splitlines()
    tokenizer = load_tokenizer(student_dir)
    vocab = tokenizer.get_vocab()
    return [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])]


def _tokenizer_settings(student_dir: Path) -> dict:
    """What a WordPiece tokenizer over the artifact's vocabulary needs besides the vocabulary."""
    path = student_dir / "tokenizer_config.json"
    settings = json.loads(path.read_text()) if path.is_file() else {}
    return {"do_lower_case": bool(settings.get("do_lower_case", True))}


def student_artifact(
    model: nn.Module, meta: dict, vocab: list[str], tokenizer: dict | None = None
) -> Artifact:
    """The artifact of a quantized, calibrated student (``model`` from :func:`load_student`).

    ``tokenizer``: settings recorded next to the vocabulary (``{"do_lower_case": bool}``). The
    model description also records the training run's dev metrics and settings (``training``).
    The position table keeps only its first ``max_length`` rows (the tokenizer never reaches the
    others; ``max_position_embeddings`` says so). An N:M layer
    (:class:`~ttaccel.models.nm.NMLinear`, scheme ``nm``) goes to ``nm_linears``, compressed
    (ValueError naming it if its integer weight is not N:M). Tucker linears (scheme ``tucker``)
    go to ``tucker_linears`` and their banks, once each, to ``tucker_banks`` under their module
    path (``tucker_banks.<name>``). Raises ValueError for a float student (the artifact holds
    integer layers only).
    """
    tts = tt_modules(model)
    tuckers, banks = tucker_modules(model), tucker_banks(model)
    layers = [*tts.values(), *tuckers.values(), *banks.values()]
    if not layers or not all(m.quantized for m in layers):
        raise ValueError(
            "only quantized students can be exported (the artifact holds integer TT layers): "
            "train the student with --bits 8, 4, 2, ternary or binary"
        )
    linears, embeddings, nm_linears, owned = {}, {}, {}, set()
    tucker_linears = {name: layer.to_int() for name, layer in tuckers.items()}
    owned.update(f"{name}.{p}" for name, layer in tuckers.items()
                 for p, _ in layer.named_parameters())  # fmt: skip
    quant_banks = {}
    for key, bank in banks.items():
        quant_banks[f"tucker_banks.{key}"] = bank.to_int()
        owned.update(f"tucker_banks.{key}.{p}" for p, _ in bank.named_parameters())
    for name, layer in tts.items():
        if isinstance(layer, NMLinear):
            nm_linears[name] = QuantNMLinear.from_tt_linear(layer.to_int(), layer.n, layer.m,
                                                            name=name)  # fmt: skip
        elif isinstance(layer, TTLinear):
            linears[name] = layer.to_int()
        elif isinstance(layer, TTEmbedding):
            embeddings[name] = layer.to_int()
        owned.update(f"{name}.{p}" for p, _ in layer.named_parameters())
    quantizer_params = {
        f"{n}.scale" for n, m in model.named_modules() if isinstance(m, LsqQuantizer)
    }
    tensors = {
        n: p.detach().float().cpu().numpy()
        for n, p in model.named_parameters()
        if n not in owned and n not in quantizer_params
    }
    hf = dict(meta["hf_config"])
    max_length = meta.get("max_length")
    positions = "bert.embeddings.position_embeddings.weight"
    if max_length and positions in tensors and int(max_length) < len(tensors[positions]):
        # The tokenizer cuts every example at max_length: later rows are never read.
        tensors[positions] = tensors[positions][: int(max_length)].copy()
        hf["max_position_embeddings"] = int(max_length)
    result = meta.get("result", {})
    model_config = {
        "architecture": "bert-sequence-classification",
        **{k: hf[k] for k in ("hidden_size", "num_hidden_layers", "num_attention_heads",
                              "intermediate_size", "layer_norm_eps", "hidden_act",
                              "max_position_embeddings", "type_vocab_size", "pad_token_id",
                              "vocab_size")},
        "num_labels": int(model.config.num_labels),
        "task": meta.get("task"), "max_length": meta.get("max_length"),
        "compression": meta.get("compression"), "tokenizer": tokenizer or {"do_lower_case": True},
        "training": {k: result[k] for k in ("method", "dev", "loop", "init_from") if k in result},
    }  # fmt: skip
    return Artifact(model_config, linears, embeddings, tensors, vocab, nm_linears=nm_linears,
                    tucker_banks=quant_banks, tucker_linears=tucker_linears)  # fmt: skip


def write_artifact(artifact: Artifact, out_path: str | Path) -> Path:
    """Save ``artifact`` at ``out_path`` (its folder created); returns the path."""
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    save_artifact(out_path, artifact)
    return out_path


def export_student(student_dir: str | Path, out_path: str | Path) -> dict:
    """Write the artifact of the student folder to ``out_path``; returns sizes in bytes."""
    student_dir = Path(student_dir)
    model, _, meta = load_student(student_dir)
    artifact = student_artifact(model, meta, _vocab(student_dir), _tokenizer_settings(student_dir))
    out_path = write_artifact(artifact, out_path)
    result = meta.get("result", {})
    dense = result.get("sizes", {}).get("dense_bytes")
    file_bytes = out_path.stat().st_size
    return {
        "artifact": str(out_path), "file_bytes": file_bytes, "payload_bytes": artifact.nbytes(),
        "dense_fp32_bytes": dense, "ratio_vs_dense_fp32": dense / file_bytes if dense else None,
    }  # fmt: skip


def golden_logits(inference: BertInference, data: list[Encoded], batch: int = 32) -> np.ndarray:
    """Logits of every example through the spec's integer model (float32, (N, C))."""
    out = []
    for i in range(0, len(data), batch):
        chunk = data[i : i + batch]
        out.append(inference.logits([e.input_ids for e in chunk],
                                    [e.token_type_ids for e in chunk]))  # fmt: skip
    return np.concatenate(out)


def evaluate_student(
    student_dir: str | Path, data_dir: str | Path, *, task: str | None = None,
    artifact_path: str | Path | None = None, limit: int | None = None, golden: bool = True,
    int_sim: bool = False,
) -> dict:  # fmt: skip
    """Dev metrics of a student: torch fake-quant (float for float students), and for
    quantized students the artifact through the spec's golden model (the artifact at
    ``artifact_path``, or exported in memory) and optionally the torch integer simulation.
    ``limit`` evaluates the first N dev examples only."""
    student_dir = Path(student_dir)
    model, cfg, meta = load_student(student_dir)
    glue = infer_task(data_dir, task or meta.get("task"))
    tokenizer = load_tokenizer(student_dir)
    dev = load_split(data_dir, "dev", glue)
    if limit is not None:
        dev = dev[:limit]
    enc = encode(dev, tokenizer, int(meta.get("max_length", 128)))
    regression = glue.is_regression

    def forward(batch):
        return model(input_ids=batch["input_ids"], token_type_ids=batch["token_type_ids"],
                     attention_mask=batch["attention_mask"]).logits  # fmt: skip

    torch_logits, labels = evaluate_logits(forward, enc, 64)
    torch_pred = predictions(torch_logits, regression)
    result = {
        "task": glue.name, "examples": len(enc), "student": str(student_dir),
        "weight_bits": cfg.weight_bits,
        "torch": task_metrics(torch_pred, labels, regression),
    }  # fmt: skip
    quantized = cfg.weight_bits is not None
    if quantized and int_sim:
        simulated = [*tt_modules(model).values(), *tucker_modules(model).values()]
        for m in simulated:
            m.int_mode = True
        sim_logits, _ = evaluate_logits(forward, enc, 64)
        for m in simulated:
            m.int_mode = False
        result["torch_int_sim"] = task_metrics(predictions(sim_logits, regression), labels,
                                               regression)  # fmt: skip
    if quantized and golden:
        if artifact_path is not None:
            artifact = load_artifact(artifact_path)
        else:
            artifact = student_artifact(
                model, meta, _vocab(student_dir), _tokenizer_settings(student_dir)
            )
        g_logits = golden_logits(BertInference(artifact), enc)
        g_pred = predictions(g_logits, regression)
        result["golden"] = task_metrics(g_pred, labels, regression)
        result["golden_torch_prediction_agreement"] = float(np.mean(g_pred == torch_pred))
        result["golden_torch_max_logit_diff"] = float(np.max(np.abs(g_logits - torch_logits)))
    sizes = meta.get("result", {}).get("sizes")
    if sizes:
        result["sizes"] = sizes
    return result


def dumps(result: dict) -> str:
    return json.dumps(result, indent=2)
