"""Candidate bit-paths by an integer program (PuLP with its bundled CBC), HAWQ-V3 style.

The K paths are chosen *jointly*, because nested storage couples them: a layer is stored once, at
the widest weight width any path uses for it (the exporter's rule), and that stored width changes
both the flash and, on our kernels, the *cost* of every narrower view (a 4-bit view of 8-bit storage
runs the DSP loop; 4-bit storage may run the portable loop). Variables:

- ``s[l, S]``: layer ``l`` is stored at ``S`` (one-hot); ``S`` equals the widest view some path uses;
- ``x[k, l, o]``: path ``k`` runs layer ``l`` with option ``o = (S, w, a_in, a_out)`` (one-hot per path
  and layer, and the option's ``S`` must be the layer's stored width);
- ``t[k, g, b]``: on path ``k`` the activation tensors of width group ``g`` (a weighted layer's or an
  add's output and the pools after it) are ``b`` bits wide; an option's ``a_in``/``a_out`` must
  match the widths of the groups it reads and writes (so one tensor has one width per path).

Minimise the summed sensitivity of all paths (plus a tiny cost tie-break) subject to, for every
path ``k``: measured cost ``<= budget_k`` (weighted layers at their option, pools and adds at the
width they run at); for the whole table: flash of the weights (nested storage) ``<= flash``, and
the activation arena (every tensor sized for the widest path, as codegen plans it; the sum of the
tensors alive at each step, scratch included) ``<= ram``. Paths are forced to differ pairwise.

Flash also counts codegen's 2-bit view copies (the rule of ``bitpath.codegen.copies_view``): a
conv2d or fully connected layer stored wider than 2 bits that some path reads at a 2-bit view
carries that view packed at 2 bits as well (``c[l]``, at least every such ``x``), and the measured cost of that option
is the copy's kernel.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pulp

from bitpath.codegen import COPY_OPS, copied_view
from bitpath.ref.packing import row_bytes


class Infeasible(ValueError):
    """No set of paths satisfies the budgets; the message names them."""


@dataclass(frozen=True)
class Option:
    stored: int
    w: int
    a_in: int
    a_out: int
    cost: float
    sens: float = 0.0


def _is_ref(o: Option) -> bool:
    """An option of the all-8-bit reference path: 8-bit storage and view, 8-bit input, 8-bit (or logits) output."""
    return o.stored == 8 and o.w == 8 and o.a_in == 8 and o.a_out in (8, 32)


@dataclass
class Layer:
    name: str
    g_in: str  # width group read ("input": the 8-bit image)
    g_out: str  # width group written ("logits" for the output layer)
    options: list[Option]
    flash: dict[int, int]  # weight bytes per stored width
    copies: bool = False  # the op gets codegen's 2-bit view copies (conv2d, FC): flash[2] bytes when one is read

    def copied(self, o: Option) -> bool:
        return self.copies and copied_view(o.stored, o.w)


@dataclass
class Problem:
    """Everything the ILP needs; built from an IR + cost source + sensitivity, or by hand in tests."""

    layers: list[Layer]
    group_cost: dict[str, dict[int, float]] = field(default_factory=dict)  # non-weighted steps per group width
    tensors: dict[str, tuple[str, dict[int, int]]] = field(default_factory=dict)  # name -> (group, bytes/width)
    live: list[tuple[list[str], int]] = field(default_factory=list)  # per step: live tensors, scratch bytes
    fixed_flash: int = 0
    unit: str = "instructions (emulated)"

    def groups(self) -> list[str]:
        gs = []
        for lay in self.layers:
            for g in (lay.g_in, lay.g_out):
                if g not in ("input", "logits") and g not in gs:
                    gs.append(g)
        for g in self.group_cost:
            if g not in gs and g not in ("input", "logits"):
                gs.append(g)
        return gs

    def widths(self, g: str) -> list[int]:
        if g == "input":
            return [8]
        if g == "logits":
            return [32]
        ws = {o.a_out for lay in self.layers if lay.g_out == g for o in lay.options}
        ws |= {o.a_in for lay in self.layers if lay.g_in == g for o in lay.options}
        return sorted(ws, reverse=True)

    # -- evaluation of one assignment (used by the tests' brute force and the summary)
    def path_cost(self, choice: Sequence[Option]) -> float:
        c = sum(o.cost for o in choice)
        widths = self.group_widths(choice)
        for g, per in self.group_cost.items():
            c += per[widths[g]]
        return c

    def group_widths(self, choice: Sequence[Option]) -> dict[str, int]:
        w: dict[str, int] = {}
        for lay, o in zip(self.layers, choice, strict=True):
            w.setdefault(lay.g_in, o.a_in)
            w.setdefault(lay.g_out, o.a_out)
        return w

    def consistent(self, choice: Sequence[Option]) -> bool:
        w: dict[str, int] = {"input": 8, "logits": 32}
        for lay, o in zip(self.layers, choice, strict=True):
            for g, b in ((lay.g_in, o.a_in), (lay.g_out, o.a_out)):
                if w.setdefault(g, b) != b:
                    return False
        return True

    def ram(self, choices: Sequence[Sequence[Option]]) -> int:
        size = {}
        for name, (g, per) in self.tensors.items():
            size[name] = max(per[self.group_widths(c)[g]] for c in choices)
        return max((sum(size[t] for t in live) + scratch for live, scratch in self.live), default=0)

    def flash(self, choices: Sequence[Sequence[Option]]) -> int:
        total = self.fixed_flash
        for i, lay in enumerate(self.layers):
            s = max(c[i].w for c in choices)
            total += lay.flash[s]
            if any(lay.copied(c[i]) for c in choices):
                total += lay.flash[2]
        return total

    def ref_cost(self) -> float:
        """Cost of the all-8-bit path (stored 8, w 8, 8-bit activations)."""
        choice = []
        for lay in self.layers:
            o = [o for o in lay.options if _is_ref(o)]
            if not o:
                raise Infeasible(f"layer {lay.name!r}: the cost table has no all-8-bit entry")
            choice.append(o[0])
        return self.path_cost(choice)

    @classmethod
    def from_ir(cls, ir, src: dict, sens: dict | None = None, default_sens: float | None = None) -> Problem:
        """Build the problem for an IR from a cost source (``costs.source``) and a sensitivity table."""
        from bitpath.codegen.plan import plan
        from bitpath.ir import WEIGHTED

        nodes = {n["name"]: n for n in ir.graph}
        output = ir.header["output"]

        def group(v: str) -> str:
            while v != "input" and nodes[v]["op"] not in WEIGHTED and nodes[v]["op"] != "add":
                v = nodes[v]["inputs"][0]
            return "logits" if v == output else v

        layers = []
        for n in ir.graph:
            if n["op"] not in WEIGHTED:
                continue
            name = n["name"]
            meta = ir.header["layers"][name]
            rows = int(np.prod(meta["w_shape"])) // meta["row_len"]
            flash = {b: rows * row_bytes(meta["row_len"], b) for b in (2, 4, 8)}
            ent = src["layers"].get(name)
            if ent is None:
                raise Infeasible(f"the cost table has no layer {name!r}")
            opts = []
            for e in ent["entries"]:
                sv = _sens_lookup(sens, name, e["w"], e["a_in"], default_sens)
                if sv is None:
                    continue
                opts.append(Option(e["stored"], e["w"], e["a_in"], e["a_out"], float(e["cost"]), sv))
            layers.append(Layer(name, group(n["inputs"][0]), group(name), opts, flash,
                                copies=n["op"] in COPY_OPS))
        group_cost: dict[str, dict[int, float]] = {}
        per_step: dict[str, list[dict[int, float]]] = {}
        for n in ir.graph:
            if n["op"] in WEIGHTED or n["op"] == "flatten":
                continue
            ent = src["layers"].get(n["name"])
            if ent is None:
                raise Infeasible(f"the cost table has no step {n['name']!r}")
            # pools run at their input's width; adds are keyed by their output width (conservative:
            # the most expensive measured input widths)
            g, key = (n["name"], "a_out") if n["op"] == "add" else (group(n["inputs"][0]), "a_in")
            costs: dict[int, float] = {}
            for e in ent["entries"]:
                costs[e[key]] = max(costs.get(e[key], 0.0), float(e["cost"]))
            per_step.setdefault(g, []).append(costs)
        for g, steps in per_step.items():
            common = set.intersection(*(set(c) for c in steps))
            group_cost[g] = {b: sum(c[b] for c in steps) for b in sorted(common)}
        p = plan(ir)
        tensors: dict[str, tuple[str, dict[int, int]]] = {}
        live: list[tuple[list[str], int]] = []
        for t in p.tensors.values():
            if t.name.endswith(".scratch"):
                continue
            shape = nodes[t.name]["out_shape"]
            pix = int(np.prod(shape[:-1])) if len(shape) == 3 else 1
            tensors[t.name] = (group(t.name), {b: pix * row_bytes(shape[-1], b) for b in (2, 4, 8)})
        for i in range(len(p.steps)):
            lv = [t.name for t in p.tensors.values() if t.first <= i <= t.last and not t.name.endswith(".scratch")]
            sc = sum(t.size for t in p.tensors.values() if t.first <= i <= t.last and t.name.endswith(".scratch"))
            live.append((lv, sc))
        n_paths_const = 0  # per-path constant tables are counted by codegen, not by this choice
        return cls(layers, group_cost, tensors, live, n_paths_const, src.get("unit", "instructions (emulated)"))


def _sens_lookup(sens: dict | None, layer: str, w: int, a: int, default: float | None) -> float | None:
    if sens is None:
        return 0.0
    per = sens["layers"].get(layer, {})
    v = per.get(f"w{w}a{a}")
    if v is None:
        return 0.0 if (w, a) == (8, 8) else default
    return float(v)


@dataclass
class Solution:
    budgets: list[float]
    paths: list[list[Option]]
    stored: list[int]
    costs: list[float]
    sens: list[float]
    flash: int
    ram: int
    ref_cost: float
    status: str


def solve(problem: Problem, budgets: Sequence[float], *, flash_bytes: int | None = None,
          ram_bytes: int | None = None, distinct: bool = True, time_limit: int = 60,
          objective: str = "sens", nested_rule: bool = True, keep_ref: bool = False) -> Solution:
    """Jointly choose ``len(budgets)`` paths; path ``k`` costs at most ``budgets[k]``.

    ``objective="sens"``: least summed sensitivity, then least summed cost; ``"cost"``: least cost only.
    ``nested_rule=False`` lets a layer be stored wider than any of these paths reads it (used to bound
    the cheapest path of a table whose other paths set the storage). ``keep_ref=True`` makes path 0
    the all-8-bit reference path (the controller's reference, and the accuracy every other path is
    judged against), which a summed-sensitivity objective would otherwise trade away.
    """
    K = len(budgets)
    L = problem.layers
    m = pulp.LpProblem("bitpaths", pulp.LpMinimize)

    def var(name: str, lo=None, hi=None, cat: str = "Continuous"):
        if hasattr(m, "add_variable"):  # PuLP >= 3.3
            return m.add_variable(name, lo, hi, cat=cat)
        return pulp.LpVariable(name, lo, hi, cat=cat)

    s = {(li, S): var(f"s_{li}_{S}", cat="Binary")
         for li, lay in enumerate(L) for S in sorted({o.stored for o in lay.options})}
    x = {(k, li, oi): var(f"x_{k}_{li}_{oi}", cat="Binary")
         for k in range(K) for li, lay in enumerate(L) for oi in range(len(lay.options))}
    groups = problem.groups()
    t = {(k, g, b): var(f"t_{k}_{gi}_{b}", cat="Binary")
         for k in range(K) for gi, g in enumerate(groups) for b in problem.widths(g)}

    def tw(k: int, g: str, b: int):
        if g == "input":
            return 1 if b == 8 else 0
        if g == "logits":
            return 1 if b == 32 else 0
        return t.get((k, g, b), 0)

    for li, lay in enumerate(L):
        if not lay.options:
            raise Infeasible(f"layer {lay.name!r} has no measured option with a known sensitivity")
        Ss = sorted({o.stored for o in lay.options})
        m += pulp.lpSum(s[li, S] for S in Ss) == 1
        for k in range(K):
            for S in Ss:
                m += pulp.lpSum(x[k, li, oi] for oi, o in enumerate(lay.options) if o.stored == S) == s[li, S]
            for b in problem.widths(lay.g_in):
                m += pulp.lpSum(x[k, li, oi] for oi, o in enumerate(lay.options) if o.a_in == b) == tw(k, lay.g_in, b)
            for b in problem.widths(lay.g_out):
                m += pulp.lpSum(x[k, li, oi] for oi, o in enumerate(lay.options) if o.a_out == b) == \
                    tw(k, lay.g_out, b)
        # stored width = the widest view some path uses (the exporter's rule)
        for S in Ss if nested_rule else ():
            m += s[li, S] <= pulp.lpSum(x[k, li, oi] for k in range(K) for oi, o in enumerate(lay.options)
                                        if o.stored == S and o.w == S)
    for k in range(K):
        for g in groups:
            ws = problem.widths(g)
            if ws:
                m += pulp.lpSum(t[k, g, b] for b in ws) == 1
            per = problem.group_cost.get(g)
            for b in ws:
                if per is not None and b not in per:  # a step after this tensor was never timed at b
                    m += t[k, g, b] == 0

    def cost_expr(k: int):
        e = [x[k, li, oi] * o.cost for li, lay in enumerate(L) for oi, o in enumerate(lay.options)]
        for g, per in problem.group_cost.items():
            e += [tw(k, g, b) * c for b, c in per.items()]
        return pulp.lpSum(e)

    for k, b in enumerate(budgets):
        m += cost_expr(k) <= float(b), f"budget_{k}"
    if keep_ref:
        for li, lay in enumerate(L):
            for oi, o in enumerate(lay.options):
                if not _is_ref(o):
                    m += x[0, li, oi] == 0
    if flash_bytes is not None:
        copy = {}
        for li, lay in enumerate(L):
            reads = [(k, oi) for k in range(K) for oi, o in enumerate(lay.options) if lay.copied(o)]
            if reads:
                copy[li] = var(f"c_{li}", cat="Binary")
                for k, oi in reads:
                    m += copy[li] >= x[k, li, oi]
        m += pulp.lpSum(s[li, S] * lay.flash[S] for li, lay in enumerate(L)
                        for S in sorted({o.stored for o in lay.options})) + \
            pulp.lpSum(c * L[li].flash[2] for li, c in copy.items()) + problem.fixed_flash <= flash_bytes, "flash"
    if ram_bytes is not None and problem.live:
        u = {name: var(f"u_{i}", 0) for i, name in enumerate(problem.tensors)}
        for name, (g, per) in problem.tensors.items():
            for k in range(K):
                m += u[name] >= pulp.lpSum(tw(k, g, b) * per[b] for b in problem.widths(g))
        for i, (lv, sc) in enumerate(problem.live):
            m += pulp.lpSum(u[n] for n in lv) + sc <= ram_bytes, f"ram_{i}"
    if distinct and K > 1:
        for k1, k2 in itertools.combinations(range(K), 2):
            ys = []
            for li, lay in enumerate(L):
                for oi in range(len(lay.options)):
                    y = var(f"d_{k1}_{k2}_{li}_{oi}", 0, 1)
                    a, c = x[k1, li, oi], x[k2, li, oi]
                    m += y <= a + c
                    m += y <= 2 - a - c
                    ys.append(y)
            m += pulp.lpSum(ys) >= 2
    total_cost = pulp.lpSum(cost_expr(k) for k in range(K))
    sens_scale = max((abs(o.sens) for lay in L for o in lay.options), default=1.0) or 1.0
    sens_expr = pulp.lpSum(x[k, li, oi] * (o.sens / sens_scale) for k in range(K) for li, lay in enumerate(L)
                           for oi, o in enumerate(lay.options))
    # lexicographic: least sensitivity first, then the cheapest paths among the equally good ones
    status = "Optimal"
    if objective == "sens":
        m.setObjective(sens_expr)
        status = _run(m, time_limit)
        if status == "Optimal":
            best = pulp.value(sens_expr) or 0.0
            m += sens_expr <= best + 1e-7 + 1e-9 * abs(best), "sens_opt"
    if status == "Optimal":
        m.setObjective(total_cost)
        status = _run(m, time_limit)
    if status != "Optimal":
        what = [f"cost <= {', '.join(f'{b:,.0f}' for b in budgets)}"]
        if flash_bytes is not None:
            what.append(f"flash <= {flash_bytes:,} B")
        if ram_bytes is not None:
            what.append(f"RAM <= {ram_bytes:,} B")
        raise Infeasible(f"no {K} distinct paths meet {', '.join(what)} (solver: {status})")
    paths = []
    for k in range(K):
        choice = []
        for li, lay in enumerate(L):
            oi = max(range(len(lay.options)), key=lambda i, k=k, li=li: x[k, li, i].value() or 0)
            choice.append(lay.options[oi])
        paths.append(choice)
    stored = [max(p[li].w for p in paths) for li in range(len(L))]
    costs = [problem.path_cost(p) for p in paths]
    sens_v = [sum(o.sens for o in p) for p in paths]
    try:
        refc = problem.ref_cost()
    except Infeasible:
        refc = float("nan")
    return Solution(list(budgets), paths, stored, costs, sens_v, problem.flash(paths), problem.ram(paths), refc,
                    status)


def _run(m: pulp.LpProblem, time_limit: int) -> str:
    """Solve with the CBC binary bundled with PuLP (its PuLP-4 deprecation notice is silenced)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        solver = pulp.PULP_CBC_CMD(msg=False, timeLimit=time_limit)
    m.solve(solver)
    return pulp.LpStatus[m.status]


def min_cost(problem: Problem, **kw) -> float:
    """The cheapest single path that fits the flash/RAM budgets (sensitivity ignored)."""
    hi = sum(max(o.cost for o in lay.options) for lay in problem.layers) + sum(
        max(per.values()) for per in problem.group_cost.values())
    sol = solve(problem, [hi * 1.01 + 1], distinct=False, objective="cost", **kw)
    return sol.costs[0]


def _min_cost_either(problem: Problem, **kw) -> tuple[float, float]:
    """(cheapest path when other paths may set the storage wider, cheapest path alone)."""
    alone = min_cost(problem, **kw)
    try:
        shared = min_cost(problem, nested_rule=False, **kw)
    except Infeasible:
        shared = alone
    return shared, alone


def _widest_storage(problem: Problem) -> Problem:
    """``problem`` with every layer's options restricted to its widest stored width."""
    layers = []
    for lay in problem.layers:
        top = max(o.stored for o in lay.options)
        layers.append(replace(lay, options=[o for o in lay.options if o.stored == top]))
    return replace(problem, layers=layers)


def sweep(problem: Problem, k: int = 4, fractions: Sequence[float] | None = None, *,
          flash_bytes: int | None = None, ram_bytes: int | None = None, distinct: bool = True,
          keep_ref: bool = True) -> Solution:
    """K paths under cost budgets given as fractions of the all-8-bit path's measured cost.

    Default fractions: K evenly spaced from the cheapest feasible path to the least sensitive
    feasible path (the all-8-bit path when the flash and RAM budgets allow it). When the flash and
    RAM budgets allow every layer at its widest storage, the cheapest end is the cheapest path that
    keeps that storage: a path needing narrower storage (cheaper to read) would narrow every other
    path's views with it. Ask for such a path with explicit ``fractions``.

    ``keep_ref``: path 0 is the all-8-bit path whenever the budgets allow it (else it is dropped
    from the constraints rather than failing).
    """
    ref = problem.ref_cost()
    if fractions is None:
        lo, lo_alone = _min_cost_either(problem, flash_bytes=flash_bytes, ram_bytes=ram_bytes)
        try:  # cheapest path that leaves every layer stored at its widest width (room for the all-8 path):
            # a cheaper path that needs narrower storage would narrow every other path's views too
            lo = max(lo, min_cost(_widest_storage(problem), nested_rule=False, flash_bytes=flash_bytes,
                                  ram_bytes=ram_bytes))
        except Infeasible:  # the flash/RAM budgets themselves forbid the widest storage
            pass
        hi = sum(max(o.cost for o in lay.options) for lay in problem.layers) + sum(
            max(per.values(), default=0.0) for per in problem.group_cost.values())
        best = solve(problem, [hi * 1.01 + 1], flash_bytes=flash_bytes, ram_bytes=ram_bytes, distinct=False)
        top = max(best.costs[0], lo)
        fractions = [f / ref for f in np.linspace(lo, top, k)] if k > 1 else [top / ref]
        fractions = [f * (1 + 1e-9) for f in fractions]  # the cheapest budget itself is feasible
        budgets = [f * ref for f in sorted(fractions, reverse=True)]
        try:
            return _solve_keeping_ref(problem, budgets, keep_ref, flash_bytes=flash_bytes, ram_bytes=ram_bytes,
                                      distinct=distinct)
        except Infeasible:  # the cheapest path needs storage the other paths cannot provide
            top = max(best.costs[0], lo_alone)
            fractions = [f / ref * (1 + 1e-9) for f in np.linspace(lo_alone, top, k)] if k > 1 else [top / ref]
    budgets = [f * ref for f in sorted(fractions, reverse=True)]
    return _solve_keeping_ref(problem, budgets, keep_ref, flash_bytes=flash_bytes, ram_bytes=ram_bytes,
                              distinct=distinct)


def _solve_keeping_ref(problem: Problem, budgets: Sequence[float], keep_ref: bool, **kw) -> Solution:
    if keep_ref and budgets and budgets[0] >= problem.ref_cost() * (1 - 1e-9):
        try:
            return solve(problem, budgets, keep_ref=True, **kw)
        except Infeasible:  # flash/RAM or the other budgets exclude the all-8 path: solve without it
            pass
    return solve(problem, budgets, **kw)


def path_name(choice: Sequence[Option]) -> str:
    ws = sorted({o.w for o in choice})
    acts = sorted({o.a_in for o in choice})
    if len(ws) == 1 and len(acts) == 1:
        return f"w{ws[0]}a{acts[0]}"
    return "w" + "".join(str(o.w) for o in choice) + "-a" + "".join(str(o.a_in) for o in choice)


def to_paths_json(problem: Problem, sol: Solution) -> dict:
    """A path table for ``bitpath train --paths`` (train/paths.py): every layer named explicitly."""
    out = []
    seen: set[str] = set()
    for k, choice in enumerate(sol.paths):
        name = path_name(choice)
        if name in seen:
            name = f"{name}-{k}"
        seen.add(name)
        out.append({"name": name, "layers": {lay.name: [o.w, o.a_in] for lay, o in zip(problem.layers, choice,
                                                                                      strict=True)}})
    return {"paths": out,
            "select": {"unit": problem.unit, "budgets": sol.budgets, "costs": sol.costs, "sensitivity": sol.sens,
                       "stored": {lay.name: s for lay, s in zip(problem.layers, sol.stored, strict=True)},
                       "flash_bytes": sol.flash, "arena_bytes": sol.ram, "ref_cost_all8": sol.ref_cost}}


def summary(problem: Problem, sol: Solution) -> str:
    lines = [f"| path | budget | cost ({problem.unit}) | vs all-8 | sensitivity | "
             + " | ".join(lay.name for lay in problem.layers) + " |",
             "|---|---:|---:|---:|---:|" + "---|" * len(problem.layers)]
    for b, c, sv, ch in zip(sol.budgets, sol.costs, sol.sens, sol.paths, strict=True):
        lines.append(f"| {path_name(ch)} | {b:,.0f} | {c:,.0f} | {c / sol.ref_cost:.3f}x | {sv:.4g} | "
                     + " | ".join(f"w{o.w}a{o.a_in}" for o in ch) + " |")
    lines.append(f"\nstored widths: {dict(zip([lay.name for lay in problem.layers], sol.stored, strict=True))}; "
                 f"weight flash {sol.flash:,} B; activation arena {sol.ram:,} B")
    return "\n".join(lines)
