"""matrix.json and matrix.html: one summary across the matrix.

Rows are models, columns targets; each cell holds the artifact selected among its jobs (the fastest one
within the accuracy budget, as each job's report selects it), its speed-up over PyTorch and its accuracy,
and the cell fails when any of its jobs failed.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from infercc.fsutil import atomic_write_json, atomic_write_text
from infercc.matrix.worker import JobResult

SUMMARY_JSON, SUMMARY_HTML = "matrix.json", "matrix.html"
SCHEMA = "infercc.matrix/1"


def write_summary(root: Path, run: Any) -> dict[str, Any]:
    summary = build_summary(run)
    atomic_write_json(root / SUMMARY_JSON, summary)
    atomic_write_text(root / SUMMARY_HTML, render_html(summary))
    return summary


def build_summary(run: Any) -> dict[str, Any]:
    models = list(dict.fromkeys(j.model for j in run.jobs))
    targets = list(dict.fromkeys(j.target for j in run.jobs))
    cells = [
        _cell(m, t, [j for j in run.jobs if j.model == m and j.target == t]) for m in models for t in targets
    ]
    jobs_s = sum(j.seconds for j in run.jobs if not j.resumed)
    return {
        "schema": SCHEMA,
        "out": run.out,
        "backend": run.backend,
        "status": "ok" if not run.failed else "failed",
        "exit_code": int(run.exit_code()),
        "cache": {"url": run.cache_url, **run.cache_counts()} if run.cache_url else None,
        "wall_s": run.wall_s,
        "jobs_s": round(jobs_s, 3),
        "models": models,
        "targets": targets,
        "cells": [c for c in cells if c["jobs"]],
        "jobs": [_row(j) for j in run.jobs],
    }


def _row(job: JobResult) -> dict[str, Any]:
    return job.model_dump(mode="json", exclude={"log_tail"})


def _cell(model: str, target: str, jobs: list[JobResult]) -> dict[str, Any]:
    candidates = []
    for job in jobs:
        if job.status != "ok":
            continue
        for row in job.selection:
            if row.get("speedup") is not None or row.get("p50_ms") is not None:
                candidates.append((job, row))
    selected = None
    if candidates:
        job, row = max(candidates, key=lambda c: (c[1].get("speedup") or 0.0, -(c[1].get("p50_ms") or 0.0)))
        artifact = next((a for a in job.artifacts if a["name"] == row["chosen"]), {})
        accuracy = row.get("accuracy") or {}
        selected = {
            "job": job.id,
            "artifact": row["chosen"],
            "path": str(Path(job.out) / artifact["path"]) if artifact.get("path") else None,
            "precision": artifact.get("precision"),
            "runtime": row.get("runtime"),
            "p50_ms": row.get("p50_ms"),
            "speedup": row.get("speedup"),
            "accuracy": {k: accuracy.get(k) for k in ("cosine", "top1", "snr_db")},
        }
    failed = [j for j in jobs if j.status != "ok"]
    return {
        "model": model,
        "target": target,
        "status": "failed" if failed else "ok",
        "jobs": [j.id for j in jobs],
        "failures": [{"job": j.id, "exit_code": j.exit_code, "error": j.error} for j in failed],
        "selected": selected,
        "why_none": None if selected else _why_none(jobs),
    }


def _why_none(jobs: list[JobResult]) -> str:
    if all(j.status != "ok" for j in jobs):
        return "every job failed"
    return "no artifact was timed within the accuracy budget (bench off, or nothing met the budget)"


# --- HTML -----------------------------------------------------------------------------------------------

_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.4em .6em;vertical-align:top}
th{background:#f4f4f4}.ok{color:#146c2e}.failed{color:#b3261e;font-weight:600}.dim{color:#777}
code{font-size:12px}
"""


def render_html(summary: dict[str, Any]) -> str:
    e = html.escape
    cells = {(c["model"], c["target"]): c for c in summary["cells"]}
    head = "".join(f"<th>{e(t)}</th>" for t in summary["targets"])
    rows = []
    for model in summary["models"]:
        tds = "".join(_cell_html(cells.get((model, t))) for t in summary["targets"])
        rows.append(f"<tr><th>{e(model)}</th>{tds}</tr>")
    cache = summary.get("cache")
    cache_line = (
        f"cache {e(str(cache['url']))}: {cache['hits']} hit(s), {cache['misses']} miss(es), "
        f"{cache['refused']} refused"
        if cache
        else "no cache"
    )
    jobs = "".join(_job_html(j) for j in summary["jobs"])
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>infercc matrix</title><style>{_STYLE}</style>"
        f"</head><body><h1>infercc matrix <span class='{summary['status']}'>{e(summary['status'])}</span></h1>"
        f"<p>{e(summary['backend'])} · {len(summary['jobs'])} job(s) · {summary['wall_s']:.1f} s wall, "
        f"{summary['jobs_s']:.1f} s of jobs · {cache_line} · exit code {summary['exit_code']}</p>"
        f"<table><tr><th>model \\ target</th>{head}</tr>{''.join(rows)}</table>"
        "<h2>Jobs</h2><table><tr><th>job</th><th>status</th><th>seconds</th><th>stages ran / from cache / "
        f"up to date</th><th>error</th></tr>{jobs}</table></body></html>\n"
    )


def _cell_html(cell: dict[str, Any] | None) -> str:
    e = html.escape
    if cell is None:
        return "<td class='dim'>-</td>"
    parts = [f"<span class='{cell['status']}'>{e(cell['status'])}</span>"]
    sel = cell.get("selected")
    if sel:
        acc = sel.get("accuracy") or {}
        figures = [f"{sel['speedup']:.2f}x vs PyTorch" if sel.get("speedup") is not None else None]
        figures.append(f"cosine {acc['cosine']:.6f}" if isinstance(acc.get("cosine"), float) else None)
        figures.append(f"top-1 {acc['top1']:.3f}" if isinstance(acc.get("top1"), float) else None)
        parts.append(
            f"<b>{e(str(sel['artifact']))}</b> on {e(str(sel.get('runtime')))}<br>"
            + ", ".join(e(f) for f in figures if f)
        )
    else:
        parts.append(f"<span class='dim'>{e(cell.get('why_none') or '')}</span>")
    for failure in cell["failures"]:
        parts.append(f"<span class='failed'>{e(failure['job'])}: {e(str(failure['error']))}</span>")
    return "<td>" + "<br>".join(parts) + "</td>"


def _job_html(job: dict[str, Any]) -> str:
    e = html.escape
    stages = f"{len(job['ran'])} / {len(job['restored'])} / {len(job['cached'])}"
    status = job["status"] + (" (earlier run)" if job.get("resumed") else "")
    return (
        f"<tr><td><code>{e(job['id'])}</code></td><td class='{job['status']}'>{e(status)}</td>"
        f"<td>{job['seconds']:.1f}</td><td>{stages}</td><td>{e(job.get('error') or '')}</td></tr>"
    )
