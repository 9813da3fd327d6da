"""The pynq backend: its overlay checks here, and its runs against the real pynq package.

The overlay checks (``.bit``/``.hwh`` present, the ``.hwh`` naming the accelerator and the AXI
DMA with the right widths) need no pynq and run in this venv on synthetic hardware handoffs.

Everything that needs pynq runs in the board venv (``build/venv-board``: pynq 4.0.0, NumPy 1.26,
no torch; ``make setup`` builds it) as ``board_checks.py CHECK`` in a subprocess: PYNQ's real
``pynq.lib.dma.DMA`` and ``DefaultIP`` drive a stand-in ``pynq.Device`` whose register window
forwards to the simulated board (the real RTL in Verilator, built here first) and which
emulates the AXI DMA's registers (``pynq_standin.py``). Its results are compared with the same
programs run here on the simulated board directly, and with the golden model.

Without the board venv these tests skip, unless ``TTACCEL_BOARD_VENV`` names it (``make test``
does): then a missing venv fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ttaccel.demo import BUNDLED_ARTIFACT
from ttaccel.host.backends import SIM_DEMO_CONFIG
from ttaccel.host.bert import DeviceBert
from ttaccel.host.device import DeviceError
from ttaccel.host.driver import Accelerator
from ttaccel.host.pynq_board import OverlayHardware, overlay_files, read_hwh
from ttaccel.host.sim import SimDevice
from ttaccel.host.sim_build import build_simboard
from ttaccel.host.tokenizer import tokenizer_from_artifact
from ttaccel.spec.artifact import load_artifact
from ttaccel.spec.inference import BertInference
from ttaccel.spec.regmap import IP_VLNV

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
from board_programs import (  # noqa: E402
    DMA,
    PS7,
    SIM_CONFIG,
    dense_case,
    dma_params,
    good_modules,
    hwh_text,
)

# -- overlay checks (no pynq) ----------------------------------------------------------------


def write_overlay(folder: Path, modules, *, bit: bool = True) -> Path:
    (folder / "ttaccel.hwh").write_text(hwh_text(modules))
    if bit:
        (folder / "ttaccel.bit").write_bytes(b"\x00" * 16)
    return folder / "ttaccel.bit"


def test_read_hwh_finds_the_accelerator_and_the_dma(tmp_path):
    hardware = read_hwh(write_overlay(tmp_path, good_modules()).with_suffix(".hwh"))
    assert hardware == OverlayHardware("accel", "dma", 26, {"S_AXI_HP0": 64})
    assert hardware.max_transfer_bytes == 2**26 - 1
    short = read_hwh(
        write_overlay(tmp_path, good_modules(C_SG_LENGTH_WIDTH="14")).with_suffix(".hwh")
    )
    assert short.max_transfer_bytes == 16383  # Vivado's default width: 16 KiB - 1


@pytest.mark.parametrize(
    ("modules", "message"),
    [
        ([m for m in good_modules() if m[0] != "accel"], f"exactly one IP with VLNV {IP_VLNV}"),
        (
            [("accel", "xilinx.com:module_ref:ttaccel_top:1.0", {}), *good_modules()[::2]],
            "xilinx.com:module_ref:ttaccel_top:1.0",
        ),
        (
            [("accel", IP_VLNV.rsplit(":", 1)[0] + ":0.1", {}), *good_modules()[::2]],
            "rebuild the overlay",
        ),
        ([*good_modules(), ("accel2", IP_VLNV, {})], "found 2"),
        ([m for m in good_modules() if m[0] != "dma"], "exactly one AXI DMA"),
        ([*good_modules(), ("dma2", DMA, dma_params())], "['dma', 'dma2']"),
        (good_modules(c_include_sg="1"), "simple mode"),
        (good_modules(c_include_s2mm="0"), "c_include_s2mm must be 1"),
        (good_modules(c_m_axi_s2mm_data_width="32"), "c_m_axi_s2mm_data_width must be 64, not 32"),
        (good_modules(C_SG_LENGTH_WIDTH="27"), "c_sg_length_width must be in [8, 26], not 27"),
        (
            [
                ("ps7", PS7, {"C_USE_S_AXI_HP0": "1", "C_S_AXI_HP0_DATA_WIDTH": "32"}),
                *good_modules()[1:],
            ],
            "{'S_AXI_HP0': 32}",
        ),
    ],
)
def test_read_hwh_names_what_is_wrong(tmp_path, modules, message):
    hwh = write_overlay(tmp_path, modules).with_suffix(".hwh")
    with pytest.raises(DeviceError, match="hardware handoff") as error:
        read_hwh(hwh)
    assert message in str(error.value)
    assert str(hwh) in str(error.value)


def test_overlay_files_name_the_missing_file(tmp_path):
    write_overlay(tmp_path, good_modules(), bit=False)
    with pytest.raises(DeviceError, match=r"bitstream .*ttaccel\.bit does not exist"):
        overlay_files(tmp_path / "ttaccel.hwh")
    (tmp_path / "ttaccel.bit").write_bytes(b"")
    (tmp_path / "ttaccel.hwh").unlink()
    with pytest.raises(DeviceError, match=r"hardware handoff .*ttaccel\.hwh does not exist"):
        overlay_files(tmp_path / "ttaccel")
    (tmp_path / "ttaccel.hwh").write_text("<EDKSYSTEM><MODULES>")
    with pytest.raises(DeviceError, match="cannot be read as XML"):
        read_hwh(tmp_path / "ttaccel.hwh")


def test_the_backend_imports_without_pynq_and_says_what_is_missing(tmp_path):
    code = (
        "import sys; import ttaccel.host.pynq_board as b; assert 'pynq' not in sys.modules\n"
        "try:\n    b.PynqDevice(sys.argv[1])\nexcept b.DeviceError as e:\n    print(e)\n"
    )
    bit = write_overlay(tmp_path, good_modules())
    found = subprocess.run([sys.executable, "-c", code, str(bit)], capture_output=True, text=True,
                           check=True).stdout  # fmt: skip
    assert "pip install ttaccel[board]" in found  # this venv has no pynq


# -- the board venv --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def board_python() -> Path:
    required = os.environ.get("TTACCEL_BOARD_VENV")
    venv = ROOT / (required or "build/venv-board")
    python = venv / "bin" / "python"
    if not python.is_file():
        if required:
            pytest.fail(f"TTACCEL_BOARD_VENV={required} but {python} does not exist: make setup")
        pytest.skip(f"no board venv at {venv}: `make setup` builds it (pynq 4.0.0, NumPy 1.26)")
    return python


@pytest.fixture(scope="module")
def library() -> Path:
    return build_simboard(SIM_CONFIG).library


def board_check(python: Path, check: str, *args: str) -> dict:
    """Run ``board_checks.py check`` in the board venv (warnings are errors there too)."""
    done = subprocess.run(
        [str(python), "-W", "error", str(HERE / "board_checks.py"), check, *args],
        capture_output=True, text=True, cwd=ROOT, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, f"board check {check} failed:\n{done.stderr[-4000:]}"
    return json.loads(done.stdout)


class RecordingSim(SimDevice):
    """The simulated board with every accelerator register write logged."""

    def __init__(self, *args, **kwargs):
        self.writes: list[list[int]] = []
        super().__init__(*args, **kwargs)

    def _write_word(self, offset: int, value: int) -> None:
        self.writes.append([offset, value & 0xFFFF_FFFF])
        super()._write_word(offset, value)


def test_pynq_backend_runs_programs_exactly_as_the_simulated_board(board_python, library):
    found = board_check(board_python, "run", "--backend", "sim", "--library", str(library),
                        "--seeds", "1,2")  # fmt: skip
    direct = RecordingSim(library)
    accelerator = Accelerator(direct)
    for run in found["runs"]:
        case = dense_case(run["seed"], accelerator.config, **run["sizes"])
        output = accelerator.run(case.program, case.data, case.layer.output_beats).output
        assert run["output"] == [f"{int(b):016x}" for b in output], run["seed"]
        np.testing.assert_array_equal(case.layer.decode_output(output), case.expected)
        assert run["matches_golden"]
    assert found["accel_writes"] == direct.writes
    assert found["violations"] == []  # S2MM armed before MM2S, no writes to a halted channel
    # Buffers: one of each at the first run, reused; the large run grows only the send buffer.
    big = dense_case(found["runs"][-1]["seed"], SIM_CONFIG, **found["runs"][-1]["sizes"])
    send_bytes = big.data.nbytes + 8 * 5 * len(big.program)
    assert found["allocations"][:2] == [4096, 4096]
    assert found["allocations"][2:] == [max(-(-send_bytes // 4096) * 4096, 2 * 4096)]
    assert send_bytes > 4096
    assert big.layer.output_beats * 8 <= 4096
    assert found["buffers_after_close"] == 0
    extra = found["extra"]
    assert extra["s2mm_transferred"] == extra["S2MM_LENGTH"] == big.layer.output_beats * 8
    assert extra["mm2s_transferred"] == send_bytes
    assert extra["MM2S_DMASR"] & 0x2 and extra["S2MM_DMASR"] & 0x2  # both idle after the run


def test_a_transfer_over_the_dma_length_limit_is_refused(board_python, library):
    found = board_check(board_python, "limit", "--backend", "sim", "--library", str(library))
    for name in ("input", "output"):
        message = found["messages"][name]
        assert "exceeds the AXI DMA's limit of 1023 bytes (c_sg_length_width=10)" in message
        assert "rebuild the overlay with c_sg_length_width=26" in message
        assert "does not split" in message
    assert found["small"]["matches_golden"]
    assert found["violations"] == []


@pytest.fixture(scope="module")
def hang(board_python, library) -> dict:
    """The ``timeout`` check on the simulated board: a run whose output transfer is armed one
    beat short, then the same program armed right."""
    return board_check(board_python, "timeout", "--backend", "sim", "--library", str(library))


def test_a_hang_times_out_with_both_dma_status_registers(hang):
    assert "did not finish" in hang["report"]
    for word in ("MM2S_DMASR", "S2MM_DMASR", "busy=1"):
        assert word in hang["report"]
    assert set(hang["backend_status"]) >= {"MM2S_DMASR", "S2MM_DMASR", "mm2s_transferred",
                                           "s2mm_transferred"}  # fmt: skip
    assert hang["backend_status"]["S2MM_DMASR"] & 0x2  # S2MM took its 11 beats and went idle
    assert hang["violations"] == []


def test_after_a_hang_the_dma_restarts_and_the_next_run_is_exact(board_python):
    # Over the reference backend the engine side recovers exactly, so this isolates the DMA's
    # stop/restart in PynqDevice.abort_transfers (the next transfers are accepted and exact).
    found = board_check(board_python, "timeout", "--backend", "reference")
    assert "MM2S_DMASR" in found["report"]
    assert found["again"]["matches_golden"]
    assert found["violations"] == []


def test_after_a_hang_the_next_run_on_the_rtl_is_exact(hang):
    assert hang["again"]["matches_golden"], hang["again"].get("error")


def test_cacheable_buffers_are_flushed_and_invalidated(board_python, library):
    found = board_check(board_python, "cache", "--backend", "sim", "--library", str(library))
    intact, broken = found["intact"], found["no-invalidate"]
    assert intact["matches_golden"] and intact["flushes"] >= 1 and intact["invalidates"] >= 1
    # The stand-in's DDR is apart from the CPU's view: without the invalidate the CPU reads
    # its stale (zeroed) copy, so this test would catch a backend that forgot it.
    assert not broken["matches_golden"]
    assert set(broken["output"]) == {"0" * 16}


def test_the_stand_in_catches_a_send_started_before_the_receive(board_python, library):
    found = board_check(board_python, "order", "--backend", "sim", "--library", str(library))
    assert found["violations"] == ["S2MM armed after MM2S had started"]


@pytest.mark.slow
def test_a_sentence_through_bert_on_the_pynq_backend_equals_the_simulated_board(board_python):
    # The bundled MiniLM-L6 artifact's cores need the demo board's buffers (8 x 8, the build
    # `make demo` and the sim backend's default use; about 2 minutes the first time).
    library = build_simboard(SIM_DEMO_CONFIG).library
    text = "a gorgeous , witty film"
    found = board_check(board_python, "bert", "--backend", "sim", "--library", str(library),
                        "--text", text)  # fmt: skip
    artifact = load_artifact(BUNDLED_ARTIFACT)
    ids = list(tokenizer_from_artifact(artifact).encode(text).ids)
    assert found["ids"] == ids
    bert = DeviceBert(artifact, Accelerator(SimDevice(library), timeout_s=600))
    direct = np.asarray(bert.logits([ids]), dtype=np.float32)
    # The board venv runs NumPy 1.26 and the dev venv NumPy 2.x: their float32 matmul / erf
    # may round the host's float steps differently in the last bits (2 ulps seen on the
    # bundled artifact), so the logits agree to 1e-5 relative, not bit for bit. The programs
    # (below) and the sim backend's logits against the golden model (bit for bit) are exact.
    board_logits = np.asarray(found["logits_bits"], dtype=np.uint32).view(np.float32)
    np.testing.assert_allclose(board_logits, direct, rtol=1e-5, atol=0)
    assert found["programs"] == len(bert.linears.records)
    golden = BertInference(artifact).logits([ids])
    np.testing.assert_array_equal(direct, golden)
    assert found["violations"] == []


def test_the_overlay_path_binds_pynq_drivers_and_refuses_another_version(board_python, library):
    found = board_check(board_python, "open", "--backend", "sim", "--library", str(library))
    assert found["driver"] == "TtaccelIP"  # PYNQ's registry chose our bindto, not DefaultIP
    assert found["overlays"] == [False]  # one Overlay, download=False passed on; none for 9.9
    assert found["run"]["matches_golden"]
    assert "ttaccel:ttaccel:ttaccel_top:9.9" in found["refused"]
    assert "rebuild the overlay" in found["refused"]
    # The real pynq.Overlay on this x86 machine: pynq's "No Devices Found", as a DeviceError.
    assert "No Devices Found" in found["off_board"] and "PYNQ-Z2" in found["off_board"]


def test_ttaccel_host_runs_its_reference_backend_with_numpy_alone(board_python):
    found = board_check(board_python, "reference")
    assert found["numpy"].startswith("1.26.")
    assert found["forbidden_found"] == []
    assert found["run"]["matches_golden"]
    assert found["infer"]["status"] == 0
    assert "cycles/sentence" in found["infer"]["printed"]  # `ttaccel infer` ran to its report
