"""GLUE readers (every layout quirk), dynamic padding and the distributed batch split."""

from __future__ import annotations

import pytest
import torch

from ttaccel.models.data import (
    Encoded,
    batches,
    infer_task,
    load_split,
)

from .conftest import SHARED_DATA


def test_mrpc_bom_cola_headerless_rte_labels_stsb_scores(tmp_path):
    mrpc = tmp_path / "MRPC"
    mrpc.mkdir()
    (mrpc / "dev.tsv").write_text(
        '\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\n1\t1\t2\tHe said "so\t"So he said\n',
        encoding="utf-8",
    )
    (ex,) = load_split(mrpc, "dev", infer_task(mrpc))
    assert ex.texts == ('He said "so', '"So he said') and ex.label == 1
    cola = tmp_path / "CoLA"
    cola.mkdir()
    (cola / "dev.tsv").write_text("gj04\t1\t\tThe sailors rode.\ngj04\t0\t*\tRode sailors the.\n")
    rows = load_split(cola, "dev", infer_task(cola))
    assert [(r.texts, r.label) for r in rows] == [(("The sailors rode.",), 1),
                                                  (("Rode sailors the.",), 0)]  # fmt: skip
    rte = tmp_path / "rte"
    rte.mkdir()
    (rte / "dev.tsv").write_text("index\tsentence1\tsentence2\tlabel\n0\ta\tb\tnot_entailment\n")
    assert load_split(rte, "dev", infer_task(rte))[0].label == 1
    sts = tmp_path / "STS-B"
    sts.mkdir()
    header = (
        "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore"
    )
    (sts / "dev.tsv").write_text(header + "\n0\tg\tf\ty\t0\tn\tn\tA man.\tA man!\t4.250\n")
    task = infer_task(sts)
    assert task.is_regression and load_split(sts, "dev", task)[0].label == 4.25


def _items(n):
    return [Encoded(tuple(range(1, 2 + i % 5)), (0,) * (1 + i % 5), i % 2) for i in range(n)]


def test_dynamic_padding_and_masks():
    (batch,) = list(batches(_items(4), 4, shuffle=False))
    assert batch["input_ids"].shape == (4, 4)  # longest example has 4 tokens
    assert batch["attention_mask"].sum(1).tolist() == [1, 2, 3, 4]
    assert (batch["input_ids"][batch["attention_mask"] == 0] == 0).all()


def test_two_ranks_split_the_same_global_batches_as_one_process():
    data = _items(40)
    single = list(batches(data, 8, shuffle=True, seed=3, epoch=1))
    rank0 = list(batches(data, 4, shuffle=True, seed=3, epoch=1, rank=0, world_size=2))
    rank1 = list(batches(data, 4, shuffle=True, seed=3, epoch=1, rank=1, world_size=2))
    assert len(single) == len(rank0) == len(rank1) == 5
    for whole, a, b in zip(single, rank0, rank1, strict=True):
        assert sorted(whole["labels"].tolist()) == sorted(
            a["labels"].tolist() + b["labels"].tolist()
        )
    other_epoch = list(batches(data, 8, shuffle=True, seed=3, epoch=2))
    assert not all(
        torch.equal(x["labels"], y["labels"]) for x, y in zip(single, other_epoch, strict=True)
    )


@pytest.mark.data
def test_real_sst2_when_present():
    folder = SHARED_DATA / "SST-2"
    if not (folder / "dev.tsv").is_file():
        pytest.skip(f"shared GLUE data not found at {folder}")
    dev = load_split(folder, "dev", infer_task(folder))
    assert len(dev) == 872
    assert sum(e.label for e in dev) == 444  # README: dev 428 negative / 444 positive


def test_length_grouped_batches_cover_every_example_once_with_less_padding():
    lengths = [1 + (i * 37) % 50 for i in range(1000)]
    data = [Encoded(tuple(range(1, n + 1)), (0,) * n, i) for i, n in enumerate(lengths)]

    def padded_tokens(group_by_length):
        out = list(
            batches(data, 16, shuffle=True, seed=5, epoch=2, group_by_length=group_by_length)
        )
        seen = sorted(i for b in out for i in b["labels"].tolist())
        return seen, sum(b["input_ids"].numel() for b in out), out

    seen, grouped, first = padded_tokens(True)
    assert len(seen) == 992 and len(set(seen)) == 992  # 62 full batches, the 8-example tail dropped
    _, plain, _ = padded_tokens(False)
    assert grouped < 0.7 * plain  # the point of grouping
    again = list(batches(data, 16, shuffle=True, seed=5, epoch=2, group_by_length=True))
    assert all(torch.equal(a["labels"], b["labels"]) for a, b in zip(first, again, strict=True))
    # long and short batches alternate: not sorted across the whole epoch
    widths = [b["input_ids"].shape[1] for b in first]
    assert widths != sorted(widths, reverse=True)
    resumed = list(batches(data, 16, shuffle=True, seed=5, epoch=2, skip=10, group_by_length=True))
    assert all(
        torch.equal(a["labels"], b["labels"]) for a, b in zip(first[10:], resumed, strict=True)
    )
