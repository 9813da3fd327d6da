"""Joint intent + slot data in the JointBERT layout (ATIS, SNIPS), aligned to WordPiece.

A data folder holds ``intent_label.txt`` and ``slot_label.txt`` (one label per line, in class
order; the intent list holds ``UNK``, the slot list ``PAD`` and ``UNK``) and one folder per
split (``train``, ``dev``, ``test``) with three line-aligned files:

* ``seq.in``: one utterance per line, words separated by whitespace;
* ``seq.out``: one BIO slot tag per word (``O``, ``B-<type>``, ``I-<type>``), same count;
* ``label``: the intent of the utterance.

An intent or slot tag that the label files do not list (some dev/test intents never occur in
train) becomes ``UNK``, as JointBERT does. A malformed row (word and tag counts differ, an empty
utterance, files of different lengths) is a ValueError naming the file and the line.

Alignment to WordPiece (:func:`encode_nlu`): each word is tokenized on its own; its first
sub-token carries the word's tag, the other sub-tokens and ``[CLS]``/``[SEP]`` carry
:data:`IGNORE` (-100, ignored by the slot loss and by evaluation). ``word_starts`` records the
token position of every word's first sub-token (-1 for a word that produced no token or was cut
by truncation: evaluation predicts ``O`` for it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .data import Encoded

__all__ = [
    "IGNORE",
    "NluEncoded",
    "NluExample",
    "NluLabels",
    "encode_nlu",
    "load_nlu_labels",
    "load_nlu_split",
]

IGNORE = -100
"""Token label of positions outside the slot loss (torch's ``cross_entropy`` ignore index)."""

_SPLITS = ("train", "dev", "test")
_FILES = ("seq.in", "seq.out", "label")


@dataclass(frozen=True)
class NluLabels:
    """The label vocabularies: ``intents`` and ``slots`` in class order (index = class id)."""

    intents: tuple[str, ...]
    slots: tuple[str, ...]

    def __post_init__(self) -> None:
        for what, labels, unk in (("intent", self.intents, "UNK"), ("slot", self.slots, "UNK")):
            if unk not in labels:
                raise ValueError(f"the {what} labels lack {unk!r}: {list(labels)[:5]}...")
            if len(set(labels)) != len(labels):
                raise ValueError(f"the {what} labels repeat an entry")
        if "O" not in self.slots:
            raise ValueError("the slot labels lack 'O'")

    def intent_id(self, label: str) -> int:
        """Class id of an intent; ``UNK``'s for one the list does not hold."""
        return self.intents.index(label) if label in self.intents else self.intents.index("UNK")

    def slot_id(self, tag: str) -> int:
        """Class id of a slot tag; ``UNK``'s for one the list does not hold."""
        return self.slots.index(tag) if tag in self.slots else self.slots.index("UNK")


def _read_lines(path: Path) -> list[str]:
    if not path.is_file():
        folder = path.parent
        found = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else "nothing"
        raise FileNotFoundError(f"{path} does not exist (the folder holds {found})")
    lines = path.read_text(encoding="utf-8").split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the final newline
    return [line.rstrip("\r") for line in lines]


def load_nlu_labels(data_dir: str | Path) -> NluLabels:
    """``intent_label.txt`` and ``slot_label.txt`` of ``data_dir`` (blank lines are an error)."""
    lists = []
    for name in ("intent_label.txt", "slot_label.txt"):
        path = Path(data_dir) / name
        labels = _read_lines(path)
        for line, label in enumerate(labels, start=1):
            if not label.strip():
                raise ValueError(f"{path} line {line}: empty label")
        lists.append(tuple(label.strip() for label in labels))
    return NluLabels(*lists)


@dataclass(frozen=True)
class NluExample:
    """One utterance: its words, their slot ids and the intent id (after UNK mapping)."""

    words: tuple[str, ...]
    slot_ids: tuple[int, ...]
    intent_id: int


def load_nlu_split(data_dir: str | Path, split: str, labels: NluLabels) -> list[NluExample]:
    """Read ``{data_dir}/{split}/seq.in``, ``seq.out`` and ``label`` into examples, in order.

    Raises FileNotFoundError for a missing file and ValueError naming the file and line of an
    empty utterance, a word/tag count mismatch, or files with different line counts.
    """
    if split not in _SPLITS:
        raise ValueError(f"split must be one of {list(_SPLITS)}, not {split!r}")
    folder = Path(data_dir) / split
    texts, tags, intents = (_read_lines(folder / f) for f in _FILES)
    if not len(texts) == len(tags) == len(intents):
        raise ValueError(
            f"{folder}: seq.in, seq.out and label must have one line per utterance, found "
            f"{len(texts)}, {len(tags)} and {len(intents)} lines"
        )
    examples = []
    for line, (text, tag_line, intent) in enumerate(
        zip(texts, tags, intents, strict=True), start=1
    ):
        words, word_tags = text.split(), tag_line.split()
        if not words:
            raise ValueError(f"{folder / 'seq.in'} line {line}: empty utterance")
        if len(words) != len(word_tags):
            raise ValueError(
                f"{folder / 'seq.out'} line {line}: {len(word_tags)} slot tags for the "
                f"{len(words)} words of seq.in line {line}"
            )
        if not intent.strip():
            raise ValueError(f"{folder / 'label'} line {line}: empty intent")
        examples.append(NluExample(
            tuple(words), tuple(labels.slot_id(t) for t in word_tags),
            labels.intent_id(intent.strip()),
        ))  # fmt: skip
    return examples


@dataclass(frozen=True)
class NluEncoded(Encoded):
    """:class:`~ttaccel.models.data.Encoded` (``label`` = intent id) plus per-token slot ids
    (``token_labels``, :data:`IGNORE` off the first sub-tokens), the position of every word's
    first sub-token (``word_starts``, -1 when it has none) and the word-level slot ids."""

    token_labels: tuple[int, ...] = ()
    word_starts: tuple[int, ...] = ()
    word_slot_ids: tuple[int, ...] = ()


def encode_nlu(examples: Sequence[NluExample], tokenizer, max_length: int) -> list[NluEncoded]:
    """Tokenize word by word into ``[CLS] pieces [SEP]``, at most ``max_length`` tokens.

    Words whose first sub-token falls beyond ``max_length - 2`` pieces are cut (``word_starts``
    -1). ``tokenizer``: a Hugging Face fast tokenizer (``is_split_into_words`` and
    ``word_ids()``).
    """
    if max_length < 3:
        raise ValueError(f"max_length must be at least 3 ([CLS] piece [SEP]), not {max_length}")
    if not examples:
        return []
    out = tokenizer([list(e.words) for e in examples], is_split_into_words=True,
                    truncation=True, max_length=max_length)  # fmt: skip
    encoded = []
    for row, example in enumerate(examples):
        ids = tuple(out["input_ids"][row])
        token_labels = [IGNORE] * len(ids)
        starts = [-1] * len(example.words)
        previous = None
        for pos, word in enumerate(out.word_ids(row)):
            if word is not None and word != previous:
                starts[word] = pos
                token_labels[pos] = example.slot_ids[word]
            previous = word
        encoded.append(NluEncoded(
            ids, (0,) * len(ids), example.intent_id, tuple(token_labels), tuple(starts),
            example.slot_ids,
        ))  # fmt: skip
    return encoded
