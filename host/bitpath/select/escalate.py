"""The escalating controller: run a cheap path first and escalate only when its answer looks unsure.

What runs on the device (generated C; bit for bit :func:`bitpath.export.runner.escalate`, used here as
:func:`decide`):

1. run the stage's path and read its int32 logits; ``top`` is the first index of the maximum and the
   margin is ``logits[top]`` minus the largest other logit (in int64);
2. keep that answer when ``margin >= threshold[top]``, otherwise run the next stage (and, after the
   last stage, the ``final`` path) and take its answer. Every run counts in the cost.

The thresholds are per *predicted class*: the cheap path is overconfident on some classes and unsure
on others (on Fashion-MNIST, shirts against T-shirts and pullovers), so one threshold for all
classes escalates too often on the easy ones and too rarely on the hard ones. That per-class rule is
what this controller learns over the plain confidence cascade (one threshold), which stays the
baseline every report compares against.

Fitting, for one knob setting ``mu`` (accuracy per unit of relative cost): the classes do not
interact, so each class's threshold is chosen on its own to maximise
``sum(right answers) - mu * sum(relative cost)`` over the calibration images whose cheap answer is
that class -- an exact search over the sorted margins, not a heuristic. Sweeping ``mu`` gives the
accuracy/cost curve; the knob (an allowed accuracy loss against the reference path, or a target mean
cost) picks one point of it. The whole sweep is stored in the IR, so a report can score every
setting on test images it never saw.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from bitpath.export.runner import escalate as decide
from bitpath.export.runner import top2_margin
from bitpath.ir import CTRL_PREFIX, INT32_MAX, IR, validate

RULE = ("run each stage's path; keep its answer when top-1 minus top-2 logit >= threshold[top-1 class], "
        "else run the next stage (then `final`); every run counts")

#: Knob values swept (accuracy per 100 % of the reference path's cost); 0 escalates only where it
#: is free of loss, large values escalate whenever it helps at all.
MUS = (0.0, *(float(v) for v in np.geomspace(1e-4, 10.0, 81)))


class EscalateError(ValueError):
    """The escalating controller cannot be fitted as asked; the message says what to change."""


@dataclass
class Setting:
    """One escalation rule (stages, per-class thresholds, final path) and how it does on a set of images."""

    lam: float  # the knob value ``mu`` it was fitted for (named like the net controller's lambda)
    stages: list[dict]  # [{"path": int, "threshold": [int per class]}]
    final: int
    accuracy: float = 0.0
    cost: float = 0.0  # mean per inference: every run, plus the decisions
    share: list[float] = field(default_factory=list)  # fraction of images answered by each path
    escalated: float = 0.0  # fraction of images that ran more than the first stage

    def asdict(self) -> dict:
        return asdict(self)

    def rule(self) -> dict:
        return {"lam": self.lam, "stages": self.stages, "final": self.final}


# ---------------------------------------------------------------------------------------- the rule
def image_costs(exit_: np.ndarray, stages: Sequence[dict], final: int, path_costs: Sequence[float],
                decision_cost: float) -> np.ndarray:
    """Cost of each image: every path it ran plus one decision per stage it reached."""
    c = np.asarray(path_costs, dtype=np.float64)
    run = np.array([c[int(st["path"])] for st in stages] + [c[int(final)]])
    cum = np.cumsum(run)
    ex = np.asarray(exit_, dtype=np.int64)
    return cum[ex] + decision_cost * np.minimum(ex + 1, len(stages))


def score(setting: Setting, logits: np.ndarray, y: np.ndarray, path_costs: Sequence[float],
          decision_cost: float) -> Setting:
    """``setting`` with accuracy, mean cost, shares and escalation rate measured on ``(logits, y)``."""
    chosen, exit_ = decide(logits, setting.stages, setting.final)
    k = np.asarray(logits).shape[1]
    n = max(len(chosen), 1)
    pred = np.asarray(logits, dtype=np.int64)[np.arange(len(chosen)), chosen].argmax(axis=1)
    cost = image_costs(exit_, setting.stages, setting.final, path_costs, decision_cost)
    return Setting(setting.lam, setting.stages, setting.final,
                   accuracy=float((pred == np.asarray(y)).mean()) if len(chosen) else 0.0,
                   cost=float(cost.mean()) if len(chosen) else 0.0,
                   share=[float(v) for v in np.bincount(chosen, minlength=k) / n],
                   escalated=float((exit_ > 0).mean()) if len(chosen) else 0.0)


# ---------------------------------------------------------------------------------------- fitting
def class_threshold(margin: np.ndarray, keep_gain: np.ndarray) -> int:
    """The threshold for one class that maximises the summed gain of the images kept at the stage.

    ``keep_gain[i]`` is what keeping image ``i``'s cheap answer is worth against escalating it (right
    answers gained minus ``mu`` times the cost saved). Images are kept in order of decreasing margin,
    so the choice is how many of the most confident ones to keep; equal margins are kept or escalated
    together, as the device would. Between the smallest kept margin and the largest escalated one the
    threshold goes half way, so that it does not sit on a calibration image.
    """
    m = np.asarray(margin, dtype=np.int64)
    if m.size == 0:
        return INT32_MAX  # never seen as this stage's answer: escalate, the safe side
    order = np.argsort(-m, kind="stable")
    ms, g = m[order], np.asarray(keep_gain, dtype=np.float64)[order]
    total = np.concatenate([[0.0], np.cumsum(g)])  # total[j]: keep the j most confident
    cut = np.flatnonzero(np.diff(ms) != 0) + 1  # j where ms[j - 1] > ms[j]
    allowed = np.concatenate([[0], cut, [len(ms)]])
    j = int(allowed[np.argmax(total[allowed])])  # first best: fewer kept on a tie, the safe side
    if j == 0:
        return INT32_MAX
    if j == len(ms):
        return 0
    lo, hi = int(ms[j]), int(ms[j - 1])  # escalate lo, keep hi
    return int(min(lo + 1 + (hi - lo - 1) // 2, INT32_MAX))


def fit_chain(logits: np.ndarray, y: np.ndarray, chain: Sequence[int], mu: float, path_costs: Sequence[float],
              ref_cost: float, decision_cost: float = 0.0, per_class: bool = True, rounds: int = 3) -> Setting:
    """Thresholds for the paths ``chain`` (stages cheapest first, the last one ``final``) at knob ``mu``.

    With one stage (``first -> final``) one exact threshold search per class gives the optimum of
    ``right answers - mu * cost``. With more, a stage's best thresholds depend on which images the
    stages before it let through and on what the stages after it do with the images it escalates, so
    the stages are fitted in turn (coordinate ascent, the last stage first, every threshold starting at
    "escalate all"): each step is the exact optimum for its stage with the others held, so the
    objective never decreases; ``rounds`` passes over the stages.
    """
    z = np.asarray(logits, dtype=np.int64)
    y = np.asarray(y)
    chain = [int(p) for p in chain]
    if len(chain) < 2:
        raise EscalateError(f"a chain needs a stage and a final path, got {chain}")
    ncls, nst = z.shape[2], len(chain) - 1
    c = np.asarray(path_costs, dtype=np.float64)
    tops, margins, oks = [], [], []
    for p in chain:
        top, m = top2_margin(z[:, p])
        tops.append(top)
        margins.append(m)
        oks.append((top == y).astype(np.float64))
    thr = [[INT32_MAX] * ncls for _ in range(nst)]

    def accepted(j: int) -> np.ndarray:
        return margins[j] >= np.asarray(thr[j], dtype=np.int64)[tops[j]]

    for _ in range(rounds if nst > 1 else 1):
        for j in reversed(range(nst)):
            # what escalating from stage j is worth: the later stages' answer minus mu * their extra cost
            val, extra, open_ = oks[nst].copy(), np.full(len(y), c[chain[nst]]), np.ones(len(y), bool)
            run = 0.0
            for k in range(j + 1, nst):
                run += c[chain[k]] + decision_cost
                acc = open_ & accepted(k)
                val[acc], extra[acc] = oks[k][acc], run
                open_ &= ~acc
            extra[open_] = run + c[chain[nst]]
            gain = oks[j] - (val - mu * extra / ref_cost)
            reach = np.ones(len(y), bool)
            for k in range(j):
                reach &= ~accepted(k)
            top, m = tops[j], margins[j]
            if per_class:
                thr[j] = [class_threshold(m[reach & (top == cl)], gain[reach & (top == cl)]) for cl in range(ncls)]
            else:
                thr[j] = [class_threshold(m[reach], gain[reach])] * ncls
    return Setting(float(mu), [{"path": chain[j], "threshold": thr[j]} for j in range(nst)], chain[-1])


def fit_two_stage(logits: np.ndarray, y: np.ndarray, first: int, final: int, mu: float,
                  path_costs: Sequence[float], ref_cost: float, per_class: bool = True) -> Setting:
    """Thresholds for ``first -> final`` at knob ``mu`` (per predicted class, or one for all)."""
    return fit_chain(logits, y, [first, final], mu, path_costs, ref_cost, per_class=per_class)


def chains(path_costs: Sequence[float], length: int = 2) -> list[tuple[int, ...]]:
    """Candidate chains of 2 to ``length`` paths, each strictly dearer than the one before it."""
    c = list(path_costs)
    out: list[tuple[int, ...]] = []

    def grow(ch: tuple[int, ...]) -> None:
        if len(ch) >= 2:
            out.append(ch)
        if len(ch) < length:
            for b in range(len(c)):
                if c[b] > c[ch[-1]]:
                    grow((*ch, b))

    for a in range(len(c)):
        grow((a,))
    return sorted(out, key=lambda ch: (len(ch), ch))


def sweep(logits: np.ndarray, y: np.ndarray, path_costs: Sequence[float], decision_cost: float, ref: int,
          mus: Sequence[float] = MUS, per_class: bool = True, length: int = 2,
          only: Sequence[tuple[int, ...]] | None = None) -> list[Setting]:
    """For each knob value, the best rule over every chain of up to ``length`` paths (or the chains
    ``only``), fitted and scored on the same images, keeping only settings that no cheaper-or-equal
    setting beats."""
    cands_chains = chains(path_costs, length) if only is None else [tuple(int(p) for p in ch) for ch in only]
    if not cands_chains:
        raise EscalateError("every path costs the same: there is no cheaper path to try first")
    ref_cost = float(path_costs[ref])
    best: list[Setting] = []
    for mu in mus:
        cands = [score(fit_chain(logits, y, ch, mu, path_costs, ref_cost, decision_cost, per_class), logits, y,
                       path_costs, decision_cost) for ch in cands_chains]
        best.append(max(cands, key=lambda s: s.accuracy - mu * s.cost / ref_cost))
    out, top = [], -1.0
    for s in sorted(best, key=lambda s: (s.cost, -s.accuracy)):
        if s.accuracy > top:
            out.append(s)
            top = s.accuracy
    return out


def parameter_bytes(stages: Sequence[dict]) -> int:
    """Flash the rule takes: int32 thresholds per class and one path index per stage, plus the final."""
    return int(sum(4 * len(st["threshold"]) + 1 for st in stages) + 1)


def attach(ir: IR, setting: Setting, info: dict) -> IR:
    """A copy of ``ir`` (its network only) carrying ``setting`` as its escalating controller (validated)."""
    header = dict(ir.header)
    header["controller"] = {"kind": "escalate", "stages": [{"path": int(st["path"]),
                                                            "threshold": [int(v) for v in st["threshold"]]}
                                                           for st in setting.stages],
                            "final": int(setting.final), "rule": RULE, **info}
    new = IR(header, {k: v for k, v in ir.arrays.items() if not k.startswith(CTRL_PREFIX)})
    validate(new)
    return new


def probe(ir: IR) -> IR:
    """``ir`` with a rule that always escalates through every path (for measuring the decision's cost):
    each path but the last is a stage whose thresholds no margin reaches."""
    k = len(ir.path_names)
    if k < 2:
        raise EscalateError("an escalating controller needs at least two paths")
    s = Setting(0.0, [{"path": p, "threshold": [INT32_MAX] * ir.num_classes} for p in range(k - 1)], k - 1)
    return attach(ir, s, {})
