"""Measure the engine's cycles on seed 000's layers in RTL simulation (Verilator).

    .venv/bin/python -m ttaccel.sim.measure_engine [--tokens 128] [--layers attention ffn]
        [--config default|16x16]

Builds the default :class:`~ttaccel.spec.accel_config.AccelConfig` (12 x 32, int8) or the
square :data:`~ttaccel.spec.accel_config.SQUARE_16X16` (deep buffers: a build takes 10-20
minutes, which is why this is not part of ``pytest sim/``),
loads each layer's cores and bias with its setup program, then runs one batch of ``tokens``
tokens and prints the cycles (``BUSY_CYCLES``), the utilization (useful MACs / (cycles x
lanes)) and what :func:`ttaccel.spec.cycle_model.simulate` predicts for the same program. The
cocotb test (``cycles_match_the_cycle_model`` in :mod:`ttaccel.sim.tb_engine`) also checks
every output beat against the reference executor. Exits non-zero if a run fails or the model
is off by more than 5 %.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ttaccel.hw.engine import Engine
from ttaccel.sim.runner import BUILD_ROOT, run_cocotb, test_seed
from ttaccel.spec.accel_config import NAMED_CONFIGS as CONFIGS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--layers", nargs="+", default=["attention", "ffn"],
                        choices=["attention", "ffn", "attention-dense", "ffn-dense"])  # fmt: skip
    parser.add_argument("--config", choices=sorted(CONFIGS), default="default",
                        help="the configuration to build (default: AccelConfig())")  # fmt: skip
    parser.add_argument("--json", type=Path, default=None, help="also write the report here")
    args = parser.parse_args(argv)
    config = CONFIGS[args.config]
    config_name = f"engine-{config.rows}x{config.cols}-{args.config}"
    tb = {"config": config.to_dict(), "seed": test_seed(), "random_layers": 0, "seed000": [],
          "measure": [[name, args.tokens] for name in args.layers]}  # fmt: skip
    run_cocotb(Engine(config=config), sim="verilator", config_name=config_name,
               test_module="ttaccel.sim.tb_engine", config=tb,
               testcase="cycles_match_the_cycle_model")  # fmt: skip
    report = json.loads((BUILD_ROOT / "verilator" / config_name / "measure.json").read_text())
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2))
    print(f"{'layer':10} {'tokens':>6} {'cycles':>8} {'model':>8} {'error':>7} {'util':>6} "
          f"{'model util':>10}")  # fmt: skip
    worst = 0.0
    for entry in report:
        if "does_not_fit" in entry:
            print(f"{entry['layer']:10} {entry['tokens']:>6} does not fit: {entry['does_not_fit']}")
            continue
        error = entry["cycles"] / entry["model_cycles"] - 1
        worst = max(worst, abs(error))
        print(f"{entry['layer']:10} {entry['tokens']:>6} {entry['cycles']:>8} "
              f"{entry['model_cycles']:>8} {error:>+7.2%} {entry['utilization']:>6.1%} "
              f"{entry['model_utilization']:>10.1%}")  # fmt: skip
    return 0 if worst <= 0.05 else 1


if __name__ == "__main__":
    raise SystemExit(main())
