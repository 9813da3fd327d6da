"""Measure a layer's engine cycles dense and N:M sparse on the same sparse build (Verilator).

    .venv/bin/python -m ttaccel.sim.measure_sparse [--layer IN OUT TOKENS ...]

Builds ``sim/test_sparse.py``'s 4 x 4 int8 2:4 configuration (or reuses its build), and for
each layer loads its weights resident (setup program), then runs one batch compiled dense
(``compile_dense``) and sparse (``compile_sparse_linear``), both checked bit-exactly against
the reference executor and the golden model (``dense_and_sparse_layer_cycles`` in
:mod:`ttaccel.sim.tb_sparse`). Prints ``BUSY_CYCLES`` of each run, the array beats, the cycle
model's prediction and the sparse / dense ratio.
"""

from __future__ import annotations

import argparse
import json

from ttaccel.hw.engine import Engine
from ttaccel.sim.runner import BUILD_ROOT, run_cocotb, test_seed
from ttaccel.sim.test_sparse import CONFIG_NAME, SPARSE


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--layer", nargs=3, type=int, action="append", metavar=("IN", "OUT", "TOKENS")
    )
    args = parser.parse_args(argv)
    layers = args.layer or [[128, 16, 16], [256, 16, 32]]
    tb = {"config": SPARSE.to_dict(), "seed": test_seed(), "layers": 0, "measure": layers}
    run_cocotb(Engine(config=SPARSE), sim="verilator", config_name=CONFIG_NAME,
               test_module="ttaccel.sim.tb_sparse", config=tb,
               testcase="dense_and_sparse_layer_cycles")  # fmt: skip
    report = json.loads((BUILD_ROOT / "verilator" / CONFIG_NAME / "measure.json").read_text())
    head = ("layer", "dense", "(model)", "sparse", "(model)", "beats d/s", "sparse/dense")
    print("{:>16} {:>8} {:>8} {:>8} {:>8} {:>12} {:>12}".format(*head))
    for e in report:
        name = f"{e['in_features']}x{e['out_features']}, {e['tokens']} tok"
        beats = f"{e['dense_array_beats']}/{e['sparse_array_beats']}"
        cells = (name, e["dense_cycles"], e["dense_model_cycles"], e["sparse_cycles"],
                 e["sparse_model_cycles"], beats, f"{e['ratio']:.3f}")  # fmt: skip
        print("{:>16} {:>8} {:>8} {:>8} {:>8} {:>12} {:>12}".format(*cells))
    return 0 if all(e["ratio"] <= 0.55 for e in report) else 1


if __name__ == "__main__":
    raise SystemExit(main())
