"""Pack and unpack Amaranth payloads to and from plain integers, for testbenches.

Amaranth flattens a struct payload into one vector, LSB-first in declaration order, and an
``ArrayLayout`` with lane 0 in the low bits. These helpers read the offsets from the same
layout object the hardware uses, so a testbench never hand-slices bits.

Values: a dict for a ``StructLayout``, a sequence for an ``ArrayLayout``, an ``int`` (or an
``amaranth.lib.enum`` member) for a plain shape.
"""

from __future__ import annotations

import enum as py_enum

from amaranth import Shape
from amaranth.lib import data

__all__ = ["pack", "unpack", "width"]


def width(shape) -> int:
    """Bits of a shape or layout."""
    return Shape.cast(shape).width


def pack(shape, value) -> int:
    """``value`` laid out as ``shape``, as a non-negative integer of ``width(shape)`` bits."""
    if isinstance(shape, data.StructLayout):
        out = 0
        for name, field in shape:
            out |= pack(field.shape, value[name]) << field.offset
        return out
    if isinstance(shape, data.ArrayLayout):
        if len(value) != shape.length:
            raise ValueError(f"expected {shape.length} lanes, not {len(value)}")
        step = width(shape.elem_shape)
        out = 0
        for index, item in enumerate(value):
            out |= pack(shape.elem_shape, item) << (index * step)
        return out
    if isinstance(value, py_enum.Enum):
        value = value.value
    cast = Shape.cast(shape)
    value = int(value)
    lo = -(1 << (cast.width - 1)) if cast.signed else 0
    hi = (1 << (cast.width - (1 if cast.signed else 0))) - 1
    if not lo <= value <= hi:
        raise ValueError(f"{value} does not fit {cast}")
    return value & ((1 << cast.width) - 1)


def unpack(shape, bits: int):
    """Inverse of :func:`pack`: signed fields come back sign-extended."""
    if isinstance(shape, data.StructLayout):
        return {name: unpack(field.shape, bits >> field.offset) for name, field in shape}
    if isinstance(shape, data.ArrayLayout):
        step = width(shape.elem_shape)
        return [unpack(shape.elem_shape, bits >> (k * step)) for k in range(shape.length)]
    cast = Shape.cast(shape)
    raw = bits & ((1 << cast.width) - 1)
    if cast.signed and raw >> (cast.width - 1):
        raw -= 1 << cast.width
    return raw
