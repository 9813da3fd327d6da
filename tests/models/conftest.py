"""Fixtures for models/ tests: a tiny random BERT checkpoint folder and a tiny SST-2-style data
folder, both written to a temporary directory (no network, no shared data)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"

WORDS = [
    "good", "great", "fine", "lovely", "superb", "bad", "awful", "poor", "dull", "boring",
    "the", "a", "film", "movie", "plot", "is", "was", "very", "not", "and",
]  # fmt: skip
POSITIVE, NEGATIVE = WORDS[:5], WORDS[5:10]


def tiny_bert_config(**overrides):
    from transformers import BertConfig

    vocab = 5 + len(WORDS)
    settings = dict(
        vocab_size=vocab, hidden_size=24, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=48, max_position_embeddings=32, type_vocab_size=2,
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
    )  # fmt: skip
    settings.update(overrides)
    return BertConfig(**settings)


def write_tiny_checkpoint(folder: Path, seed: int = 0, num_labels: int = 2) -> Path:
    """A random tiny BertForSequenceClassification saved as a Hugging Face folder + vocab."""
    from transformers import BertForSequenceClassification, BertTokenizerFast

    torch.manual_seed(seed)
    folder.mkdir(parents=True, exist_ok=True)
    config = tiny_bert_config(num_labels=num_labels)
    model = BertForSequenceClassification(config)
    model.save_pretrained(folder)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    BertTokenizerFast(vocab_file=str(folder / "vocab.txt")).save_pretrained(folder)
    return folder


def write_tiny_sst2(folder: Path, n_train: int = 96, n_dev: int = 32, seed: int = 0) -> Path:
    """A separable sentiment task in the GLUE SST-2 layout (``sentence<TAB>label``)."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)

    def rows(n: int) -> list[str]:
        out = ["sentence\tlabel"]
        for _ in range(n):
            label = rng.randint(0, 1)
            key = rng.choice(POSITIVE if label else NEGATIVE)
            filler = rng.sample(WORDS[10:], 3)
            words = [*filler[:2], key, filler[2]]
            out.append(" ".join(words) + " \t" + str(label))
        return out

    (folder / "train.tsv").write_text("\n".join(rows(n_train)) + "\n")
    (folder / "dev.tsv").write_text("\n".join(rows(n_dev)) + "\n")
    return folder


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    return write_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny-bert")


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    return write_tiny_sst2(tmp_path_factory.mktemp("data") / "SST-2")
