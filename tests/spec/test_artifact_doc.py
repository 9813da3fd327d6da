"""docs/artifact.md against the bundled artifact: every tensor name and manifest key the page
lists exists, and the artifact holds no other, so the page cannot drift from what export writes.

The page's tables are parsed (first-column code spans), so a renamed field, a dropped tensor or
an example without the ``bert.`` prefix fails here; ``test_a_doctored_page_fails`` shows it.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from ttaccel.demo import BUNDLED_ARTIFACT
from ttaccel.spec.safetensors_io import load_safetensors

DOC = Path(__file__).resolve().parents[2] / "docs" / "artifact.md"
_SPAN = re.compile(r"`([^`]+)`")  # within one table cell or line
_FENCE = re.compile(r"^```.*?^```", re.DOTALL | re.MULTILINE)
_PROSE_SPAN = re.compile(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)", re.DOTALL)  # CommonMark spans
_DTYPES = {"U8": "uint8", "I32": "int32", "F32": "float32"}


def _sections(text: str) -> dict[str, list[str]]:
    """Lines of each ``## n. Title`` section (its ``###`` subsections included), by number."""
    sections: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        heading = re.match(r"## (\d+)\. ", line)
        if heading:
            current = heading[1]
            sections[current] = []
        elif current is not None:
            sections[current].append(line)
    return sections


def _tables(lines: list[str]) -> list[tuple[str, list[list[str]]]]:
    """Each table of ``lines`` as (label, rows of cells without the header): ``label`` is the
    first code span of the text line just above the table, or ''."""
    tables, rows, label, above = [], None, "", ""
    for line in [*lines, ""]:
        if line.startswith("|"):
            if rows is None:
                rows, label = [], (_SPAN.findall(above) or [""])[0]
            rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
        else:
            if rows is not None:
                tables.append((label, rows[2:]))  # header and |---| rows
                rows = None
            if line.strip():
                above = line
    return tables


def _keys(rows: list[list[str]]) -> set[str]:
    return {key for row in rows for key in _SPAN.findall(row[0])}


@pytest.fixture(scope="module")
def bundled():
    tensors, metadata = load_safetensors(BUNDLED_ARTIFACT)
    return tensors, json.loads(metadata["ttaccel"])


def check_manifest_keys(text: str, manifest: dict) -> list[str]:
    """Problems of the page's key tables against ``manifest`` (empty: none)."""
    problems = []
    sections = _sections(text)

    def compare(what: str, documented: set[str], actual: set[str]) -> None:
        if documented != actual:
            problems.append(f"{what}: only on the page {sorted(documented - actual)}, "
                            f"only in the artifact {sorted(actual - documented)}")  # fmt: skip

    compare("manifest", _keys(_tables(sections["2"])[0][1]), set(manifest))
    linear_keys = _keys(_tables(sections["3"])[0][1])
    for name, entry in manifest["tt_linears"].items():
        compare(f"tt_linears[{name!r}]", linear_keys, set(entry))
    embedding_keys = _keys(_tables(sections["4"])[0][1])
    for name, entry in manifest["tt_embeddings"].items():
        compare(f"tt_embeddings[{name!r}]", embedding_keys, set(entry))
    model = manifest["model"]
    by_label = dict(_tables(sections["6"]))
    compare("model", _keys(by_label[""]), set(model))
    for sub in ("tokenizer", "training", "compression"):
        compare(f"model.{sub}", _keys(by_label[sub]), set(model[sub]))
    loop_row = next(row for row in by_label["training"] if _SPAN.findall(row[0]) == ["loop"])
    compare("model.training.loop", set(_SPAN.findall(loop_row[1])), set(model["training"]["loop"]))
    return problems


def _shape(text: str, model: dict) -> list[int] | None:
    symbols = {
        "H": model["hidden_size"], "I": model["intermediate_size"],
        "P": model["max_position_embeddings"], "Y": model["type_vocab_size"],
        "C": model["num_labels"], "V": model["vocab_size"],
    }  # fmt: skip
    inner = text.strip("`[]")
    if inner in ("packed", "bytes") or text == "packed":
        return None
    return [symbols[s.strip()] if s.strip() in symbols else int(s) for s in inner.split(",")]


def check_tensor_names(text: str, tensors: dict, manifest: dict) -> list[str]:
    """Problems of the page's tensor table (and of ``bert.`` names anywhere on the page)
    against the artifact's tensors (empty: none)."""
    problems = []
    model = manifest["model"]
    layers = model["num_hidden_layers"]
    tt = {**manifest["tt_linears"], **manifest["tt_embeddings"]}
    documented: dict[str, tuple[str, str]] = {}
    for row in _tables(_sections(text)["5"])[0][1]:
        pattern, dtype, shape = _SPAN.findall(row[0])[0], row[1].strip("`"), row[2]
        for layer in range(layers) if "{l}" in pattern else [None]:
            name = pattern.replace("{l}", str(layer))
            if "{k}" in name:
                owner = name.split(".core{k}")[0]
                cores = len(tt[owner]["ranks"]) - 1 if owner in tt else 1
                names = [name.replace("{k}", str(k)) for k in range(cores)]
            else:
                names = [name]
            documented.update({n: (dtype, shape) for n in names})
    if set(documented) != set(tensors):
        page_only = sorted(set(documented) - set(tensors))[:5]
        file_only = sorted(set(tensors) - set(documented))[:5]
        problems.append(f"tensors only on the page {page_only}, only in the artifact {file_only}")
    for name, (dtype, shape) in documented.items():
        if name not in tensors:
            continue
        if str(tensors[name].dtype) != _DTYPES.get(dtype):
            problems.append(f"{name}: the page says {dtype}, the file holds {tensors[name].dtype}")
        expected = _shape(shape, model)
        if expected is not None and list(tensors[name].shape) != expected:
            problems.append(f"{name}: the page says {shape}, the file holds {tensors[name].shape}")
    floats = {n for n, (dtype, _) in documented.items() if dtype == "F32"}
    if floats != set(manifest["float_tensors"]):
        problems.append("the page's F32 tensors are not the manifest's float_tensors")
    # every module or tensor name written anywhere on the page carries the real prefix, and
    # names a module of the artifact, a tensor, or the float form of one of its TT layers
    for bare in sorted(set(re.findall(r"(?<![\w.])(?:embeddings|encoder|pooler)\.[\w{}.]+", text))):
        problems.append(f"{bare} lacks the bert. prefix")
    modules = {n.rsplit(".", i)[0] for n in tensors for i in range(n.count(".") + 1)}
    for span in {m[2] for m in _PROSE_SPAN.finditer(_FENCE.sub("", text))}:
        name = span.replace("{l}", "0").replace("{k}", "0").rstrip(".")
        if not re.fullmatch(r"bert\.[\w.]+", name) or name in modules:
            continue
        owner, _, leaf = name.rpartition(".")
        if not (leaf in ("weight", "bias") and owner in tt):
            problems.append(f"`{span}` names no tensor or module of the artifact")
    return problems


def test_the_page_lists_every_manifest_key_and_no_other(bundled):
    _, manifest = bundled
    assert check_manifest_keys(DOC.read_text(encoding="utf-8"), manifest) == []


def test_the_page_lists_every_tensor_with_its_dtype_and_shape(bundled):
    tensors, manifest = bundled
    assert check_tensor_names(DOC.read_text(encoding="utf-8"), tensors, manifest) == []


def test_packed_cores_have_the_size_the_page_gives(bundled):
    """Section 2: a packed tensor is U8 of ceil(count * bits / 8) bytes, count = the product of
    the core's logical shape (r, m, n, r') from the manifest's modes and ranks."""
    tensors, manifest = bundled
    bits = {"int8": 8, "int4": 4, "int2": 2, "ternary": 2, "binary": 1}
    for kind, modes in (("tt_linears", ("in_modes", "out_modes")),
                        ("tt_embeddings", ("row_modes", "col_modes"))):  # fmt: skip
        for name, entry in manifest[kind].items():
            r = entry["ranks"]
            for k, (m, n) in enumerate(zip(entry[modes[0]], entry[modes[1]], strict=True)):
                count = r[k] * m * n * r[k + 1]
                width = bits[entry["weight_format"]]
                assert tensors[f"{name}.core{k}"].shape == (math.ceil(count * width / 8),)


@pytest.mark.parametrize(
    ("edit", "complaint"),
    [
        (("| `has_bias` | bool |", "| `with_bias` | bool |"), "with_bias"),
        (("| `do_lower_case` |", "| `lower_case` |"), "lower_case"),
        (("`eval_batch_size`, ", ""), "eval_batch_size"),
        (("| `bert.pooler.dense.bias` |", "| `pooler.dense.bias` |"), "bert.pooler.dense.bias"),
        (("| `classifier.bias` | `F32` | `[C]`", "| `classifier.bias` | `F32` | `[H]`"), "[H]"),
        (('["bert.embeddings.LayerNorm.bias"', '["embeddings.LayerNorm.bias"'),
         "lacks the bert. prefix"),
        (("`bert.pooler.dense.weight` |", "`bert.pooler.dense.kernel` |"), "dense.kernel']"),
        (("under `bert.embeddings.`", "under `bert.embedding.`"), "names no tensor"),
        (("| `vocab_size` | int |", "| `vocab_count` | int |"), "vocab_count"),
    ],
)  # fmt: skip
def test_a_doctored_page_fails(bundled, edit, complaint):
    tensors, manifest = bundled
    text = DOC.read_text(encoding="utf-8")
    old, new = edit
    assert old in text, old
    doctored = text.replace(old, new, 1)
    problems = check_manifest_keys(doctored, manifest)
    problems += check_tensor_names(doctored, tensors, manifest)
    assert any(complaint in p for p in problems), problems
