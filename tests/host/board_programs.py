"""Programs shared by the pynq-backend tests in both venvs (NumPy and ttaccel.spec only).

The development venv runs a case on the simulated board directly; the board venv
(``board_checks.py``) runs the same case through ``PynqDevice`` on the stand-in board. Both build
it from the same seed here, so they compare the same stream.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ttaccel.host.sim_build import SMALL_BOARD  # stdlib + spec only at import
from ttaccel.spec.accel_config import AccelConfig
from ttaccel.spec.compiler import CompiledLayer, compile_dense
from ttaccel.spec.formats import INT8, Requant, requantize
from ttaccel.spec.golden import gemm_int

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
