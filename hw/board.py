"""``python -m ttaccel.hw.board``: the former name of ``ttaccel synth`` (``make synth``).

Takes the same arguments (``--config CFG.json``, ``--out DIR``, ``--ecp5``, ``--no-yosys``,
``--fit DEVICE``) and runs :mod:`ttaccel.synth`, which writes the resource report
(``utilization.json``), the generated Verilog and the Vivado 2022.2 scripts for the PYNQ-Z2
overlay (:mod:`ttaccel.hw.vivado`).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``ttaccel synth`` with ``argv`` (default: the command line)."""
    from ttaccel.cli import main as cli_main

    return cli_main(["synth", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
