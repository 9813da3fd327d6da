"""N:M semi-structured sparsity (seed 002, NxMiFormer): the compressed layout and its checks.

An N:M sparse weight keeps at most ``n`` nonzero codes in every group of ``m`` consecutive
weights along the **input** (reduction) dimension of a linear layer. For a layer with
``in_features = K`` inputs and ``out_features`` outputs, output row ``o`` (the weights that
produce output feature ``o``: PyTorch's ``Linear.weight[o, :]``, the spec's ``W[:, o]``) is cut
into ``G = K / m`` groups; group ``g`` covers inputs ``g*m .. g*m + m - 1``.

Compressed form (the order a weight buffer streams, and the artifact's)
    ``values``  int8 codes, shape ``(out_features, G, n)``: the kept weight codes of each group;
    ``indices`` uint8, shape ``(out_features, G, n)``: each kept value's position ``0 .. m-1``
    inside its group, strictly ascending within a group.
    Flattened in C order this is: output row 0's group 0 (its ``n`` values / indices), group 1,
    ..., then output row 1, and so on. A group with fewer than ``n`` nonzero codes is padded with
    zero values at its lowest unused positions, so every group has exactly ``n`` entries and the
    compressed form of a weight is unique (:func:`nm_compress` of :func:`nm_expand` gives the
    same arrays back when they are in this canonical form).

Index packing (:func:`pack_indices`)
    ``log2(m)`` bits per index, one continuous little-endian bit stream: index ``j`` (C order
    above) occupies bits ``[j*b, (j+1)*b)`` of the stream, bit ``t`` of the stream being bit
    ``t mod 8`` of byte ``t div 8``; the tail is zero. For ``b`` dividing 8 (``m`` = 2, 4, 16)
    this is exactly :mod:`.packing`'s lane order (index 0 in the low bits of byte 0); for
    ``m = 8`` (3 bits) an index may straddle two bytes.

The dense weight is recovered by :func:`nm_expand` (zeros at the pruned positions). That is the
one decompression step the golden model uses, and the host where the engine has no sparse
GEMM mode (an N:M layer then runs as the dense layer it expands to). This compressed form is
the only definition of an N:M weight: the engine's sparse WBUF lanes are derived from it by
:func:`ttaccel.spec.compiler.nm_wbuf_lanes` (the same arrays, transposed to the engine's
``(reduction, column)`` order), never compressed a second way.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "NM_GROUP_SIZES",
    "NMPatternError",
    "check_nm",
    "index_bits",
    "indices_nbytes",
    "nm_compress",
    "nm_expand",
    "nm_magnitude_mask",
    "pack_indices",
    "parse_nm",
    "unpack_indices",
]


class NMPatternError(ValueError):
    """A weight that does not follow the N:M pattern asked for (the message names the tensor,
    the output row and the input group)."""


NM_GROUP_SIZES = (2, 4, 8, 16)
"""The group sizes ``m`` the format takes: powers of two, so an index is ``log2(m)`` bits."""


def check_nm(n: int, m: int, *, name: str = "N:M pattern") -> tuple[int, int]:
    """Validate an N:M pattern: ``m`` in :data:`NM_GROUP_SIZES` and ``1 <= n <= m``. Returns
    ``(n, m)`` as ints; raises ValueError naming ``name`` otherwise."""
    for v in (n, m):
        if isinstance(v, bool) or not isinstance(v, int | np.integer):
            raise ValueError(f"{name}: n and m must be integers, not {n!r}:{m!r}")
    n, m = int(n), int(m)
    if m not in NM_GROUP_SIZES:
        raise ValueError(
            f"{name}: group size m must be one of {list(NM_GROUP_SIZES)} (a power of two: "
            f"log2(m) index bits), not {m}"
        )
    if not 1 <= n <= m:
        raise ValueError(f"{name}: n must be in 1..{m} for m = {m}, not {n}")
    return n, m


def parse_nm(text: str | tuple | list, *, name: str = "N:M pattern") -> tuple[int, int]:
    """``"2:4"`` or ``[2, 4]`` -> ``(2, 4)``, validated by :func:`check_nm`."""
    if isinstance(text, str):
        parts = text.split(":")
        try:
            n, m = (int(p) for p in parts) if len(parts) == 2 else (None, None)
        except ValueError:
            n = m = None
        if n is None:
            raise ValueError(f"{name}: expected 'N:M' such as '2:4', not {text!r}")
        return check_nm(n, m, name=name)
    if isinstance(text, list | tuple) and len(text) == 2:
        return check_nm(text[0], text[1], name=name)
    raise ValueError(f"{name}: expected 'N:M' such as '2:4' or [N, M], not {text!r}")


def index_bits(m: int) -> int:
    """Bits per stored index: ``log2(m)``."""
    check_nm(1, m)
    return int(math.log2(m))


def indices_nbytes(count: int, m: int) -> int:
    """Bytes of ``count`` packed indices of group size ``m`` (last byte zero padded)."""
    return -(-count * index_bits(m) // 8)


def _groups(weight_codes: np.ndarray, m: int, name: str) -> np.ndarray:
    w = np.asarray(weight_codes)
    if w.ndim != 2:
        raise ValueError(
            f"{name}: expected a 2-D (out_features, in_features) weight, not {w.shape}"
        )
    if w.shape[1] % m:
        raise NMPatternError(
            f"{name}: in_features {w.shape[1]} is not a multiple of the group size m = {m}"
        )
    return w.reshape(w.shape[0], w.shape[1] // m, m)


def nm_compress(
    weight_codes: np.ndarray, n: int, m: int, *, name: str = "weight"
) -> tuple[np.ndarray, np.ndarray]:
    """Compress integer codes ``weight_codes`` (out_features, in_features) to N:M form.

    Returns ``(values, indices)``, int8 and uint8 arrays of shape ``(out_features,
    in_features // m, n)`` in the canonical order of the module docstring (nonzero positions
    ascending, padded with the lowest zero positions). Raises :class:`NMPatternError` (a
    ValueError) naming ``name``, the output row and the input group when a group holds more
    than ``n`` nonzero codes, or when ``in_features`` is not a multiple of ``m``; ValueError for
    a weight that is not 2-D integer codes.
    """
    n, m = check_nm(n, m, name=name)
    groups = _groups(weight_codes, m, name)
    if not np.issubdtype(groups.dtype, np.integer):
        raise ValueError(f"{name}: expected integer codes, not {groups.dtype}")
    nonzero = groups != 0
    counts = nonzero.sum(-1)
    if (counts > n).any():
        row, group = (int(v[0]) for v in np.nonzero(counts > n))
        raise NMPatternError(
            f"{name} is not {n}:{m} sparse: output row {row}, input group {group} (inputs "
            f"{group * m}..{group * m + m - 1}) holds {int(counts[row, group])} nonzero codes, "
            f"more than {n}"
        )
    # Nonzeros first, then the lowest zero positions; the first n of that order, sorted.
    position = np.arange(m)
    key = np.where(nonzero, position, m + position)
    chosen = np.sort(np.argsort(key, axis=-1, kind="stable")[..., :n], axis=-1)
    values = np.take_along_axis(groups, chosen, axis=-1).astype(np.int8)
    return values, chosen.astype(np.uint8)


def nm_expand(
    values: np.ndarray, indices: np.ndarray, n: int, m: int, in_features: int, *,
    name: str = "weight",
) -> np.ndarray:  # fmt: skip
    """The dense int8 codes (out_features, in_features) of an N:M weight in compressed form.

    ``values`` (int codes) and ``indices`` (0 .. m-1, strictly ascending within each group)
    have shape ``(out_features, in_features // m, n)``, or are flat in that C order. Raises
    ValueError naming ``name`` for a shape that disagrees with ``n``, ``m`` and
    ``in_features``, an index out of range, or indices that are not strictly ascending in a
    group (a repeated position would overwrite a value).
    """
    n, m = check_nm(n, m, name=name)
    if isinstance(in_features, bool) or not isinstance(in_features, int | np.integer):
        raise ValueError(f"{name}: in_features must be an integer, not {in_features!r}")
    if in_features < m or in_features % m:
        raise ValueError(
            f"{name}: in_features {in_features} is not a positive multiple of the group size {m}"
        )
    groups = in_features // m
    values, indices = np.asarray(values), np.asarray(indices)
    if values.shape != indices.shape:
        raise ValueError(
            f"{name}: values {values.shape} and indices {indices.shape} differ in shape"
        )
    per_row = groups * n
    if values.size % per_row or (values.ndim == 3 and values.shape[1:] != (groups, n)):
        raise ValueError(
            f"{name}: values of shape {values.shape} are not (out_features, {groups}, {n}) for "
            f"{n}:{m} over {in_features} inputs"
        )
    rows = values.size // per_row
    values = values.reshape(rows, groups, n)
    indices = indices.reshape(rows, groups, n).astype(np.int64)
    if indices.size and (indices.min() < 0 or indices.max() >= m):
        flat = int(np.argmax((indices < 0) | (indices >= m)))
        row, group, slot = np.unravel_index(flat, indices.shape)
        raise ValueError(
            f"{name}: index {int(indices[row, group, slot])} out of range 0..{m - 1} at output "
            f"row {row}, group {group}, slot {slot}"
        )
    if n > 1 and (np.diff(indices, axis=-1) <= 0).any():
        row, group = (int(v[0]) for v in np.nonzero((np.diff(indices, axis=-1) <= 0).any(-1)))
        raise ValueError(
            f"{name}: indices {indices[row, group].tolist()} of output row {row}, group {group} "
            f"are not strictly ascending"
        )
    dense = np.zeros((rows, groups, m), dtype=np.int8)
    np.put_along_axis(dense, indices, values.astype(np.int8), axis=-1)
    return dense.reshape(rows, in_features)


def nm_magnitude_mask(weight: np.ndarray, n: int, m: int) -> np.ndarray:
    """Boolean mask (out_features, in_features) keeping the ``n`` largest ``|weight|`` of every
    group of ``m`` inputs (ties to the lower position): one-shot magnitude pruning, the
    reference for ``ttaccel.models.nm``'s torch version."""
    n, m = check_nm(n, m)
    groups = np.abs(_groups(np.asarray(weight, dtype=np.float64), m, "weight"))
    order = np.argsort(-groups, axis=-1, kind="stable")[..., :n]
    mask = np.zeros(groups.shape, dtype=bool)
    np.put_along_axis(mask, order, True, axis=-1)
    return mask.reshape(np.shape(weight))


def pack_indices(indices: np.ndarray, m: int) -> np.ndarray:
    """Pack indices (any shape, C order, each in ``0 .. m-1``) at ``log2(m)`` bits into a uint8
    array of :func:`indices_nbytes` bytes (the bit stream of the module docstring). Raises
    ValueError naming the first index out of range."""
    bits = index_bits(m)
    flat = np.asarray(indices).reshape(-1).astype(np.int64)
    if flat.size and (flat.min() < 0 or flat.max() >= m):
        at = int(np.argmax((flat < 0) | (flat >= m)))
        raise ValueError(f"index {int(flat[at])} at position {at} is out of range 0..{m - 1}")
    stream = ((flat[:, None] >> np.arange(bits)) & 1).astype(np.uint8).reshape(-1)
    padded = np.zeros(indices_nbytes(flat.size, m) * 8, dtype=np.uint8)
    padded[: stream.size] = stream
    return np.packbits(padded.reshape(-1, 8), axis=1, bitorder="little").reshape(-1)


def unpack_indices(data: np.ndarray, m: int, count: int) -> np.ndarray:
    """The first ``count`` indices (uint8, flat) of packed ``data``; ValueError when ``data`` is
    shorter than :func:`indices_nbytes` ``(count, m)``."""
    bits = index_bits(m)
    data = np.asarray(data, dtype=np.uint8).reshape(-1)
    need = indices_nbytes(count, m)
    if data.size < need:
        raise ValueError(f"{count} {bits}-bit indices need {need} bytes, only {data.size} given")
    stream = np.unpackbits(data[:need], bitorder="little")[: count * bits].astype(np.int64)
    return (stream.reshape(count, bits) << np.arange(bits)).sum(-1).astype(np.uint8)
