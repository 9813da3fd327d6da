"""Joint intent + slot metrics: intent accuracy, CoNLL entity-level slot F1, exact match.

Slot F1 follows the CoNLL-2000 ``conlleval`` script (and ``seqeval``'s default mode): a chunk
is a maximal run ``B-x I-x I-x ...`` of one type ``x``; an ``I-x`` after ``O`` or after a
chunk of another type starts a new chunk (conlleval's lenient rule); ``O`` and the
special tags (``PAD``, ``UNK``) are outside every chunk. Precision is correct chunks over
predicted chunks, recall over gold chunks, both counted over the whole set (micro average); a
chunk is correct when its type, start and end all match. ``seqeval`` was not used: it pulls
scikit-learn and SciPy into the environment for this one function.

Pure Python (no torch): the golden-model evaluation uses it too.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["chunks", "nlu_metrics", "slot_f1"]

_OUTSIDE = ("O", "PAD", "UNK")


def _split(tag: str) -> tuple[str, str]:
    """(prefix, type) of a tag: ``B-x`` -> ``("B", "x")``, outside tags -> ``("O", "")``."""
    if tag in _OUTSIDE or len(tag) < 3 or tag[1] != "-" or tag[0] not in "BI":
        return "O", ""
    return tag[0], tag[2:]


def chunks(tags: Sequence[str]) -> set[tuple[str, int, int]]:
    """The chunks of one tag sequence as ``(type, first, last)`` word positions (inclusive)."""
    found = set()
    start, kind = None, ""
    for i, tag in enumerate([*tags, "O"]):
        prefix, typ = _split(tag)
        continues = prefix == "I" and start is not None and typ == kind
        if start is not None and not continues:
            found.add((kind, start, i - 1))
            start = None
        if prefix != "O" and not continues:
            start, kind = i, typ
    return found


def slot_f1(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> dict[str, float]:
    """Micro precision, recall and F1 in percent over sentences of word tags (``gold[i]`` and
    ``pred[i]`` of equal length). With no gold and no predicted chunk all three are 100."""
    correct = n_gold = n_pred = 0
    for i, (g, p) in enumerate(zip(gold, pred, strict=True)):
        if len(g) != len(p):
            raise ValueError(f"sentence {i}: {len(g)} gold tags but {len(p)} predicted")
        gc, pc = chunks(g), chunks(p)
        correct += len(gc & pc)
        n_gold += len(gc)
        n_pred += len(pc)
    if n_gold == n_pred == 0:
        return {"precision": 100.0, "recall": 100.0, "f1": 100.0}
    precision = correct / n_pred if n_pred else 0.0
    recall = correct / n_gold if n_gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if correct else 0.0
    return {"precision": 100 * precision, "recall": 100 * recall, "f1": 100 * f1}


def nlu_metrics(
    intent_gold: Sequence[int], intent_pred: Sequence[int],
    slot_gold: Sequence[Sequence[str]], slot_pred: Sequence[Sequence[str]],
) -> dict[str, float]:  # fmt: skip
    """``intent_acc``, ``slot_f1`` (with ``slot_precision``, ``slot_recall``) and
    ``exact_match`` (intent right and every word's tag right), all in percent."""
    n = len(intent_gold)
    if not n == len(intent_pred) == len(slot_gold) == len(slot_pred):
        raise ValueError("intent and slot gold/predictions must cover the same sentences")
    if n == 0:
        raise ValueError("no sentences to score")
    intent_ok = [int(g) == int(p) for g, p in zip(intent_gold, intent_pred, strict=True)]
    f1 = slot_f1(slot_gold, slot_pred)
    exact = [ok and list(g) == list(p)
             for ok, g, p in zip(intent_ok, slot_gold, slot_pred, strict=True)]  # fmt: skip
    return {
        "intent_acc": 100 * sum(intent_ok) / n, "slot_f1": f1["f1"],
        "slot_precision": f1["precision"], "slot_recall": f1["recall"],
        "exact_match": 100 * sum(exact) / n,
    }  # fmt: skip
