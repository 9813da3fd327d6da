"""Joint intent + slot models (models/nlu*.py): the JointBERT-format reader and its WordPiece
alignment, CoNLL slot F1, the joint loss, resumable training, export and the golden model."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from ttaccel.models.nlu_data import (  # noqa: E402
    IGNORE,
    NluExample,
    encode_nlu,
    load_nlu_labels,
    load_nlu_split,
)
from ttaccel.models.nlu_metrics import chunks, nlu_metrics, slot_f1  # noqa: E402

VOCAB = [
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "show", "flights", "from", "to", "on",
    "monday", "friday", "bos", "##ton", "den", "##ver", "new", "york", "cheap", "fare", "what",
    "is", "the",
]  # fmt: skip
INTENTS = ["UNK", "atis_airfare", "atis_flight"]
SLOTS = [
    "PAD", "UNK", "O", "B-cost_relative", "B-depart_date.day_name", "B-fromloc.city_name",
    "I-fromloc.city_name", "B-toloc.city_name", "I-toloc.city_name",
]  # fmt: skip
CITIES = [["boston"], ["denver"], ["new", "york"]]


def _tokenizer(folder: Path):
    from transformers import BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = BertTokenizerFast(vocab={token: i for i, token in enumerate(VOCAB)})
    tokenizer.save_pretrained(folder)
    (folder / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    return tokenizer


def _city(words: list[str], role: str) -> list[str]:
    return [f"B-{role}.city_name"] + [f"I-{role}.city_name"] * (len(words) - 1)


def _utterance(rng: random.Random) -> tuple[list[str], list[str], str]:
    a, b = rng.sample(CITIES, 2)
    if rng.random() < 0.5:
        day = rng.choice(["monday", "friday"])
        words = ["show", "flights", "from", *a, "to", *b, "on", day]
        tags = ["O", "O", "O", *_city(a, "fromloc"), "O", *_city(b, "toloc"), "O",
                "B-depart_date.day_name"]  # fmt: skip
        return words, tags, "atis_flight"
    words = ["what", "is", "the", "cheap", "fare", "from", *a, "to", *b]
    tags = ["O", "O", "O", "B-cost_relative", "O", "O", *_city(a, "fromloc"), "O",
            *_city(b, "toloc")]  # fmt: skip
    return words, tags, "atis_airfare"


def write_tiny_atis(folder: Path, n_train: int = 48, n_eval: int = 12, seed: int = 0) -> Path:
    """A separable joint task in the JointBERT layout; dev and test end with one utterance of
    an intent and one slot tag that the label files do not list (both map to UNK)."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "intent_label.txt").write_text("\n".join(INTENTS) + "\n")
    (folder / "slot_label.txt").write_text("\n".join(SLOTS) + "\n")
    for split, n in (("train", n_train), ("dev", n_eval), ("test", n_eval)):
        rows = [_utterance(rng) for _ in range(n)]
        if split != "train":
            rows.append(
                (
                    ["show", "the", "fare", "on", "friday"],
                    ["O", "O", "O", "O", "B-arrive_date.day_name"],
                    "atis_ground_service",
                )
            )
        (folder / split).mkdir(exist_ok=True)
        (folder / split / "seq.in").write_text("".join(" ".join(w) + "\n" for w, _, _ in rows))
        (folder / split / "seq.out").write_text("".join(" ".join(t) + "\n" for _, t, _ in rows))
        (folder / split / "label").write_text("".join(i + "\n" for _, _, i in rows))
    return folder


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One torch thread, as the project's test runs (the machine's other core is busy)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def atis(tmp_path_factory) -> Path:
    return write_tiny_atis(tmp_path_factory.mktemp("nlu") / "ATIS")


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tok") / "wordpiece"
    _tokenizer(folder)
    return folder


# --- reader ------------------------------------------------------------------------------------


def test_reader_maps_unknown_labels_to_unk(atis):
    labels = load_nlu_labels(atis)
    assert labels.intents == tuple(INTENTS) and labels.slots == tuple(SLOTS)
    train = load_nlu_split(atis, "train", labels)
    assert len(train) == 48 and all(e.intent_id != 0 for e in train)
    test = load_nlu_split(atis, "test", labels)
    last = test[-1]
    assert last.words == ("show", "the", "fare", "on", "friday")
    assert last.intent_id == INTENTS.index("UNK")
    assert last.slot_ids == (2, 2, 2, 2, SLOTS.index("UNK"))


def _broken_copy(atis: Path, tmp_path: Path, split: str, name: str, line: int, text: str) -> Path:
    import shutil

    copy = tmp_path / "ATIS"
    shutil.copytree(atis, copy)
    path = copy / split / name
    lines = path.read_text().split("\n")
    lines[line - 1] = text
    path.write_text("\n".join(lines))
    return copy


def test_a_word_tag_count_mismatch_names_file_and_line(atis, tmp_path):
    bad = _broken_copy(atis, tmp_path, "dev", "seq.out", 3, "O O")
    labels = load_nlu_labels(bad)
    with pytest.raises(ValueError, match=r"dev/seq\.out line 3: 2 slot tags for the \d+ words"):
        load_nlu_split(bad, "dev", labels)


def test_empty_utterance_and_ragged_files_are_errors(atis, tmp_path):
    bad = _broken_copy(atis, tmp_path, "train", "seq.in", 5, "   ")
    with pytest.raises(ValueError, match=r"train/seq\.in line 5: empty utterance"):
        load_nlu_split(bad, "train", load_nlu_labels(bad))
    (bad / "dev" / "label").write_text("atis_flight\n")
    with pytest.raises(ValueError, match="found 13, 13 and 1 lines"):
        load_nlu_split(bad, "dev", load_nlu_labels(bad))
    with pytest.raises(FileNotFoundError, match=r"seq\.in does not exist"):
        load_nlu_split(tmp_path, "test", load_nlu_labels(bad))


def test_first_sub_token_carries_the_tag(tokenizer_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    example = NluExample(("from", "boston", "to", "zurich", "denver"), (2, 5, 2, 7, 8), 2)
    (enc,) = encode_nlu([example], tok, 16)
    pieces = tok.convert_ids_to_tokens(list(enc.input_ids))
    assert pieces == ["[CLS]", "from", "bos", "##ton", "to", "[UNK]", "den", "##ver", "[SEP]"]
    assert enc.token_labels == (IGNORE, 2, 5, IGNORE, 2, 7, 8, IGNORE, IGNORE)
    assert enc.word_starts == (1, 2, 4, 5, 6)
    assert enc.word_slot_ids == example.slot_ids and enc.label == 2
    (cut,) = encode_nlu([example], tok, 6)  # [CLS] from bos ##ton to [SEP]
    assert cut.word_starts == (1, 2, 4, -1, -1)
    assert cut.token_labels == (IGNORE, 2, 5, IGNORE, 2, IGNORE)


def test_collate_pads_token_labels_with_the_ignore_index(tokenizer_dir):
    from transformers import AutoTokenizer

    from ttaccel.models.data import collate

    tok = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    short = NluExample(("to",), (2,), 1)
    long = NluExample(("from", "boston"), (2, 5), 2)
    batch = collate(encode_nlu([short, long], tok, 16))
    assert batch["token_labels"].tolist() == [[IGNORE, 2, IGNORE, IGNORE, IGNORE],
                                              [IGNORE, 2, 5, IGNORE, IGNORE]]  # fmt: skip
    assert batch["labels"].tolist() == [1, 2]


# --- metrics -----------------------------------------------------------------------------------


def test_chunks_follow_conlleval():
    tags = ["B-a", "I-a", "O", "I-b", "I-b", "B-b", "I-a", "B-c", "PAD"]
    assert chunks(tags) == {("a", 0, 1), ("b", 3, 4), ("b", 5, 5), ("a", 6, 6), ("c", 7, 7)}
    assert chunks(["O", "UNK", "O"]) == set()


def test_slot_f1_and_exact_match_by_hand():
    gold = [["B-a", "I-a", "O", "B-b"], ["O", "B-c"]]
    pred = [["B-a", "I-a", "O", "O"], ["B-c", "I-c"]]  # 1 of 3 predicted right, 1 of 3 gold
    f1 = slot_f1(gold, pred)
    assert f1["precision"] == pytest.approx(100 / 2) and f1["recall"] == pytest.approx(100 / 3)
    assert f1["f1"] == pytest.approx(100 * 2 * (1 / 2) * (1 / 3) / (1 / 2 + 1 / 3))
    m = nlu_metrics([1, 2], [1, 2], [["O", "B-a"], ["O"]], [["O", "B-a"], ["B-x"]])
    assert m["intent_acc"] == 100 and m["exact_match"] == 50
    with pytest.raises(ValueError, match="sentence 0: 2 gold tags but 1 predicted"):
        slot_f1([["O", "O"]], [["O"]])


# --- model, training, export ------------------------------------------------------------------


def _tiny_model(tokenizer_dir, bits=8):
    from ttaccel.models.nlu import ScratchShape, build_joint_model, tt_config
    from ttaccel.models.nlu_data import NluLabels

    labels = NluLabels(tuple(INTENTS), tuple(SLOTS))
    torch.manual_seed(0)
    model = build_joint_model(
        "tt", labels, vocab_size=len(VOCAB), max_length=16,
        shape=ScratchShape(layers=1, hidden=32, heads=2, ffn=48),
        cfg=tt_config(4, 4, bits),
    )  # fmt: skip
    return model, labels


def test_joint_loss_backpropagates_into_the_tt_cores(tokenizer_dir, atis):
    from transformers import AutoTokenizer

    from ttaccel.models.data import collate
    from ttaccel.models.nlu import joint_loss
    from ttaccel.models.tt import TTEmbedding, TTLinear

    model, labels = _tiny_model(tokenizer_dir)
    tok = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    batch = collate(encode_nlu(load_nlu_split(atis, "train", labels)[:4], tok, 16))
    model.train()
    out = model(batch["input_ids"], batch["token_type_ids"], batch["attention_mask"])
    assert out.intent_logits.shape == (4, len(INTENTS))
    assert out.slot_logits.shape == (*batch["input_ids"].shape, len(SLOTS))
    loss, logs = joint_loss(out, batch)
    assert loss.item() == pytest.approx(logs["intent_ce"] + logs["slot_ce"], rel=1e-5)
    loss.backward()
    tts = [m for m in model.modules() if isinstance(m, TTLinear | TTEmbedding)]
    assert len(tts) == 6 + 1 + 1  # encoder linears, pooler, word embedding
    assert all(c.grad is not None and c.grad.abs().sum() > 0 for m in tts for c in m.cores)


def _train(atis, tokenizer_dir, out, steps=6, golden=False):
    from ttaccel.models.nlu import ScratchShape, train_nlu
    from ttaccel.models.train import LoopConfig

    loop = LoopConfig(steps=steps, batch_size=8, lr=2e-3, eval_every=3, save_every=2)
    return train_nlu(
        atis, out, kind="tt", bits=8, rank=4, embedding_rank=4, max_length=16,
        shape=ScratchShape(layers=1, hidden=32, heads=2, ffn=48), checkpoint=tokenizer_dir,
        loop=loop, golden=golden, progress=False,
    )  # fmt: skip


class _Killed(Exception):
    pass


def test_a_killed_run_resumes_to_the_uninterrupted_state(atis, tokenizer_dir, tmp_path,
                                                         monkeypatch):  # fmt: skip
    import ttaccel.models.nlu as nlu

    _train(atis, tokenizer_dir, tmp_path / "straight")
    real, calls = nlu.joint_loss, []

    def dies_at_step_5(out, batch):
        calls.append(1)
        if len(calls) == 5:
            raise _Killed  # after the step-4 checkpoint, as a kill would
        return real(out, batch)

    monkeypatch.setattr(nlu, "joint_loss", dies_at_step_5)
    with pytest.raises(_Killed):
        _train(atis, tokenizer_dir, tmp_path / "killed")
    assert torch.load(tmp_path / "killed" / "state.pt", weights_only=False)["step"] == 4
    monkeypatch.setattr(nlu, "joint_loss", real)
    _train(atis, tokenizer_dir, tmp_path / "killed")
    a = torch.load(tmp_path / "straight" / "state.pt", weights_only=False)
    b = torch.load(tmp_path / "killed" / "state.pt", weights_only=False)
    assert a["step"] == b["step"] == 6
    assert a["model"].keys() == b["model"].keys()
    for name, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][name]), name


@pytest.fixture(scope="module")
def trained(atis, tokenizer_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("joint")
    return out, _train(atis, tokenizer_dir, out, steps=12, golden=True)


def test_export_load_golden_matches_torch(trained, atis, tokenizer_dir):
    from transformers import AutoTokenizer

    from ttaccel.models.nlu import _torch_logits, golden_predict, load_nlu_student
    from ttaccel.spec.artifact import load_artifact
    from ttaccel.spec.inference import BertInference

    out, result = trained
    artifact = load_artifact(out / "model.safetensors")
    cfg = artifact.model_config
    assert cfg["architecture"] == "bert-joint-intent-slot"
    assert cfg["num_slot_labels"] == len(SLOTS) and cfg["slot_labels"] == SLOTS
    assert cfg["num_labels"] == len(INTENTS) and cfg["intent_labels"] == INTENTS
    assert len(artifact.tt_linears) == 7 and list(artifact.tt_embeddings) == [
        "bert.embeddings.word_embeddings"
    ]
    model, _, _ = load_nlu_student(out / "student")
    labels = load_nlu_labels(atis)
    tok = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    data = encode_nlu(load_nlu_split(atis, "test", labels), tok, 16)
    _, _, g_intent, g_slots = golden_predict(BertInference(artifact), data, labels, batch=1)
    t_intent, t_slots = _torch_logits(model, data, batch_size=1)
    # The TT layers are exact integers on both sides; the float32 steps around them (LayerNorm,
    # softmax, GELU, the heads) are computed by different libraries: agreement to 1e-4.
    np.testing.assert_allclose(g_intent, t_intent, rtol=0, atol=1e-4)
    for g, t in zip(g_slots, t_slots, strict=True):
        np.testing.assert_allclose(g, t, rtol=0, atol=1e-4)
    golden = result["golden"]
    assert golden["intent_agreement"] == 1.0 and golden["word_tag_agreement"] == 1.0
    assert golden["test"]["intent_acc"] == pytest.approx(result["test"]["intent_acc"])
    assert golden["test"]["slot_f1"] == pytest.approx(result["test"]["slot_f1"])


def test_the_tt_layers_of_the_golden_model_are_bit_exact(trained):
    """Every TT layer of the loaded artifact, run by the golden model on float32 inputs,
    returns exactly what the torch fake-quant module returns in eval mode (same int8 input
    codes, same integer contraction and requantization, same dequantization)."""
    from ttaccel.models.nlu import load_nlu_student
    from ttaccel.spec.artifact import load_artifact
    from ttaccel.spec.inference import BertInference

    out, _ = trained
    inference = BertInference(load_artifact(out / "model.safetensors"))
    model, _, _ = load_nlu_student(out / "student")
    rng = np.random.default_rng(0)
    with torch.no_grad():
        for name in inference.artifact.tt_linears:
            module = model.get_submodule(name)
            x = (rng.standard_normal((5, module.in_features)) * 2).astype(np.float32)
            np.testing.assert_array_equal(
                module(torch.from_numpy(x)).numpy(), inference.linear(name, x), err_msg=name
            )
        ids = np.arange(len(VOCAB))
        table = model.bert.embeddings.word_embeddings
        np.testing.assert_array_equal(
            table(torch.from_numpy(ids)).numpy(), inference.word_embeddings(ids)
        )


def test_the_artifact_page_documents_the_joint_keys_and_tensors(trained):
    """docs/artifact.md's joint tables (sections 5 and 6) list exactly what export adds."""
    from tests.spec.test_artifact_doc import _SPAN, DOC, _keys, _sections, _tables
    from ttaccel.spec.artifact import load_artifact

    out, _ = trained
    artifact = load_artifact(out / "model.safetensors")
    sections = _sections(DOC.read_text(encoding="utf-8"))
    model_tables = dict(_tables(sections["6"]))
    documented = _keys(model_tables[""]) | _keys(model_tables["bert-joint-intent-slot"])
    assert set(artifact.model_config) == documented
    slot_rows = _tables(sections["5"])[1][1]
    assert {_SPAN.findall(row[0])[0] for row in slot_rows} == {
        n for n in artifact.tensors if n.startswith("slot_classifier")
    }


def test_result_and_sizes(trained):
    out, result = trained
    assert set(result["test"]) >= {"intent_acc", "slot_f1", "exact_match"}
    assert result["examples"] == {"train": 48, "dev": 13, "test": 13}
    assert result["cut_words"] == {"train": 0, "dev": 0, "test": 0}
    sizes = result["sizes"]
    assert sizes["student_bytes"] < sizes["dense_bytes"]
    assert sizes["student_embedding_bytes"] < sizes["dense_embedding_bytes"] == 4 * 32 * len(VOCAB)
    assert (out / "result.json").is_file() and (out / "metrics.jsonl").is_file()


def test_the_cli_trains_a_dense_model_and_refuses_bits(atis, tokenizer_dir, tmp_path, monkeypatch):
    import json
    import sys

    from ttaccel.cli import main

    common = ["train-nlu", "--data", str(atis), "--checkpoint", str(tokenizer_dir),
              "--layers", "1", "--hidden", "32", "--heads", "2", "--ffn", "48",
              "--max-length", "16", "--steps", "2", "--batch-size", "8", "--no-progress",
              "--threads", "1"]  # fmt: skip
    args = [*common, "--out", str(tmp_path / "d"), "--model", "dense"]
    monkeypatch.setattr(sys, "argv", ["ttaccel", *args])
    assert main(args) == 0
    result = json.loads((tmp_path / "d" / "result.json").read_text())
    assert result["command"].startswith("ttaccel train-nlu") and result["model"] == "dense"
    assert result["sizes"]["whole_model_ratio"] == 1.0
    assert main([*common, "--out", str(tmp_path / "e"), "--model", "dense", "--bits", "4"]) == 2
