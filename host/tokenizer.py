"""BERT WordPiece tokenization for the host, in the standard library alone (no ``tokenizers``).

The board has NumPy and nothing else, so the host turns text into token ids itself, from what an
artifact records: its vocabulary (``tokenizer.vocab``, tokens in id order), the tokenizer
settings ``model_config["tokenizer"]`` (``{"do_lower_case": bool}``) and ``max_length``.
:func:`tokenizer_from_artifact` builds one; :meth:`WordPieceTokenizer.encode` gives the ids.

The rules, in order (they reproduce the Hugging Face BERT tokenizer the students are trained
with, ``BertNormalizer`` + ``BertPreTokenizer`` + ``WordPiece``; docs/artifact.md section 8):

1. **Special tokens in the text.** Occurrences of ``[PAD]``, ``[UNK]``, ``[CLS]``, ``[SEP]``,
   ``[MASK]`` (exact case, anywhere, also inside a word) that are in the vocabulary become that
   token; the text between them goes through steps 2-5 piece by piece.
2. **Clean.** Drop U+0000, U+FFFD and every character of the Unicode categories ``Cc``,
   ``Cf``, ``Co``, ``Cs`` (control, format, private use, surrogate) except tab, newline and
   carriage return; those three and every ``Zs`` space become a plain space. Unassigned code
   points (``Cn``) stay (and end up as ``[UNK]``).
3. **CJK.** Put spaces around every CJK ideograph (blocks U+4E00-9FFF, U+3400-4DBF,
   U+20000-2A6DF, U+2A700-2B73F, U+2B740-2B81F, U+2B920-2CEAF, U+F900-FAFF, U+2F800-2FA1F), so
   each is a word of its own. Hiragana, katakana and hangul are not in these blocks. (BERT's
   published table starts the sixth block at U+2B820; Hugging Face's, which trained the
   models, at U+2B920, and this follows the ids the models were trained with.)
4. **Lower case** (``do_lower_case`` only). Decompose to NFD, drop every combining mark
   (category ``Mn``: accents), then lower-case character by character (``str.lower`` of each
   character alone, so a final capital sigma becomes ``σ``, not ``ς``).
5. **Split** on whitespace (``str.split()``), then split every punctuation character off as a
   word of its own: ASCII ``!"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~`` and every Unicode category
   ``P*``.
6. **WordPiece** each word: a word of more than ``max_input_chars_per_word`` (100) characters is
   ``[UNK]``; otherwise repeatedly take the longest vocabulary entry that starts at the current
   position (written with the prefix ``##`` when the position is not the word's start). If some
   position has no match, the whole word becomes one ``[UNK]``.
7. **Special tokens and truncation.** ``[CLS] A [SEP]`` (type ids 0), or for a pair
   ``[CLS] A [SEP] B [SEP]`` (type ids 0 up to the first ``[SEP]`` inclusive, then 1). When the
   result is longer than ``max_length`` the word pieces are cut at the end: a single text keeps
   its first ``max_length - 2`` pieces; a pair of ``a`` and ``b`` pieces into a budget of
   ``n = max_length - 3`` keeps ``min(a, b)`` of the shorter and the rest of the budget for the
   longer when ``min(a, b) <= n // 2``, otherwise ``n // 2`` for the shorter and ``n - n // 2``
   for the longer (equal lengths: the first text counts as the shorter). The Hugging Face
   "longest first" strategy. :attr:`Encoding.truncated` says whether anything was cut.

Differences from the Hugging Face tokenizer, all refusals: a text with no token (empty, or only
spaces and control characters) raises ValueError where Hugging Face returns ``[CLS] [SEP]``, and
a ``max_length`` too small for the special tokens raises where Hugging Face ignores it.
Character categories come from Python's :mod:`unicodedata` (Unicode 14 in Python 3.11); the
Hugging Face tokenizer's Rust tables are older, so some 500 characters assigned since (new
combining marks and punctuation of rare scripts) are ordinary letters there and marks or
punctuation here; on every other character the two agree (tests/host/test_tokenizer.py sweeps
the whole Basic Multilingual Plane).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "MAX_INPUT_CHARS_PER_WORD",
    "SPECIAL_TOKENS",
    "Encoding",
    "WordPieceTokenizer",
    "tokenizer_from_artifact",
]

MAX_INPUT_CHARS_PER_WORD = 100
"""Longer words become ``[UNK]`` without a WordPiece search (BERT's limit)."""
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
"""BERT's special tokens: recognised verbatim in text when the vocabulary holds them."""
_REQUIRED = ("[CLS]", "[SEP]", "[UNK]")
_CONTINUATION = "##"

# BERT's table has 0x2B820-0x2CEAF; the Hugging Face tokenizer the students are trained with
# starts that block at 0x2B920 (measured: U+2B820-2B91F are not split there), and ids must match.
_CJK_BLOCKS = (
    (0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F), (0x2B920, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F),
)  # fmt: skip
_DROPPED_CATEGORIES = frozenset(("Cc", "Cf", "Co", "Cs"))  # not Cn: unassigned code points stay
_ASCII_PUNCTUATION = frozenset("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")


def _is_cjk(char: str) -> bool:
    code = ord(char)
    return any(low <= code <= high for low, high in _CJK_BLOCKS)


def _is_punctuation(char: str) -> bool:
    return char in _ASCII_PUNCTUATION or unicodedata.category(char).startswith("P")


def _clean(text: str) -> str:
    out = []
    for char in text:
        if char in "\t\n\r":
            out.append(" ")
        elif char in "\x00\ufffd" or unicodedata.category(char) in _DROPPED_CATEGORIES:
            continue
        elif char == " " or unicodedata.category(char) == "Zs":
            out.append(" ")
        else:
            out.append(char)
    return "".join(out)


def _space_cjk(text: str) -> str:
    return "".join(f" {c} " if _is_cjk(c) else c for c in text)


def _lower_and_strip_accents(text: str) -> str:
    decomposed = unicodedata.normalize("NFD", text)
    return "".join(c.lower() for c in decomposed if unicodedata.category(c) != "Mn")


def _split_punctuation(word: str) -> list[str]:
    pieces: list[str] = []
    current: list[str] = []
    for char in word:
        if _is_punctuation(char):
            if current:
                pieces.append("".join(current))
                current = []
            pieces.append(char)
        else:
            current.append(char)
    if current:
        pieces.append("".join(current))
    return pieces


@dataclass(frozen=True)
class Encoding:
    """One encoded text: ``ids`` (vocabulary indices, ``[CLS]`` first), ``type_ids`` (0 for the
    first text and its special tokens, 1 for a pair's second text and its ``[SEP]``), ``tokens``
    (the vocabulary entries of ``ids``), all of the same length <= ``max_length``;
    ``truncated``: whether word pieces were cut to fit ``max_length``."""

    ids: tuple[int, ...]
    type_ids: tuple[int, ...]
    tokens: tuple[str, ...]
    truncated: bool


class WordPieceTokenizer:
    """A BERT WordPiece tokenizer over ``vocab`` (tokens in id order; see the module docstring
    for the rules).

    ``do_lower_case``: lower-case and strip accents (uncased models); ``max_length``: most ids
    per encoding, special tokens included (>= 2); ``max_input_chars_per_word``: longer words
    are ``[UNK]``. The vocabulary must hold ``[CLS]``, ``[SEP]`` and ``[UNK]`` and no token
    twice. Raises ValueError naming the argument otherwise.
    """

    def __init__(
        self,
        vocab: Sequence[str],
        *,
        do_lower_case: bool = True,
        max_length: int = 512,
        max_input_chars_per_word: int = MAX_INPUT_CHARS_PER_WORD,
    ) -> None:
        if isinstance(vocab, str | bytes) or not all(isinstance(t, str) for t in vocab):
            raise ValueError("vocab must be a sequence of token strings in id order")
        ids: dict[str, int] = {}
        for index, token in enumerate(vocab):
            if token in ids:
                raise ValueError(
                    f"vocab holds token {token!r} twice (ids {ids[token]} and {index}): "
                    "expected each token once"
                )
            ids[token] = index
        missing = [t for t in _REQUIRED if t not in ids]
        if missing:
            raise ValueError(
                f"vocab lacks the special tokens {missing}: a BERT vocabulary has them"
            )
        if not isinstance(max_length, int) or isinstance(max_length, bool) or max_length < 2:
            raise ValueError(
                f"max_length must be an integer >= 2 ([CLS] and [SEP]), not {max_length!r}"
            )
        if not isinstance(max_input_chars_per_word, int) or max_input_chars_per_word < 1:
            raise ValueError(
                "max_input_chars_per_word must be a positive integer, "
                f"not {max_input_chars_per_word!r}"
            )
        self._vocab = tuple(vocab)
        self._ids: Mapping[str, int] = ids
        self._longest = max(len(t) for t in vocab)
        self.do_lower_case = bool(do_lower_case)
        self.max_length = max_length
        self.max_input_chars_per_word = max_input_chars_per_word
        self._specials = tuple(t for t in SPECIAL_TOKENS if t in ids)

    @property
    def vocab(self) -> tuple[str, ...]:
        """The tokens in id order."""
        return self._vocab

    def token_to_id(self, token: str) -> int:
        """Id of ``token``; KeyError when it is not in the vocabulary."""
        return self._ids[token]

    def basic_tokenize(self, text: str) -> list[str]:
        """Steps 2-5 on text without special tokens: the words WordPiece sees."""
        text = _space_cjk(_clean(text))
        if self.do_lower_case:
            text = _lower_and_strip_accents(text)
        return [piece for word in text.split() for piece in _split_punctuation(word)]

    def wordpiece(self, word: str) -> list[str]:
        """Step 6: the word pieces of one word (``##`` marks a continuation), or ``[UNK]``."""
        if len(word) > self.max_input_chars_per_word:
            return ["[UNK]"]
        pieces, start = [], 0
        while start < len(word):
            prefix = _CONTINUATION if start > 0 else ""
            end = min(len(word), start + self._longest)
            while end > start and prefix + word[start:end] not in self._ids:
                end -= 1
            if end == start:
                return ["[UNK]"]
            pieces.append(prefix + word[start:end])
            start = end
        return pieces

    def tokenize(self, text: str) -> list[str]:
        """Steps 1-6: the word pieces of ``text``, without ``[CLS]``/``[SEP]`` or truncation."""
        if not isinstance(text, str):
            raise ValueError(f"text must be a str, not {type(text).__name__}")
        pieces: list[str] = []
        for segment, special in self._split_specials(text):
            if special:
                pieces.append(segment)
            else:
                pieces.extend(p for w in self.basic_tokenize(segment) for p in self.wordpiece(w))
        return pieces

    def _split_specials(self, text: str) -> list[tuple[str, bool]]:
        """``text`` cut at every verbatim special token: (segment, is_special) in order."""
        out: list[tuple[str, bool]] = []
        start = position = 0
        while position < len(text):
            if text[position] == "[":
                match = next((t for t in self._specials if text.startswith(t, position)), None)
                if match is not None:
                    out.append((text[start:position], False))
                    out.append((match, True))
                    position = start = position + len(match)
                    continue
            position += 1
        out.append((text[start:], False))
        return out

    def encode(self, text: str, pair: str | None = None) -> Encoding:
        """Ids of ``[CLS] text [SEP]`` (or ``[CLS] text [SEP] pair [SEP]``), truncated to
        ``max_length`` (step 7). Raises ValueError when a text holds no token (empty, or only
        whitespace and control characters), or when ``max_length`` < 3 for a pair."""
        first = self._pieces(text, "text")
        second = self._pieces(pair, "pair") if pair is not None else None
        if second is None:
            budget = self.max_length - 2
            truncated = len(first) > budget
            tokens = ["[CLS]", *first[:budget], "[SEP]"]
            type_ids = [0] * len(tokens)
        else:
            if self.max_length < 3:
                raise ValueError(
                    f"max_length {self.max_length} cannot hold a pair's [CLS], [SEP] and [SEP]"
                )
            keep_a, keep_b = _longest_first(len(first), len(second), self.max_length - 3)
            truncated = (keep_a, keep_b) != (len(first), len(second))
            head = ["[CLS]", *first[:keep_a], "[SEP]"]
            tail = [*second[:keep_b], "[SEP]"]
            tokens = head + tail
            type_ids = [0] * len(head) + [1] * len(tail)
        ids = tuple(self._ids[t] for t in tokens)
        return Encoding(ids, tuple(type_ids), tuple(tokens), truncated)

    def _pieces(self, text: str, what: str) -> list[str]:
        pieces = self.tokenize(text)
        if not pieces:
            raise ValueError(
                f"{what} {text[:40]!r} holds no token (empty, or only whitespace and control "
                "characters): expected at least one word"
            )
        return pieces


def _longest_first(a: int, b: int, budget: int) -> tuple[int, int]:
    """Pieces kept of two texts of ``a`` and ``b`` pieces within ``budget`` (see step 7)."""
    if a + b <= budget:
        return a, b
    short, long_ = min(a, b), max(a, b)
    if short > budget // 2:
        short = budget // 2
    long_ = budget - short
    return (long_, short) if a > b else (short, long_)


def tokenizer_from_artifact(artifact: Any) -> WordPieceTokenizer:
    """The tokenizer an artifact's model was trained with: its ``vocab``,
    ``model_config["tokenizer"]["do_lower_case"]`` (default True, BERT uncased) and
    ``model_config["max_length"]`` (default 512). ``artifact`` is a
    :class:`ttaccel.spec.artifact.Artifact` (or anything with ``vocab`` and ``model_config``).
    Raises ValueError when the artifact has no vocabulary or bad settings."""
    if not artifact.vocab:
        raise ValueError("the artifact has no vocabulary (tokenizer.vocab): it cannot tokenize")
    cfg = artifact.model_config
    settings = cfg.get("tokenizer") or {}
    lower = settings.get("do_lower_case", True)
    if not isinstance(lower, bool):
        raise ValueError(
            f"artifact model.tokenizer.do_lower_case must be true or false, found {lower!r}"
        )
    max_length = cfg.get("max_length") or 512
    return WordPieceTokenizer(artifact.vocab, do_lower_case=lower, max_length=max_length)
