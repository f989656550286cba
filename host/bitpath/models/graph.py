"""The captured network as plain data (no torch): what training executes and what export writes.

A :class:`GraphSpec` is a list of :class:`Node` in topological order. Shapes are HWC (or ``(C,)``
after flatten), batch excluded. Weighted nodes (``conv2d``, ``depthwise_conv2d``,
``fully_connected``) carry their fused BatchNorm and ReLU/ReLU6; ``add`` carries a fused ReLU.
"""

from __future__ import annotations

from dataclasses import dataclass, field

WEIGHTED_OPS = ("conv2d", "depthwise_conv2d", "fully_connected")
POOL_OPS = ("max_pool2d", "avg_pool2d")
PASS_OPS = ("max_pool2d", "avg_pool2d", "flatten")  # output format = input format
ALL_OPS = (*WEIGHTED_OPS, *POOL_OPS, "add", "flatten")
INPUT = "input"


class GraphError(ValueError):
    """The network cannot be expressed with the supported integer ops."""


@dataclass
class Node:
    """One op of the integer network.

    Attributes:
        name: unique name (the torch module path of a layer, e.g. ``features.0``).
        op: one of :data:`ALL_OPS`.
        inputs: names of the producing nodes (``"input"`` for the network input).
        out_shape: HWC output shape, or ``(C,)`` for vectors.
        attrs: op attributes: ``kernel (kh, kw)``, ``stride (sh, sw)``, ``pad (t, b, l, r)``,
            ``act`` (None, ``"relu"`` or ``"relu6"``), ``bn`` (module name or None), ``bias`` (bool),
            ``in_ch``/``out_ch`` and, for an FC after a spatial flatten, ``flatten_chw`` (C, H, W).
    """

    name: str
    op: str
    inputs: list[str]
    out_shape: tuple[int, ...]
    attrs: dict = field(default_factory=dict)

    @property
    def weighted(self) -> bool:
        return self.op in WEIGHTED_OPS


@dataclass
class GraphSpec:
    """A captured network: input shape (H, W, C), nodes in topological order, the logits node."""

    input_shape: tuple[int, int, int]
    nodes: list[Node]
    output: str

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(f"no node named {name!r}")

    @property
    def weighted(self) -> list[Node]:
        return [n for n in self.nodes if n.weighted]

    @property
    def layer_names(self) -> list[str]:
        return [n.name for n in self.weighted]

    def consumers(self, name: str) -> list[Node]:
        return [n for n in self.nodes if name in n.inputs]

    def macs(self, node: Node) -> int:
        """Multiply-accumulates of a weighted node for one input."""
        if node.op == "fully_connected":
            return node.attrs["in_ch"] * node.attrs["out_ch"]
        oh, ow, oc = node.out_shape
        kh, kw = node.attrs["kernel"]
        if node.op == "depthwise_conv2d":
            return oh * ow * oc * kh * kw
        return oh * ow * oc * kh * kw * node.attrs["in_ch"]

    def to_dict(self) -> dict:
        return {
            "input_shape": list(self.input_shape),
            "output": self.output,
            "nodes": [
                {"name": n.name, "op": n.op, "inputs": list(n.inputs), "out_shape": list(n.out_shape),
                 "attrs": _jsonable(n.attrs)}
                for n in self.nodes
            ],
        }

    @classmethod
    def from_dict(cls, d: dict) -> GraphSpec:
        nodes = [
            Node(n["name"], n["op"], list(n["inputs"]), tuple(n["out_shape"]), _tuplify(dict(n["attrs"])))
            for n in d["nodes"]
        ]
        return cls(tuple(d["input_shape"]), nodes, d["output"])


def _jsonable(a: dict) -> dict:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in a.items()}


def _tuplify(a: dict) -> dict:
    return {k: (tuple(v) if isinstance(v, list) else v) for k, v in a.items()}


def quant_points(spec: GraphSpec) -> list[Node]:
    """Nodes whose output is a requantized activation (all weighted nodes but the logits, and adds)."""
    return [n for n in spec.nodes if (n.weighted and n.name != spec.output) or n.op == "add"]


def tensor_formats(spec: GraphSpec, layer_bits: dict[str, tuple[int, int]]) -> dict[str, tuple[int, bool]]:
    """Activation format ``(bits, signed)`` of every node's output on one path.

    ``layer_bits`` maps each weighted node to ``(w_bits, a_bits)``, ``a_bits`` being the width of
    that layer's *input*. A quantized tensor takes the width its consumers ask for: a weighted
    consumer its ``a_bits``, an add its own output width, a pool or flatten whatever its own
    consumers ask. Consumers that disagree are an error naming both. The network input is
    unsigned 8-bit, so the first layer's ``a_bits`` must be 8. The logits are ``(32, True)``.
    """
    fmt: dict[str, tuple[int, bool]] = {INPUT: (8, False)}
    want: dict[str, tuple[int, str]] = {}

    def require(name: str, bits: int, who: str) -> None:
        if name in want and want[name][0] != bits:
            raise GraphError(
                f"tensor {name!r} is read at {want[name][0]} bits by {want[name][1]!r} and at {bits} bits by "
                f"{who!r} on the same path; give both layers the same a_bits"
            )
        want.setdefault(name, (bits, who))

    for n in reversed(spec.nodes):
        if n.weighted:
            if n.name not in layer_bits:
                raise GraphError(f"layer {n.name!r}: no (w_bits, a_bits) on this path")
            for i in n.inputs:
                require(i, layer_bits[n.name][1], n.name)
        elif n.op == "add":
            if n.name not in want:
                raise GraphError(f"add {n.name!r}: its output width is not set by any consumer")
            for i in n.inputs:
                require(i, want[n.name][0], n.name)
        elif n.op in PASS_OPS:
            if n.name in want:
                for i in n.inputs:
                    require(i, want[n.name][0], want[n.name][1])
    if INPUT in want and want[INPUT][0] != 8:
        raise GraphError(
            f"layer {want[INPUT][1]!r} reads the uint8 network input, so its a_bits must be 8, got {want[INPUT][0]}"
        )
    for n in spec.nodes:
        if n.name == spec.output:
            fmt[n.name] = (32, True)
        elif n.weighted or n.op == "add":
            if n.name not in want:
                raise GraphError(f"node {n.name!r}: output width not set by any consumer")
            fmt[n.name] = (want[n.name][0], n.attrs.get("act") is None)
        else:
            fmt[n.name] = fmt[n.inputs[0]]
            if n.op == "avg_pool2d" and fmt[n.name][1]:
                raise GraphError(
                    f"average pool {n.name!r} reads the signed output of {n.inputs[0]!r}; the integer kernel "
                    "averages unsigned activations only (put a ReLU before it)"
                )
    return fmt
