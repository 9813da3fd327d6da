"""Measure a Tucker layer (seed 001) and the dense layer of the same size on one engine (RTL).

    nice -n 10 .venv/bin/python -m ttaccel.sim.measure_tucker [--layer D R TOKENS ...]

Builds a 4 x 4 int8 configuration (the default buffers, in Verilator; cached under
``build/sim/verilator/engine-4x4-int8-tucker``) and runs ``tb_tucker.tucker_and_dense_cycles``:
the Tucker layer ``d -> d`` at rank ``r`` warm (its three cores resident after a setup
program) and the dense ``d x d`` layer cold with its weights streamed, both bit-exact against
the reference executor and the golden model. Prints ``BUSY_CYCLES`` of each, the cycle model's
prediction and the ratio.
"""

from __future__ import annotations

import argparse
import json

from ttaccel.hw.engine import Engine
from ttaccel.sim.runner import BUILD_ROOT, run_cocotb, test_seed
from ttaccel.spec.accel_config import AccelConfig

CONFIG = AccelConfig(rows=4, cols=4)
CONFIG_NAME = "engine-4x4-int8-tucker"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layer", nargs=3, type=int, action="append", metavar=("D", "R", "TOKENS"))
    args = parser.parse_args(argv)
    layers = args.layer or [[384, 64, 16]]
    tb = {"config": CONFIG.to_dict(), "seed": test_seed(), "layers": layers}
    run_cocotb(Engine(config=CONFIG), sim="verilator", config_name=CONFIG_NAME,
               test_module="ttaccel.sim.tb_tucker", config=tb,
               testcase="tucker_and_dense_cycles")  # fmt: skip
    report = json.loads((BUILD_ROOT / "verilator" / CONFIG_NAME / "measure.json").read_text())
    head = ("layer", "tucker", "(model)", "dense", "(model)", "tucker/dense")
    print("{:>22} {:>8} {:>8} {:>8} {:>8} {:>12}".format(*head))
    for e in report:
        name = f"{e['d']}x{e['d']} r{e['r']}, {e['tokens']} tok"
        ratio = e["tucker_cycles"] / e["dense_cycles"]
        cells = (name, e["tucker_cycles"], e["tucker_model_cycles"], e["dense_cycles"],
                 e["dense_model_cycles"], f"{ratio:.3f}")  # fmt: skip
        print("{:>22} {:>8} {:>8} {:>8} {:>8} {:>12}".format(*cells))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
