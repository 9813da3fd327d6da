"""host/tokenizer.py: the same ids as the Hugging Face tokenizer the students were trained with.

The reference is the pretrained MiniLM-L6's own tokenizer (``transformers``, backed by the Rust
``tokenizers``), run on the bundled artifact's vocabulary (the same vocab.txt, checked).
"""

from __future__ import annotations

import csv
import unicodedata
from pathlib import Path

import pytest

from ttaccel.demo import BUNDLED_ARTIFACT
from ttaccel.host import tokenizer as tok
from ttaccel.host.tokenizer import Encoding, WordPieceTokenizer, tokenizer_from_artifact
from ttaccel.spec.artifact import Artifact, load_artifact

DEV_TSV = Path(__file__).resolve().parents[3] / "shared" / "data" / "SST-2" / "dev.tsv"

TRICKY = [
    # accents, lower-casing, compatibility characters
    "Naïve café-goers ' ca n't stand it ' !!",
    "émigré RÉSUMÉ Ångström Øre İstanbul ǅemal ﬁne ß ẞ",
    "ΟΔΟΣ. ΟΔΟΣ ΣΊΣΥΦΟΣ",  # a final capital sigma lowers to σ, not ς
    "Ｆｕｌｌｗｉｄｔｈ ＡＢＣ １２３",
    # CJK ideographs split, kana and hangul not; U+2B820 block edge
    "我爱北京天安门 ひらがな カタカナ 한국어 漢字かな交じり文",
    "\U0002b81f\U0002b820x\U0002b91fy\U0002b920z\U0002ceaf",
    "\uf900\U0002f800 compatibility ideographs",
    # emoji and symbols
    "great movie 😀👍🏽 🇫🇷 ❤️ ★★★★☆ 5/5 ≈ 42 Ω ∞",
    "family: 👨‍👩‍👧 and zero\u200bwidth\u200djoiners\ufeff",
    # control characters and unusual whitespace
    "tab\tnew\nline\r\nnul\x00 bell\x07 esc\x1b del\x7f c1\x85 x\x9fy",
    "nbsp\u00a0em\u2003ideographic\u3000space\u2028line\u2029para\x0bvt\x0cff",
    "replacement \ufffd char and private \ue000 use \U000f0000",
    "soft\u00adhyphen and unassigned \u0378 \U000e0001 tag",
    # punctuation runs and ASCII symbols
    "wow!!!?!... ... --- ''`` $100 #1 @you 100% a+b=c <html> {x} [y] ~z^ |p| \\q",
    "«quoted» „low“ ‘single’ — dash – en … ellipsis · middle ¿qué? ¡sí!",
    "(((nested))) [[brackets]] {{{curly}}} ***stars*** ___under___",
    # special tokens written in the text (matched verbatim, case-sensitive)
    "hello [SEP] world [sep] [MASK]ed x[CLS]y [UNK] [PAD] [NOT]",
    # unknown and very long words
    "xyzzyplughqwv zzzzzzzzzz qwertyuiopasdfghjkl 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 ⅷ ①",
    "a" * 100 + " " + "b" * 101 + " " + "ab" * 60,
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    # truncation (max_length 64)
    "a " + "very " * 100 + "long sentence that must be truncated",
    " ".join(["unbelievably"] * 40),
    "UNBELIEVABLY   dull\tand overlong ...",
]


@pytest.fixture(scope="module")
def artifact() -> Artifact:
    return load_artifact(BUNDLED_ARTIFACT)


@pytest.fixture(scope="module")
def ours(artifact) -> WordPieceTokenizer:
    return tokenizer_from_artifact(artifact)


@pytest.fixture(scope="module")
def reference(artifact):
    """The pretrained MiniLM-L6's Hugging Face tokenizer (transformers)."""
    pytest.importorskip("transformers")
    from ttaccel.models.data import load_tokenizer
    from ttaccel.pretrained import default_checkpoint_dir

    folder = default_checkpoint_dir()
    vocab = (folder / "vocab.txt").read_text(encoding="utf-8").splitlines()
    assert vocab == artifact.vocab, "the artifact's vocabulary is the pretrained model's"
    return load_tokenizer(folder)


def _hf(reference, texts, max_length, pairs=None):
    out = reference(texts, pairs, truncation=True, max_length=max_length)
    return list(zip(out["input_ids"], out["token_type_ids"], strict=True))


def _ours(tokenizer, texts, pairs=None):
    pairs = pairs or [None] * len(texts)
    return [(list(e.ids), list(e.type_ids)) for e in map(tokenizer.encode, texts, pairs)]


def _dev_sentences() -> list[str]:
    if not DEV_TSV.is_file():
        pytest.skip(f"SST-2 dev set not found at {DEV_TSV}")
    with open(DEV_TSV, encoding="utf-8", newline="") as f:
        return [row["sentence"] for row in csv.DictReader(f, delimiter="\t",
                                                          quoting=csv.QUOTE_NONE)]  # fmt: skip


def test_tokenizer_reads_the_artifacts_settings(artifact, ours):
    assert ours.vocab == tuple(artifact.vocab)
    assert ours.do_lower_case is artifact.model_config["tokenizer"]["do_lower_case"] is True
    assert ours.max_length == artifact.model_config["max_length"] == 64


@pytest.mark.data
def test_every_sst2_dev_sentence_gets_the_training_tokenizers_ids(ours, reference):
    sentences = _dev_sentences()
    assert len(sentences) == 872
    assert _ours(ours, sentences) == _hf(reference, sentences, ours.max_length)


@pytest.mark.data
@pytest.mark.parametrize("max_length", [9, 16, 33])
def test_pairs_of_dev_sentences_truncate_longest_first_as_hugging_face(ours, reference, max_length):
    """Sentence pairs (as RTE/MRPC would give) at lengths that cut one or both sides."""
    sentences = _dev_sentences()[:200]
    firsts, seconds = sentences[::2], sentences[1::2]
    small = WordPieceTokenizer(ours.vocab, max_length=max_length)
    assert _ours(small, firsts, seconds) == _hf(reference, firsts, max_length, seconds)
    assert any(small.encode(a, b).truncated for a, b in zip(firsts, seconds, strict=True))


@pytest.mark.parametrize("text", TRICKY, ids=range(len(TRICKY)))
def test_tricky_strings_get_the_training_tokenizers_ids(ours, reference, text):
    assert _ours(ours, [text]) == _hf(reference, [text], ours.max_length)


@pytest.mark.parametrize("pair", [("a b c d e f g", "h i j"), ("a b c", "h i j k l"),
                                  ("a b c d", "h i j k"), ("x " * 30, "y " * 2)])  # fmt: skip
@pytest.mark.parametrize("max_length", [3, 4, 8, 9, 64])
def test_pair_truncation_edges(reference, ours, pair, max_length):
    small = WordPieceTokenizer(ours.vocab, max_length=max_length)
    assert _ours(small, [pair[0]], [pair[1]]) == _hf(reference, [pair[0]], max_length, [pair[1]])


def test_truncated_says_whether_pieces_were_cut(ours, reference):
    for text in TRICKY:
        full = len(reference(text)["input_ids"])
        encoding = ours.encode(text)
        assert encoding.truncated == (full > ours.max_length), text
        assert len(encoding.ids) == min(full, ours.max_length)
    assert ours.encode(TRICKY[-3]).truncated  # the list does exercise truncation


# Characters whose category Unicode changed after Hugging Face's tables were made (Python 3.11's
# Unicode 14 has So and Mc), so the two tokenizers treat them differently by design.
RECATEGORISED = {"\u166d": "CANADIAN SYLLABICS CHI SIGN, Po before Unicode 12",
                 "\u1734": "HANUNOO SIGN PAMUDPOD, Mn before Unicode 14"}  # fmt: skip


def test_every_assigned_bmp_character_is_handled_as_hugging_face(ours, reference):
    """Each assigned character of the Basic Multilingual Plane, inside a word and after a
    capital. The only tolerated differences: characters that Hugging Face's (older) Unicode
    tables leave unassigned, i.e. it treats them as it treats the unassigned U+0378 (one
    ``[UNK]`` word glued to its neighbours) while Python's tables know them, and the two
    characters of :data:`RECATEGORISED`."""
    chars = [chr(c) for c in range(0x10000) if not 0xD800 <= c <= 0xDFFF
             and unicodedata.category(chr(c)) != "Cn"]  # fmt: skip
    texts = [f"x{c}y A{c}" for c in chars]
    unassigned = _hf(reference, ["x\u0378y A\u0378"], 64)[0]
    expected = _hf(reference, texts, 64)
    got = _ours(ours, texts)
    differ = [(c, e) for c, g, e in zip(chars, got, expected, strict=True) if g != e]
    unexplained = [f"U+{ord(c):04X} {unicodedata.name(c, '?')}" for c, e in differ
                   if e != unassigned and c not in RECATEGORISED]  # fmt: skip
    assert not unexplained
    assert len(differ) < 150, len(differ)  # measured: 114 of 62,032 (Python 3.11, tokenizers 0.23)


def test_cased_vocabulary_keeps_case_and_accents(ours, reference):
    """do_lower_case=False against the Hugging Face tokenizer with the same setting."""
    from transformers import BertTokenizer

    from ttaccel.pretrained import default_checkpoint_dir

    cased = BertTokenizer(str(default_checkpoint_dir() / "vocab.txt"), do_lower_case=False)
    mine = WordPieceTokenizer(ours.vocab, do_lower_case=False, max_length=64)
    texts = [*TRICKY, "Café NAÏVE Ωmega"]
    assert _ours(mine, texts) == _hf(cased, texts, 64)
    assert mine.tokenize("Café")[0] != ours.tokenize("Café")[0]


def test_demo_wordpiece_tokenizer_agrees(ours, artifact):
    """The ``tokenizers`` BertWordPieceTokenizer the demo used before this module (built as
    the demo built it: the artifact's vocabulary, do_lower_case, truncation to max_length)."""
    tokenizers = pytest.importorskip("tokenizers")
    theirs = tokenizers.BertWordPieceTokenizer(
        {token: i for i, token in enumerate(artifact.vocab)}, lowercase=True
    )
    theirs.enable_truncation(artifact.model_config["max_length"])
    texts = TRICKY + (_dev_sentences() if DEV_TSV.is_file() else [])
    expected = [(e.ids, e.type_ids) for e in theirs.encode_batch(texts)]
    assert _ours(ours, texts) == expected


def test_the_demo_tokenizes_with_this_module(artifact):
    from ttaccel.demo import wordpiece_tokenizer

    assert isinstance(wordpiece_tokenizer(artifact), WordPieceTokenizer)


# Rules checked without any reference tokenizer, on a vocabulary small enough to read.
SMALL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "un", "##aff", "##able", "##a", "aff",
         "able", "a", "b", "##b", ",", "!", "'", "cafe", "σ", "##σ", "ο", "##δ", "##ο", "中", "文",
         "x", "##y", "y"]  # fmt: skip


@pytest.fixture
def small() -> WordPieceTokenizer:
    return WordPieceTokenizer(SMALL, max_length=8)


def test_wordpiece_is_greedy_longest_match_first(small):
    assert small.tokenize("unaffable") == ["un", "##aff", "##able"]
    assert small.tokenize("affa") == ["aff", "##a"]
    assert small.tokenize("unz") == ["[UNK]"]  # no piece for 'z': the whole word
    assert small.tokenize("bb b") == ["b", "##b", "b"]


def test_word_length_limit_is_inclusive(small):
    assert small.tokenize("a" + "b" * 99) == ["a"] + ["##b"] * 99
    assert small.tokenize("a" + "b" * 100) == ["[UNK]"]
    custom = WordPieceTokenizer(SMALL, max_input_chars_per_word=3)
    assert custom.tokenize("abb abbb") == ["a", "##b", "##b", "[UNK]"]


def test_normalisation_rules(small):
    assert small.tokenize("CAFÉ,Un!") == ["cafe", ",", "un", "!"]
    assert small.tokenize("ΟΔΟΣ") == ["ο", "##δ", "##ο", "##σ"]
    assert small.tokenize("x中文y") == ["x", "中", "文", "y"]
    assert small.tokenize("a\x00\u200bb\tb\u3000a") == ["a", "##b", "b", "a"]
    assert small.tokenize("a[SEP]b [sep]") == ["a", "[SEP]", "b", "[UNK]", "[UNK]", "[UNK]"]


def test_encode_adds_special_tokens_and_truncates(small):
    assert small.encode("a b") == Encoding((2, 11, 12, 3), (0,) * 4, ("[CLS]", "a", "b", "[SEP]"),
                                           truncated=False)  # fmt: skip
    long = small.encode("a " * 7)
    assert long.tokens == ("[CLS]", *["a"] * 6, "[SEP]") and long.truncated
    assert not small.encode("a " * 6).truncated
    pair = small.encode("a a a a", "b b")  # 6 pieces into 8 - 3: the longer text loses one
    assert pair.tokens == ("[CLS]", "a", "a", "a", "[SEP]", "b", "b", "[SEP]")
    assert pair.type_ids == (0, 0, 0, 0, 0, 1, 1, 1) and pair.truncated
    assert not small.encode("a a a", "b b").truncated


BROKEN = {
    "no accent stripping": ("_lower_and_strip_accents", lambda text: text.lower()),
    "whole-text lower-casing": (
        "_lower_and_strip_accents",
        lambda text: "".join(
            c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn"
        ).lower(),
    ),
    "BERT's published CJK table": (
        "_CJK_BLOCKS",
        (*tok._CJK_BLOCKS[:5], (0x2B820, 0x2CEAF), *tok._CJK_BLOCKS[6:]),
    ),
    "no CJK splitting": ("_space_cjk", lambda text: text),
    "ASCII punctuation only": ("_is_punctuation", lambda c: c in tok._ASCII_PUNCTUATION),
    "control characters kept": ("_DROPPED_CATEGORIES", frozenset()),
    "unassigned dropped": ("_DROPPED_CATEGORIES", frozenset(("Cc", "Cf", "Co", "Cs", "Cn"))),
    "no special tokens in text": ("SPECIAL_TOKENS", ()),
    "word limit 200": ("MAX_INPUT_CHARS_PER_WORD", 200),
}


@pytest.mark.parametrize("broken", list(BROKEN))
def test_each_rule_matters_on_the_tricky_strings(monkeypatch, artifact, reference, broken):
    """A tokenizer missing any one rule gives different ids on some tricky string, so the
    comparison above can fail."""
    name, value = BROKEN[broken]
    monkeypatch.setattr(tok, name, value)
    if name == "MAX_INPUT_CHARS_PER_WORD":
        variant = WordPieceTokenizer(artifact.vocab, max_length=64, max_input_chars_per_word=200)
    else:
        variant = tokenizer_from_artifact(artifact)
    assert _ours(variant, TRICKY) != _hf(reference, TRICKY, 64)


@pytest.mark.parametrize("text", ["", "   ", "\t\n\r", "\x00\x07\u200b\ufffd"])
def test_text_without_tokens_is_refused(ours, text):
    with pytest.raises(ValueError, match=r"holds no token .* expected at least one word"):
        ours.encode(text)
    with pytest.raises(ValueError, match=r"pair .* holds no token"):
        ours.encode("fine", text)


def test_bad_inputs_are_named(small, artifact):
    with pytest.raises(ValueError, match="text must be a str, not bytes"):
        small.encode(b"abc")
    with pytest.raises(ValueError, match=r"lacks the special tokens \['\[CLS\]', '\[SEP\]'\]"):
        WordPieceTokenizer(["[UNK]", "a"])
    with pytest.raises(ValueError, match="holds token 'a' twice \\(ids 4 and 5\\)"):
        WordPieceTokenizer([*SMALL[:4], "a", "a"])
    with pytest.raises(ValueError, match=r"max_length must be an integer >= 2 .*, not 1"):
        WordPieceTokenizer(SMALL, max_length=1)
    with pytest.raises(ValueError, match="max_length 2 cannot hold a pair"):
        WordPieceTokenizer(SMALL, max_length=2).encode("a", "b")
    with pytest.raises(ValueError, match="vocab must be a sequence of token strings"):
        WordPieceTokenizer("[CLS][SEP][UNK]")
    with pytest.raises(ValueError, match="has no vocabulary"):
        tokenizer_from_artifact(Artifact(model_config={}, vocab=[]))
    with pytest.raises(ValueError, match="do_lower_case must be true or false, found 'yes'"):
        tokenizer_from_artifact(
            Artifact(model_config={"tokenizer": {"do_lower_case": "yes"}}, vocab=SMALL)
        )


def test_host_tokenizer_needs_only_the_standard_library():
    source = Path(tok.__file__).read_text(encoding="utf-8")
    imports = {line.split()[1].split(".")[0] for line in source.splitlines()
               if line.startswith(("import ", "from "))}  # fmt: skip
    assert imports <= {"__future__", "unicodedata", "collections", "dataclasses", "typing"}
