"""Results of a bench run: aggregate the JSON-lines log into one versioned results document.

Everything is computed from the stored measurements, so `bitpath report` can regenerate the report
from the log or from the results JSON at any time. Figures and how they were taken:

- ``cost``: the device's counter per inference (controller + layers, from `bp-layers`), in its unit:
  *instructions (emulated)* on QEMU, *cycles* (DWT CYCCNT) on silicon;
- ``time_us``: on silicon cycles / the core clock the device reports; on QEMU the emulated
  instructions at the profile clock assuming 1 instruction/cycle (labelled an estimate);
- ``lap_us``: the device's own 1 MHz timer around `infer 1 0` (QEMU: virtual microseconds);
- ``energy``: measured with a PPK2 when the log has such records, else estimated (and labelled so).
- ``oracle``: the cheapest path that is right for each image, known only in hindsight (a bound);
- ``cascade``: run the cheapest static path and escalate to the most accurate one when its top-2
  logit margin is below a threshold, computed from the measured per-path logits and costs (the
  escalation itself is not run on the device).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np

from bitpath.bench.boards import BoardProfile
from bitpath.bench.energy import estimate, summarize
from bitpath.bench.run import AUTO, ResultLog
from bitpath.select import baselines

FORMAT = "bitpath-bench-results"
VERSION = 1


def _profile(header: dict) -> BoardProfile:
    b = dict(header["board"])
    b["run_current_a"] = {int(k): float(v) for k, v in b["run_current_a"].items()}
    return BoardProfile(**b)


def _time_us(counts: np.ndarray, device: dict, profile: BoardProfile) -> tuple[np.ndarray, str]:
    unit = device["counter_unit"]
    if unit == "cycles":
        return counts / device["counter_hz"] * 1e6, f"cycles / {device['counter_hz'] / 1e6:g} MHz (measured)"
    return counts / profile.clock_hz * 1e6, (f"estimated: emulated instructions at {profile.clock_hz / 1e6:g} MHz, "
                                             "1 instruction/cycle assumed")


def aggregate(header: dict, records: list[dict], *, firmware: dict | None = None) -> dict:
    """The results document (see the module doc) from a log's header and records."""
    profile = _profile(header)
    device = header["device"]
    classes = device["classes"]
    labels = header["paths"]
    meas = {(r["i"], r["path"]): r for r in records if r.get("kind") == "m"}
    events = [r for r in records if r.get("kind") == "event"]
    energy_recs = {r["path"]: r for r in records if r.get("kind") == "energy"}
    images = sorted({i for i, _ in meas})
    emulated = "emulated" in device["counter_unit"]
    paths: dict[str, dict] = {}
    for label in labels:
        rs = [meas[(i, label)] for i in images if (i, label) in meas]
        if not rs:
            continue
        y = np.array([r["label"] for r in rs])
        pred = np.array([r["pred"] for r in rs])
        cost = np.array([r["total"] for r in rs], dtype=np.float64)
        ctrl = np.array([r["controller"] for r in rs], dtype=np.float64)
        layers = np.array([r["layers"] for r in rs], dtype=np.float64)
        t_us, t_how = _time_us(cost, device, profile)
        mism = [r["i"] for r in rs if not r["match"]]
        # under `auto`: images where the device's controller chose another path than the host's
        path_mism = [r["i"] for r in rs if r.get("host_chosen") is not None and r["host_chosen"] != r["chosen"]]
        chosen = Counter(header["path_names"][r["chosen"]] for r in rs)
        by_class: dict[str, dict[str, int]] = {}
        for r in rs:
            row = by_class.setdefault(str(r["label"]), {})
            name = header["path_names"][r["chosen"]]
            row[name] = row.get(name, 0) + 1
        est = estimate(float(cost.mean()), unit=device["counter_unit"], counter_hz=device["counter_hz"],
                       profile=profile)
        entry = {
            "images": len(rs),
            "correct": int((pred == y).sum()),
            "accuracy": float((pred == y).mean()),
            "mismatches": len(mism),
            "mismatch_images": mism,
            "path_mismatches": len(path_mism),
            "path_mismatch_images": path_mism,
            "cost": summarize(cost),
            "time_us": {**summarize(t_us), "how": t_how},
            "lap_us": summarize([r["lap_us"] for r in rs]),
            "layers_mean": layers.mean(axis=0).tolist(),
            "controller": summarize(ctrl),
            "controller_share": float(ctrl.sum() / cost.sum()) if cost.sum() else 0.0,
            "chosen": dict(sorted(chosen.items())),
            "chosen_by_class": dict(sorted(by_class.items(), key=lambda kv: int(kv[0]))),
            "attempts_max": int(max(r["attempts"] for r in rs)),
            "energy_estimated": est.to_dict(),
        }
        if label in energy_recs:
            entry["energy_measured"] = {k: v for k, v in energy_recs[label].items() if k not in ("kind", "path")}
        paths[label] = entry
    static = [p for p in header["path_names"] if p in paths]
    complete = [i for i in images if all((i, p) in meas for p in static)]
    derived: dict = {}
    if len(static) >= 2 and complete:
        derived = _derived(header, meas, static, complete, device, profile)
        if AUTO in paths:  # a random split of the static paths at the controller's measured cost
            front = baselines.mix_front([(paths[p]["cost"]["mean"], paths[p]["accuracy"]) for p in static])
            derived["static_mix"] = {
                "front": front, "at_auto_cost": baselines.mix_accuracy(front, paths[AUTO]["cost"]["mean"]),
                "how": "a random fraction of the inputs per static path (concave envelope of the static points); "
                       "the controller must beat it to show it uses the input"}
    unit = device["counter_unit"]
    return {
        "format": FORMAT,
        "version": VERSION,
        "started": header["started"],
        "url": header["url"],
        "board": {"profile": profile.to_dict(), "device": device["board"], "emulated": emulated,
                  "clock_hz": profile.clock_hz if emulated else device["counter_hz"]},
        "numbers": ("emulated: costs are QEMU instructions (-icount shift=0), times and energy are estimates"
                    if emulated else "measured on silicon: DWT cycles; energy estimated unless a PPK2 was used"),
        "unit": unit,
        "device": device,
        "ir_hash": header["ir_hash"],
        "firmware": firmware or header.get("config", {}).get("extra", {}).get("firmware"),
        "dataset": {"name": header["config"]["dataset"], "split": header["config"]["split"],
                    "images": len(images), "classes": classes},
        "layers": header["layers"],
        "paths": paths,
        **derived,
        "events": dict(sorted(Counter(e["what"] for e in events).items())),
        "measurements": len(meas),
        "config": header["config"],
    }


def _derived(header: dict, meas: dict, static: list[str], images: list[int], device: dict,
             profile: BoardProfile) -> dict:
    """Oracle and cascade points from the per-image static measurements."""
    y = np.array([meas[(i, static[0])]["label"] for i in images])
    cost = np.array([[meas[(i, p)]["total"] for p in static] for i in images], dtype=np.float64)
    right = np.array([[meas[(i, p)]["pred"] == meas[(i, p)]["label"] for p in static] for i in images])
    # the same oracle and cascade as `bitpath select report`, on the measured per-image costs
    orc = baselines.oracle(right, cost)
    oracle = {
        "accuracy": orc["accuracy"],
        "cost_mean": orc["cost"],
        "chosen": {static[k]: n for k, n in enumerate(orc["count"]) if n},
        "how": "hindsight bound: per image the cheapest static path that is right (cheapest path if none is)",
    }
    mean_cost = cost.mean(axis=0)
    acc = right.mean(axis=0)
    cheap = int(mean_cost.argmin())
    best = int(np.lexsort((mean_cost, -acc))[0])  # most accurate, cheaper on ties
    cascade: list[dict] = []
    if cheap != best:
        logits = np.array([[meas[(i, p)]["logits"] for p in static] for i in images], dtype=np.int64)
        for pt in baselines.cascade(logits, y, cost, cheap, best, quantiles=(0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0)):
            cascade.append({"threshold": pt["threshold"], "quantile": round(100 * pt["quantile"]),
                            "escalated": pt["escalated"], "accuracy": pt["accuracy"], "cost_mean": pt["cost"]})
    return {
        "oracle": oracle,
        "cascade": {"cheap": static[cheap], "escalate_to": static[best], "points": cascade,
                    "how": "computed from measured per-path logits and costs: run the cheap path, escalate when "
                           "its top-2 logit margin < threshold (not run on the device)"} if cascade else None,
        "complete_images": len(images),
        "y_hist": dict(sorted(Counter(int(v) for v in y).items())),
    }


def from_log(path: str | Path, *, firmware: dict | None = None) -> dict:
    header, records = ResultLog.read(Path(path))
    if header is None:
        raise ValueError(f"{path}: no header line")
    return aggregate(header, records, firmware=firmware)


def load(path: str | Path) -> dict:
    """A stored results JSON, or a bench log (.jsonl) aggregated on the fly."""
    p = Path(path)
    if p.suffix == ".jsonl":
        return from_log(p)
    r = json.loads(p.read_text())
    if r.get("format") != FORMAT:
        raise ValueError(f"{p}: not a bitpath bench results file (format {r.get('format')!r})")
    if r.get("version") != VERSION:
        raise ValueError(f"{p}: results version {r.get('version')}, this bitpath reads version {VERSION}")
    return r


AUTO_LABEL = AUTO
