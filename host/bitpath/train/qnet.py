"""The multi-path fake-quant network: shared nested weights, per-path BatchNorm and activation steps.

:class:`MultiPathNet` executes a captured :class:`~bitpath.models.graph.GraphSpec`.
``forward(x, path)`` takes uint8-valued images (float or uint8, NCHW) and returns logits:

- in training mode, fake-quant with BatchNorm on batch statistics (float32);
- in eval mode with ``integer=False``, fake-quant with BatchNorm on running statistics (float32);
- in eval mode with ``integer=True``, the folded integer arithmetic of the exported model
  (bias, multiplier, shift from :func:`bitpath.quant.fold.fold_layer`, int64 requantization),
  which is bit-exact with the numpy reference; the logits are then the int32 logits.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bitpath.models.graph import INPUT, GraphSpec, Node, quant_points, tensor_formats
from bitpath.quant.fold import fold_add, fold_layer
from bitpath.quant.modules import ActQuantizer, WeightQuantizer
from bitpath.quant.primitives import nested_view, round_half_up, round_pass
from bitpath.train.paths import PathTable

INPUT_SCALE = 1.0 / 255.0


def key(name: str) -> str:
    """A module name usable as a ModuleDict key."""
    return name.replace(".", "__")


class QLayer(nn.Module):
    """Shared parameters of one weighted layer: float weight, optional bias, weight quantizer."""

    def __init__(self, node: Node, module: nn.Module, stored: int, views, wmode: str, per_channel: bool,
                 ratio_lambda: float, view_round: bool = False) -> None:
        super().__init__()
        self.weight = nn.Parameter(module.weight.detach().clone())
        self.bias = nn.Parameter(module.bias.detach().clone()) if module.bias is not None else None
        self.wq = WeightQuantizer(tuple(self.weight.shape), stored, views, wmode, per_channel, ratio_lambda,
                                  view_round)
        self.wq.init_from(self.weight)


class MultiPathNet(nn.Module):
    """One network, K bit-paths (see module docstring).

    Args:
        model: the pretrained float module (weights and BatchNorm statistics are copied).
        spec: its captured graph.
        table: the bit-path table.
        weight_mode: "lsq" or "ratio" (see :class:`~bitpath.quant.modules.WeightQuantizer`).
        act_mode: "lsq" or "pact".
        view_round: every layer's narrow weight views round instead of flooring
            (``TrainConfig.weight_views == "round"``; see :func:`~bitpath.quant.primitives.nested_view`).
    """

    def __init__(self, model: nn.Module, spec: GraphSpec, table: PathTable, weight_mode: str = "lsq",
                 act_mode: str = "lsq", ratio_lambda: float = 1e-3, view_round: bool = False) -> None:
        super().__init__()
        self.spec, self.table = spec, table
        self.view_round = view_round
        self.formats = [tensor_formats(spec, p.layer_bits()) for p in table.paths]
        modules = dict(model.named_modules())
        stored, views = table.stored_bits(), table.view_bits()
        self.layers = nn.ModuleDict()
        self.bns = nn.ModuleDict()
        for n in spec.weighted:
            per_channel = n.name != spec.output
            self.layers[key(n.name)] = QLayer(n, modules[n.name], stored[n.name], views[n.name], weight_mode,
                                              per_channel, ratio_lambda, view_round)
            if n.attrs.get("bn"):
                bn = modules[n.attrs["bn"]]
                self.bns[key(n.name)] = nn.ModuleList(copy.deepcopy(bn) for _ in table.paths)
        self.aqs = nn.ModuleDict()
        for n in quant_points(spec):
            self.aqs[key(n.name)] = nn.ModuleList(
                ActQuantizer(f[n.name][0], f[n.name][1], act_mode) for f in self.formats
            )

    # ------------------------------------------------------------------ float / fake-quant forward
    def forward(self, x: torch.Tensor, path: int, integer: bool = False) -> torch.Tensor:
        if integer:
            if self.training:
                raise RuntimeError("integer=True is an evaluation mode; call .eval() first")
            return self.forward_integer(x, path)
        x = x.float() * INPUT_SCALE
        # In eval mode the folded bias is rounded to accumulator units exactly as in the exported
        # model (with 2-bit weights one accumulator unit can be several output steps wide).
        consts = None if self.training else self.fold(path)
        vals: dict[str, torch.Tensor] = {INPUT: x}
        steps: dict[str, torch.Tensor] = {INPUT: x.new_tensor(INPUT_SCALE)}
        bits = self.table.paths[path].layer_bits()
        for n in self.spec.nodes:
            k = key(n.name)
            if n.weighted:
                layer = self.layers[k]
                w = layer.wq(layer.weight, bits[n.name][0])
                xin = vals[n.inputs[0]]
                y = self._linear(n, xin, w)
                if n.name == self.spec.output:
                    if layer.bias is not None:
                        # the integer bias is round_half_up(b / unit): quantize it the same way
                        unit = (steps[n.inputs[0]] * layer.wq.scale * float(1 << (layer.wq.stored - bits[n.name][0])))
                        unit = unit.detach()
                        y = y + (round_pass(layer.bias / unit) * unit).view(1, -1, *([1] * (y.dim() - 2)))
                    return y.flatten(1)
                if consts is not None:
                    f = consts[n.name]["folded"]
                    kb = torch.as_tensor(f.bn_scale, dtype=y.dtype, device=y.device)
                    cb = torch.as_tensor(f.acc_scale * f.bias, dtype=y.dtype, device=y.device)
                    y = _bcast(kb, y) * y + _bcast(cb, y)
                else:
                    if layer.bias is not None:
                        y = y + layer.bias.view(1, -1, *([1] * (y.dim() - 2)))
                    if k in self.bns:
                        y = self.bns[k][path](y)
                y = _act(y, n.attrs.get("act"))
                aq = self.aqs[k][path]
                vals[n.name] = aq(y)
                steps[n.name] = aq.step().detach()
            elif n.op == "add":
                y = _act(vals[n.inputs[0]] + vals[n.inputs[1]], n.attrs.get("act"))
                aq = self.aqs[k][path]
                vals[n.name] = aq(y)
                steps[n.name] = aq.step().detach()
            elif n.op == "max_pool2d":
                vals[n.name] = _maxpool(vals[n.inputs[0]], n)
                steps[n.name] = steps[n.inputs[0]]
            elif n.op == "avg_pool2d":
                s = steps[n.inputs[0]]
                xin = vals[n.inputs[0]]
                kh, kw = n.attrs["kernel"]
                avg = F.avg_pool2d(xin, (kh, kw), n.attrs["stride"])
                # integer semantics: floor((sum + n//2) / n) on the codes, round half up of the mean
                exact = torch.floor((_window_sum(round_half_up(xin / s), n) + (kh * kw) // 2) / (kh * kw)) * s
                vals[n.name] = avg + (exact - avg).detach()
                steps[n.name] = s
            elif n.op == "flatten":
                vals[n.name] = torch.flatten(vals[n.inputs[0]], 1)
                steps[n.name] = steps[n.inputs[0]]
        raise RuntimeError("graph has no output node")

    @staticmethod
    def _linear(n: Node, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        if n.op == "fully_connected":
            return F.linear(x.flatten(1) if x.dim() > 2 else x, w)
        t, b, left, r = n.attrs["pad"]
        if (t, left) != (b, r):
            x = F.pad(x, (left, r, t, b))
            pad = 0
        else:
            pad = (t, left)
        groups = n.attrs["in_ch"] if n.op == "depthwise_conv2d" else 1
        return F.conv2d(x, w, None, n.attrs["stride"], pad, 1, groups)

    # ------------------------------------------------------------------ constants shared with export
    def path_steps(self, path: int) -> dict[str, float]:
        """Step (scale) of every node's output tensor on ``path`` (float64)."""
        steps = {INPUT: INPUT_SCALE}
        for n in self.spec.nodes:
            k = key(n.name)
            if k in self.aqs:
                steps[n.name] = float(self.aqs[k][path].step().detach().double())
            elif not n.weighted:
                steps[n.name] = steps[n.inputs[0]]
        return steps

    def fold(self, path: int) -> dict[str, dict]:
        """Integer constants of every layer/add on ``path`` (see :mod:`bitpath.quant.fold`)."""
        steps = self.path_steps(path)
        fmts = self.formats[path]
        bits = self.table.paths[path].layer_bits()
        out: dict[str, dict] = {}
        for n in self.spec.nodes:
            k = key(n.name)
            if n.weighted:
                layer = self.layers[k]
                b = bits[n.name][0]
                s_w = layer.wq.scale.detach().double().cpu().numpy() * float(1 << (layer.wq.stored - b))
                bn = None
                if k in self.bns:
                    m = self.bns[k][path]
                    stats = (m.weight, m.bias, m.running_mean, m.running_var)
                    bn = tuple(t.detach().double().cpu().numpy() for t in stats) + (m.eps,)
                cb = layer.bias.detach().double().cpu().numpy() if layer.bias is not None else None
                ob, osg = fmts[n.name]
                f = fold_layer(n.name, layer.weight.shape[0], steps[n.inputs[0]], s_w, bn, cb, ob, osg,
                               None if ob == 32 else steps[n.name], n.attrs.get("act"))
                out[n.name] = {"folded": f, "w_view": b, "w_stored": layer.wq.stored}
            elif n.op == "add":
                ma, mb, sh = fold_add(n.name, steps[n.inputs[0]], steps[n.inputs[1]], steps[n.name])
                ob, osg = fmts[n.name]
                from bitpath.ref.formats import value_range

                lo, hi = value_range(ob, osg)
                if n.attrs.get("act") == "relu6":
                    hi = int(min(hi, np.floor(6.0 / steps[n.name] + 0.5)))
                if n.attrs.get("act") in ("relu", "relu6"):
                    lo = max(lo, 0)
                out[n.name] = {"mult_a": ma, "mult_b": mb, "shift": sh, "act_min": lo, "act_max": hi}
        return out

    # ------------------------------------------------------------------ integer-exact evaluation
    @torch.no_grad()
    def forward_integer(self, x: torch.Tensor, path: int) -> torch.Tensor:
        """The exported integer network in torch (int64 requantization): returns int64 logits."""
        consts = self.fold(path)
        bits = self.table.paths[path].layer_bits()
        vals: dict[str, torch.Tensor] = {INPUT: x.to(torch.float64)}
        for n in self.spec.nodes:
            if n.weighted:
                layer = self.layers[key(n.name)]
                c = consts[n.name]
                f = c["folded"]
                codes = layer.wq.codes(layer.weight).to(torch.float64)
                view = nested_view(codes, layer.wq.stored, bits[n.name][0], layer.wq.view_round)
                acc = self._linear(n, vals[n.inputs[0]], view)  # exact: integers < 2^53
                acc = torch.round(acc).to(torch.int64) + _bcast(torch.from_numpy(f.bias).to(acc.device), acc)
                if n.name == self.spec.output:
                    return acc.flatten(1)
                m = _bcast(torch.from_numpy(f.mult).to(acc.device), acc)
                s = _bcast(torch.from_numpy(f.shift).to(acc.device), acc)
                r = torch.where(s > 0, torch.ones_like(s) << (s - 1).clamp_min(0), torch.zeros_like(s))
                y = torch.bitwise_right_shift(acc * m + r, s)
                vals[n.name] = torch.clamp(y, f.act_min, f.act_max).to(torch.float64)
            elif n.op == "add":
                c = consts[n.name]
                a, b = (vals[i].to(torch.int64) for i in n.inputs)
                sh = c["shift"]
                r = (1 << (sh - 1)) if sh > 0 else 0
                y = torch.bitwise_right_shift(a * c["mult_a"] + b * c["mult_b"] + r, sh)
                vals[n.name] = torch.clamp(y, c["act_min"], c["act_max"]).to(torch.float64)
            elif n.op == "max_pool2d":
                vals[n.name] = _maxpool(vals[n.inputs[0]], n)
            elif n.op == "avg_pool2d":
                kh, kw = n.attrs["kernel"]
                vals[n.name] = torch.floor((_window_sum(vals[n.inputs[0]], n) + (kh * kw) // 2) / (kh * kw))
            elif n.op == "flatten":
                vals[n.name] = torch.flatten(vals[n.inputs[0]], 1)
        raise RuntimeError("graph has no output node")

    # ------------------------------------------------------------------ helpers for training
    def calibrate(self, x: torch.Tensor) -> None:
        """Initialise every path's activation steps on one batch.

        BatchNorm uses the batch's statistics (training mode): the float model's running statistics
        do not describe a narrow path (a 2-bit floored view shifts every pre-activation), and
        calibrating on them can leave a path's activations all zero and its steps degenerate.
        The running statistics are restored afterwards.
        """
        was = self.training
        saved = {k: copy.deepcopy(ml.state_dict()) for k, ml in self.bns.items()}
        self.train()
        with torch.no_grad():
            for p in range(len(self.table)):
                for ml in self.aqs.values():
                    ml[p].calibrating = True
                self(x, p)
                for ml in self.aqs.values():
                    ml[p].calibrating = False
        for k, ml in self.bns.items():
            ml.load_state_dict(saved[k])
        self.train(was)

    @torch.no_grad()
    def clamp_scales_(self) -> None:
        """Keep every learned step positive (called after each optimizer step)."""
        for layer in self.layers.values():
            floor = (layer.wq.init_scale * 1e-3).log()
            layer.wq.log_scale.copy_(torch.maximum(layer.wq.log_scale, floor))
        for ml in self.aqs.values():
            for aq in ml:  # a step that collapses far below its calibrated value makes a path dead
                floor = (aq.init_step * (1e-2 if aq.mode == "lsq" else 1e-2 * aq.hi)).log()
                aq.log_param.copy_(torch.maximum(aq.log_param, floor))

    def path_bns(self, path: int) -> list[nn.Module]:
        return [ml[path] for ml in self.bns.values()]

    def aux_losses(self) -> dict[str, torch.Tensor]:
        tot: dict[str, torch.Tensor] = {}
        for layer in self.layers.values():
            for k, v in layer.wq.aux_losses(layer.weight).items():
                tot[k] = tot.get(k, 0.0) + v
        return tot


def _bcast(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.view(1, -1, *([1] * (like.dim() - 2)))


def _act(y: torch.Tensor, act: str | None) -> torch.Tensor:
    if act == "relu":
        return F.relu(y)
    if act == "relu6":
        return F.relu6(y)
    return y


def _maxpool(x: torch.Tensor, n: Node) -> torch.Tensor:
    t, b, left, r = n.attrs["pad"]
    return F.max_pool2d(x, n.attrs["kernel"], n.attrs["stride"], (t, left))


def _window_sum(x: torch.Tensor, n: Node) -> torch.Tensor:
    """Exact sum over each pooling window (integers in float)."""
    return F.avg_pool2d(x, n.attrs["kernel"], n.attrs["stride"], divisor_override=1)
