"""Max pool on packed sub-byte fields: every combination of values a 2x2 window can hold.

The DSP max pool takes the maximum of 16 unsigned 2-bit fields at once with bit logic, and of 8
unsigned 4-bit fields as two byte planes. An error in one field's logic shows only for some value
combinations, so these cases lay out all of them: for 2-bit, every 4-tuple of values (256) in the four
positions of a 2x2 window, once per channel position of a word; for 4-bit, every 4-tuple (65,536) on
the host and a random 1,024 of them on the board. The same images also go through 3x3 windows with
padding (the loop over the window's valid inputs, two words at a time)."""

from __future__ import annotations

import numpy as np
import pytest
from kernel_check import compare
from test_on_board import _check, board  # noqa: F401  (the emulated board fixture)

from bitpath.ref.formats import ActFormat, Window


def window_tuples(bits: int, c: int, tuples: np.ndarray | None = None) -> np.ndarray:
    """A (2, 2 * P, c) image whose 2x2 windows (stride 2) hold the given 4-tuples of bits-bit values
    (every tuple when None), tuple t at output pixel t // c, channel t % c."""
    n = 1 << bits
    if tuples is None:
        tuples = np.arange(n**4)
    digits = np.stack([(tuples // n**k) % n for k in range(4)], axis=-1)  # (T, 4): a, b, c, d
    pad = -len(digits) % c
    digits = np.concatenate([digits, np.zeros((pad, 4), np.int64)])
    p = len(digits) // c
    d = digits.reshape(p, c, 4)
    x = np.empty((2, 2 * p, c), np.int64)
    x[0, 0::2], x[0, 1::2], x[1, 0::2], x[1, 1::2] = d[..., 0], d[..., 1], d[..., 2], d[..., 3]
    return x


WINDOWS = ((Window(2, 2), 2), (Window(2, 2, 1, 1, 1, 1), 3), (Window(1, 1, 1, 0, 0, 1), 2))


@pytest.mark.parametrize(("bits", "c"), [(2, 16), (2, 32), (4, 8), (4, 16)])
@pytest.mark.parametrize(("win", "k"), WINDOWS)
def test_every_window_of_packed_fields(bits: int, c: int, win: Window, k: int) -> None:
    x = window_tuples(bits, c)
    got = compare("max_pool2d", x, ActFormat(bits), k, k, win)
    if k == 2 and win.stride_h == 2:  # each output is its own tuple's maximum
        assert np.array_equal(got, x.reshape(2, -1, 2, c).max(axis=(0, 2)).reshape(1, -1, c))


@pytest.mark.emulator
@pytest.mark.parametrize(("bits", "c"), [(2, 16), (4, 8)])
@pytest.mark.parametrize(("win", "k"), WINDOWS)
def test_every_window_of_packed_fields_on_board(board, bits: int, c: int, win: Window, k: int) -> None:  # noqa: F811
    tuples = None if bits == 2 else np.random.default_rng(c).integers(0, 1 << 16, 1024)
    _check(board, "max_pool2d", window_tuples(bits, c, tuples), ActFormat(bits), k, k, win)
