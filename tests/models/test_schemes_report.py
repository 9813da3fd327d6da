"""The all-schemes chart reads every figure from the run records it is given."""

from __future__ import annotations

import json

from ttaccel.models.schemes_report import main, render


def _write(path, data):
    path.write_text(json.dumps(data))
    return str(path)


def _runs(tmp_path):
    teacher = _write(tmp_path / "t.json", {"dev": {"accuracy": 89.11}, "command": "t-cmd"})
    sizes = {"dense_bytes": 90_000_000}
    return [
        {"name": "teacher", "scheme": "dense", "result": teacher},
        {"name": "TT r64 INT4", "scheme": "tt",
         "result": _write(tmp_path / "tt.json", {"dev": {"accuracy": 1.0}, "sizes": sizes,
                                                "command": "tt-cmd"}),
         "eval": _write(tmp_path / "tt-e.json", {"torch": {"accuracy": 85.5},
                                                 "golden": {"accuracy": 85.25}}),
         "export": _write(tmp_path / "tt-x.json", {"file_bytes": 2_500_000})},
        {"name": "2:4 INT8", "scheme": "nm", "command": "nm-cmd",
         "eval": _write(tmp_path / "nm-e.json", {"torch": {"accuracy": 87.0},
                                                 "golden": {"accuracy": 86.75},
                                                 "sizes": sizes}),
         "export": _write(tmp_path / "nm-x.json", {"file_bytes": 18_000_000})},
        {"name": "tucker", "scheme": "tucker", "result": str(tmp_path / "missing.json")},
    ]  # fmt: skip


def test_rows_come_from_the_records(tmp_path):
    text, rows = render(_runs(tmp_path))
    # torch from the evaluation (not the training run's dev figure), golden, bytes, ratio
    assert "| tt | TT r64 INT4 | 85.50 | 85.25 | 2,500,000 | 36.0x |" in text
    assert "| nm | 2:4 INT8 | 87.00 | 86.75 | 18,000,000 | 5.0x |" in text
    assert "| tucker | tucker | (not run: no record)" in text
    assert "- TT r64 INT4: `tt-cmd`" in text and "- 2:4 INT8: `nm-cmd`" in text
    assert [r["name"] for r in rows] == ["teacher", "TT r64 INT4", "2:4 INT8"]


def test_main_writes_the_plot(tmp_path, capsys):
    manifest = tmp_path / "m.json"
    manifest.write_text(json.dumps(_runs(tmp_path)))
    assert main([str(manifest), "--plot", str(tmp_path / "p.png"), "--no-write"]) == 0
    assert (tmp_path / "p.png").stat().st_size > 5000
    out = capsys.readouterr().out
    assert "85.25" in out and "(p.png)" in out
