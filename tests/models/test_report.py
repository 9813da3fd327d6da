"""The results report reads every figure from the run files it is given."""

from __future__ import annotations

import json

from ttaccel.models.report import main, render


def _write(path, data):
    path.write_text(json.dumps(data))
    return str(path)


def _runs(tmp_path):
    teacher = _write(tmp_path / "teacher.json", {"dev": {"accuracy": 86.0}, "command": "t-cmd"})
    sizes = {"whole_model_ratio": 20.5, "encoder_linear_ratio": 29.9, "dense_bytes": 1000}
    student = _write(tmp_path / "s.json", {
        "dev": {"accuracy": 80.0}, "sizes": sizes, "command": "s-cmd",
        "compression": {"weight_bits": 4, "layers": [{"name": "encoder", "rank": 64},
                                                     {"name": "word_embeddings", "rank": 32}]},
    })  # fmt: skip
    ev = _write(tmp_path / "e.json", {"torch": {"accuracy": 84.5}, "golden": {"accuracy": 84.25},
                                      "golden_torch_prediction_agreement": 0.995})  # fmt: skip
    ex = _write(tmp_path / "x.json", {"file_bytes": 3_141_592})
    return [
        {"name": "teacher", "result": teacher, "command": "unused"},
        {"name": "TT INT4", "result": student, "eval": ev, "export": ex, "eval_command": "e-cmd"},
        {"name": "TT missing", "result": str(tmp_path / "nope.json")},
        {
            "name": "dense, longer",
            "result": _write(tmp_path / "ref.json", {"dev": {"accuracy": 88.5}}),
            "command": "r-cmd",
            "reference": True,
        },
    ]


def test_render_reads_every_figure_from_the_run_files(tmp_path):
    text, points = render(_runs(tmp_path))
    rows = {line.split(" | ")[0].lstrip("| "): line for line in text.splitlines()}
    assert "| 86.00 |" in rows["teacher (dense fp32)"]
    row = rows["TT INT4"]
    for cell in ("| 4 |", "encoder 64, word_embeddings 32", "| 84.50 |", "| 84.25 |", "99.5%",
                 "| 1.50 |", "20.5x", "29.9x", "3,141,592"):  # fmt: skip
        assert cell in row, cell
    assert "not finished" in rows["TT missing"]
    assert "- TT INT4: `s-cmd`" in text and "  - `e-cmd`" in text
    assert "| 88.50 |" in rows["dense, longer (dense fp32)"]
    assert points == [
        {"name": "TT INT4", "bits": 4, "acc": 84.5, "enc": 29.9, "whole": 20.5, "dense": 1000,
         "teacher_acc": 86.0, "drop": 86.0 - 84.5, "label": None},
        {"name": "dense, longer", "acc": 88.5, "reference": True, "drop": 86.0 - 88.5},
    ]  # fmt: skip


def test_main_writes_the_plot(tmp_path):
    manifest = tmp_path / "runs.json"
    manifest.write_text(json.dumps(_runs(tmp_path)))
    plot = tmp_path / "docs" / "acc.png"
    assert main([str(manifest), "--plot", str(plot), "--no-write"]) == 0
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_student_of_a_retrained_teacher_drops_from_that_teacher(tmp_path):
    runs = _runs(tmp_path)
    other = _write(tmp_path / "teacher2.json", {"dev": {"accuracy": 85.0}})
    runs.insert(2, {**runs[1], "name": "TT INT4 (teacher 2)", "teacher": other})
    text, points = render(runs)
    rows = {line.split(" | ")[0].lstrip("| "): line for line in text.splitlines()}
    assert "| 1.50 |" in rows["TT INT4"] and "| 0.50 |" in rows["TT INT4 (teacher 2)"]
    assert [p["drop"] for p in points if "bits" in p] == [1.5, 0.5]
