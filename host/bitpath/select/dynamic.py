"""Fit the controller to a trained IR and report the dynamic model against its baselines.

``fit``: integer predictions of every path on training images (the generated C, run on the host) ->
float controller -> integer controller -> device costs measured on the emulated board (every path
forced, then the controller) -> the knob chosen on held-out training images -> a new IR.

``report``: on a test set, every static path, the dynamic sweep (controller included), confidence
cascades, the oracle and the best static path at equal cost; optionally the controller run on the
emulated board for N images, its choice and logits compared with the host. JSON + Markdown + PNG.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

import numpy as np

from bitpath.export.runner import choose
from bitpath.ir import CTRL_PREFIX, IR, content_hash, controller_kind
from bitpath.select import baselines
from bitpath.select import controller as C
from bitpath.select import escalate as E

BOARD = "qemu_f405"
UNIT = "instructions (emulated)"


def network_hash(ir: IR) -> str:
    """Content hash of the bit-path network alone (no controller): predictions depend only on it."""
    header = {k: v for k, v in ir.header.items() if k != "controller"}
    arrays = {k: v for k, v in ir.arrays.items() if not k.startswith(CTRL_PREFIX)}
    return content_hash(header, arrays)


def without_controller(ir: IR) -> IR:
    header = dict(ir.header)
    header["controller"] = None
    return IR(header, {k: v for k, v in ir.arrays.items() if not k.startswith(CTRL_PREFIX)})


def holdout_of(ir: IR) -> int:
    """Training images the IR's network was never trained on: the last N of the training split
    (``bitpath train --holdout``), 0 when it saw them all."""
    cfg = (ir.header.get("source") or {}).get("config") or {}
    return int(cfg.get("holdout") or 0)


def calibration_split(ir: IR, train, images: int | None, default: int = 20000):
    """The training images a controller is fitted on, and a sentence saying which: the ones the network
    was never trained on (:func:`holdout_of`) unless ``images`` asks for the first N instead (``default``
    when neither applies). ``train`` is the dataset's training split (:class:`bitpath.data.Split`)."""
    held = holdout_of(ir)
    if images is None and held:
        return train.hold_out(held)[1], (f"the last {held} training images, which the network was never "
                                         "trained on (--holdout at training)")
    calib = train.subset(images or default)
    return calib, (f"the first {len(calib)} training images (the network was trained on them: train with "
                   "--holdout N to calibrate on images it has not seen)")


def _atomic_json(obj: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=1) + "\n")
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------- predictions
def predictions(ir: IR, x: np.ndarray, work: Path, tag: str,
                progress: Callable[[Iterable], Iterable] | None = None, model=None) -> np.ndarray:
    """Int32 logits ``(N, K, classes)`` of every path, from the generated C compiled for the host
    (the code the board runs). Cached in ``work`` by network hash and image bytes.

    ``model``: an already compiled host model of the same network (with or without its controller:
    forced paths do not run it), to save a second compilation."""
    from bitpath.codegen import render
    from bitpath.codegen.hostbuild import build_host_model

    h = hashlib.sha256(network_hash(ir).encode() + np.ascontiguousarray(x).tobytes()).hexdigest()[:16]
    cache = work / f"logits-{tag}-{h}.npy"
    if cache.is_file():
        return np.load(cache)
    if model is None:
        model = build_host_model(render(without_controller(ir), work / "host-model").model_c, "ref")
    k = len(ir.path_names)
    it: Iterable[int] = range(len(x))
    if progress is not None:
        it = progress(it)
    out = np.empty((len(x), k, model.num_classes), dtype=np.int64)
    for i in it:
        for p in range(k):
            out[i, p] = model.run(x[i], p)
    work.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_name(f".{cache.name}.tmp{os.getpid()}.npy")
    np.save(tmp, out)
    os.replace(tmp, cache)
    return out


# ---------------------------------------------------------------------------------------- device costs
@contextmanager
def _on_board(ir: IR, work: Path, log: Callable[[str], None]) -> Iterator:
    """Generate ``ir``, build the firmware for the emulated board, boot it; yield a synced client."""
    from bitpath.codegen import render
    from bitpath.device import build as fw
    from bitpath.device.client import Client
    from bitpath.device.emulate import Emulator

    model_dir = work / "board-model"
    render(ir, model_dir)
    log(f"building the firmware for {BOARD} ({model_dir})")
    elf = fw.build(BOARD, model_dir=model_dir)
    with Emulator(elf) as emu, Client(emu.url, timeout=60.0) as dev:
        dev.sync()
        yield dev


def _controller_shape(ir: IR):
    """What the controller's measured cost depends on besides network, kernels and firmware."""
    if controller_kind(ir) == "escalate":
        return "escalate"
    return [n["out_shape"] for n in ir.header["controller"]["net"]["graph"]]


def measure_costs(ir: IR, work: Path, images: np.ndarray, log: Callable[[str], None] = lambda s: None) -> dict:
    """Mean device cost of every forced path and of the controller (``bp-path auto``), measured on the
    emulated board with the firmware built from ``ir`` (which must carry a controller).

    Net controller: ``controller`` is what the device reports for it under ``auto``. Escalating
    controller: ``ir`` must carry :func:`bitpath.select.escalate.probe` (every stage escalates), and
    ``controller`` is the cost of one decision: the ``auto`` run's total less the forced runs of every
    path on the same image (instruction counts of a path on an image repeat exactly), per decision."""
    from bitpath.select.costs import firmware_hash, kernels_hash

    c = ir.header["controller"]
    escalating = controller_kind(ir) == "escalate"
    paths = [[] for _ in ir.path_names]
    ctrl: list[float] = []
    with _on_board(ir, work, log) as dev:
        info = dev.info()
        if info.ir_hash != ir.content_hash()[:16]:
            raise C.ControllerError(f"the board runs IR {info.ir_hash}, not {ir.content_hash()[:16]}")
        unit = None
        for x in images:
            forced = []
            for p in range(len(paths)):
                _, chosen, costs = dev.run(x.tobytes(), p)
                paths[p].append(costs.total)
                forced.append(costs.total)
                unit = costs.unit
            _, chosen, costs = dev.run(x.tobytes(), "auto")
            if not escalating:
                ctrl.append(costs.controller)
                continue
            if chosen != c["final"]:
                raise C.ControllerError(f"the cost probe stopped at path {chosen}, not at the final path {c['final']}:"
                                        " a margin reached the probe's threshold")
            ctrl.append((costs.total - sum(forced)) / len(c["stages"]))
    return {"board": BOARD, "unit": unit or UNIT, "images": len(images),
            "paths": [float(np.mean(v)) for v in paths], "controller": float(np.mean(ctrl)),
            **({"controller_is": "one escalation decision (top-2 margin and threshold)"} if escalating else {}),
            "key": {"network": network_hash(ir)[:16], "kernels": kernels_hash("dsp"), "firmware": firmware_hash(),
                    "controller_shape": _controller_shape(ir)}}


def _costs_key_current(costs: dict, ir: IR) -> bool:
    from bitpath.select.costs import firmware_hash, kernels_hash

    k = costs.get("key", {})
    return (k.get("network") == network_hash(ir)[:16] and k.get("kernels") == kernels_hash("dsp")
            and k.get("firmware") == firmware_hash()
            and k.get("controller_shape") == _controller_shape(ir))


# ---------------------------------------------------------------------------------------- fit
def fit(ir: IR, x: np.ndarray, y: np.ndarray, *, val: int, cfg: C.ControllerConfig, reference: int,
        max_loss_pp: float | None, target_cost: float | None, work: Path, cost_images: int = 3,
        costs: dict | None = None, log: Callable[[str], None] = print,
        progress: Callable[[Iterable], Iterable] | None = None, kind: str = "net",
        per_class: bool = False, chain: int = 3) -> tuple[IR, dict]:
    """Train, quantize, measure and tune the controller; the last ``val`` images are held out.

    ``kind="escalate"`` fits the escalating controller instead (:mod:`bitpath.select.escalate`; its
    few thresholds are fitted on all the images, ``val`` and ``cfg`` do not apply; ``chain`` is the most
    paths one image may run, 2 or 3)."""
    if kind == "escalate":
        return fit_escalate(ir, x, y, reference=reference, max_loss_pp=max_loss_pp, target_cost=target_cost,
                            work=work, cost_images=cost_images, costs=costs, per_class=per_class, log=log,
                            progress=progress, chain=chain)
    if kind != "net":
        raise C.ControllerError(f"unknown controller kind {kind!r}: use 'net' or 'escalate'")
    if not 0 < val < len(x):
        raise C.ControllerError(f"need 0 < held-out images ({val}) < images ({len(x)})")
    base = without_controller(ir)
    k = len(ir.path_names)
    t0 = time.time()
    log(f"[1/5] integer predictions of {k} paths on {len(x)} training images (generated C on the host)")
    logits = predictions(base, x, work, "train", progress)
    correct = logits.argmax(2) == y[:, None]
    tr, va = slice(0, len(x) - val), slice(len(x) - val, len(x))
    feats = C.pooled(x, cfg.pool)
    log(f"[2/5] training the controller ({cfg.pool}x{cfg.pool} pooled input, {cfg.hidden} hidden units, "
        f"{cfg.epochs} epochs) on {len(x) - val} images")
    net = C.train_float(feats[tr], correct[tr], cfg, progress)
    net_header, arrays, score_scale = C.quantize(base, net, feats[tr], cfg)
    order0 = list(range(k))
    probe = C.attach(base, net_header, arrays, penalty=[0] * k, order=order0, info={})
    if costs is None or not _costs_key_current(costs, probe):
        log(f"[3/5] measuring device costs on the emulated board ({cost_images} images per path, and the controller)")
        costs = measure_costs(probe, work, x[:cost_images], log)
    else:
        log("[3/5] device costs: current measurement reused")
    log(f"[4/5] integer controller scores on {val} held-out images; choosing the knob")
    scores = C.integer_scores(probe, x[va])
    pc = costs["paths"]
    points = C.sweep(scores, correct[va], pc, costs["controller"], reference, score_scale)
    ref_acc = float(correct[va, reference].mean())
    op, why = C.pick_operating(points, ref_accuracy=ref_acc, ref_cost=pc[reference], max_loss_pp=max_loss_pp,
                               target_cost=target_cost)
    swept = op
    op = C.refine(op, scores, correct[va], pc, costs["controller"], ref_accuracy=ref_acc, ref_cost=pc[reference],
                  max_loss_pp=max_loss_pp, target_cost=target_cost)
    if op is not swept:
        why += f"; penalties then refined path by path (lambda sweep alone: {100 * swept.accuracy:.2f} % at " \
               f"{swept.cost / pc[reference]:.3f}x)"
    statics = [(p, float(correct[va, p].mean()), pc[p]) for p in range(k)]
    dominated = [ir.path_names[p] for p, a, cst in statics if a >= op.accuracy and cst <= op.cost]
    if dominated:
        log(f"      note: on the held-out images static {', '.join(dominated)} is as accurate and no dearer than the "
            "controller: with these kernels and paths the controller does not pay")
    info = {
        "features": f"{cfg.pool}x{cfg.pool} average pool of the raw input",
        "score_scale": score_scale,
        "lambda": op.lam,
        "reference": ir.path_names[reference],
        "dominated_by_static": dominated,
        "knob": {"max_loss_pp": max_loss_pp, "target_cost": target_cost, "chosen_by": why},
        "costs": costs,
        "train": {"images": len(x) - val, "held_out": val, "config": asdict(cfg),
                  "held_out_accuracy": op.accuracy, "held_out_cost": op.cost,
                  "held_out_reference_accuracy": ref_acc, "seconds": round(time.time() - t0, 1)},
    }
    final = C.attach(base, net_header, arrays, penalty=op.penalty, order=C.cost_order(pc), info=info)
    log(f"[5/5] lambda {op.lam:.4g}: held-out accuracy {100 * op.accuracy:.2f} % (reference "
        f"{ir.path_names[reference]} {100 * ref_acc:.2f} %), mean cost {op.cost / pc[reference]:.3f}x; {why}")
    return final, info


def fit_escalate(ir: IR, x: np.ndarray, y: np.ndarray, *, reference: int, max_loss_pp: float | None,
                 target_cost: float | None, work: Path, cost_images: int = 3, costs: dict | None = None,
                 per_class: bool = False, log: Callable[[str], None] = print,
                 progress: Callable[[Iterable], Iterable] | None = None, chain: int = 3) -> tuple[IR, dict]:
    """Fit the escalating controller: integer logits of every path on ``x`` -> device costs -> the
    threshold sweep over every chain of 2 to ``chain`` paths -> the knob's setting -> a new IR."""
    if chain not in (2, 3):
        raise C.ControllerError(f"an escalation chain runs 2 or 3 paths, got {chain}")
    base = without_controller(ir)
    k = len(ir.path_names)
    t0 = time.time()
    log(f"[1/4] integer predictions of {k} paths on {len(x)} training images (generated C on the host)")
    logits = predictions(base, x, work, "train", progress)
    correct = logits.argmax(2) == y[:, None]
    probe = E.probe(base)
    if costs is None or not _costs_key_current(costs, probe):
        log(f"[2/4] measuring device costs on the emulated board ({cost_images} images per path, and the decision)")
        costs = measure_costs(probe, work, x[:cost_images], log)
    else:
        log("[2/4] device costs: current measurement reused")
    pc = costs["paths"]
    log(f"[3/4] thresholds ({'one per predicted class' if per_class else 'one for all classes'}) for every "
        f"cheaper -> dearer chain of 2{' or 3' if chain == 3 else ''} paths, swept over the knob, on {len(x)} images")
    points = E.sweep(logits, y, pc, costs["controller"], reference, per_class=per_class, length=chain)
    ref_acc = float(correct[:, reference].mean())
    op, why = C.pick_operating(points, ref_accuracy=ref_acc, ref_cost=pc[reference], max_loss_pp=max_loss_pp,
                               target_cost=target_cost, images="calibration")
    statics = [(p, float(correct[:, p].mean()), pc[p]) for p in range(k)]
    dominated = [ir.path_names[p] for p, a, cst in statics if a >= op.accuracy and cst <= op.cost]
    if dominated:
        log(f"      note: on these images static {', '.join(dominated)} is as accurate and no dearer than the "
            "controller: with these kernels and paths escalation does not pay")
    names = ir.path_names
    # The baseline a report holds the controller against on equal terms: the plain confidence cascade
    # (cheapest path -> reference path, one margin threshold), its threshold picked by the same knob
    # on the same calibration images.
    cheap = int(np.argmin(pc))
    cascade = None
    if cheap != reference:
        cpts = E.sweep(logits, y, pc, costs["controller"], reference, per_class=False, only=[(cheap, reference)])
        cop, _ = C.pick_operating(cpts, ref_accuracy=ref_acc, ref_cost=pc[reference], max_loss_pp=max_loss_pp,
                                  target_cost=target_cost, images="calibration")
        cascade = {**cop.rule(), "calibration_accuracy": cop.accuracy, "calibration_cost": cop.cost,
                   "sweep": [p.rule() for p in cpts]}  # every knob setting, so a report compares whole curves
    info = {
        "features": f"top-1/top-2 margin of the first path's logits, thresholds "
                    f"{'per predicted class' if per_class else 'shared by all classes'}",
        "lambda": op.lam,
        "reference": names[reference],
        "dominated_by_static": dominated,
        "knob": {"max_loss_pp": max_loss_pp, "target_cost": target_cost, "chosen_by": why},
        "costs": costs,
        "sweep": [p.rule() for p in points],
        "calibrated_cascade": cascade,
        "train": {"images": len(x), "per_class": per_class, "chain": chain, "calibration_accuracy": op.accuracy,
                  "calibration_cost": op.cost, "calibration_reference_accuracy": ref_acc,
                  "escalated": op.escalated, "seconds": round(time.time() - t0, 1)},
    }
    final = E.attach(base, op, info)
    chain = " -> ".join([names[st["path"]] for st in op.stages] + [names[op.final]])
    log(f"[4/4] {chain}, mu {op.lam:.4g}: {100 * op.accuracy:.2f} % on these images (reference "
        f"{names[reference]} {100 * ref_acc:.2f} %), {100 * op.escalated:.1f} % escalated, mean cost "
        f"{op.cost / pc[reference]:.3f}x; {why}")
    return final, info


# ---------------------------------------------------------------------------------------- report
def board_check(ir: IR, x: np.ndarray, work: Path, host_paths: np.ndarray, host_logits: np.ndarray,
                log: Callable[[str], None] = lambda s: None,
                progress: Callable[[Iterable], Iterable] | None = None) -> dict:
    """Run ``bp-path auto`` on the emulated board for every image of ``x``; compare the chosen path
    and the logits with the host's."""
    path_mismatch, logit_mismatch, ctrl, total = [], [], [], []
    it: Iterable[int] = range(len(x))
    if progress is not None:
        it = progress(it)
    with _on_board(ir, work, log) as dev:
        dev.set_path("auto")
        for i in it:
            got, chosen, costs = dev.run(x[i].tobytes())
            if chosen != int(host_paths[i]):
                path_mismatch.append(i)
            if list(got) != [int(v) for v in host_logits[i, chosen]]:
                logit_mismatch.append(i)
            ctrl.append(costs.controller)
            total.append(costs.total)
    return {"images": len(x), "path_mismatches": path_mismatch, "logit_mismatches": logit_mismatch,
            "controller_cost_mean": float(np.mean(ctrl)) if ctrl else 0.0,
            "total_cost_mean": float(np.mean(total)) if total else 0.0}


def evaluate(ir: IR, x: np.ndarray, y: np.ndarray, work: Path, *, board_images: int = 0,
             what_if: dict[str, float] | None = None, log: Callable[[str], None] = print,
             progress: Callable[[Iterable], Iterable] | None = None) -> dict:
    """Everything the report shows, on images ``x`` with labels ``y``.

    ``what_if`` maps path names to hypothetical costs (fractions of the reference path's measured
    cost): the same controller scores and answers are then re-costed, to say what kernels would have
    to reach for a given saving."""
    c = ir.header.get("controller")
    if c is None:
        raise C.ControllerError("this IR has no controller: run `bitpath select controller` first")
    names = ir.path_names
    k = len(names)
    costs = c["costs"]
    pc = np.asarray(costs["paths"], dtype=np.float64)
    ctrl_cost = float(costs["controller"])
    ref = names.index(c["reference"])
    log(f"integer predictions of {k} paths on {len(x)} images (generated C on the host)")
    host_model = _host_model(ir, work)  # with the controller: one compilation for both uses
    logits = predictions(ir, x, work, "eval", progress, model=host_model)
    correct = logits.argmax(2) == y[:, None]
    kind = controller_kind(ir)
    if kind == "escalate":
        log("escalation decisions (numpy reference) and the generated controller in C, on every image")
        chosen, exit_ = E.decide(logits, c["stages"], c["final"])
        per_image = E.image_costs(exit_, c["stages"], c["final"], pc, ctrl_cost)
        dyn_cost = float(per_image.mean())
        ctrl_mean = ctrl_cost * float(np.minimum(exit_ + 1, len(c["stages"])).mean())
        points = [E.score(E.Setting(p["lam"], p["stages"], p["final"]), logits, y, pc, ctrl_cost)
                  for p in c.get("sweep", [])]
        label = "escalating controller " + " -> ".join([names[st["path"]] for st in c["stages"]] + [names[c["final"]]])
        escalated: float | None = float((exit_ > 0).mean())
    else:
        log("controller scores (numpy reference) and the generated controller in C, on every image")
        scores = C.integer_scores(ir, x)
        chosen = choose(scores, c["penalty"], c["order"])
        dyn_cost = ctrl_cost + float(pc[chosen].mean())
        ctrl_mean = ctrl_cost
        points = C.sweep(scores, correct, pc, ctrl_cost, ref, c["score_scale"])
        label = "controller"
        escalated = None
    host_c = np.array([host_model.run_auto(xi)[0] for xi in x], dtype=np.int64)
    static = [{"path": names[p], "accuracy": float(correct[:, p].mean()), "cost": float(pc[p]),
               "relative_cost": float(pc[p] / pc[ref])} for p in range(k)]
    acc = float(correct[np.arange(len(y)), chosen].mean())
    cheap = int(np.argmin(pc))
    best_acc = int(np.argmax([s["accuracy"] for s in static]))
    calibrated = None  # the plain cascade fitted like the controller (fit_escalate), scored on these images
    if kind == "escalate" and c.get("calibrated_cascade"):
        cc = c["calibrated_cascade"]
        sc = E.score(E.Setting(cc["lam"], cc["stages"], cc["final"]), logits, y, pc, ctrl_cost)
        calibrated = {"first": int(cc["stages"][0]["path"]), "second": int(cc["final"]),
                      "threshold": int(cc["stages"][0]["threshold"][0]), "accuracy": sc.accuracy, "cost": sc.cost,
                      "escalated": sc.escalated}
        if cc.get("sweep"):  # IRs fitted before stop 15 hold the chosen setting only
            csw = [E.score(E.Setting(p["lam"], p["stages"], p["final"]), logits, y, pc, ctrl_cost)
                   for p in cc["sweep"]]
            calibrated["sweep"] = [{"lam": q.lam, "accuracy": q.accuracy, "cost": q.cost} for q in csw]
            calibrated["versus"] = versus_curve([(q.cost, q.accuracy) for q in points],
                                                [(q.cost, q.accuracy) for q in csw], (dyn_cost, acc))
    cascades = {}
    for second in range(k):
        if second != cheap:
            cascades[names[second]] = baselines.cascade(logits, y, pc, cheap, second)
    at_equal = [s for s in static if s["cost"] <= dyn_cost]
    best_static_equal = max(at_equal, key=lambda s: s["accuracy"]) if at_equal else None
    casc_equal = [e for v in cascades.values() for e in v if e["cost"] <= dyn_cost]
    best_cascade_equal = max(casc_equal, key=lambda e: e["accuracy"]) if casc_equal else None
    orc = baselines.oracle(correct, pc)
    front = baselines.mix_front([(st["cost"], st["accuracy"]) for st in static])
    r = {
        "date": time.strftime("%Y-%m-%d"),
        "ir_hash": ir.content_hash(),
        "images": len(y),
        "unit": costs["unit"],
        "board": costs["board"],
        "paths": names,
        "reference": names[ref],
        "static": static,
        "dynamic": {
            "accuracy": acc, "cost": dyn_cost, "relative_cost": dyn_cost / pc[ref], "lambda": c["lambda"],
            "share": [float(v) for v in np.bincount(chosen, minlength=k) / len(chosen)],
            "kind": kind, "label": label, "escalated": escalated,
            "controller_cost": ctrl_mean, "controller_share": ctrl_mean / dyn_cost,
            "controller_parameter_bytes": C.parameter_bytes(ir),
            "host_c_path_mismatches": int((host_c != chosen).sum()),
            "chosen_by": c["knob"]["chosen_by"],
            "dominated_by_static": c.get("dominated_by_static", []),
        },
        "sweep": [p.asdict() for p in points],
        "cascades": cascades,
        "oracle": orc,
        "best_static_at_equal_cost": best_static_equal,
        "best_cascade_at_equal_cost": best_cascade_equal,
        "calibrated_cascade": calibrated,
        "static_mix_front": front,
        "static_mix_at_equal_cost": baselines.mix_accuracy(front, dyn_cost),
        "input_awareness": _input_awareness(points, front, cascades),
        "most_accurate_static": static[best_acc],
        "costs": costs,
    }
    if what_if:
        if kind == "escalate":
            per_class = bool(c.get("train", {}).get("per_class"))
            length = int(c.get("train", {}).get("chain", 2))
            r["what_if"] = _what_if(what_if, names, pc, ref, correct, c, lambda h: E.sweep(
                logits, y, h, ctrl_cost, ref, mus=[0.0, *np.geomspace(1e-5, 100.0, 141)], per_class=per_class,
                length=length))
        else:
            r["what_if"] = _what_if(what_if, names, pc, ref, correct, c, lambda h: C.sweep(
                scores, correct, h, ctrl_cost, ref, c["score_scale"], lams=[0.0, *np.geomspace(0.001, 10000.0, 141)]))
    if board_images:
        n = min(board_images, len(x))
        log(f"controller on the emulated board: {n} images under `bp-path auto`")
        r["board_check"] = board_check(ir, x[:n], work, chosen[:n], logits[:n], log, progress)
    return r


def versus_curve(ours: list[tuple[float, float]], theirs: list[tuple[float, float]],
                 chosen: tuple[float, float]) -> dict | None:
    """Our knob sweep against another curve at equal cost: at each of our settings, our accuracy minus
    the best of theirs at no more cost (settings cheaper than all of theirs are left out).

    ``chosen`` is our operating point (cost, accuracy). Differences are in percentage points;
    ``ahead``/``tied``/``behind`` count settings with a difference above, at (within 1e-9) or below zero."""
    def best_at(curve, cost):
        acc = [a for c, a in curve if c <= cost + 1e-9]
        return max(acc) if acc else None

    diffs = []
    for c, a in ours:
        b = best_at(theirs, c)
        if b is not None:
            diffs.append(100.0 * (a - b))
    if not diffs:
        return None
    d = np.asarray(diffs)
    cost, acc = chosen
    b = best_at(theirs, cost)
    return {"compared": len(d), "ahead": int((d > 1e-9).sum()), "tied": int((np.abs(d) <= 1e-9).sum()),
            "behind": int((d < -1e-9).sum()), "mean_pp": float(d.mean()), "min_pp": float(d.min()),
            "max_pp": float(d.max()),
            "at_chosen_pp": None if b is None else 100.0 * (acc - b)}


def _input_awareness(points: list, front: list, cascades: dict) -> dict | None:
    """Where the knob sweep beats a random split of static paths by the most, and how it does against
    every cascade at no more cost there. The sweep is scored on the report's own images, so this is
    what the controller's scores can reach, not what a knob chosen beforehand reaches."""
    casc = [e for v in cascades.values() for e in v]
    best = None
    for p in points:
        mix = baselines.mix_accuracy(front, p.cost)
        if mix is None:
            continue
        gain = p.accuracy - mix
        if best is None or gain > best["gain_over_mix"]:
            cheaper = [e["accuracy"] for e in casc if e["cost"] <= p.cost]
            best = {"lam": p.lam, "cost": p.cost, "accuracy": p.accuracy, "mix_accuracy": mix, "gain_over_mix": gain,
                    "best_cascade_accuracy": max(cheaper) if cheaper else None, "share": p.share}
    return best


def _what_if(what_if: dict[str, float], names: list[str], pc: np.ndarray, ref: int, correct: np.ndarray, c: dict,
             sweep: Callable[[np.ndarray], list]) -> dict:
    """The same answers re-costed with hypothetical path costs; ``sweep(costs)`` gives the knob's points."""
    unknown = sorted(set(what_if) - set(names))
    if unknown:
        raise C.ControllerError(f"--what-if names unknown paths {unknown}; paths are {names}")
    hyp = pc.copy()
    for n, frac in what_if.items():
        hyp[names.index(n)] = frac * pc[ref]
    loss = c["knob"].get("max_loss_pp") or 0.3
    ref_acc = float(correct[:, ref].mean())
    pts = sweep(hyp)
    ok = [p for p in pts if p.accuracy >= ref_acc - loss / 100 - 1e-12]
    best = min(ok, key=lambda p: p.cost) if ok else None
    return {"relative_costs": {n: float(hyp[i] / pc[ref]) for i, n in enumerate(names)}, "max_loss_pp": loss,
            "best_within_loss": best.asdict() if best else None,
            "static_within_loss": [{"path": names[i], "relative_cost": float(hyp[i] / pc[ref]),
                                    "accuracy": float(correct[:, i].mean())}
                                   for i in range(len(names)) if correct[:, i].mean() >= ref_acc - loss / 100 - 1e-12],
            "oracle": baselines.oracle(correct, hyp)}


def _host_model(ir: IR, work: Path):
    from bitpath.codegen import render
    from bitpath.codegen.hostbuild import build_host_model

    return build_host_model(render(ir, work / "host-model-ctrl").model_c, "ref")


def markdown(r: dict, command: str = "") -> str:
    u = r["unit"]
    d = r["dynamic"]
    names = r["paths"]
    lines = [
        "# Dynamic bit-path selection: controller vs static paths, cascades and the oracle", "",
        f"Date: {r['date']}. IR `{r['ir_hash'][:16]}`, {r['images']:,} test images, integer model. Costs: mean "
        f"{u} per inference on `{r['board']}`, measured on the board (controller included where it runs).", "",
    ]
    if command:
        lines += ["```sh", command, "```", ""]
    lines += ["| strategy | accuracy | mean cost | vs " + r["reference"] + " |", "|---|---:|---:|---:|"]
    ref_cost = next(s["cost"] for s in r["static"] if s["path"] == r["reference"])
    for s in r["static"]:
        lines.append(f"| static {s['path']} | {100 * s['accuracy']:.2f} % | {s['cost']:,.0f} | "
                     f"{s['cost'] / ref_cost:.3f}x |")
    esc = f", {100 * d['escalated']:.1f} % escalated" if d.get("escalated") is not None else ""
    lines.append(f"| **dynamic ({d.get('label', 'controller')}, lambda {d['lambda']:.3g}{esc})** | "
                 f"**{100 * d['accuracy']:.2f} %** | "
                 f"**{d['cost']:,.0f}** | **{d['relative_cost']:.3f}x** |")
    o = r["oracle"]
    lines.append(f"| oracle (hindsight) | {100 * o['accuracy']:.2f} % | {o['cost']:,.0f} | "
                 f"{o['cost'] / ref_cost:.3f}x |")
    b = r["best_cascade_at_equal_cost"]
    if b:
        lines.append(f"| best cascade at <= the dynamic cost ({names[b['first']]} -> {names[b['second']]}, margin < "
                     f"{b['threshold']:,}, {100 * b['escalated']:.1f} % escalated) | {100 * b['accuracy']:.2f} % | "
                     f"{b['cost']:,.0f} | {b['cost'] / ref_cost:.3f}x |")
    cc = r.get("calibrated_cascade")
    if cc:
        lines.append(f"| cascade fitted like the controller ({names[cc['first']]} -> {names[cc['second']]}, one "
                     f"threshold picked by the same knob on the same calibration images: margin < "
                     f"{cc['threshold']:,}, {100 * cc['escalated']:.1f} % escalated) | {100 * cc['accuracy']:.2f} % | "
                     f"{cc['cost']:,.0f} | {cc['cost'] / ref_cost:.3f}x |")
    if r.get("static_mix_at_equal_cost") is not None:
        lines.append(f"| random split of static paths at the dynamic cost (no input awareness) | "
                     f"{100 * r['static_mix_at_equal_cost']:.2f} % | {d['cost']:,.0f} | {d['relative_cost']:.3f}x |")
    s = r["best_static_at_equal_cost"]
    lines += ["", "- Paths chosen by the controller: " + ", ".join(
        f"{n} {100 * v:.1f} %" for n, v in zip(names, d["share"], strict=True)) + ".",
        f"- Controller{' decisions (the runs of escalated images are in the mean cost)' if esc else ''}: "
        f"{d['controller_cost']:,.0f} {u} per inference ({100 * d['controller_share']:.2f} % of the "
        f"dynamic mean), {d['controller_parameter_bytes']:,} bytes of parameters.",
        f"- Knob: {d['chosen_by']}.",
        *([f"- On the held-out images, static {', '.join(d['dominated_by_static'])} was as accurate and no dearer: "
           "the controller does not pay with these paths and kernels."] if d.get("dominated_by_static") else []),
        "- Best static path at <= the dynamic cost: " + (f"{s['path']} at {100 * s['accuracy']:.2f} %" if s else
                                                          "none (every static path costs more)") + ".",
        f"- Generated controller in C on the host: {d['host_c_path_mismatches']} path choices differ from the numpy "
        f"reference over {r['images']:,} images."]
    vs = (cc or {}).get("versus")
    if vs:
        chosen_txt = (f"; at the chosen setting {vs['at_chosen_pp']:+.2f} pp" if vs["at_chosen_pp"] is not None
                      else "; the chosen setting is cheaper than every such cascade")
        lines.append(f"- Against the cascade fitted like the controller, whole curves: both knob sweeps scored on "
                     f"these images, at each of the controller's {vs['compared']} settings against the best such "
                     f"cascade at no more cost: ahead at {vs['ahead']}, tied at {vs['tied']}, behind at "
                     f"{vs['behind']}; mean {vs['mean_pp']:+.2f} pp (from {vs['min_pp']:+.2f} to "
                     f"{vs['max_pp']:+.2f}){chosen_txt}.")
    ia = r.get("input_awareness")
    if ia:
        casc = (f"{100 * ia['best_cascade_accuracy']:.2f} %" if ia["best_cascade_accuracy"] is not None
                else "none at that cost")
        lines.append(f"- Input awareness: along the knob sweep (scored on these images), the largest gain over a "
                     f"random split of static paths at equal cost is {100 * ia['gain_over_mix']:+.2f} pp, at "
                     f"{ia['cost'] / ref_cost:.3f}x: {100 * ia['accuracy']:.2f} % against "
                     f"{100 * ia['mix_accuracy']:.2f} % (best cascade at no more cost: {casc}).")
    if "board_check" in r:
        bc = r["board_check"]
        lines.append(f"- On the emulated board, {bc['images']} images under `bp-path auto`: "
                     f"{len(bc['path_mismatches'])} chosen paths differ from the host's, "
                     f"{len(bc['logit_mismatches'])} logit vectors differ; {bc['total_cost_mean']:,.0f} {u} per "
                     f"inference on average, of which the controller {bc['controller_cost_mean']:,.0f}"
                     f"{' (earlier stages included)' if esc else ''}.")
    if "what_if" in r:
        w = r["what_if"]
        b = w["best_within_loss"]
        hyp = ", ".join(f"{n} {v:.2f}x" for n, v in w["relative_costs"].items())
        lines += ["", f"**What if** the paths cost {hyp} (hypothetical kernels; same controller scores and answers, "
                  "knob chosen on this test set, so an upper bound):"]
        if b:
            lines.append(f"- cheapest dynamic setting within {w['max_loss_pp']} pp of {r['reference']}: "
                         f"{100 * b['accuracy']:.2f} % at {b['cost'] / ref_cost:.3f}x (paths: "
                         + ", ".join(f"{n} {100 * v:.1f} %" for n, v in zip(names, b["share"], strict=True)) + ").")
        for st_ in w["static_within_loss"]:
            lines.append(f"- static {st_['path']}: {100 * st_['accuracy']:.2f} % at {st_['relative_cost']:.3f}x.")
        lines.append(f"- oracle: {100 * w['oracle']['accuracy']:.2f} % at {w['oracle']['cost'] / ref_cost:.3f}x.")
    lines += ["", "![accuracy vs cost](pareto.png)", ""]
    return "\n".join(lines)


def plot(r: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ref_cost = next(s["cost"] for s in r["static"] if s["path"] == r["reference"])
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for s in r["static"]:
        ax.scatter(s["cost"] / ref_cost, 100 * s["accuracy"], marker="s", color="tab:blue", zorder=3)
        ax.annotate(s["path"], (s["cost"] / ref_cost, 100 * s["accuracy"]), textcoords="offset points",
                    xytext=(4, 4), fontsize=8)
    sw = sorted((p["cost"] / ref_cost, 100 * p["accuracy"]) for p in r["sweep"])
    ax.plot(*zip(*sw, strict=True), "-", color="tab:red", alpha=0.8, label="dynamic (knob sweep)")
    colors = ["tab:green", "tab:purple", "tab:brown", "tab:gray", "tab:olive", "tab:cyan"]
    for j, (name, pts) in enumerate(r["cascades"].items()):
        cs = sorted((p["cost"] / ref_cost, 100 * p["accuracy"]) for p in pts)
        ax.plot(*zip(*cs, strict=True), ":", color=colors[j % len(colors)], alpha=0.8,
                label=f"cascade {r['paths'][pts[0]['first']]} -> {name}" if pts else f"cascade -> {name}")
    cal = (r.get("calibrated_cascade") or {}).get("sweep")
    if cal:
        cs = sorted((p["cost"] / ref_cost, 100 * p["accuracy"]) for p in cal)
        ax.plot(*zip(*cs, strict=True), "-", color="tab:orange", alpha=0.8,
                label="cascade fitted like the controller (knob sweep)")
    d = r["dynamic"]
    ax.scatter(d["relative_cost"], 100 * d["accuracy"], marker="*", s=160, color="tab:red", zorder=4,
               label="dynamic (chosen)")
    if r.get("static_mix_front") and len(r["static_mix_front"]) > 1:
        mf = [(c / ref_cost, 100 * a) for c, a in r["static_mix_front"]]
        ax.plot(*zip(*mf, strict=True), "--", color="tab:blue", alpha=0.6, label="random split of static paths")
    o = r["oracle"]
    ax.scatter(o["cost"] / ref_cost, 100 * o["accuracy"], marker="^", color="black", zorder=4, label="oracle")
    ax.set_xlabel(f"mean cost / {r['reference']} ({r['unit']}, controller included)")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(r: dict, out: Path, command: str = "") -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    files = {"json": out / "report.json", "md": out / "report.md", "png": out / "pareto.png"}
    _atomic_json(r, files["json"])
    files["md"].write_text(markdown(r, command))
    plot(r, files["png"])
    return files
