"""`ttaccel infer` and `ttaccel evaluate --backend` (reference backend), run as a user would.

The NumPy-only test runs the commands in a subprocess in which importing torch, Amaranth,
transformers, tokenizers or tqdm raises, as on the board (whose image has NumPy alone).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

SST2 = Path(__file__).resolve().parents[3] / "shared" / "data" / "SST-2"
BLOCKER = """
import importlib.abc, sys
class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split('.')[0] in {'torch', 'amaranth', 'transformers', 'tokenizers', 'tqdm'}:
            raise ImportError(f'{name} is not on the board')
sys.meta_path.insert(0, Blocker())
from ttaccel.cli import main
sys.exit(main(sys.argv[1:]))
"""


def ttaccel(*args: str, numpy_only: bool = False) -> subprocess.CompletedProcess:
    command = (
        [sys.executable, "-c", BLOCKER] if numpy_only else [sys.executable, "-m", "ttaccel.cli"]
    )
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=900)


def test_infer_prints_labels_golden_agreement_and_cycles_per_layer():
    result = ttaccel("infer", "a gorgeous , witty , seductive movie .", "a dull mess .")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert re.search(r"positive \[0\.\d+, 0\.\d+\]  logits = golden  a gorgeous", out)
    assert re.search(r"negative \[0\.\d+, 0\.\d+\]  logits = golden  a dull mess", out)
    per_layer = re.findall(r"layer\.\d\.[\w.]+ +[\d,]+", out)
    assert len(per_layer) == 36
    assert re.search(r"at 100 MHz: engine \d+\.\d\d ms \+ host \d+\.\d\d ms", out)


def test_infer_refuses_empty_text_before_opening_the_device():
    result = ttaccel("infer", "fine", "   ")
    assert result.returncode == 2
    assert result.stdout == ""  # the backend banner is printed once the device is open
    assert "text 1 ('   ')" in result.stderr and "holds no token" in result.stderr


def test_infer_warns_when_a_text_is_truncated():
    result = ttaccel("infer", "good " * 100)
    assert result.returncode == 0
    assert "longer than 64 tokens and was truncated" in result.stderr
    assert "(truncated to 64 tokens)" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--backend", "pynq", "--overlay", "/nonexistent/x.bit"], "x.bit does not exist"),
        (["--backend", "reference", "--overlay", "x.bit"], "--overlay is for the pynq backend"),
        (["--config", "/nonexistent.json"], "/nonexistent.json"),
    ],
)
def test_bad_device_options_are_one_clear_line(args, message):
    result = ttaccel("infer", *args, "fine")
    assert result.returncode in (2, 3)
    assert message in result.stderr and "Traceback" not in result.stderr


@pytest.mark.data
def test_evaluate_on_the_reference_backend_with_numpy_alone(tmp_path):
    if not SST2.is_dir():
        pytest.skip(f"{SST2} is absent")
    out = tmp_path / "eval.json"
    result = ttaccel(
        "evaluate", "--backend", "reference", "--data", str(SST2), "--limit", "6",
        "--json", str(out), numpy_only=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert report["sentences"] == 6 and len(report["per_sentence"]) == 6
    assert report["logits_exactly_equal_spec"] == "6/6"
    assert report["macs_issued_equal_compiler_count"] is True
    assert report["cycles_source"] == "cycle model (modelled)"
    assert all(len(row["logits"]) == 2 and row["exact"] for row in report["per_sentence"])
    assert "reference: 1/1 batches" in result.stderr  # the progress fallback without tqdm


def test_evaluate_without_a_dev_file_is_one_clear_line(tmp_path):
    result = ttaccel("evaluate", "--data", str(tmp_path))
    assert result.returncode == 2
    assert f"{tmp_path}/dev.tsv does not exist" in result.stderr


def test_an_artifact_that_fails_validation_is_refused_naming_the_field(tmp_path):
    from ttaccel.demo import BUNDLED_ARTIFACT

    data = bytearray(BUNDLED_ARTIFACT.read_bytes())
    header = int.from_bytes(data[:8], "little")
    manifest = bytes(data[8 : 8 + header])
    broken = manifest.replace(b'schema_version\\": 1', b'schema_version\\": 7', 1)
    assert broken != manifest, "the artifact header has no schema_version to break"
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(bytes(data[:8]) + broken + bytes(data[8 + header :]))
    result = ttaccel("infer", "--artifact", str(bad), "fine")
    assert result.returncode == 2, result.stderr
    assert "schema_version" in result.stderr and "Traceback" not in result.stderr
    assert result.stdout == ""
