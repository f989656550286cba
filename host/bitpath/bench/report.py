"""Bench report: results JSON, Markdown, self-contained HTML with embedded PNG plots (matplotlib Agg).

:func:`write` takes a results document (:mod:`bitpath.bench.results`) and writes ``results.json``,
``report.md``, ``report.html`` and the plots as PNG files next to them; the HTML embeds the same
PNGs as base64 ``data:`` URIs, so it is one file that opens anywhere (no network, no scripts).
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

PLOTS = ("pareto", "layers", "histogram")


def _fmt(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:,.2f}"


def _unit_short(r: dict) -> str:
    return "instructions (emulated)" if "emulated" in r["unit"] else r["unit"]


def _energy(entry: dict) -> tuple[float, str]:
    if "energy_measured" in entry:
        return entry["energy_measured"]["joules"], "measured (PPK2)"
    return entry["energy_estimated"]["joules"], "estimated"


def identity_rows(r: dict) -> list[tuple[str, str]]:
    prof = r["board"]["profile"]
    fw = r.get("firmware") or {}
    rows = [
        ("board", f"{r['board']['device']} — {prof['chip']}"),
        ("clock", f"{r['board']['clock_hz'] / 1e6:g} MHz"
                  + (" (profile clock; the emulator has none)" if r["board"]["emulated"] else " (device-reported)")),
        ("numbers", r["numbers"]),
        ("cost unit", r["unit"]),
        ("firmware sha256", fw.get("sha256", "not given (pass --elf)")),
        ("flash / RAM", f"{fw['flash_bytes']:,} B / {fw['ram_bytes']:,} B (from the ELF)" if "flash_bytes" in fw
         else "not given (pass --elf)"),
        ("IR hash", r["ir_hash"]),
        ("model on the device", f"{r['device']['model']} (ir-hash {r['device']['ir_hash']}, arena "
                                f"{r['device']['arena_bytes']:,} B)"),
        ("dataset", f"{r['dataset']['name']} {r['dataset']['split']}, {r['dataset']['images']} images"),
        ("measurements", f"{r['measurements']} (recovery events: "
                         + (", ".join(f"{k} {v}" for k, v in r["events"].items()) or "none") + ")"),
        ("started", r["started"]),
    ]
    return rows


def markdown(r: dict) -> str:
    unit = _unit_short(r)
    lines = [f"# bitpath bench: {r['dataset']['name']} on {r['board']['device']}", ""]
    lines += ["| | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in identity_rows(r)]
    lines += ["", f"## Accuracy and cost per path (cost in {unit})", "",
              "| path | images | accuracy | logit mismatches | mean cost | median | p99 | time/inference µs "
              "| energy/inference µJ | controller share |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, e in r["paths"].items():
        ej, how = _energy(e)
        lines.append(
            f"| {name} | {e['images']} | {100 * e['accuracy']:.2f} % | {e['mismatches']} | {_fmt(e['cost']['mean'])} "
            f"| {_fmt(e['cost']['median'])} | {_fmt(e['cost']['p99'])} | {e['time_us']['mean']:,.1f} "
            f"| {ej * 1e6:,.1f} ({how}) | {100 * e['controller_share']:.2f} % |")
    first = next(iter(r["paths"].values()), None)
    if first is not None:
        lines += ["", f"Time: {first['time_us']['how']}. Energy: {first['energy_estimated']['label']}."]
    if r.get("oracle"):
        o = r["oracle"]
        lines += ["", "## Selectors", "", "| selector | accuracy | mean cost | note |", "|---|---:|---:|---|"]
        if "auto" in r["paths"]:
            a = r["paths"]["auto"]
            lines.append(f"| controller (auto, on the device) | {100 * a['accuracy']:.2f} % "
                         f"| {_fmt(a['cost']['mean'])} | includes the controller's own cost; "
                         f"{a.get('path_mismatches', 0)} choices differ from the host's |")
        mix = r.get("static_mix")
        if mix and mix.get("at_auto_cost") is not None:
            lines.append(f"| random split of static paths at auto's cost | {100 * mix['at_auto_cost']:.2f} % "
                         f"| {_fmt(r['paths']['auto']['cost']['mean'])} | {mix['how']} |")
        lines.append(f"| oracle | {100 * o['accuracy']:.2f} % | {_fmt(o['cost_mean'])} | {o['how']} |")
        c = r.get("cascade")
        if c:
            for p in c["points"]:
                lines.append(f"| cascade {c['cheap']}→{c['escalate_to']}, margin < {p['threshold']:,.0f} "
                             f"(q{p['quantile']}) | {100 * p['accuracy']:.2f} % | {_fmt(p['cost_mean'])} "
                             f"| escalated {100 * p['escalated']:.0f} % |")
            lines += ["", f"Cascade: {c['how']}."]
    lines += ["", f"## Per-layer mean cost ({unit})", "", "| path | controller | " + " | ".join(r["layers"]) + " |",
              "|---|---:|" + "---:|" * len(r["layers"])]
    for name, e in r["paths"].items():
        lines.append(f"| {name} | {_fmt(e['controller']['mean'])} | "
                     + " | ".join(_fmt(v) for v in e["layers_mean"]) + " |")
    lines += ["", "## Path histogram (path that ran)", ""]
    names = [p for p in r["paths"] if p != "auto"]
    for name, e in r["paths"].items():
        if name == "auto" or len(e["chosen"]) > 1:
            lines += [f"- **{name}**: " + ", ".join(f"{k}: {v}" for k, v in e["chosen"].items()), "",
                      "  | class | " + " | ".join(names) + " |", "  |---|" + "---:|" * len(names)]
            for cls, row in e["chosen_by_class"].items():
                lines.append(f"  | {cls} | " + " | ".join(str(row.get(p, 0)) for p in names) + " |")
            lines.append("")
    if r.get("oracle"):
        lines.append("- **oracle**: " + ", ".join(f"{k}: {v}" for k, v in r["oracle"]["chosen"].items()))
    bad = {n: e["mismatch_images"] for n, e in r["paths"].items() if e["mismatches"]}
    lines += ["", "## Bit-exactness", ""]
    lines.append("Every logit matched the host reference." if not bad else
                 "Logit mismatches (image indices): " + "; ".join(f"{n}: {v[:20]}" for n, v in bad.items()))
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- plots


def plots(r: dict) -> dict[str, bytes]:
    """PNG bytes of each plot: accuracy-vs-cost Pareto, per-layer bars, path histogram."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out: dict[str, bytes] = {}
    unit = _unit_short(r)

    def png(fig) -> bytes:
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
        plt.close(fig)
        return buf.getvalue()

    static = {n: e for n, e in r["paths"].items() if n != "auto"}
    # Pareto
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    pts = sorted((e["cost"]["mean"], 100 * e["accuracy"], n) for n, e in static.items())
    ax.scatter([p[0] for p in pts], [p[1] for p in pts], color="tab:blue", label="static paths", zorder=3)
    for c, a, n in pts:
        ax.annotate(n, (c, a), textcoords="offset points", xytext=(4, 4), fontsize=8)
    front, best = [], -1.0
    for c, a, _ in pts:
        if a > best:
            front.append((c, a))
            best = a
    if len(front) > 1:
        ax.plot(*zip(*front, strict=True), color="tab:blue", alpha=0.5, drawstyle="steps-post")
    if "auto" in r["paths"]:
        a = r["paths"]["auto"]
        ax.scatter([a["cost"]["mean"]], [100 * a["accuracy"]], marker="*", s=160, color="tab:red",
                   label="dynamic (controller)", zorder=4)
    if r.get("cascade"):
        cp = r["cascade"]["points"]
        ax.plot([p["cost_mean"] for p in cp], [100 * p["accuracy"] for p in cp], "o--", color="tab:green",
                ms=4, label="cascade (computed)")
    if r.get("oracle"):
        ax.scatter([r["oracle"]["cost_mean"]], [100 * r["oracle"]["accuracy"]], marker="D", color="tab:purple",
                   label="oracle (bound)", zorder=4)
    ax.set_xlabel(f"mean cost per inference [{unit}]")
    ax.set_ylabel("accuracy [%]")
    ax.set_title(f"accuracy vs cost, {r['dataset']['images']} images")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    out["pareto"] = png(fig)
    # per-layer bars
    fig, ax = plt.subplots(figsize=(max(6.4, 0.8 * len(r["layers"]) + 2), 4.2))
    names = list(r["paths"])
    width = 0.8 / max(1, len(names))
    xs = range(len(r["layers"]) + 1)
    for k, n in enumerate(names):
        e = r["paths"][n]
        vals = [e["controller"]["mean"], *e["layers_mean"]]
        ax.bar([x + k * width for x in xs], vals, width, label=n)
    ax.set_xticks([x + width * (len(names) - 1) / 2 for x in xs])
    ax.set_xticklabels(["controller", *r["layers"]], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(f"mean cost [{unit}]")
    ax.set_title("per-layer cost per path")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    out["layers"] = png(fig)
    # histogram: which path ran (auto when present, else the oracle's choice)
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    src, title = None, ""
    if "auto" in r["paths"]:
        src, title = r["paths"]["auto"]["chosen"], "paths chosen by the controller"
    elif r.get("oracle"):
        src, title = r["oracle"]["chosen"], "paths the oracle would choose (no controller on the device)"
    else:
        src = {n: e["images"] for n, e in static.items()}
        title = "images run per path"
    pn = [n for n in static] or list(src)
    ax.bar(pn, [src.get(n, 0) for n in pn], color="tab:orange")
    ax.set_ylabel("images")
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    out["histogram"] = png(fig)
    return out


def html_page(r: dict, pngs: dict[str, bytes]) -> str:
    """One self-contained HTML page: inline CSS, PNGs as data URIs, no scripts, no external links."""
    md = markdown(r)
    esc = html.escape
    parts = ["<!DOCTYPE html><html><head><meta charset='utf-8'>",
             f"<title>bitpath bench: {esc(r['dataset']['name'])} on {esc(r['board']['device'])}</title>",
             "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;"
             "text-align:right}td:first-child,th:first-child{text-align:left}img{max-width:100%}"
             "code{background:#f4f4f4}</style></head><body>"]
    in_table = False
    for line in md.splitlines():
        s = line.strip()
        if s.startswith("|"):
            cells = [c.strip() for c in s.strip("|").split("|")]
            if all(set(c) <= set("-:") for c in cells):
                continue
            if not in_table:
                parts.append("<table>")
                in_table = True
                parts.append("<tr>" + "".join(f"<th>{esc(c)}</th>" for c in cells) + "</tr>")
            else:
                parts.append("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in cells) + "</tr>")
            continue
        if in_table:
            parts.append("</table>")
            in_table = False
        if s.startswith("# "):
            parts.append(f"<h1>{esc(s[2:])}</h1>")
        elif s.startswith("## "):
            parts.append(f"<h2>{esc(s[3:])}</h2>")
        elif s.startswith("- "):
            parts.append(f"<p>• {esc(s[2:]).replace('**', '')}</p>")
        elif s:
            parts.append(f"<p>{esc(s)}</p>")
    if in_table:
        parts.append("</table>")
    parts.append("<h2>Plots</h2>")
    for name in PLOTS:
        if name in pngs:
            b64 = base64.b64encode(pngs[name]).decode()
            parts.append(f"<figure><img alt='{name}' src='data:image/png;base64,{b64}'></figure>")
    parts.append("<details><summary>results JSON</summary><pre>" + esc(json.dumps(r, indent=1)) + "</pre></details>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write(r: dict, out_dir: str | Path) -> dict[str, Path]:
    """Write results.json, report.md, report.html and the PNGs; returns the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {"json": out / "results.json", "md": out / "report.md", "html": out / "report.html"}
    files["json"].write_text(json.dumps(r, indent=1) + "\n")
    files["md"].write_text(markdown(r))
    pngs = plots(r)
    for name, data in pngs.items():
        files[name] = out / f"{name}.png"
        files[name].write_bytes(data)
    files["html"].write_text(html_page(r, pngs))
    return files
