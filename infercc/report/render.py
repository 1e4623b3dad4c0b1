"""report.html (self-contained: inline CSS and SVG plots, no script) and summary.md from a report dict."""

from __future__ import annotations

import html
import math
from typing import Any

from infercc.fsutil import human_size
from infercc.report.selection import accuracy_of

PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2", "#bcbd22"]
BASELINE_COLOUR = "#555555"  # PyTorch eager, drawn dashed
MARKERS = ["circle", "square", "triangle", "diamond"]  # one per runtime, the same in every plot

# What each figure means, shown as a footnote under its table and on hover over its column header.
METRIC_HELP = {
    "max abs": "largest |artifact - reference| over all elements",
    "max rel": "largest |artifact - reference| / |reference|; huge where the reference is near 0, so an "
    "element passes when it is within atol OR rtol (Polygraphy's rule)",
    "mean abs": "mean |artifact - reference|",
    "cosine": "cosine similarity of the flattened outputs (1 = same direction)",
    "SNR dB": "10·log10(signal power / error power); higher is closer, 150 means bit-identical",
    "top-1": "share of rows whose arg-max class agrees with the reference",
    "NaN/Inf": "count of NaN / infinite values in the artifact's output",
    "p50 ms": "median latency of one call, milliseconds",
    "p90 ms": "90th-percentile latency",
    "p99 ms": "99th-percentile latency",
    "items/s": "throughput: batch size / p50 latency",
    "× eager": "PyTorch eager p50 on the same device / this p50 (higher is faster)",
    "spread": "(max - min) / median of the repeats' medians; over the bench.max_spread setting the ranking is noise",
    "H2D ms": "host-to-device copy time of the inputs (GPU runtimes)",
    "RSS added": "peak resident memory during this measurement minus the resident memory before it: the "
    "runtime's own session, arena and buffers (not the whole process)",
    "device mem": "GPU memory the runtime added",
}


def colour_map(report: dict[str, Any]) -> dict[str, str]:
    """artifact name -> colour, fixed by the artifacts' order so every plot and table agrees."""
    names = [a["name"] for a in report.get("artifacts") or []]
    for r in (report.get("bench") or {}).get("results") or []:
        if r["artifact"] not in names and r["artifact"] != "pytorch":
            names.append(r["artifact"])
    colours = {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(names)}
    colours["pytorch"] = BASELINE_COLOUR
    return colours


def marker_map(report: dict[str, Any]) -> dict[str, str]:
    runtimes = sorted({r["runtime"] for r in (report.get("bench") or {}).get("results") or []})
    return {rt: MARKERS[i % len(MARKERS)] for i, rt in enumerate(runtimes)}


def _marker(shape: str, x: float, y: float, colour: str, title: str) -> str:
    tip = f"<title>{_e(title)}</title>"
    style = f'fill="{colour}" fill-opacity="0.55" stroke="{colour}" stroke-width="1.5"'
    if shape == "square":
        return f'<rect x="{x - 4:.1f}" y="{y - 4:.1f}" width="8" height="8" {style}>{tip}</rect>'
    if shape == "triangle":
        pts = f"{x:.1f},{y - 5:.1f} {x - 5:.1f},{y + 4:.1f} {x + 5:.1f},{y + 4:.1f}"
        return f'<polygon points="{pts}" {style}>{tip}</polygon>'
    if shape == "diamond":
        pts = f"{x:.1f},{y - 5:.1f} {x - 5:.1f},{y:.1f} {x:.1f},{y + 5:.1f} {x + 5:.1f},{y:.1f}"
        return f'<polygon points="{pts}" {style}>{tip}</polygon>'
    return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4.5" {style}>{tip}</circle>'


def swatch(colour: str) -> str:
    return f'<span class=sw style="background:{colour}"></span>'


def legend_html(report: dict[str, Any]) -> str:
    """The one legend for every plot: a colour per artifact, a marker per runtime."""
    colours, markers = colour_map(report), marker_map(report)
    items = [
        f'<span class=lg data-artifact="{_e(name)}">{swatch(c)}{_e("PyTorch eager (dashed)" if name == "pytorch" else name)}</span>'
        for name, c in colours.items()
        if name != "pytorch"
        or any(r["artifact"] == "pytorch" for r in (report.get("bench") or {}).get("results") or [])
    ]
    items += [
        f'<span class=lg data-runtime="{_e(rt)}"><svg width="12" height="12">{_marker(shape, 6, 6, "#333", rt)}</svg>{_e(rt)}</span>'
        for rt, shape in markers.items()
    ]
    return f'<div class=legend role="list">{"".join(items)}</div>'


def _help_header(name: str) -> str:
    text = METRIC_HELP.get(name)
    return f'<abbr title="{_e(text)}">{_e(name)}</abbr>' if text else _e(name)


def footnotes(names: list[str]) -> str:
    items = "".join(f"<li><b>{_e(n)}</b>: {_e(METRIC_HELP[n])}</li>" for n in names if n in METRIC_HELP)
    return f"<ul class=notes>{items}</ul>" if items else ""


def _f(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if value == "inf":
        return "∞"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def _pct(value: Any) -> str:
    return "-" if value is None else f"{float(value):.1%}"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _e(text: Any) -> str:
    return html.escape(str(text))


# --- SVG ----------------------------------------------------------------------------------------------


def _ticks(lo: float, hi: float, log: bool) -> list[float]:
    if log:
        a, b = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
        return [10.0**k * m for k in range(a, b + 1) for m in (1, 2, 5) if lo <= 10.0**k * m <= hi] or [
            lo,
            hi,
        ]
    if hi == lo:
        return [lo]
    step = 10 ** math.floor(math.log10((hi - lo) / 4))
    for mult in (1, 2, 5, 10):
        if (hi - lo) / (step * mult) <= 6:
            step *= mult
            break
    start = math.ceil(lo / step) * step
    return [start + i * step for i in range(int((hi - start) / step) + 1)]


def svg_chart(
    series: list[dict[str, Any]],
    xlabel: str,
    ylabel: str,
    title: str,
    logx: bool = False,
    logy: bool = False,
    lines: bool = True,
    width: int = 460,
    height: int = 320,
) -> str:
    """A small line/scatter chart. series: [{label, points: [(x, y)], colour?, marker?, dashed?,
    point_labels?, sort?}]; the legend is shared by every chart (legend_html)."""
    pts = [(x, y) for s in series for x, y in s["points"] if x is not None and y is not None]
    if not pts:
        return f'<p class="muted">{_e(title)}: no data</p>'
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    if logx:
        x0, x1 = x0 / 1.3, x1 * 1.3
    else:
        pad = (x1 - x0) * 0.08 or max(abs(x1) * 0.1, 1)
        x0, x1 = x0 - pad, x1 + pad
    if logy:
        y0, y1 = y0 / 1.5, y1 * 1.5
    else:
        pad = (y1 - y0) * 0.1 or max(abs(y1) * 0.1, 1)
        y0, y1 = max(0.0, y0 - pad) if y0 >= 0 else y0 - pad, y1 + pad
    left, right, top, bottom = 64, 24, 28, 46
    pw, ph = width - left - right, height - top - bottom

    def sx(x: float) -> float:
        t = (
            (math.log10(x) - math.log10(x0)) / (math.log10(x1) - math.log10(x0))
            if logx
            else (x - x0) / (x1 - x0)
        )
        return left + t * pw

    def sy(y: float) -> float:
        t = (
            (math.log10(y) - math.log10(y0)) / (math.log10(y1) - math.log10(y0))
            if logy
            else (y - y0) / (y1 - y0)
        )
        return top + ph - t * ph

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{_e(title)}" font-family="sans-serif" font-size="11">',
        f'<text x="{left}" y="16" font-size="13" font-weight="bold">{_e(title)}</text>',
        f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="#fafafa" stroke="#999"/>',
    ]
    for t in _ticks(x0, x1, logx):
        out.append(f'<line x1="{sx(t):.1f}" y1="{top}" x2="{sx(t):.1f}" y2="{top + ph}" stroke="#e4e4e4"/>')
        out.append(f'<text x="{sx(t):.1f}" y="{top + ph + 14}" text-anchor="middle">{_f(t, 3)}</text>')
    for t in _ticks(y0, y1, logy):
        out.append(f'<line x1="{left}" y1="{sy(t):.1f}" x2="{left + pw}" y2="{sy(t):.1f}" stroke="#e4e4e4"/>')
        out.append(f'<text x="{left - 4}" y="{sy(t) + 4:.1f}" text-anchor="end">{_f(t, 3)}</text>')
    out.append(f'<text x="{left + pw / 2}" y="{height - 8}" text-anchor="middle">{_e(xlabel)}</text>')
    out.append(
        f'<text transform="translate(14,{top + ph / 2}) rotate(-90)" text-anchor="middle">{_e(ylabel)}</text>'
    )
    out += _draw_series(series, sx, sy, lines, (left, top, left + pw, top + ph))
    out.append("</svg>")
    return "".join(out)


def _draw_series(
    series: list[dict[str, Any]], sx: Any, sy: Any, lines: bool, box: tuple[float, float, float, float]
) -> list[str]:
    """Each series' line (unless `lines` is off), markers and point labels, in plot coordinates."""
    out: list[str] = []
    placed: list[tuple[float, float, float, float]] = []
    for i, s in enumerate(series):
        color = s.get("colour") or PALETTE[i % len(PALETTE)]
        raw = [(x, y) for x, y in s["points"] if x is not None and y is not None]
        order = sorted(range(len(raw)), key=lambda k: raw[k]) if s.get("sort", True) else range(len(raw))
        p = [(sx(raw[k][0]), sy(raw[k][1])) for k in order]
        tags = [(s.get("point_labels") or [None] * len(raw))[k] for k in order]
        if lines and len(p) > 1:
            dash = ' stroke-dasharray="5,3"' if s.get("dashed") else ""
            path = " ".join(f"{a:.1f},{b:.1f}" for a, b in p)
            out.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"{dash}/>')
        for (a, b), tag in zip(p, tags, strict=True):
            out.append(
                _marker(s.get("marker", "circle"), a, b, color, s["label"] + (f", {tag}" if tag else ""))
            )
            if tag:
                out.append(_label(tag, a, b, placed, box))
    return out


def _label(text: str, x: float, y: float, placed: list[tuple[float, float, float, float]], box: tuple) -> str:
    """A point's label beside it, moved down (then up) until it overlaps no label already placed."""
    w, h = 6.2 * len(text), 11.0
    for dy in (0, 12, -12, 24, -24, 36, -36, 48, -48):
        x0 = x + 7 if x + 7 + w <= box[2] else x - 7 - w
        y0 = y - 4 + dy - h / 2
        rect = (x0, y0, x0 + w, y0 + h)
        inside = box[1] <= rect[1] and rect[3] <= box[3]
        if inside and not any(_overlap(rect, other) for other in placed):
            placed.append(rect)
            return f'<text x="{x0:.1f}" y="{y0 + h - 2:.1f}" font-size="10" fill="#333">{_e(text)}</text>'
    return ""  # no free spot: the point keeps its hover title and the shared legend


def _overlap(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


# --- HTML ----------------------------------------------------------------------------------------------

CSS = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd;padding-bottom:4px}
table{border-collapse:collapse;margin:8px 0;font-size:13px}th,td{border:1px solid #ccc;padding:3px 8px;text-align:left}
th{background:#f0f0f0}td.n{text-align:right;font-variant-numeric:tabular-nums}
.ok{color:#18794e;font-weight:bold}.fail{color:#c62828;font-weight:bold}.muted{color:#777}
.plots{display:flex;flex-wrap:wrap;gap:16px}code{background:#f4f4f4;padding:1px 4px}
.sw{display:inline-block;width:11px;height:11px;margin-right:5px;vertical-align:-1px;border-radius:2px}
.legend{display:flex;flex-wrap:wrap;gap:6px 18px;margin:10px 0;font-size:13px}.lg svg{margin-right:5px;vertical-align:-1px}
abbr{text-decoration:underline dotted;cursor:help}.notes{font-size:12px;color:#555;margin:4px 0 12px}
"""


def _table(headers: list[str], rows: list[list[Any]], numeric: set[int] | None = None) -> str:
    numeric = numeric or set()
    head = "".join(f"<th>{_help_header(h)}</th>" for h in headers)
    body = "".join(
        "<tr>"
        + "".join(f"<td{' class=n' if i in numeric else ''}>{c}</td>" for i, c in enumerate(r))
        + "</tr>"
        for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def latency_series(
    bench: dict[str, Any], runtime: str, colours: dict[str, str], markers: dict[str, str]
) -> list[dict[str, Any]]:
    series = []
    device = next((r["device"] for r in bench["results"] if r["runtime"] == runtime), "cpu")
    for r in bench["results"]:
        reference = r["artifact"] in ("pytorch", "torch.compile")
        if r["runtime"] == runtime or (reference and r["device"] == device):
            pts = [(int(b), s["p50_ms"]) for b, s in (r.get("batches") or {}).items() if "p50_ms" in s]
            label = {"pytorch": "PyTorch eager"}.get(r["artifact"], r["artifact"])
            series.append(
                {
                    "label": f"{label} on {r['runtime']}",
                    "points": pts,
                    "dashed": reference,
                    "colour": colours.get(r["artifact"]),
                    "marker": markers.get(r["runtime"], "circle"),
                }
            )
    return series


def throughput_series(
    bench: dict[str, Any], runtime: str, colours: dict[str, str], markers: dict[str, str]
) -> list[dict[str, Any]]:
    """Latency against throughput across the batch sweep: the curve serving teams size by."""
    series = []
    for r in bench["results"]:
        if r["runtime"] != runtime:
            continue
        stats = sorted(
            ((int(b), s) for b, s in (r.get("batches") or {}).items() if "p50_ms" in s), key=lambda t: t[0]
        )
        stats = [(b, s) for b, s in stats if s.get("throughput")]
        series.append(
            {
                "label": f"{r['artifact']} on {runtime}",
                "points": [(s["throughput"], s["p50_ms"]) for _, s in stats],
                "point_labels": [f"b{b}" for b, _ in stats],
                "sort": False,
                "colour": colours.get(r["artifact"]),
                "marker": markers.get(runtime, "circle"),
            }
        )
    return series


def accuracy_speed_series(
    report: dict[str, Any], colours: dict[str, str], markers: dict[str, str]
) -> list[dict[str, Any]]:

    bench, verify = report.get("bench") or {}, report.get("verify")
    batch = str((report.get("selection") or {}).get("batch") or (bench.get("batch_sizes") or [1])[0])
    series = []
    for r in bench.get("results") or []:
        if r["artifact"] in ("pytorch", "torch.compile"):
            continue
        s = (r.get("batches") or {}).get(batch) or {}
        acc = accuracy_of(verify, r["artifact"], r["runtime"])
        if "p50_ms" in s and acc and acc.get("snr_db") is not None:
            snr = min(acc["snr_db"], 150.0)
            series.append(
                {
                    "label": f"{r['artifact']} on {r['runtime']}",
                    "points": [(s["p50_ms"], snr)],
                    "point_labels": [r["artifact"]],
                    "colour": colours.get(r["artifact"]),
                    "marker": markers.get(r["runtime"], "circle"),
                }
            )
    return series


def _shapes_text(shapes: Any) -> str:
    if not isinstance(shapes, dict) or not shapes:
        return "-"
    return "; ".join(f"{name} {text}" for name, text in shapes.items()) + " (min .. opt .. max)"


def render_html(report: dict[str, Any]) -> str:
    parts = [
        f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>infercc report</title><style>{CSS}</style>"
        "</head><body>"
    ]
    status = report.get("status")
    parts.append(
        f"<h1>infercc report — {_e(report['model'].get('source'))} "
        f"<span class={'ok' if status == 'ok' else 'fail'}>{_e(status)}</span></h1>"
    )
    parts.append(
        f"<p class=muted>{_e(report['created'])} · infercc {_e(report['infercc_version'])} · "
        f"inputs {_e(_shapes_text(report['model'].get('shapes')))}</p>"
    )
    colours = colour_map(report)
    parts.append(_selection_html(report))
    parts.append(_artifacts_html(report, colours))
    parts.append(_verify_html(report.get("verify"), colours))
    parts.append(_bench_html(report))
    parts.append(_floor_html(report.get("compute_floor")))
    parts.append(_env_html(report))
    parts.append("</body></html>")
    return "\n".join(p for p in parts if p)


def _selection_html(report: dict[str, Any]) -> str:
    sel = report.get("selection") or {}
    if not sel.get("runtimes"):
        return "<h2>Selection</h2><p class=muted>No benchmark figures: nothing to select.</p>"
    budget = ", ".join(f"{k} ≥ {v}" for k, v in (sel.get("budget") or {}).items() if v is not None) or "none"
    rows = []
    for r in sel["runtimes"]:
        lost = "<br>".join(f"{_e(o['artifact'])}: {_e(o['reason'])}" for o in r["others"]) or "-"
        chosen = f"<b>{_e(r['chosen'])}</b>" if r["chosen"] else "<span class=fail>none within budget</span>"
        rows.append([_e(r["runtime"]), chosen, _f(r.get("p50_ms")), _ratio(r), lost])
    picks = "".join(
        f"<p>Pick for {_e(d['device'])}: <b>{_e(d['artifact'])} on {_e(d['runtime'])}</b>, "
        f"{_f(d.get('p50_ms'))} ms"
        + "".join(f"; {_e(o['artifact'])} on {_e(o['runtime'])} {_e(o['reason'])}" for o in d["others"])
        + "</p>"
        for d in sel.get("devices") or []
        if d.get("artifact")
    )
    return (
        _devices_html(sel)
        + f"<h2>Selection per runtime (batch {sel.get('batch')}, accuracy budget: {_e(budget)})</h2>"
        + picks
        + _table(
            ["runtime", "fastest within budget", "p50 ms", "× PyTorch eager", "why the others lost"],
            rows,
            {2, 3},
        )
    )


def _named(name: str, colours: dict[str, str]) -> str:
    colour = colours.get(name)
    return (swatch(colour) if colour else "") + _e(name)


def _devices_html(sel: dict[str, Any]) -> str:
    """Per device: the pick across every backend, its ratios to eager and torch.compile, and the
    backend × precision × batch table of candidates with why each lost."""
    parts = []
    for d in sel.get("devices") or []:
        rows = [
            [
                _e(r["backend"]),
                _e(r["precision"]),
                r["batch"],
                _e(r["artifact"]),
                _e(r["runtime"]),
                _f(r.get("p50_ms")),
                _f(r.get("vs_eager")),
                _f(r.get("vs_compile")),
                ("<b>chosen</b>" if r.get("chosen") else "") or _e(r.get("reason") or ""),
            ]
            for r in d["table"]
        ]
        parts.append(
            f"<h2>Selection on {_e(d['device'])} across backends</h2><p><b>{_e(d['verdict'])}</b>. "
            f"At batch {d['batch']}: {_f(d.get('vs_eager'))}× PyTorch eager, {_f(d.get('vs_compile'))}× torch.compile "
            "(both timed in this run on this device; above 1 means faster).</p>"
            + _table(
                [
                    "backend",
                    "precision",
                    "batch",
                    "artifact",
                    "runtime",
                    "p50 ms",
                    "× eager",
                    "× torch.compile",
                    "verdict",
                ],
                rows,
                {2, 5, 6, 7},
            )
        )
    return "".join(parts)


def _artifacts_html(report: dict[str, Any], colours: dict[str, str]) -> str:
    rows = [
        [
            _named(a["name"], colours)
            + (" <span class=muted>(from another config)</span>" if a.get("from_other_config") else ""),
            _e(a["path"]),
            _e(a["kind"]),
            _e(a.get("precision") or "-"),
            human_size(a["size"]),
            "<br>".join(_e(m) for m in artifact_marks(a)) or "",
        ]
        for a in report["artifacts"]
    ]
    stage_rows = [
        [
            _e(s["name"]),
            _e(s["status"]),
            _f(s["duration_s"]),
            "<br>".join(_e(_clip(n, 400)) for n in s["notes"]),
        ]
        for s in report["stages"]
    ]
    return (
        "<h2>Artifacts</h2>"
        + _table(["artifact", "file", "kind", "precision", "size", "marks"], rows, {4})
        + "<h2>Stage timings</h2>"
        + _table(["stage", "status", "seconds", "notes"], stage_rows, {2})
    )


def artifact_marks(artifact: dict[str, Any]) -> list[str]:
    """Specialised dimensions (valid only on some shapes) and 'not loadable here' of an inductor package."""
    marks = [f"valid only on some shapes: {m}" for m in artifact.get("specialized") or []]
    if artifact.get("not_loadable"):
        marks.append(f"built, not loadable on this machine: {artifact['not_loadable']}")
    return marks


def _verify_html(verify: dict[str, Any] | None, colours: dict[str, str]) -> str:
    if verify is None:
        return "<h2>Accuracy</h2><p class=muted>verify did not run.</p>"
    rows = []
    for r in verify["results"]:
        for out, m in (r.get("outputs") or {}).items():
            rows.append(
                [
                    _named(r["artifact"], colours),
                    _e(r["runtime"]),
                    _e(out),
                    "<span class=ok>pass</span>" if m.get("passed") else "<span class=fail>FAIL</span>",
                    _f(m.get("max_abs")),
                    _f(m.get("max_rel")),
                    _f(m.get("mean_abs")),
                    _f(m.get("cosine"), 7),
                    _f(m.get("snr_db"), 4),
                    _f(m.get("top1")),
                    f"{m.get('nan', 0)}/{m.get('inf', 0)}",
                ]
            )
        if not r.get("outputs"):
            rows.append(
                [_e(r["artifact"]), _e(r["runtime"]), "-", "<span class=fail>FAIL</span>"] + ["-"] * 7
            )
    skipped = "".join(
        f"<li><code>{_e(s['runtime'])}</code>: {_e(s['reason'])}</li>" for s in verify["skipped_runtimes"]
    )
    fails = "".join(f"<li>{_e(f)}</li>" for f in verify["failures"][:50])
    oh = verify.get("overhead") or {}
    return (
        "<h2>Accuracy against the reference</h2>"
        f"<p>Reference: {_e(verify['reference'])}; inputs: {_e((verify.get('inputs') or {}).get('source'))} "
        f"({len((verify.get('inputs') or {}).get('sets') or [])} sets).</p>"
        + _table(
            [
                "artifact",
                "runtime",
                "output",
                "result",
                "max abs",
                "max rel",
                "mean abs",
                "cosine",
                "SNR dB",
                "top-1",
                "NaN/Inf",
            ],
            rows,
            {4, 5, 6, 7, 8, 9},
        )
        + footnotes(["max abs", "max rel", "mean abs", "cosine", "SNR dB", "top-1", "NaN/Inf"])
        + (f"<p><b>Failures</b></p><ul>{fails}</ul>" if fails else "")
        + (f"<p>Skipped runtimes (not available here):</p><ul>{skipped}</ul>" if skipped else "")
        + f"<p class=muted>verify: {_f(oh.get('total_s'))} s: {_f(oh.get('runtime_s'))} s in the runtimes' own calls, "
        f"{_f(oh.get('data_s'))} s reading input data, {_f(oh.get('own_s'))} s ({_pct(oh.get('own_share'))}) infercc's own work.</p>"
    )


BENCH_HEADERS = [
    "artifact",
    "runtime",
    "batch",
    "min ms",
    "mean ms",
    "p50 ms",
    "p90 ms",
    "p99 ms",
    "items/s",
    "× eager",
    "× torch.compile",
    "spread",
    "H2D ms",
    "RSS added",
    "device mem",
    "file",
]


def _bench_html(report: dict[str, Any]) -> str:
    bench = report.get("bench")
    if bench is None:
        return "<h2>Speed</h2><p class=muted>bench did not run.</p>"
    colours, markers = colour_map(report), marker_map(report)
    shapes = "; ".join(
        f"batch {b}: " + ", ".join(f"{n} {d}" for n, d in dims.items())
        for b, dims in (bench.get("timed_shapes") or {}).items()
    )
    warn = "".join(f"<li>{_e(w)}</li>" for w in (bench.get("warnings") or []) + (bench.get("errors") or []))
    skipped = "".join(
        f"<li><code>{_e(s['runtime'])}</code>: {_e(s['reason'])}</li>" for s in bench["skipped_runtimes"]
    )
    oh = bench.get("overhead") or {}
    timing = sorted({f"{r['runtime']}: {r.get('timing')}" for r in bench["results"] if r.get("timing")})
    return (
        "<h2>Speed</h2>"
        f"<p>Threads: {_e(bench.get('threads') or 'default')}; timing: {_e('; '.join(timing))}. "
        "× PyTorch eager and × torch.compile are measured in the same run on the same device.</p>"
        + (f"<p>Shapes timed: {_e(shapes)}.</p>" if shapes else "")
        + _compile_times_html(bench)
        + _table(BENCH_HEADERS, _bench_rows(bench, colours), set(range(2, 16)))
        + footnotes(["p50 ms", "items/s", "× eager", "spread", "H2D ms", "RSS added", "device mem"])
        + legend_html(report)
        + f"<div class=plots>{''.join(_bench_plots(report, colours, markers))}</div>"
        + (f"<p><b>Noise and errors</b></p><ul>{warn}</ul>" if warn else "")
        + (f"<p>Skipped runtimes:</p><ul>{skipped}</ul>" if skipped else "")
        + f"<p class=muted>bench: {_f(oh.get('total_s'))} s, of which {_f(oh.get('own_share'))} outside the "
        "runtimes' own calls.</p>"
    )


def _bench_rows(bench: dict[str, Any], colours: dict[str, str]) -> list[list[Any]]:
    """One row per subject and batch it was timed at (BENCH_HEADERS)."""
    rows = []
    for r in bench["results"]:
        for b, s in (r.get("batches") or {}).items():
            if "p50_ms" not in s:
                continue
            rows.append(
                [
                    _named(r["artifact"], colours),
                    _e(r["runtime"]),
                    b,
                    *(_f(s[k]) for k in ("min_ms", "mean_ms", "p50_ms", "p90_ms", "p99_ms")),
                    _f(s.get("throughput"), 4),
                    _ratio(s),
                    _f(s.get("vs_compile")),
                    f"{s['spread']:.1%}",
                    _f(s.get("h2d_ms")),
                    *(human_size(r.get(k)) for k in ("peak_rss_delta", "device_memory_delta", "file_size")),
                ]
            )
    return rows


def _bench_plots(report: dict[str, Any], colours: dict[str, str], markers: dict[str, str]) -> list[str]:
    """Per runtime, latency against batch and against throughput; then accuracy against speed."""
    bench = report["bench"]
    runtimes = sorted(
        {r["runtime"] for r in bench["results"] if r["artifact"] not in ("pytorch", "torch.compile")}
    )
    sweep = len(bench.get("batch_sizes") or []) > 1
    plots = []
    for rt in runtimes:
        for series, x_label, title in (
            (latency_series(bench, rt, colours, markers), "batch size", f"Latency vs batch — {rt}"),
            (
                throughput_series(bench, rt, colours, markers),
                "throughput (items/s)",
                f"Latency vs throughput — {rt}",
            ),
        ):
            plots.append(svg_chart(series, x_label, "p50 latency (ms)", title, logx=sweep, logy=True))
    plots.append(
        svg_chart(
            accuracy_speed_series(report, colours, markers),
            "p50 latency (ms)",
            "SNR vs reference (dB, capped 150)",
            "Accuracy vs speed",
            logx=True,
            lines=False,
        )
    )
    return plots


def compile_times(bench: dict[str, Any]) -> list[str]:
    """'torch.compile on torch-compile-cpu compiled batch 1x16 in 12.3 s' for every peer shape."""
    return [
        f"torch.compile on {r['runtime']} compiled input {shape} in {seconds:.1f} s"
        for r in bench.get("results") or []
        for shape, seconds in (r.get("compile_s") or {}).items()
    ]


def _compile_times_html(bench: dict[str, Any]) -> str:
    times = compile_times(bench)
    return f"<p>{'; '.join(_e(t) for t in times)}.</p>" if times else ""


def _floor_html(floor: dict[str, Any] | None) -> str:
    if not floor:
        return ""
    if not floor.get("peak_flops"):
        return (
            f"<h2>Compute floor</h2><p>{_f(floor['flops_per_item'] / 1e9)} GFLOP per item; no peak figure for "
            f"this machine's GPU ({_e(floor.get('gpu') or 'none')}).</p>"
        )
    rows = [
        [_e(e["artifact"]), _e(e["runtime"]), e["batch"], _f(e["p50_ms"]), _f(e["floor_ms"]), _f(e["ratio"])]
        for e in floor["entries"]
    ]
    return (
        f"<h2>Distance to the compute floor</h2><p>{_f(floor['flops_per_item'] / 1e9)} GFLOP per item at "
        f"{_f(floor['peak_flops'] / 1e12)} TFLOP/s FP16 ({_e(floor['gpu'])}).</p>"
        + _table(["artifact", "runtime", "batch", "p50 ms", "floor ms", "× floor"], rows, {2, 3, 4, 5})
    )


def _env_html(report: dict[str, Any]) -> str:
    env = report["environment"]
    pk = ", ".join(f"{k} {v}" for k, v in (env.get("packages") or {}).items() if v)
    return "<h2>Environment</h2>" + _table(
        ["", ""],
        [
            ["CPU", _e(f"{env.get('cpu')} ({env.get('cpu_count')} logical cores)")],
            ["GPU", _e(", ".join(env.get("gpus") or []) or "none")],
            ["Python", _e(env.get("python"))],
            ["Platform", _e(env.get("platform"))],
            ["Packages", _e(pk)],
        ],
    )


# --- Markdown ----------------------------------------------------------------------------------------------


def device_selection_markdown(sel: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    for d in sel.get("devices") or []:
        lines += [
            f"**Selection on {d['device']}** (batch {d['batch']}): {d['verdict']}. "
            f"Ratio to PyTorch eager {_f(d.get('vs_eager'))}×, to torch.compile {_f(d.get('vs_compile'))}× "
            "(above 1: faster).",
            "",
            "| backend | precision | batch | artifact | runtime | p50 ms | × eager | × torch.compile | verdict |",
            "|---|---|---:|---|---|---:|---:|---:|---|",
        ]
        for r in d["table"]:
            verdict = "**chosen**" if r.get("chosen") else r.get("reason") or ""
            lines.append(
                f"| {r['backend']} | {r['precision']} | {r['batch']} | {r['artifact']} | {r['runtime']} | "
                f"{_f(r.get('p50_ms'))} | {_f(r.get('vs_eager'))} | {_f(r.get('vs_compile'))} | {verdict} |"
            )
        lines.append("")
    return lines


def render_markdown(report: dict[str, Any]) -> str:
    lines = [
        f"## infercc: {report['model'].get('source')} — {'✅ ok' if report['status'] == 'ok' else '❌ failed'}",
        "",
    ]
    sel = report.get("selection") or {}
    lines += device_selection_markdown(sel)
    if sel.get("runtimes"):
        lines += [f"**Selection per runtime** (batch {sel.get('batch')}):", ""]
        for d in [d for d in sel.get("devices") or [] if d.get("artifact")]:
            lines.append(
                f"- pick for {d['device']}: **{d['artifact']}** on `{d['runtime']}` {_f(d['p50_ms'])} ms"
            )
        for r in sel["runtimes"]:
            chosen = f"**{r['chosen']}** {_f(r['p50_ms'])} ms" if r["chosen"] else "none within budget"
            sp = f" ({_ratio(r)}× PyTorch eager)" if r.get("speedup") else ""
            sp = " (ratio to PyTorch eager: disturbed)" if r.get("disturbed") else sp
            lines.append(f"- `{r['runtime']}`: {chosen}{sp}")
            lines += [f"  - {o['artifact']}: {o['reason']}" for o in r["others"]]
        lines.append("")
    for a in report.get("artifacts") or []:
        lines += [f"- `{a['name']}`: {m}" for m in artifact_marks(a)]
    lines += _verify_markdown(report.get("verify"))
    bench = report.get("bench")
    lines += _bench_markdown(bench)
    env = report["environment"]
    lines.append(
        f"_{env.get('cpu')}; GPU: {', '.join(env.get('gpus') or []) or 'none'}; threads: "
        f"{(bench or {}).get('threads') or 'default'}_"
    )
    return "\n".join(lines) + "\n"


def _verify_markdown(verify: dict[str, Any] | None) -> list[str]:
    if not verify:
        return []
    lines: list[str] = []
    lines += _md_table(
        ["artifact", "runtime", "output", "result", "max abs", "cosine", "SNR dB", "top-1"],
        [
            [
                r["artifact"],
                r["runtime"],
                out,
                "pass" if m.get("passed") else "**FAIL**",
                _f(m.get("max_abs")),
                _f(m.get("cosine"), 7),
                _f(m.get("snr_db"), 4),
                _f(m.get("top1")),
            ]
            for r in verify["results"]
            for out, m in (r.get("outputs") or {}).items()
        ],
        numeric_from=4,
    )
    for s in verify["skipped_runtimes"]:
        lines.append(f"\nSkipped `{s['runtime']}`: {s['reason']}")
    if verify["failures"]:
        lines += ["", "**Failures:**", ""] + [f"- {f}" for f in verify["failures"][:30]]
    lines += [
        "",
        "_" + "; ".join(f"{k}: {METRIC_HELP[k]}" for k in ("max abs", "cosine", "SNR dB", "top-1")) + "_",
        "",
    ]
    return lines


def _bench_markdown(bench: dict[str, Any] | None) -> list[str]:
    if not bench:
        return []
    lines: list[str] = []
    left_out = ("min ms", "mean ms", "H2D ms", "RSS added", "device mem", "file")  # the HTML table has room
    lines += _md_table(
        [h for h in BENCH_HEADERS if h not in left_out],
        [
            [
                r["artifact"],
                r["runtime"],
                b,
                _f(s["p50_ms"]),
                _f(s["p90_ms"]),
                _f(s["p99_ms"]),
                _f(s.get("throughput"), 4),
                _ratio(s),
                _f(s.get("vs_compile")),
                f"{s['spread']:.1%}",
            ]
            for r in bench["results"]
            for b, s in (r.get("batches") or {}).items()
            if "p50_ms" in s
        ],
        numeric_from=2,
    )
    lines += [f"- {t}" for t in compile_times(bench)]
    lines += [f"- ⚠ {w}" for w in (bench.get("warnings") or [])]
    shapes = "; ".join(
        f"batch {b}: " + ", ".join(f"{n} {d}" for n, d in dims.items())
        for b, dims in (bench.get("timed_shapes") or {}).items()
    )
    if shapes:
        lines += ["", f"_Shapes timed: {shapes}. × eager: {METRIC_HELP['× eager']}._"]
    lines.append("")
    return lines


def _md_table(headers: list[str], rows: list[list[Any]], numeric_from: int) -> list[str]:
    """A Markdown table; the columns from `numeric_from` on are right-aligned."""
    align = ["---" if i < numeric_from else "---:" for i in range(len(headers))]
    return [f"| {' | '.join(headers)} |", f"|{'|'.join(align)}|"] + [
        f"| {' | '.join(str(c) for c in row)} |" for row in rows
    ]


def _ratio(figures: dict[str, Any]) -> str:
    """The ratio to PyTorch eager, or 'disturbed' when the machine was too busy for a ratio to mean anything."""
    return "disturbed" if figures.get("disturbed") else _f(figures.get("speedup"))
