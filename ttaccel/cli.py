"""The ``ttaccel`` console command.

Each subcommand lives in its own module exposing ``HELP`` (one line), ``add_arguments(parser)``
and ``run(args) -> int``. Modules keep heavy imports (torch, amaranth) inside ``run`` so that
``ttaccel --help`` is instant and the board, which has only NumPy, can run its subcommands.
Add a subcommand by adding one line to ``COMMANDS``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

__all__ = ["COMMANDS", "build_parser", "main"]

COMMANDS: dict[str, str] = {
    "demo": "ttaccel.demo",
    "svd-report": "ttaccel.svd_report",
    "generate": "ttaccel.generate",
    "synth": "ttaccel.synth",
    "train-teacher": "ttaccel.models.cmd_train_teacher",
    "compress": "ttaccel.models.cmd_compress",
    "train-nlu": "ttaccel.models.cmd_train_nlu",
    "evaluate": "ttaccel.evaluate",
    "infer": "ttaccel.infer",
    "export": "ttaccel.models.cmd_export",
    "code-stats": "ttaccel.models.code_stats",
    "nm-search": "ttaccel.models.cmd_nm_search",
}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every registered subcommand."""
    parser = argparse.ArgumentParser(
        prog="ttaccel",
        description="Tensor-train compressed, low-bit transformers on a Zynq FPGA.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        sub = subparsers.add_parser(
            name, help=module.HELP, description=module.__doc__,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )  # fmt: skip
        module.add_arguments(sub)
        sub.set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: parse ``argv`` and run the chosen subcommand; returns its exit status.

    A user error (ValueError, FileNotFoundError) is printed as one line without a traceback
    (exit 2); a device that cannot be opened or a run that failed on it (the host's
    DeviceError, AcceleratorError with its register dump) likewise, with exit 3.
    """
    from .host.device import DeviceError
    from .host.driver import AcceleratorError

    args = build_parser().parse_args(argv)
    try:
        return int(args._module.run(args) or 0)
    except (ValueError, FileNotFoundError) as error:
        print(f"ttaccel {args.command}: error: {error}", file=sys.stderr)
        return 2
    except (DeviceError, AcceleratorError) as error:
        print(f"ttaccel {args.command}: device error: {error}", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
