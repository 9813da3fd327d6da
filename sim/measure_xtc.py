"""Measure one-core dense layers with int8, ternary and binary weights on same-size engines (RTL).

    nice -n 10 .venv/bin/python -m ttaccel.sim.measure_xtc [--layer IN OUT TOKENS RESIDENT ...]

Builds three 4 x 4 engines with the default buffers in Verilator, one per weight format: int8
(the build of :mod:`ttaccel.sim.measure_tucker`, ``engine-4x4-int8-tucker``, shared),
``weight_format="ternary"`` (``engine-4x4-ternary``) and ``weight_format="binary"``
(``engine-4x4-binary``), and on each runs ``tb_xtc.dense_layer_cycles``: every layer with that
build's own codes, setup program then run program, bit-exact against the reference executor
and the golden model. ``RESIDENT`` 1: the weights are loaded into WBUF by the setup program;
0: the run program streams them through WBUF. Prints ``BUSY_CYCLES`` of each program, the
cycle model's prediction, the input beats and the ternary / int8 and binary / int8 ratios.
"""

from __future__ import annotations

import argparse
import dataclasses
import json

from ttaccel.hw.engine import Engine
from ttaccel.sim.measure_tucker import CONFIG as INT8_CONFIG
from ttaccel.sim.measure_tucker import CONFIG_NAME as INT8_CONFIG_NAME
from ttaccel.sim.runner import BUILD_ROOT, run_cocotb, test_seed

BUILDS = {
    "int8": (INT8_CONFIG, INT8_CONFIG_NAME),
    "ternary": (dataclasses.replace(INT8_CONFIG, weight_format="ternary"), "engine-4x4-ternary"),
    "binary": (dataclasses.replace(INT8_CONFIG, weight_format="binary"), "engine-4x4-binary"),
}
"""Weight format -> (configuration, build name): the same array and buffers, one format each."""
LAYERS = [[128, 16, 16, 1], [384, 64, 16, 1], [384, 384, 16, 0]]
"""Default layers: ``[in_features, out_features, tokens, resident]``."""


def measure(fmt: str, layers: list[list[int]], seed: int) -> list[dict]:
    """Run ``layers`` on the ``fmt`` build (built or reused); its ``measure.json`` entries."""
    config, name = BUILDS[fmt]
    tb = {"config": config.to_dict(), "seed": seed, "layers": layers}
    run_cocotb(Engine(config=config), sim="verilator", config_name=name,
               test_module="ttaccel.sim.tb_xtc", config=tb,
               testcase="dense_layer_cycles")  # fmt: skip
    return json.loads((BUILD_ROOT / "verilator" / name / "measure.json").read_text())


def print_table(reports: dict[str, list[dict]]) -> None:
    """One line per layer and program (setup, run): each format's cycles (model) and beats."""
    cells = ["{:>24}", "{:>6}"] + ["{:>18}"] * len(reports) + ["{:>10}"] * (len(reports) - 1)
    line = " ".join(cells).format
    ratios = [f"{fmt}/int8" for fmt in reports if fmt != "int8"]
    print(line("layer", "prog", *(f"{fmt} (model) beats" for fmt in reports), *ratios))
    for i, first in enumerate(reports["int8"]):
        kind = "resident" if first["resident"] else "streamed"
        name = f"{first['in_features']}x{first['out_features']}, {first['tokens']} tok, {kind}"
        for prog in ("setup", "run"):
            entries = [report[i] for report in reports.values()]
            figures = [f"{e[prog + '_cycles']} ({e[prog + '_model_cycles']}) "
                       f"{e[prog + '_beats_in']}" for e in entries]  # fmt: skip
            base = first[prog + "_cycles"]
            shares = [f"{e[prog + '_cycles'] / base:.3f}" for e in entries[1:]]
            print(line(name, prog, *figures, *shares))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layer", nargs=4, type=int, action="append",
                        metavar=("IN", "OUT", "TOKENS", "RESIDENT"))  # fmt: skip
    args = parser.parse_args(argv)
    layers = args.layer or LAYERS
    seed = test_seed()
    reports = {fmt: measure(fmt, layers, seed) for fmt in BUILDS}
    print_table(reports)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
