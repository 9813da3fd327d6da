"""The dense teacher: a Hugging Face BERT checkpoint fine-tuned on a GLUE task.

The fine-tuned teacher is saved as an ordinary Hugging Face folder (``config.json``,
``model.safetensors``, tokenizer files) under ``{out_dir}/model``, so it is itself "a local BERT
checkpoint folder" that ``compress`` accepts.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import torch

from .data import load_encoded_splits, load_tokenizer
from .train import LoopConfig, dist_info, evaluate_logits, predictions, task_metrics, train_loop

__all__ = ["check_checkpoint_dir", "load_bert_classifier", "make_eval_fn", "train_teacher"]

_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def check_checkpoint_dir(folder: str | Path) -> Path:
    """Validate a Hugging Face BERT checkpoint folder: it must hold ``config.json`` and weights
    (``model.safetensors`` or ``pytorch_model.bin``). Raises FileNotFoundError naming what is
    missing and what the folder holds."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"checkpoint folder {folder} does not exist")
    found = sorted(p.name for p in folder.iterdir())
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"checkpoint folder {folder}: expected config.json, found {found}")
    if not any((folder / w).is_file() for w in _WEIGHT_FILES):
        raise FileNotFoundError(
            f"checkpoint folder {folder} has no weights: expected one of {list(_WEIGHT_FILES)}, "
            f"found {found}"
        )
    return folder


def load_bert_classifier(checkpoint_dir: str | Path, num_labels: int):
    """``BertForSequenceClassification`` from a local folder (offline; a missing classifier head
    is freshly initialised). Non-BERT checkpoints are rejected with a ValueError."""
    from transformers import BertConfig, BertForSequenceClassification
    from transformers.utils import logging as hf_logging

    folder = check_checkpoint_dir(checkpoint_dir)
    config = json.loads((folder / "config.json").read_text())
    if config.get("model_type", "bert") != "bert":
        raise ValueError(
            f"checkpoint {folder}: expected a BERT model (model_type 'bert'), "
            f"found {config.get('model_type')!r}"
        )
    bert_config = BertConfig.from_pretrained(str(folder), num_labels=num_labels)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the "newly initialised classifier" notice is expected
    try:
        model = BertForSequenceClassification.from_pretrained(
            str(folder), config=bert_config, attn_implementation="eager"
        )
    finally:
        hf_logging.set_verbosity(verbosity)
    return model


def make_eval_fn(dev_data, regression: bool, batch_size: int = 128):
    """``eval_fn(model) -> metrics`` for an HF-style classifier returning ``.logits``."""

    def forward_logits(model, batch):
        out = model(
            input_ids=batch["input_ids"], token_type_ids=batch["token_type_ids"],
            attention_mask=batch["attention_mask"],
        )  # fmt: skip
        return out.logits if hasattr(out, "logits") else out

    def eval_fn(model) -> dict[str, float]:
        logits, labels = evaluate_logits(lambda b: forward_logits(model, b), dev_data, batch_size)
        return task_metrics(predictions(logits, regression), labels, regression)

    return eval_fn


def classification_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy, or MSE for a single regression output."""
    if logits.shape[-1] == 1:
        return torch.nn.functional.mse_loss(logits[:, 0], labels.float())
    return torch.nn.functional.cross_entropy(logits, labels)


def train_teacher(
    data_dir: str | Path,
    out_dir: str | Path,
    *,
    checkpoint: str | Path | None = None,
    task: str | None = None,
    max_length: int = 64,
    train_subset: int | None = None,
    loop: LoopConfig | None = None,
    progress: bool = True,
) -> dict:
    """Fine-tune ``checkpoint`` (default: bundled MiniLM-L6) on ``data_dir``'s train split.

    ``train_subset`` keeps the first N training examples. Writes ``{out_dir}/model`` (HF
    folder), ``metrics.csv``/``metrics.jsonl`` and ``result.json`` (dev metrics and settings).
    Returns the result dict.
    """
    from ttaccel.pretrained import default_checkpoint_dir

    loop = loop or LoopConfig()
    checkpoint = Path(checkpoint) if checkpoint is not None else default_checkpoint_dir()
    tokenizer = load_tokenizer(checkpoint)
    glue, train_enc, dev_enc = load_encoded_splits(
        data_dir, tokenizer, task, max_length, train_subset
    )
    model = load_bert_classifier(checkpoint, glue.num_labels)

    def loss_fn(net, batch, step):
        out = net(
            input_ids=batch["input_ids"], token_type_ids=batch["token_type_ids"],
            attention_mask=batch["attention_mask"],
        )  # fmt: skip
        return classification_loss(out.logits, batch["labels"]), {}

    eval_fn = make_eval_fn(dev_enc, glue.is_regression, loop.eval_batch_size)
    dev_metrics = train_loop(model, loss_fn, train_enc, eval_fn, loop, out_dir, progress=progress)
    rank, _ = dist_info()
    result = {
        "task": glue.name, "checkpoint": str(checkpoint), "max_length": max_length,
        "train_examples": len(train_enc), "dev_examples": len(dev_enc),
        "loop": asdict(loop), "dev": dev_metrics,
    }  # fmt: skip
    if rank == 0:
        out = Path(out_dir)
        model.save_pretrained(out / "model")
        tokenizer.save_pretrained(out / "model")
        (out / "result.json").write_text(json.dumps(result, indent=2))
    return result
