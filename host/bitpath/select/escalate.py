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


def fit_two_stage(logits: np.ndarray, y: np.ndarray, first: int, final: int, mu: float,
                  path_costs: Sequence[float], ref_cost: float, per_class: bool = True) -> Setting:
    """Thresholds for ``first -> final`` at knob ``mu`` (per predicted class, or one for all)."""
    z = np.asarray(logits, dtype=np.int64)
    y = np.asarray(y)
    top, m = top2_margin(z[:, first])
    ok1 = (top == y).astype(np.float64)
    ok2 = (z[:, final].argmax(axis=1) == y).astype(np.float64)
    gain = ok1 - ok2 + mu * float(path_costs[final]) / ref_cost  # keeping saves the final run
    ncls = z.shape[2]
    if per_class:
        thr = [class_threshold(m[top == c], gain[top == c]) for c in range(ncls)]
    else:
        thr = [class_threshold(m, gain)] * ncls
    return Setting(float(mu), [{"path": int(first), "threshold": thr}], int(final))


def chains(path_costs: Sequence[float]) -> list[tuple[int, int]]:
    """Candidate ``(first, final)`` pairs: every path as the first stage with every dearer one after it."""
    c = list(path_costs)
    return [(a, b) for a in range(len(c)) for b in range(len(c)) if c[b] > c[a]]


def sweep(logits: np.ndarray, y: np.ndarray, path_costs: Sequence[float], decision_cost: float, ref: int,
          mus: Sequence[float] = MUS, per_class: bool = True) -> list[Setting]:
    """For each knob value, the best rule over every chain (fitted and scored on the same images),
    keeping only settings that no cheaper-or-equal setting beats."""
    pairs = chains(path_costs)
    if not pairs:
        raise EscalateError("every path costs the same: there is no cheaper path to try first")
    ref_cost = float(path_costs[ref])
    best: list[Setting] = []
    for mu in mus:
        cands = [score(fit_two_stage(logits, y, a, b, mu, path_costs, ref_cost, per_class), logits, y,
                       path_costs, decision_cost) for a, b in pairs]
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
