"""Random and extreme stimulus for the datapath tests, in the spec's number formats."""

from __future__ import annotations

import numpy as np

from ttaccel.spec.formats import BINARY, INT8, NumberFormat

__all__ = ["encode_weight", "random_activations", "random_codes"]


def random_codes(
    rng: np.random.Generator, fmt: NumberFormat, shape, *, extreme: float = 0.2
) -> np.ndarray:
    """Legal codes of ``fmt``: uniform, with a fraction ``extreme`` set to qmin or qmax."""
    if fmt == BINARY:
        return rng.choice(np.array([-1, 1]), size=shape).astype(np.int64)
    codes = rng.integers(fmt.qmin, fmt.qmax + 1, size=shape)
    edge = rng.random(shape) < extreme
    codes[edge] = rng.choice(np.array([fmt.qmin, fmt.qmax]), size=int(edge.sum()))
    return codes.astype(np.int64)


def random_activations(rng: np.random.Generator, shape, *, extreme: float = 0.2) -> np.ndarray:
    """int8 activation codes, a fraction ``extreme`` of them -128 or 127."""
    return random_codes(rng, INT8, shape, extreme=extreme)


def encode_weight(fmt: NumberFormat, code: int) -> int:
    """A weight code as the hardware lane holds it (binary: bit 1 is +1, bit 0 is -1)."""
    if fmt == BINARY:
        return 1 if code > 0 else 0
    return int(code)
