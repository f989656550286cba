"""The candidate-path ILP respects every budget and matches brute force on small synthetic problems."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from bitpath.select import ilp
from bitpath.select.ilp import Layer, Option, Problem


def _problem(seed: int) -> Problem:
    """3 chained layers, stored 8 or 4, views 4/8, activations 4/8: a few hundred joint assignments."""
    rng = np.random.default_rng(seed)
    groups = [("input", "t0"), ("t0", "t1"), ("t1", "logits")]
    layers = []
    for li, (gi, go) in enumerate(groups):
        a_ins = [8] if gi == "input" else [4, 8]
        a_outs = [32] if go == "logits" else [4, 8]
        sens = {(w, a): (0.0 if (w, a) == (8, 8) else float(rng.uniform(0, 1))) for w in (4, 8) for a in (4, 8)}
        opts = []
        for S, w in ((8, 8), (8, 4), (4, 4)):
            for a in a_ins:
                for o in a_outs:
                    opts.append(Option(S, w, a, o, float(rng.integers(50, 150)), sens[(w, a)]))
        n = int(rng.integers(50, 200))
        layers.append(Layer(f"l{li}", gi, go, opts, {2: n // 4, 4: n // 2, 8: n}))
    group_cost = {"t0": {4: float(rng.integers(5, 40)), 8: float(rng.integers(5, 40))}}
    tensors = {"t0": ("t0", {4: 32, 8: 64}), "p0": ("t0", {4: 8, 8: 16}), "t1": ("t1", {4: 24, 8: 48})}
    live = [(["t0"], 10), (["t0", "p0"], 0), (["p0", "t1"], 12), (["t1"], 0)]
    return Problem(layers, group_cost, tensors, live)


def _assignments(p: Problem) -> list[tuple[Option, ...]]:
    return [c for c in itertools.product(*(lay.options for lay in p.layers)) if p.consistent(c)]


def _brute(p: Problem, budgets, flash=None, ram=None):
    """Best summed sensitivity over all distinct K-tuples of assignments meeting every budget."""
    single = _assignments(p)
    best = None
    for combo in itertools.product(single, repeat=len(budgets)):
        if len(set(combo)) < len(combo):
            continue
        stored = [max(c[i].w for c in combo) for i in range(len(p.layers))]
        if any(c[i].stored != stored[i] for c in combo for i in range(len(p.layers))):
            continue
        if any(p.path_cost(c) > b + 1e-9 for c, b in zip(combo, budgets, strict=True)):
            continue
        if flash is not None and p.flash(combo) > flash:
            continue
        if ram is not None and p.ram(combo) > ram:
            continue
        v = sum(o.sens for c in combo for o in c)
        best = v if best is None else min(best, v)
    return best


def _check(p: Problem, sol, budgets, flash=None, ram=None) -> None:
    for c, b in zip(sol.paths, budgets, strict=True):
        assert p.consistent(c)
        assert p.path_cost(c) <= b + 1e-6
    assert len({tuple(c) for c in sol.paths}) == len(sol.paths)
    for i in range(len(p.layers)):
        assert all(c[i].stored == sol.stored[i] for c in sol.paths)  # stored = widest view any path uses
        assert sol.stored[i] == max(c[i].w for c in sol.paths)
    if flash is not None:
        assert p.flash(sol.paths) <= flash
    if ram is not None:
        assert p.ram(sol.paths) <= ram


@pytest.mark.parametrize("seed", range(6))
def test_single_path_matches_brute_force(seed: int) -> None:
    p = _problem(seed)
    costs = sorted(p.path_cost(c) for c in _assignments(p))
    rng = np.random.default_rng(100 + seed)
    budget = float(rng.uniform(costs[0], costs[len(costs) // 3]))
    flash = int(rng.integers(100, 500)) if seed % 2 else None
    ram = int(rng.integers(60, 130)) if seed % 3 == 0 else None
    want = _brute(p, [budget], flash, ram)
    if want is None:
        with pytest.raises(ilp.Infeasible):
            ilp.solve(p, [budget], flash_bytes=flash, ram_bytes=ram)
        return
    sol = ilp.solve(p, [budget], flash_bytes=flash, ram_bytes=ram)
    _check(p, sol, [budget], flash, ram)
    assert sum(sol.sens) == pytest.approx(want, abs=1e-6)


@pytest.mark.parametrize("seed", range(4))
def test_two_paths_jointly_match_brute_force(seed: int) -> None:
    p = _problem(seed)
    costs = sorted(p.path_cost(c) for c in _assignments(p))
    rng = np.random.default_rng(200 + seed)
    budgets = sorted(rng.uniform(costs[len(costs) // 4], costs[-1], 2).tolist(), reverse=True)
    flash = int(rng.integers(150, 500)) if seed % 2 else None
    _solve_like_brute_force(p, budgets, flash)


def _solve_like_brute_force(p: Problem, budgets, flash) -> None:
    """The ILP is infeasible exactly when brute force finds nothing, and otherwise as good."""
    want = _brute(p, budgets, flash)
    if want is None:
        with pytest.raises(ilp.Infeasible):
            ilp.solve(p, budgets, flash_bytes=flash)
        return
    sol = ilp.solve(p, budgets, flash_bytes=flash)
    _check(p, sol, budgets, flash)
    assert sum(sol.sens) == pytest.approx(want, abs=1e-6)


def _problem_views2(seed: int) -> Problem:
    """3 chained layers, stored 8 or 2, views 8/2, activations 2/8; the first two layers get codegen's
    2-bit copies of 2-bit views of 8-bit storage (conv2d/FC), the last does not (say, depthwise)."""
    rng = np.random.default_rng(seed)
    groups = [("input", "t0"), ("t0", "t1"), ("t1", "logits")]
    layers = []
    for li, (gi, go) in enumerate(groups):
        a_ins = [8] if gi == "input" else [2, 8]
        a_outs = [32] if go == "logits" else [2, 8]
        opts = [Option(S, w, a, o, float(rng.integers(50, 150)),
                       0.0 if (w, a) == (8, 8) else float(rng.uniform(0, 1)))
                for S, w in ((8, 8), (8, 2), (2, 2)) for a in a_ins for o in a_outs]
        n = int(rng.integers(40, 120)) * 4
        layers.append(Layer(f"l{li}", gi, go, opts, {2: n // 4, 4: n // 2, 8: n}, copies=li < 2))
    tensors = {"t0": ("t0", {2: 16, 8: 64}), "t1": ("t1", {2: 12, 8: 48})}
    return Problem(layers, {}, tensors, [(["t0"], 0), (["t0", "t1"], 0), (["t1"], 0)])


def test_flash_counts_the_2bit_copies() -> None:
    p = _problem_views2(0)
    by = {(o.stored, o.w): o for o in p.layers[0].options if o.a_in == 8 and o.a_out == 8}
    rest = [lay.options[0] for lay in p.layers[1:]]  # (8, 8) options: no copies
    assert p.flash([[by[8, 8], *rest]]) == sum(lay.flash[8] for lay in p.layers)
    # a path reading the 2-bit view of layer 0's 8-bit storage adds its 2-bit copy, once
    assert p.flash([[by[8, 8], *rest], [by[8, 2], *rest]]) == sum(lay.flash[8] for lay in p.layers) + \
        p.layers[0].flash[2]
    assert p.flash([[by[8, 8], *rest], [by[8, 2], *rest], [by[8, 2], *rest[:-1], rest[-1]]]) == \
        sum(lay.flash[8] for lay in p.layers) + p.layers[0].flash[2]
    # 2-bit storage itself needs no copy
    assert p.flash([[by[2, 2], *rest]]) == p.layers[0].flash[2] + sum(lay.flash[8] for lay in p.layers[1:])


@pytest.mark.parametrize("seed", range(10))
def test_two_paths_with_copies_match_brute_force(seed: int) -> None:
    p = _problem_views2(seed)
    costs = sorted(p.path_cost(c) for c in _assignments(p))
    rng = np.random.default_rng(300 + seed)
    budgets = sorted(rng.uniform(costs[0], costs[-1], 2).tolist(), reverse=True)
    all8 = sum(lay.flash[8] for lay in p.layers)
    # between "everything at 8 bits" and "plus both copies": the copies decide what fits
    flash = all8 + int(rng.integers(0, p.layers[0].flash[2] + p.layers[1].flash[2] + 1))
    _solve_like_brute_force(p, budgets, flash)


def test_sweep_budgets_flash_ram_and_paths_json() -> None:
    p = _problem(1)
    flash = p.layers[0].flash[8] + p.layers[1].flash[4] + p.layers[2].flash[8]
    sol = ilp.sweep(p, k=3, flash_bytes=flash, ram_bytes=120)
    _check(p, sol, sol.budgets, flash, 120)
    assert sol.budgets == sorted(sol.budgets, reverse=True)
    free = ilp.sweep(p, k=2)  # no flash budget: the widest path lets the cheapest one read views of 8-bit storage
    assert free.costs[-1] <= ilp.min_cost(ilp._widest_storage(p), nested_rule=False) + 1e-6
    assert free.stored == [8, 8, 8]
    assert sol.stored[1] == 4  # the flash budget forces the middle layer to 4-bit storage
    d = ilp.to_paths_json(p, sol)
    assert [set(e["layers"]) for e in d["paths"]] == [{"l0", "l1", "l2"}] * 3
    assert all(e["layers"]["l0"][1] == 8 for e in d["paths"])  # the first layer reads the 8-bit image
    assert "budget" in ilp.summary(p, sol)


def test_infeasible_budget_names_the_budgets() -> None:
    p = _problem(2)
    with pytest.raises(ilp.Infeasible, match="cost <="):
        ilp.solve(p, [1.0])
    with pytest.raises(ilp.Infeasible, match="flash <= 3 B"):
        ilp.solve(p, [1e9], flash_bytes=3)


def test_paths_json_loads_as_a_path_table() -> None:
    torch = pytest.importorskip("torch")
    from bitpath.models import capture
    from bitpath.train.paths import PathTable

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(1, 4, 3, padding=1)
            self.fc1 = torch.nn.Linear(4 * 8 * 8, 8)
            self.fc2 = torch.nn.Linear(8, 3)

        def forward(self, x):
            return self.fc2(torch.relu(self.fc1(torch.flatten(torch.relu(self.conv(x)), 1))))

    spec = capture(Net(), (8, 8, 1))
    p = _problem(3)
    for lay, name in zip(p.layers, spec.layer_names, strict=True):
        lay.name = name
    sol = ilp.sweep(p, k=2)
    d = ilp.to_paths_json(p, sol)
    d.pop("select")
    table = PathTable.from_dict(d, spec)
    assert len(table) == 2


def test_default_sweep_keeps_room_for_the_all_8_path() -> None:
    """Narrow storage can be the cheapest of all (2-bit storage reads less flash), but it narrows
    every path's views: the default budgets start at the cheapest path that keeps the widest storage."""
    opts = [Option(8, 8, 8, 32, 10.0, 0.0), Option(8, 2, 8, 32, 8.0, 1.0), Option(2, 2, 8, 32, 6.0, 1.0)]
    p = Problem([Layer("l0", "input", "logits", opts, {2: 4, 8: 16})])
    sol = ilp.sweep(p, k=2)
    assert [(o.stored, o.w) for c in sol.paths for o in c] == [(8, 8), (8, 2)]
    assert sum(o.sens for c in sol.paths for o in c) == 1.0
    # the cheapest path is still reachable with an explicit budget
    cheap = ilp.sweep(p, k=1, fractions=[0.6])
    assert [(o.stored, o.w) for o in cheap.paths[0]] == [(2, 2)]


@pytest.mark.parametrize("seed", range(3))
def test_keep_ref_makes_path_0_the_all_8_path(seed: int) -> None:
    p = _problem(seed)
    budgets = [p.ref_cost() * 1.0001, 1e9]
    free = ilp.solve(p, budgets)
    kept = ilp.solve(p, budgets, keep_ref=True)
    _check(p, kept, budgets)
    assert all(ilp._is_ref(o) for o in kept.paths[0])
    s_free = sum(o.sens for c in free.paths for o in c)
    s_kept = sum(o.sens for c in kept.paths for o in c)
    assert s_free <= s_kept + 1e-9  # a constraint can only cost sensitivity
    # the default sweep keeps it whenever the budgets allow it
    assert all(ilp._is_ref(o) for o in ilp.sweep(p, k=2).paths[0])
