"""Hypothesis strategies shared by the spec tests: random small TT shapes and integer layers."""

import numpy as np
from hypothesis import strategies as st

from ttaccel.spec.formats import FORMATS, Requant
from ttaccel.spec.tt import TTShape


@st.composite
def tt_shapes(draw, max_cores=4, max_mode=4, max_rank=4):
    """Random TT-matrix shapes with odd and unit modes, ranks up to ``max_rank``."""
    d = draw(st.integers(1, max_cores))
    in_modes = draw(st.lists(st.integers(1, max_mode), min_size=d, max_size=d))
    out_modes = draw(st.lists(st.integers(1, max_mode), min_size=d, max_size=d))
    inner = draw(st.lists(st.integers(1, max_rank), min_size=d - 1, max_size=d - 1))
    return TTShape(tuple(in_modes), tuple(out_modes), (1, *inner, 1))


@st.composite
def int_cores(draw, shape, fmt):
    """Integer cores of ``shape`` with codes of ``fmt``, extremes included."""
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    values = [v for v in range(fmt.qmin, fmt.qmax + 1) if fmt.has_zero or v != 0]
    extreme = draw(st.booleans())
    pool = [fmt.qmin, fmt.qmax] if extreme else values
    return [rng.choice(pool, size=s).astype(np.int8) for s in shape.core_shapes]


@st.composite
def requants(draw, out_format=FORMATS["int8"]):
    multiplier = draw(st.integers(1, 2**16 - 1))
    shift = draw(st.integers(0, 30))
    return Requant(multiplier, shift, out_format)
