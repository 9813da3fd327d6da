"""GLUE-format data: reading the TSV folders, tokenizing, and dynamically padded batches.

A data folder holds ``train.tsv`` and ``dev.tsv`` in the GLUE layout of one of the tasks in
:data:`TASKS` (SST-2, MRPC, RTE, CoLA, STS-B, QNLI). Files are read with ``csv.QUOTE_NONE``
(GLUE sentences contain bare quotes), a UTF-8 byte-order mark (MRPC) is skipped, and CoLA's
header-less layout is read by column position. The task is named explicitly or inferred from
the folder's name.

Batches are dicts of int64 tensors ``input_ids``, ``token_type_ids``, ``attention_mask`` of
shape (B, L) with ``L`` the longest example in the batch (dynamic padding, pad id 0), and
``labels`` (B,) (int64, or float32 for the regression task STS-B); examples with per-token
labels (:class:`ttaccel.models.nlu_data.NluEncoded`) add ``token_labels`` (B, L), int64, -100
on padding.
"""

from __future__ import annotations

import csv
import math
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "TASKS",
    "Example",
    "GlueTask",
    "batches",
    "encode",
    "infer_task",
    "load_encoded_splits",
    "load_split",
    "load_tokenizer",
]

csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


@dataclass(frozen=True)
class GlueTask:
    """How one GLUE task's TSV files are laid out.

    ``text_columns``: one (single sentence) or two (pair) column names, or column positions for
    header-less files; ``label_column`` likewise; ``labels``: the label strings in class order
    (empty for regression); ``header``: whether the first line names the columns.
    """

    name: str
    text_columns: tuple[str | int, ...]
    label_column: str | int
    labels: tuple[str, ...]
    header: bool = True

    @property
    def num_labels(self) -> int:
        """Classes (1 for regression)."""
        return len(self.labels) or 1

    @property
    def is_regression(self) -> bool:
        return not self.labels


TASKS: dict[str, GlueTask] = {
    t.name: t
    for t in (
        GlueTask("SST-2", ("sentence",), "label", ("0", "1")),
        GlueTask("MRPC", ("#1 String", "#2 String"), "Quality", ("0", "1")),
        GlueTask("RTE", ("sentence1", "sentence2"), "label", ("entailment", "not_entailment")),
        GlueTask("QNLI", ("question", "sentence"), "label", ("entailment", "not_entailment")),
        GlueTask("CoLA", (3,), 1, ("0", "1"), header=False),
        GlueTask("STS-B", ("sentence1", "sentence2"), "score", ()),
    )
}


def _key(name: str) -> str:
    return name.lower().replace("-", "").replace("_", "")


def infer_task(data_dir: str | Path, task: str | None = None) -> GlueTask:
    """The :class:`GlueTask` named ``task`` (case and dashes ignored), or, when ``task`` is None,
    the one whose name matches the folder's name. Raises ValueError naming the choices."""
    name = task if task is not None else Path(data_dir).resolve().name
    for known in TASKS.values():
        if _key(known.name) == _key(name):
            return known
    what = f"task {task!r}" if task is not None else f"data folder name {Path(data_dir).name!r}"
    raise ValueError(
        f"{what} is not a known GLUE task; expected one of {sorted(TASKS)} "
        f"(pass the task explicitly when the folder has another name)"
    )


@dataclass(frozen=True)
class Example:
    """One example: one or two texts and a label (class index, or a float score)."""

    texts: tuple[str, ...]
    label: int | float


def load_split(data_dir: str | Path, split: str, task: GlueTask) -> list[Example]:
    """Read ``{data_dir}/{split}.tsv`` of ``task`` into examples, in file order.

    Raises FileNotFoundError if the file is missing, and ValueError naming the file, the line
    and what was expected when a column or a label does not fit the task's layout.
    """
    path = Path(data_dir) / f"{split}.tsv"
    if not path.is_file():
        found = sorted(p.name for p in Path(data_dir).glob("*")) if Path(data_dir).is_dir() else []
        raise FileNotFoundError(
            f"data folder {data_dir}: expected a GLUE {task.name} file {split}.tsv, found {found}"
        )
    with open(path, encoding="utf-8-sig", newline="") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    if not rows:
        raise ValueError(f"{path}: empty file, expected GLUE {task.name} rows")
    if task.header:
        header = rows[0]
        wanted = (*task.text_columns, task.label_column)
        missing = [c for c in wanted if c not in header]
        if missing:
            raise ValueError(
                f"{path}: not in the GLUE {task.name} format: expected columns {list(wanted)}, "
                f"the header has {header}"
            )
        text_idx = [header.index(c) for c in task.text_columns]
        label_idx = header.index(task.label_column)
        body, first_line = rows[1:], 2
    else:
        text_idx, label_idx = list(task.text_columns), int(task.label_column)
        body, first_line = rows, 1
    width = max(*text_idx, label_idx) + 1
    examples = []
    for line, row in enumerate(body, start=first_line):
        if len(row) < width:
            raise ValueError(
                f"{path} line {line}: expected at least {width} tab-separated columns of GLUE "
                f"{task.name}, found {len(row)}"
            )
        raw = row[label_idx].strip()
        if task.is_regression:
            try:
                label: int | float = float(raw)
            except ValueError:
                raise ValueError(f"{path} line {line}: score {raw!r} is not a number") from None
        elif raw in task.labels:
            label = task.labels.index(raw)
        else:
            raise ValueError(
                f"{path} line {line}: label {raw!r} is not one of {list(task.labels)} "
                f"(is this a GLUE {task.name} folder?)"
            )
        examples.append(Example(tuple(row[i].strip() for i in text_idx), label))
    return examples


def load_tokenizer(checkpoint_dir: str | Path):
    """The fast WordPiece tokenizer saved with a Hugging Face BERT checkpoint folder."""
    from transformers import AutoTokenizer

    folder = Path(checkpoint_dir)
    if not ((folder / "tokenizer.json").is_file() or (folder / "vocab.txt").is_file()):
        raise FileNotFoundError(
            f"checkpoint folder {folder}: expected tokenizer.json or vocab.txt for the tokenizer"
        )
    return AutoTokenizer.from_pretrained(str(folder))


@dataclass(frozen=True)
class Encoded:
    """Token ids of one example (no padding) and its label."""

    input_ids: tuple[int, ...]
    token_type_ids: tuple[int, ...]
    label: int | float


def encode(examples: Sequence[Example], tokenizer, max_length: int) -> list[Encoded]:
    """Tokenize examples (pairs as ``[CLS] a [SEP] b [SEP]``), truncated to ``max_length``."""
    if not examples:
        return []
    pair = len(examples[0].texts) == 2
    firsts = [e.texts[0] for e in examples]
    seconds = [e.texts[1] for e in examples] if pair else None
    out = tokenizer(firsts, seconds, truncation=True, max_length=max_length)
    type_ids = out.get("token_type_ids") or [[0] * len(ids) for ids in out["input_ids"]]
    return [
        Encoded(tuple(ids), tuple(types), e.label)
        for ids, types, e in zip(out["input_ids"], type_ids, examples, strict=True)
    ]


def load_encoded_splits(
    data_dir: str | Path, tokenizer, task: str | None, max_length: int,
    train_subset: int | None = None,
) -> tuple[GlueTask, list[Encoded], list[Encoded]]:  # fmt: skip
    """The task of ``data_dir`` (see :func:`infer_task`) and its train and dev splits tokenized
    by ``tokenizer`` (:func:`load_tokenizer`), truncated to ``max_length``; ``train_subset``
    keeps the first N training examples."""
    glue = infer_task(data_dir, task)
    train = load_split(data_dir, "train", glue)
    if train_subset is not None:
        train = train[:train_subset]
    dev = load_split(data_dir, "dev", glue)
    return glue, encode(train, tokenizer, max_length), encode(dev, tokenizer, max_length)


def collate(items: Sequence[Encoded]):
    """Pad a list of encoded examples to the longest one: the batch dict described above."""
    import torch

    length = max(len(i.input_ids) for i in items)
    ids = torch.zeros(len(items), length, dtype=torch.long)
    types = torch.zeros_like(ids)
    mask = torch.zeros_like(ids)
    for row, item in enumerate(items):
        n = len(item.input_ids)
        ids[row, :n] = torch.tensor(item.input_ids)
        types[row, :n] = torch.tensor(item.token_type_ids)
        mask[row, :n] = 1
    regression = isinstance(items[0].label, float)
    labels = torch.tensor(
        [i.label for i in items], dtype=torch.float32 if regression else torch.long
    )
    batch = {"input_ids": ids, "token_type_ids": types, "attention_mask": mask, "labels": labels}
    if getattr(items[0], "token_labels", None):
        # per-token labels (slot tags, models/nlu_data.py), padded with the ignore index -100
        token_labels = torch.full_like(ids, -100)
        for row, item in enumerate(items):
            token_labels[row, : len(item.token_labels)] = torch.tensor(item.token_labels)
        batch["token_labels"] = token_labels
    return batch


def epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    """The deterministic shuffled order of ``n`` examples in ``epoch`` (same on every rank)."""
    import torch

    generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
    return torch.randperm(n, generator=generator).tolist()


#: Global batches per sorting window of :func:`length_grouped_order`.
LENGTH_GROUP_WINDOW = 64


def length_grouped_order(
    lengths: Sequence[int], global_batch: int, seed: int, epoch: int
) -> list[int]:
    """An epoch order in which each global batch holds examples of similar length.

    The :func:`epoch_order` shuffle is cut into windows of ``LENGTH_GROUP_WINDOW`` global
    batches; each window is sorted by length (longest first, ties by shuffled position) and cut
    into global batches, and the order of all full batches is shuffled again (so long and short
    batches alternate through the epoch). Every example still appears exactly once; the
    incomplete tail (fewer than ``global_batch`` examples) comes last. Deterministic in
    (``seed``, ``epoch``), the same on every rank. With dynamic padding this cuts the padded
    tokens of SST-2 training batches by about half.
    """
    import torch

    shuffled = epoch_order(len(lengths), seed, epoch)
    window = global_batch * LENGTH_GROUP_WINDOW
    grouped: list[list[int]] = []
    for start in range(0, len(shuffled), window):
        part = sorted(shuffled[start : start + window], key=lambda i: -lengths[i])
        grouped += [part[b : b + global_batch] for b in range(0, len(part), global_batch)]
    full = [g for g in grouped if len(g) == global_batch]
    tail = [i for g in grouped if len(g) < global_batch for i in g]
    generator = torch.Generator().manual_seed(seed * 100_003 + epoch + 7_919)
    perm = torch.randperm(len(full), generator=generator).tolist()
    return [i for b in perm for i in full[b]] + tail


def batches(
    data: Sequence[Encoded],
    batch_size: int,
    *,
    shuffle: bool,
    seed: int = 0,
    epoch: int = 0,
    rank: int = 0,
    world_size: int = 1,
    skip: int = 0,
    group_by_length: bool = False,
) -> Iterator[dict]:
    """Yield padded batches of ``data``.

    With ``shuffle`` the order is :func:`epoch_order` (or, with ``group_by_length``,
    :func:`length_grouped_order`); each global batch of ``batch_size * world_size`` examples is
    split so that rank ``r`` takes every ``world_size``-th example from offset ``r`` (so one
    process at batch ``B * W`` and ``W`` processes at batch ``B`` see the same global batches).
    Incomplete final global batches are dropped when shuffling (training) and kept otherwise.
    ``skip`` drops the first batches (for resuming mid-epoch).
    """
    global_batch = batch_size * world_size
    if not shuffle:
        order = list(range(len(data)))
    elif group_by_length:
        lengths = [len(item.input_ids) for item in data]
        order = length_grouped_order(lengths, global_batch, seed, epoch)
    else:
        order = epoch_order(len(data), seed, epoch)
    count = len(order) // global_batch if shuffle else math.ceil(len(order) / global_batch)
    for b in range(skip, count):
        chunk = order[b * global_batch : (b + 1) * global_batch][rank::world_size]
        if chunk:
            yield collate([data[i] for i in chunk])


def num_batches(n: int, batch_size: int, world_size: int = 1) -> int:
    """Training batches per epoch for ``n`` examples (incomplete global batches dropped)."""
    return n // (batch_size * world_size)
