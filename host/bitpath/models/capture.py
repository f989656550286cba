"""Capture a ``torch.nn.Module`` with torch.fx into a :class:`~bitpath.models.graph.GraphSpec`.

Supported: Conv2d (groups 1, or depthwise with channel multiplier 1), Linear, BatchNorm1d/2d
directly after a Conv2d/Linear, ReLU/ReLU6 (modules or functions), MaxPool2d, AvgPool2d (no
padding), AdaptiveAvgPool2d(1), Flatten, Dropout/Identity (removed) and residual ``+``. Anything else
is refused with :class:`ModelCaptureError` naming the module and the op.
"""

from __future__ import annotations

import operator

import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from bitpath.models.graph import INPUT, GraphError, GraphSpec, Node, tensor_formats


class ModelCaptureError(GraphError):
    """The module uses an op the integer network cannot run."""


_RELU_FUNCS = {F.relu: "relu", torch.relu: "relu", F.relu6: "relu6"}
_ADD_FUNCS = {operator.add, operator.iadd, torch.add}
_FLATTEN_FUNCS = {torch.flatten}
_IDENTITY_MODULES = (nn.Dropout, nn.Dropout2d, nn.Identity)


def _pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _describe(node: fx.Node, modules: dict) -> str:
    if node.op == "call_module":
        return f"module {node.target!r} ({type(modules[node.target]).__name__})"
    if node.op == "call_function":
        return f"node {node.name!r} (function {getattr(node.target, '__name__', node.target)})"
    if node.op == "call_method":
        return f"node {node.name!r} (method .{node.target}())"
    return f"node {node.name!r} ({node.op} {node.target})"


def _act_of(node: fx.Node, modules: dict) -> str | None:
    if node.op == "call_module":
        m = modules[node.target]
        if isinstance(m, nn.ReLU6):
            return "relu6"
        if isinstance(m, nn.ReLU):
            return "relu"
        if isinstance(m, nn.Hardtanh) and m.min_val == 0.0 and m.max_val == 6.0:
            return "relu6"
    elif node.op == "call_function" and node.target in _RELU_FUNCS:
        return _RELU_FUNCS[node.target]
    elif node.op == "call_method" and node.target == "relu":
        return "relu"
    return None


def _shape(node: fx.Node) -> tuple[int, ...]:
    tm = node.meta.get("tensor_meta")
    if tm is None:
        raise ModelCaptureError(f"node {node.name!r}: no tensor shape (does it return a single tensor?)")
    s = tuple(int(v) for v in tm.shape[1:])
    return (s[1], s[2], s[0]) if len(s) == 3 else s  # NCHW -> HWC


def capture(model: nn.Module, input_shape: tuple[int, int, int]) -> GraphSpec:
    """Trace ``model`` and return its graph of integer ops.

    Args:
        model: the float network (BatchNorm and ReLU are fused into the preceding layer).
        input_shape: one input's ``(H, W, C)``.

    Raises:
        ModelCaptureError: an unsupported module/function/method, naming it.
    """
    try:
        gm = fx.symbolic_trace(model)
    except Exception as e:  # noqa: BLE001 - tracing errors come in many types
        raise ModelCaptureError(f"torch.fx could not trace {type(model).__name__}: {e}") from e
    modules = dict(gm.named_modules())
    h, w, c = input_shape
    was_training = gm.training
    gm.eval()
    with torch.no_grad():
        ShapeProp(gm).propagate(torch.zeros(2, c, h, w))
    gm.train(was_training)

    alias: dict[fx.Node, str] = {}
    nodes: list[Node] = []
    by_name: dict[str, Node] = {}
    consumed: set[fx.Node] = set()
    output_name = None

    def single_user(n: fx.Node) -> fx.Node | None:
        users = list(n.users)
        return users[0] if len(users) == 1 else None

    def fuse_act(n: fx.Node, owner: Node) -> fx.Node:
        """Fuse a following ReLU/ReLU6 into ``owner``; return the last fused fx node."""
        u = single_user(n)
        if u is not None and _act_of(u, modules):
            owner.attrs["act"] = _act_of(u, modules)
            consumed.add(u)
            return u
        return n

    def src(n: fx.Node, who: fx.Node) -> str:
        arg = n
        if not isinstance(arg, fx.Node) or arg not in alias:
            raise ModelCaptureError(f"{_describe(who, modules)}: unsupported argument {arg!r}")
        return alias[arg]

    def add_node(node: Node, last: fx.Node) -> None:
        if node.name in by_name:
            raise ModelCaptureError(f"{node.name!r}: the same module is called twice; shared layers are not supported")
        nodes.append(node)
        by_name[node.name] = node
        alias[last] = node.name

    for n in gm.graph.nodes:
        if n in consumed:
            continue
        if n.op == "placeholder":
            if alias:
                raise ModelCaptureError(f"node {n.name!r}: only one input tensor is supported")
            alias[n] = INPUT
            continue
        if n.op == "get_attr":
            raise ModelCaptureError(f"{_describe(n, modules)}: direct parameter access is not supported")
        if n.op == "output":
            out = n.args[0]
            if not isinstance(out, fx.Node) or out not in alias:
                raise ModelCaptureError("the model must return a single tensor of logits")
            output_name = alias[out]
            continue
        desc = _describe(n, modules)
        if n.op == "call_module":
            m = modules[n.target]
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                x = src(n.args[0], n)
                node = _weighted(n, m, x, modules, desc)
                last = n
                u = single_user(n)
                is_bn = u is not None and u.op == "call_module" and isinstance(
                    modules[u.target], (nn.BatchNorm1d, nn.BatchNorm2d)
                )
                if is_bn:
                    bn = modules[u.target]
                    if not bn.affine or not bn.track_running_stats:
                        raise ModelCaptureError(
                            f"{_describe(u, modules)}: BatchNorm needs affine=True, track_running_stats=True"
                        )
                    node.attrs["bn"] = u.target
                    consumed.add(u)
                    last = u
                last = fuse_act(last, node)
                node.out_shape = _shape(last)
                add_node(node, last)
            elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                raise ModelCaptureError(
                    f"{desc}: BatchNorm must directly follow a Conv2d or Linear whose output has no other user"
                )
            elif isinstance(m, _IDENTITY_MODULES):
                alias[n] = src(n.args[0], n)
            elif _act_of(n, modules):
                _standalone_act(n, _act_of(n, modules), src(n.args[0], n), by_name, alias, desc)
            elif isinstance(m, nn.MaxPool2d):
                if _pair(m.dilation) != (1, 1) or m.return_indices:
                    raise ModelCaptureError(f"{desc}: dilation/return_indices are not supported")
                ph, pw = _pair(m.padding)
                k = _pair(m.kernel_size)
                s = _pair(m.stride if m.stride is not None else m.kernel_size)
                if m.ceil_mode:
                    raise ModelCaptureError(f"{desc}: ceil_mode=True is not supported")
                add_node(Node(n.target, "max_pool2d", [src(n.args[0], n)], _shape(n),
                              {"kernel": k, "stride": s, "pad": (ph, ph, pw, pw)}), n)
            elif isinstance(m, nn.AvgPool2d):
                if _pair(m.padding) != (0, 0) or m.ceil_mode or m.divisor_override:
                    raise ModelCaptureError(f"{desc}: AvgPool2d needs padding=0, ceil_mode=False, no divisor_override")
                k = _pair(m.kernel_size)
                s = _pair(m.stride if m.stride is not None else m.kernel_size)
                add_node(Node(n.target, "avg_pool2d", [src(n.args[0], n)], _shape(n), {"kernel": k, "stride": s}), n)
            elif isinstance(m, nn.AdaptiveAvgPool2d):
                if _pair(m.output_size) != (1, 1):
                    raise ModelCaptureError(f"{desc}: only AdaptiveAvgPool2d(1) (global average pooling) is supported")
                x = src(n.args[0], n)
                ih, iw = by_name[x].out_shape[:2] if x != INPUT else input_shape[:2]
                add_node(Node(n.target, "avg_pool2d", [x], _shape(n), {"kernel": (ih, iw), "stride": (1, 1)}), n)
            elif isinstance(m, nn.Flatten):
                if m.start_dim != 1 or m.end_dim != -1:
                    raise ModelCaptureError(f"{desc}: only Flatten(start_dim=1) is supported")
                _flatten(n, src(n.args[0], n), by_name, alias, nodes, n.target, _shape(n))
            else:
                raise ModelCaptureError(f"{desc} is not supported by the integer kernels")
        elif n.op == "call_function" and n.target in _ADD_FUNCS:
            if len(n.args) != 2 or n.kwargs:
                raise ModelCaptureError(f"{desc}: only a + b of two tensors is supported")
            a, b = (src(v, n) for v in n.args)
            node = Node(n.name, "add", [a, b], (), {"act": None})
            last = fuse_act(n, node)
            node.out_shape = _shape(last)
            add_node(node, last)
        elif _act_of(n, modules):
            _standalone_act(n, _act_of(n, modules), src(n.args[0], n), by_name, alias, desc)
        elif (n.op == "call_function" and n.target in _FLATTEN_FUNCS) or (
            n.op == "call_method" and n.target == "flatten"
        ):
            start = n.args[1] if len(n.args) > 1 else n.kwargs.get("start_dim", 0)
            if start != 1 or len(n.args) > 2 or "end_dim" in n.kwargs:
                raise ModelCaptureError(f"{desc}: only flatten(x, 1) is supported")
            _flatten(n, src(n.args[0], n), by_name, alias, nodes, n.name, _shape(n))
        elif n.op == "call_function" and n.target is F.dropout:
            alias[n] = src(n.args[0], n)
        else:
            raise ModelCaptureError(f"{desc} is not supported by the integer kernels")

    if output_name is None or output_name == INPUT:
        raise ModelCaptureError("the model has no output layer")
    out = by_name[output_name]
    if not out.weighted or out.attrs.get("act") is not None or out.attrs.get("bn") is not None:
        raise ModelCaptureError(
            f"the output {output_name!r} must be a Conv2d/Linear without BatchNorm or activation (int32 logits)"
        )
    if out.op != "fully_connected" and tuple(out.out_shape[:2]) != (1, 1):
        raise ModelCaptureError(f"the output layer {output_name!r} must produce a vector of logits")
    spec = GraphSpec(tuple(input_shape), nodes, output_name)
    for node in nodes:
        if node.op == "fully_connected":
            src_shape = by_name[node.inputs[0]].out_shape if node.inputs[0] != INPUT else input_shape
            if len(src_shape) != 1:
                raise ModelCaptureError(
                    f"Linear {node.name!r}: its input has shape {tuple(src_shape)} (HWC); flatten it first (nn.Flatten)"
                )
        if node.op == "add":
            shapes = {tuple(by_name[i].out_shape) if i != INPUT else tuple(input_shape) for i in node.inputs}
            if len(shapes) != 1:
                raise ModelCaptureError(f"add {node.name!r}: operand shapes differ: {sorted(shapes)}")
    # a graph check with 8 bits everywhere: catches fan-out conflicts and signed avg-pool inputs early
    try:
        tensor_formats(spec, {n.name: (8, 8) for n in spec.weighted})
    except GraphError as e:
        if isinstance(e, ModelCaptureError):
            raise
        raise ModelCaptureError(str(e)) from e
    return spec


def _weighted(n: fx.Node, m: nn.Module, x: str, modules: dict, desc: str) -> Node:
    if isinstance(m, nn.Linear):
        return Node(n.target, "fully_connected", [x], (),
                    {"in_ch": m.in_features, "out_ch": m.out_features, "bias": m.bias is not None,
                     "act": None, "bn": None})
    if _pair(m.dilation) != (1, 1):
        raise ModelCaptureError(f"{desc}: dilation is not supported")
    if m.padding_mode != "zeros":
        raise ModelCaptureError(f"{desc}: padding_mode={m.padding_mode!r} is not supported (zeros only)")
    kh, kw = _pair(m.kernel_size)
    if isinstance(m.padding, str):
        if m.padding == "valid":
            pad = (0, 0, 0, 0)
        else:  # "same" with stride 1
            th, tw = kh - 1, kw - 1
            pad = (th // 2, th - th // 2, tw // 2, tw - tw // 2)
    else:
        ph, pw = _pair(m.padding)
        pad = (ph, ph, pw, pw)
    if m.groups == 1:
        op = "conv2d"
    elif m.groups == m.in_channels == m.out_channels:
        op = "depthwise_conv2d"
    else:
        raise ModelCaptureError(
            f"{desc}: groups={m.groups} is not supported (1, or depthwise with in=out={m.in_channels} channels)"
        )
    return Node(n.target, op, [x], (),
                {"kernel": (kh, kw), "stride": _pair(m.stride), "pad": pad, "in_ch": m.in_channels,
                 "out_ch": m.out_channels, "bias": m.bias is not None, "act": None, "bn": None})


def _standalone_act(n: fx.Node, act: str, x: str, by_name: dict, alias: dict, desc: str) -> None:
    """A ReLU not directly after a layer is accepted only where it is the identity (input already clamped)."""
    cur = x
    while cur != INPUT and by_name[cur].op in ("max_pool2d", "avg_pool2d", "flatten"):
        cur = by_name[cur].inputs[0]
    src_act = "relu" if cur == INPUT else by_name[cur].attrs.get("act")
    if (act == "relu" and src_act in ("relu", "relu6")) or (act == "relu6" and src_act == "relu6" and cur != INPUT):
        alias[n] = x
        return
    raise ModelCaptureError(
        f"{desc}: an activation must directly follow a Conv2d/Linear(+BatchNorm) or an add whose output it alone uses"
    )


def _flatten(n: fx.Node, x: str, by_name: dict, alias: dict, nodes: list, name: str, shape) -> None:
    in_shape = by_name[x].out_shape if x != INPUT else None
    if in_shape is None:
        raise ModelCaptureError(f"node {n.name!r}: flattening the network input is not supported")
    chw = (in_shape[2], in_shape[0], in_shape[1]) if len(in_shape) == 3 else None
    node = Node(name, "flatten", [x], shape, {"chw": chw})
    nodes.append(node)
    by_name[name] = node
    alias[n] = name
