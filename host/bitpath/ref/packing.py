"""Packing of b-bit values into bytes, and the nested weight view.

Values are packed LSB first into rows that start on a byte boundary (docs/integer-semantics.md)::

    b = 8:  byte k = | v[k] |
    b = 4:  byte k = | v[2k+1] (bits 7..4) | v[2k] (bits 3..0) |
    b = 2:  byte k = | v[4k+3] (7..6) | v[4k+2] (5..4) | v[4k+1] (3..2) | v[4k] (1..0) |

The last axis of the array is the row; padding bits at the end of a row are zero.
"""

from __future__ import annotations

import numpy as np

from bitpath.ref.formats import WEIGHT_BITS, value_range

_PACK_BITS = (2, 4, 8)


def row_bytes(n: int, bits: int) -> int:
    """Bytes one row of ``n`` values takes at ``bits`` bits.

    >>> row_bytes(5, 2)
    2
    """
    return (n * bits + 7) // 8


def _check_bits(bits: int) -> None:
    if bits not in _PACK_BITS:
        raise ValueError(f"bits must be one of {_PACK_BITS}, got {bits}")


def pack(values: np.ndarray, bits: int, signed: bool) -> np.ndarray:
    """Pack integers along the last axis into uint8 rows.

    Args:
        values: integer array; the last axis is one row.
        bits: 2, 4 or 8.
        signed: whether values are two's complement ``bits``-bit integers.

    Returns:
        uint8 array of shape ``values.shape[:-1] + (row_bytes(n, bits),)``.

    >>> pack(np.array([1, 2, 3, -1]), 4, True).tolist()
    [33, 243]
    """
    _check_bits(bits)
    v = np.asarray(values)
    if not np.issubdtype(v.dtype, np.integer):
        raise ValueError(f"values must be integers, got dtype {v.dtype}")
    lo, hi = value_range(bits, signed)
    if v.size and (v.min() < lo or v.max() > hi):
        raise ValueError(f"values outside [{lo}, {hi}] for {bits}-bit {'signed' if signed else 'unsigned'}")
    n = v.shape[-1]
    per = 8 // bits
    nb = row_bytes(n, bits)
    codes = (v.astype(np.int64) & ((1 << bits) - 1)).astype(np.uint8)
    padded = np.zeros(v.shape[:-1] + (nb * per,), dtype=np.uint8)
    padded[..., :n] = codes
    grouped = padded.reshape(v.shape[:-1] + (nb, per))
    shifts = (np.arange(per, dtype=np.uint8) * bits).astype(np.uint8)
    return np.bitwise_or.reduce(grouped << shifts, axis=-1).astype(np.uint8)


def unpack(packed: np.ndarray, bits: int, signed: bool, n: int) -> np.ndarray:
    """Inverse of :func:`pack`: read ``n`` values per row.

    >>> unpack(np.array([33, 243], dtype=np.uint8), 4, True, 4).tolist()
    [1, 2, 3, -1]
    """
    _check_bits(bits)
    p = np.asarray(packed, dtype=np.uint8)
    per = 8 // bits
    if p.shape[-1] != row_bytes(n, bits):
        raise ValueError(f"packed rows have {p.shape[-1]} bytes, expected {row_bytes(n, bits)} for {n} values")
    shifts = (np.arange(per, dtype=np.uint8) * bits).astype(np.uint8)
    codes = ((p[..., None] >> shifts) & ((1 << bits) - 1)).reshape(p.shape[:-1] + (-1,))[..., :n]
    out = codes.astype(np.int64)
    if signed:
        out = np.where(out >= (1 << (bits - 1)), out - (1 << bits), out)
    return out


def weight_view(codes: np.ndarray, stored: int, view: int, round: bool = False) -> np.ndarray:
    """The ``view``-bit nested view of weights stored at ``stored`` bits (C: ``bp_view``).

    With ``k = stored - view``: floor, ``q >> k`` (the top bits, arithmetic shift), or, with
    ``round``, ``min(q + 2**(k-1), 2**(stored-1) - 1) >> k``: round half up to the view's grid,
    saturated so that the largest codes stay inside the view's range instead of wrapping.

    >>> weight_view(np.array([-77, 77, -128, 127]), 8, 4).tolist()
    [-5, 4, -8, 7]
    >>> weight_view(np.array([-77, 77, -128, 127]), 8, 2).tolist()
    [-2, 1, -2, 1]
    >>> weight_view(np.array([-77, 77, -128, 127, 119, 120]), 8, 4, round=True).tolist()
    [-5, 5, -8, 7, 7, 7]
    >>> weight_view(np.array([-77, 77, -128, 95, 96]), 8, 2, round=True).tolist()
    [-1, 1, -2, 1, 1]
    """
    if stored not in WEIGHT_BITS or view not in WEIGHT_BITS or view > stored:
        raise ValueError(f"need view <= stored, both in {WEIGHT_BITS}; got stored={stored}, view={view}")
    c = np.asarray(codes).astype(np.int64)
    lo, hi = value_range(stored, True)
    if c.size and (c.min() < lo or c.max() > hi):
        raise ValueError(f"weight codes outside [{lo}, {hi}] for {stored}-bit storage")
    k = stored - view
    if round and k > 0:
        return np.minimum(c + (1 << (k - 1)), hi) >> k
    return c >> k
