"""Value formats shared by the numpy reference, the cffi wrappers and the exporter."""

from __future__ import annotations

from dataclasses import dataclass

WEIGHT_BITS = (2, 4, 8)
ACT_BITS = (2, 4, 8)
LOGIT_BITS = 32
SHIFT_MIN, SHIFT_MAX = 0, 62
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


@dataclass(frozen=True)
class ActFormat:
    """An activation format: ``bits`` in {2, 4, 8} (or 32 for int32 logits) and signedness.

    >>> ActFormat(4).range
    (0, 15)
    >>> ActFormat(8, signed=True).range
    (-128, 127)
    """

    bits: int = 8
    signed: bool = False

    def __post_init__(self) -> None:
        if self.bits not in (*ACT_BITS, LOGIT_BITS):
            raise ValueError(f"activation bits must be one of {ACT_BITS} or {LOGIT_BITS}, got {self.bits}")
        if self.bits == LOGIT_BITS and not self.signed:
            raise ValueError("32-bit activations are int32 logits and must be signed")

    @property
    def range(self) -> tuple[int, int]:
        """Smallest and largest representable value."""
        return value_range(self.bits, self.signed)

    @property
    def max_abs(self) -> int:
        """Largest magnitude a value can have (for accumulator bounds)."""
        lo, hi = self.range
        return max(-lo, hi)


def value_range(bits: int, signed: bool) -> tuple[int, int]:
    """Range of a ``bits``-wide integer.

    >>> value_range(2, True)
    (-2, 1)
    """
    if signed:
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


@dataclass(frozen=True)
class LayerQuant:
    """Bit widths and output clamp of one layer on one path (C: ``bp_quant_t``).

    ``act_min``/``act_max`` default to the full range of ``out``.
    """

    inp: ActFormat = ActFormat()
    out: ActFormat = ActFormat()
    w_stored: int = 8
    w_view: int = 8
    act_min: int | None = None
    act_max: int | None = None
    w_round: bool = False  # narrow views round half up (saturated) instead of flooring; see weight_view

    def __post_init__(self) -> None:
        if not isinstance(self.w_round, bool):
            raise ValueError(f"w_round must be True or False, got {self.w_round!r}")
        if self.w_stored not in WEIGHT_BITS:
            raise ValueError(f"w_stored must be one of {WEIGHT_BITS}, got {self.w_stored}")
        if self.w_view not in WEIGHT_BITS or self.w_view > self.w_stored:
            raise ValueError(f"w_view must be one of {WEIGHT_BITS} and <= w_stored={self.w_stored}, got {self.w_view}")
        if self.inp.bits == LOGIT_BITS:
            raise ValueError("inp: a layer cannot take int32 logits as input")
        lo, hi = self.clamp
        olo, ohi = self.out.range
        if not (olo <= lo <= hi <= ohi):
            raise ValueError(f"act_min/act_max [{lo}, {hi}] must lie inside the output range [{olo}, {ohi}]")

    @property
    def clamp(self) -> tuple[int, int]:
        """The effective output clamp (act_min, act_max)."""
        olo, ohi = self.out.range
        return (olo if self.act_min is None else self.act_min, ohi if self.act_max is None else self.act_max)

    @property
    def w_max_abs(self) -> int:
        """Largest magnitude of a weight view value."""
        return 1 << (self.w_view - 1)


@dataclass(frozen=True)
class Window:
    """Stride and zero padding of a convolution or pooling window (C: ``bp_window_t``).

    >>> Window.same(3).out_size(28, 28, 3, 3)
    (28, 28)
    """

    stride_h: int = 1
    stride_w: int = 1
    pad_top: int = 0
    pad_bottom: int = 0
    pad_left: int = 0
    pad_right: int = 0

    def __post_init__(self) -> None:
        if self.stride_h < 1 or self.stride_w < 1:
            raise ValueError(f"strides must be >= 1, got ({self.stride_h}, {self.stride_w})")
        if min(self.pad_top, self.pad_bottom, self.pad_left, self.pad_right) < 0:
            raise ValueError("padding must be >= 0")

    @classmethod
    def same(cls, k: int, stride: int = 1) -> Window:
        """Symmetric padding ``k // 2`` on every side (PyTorch ``padding=k//2``)."""
        p = k // 2
        return cls(stride, stride, p, p, p, p)

    def out_size(self, h: int, w: int, kh: int, kw: int) -> tuple[int, int]:
        """Output height and width; raises ValueError when the window does not fit."""
        ph = h + self.pad_top + self.pad_bottom
        pw = w + self.pad_left + self.pad_right
        if kh < 1 or kw < 1 or kh > ph or kw > pw:
            raise ValueError(f"window {kh}x{kw} does not fit the padded input {ph}x{pw}")
        return (ph - kh) // self.stride_h + 1, (pw - kw) // self.stride_w + 1
