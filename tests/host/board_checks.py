"""Checks of the pynq backend against the real pynq package, run in the board venv.

``build/venv-board/bin/python -W error tests/host/board_checks.py CHECK [options]`` prints one
JSON object on stdout (and exits non-zero with a traceback on failure); ``test_pynq_board.py``
runs each check in a subprocess from the development venv and compares what it prints with
runs there. This venv has pynq 4.0.0 + NumPy 1.26 and ttaccel installed without extras: no
torch, no Amaranth, no pytest.

Checks: ``run`` (programs through ``PynqDevice`` and PYNQ's ``DMA`` on the stand-in board),
``limit`` (a transfer over the DMA's length register is refused), ``timeout`` (a hang: the
driver's time-out report and recovery), ``cache`` (cacheable buffers, and a missing invalidate
caught), ``order`` (the stand-in catches a send started before the receive), ``open`` (the
constructor's overlay path with a stand-in ``Overlay``), ``bert`` (one
sentence through the whole BERT path), ``reference`` (``ttaccel.host`` runs its reference
backend, and ``ttaccel infer --backend reference`` its CLI, with NumPy alone).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
# pynq says so at import on x86 (its GPIO class); every other warning stays an error (-W error).
warnings.filterwarnings("ignore", "Pynq does not support the CPU", ResourceWarning)

import pynq  # noqa: E402
from board_programs import SIM_CONFIG, dense_case, good_modules, hwh_text  # noqa: E402
from pynq_standin import OverlayStandIn, StandInBoard  # noqa: E402

from ttaccel.host.device import DeviceError  # noqa: E402
from ttaccel.host.driver import Accelerator, AcceleratorTimeout  # noqa: E402
from ttaccel.host.pynq_board import PynqDevice  # noqa: E402
from ttaccel.host.reference import ReferenceDevice  # noqa: E402
from ttaccel.spec.isa import encode_program  # noqa: E402


def _backend(args):
    if args.backend == "sim":
        from ttaccel.host.sim import SimDevice

        return SimDevice(args.library)
    return ReferenceDevice(SIM_CONFIG)


def _board(args, *, length_width: int = 26, cacheable: bool = False):
    board = StandInBoard(_backend(args))
    device = PynqDevice.from_ip_dict(board.ip_dict(length_width), cacheable=cacheable)
    return board, device


def _hex(beats: np.ndarray) -> list[str]:
    return [f"{int(b):016x}" for b in np.asarray(beats, dtype=np.uint64)]


def _run_case(accelerator: Accelerator, seed: int, **sizes) -> dict:
    case = dense_case(seed, accelerator.config, **sizes)  # the config the registers report
    result = accelerator.run(case.program, case.data, case.layer.output_beats)
    decoded = case.layer.decode_output(result.output)
    return {
        "seed": seed,
        "sizes": sizes,
        "output": _hex(result.output),
        "matches_golden": bool(np.array_equal(decoded, case.expected)),
        "macs_issued": result.counters.macs_issued,
    }


def check_run(args) -> dict:
    """Two runs of one size and one larger run (the buffers grow once) through PynqDevice."""
    board, device = _board(args, cacheable=args.cacheable)
    with device:
        accelerator = Accelerator(device)
        runs = [_run_case(accelerator, seed) for seed in args.seeds]
        runs.append(_run_case(accelerator, args.seeds[0] + 100, m=48, n=24, tokens=96))
        state = device.transfer_state()
    return {
        "runs": runs,
        "accel_writes": board.accel_writes,
        "violations": board.violations,
        "allocations": board.allocations,
        "flushes": len(board.flushes),
        "invalidates": len(board.invalidates),
        "extra": state.extra,
        "buffers_after_close": len(device._buffers),
    }


def check_limit(args) -> dict:
    """A DMA with a 10-bit length register (1023 bytes): a longer input and a longer output
    are refused before anything is written; a short transfer still goes through."""
    board, device = _board(args, length_width=10)
    messages = {}
    for name, send, receive in (("input", 128, 1), ("output", 4, 128)):
        writes = len(board.accel_writes)
        try:
            device.start_transfers(np.zeros(send, np.uint64), receive)
        except DeviceError as error:
            messages[name] = str(error)
        assert len(board.accel_writes) == writes
    accelerator = Accelerator(device)
    small = _run_case(accelerator, 1, m=4, n=4, tokens=1)
    return {"messages": messages, "small": small, "violations": board.violations}


def check_timeout(args) -> dict:
    """Arm one output beat too few: the engine back-pressures, the driver's deadline fires
    with a dump carrying both DMA status registers, and after its recovery (the DMA stopped
    and restarted, the engine soft-reset) the same program runs correctly."""
    board, device = _board(args)
    accelerator = Accelerator(device, timeout_s=1.0)
    case = dense_case(3)
    try:
        accelerator.run(case.program, case.data, case.layer.output_beats - 1)
    except AcceleratorTimeout as error:
        report, dump = str(error), error.dump
    else:
        raise AssertionError("a run with a short output transfer finished")
    try:
        again = _run_case(accelerator, 3)
    except AcceleratorTimeout as error:
        again = {"matches_golden": False, "error": str(error)}
    return {
        "report": report,
        "backend_status": {k: int(v) for k, v in dump.get("backend status", {}).items()},
        "again": again,
        "violations": board.violations,
    }


def check_cache(args) -> dict:
    """Cacheable buffers: correct with PynqDevice's flush and invalidate; with invalidate
    made a no-op on the stand-in, the output read back is stale (shows the check bites)."""
    results = {}
    for variant in ("intact", "no-invalidate"):
        board, device = _board(args, cacheable=True)
        if variant == "no-invalidate":
            board.invalidate = lambda bo, offset, vaddr, length: None
        results[variant] = _run_case(Accelerator(device), 5)
        results[variant]["flushes"] = len(board.flushes)
        results[variant]["invalidates"] = len(board.invalidates)
    return results


def check_order(args) -> dict:
    """PYNQ's DMA channels used in the wrong order (send first): the stand-in records it."""
    board, device = _board(args)
    case = dense_case(1, Accelerator(device).config)
    stream = np.concatenate([encode_program(case.program), case.data])
    send = pynq.allocate(shape=(stream.size,), dtype=np.uint64, target=board)
    receive = pynq.allocate(shape=(case.layer.output_beats,), dtype=np.uint64, target=board)
    send[:] = stream
    device._dma.sendchannel.transfer(send)
    device._dma.recvchannel.transfer(receive)
    return {"violations": board.violations}


def check_bert(args) -> dict:
    """One sentence through the bundled artifact's whole BERT path (tokenizer, DeviceBert)
    with its TT linears on PynqDevice over the stand-in board; logits as float32 bit
    patterns, so the caller compares them exactly."""
    from ttaccel.demo import BUNDLED_ARTIFACT
    from ttaccel.host.bert import DeviceBert
    from ttaccel.host.tokenizer import tokenizer_from_artifact
    from ttaccel.spec.artifact import load_artifact

    artifact = load_artifact(BUNDLED_ARTIFACT)
    ids = list(tokenizer_from_artifact(artifact).encode(args.text).ids)
    board, device = _board(args)
    with device:
        bert = DeviceBert(artifact, Accelerator(device, timeout_s=600))
        logits = np.asarray(bert.logits([ids]), dtype=np.float32)
    return {
        "ids": ids,
        "logits_bits": logits.view(np.uint32).tolist(),
        "programs": len(bert.linears.records),
        "violations": board.violations,
        "allocations": board.allocations,
    }


def check_open(args) -> dict:
    """``PynqDevice(path)`` as on the board, with ``pynq.Overlay`` replaced by
    :class:`OverlayStandIn`: the .bit/.hwh checks, the driver binding through PYNQ's registry,
    a run; and a .hwh naming another accelerator version is refused before Overlay is made."""
    import tempfile

    folder = Path(tempfile.mkdtemp())
    (folder / "ttaccel.bit").write_bytes(b"")
    (folder / "ttaccel.hwh").write_text(hwh_text(good_modules()))
    with warnings.catch_warnings():  # pynq warns "No devices found" before it raises
        warnings.simplefilter("ignore", UserWarning)
        try:
            PynqDevice(folder / "ttaccel.bit", download=False)  # the real Overlay, on x86
            off_board = ""
        except DeviceError as error:
            off_board = str(error)
    board = StandInBoard(_backend(args))
    made = []

    def overlay(bitfile, download=True):
        made.append(download)
        return OverlayStandIn(board, bitfile, download)

    pynq.Overlay = overlay
    with PynqDevice(folder / "ttaccel.bit", download=False) as device:
        driver = type(device._accel).__name__
        run = _run_case(Accelerator(device), 4)
    modules = [(n, v.rsplit(":", 1)[0] + ":9.9" if n == "accel" else v, p)
               for n, v, p in good_modules()]  # fmt: skip
    (folder / "ttaccel.hwh").write_text(hwh_text(modules))
    try:
        PynqDevice(folder / "ttaccel.hwh")
        refused = ""
    except DeviceError as error:
        refused = str(error)
    return {"driver": driver, "overlays": made, "run": run, "refused": refused,
            "off_board": off_board}  # fmt: skip


def check_reference(args) -> dict:
    """ttaccel.host with NumPy alone: the reference backend runs a layer."""
    import contextlib
    import io

    from ttaccel.cli import main

    accelerator = Accelerator(ReferenceDevice(SIM_CONFIG))
    run = _run_case(accelerator, 7)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        status = main(["infer", "--backend", "reference", "a gorgeous , witty film"])
    return {
        "run": run,
        "infer": {"status": status, "printed": printed.getvalue()},
        "numpy": np.__version__,
        "forbidden_found": [
            m for m in ("torch", "amaranth", "pytest") if importlib.util.find_spec(m)
        ],
        "pynq": __import__("pynq").__version__,
    }


CHECKS = {
    "run": check_run,
    "limit": check_limit,
    "timeout": check_timeout,
    "cache": check_cache,
    "order": check_order,
    "bert": check_bert,
    "open": check_open,
    "reference": check_reference,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("check", choices=sorted(CHECKS))
    parser.add_argument("--backend", choices=("sim", "reference"), default="reference")
    parser.add_argument("--library", help="libsimboard .so for --backend sim")
    parser.add_argument("--seeds", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2])
    parser.add_argument("--cacheable", action="store_true")
    parser.add_argument("--text", default="a gorgeous , witty film", help="bert: the sentence")
    args = parser.parse_args()
    print(json.dumps(CHECKS[args.check](args)))


if __name__ == "__main__":
    main()
