"""Run single kernel calls on the emulated board's kernel-test firmware (firmware/ktest).

Each function takes the same arguments as its twin in bitpath.ref.ops, packs the operands the way
the firmware stores them, sends one `k` case and returns the unpacked result, so a test
compares the board's kernels (DSP variants on the Cortex-M4) with numpy in one line. The case bytes
travel PackBits-compressed and base64-encoded (firmware/ktest/ktest.c says why).
"""

from __future__ import annotations

import base64
import struct

import numpy as np

from bitpath.ckernels.build import VARIANTS  # noqa: F401  (documents that the board runs the dsp variant)
from bitpath.codegen.plan import conv_scratch_bytes
from bitpath.ref.formats import ActFormat, LayerQuant, Window
from bitpath.ref.packing import pack, row_bytes, unpack

HDR = 64
OPS = {"conv2d": 0, "depthwise_conv2d": 1, "fully_connected": 2, "max_pool2d": 3}


def packbits(data: bytes) -> bytes:
    """PackBits (TIFF 6.0, section 9): runs of 2-128 equal bytes as (1 - n, byte), everything else as
    literal records (n - 1, n bytes), n <= 128. Runs of two are only taken between runs or at the
    ends, where they cost no more than the literal they would split."""
    out = bytearray()
    lit = bytearray()

    def flush() -> None:
        for i in range(0, len(lit), 128):
            chunk = lit[i : i + 128]
            out.append(len(chunk) - 1)
            out.extend(chunk)
        lit.clear()

    i, n = 0, len(data)
    while i < n:
        j = i + 1
        while j < n and j - i < 128 and data[j] == data[i]:
            j += 1
        if j - i >= 3 or (j - i == 2 and not lit):
            flush()
            out.extend(((1 - (j - i)) & 0xFF, data[i]))
        else:
            lit.extend(data[i:j])
        i = j
    flush()
    return bytes(out)


def encode_case(payload: bytes) -> str:
    """The `k` command's text for one case (without the terminating %)."""
    return "k " + base64.b64encode(packbits(payload)).decode("ascii")


class BoardError(RuntimeError):
    """The firmware answered with a non-zero status or an error line."""

    def __init__(self, status: int) -> None:
        self.status = status
        super().__init__(f"kernel status {status}")


class Board:
    """A connected kernel-test firmware (`bitpath.device.client.Client` over its URL)."""

    def __init__(self, client) -> None:
        self.dev = client

    def _call(self, hdr: dict[int, int], blobs: list[bytes], ints: list[np.ndarray], out_bytes: int) -> bytes:
        words = [0] * HDR
        for k, v in hdr.items():
            words[k] = int(v)
        words[35], words[36], words[37] = (len(b) for b in blobs)
        words[38] = out_bytes
        words[34] = len(ints[0]) if ints else 0
        payload = struct.pack(f"<{HDR}i", *words) + b"".join(blobs)
        for a in ints:
            payload += np.asarray(a, dtype="<i4").tobytes()
        reply = self.dev.send(encode_case(payload), timeout=30.0)
        if reply.errors:
            raise RuntimeError(f"firmware refused the case: {reply.errors}")
        status = next(int(ln[len("m-status-"):]) for ln in reply.lines if ln.startswith("m-status-"))
        if status != 0:
            raise BoardError(status)
        hexout = next(ln[len("m-out-"):] for ln in reply.lines if ln.startswith("m-out-"))
        return bytes.fromhex(hexout)

    @staticmethod
    def _quant_words(q: LayerQuant) -> dict[int, int]:
        lo, hi = q.clamp if q.out.bits != 32 else (0, 0)
        vals = [q.inp.bits, int(q.inp.signed), q.out.bits, int(q.out.signed), q.w_stored, q.w_view, lo, hi]
        return {19 + i: v for i, v in enumerate(vals)} | {45: int(q.w_round)}

    @staticmethod
    def _win_words(win: Window) -> dict[int, int]:
        vals = [win.stride_h, win.stride_w, win.pad_top, win.pad_bottom, win.pad_left, win.pad_right]
        return {13 + i: v for i, v in enumerate(vals)}

    @staticmethod
    def _out(raw: bytes, rows: int, n: int, fmt: ActFormat) -> np.ndarray:
        if fmt.bits == 32:
            return np.frombuffer(raw, dtype="<i4").astype(np.int64).reshape(rows, n)
        return unpack(np.frombuffer(raw, dtype=np.uint8).reshape(rows, row_bytes(n, fmt.bits)), fmt.bits, fmt.signed, n)

    @staticmethod
    def _out_bytes(rows: int, n: int, fmt: ActFormat) -> int:
        return rows * (4 * n if fmt.bits == 32 else row_bytes(n, fmt.bits))

    def _requant(self, q: LayerQuant, bias, mult, shift, n: int) -> list[np.ndarray]:
        if q.out.bits == 32:
            return [np.asarray(bias), np.zeros(n), np.zeros(n)]
        return [np.asarray(bias), np.asarray(mult), np.asarray(shift)]

    def conv2d(self, x, w, bias, mult, shift, q: LayerQuant, win: Window = Window()) -> np.ndarray:
        h, wd, c = x.shape
        cout, kh, kw, _ = w.shape
        oh, ow = win.out_size(h, wd, kh, kw)
        hdr = {0: OPS["conv2d"], 1: 1, 2: h, 3: wd, 4: c, 5: cout, 6: kh, 7: kw, 8: c, 9: 1, 10: oh, 11: ow, 12: cout,
               39: conv_scratch_bytes(kh, kw, c), **self._win_words(win), **self._quant_words(q)}
        blobs = [pack(np.asarray(x).reshape(h * wd, c), q.inp.bits, q.inp.signed).tobytes(),
                 pack(np.asarray(w).reshape(cout, -1), q.w_stored, True).tobytes(), b""]
        raw = self._call(hdr, blobs, self._requant(q, bias, mult, shift, cout), self._out_bytes(oh * ow, cout, q.out))
        return self._out(raw, oh * ow, cout, q.out).reshape(oh, ow, cout)

    def depthwise_conv2d(self, x, w, bias, mult, shift, q: LayerQuant, win: Window = Window()) -> np.ndarray:
        h, wd, c = x.shape
        kh, kw, _ = w.shape
        oh, ow = win.out_size(h, wd, kh, kw)
        hdr = {0: OPS["depthwise_conv2d"], 1: 1, 2: h, 3: wd, 4: c, 5: 1, 6: kh, 7: kw, 8: c, 9: 1, 10: oh, 11: ow,
               12: c, **self._win_words(win), **self._quant_words(q)}
        blobs = [pack(np.asarray(x).reshape(h * wd, c), q.inp.bits, q.inp.signed).tobytes(),
                 pack(np.asarray(w).reshape(kh * kw, c), q.w_stored, True).tobytes(), b""]
        raw = self._call(hdr, blobs, self._requant(q, bias, mult, shift, c), self._out_bytes(oh * ow, c, q.out))
        return self._out(raw, oh * ow, c, q.out).reshape(oh, ow, c)

    def fully_connected(self, x, w, bias, mult, shift, q: LayerQuant) -> np.ndarray:
        cout, cin = w.shape
        hdr = {0: OPS["fully_connected"], 40: 1, 41: cin, 42: cout, **self._quant_words(q)}
        blobs = [pack(np.asarray(x)[None, :], q.inp.bits, q.inp.signed).tobytes(),
                 pack(np.asarray(w), q.w_stored, True).tobytes(), b""]
        raw = self._call(hdr, blobs, self._requant(q, bias, mult, shift, cout), self._out_bytes(1, cout, q.out))
        return self._out(raw, 1, cout, q.out)[0]

    def max_pool2d(self, x, fmt: ActFormat, kh: int, kw: int, win: Window = Window()) -> np.ndarray:
        h, wd, c = x.shape
        oh, ow = win.out_size(h, wd, kh, kw)
        hdr = {0: OPS["max_pool2d"], 1: 1, 2: h, 3: wd, 4: c, 9: 1, 10: oh, 11: ow, 12: c, 19: fmt.bits,
               20: int(fmt.signed), 27: kh, 28: kw, **self._win_words(win)}
        blobs = [pack(np.asarray(x).reshape(h * wd, c), fmt.bits, fmt.signed).tobytes(), b"", b""]
        raw = self._call(hdr, blobs, [], self._out_bytes(oh * ow, c, fmt))
        return self._out(raw, oh * ow, c, fmt).reshape(oh, ow, c)
