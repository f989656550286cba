"""Lower an IR into the runtime's layer table and plan the static activation arena, byte-exact.

Every tensor the runtime keeps in the arena gets an offset: the network input is read in place (it
is the caller's buffer) and the logits are written straight to the caller's array, so neither
takes arena space; a flatten is an alias of its input (NHWC rows are already in the order the
fully connected layer reads), and each convolution's scratch is a tensor that lives for that layer
only. Offsets come from a greedy first-fit over lifetimes (largest first), aligned to 4 bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bitpath.ir import INPUT, IR, WEIGHTED
from bitpath.ref.formats import ActFormat
from bitpath.ref.packing import row_bytes

ALIGN = 4


class CodegenError(ValueError):
    """The IR cannot be lowered to the runtime; the message names the layer."""


@dataclass
class Tensor:
    name: str
    size: int  # bytes: the largest any path needs
    first: int  # runtime layer index that writes it (scratch: the layer that uses it)
    last: int  # last runtime layer index that reads it
    offset: int = -1


@dataclass
class Step:
    """One runtime layer: a graph node that computes something (flatten is not a step)."""

    node: dict
    index: int
    inputs: list[str]  # tensor names after resolving flatten aliases
    scratch: Tensor | None = None


@dataclass
class Plan:
    steps: list[Step]
    tensors: dict[str, Tensor]
    arena_bytes: int
    formats: list[dict[str, ActFormat]]  # per path: format of every graph value
    alias: dict[str, str] = field(default_factory=dict)

    def offset(self, value: str) -> int:
        """Arena offset of a graph value (-1 for the network input, -2 for the logits)."""
        v = self.alias.get(value, value)
        if v == INPUT:
            return -1
        return self.tensors[v].offset if v in self.tensors else -2


def _formats(ir: IR, p: int) -> dict[str, ActFormat]:
    fmts = {INPUT: ActFormat(8, False)}
    nodes = ir.header["paths"][p]["nodes"]
    for node in ir.graph:
        name = node["name"]
        if node["op"] in WEIGHTED or node["op"] == "add":
            fmts[name] = ActFormat(*nodes[name]["out"])
        else:
            fmts[name] = fmts[node["inputs"][0]]
    return fmts


def _bytes(shape: tuple, fmt: ActFormat) -> int:
    if fmt.bits == 32:
        return 4 * int(np.prod(shape))
    *pixels, c = shape
    return int(np.prod(pixels, dtype=np.int64)) * row_bytes(c, fmt.bits)


def conv_scratch_bytes(kh: int, kw: int, cin: int) -> int:
    """``bp_conv2d_get_buffer_size``: two int16 patches of ceil(K/4)*4 values."""
    return 2 * ((kh * kw * cin + 3) // 4 * 4) * 2


def plan(ir: IR) -> Plan:
    """Lower ``ir`` and place every arena tensor; raises :class:`CodegenError` naming a layer."""
    formats = [_formats(ir, p) for p in range(len(ir.header["paths"]))]
    shapes = {INPUT: tuple(ir.header["input"]["shape"])}
    alias: dict[str, str] = {}
    steps: list[Step] = []
    tensors: dict[str, Tensor] = {}
    output = ir.header["output"]
    for node in ir.graph:
        name, op = node["name"], node["op"]
        shapes[name] = tuple(node["out_shape"])
        ins = [alias.get(i, i) for i in node["inputs"]]
        if op == "flatten":
            src = ins[0]
            h, w, c = shapes[node["inputs"][0]] if len(shapes[node["inputs"][0]]) == 3 else (1, 1, 0)
            for fmts in formats:
                if h * w > 1 and (c * fmts[src].bits) % 8:
                    raise CodegenError(
                        f"layer {name!r}: flattening {h}x{w}x{c} values of {fmts[src].bits} bits would leave "
                        "padding bits between pixels; give the layer before it a channel count whose "
                        f"{fmts[src].bits}-bit row fills whole bytes"
                    )
            alias[name] = src
            continue
        i = len(steps)
        step = Step(node, i, ins)
        for v in ins:
            if v in tensors:
                tensors[v].last = i
        if name != output:
            size = max(_bytes(shapes[name], fmts[name]) for fmts in formats)
            tensors[name] = Tensor(name, size, i, i)
        elif op not in WEIGHTED:
            raise CodegenError(f"layer {name!r}: the output layer must be a weighted layer producing logits")
        if op == "conv2d":
            kh, kw = node["attrs"]["kernel"]
            step.scratch = Tensor(f"{name}.scratch", conv_scratch_bytes(kh, kw, node["attrs"]["in_ch"]), i, i)
            tensors[step.scratch.name] = step.scratch
        steps.append(step)
    arena = _place(list(tensors.values()))
    return Plan(steps, tensors, arena, formats, alias)


def _place(tensors: list[Tensor]) -> int:
    placed: list[Tensor] = []
    end = 0
    for t in sorted(tensors, key=lambda t: (-t.size, t.first, t.name)):
        live = sorted(
            (u for u in placed if u.first <= t.last and t.first <= u.last), key=lambda u: u.offset
        )
        off = 0
        for u in live:
            if off + t.size <= u.offset:
                break
            off = max(off, (u.offset + u.size + ALIGN - 1) // ALIGN * ALIGN)
        t.offset = off
        placed.append(t)
        end = max(end, off + t.size)
    return (end + ALIGN - 1) // ALIGN * ALIGN


def check_plan(p: Plan) -> None:
    """Assert that no two tensors alive at the same time overlap and all fit the arena."""
    ts = list(p.tensors.values())
    for a in ts:
        assert a.offset >= 0 and a.offset % ALIGN == 0 and a.offset + a.size <= p.arena_bytes, a
        for b in ts:
            if a is not b and a.first <= b.last and b.first <= a.last:
                assert a.offset + a.size <= b.offset or b.offset + b.size <= a.offset, (a, b)
