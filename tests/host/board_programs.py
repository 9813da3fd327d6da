"""Programs and overlay descriptions shared by the pynq-backend tests in both venvs (NumPy and
ttaccel.spec only).

The development venv runs a case on the simulated board directly; the board venv
(``board_checks.py``) runs the same case through ``PynqDevice`` on the stand-in board. Both build
it from the same seed here, so they compare the same stream. :func:`hwh_text` writes synthetic
hardware handoffs for the overlay checks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ttaccel.host.sim_build import SMALL_BOARD  # stdlib + spec only at import
from ttaccel.spec.accel_config import AccelConfig
from ttaccel.spec.compiler import CompiledLayer, compile_dense
from ttaccel.spec.formats import INT8, Requant, requantize
from ttaccel.spec.golden import gemm_int
from ttaccel.spec.regmap import IP_VLNV

SIM_CONFIG = SMALL_BOARD
"""The small configuration the simulated-board tests build (one Verilator build, ~1 minute)."""


@dataclass(frozen=True)
class DenseCase:
    """A dense int8 layer compiled for ``config`` as one cold program, with its expected
    output codes from the golden model (``requantize(x @ weight + bias)``)."""

    layer: CompiledLayer
    x: np.ndarray
    expected: np.ndarray

    @property
    def program(self):
        return self.layer.cold()

    @property
    def data(self) -> np.ndarray:
        return self.layer.cold_stream(self.x)


def dense_case(seed: int, config: AccelConfig = SIM_CONFIG, *, m: int = 20, n: int = 12,
               tokens: int = 7) -> DenseCase:  # fmt: skip
    """A random dense layer (``m`` x ``n`` weights, ``tokens`` tokens) from ``seed``."""
    rng = np.random.default_rng(seed)
    weight = rng.integers(-128, 128, size=(m, n)).astype(np.int8)
    bias = rng.integers(-3000, 3000, size=n).astype(np.int32)
    x = rng.integers(-128, 128, size=(tokens, m)).astype(np.int8)
    requant = Requant(9000, 20)
    layer = compile_dense(weight, INT8, requant, tokens, config, bias)
    return DenseCase(layer, x, requantize(gemm_int(x, weight), requant, bias))


DMA = "xilinx.com:ip:axi_dma:7.1"
PS7 = "xilinx.com:ip:processing_system7:5.5"


def dma_params(**overrides) -> dict[str, str]:
    """A simple-mode 64-bit AXI DMA's parameters as a .hwh lists them."""
    params = {
        "c_include_sg": "0", "c_include_mm2s": "1", "c_include_s2mm": "1",
        "c_m_axi_mm2s_data_width": "64", "c_m_axis_mm2s_tdata_width": "64",
        "c_m_axi_s2mm_data_width": "64", "c_s_axis_s2mm_tdata_width": "64",
        "C_SG_LENGTH_WIDTH": "26",
    }  # fmt: skip
    params.update(overrides)
    return params


def hwh_text(modules: list[tuple[str, str, dict[str, str]]]) -> str:
    """A hardware handoff shaped like Vivado's (EDKSYSTEM / MODULES / MODULE / PARAMETERS)."""
    body = []
    for name, vlnv, params in modules:
        rows = "".join(f'<PARAMETER NAME="{k}" VALUE="{v}"/>' for k, v in params.items())
        body.append(
            f'<MODULE FULLNAME="/{name}" INSTANCE="{name}" VLNV="{vlnv}" '
            f'MODTYPE="{vlnv.split(":")[2]}"><PARAMETERS>{rows}</PARAMETERS></MODULE>'
        )
    return f'<?xml version="1.0"?><EDKSYSTEM><MODULES>{"".join(body)}</MODULES></EDKSYSTEM>'


def good_modules(**dma_overrides) -> list[tuple[str, str, dict[str, str]]]:
    """The PS7, the accelerator and the DMA of a correct block design (DMA parameters
    overridable)."""
    ps7 = {"C_USE_S_AXI_HP0": "1", "C_S_AXI_HP0_DATA_WIDTH": "64", "C_USE_S_AXI_HP1": "0",
           "C_S_AXI_HP1_DATA_WIDTH": "32"}  # fmt: skip
    return [("ps7", PS7, ps7), ("accel", IP_VLNV, {}), ("dma", DMA, dma_params(**dma_overrides))]
