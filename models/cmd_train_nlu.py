"""Train a joint intent detection + slot filling model on JointBERT-format data (ATIS).

``DATA`` holds ``intent_label.txt``, ``slot_label.txt`` and ``train/``, ``dev/``, ``test/``
folders of ``seq.in`` / ``seq.out`` / ``label`` (``ttaccel.models.nlu_data``). The model has an
intent head on the pooled ``[CLS]`` and a slot head on every token; the loss is intent
cross-entropy + slot cross-entropy on the first sub-token of every word.

* ``--model tt``: a small BERT (``--layers``, ``--hidden``, ``--heads``, ``--ffn``) trained
  from scratch whose word embedding, encoder linears and pooler are TT-matrices from the start
  (``--rank``, ``--embedding-rank``), with QAT at ``--bits 8`` or ``4`` (learnable scales,
  ``--scale-init``); without ``--bits`` the TT cores stay float.
* ``--model dense``: the same shape with dense fp32 layers.
* ``--model minilm``: the bundled pretrained MiniLM-L6 (or ``--checkpoint``) fine-tuned with
  the same heads.

Dev metrics are logged while training; the test split is scored at the end (intent accuracy,
CoNLL slot F1, exact match). A quantized TT model is also saved (``OUT/student``), exported
(``OUT/model.safetensors``) and scored through the spec's integer golden model. Rerunning the
same command resumes from ``OUT/state.pt``.

Outputs in OUT: ``result.json`` (command, test/dev/golden metrics, sizes, settings),
``metrics.csv``, ``metrics.jsonl``, ``state.pt``, and for TT models ``student/``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .cmd_train_teacher import record_command, use_threads

HELP = "train a joint intent + slot model (TT QAT from scratch, dense, or MiniLM) on ATIS"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data", type=Path, required=True, help="JointBERT-format folder (../shared/data/ATIS)"
    )
    parser.add_argument(
        "--out", type=Path, required=True, help="output folder (an existing state.pt is resumed)"
    )
    parser.add_argument(
        "--model", default="tt", choices=["tt", "dense", "minilm"], help="model kind (default tt)"
    )
    parser.add_argument(
        "--bits", type=int, default=None, choices=[8, 4], help="tt: core bits (default: float)"
    )
    parser.add_argument("--rank", type=int, default=32, help="tt: encoder/pooler rank cap (32)")
    parser.add_argument(
        "--embedding-rank", type=int, default=32, help="tt: word embedding rank cap (32)"
    )
    parser.add_argument(
        "--scale-init",
        default="mse",
        choices=["max", "lsq", "mse", "percentile"],
        help="tt: initial weight and activation scales before QAT (default mse)",
    )
    parser.add_argument("--layers", type=int, default=2, help="tt/dense: encoder layers (2)")
    parser.add_argument("--hidden", type=int, default=384, help="tt/dense: hidden size (384)")
    parser.add_argument("--heads", type=int, default=6, help="tt/dense: attention heads (6)")
    parser.add_argument("--ffn", type=int, default=1536, help="tt/dense: FFN size (1536)")
    parser.add_argument(
        "--checkpoint",
        type=Path,
        default=None,
        help="BERT folder of the tokenizer (and of minilm's weights); default bundled MiniLM-L6",
    )
    parser.add_argument("--no-golden", action="store_true", help="skip the golden-model test run")
    from .cmd_train_teacher import add_loop_arguments

    add_loop_arguments(parser, steps=1000, lr=5e-4)


def run(args: argparse.Namespace) -> int:
    use_threads(args.threads)
    import json

    from .cmd_train_teacher import loop_config
    from .nlu import ScratchShape, train_nlu

    if args.task is not None:
        raise ValueError("--task does not apply to train-nlu (the data folder is the task)")
    result = train_nlu(
        args.data, args.out, kind=args.model, bits=args.bits, rank=args.rank,
        embedding_rank=args.embedding_rank, scale_init=args.scale_init,
        shape=ScratchShape(args.layers, args.hidden, args.heads, args.ffn),
        max_length=args.max_length, checkpoint=args.checkpoint, train_subset=args.train_subset,
        loop=loop_config(args), golden=not args.no_golden, progress=not args.no_progress,
    )  # fmt: skip
    record_command(args.out, result)
    summary = {k: result[k] for k in ("test", "sizes") if k in result}
    if "golden" in result:
        summary["golden"] = result["golden"]["test"]
    print(json.dumps(summary))
    return 0
