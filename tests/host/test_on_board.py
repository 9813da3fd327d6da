"""On a real PYNQ-Z2: a program through the pynq backend equals the golden model.

Skipped unless pytest gets ``--board OVERLAY.bit`` (or ``TTACCEL_BOARD_OVERLAY``). Run on the
board (docs/board.md), as root, with pytest installed beside ttaccel[board]::

    python -m pytest tests/host/test_on_board.py --board /home/xilinx/ttaccel/ttaccel.bit

Never run here: there is no board on the development machines.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from ttaccel.host.driver import Accelerator
from ttaccel.host.pynq_board import PynqDevice

sys.path.insert(0, str(Path(__file__).resolve().parent))
from board_programs import dense_case

pytestmark = pytest.mark.board


@pytest.fixture(scope="module")
def accelerator(request):
    device = PynqDevice(request.config.getoption("--board"))
    yield Accelerator(device, timeout_s=10.0)
    device.close()


@pytest.mark.parametrize("seed", [1, 2])
def test_a_dense_layer_on_the_board_equals_the_golden_model(accelerator, seed):
    # The configuration comes from the bitstream's CONFIG_* registers; the layer is compiled
    # for it, so any generated array size works.
    case = dense_case(seed, accelerator.config, m=48, n=24, tokens=40)
    result = accelerator.run(case.program, case.data, case.layer.output_beats)
    np.testing.assert_array_equal(case.layer.decode_output(result.output), case.expected)
    assert result.counters.macs_issued > 0
    assert result.counters.instructions == len(case.program)
