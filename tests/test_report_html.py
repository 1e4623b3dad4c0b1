"""report.html as a person sees it: rendered by headless Chromium, not blank, one colour per artifact in
every table and plot, the shared legend present."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from tests.conftest import CNN_SHAPES

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
pytestmark = [
    pytest.mark.xdist_group("report-html"),
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="headless Chromium is not installed (make setup installs Debian's chromium where it can run apt-get)",
    ),
]


def chromium(*args: str) -> subprocess.CompletedProcess[str]:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run"]
    return subprocess.run([CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=120, check=False)


def _rgb(colour: str) -> tuple[int, int, int]:
    return tuple(int(colour[i : i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]


def test_report_renders_with_one_colour_per_artifact_and_a_legend(cli, tmp_path):
    from PIL import Image

    from infercc.report.render import colour_map

    out = tmp_path / "out"
    result = cli("compile", *CNN_SHAPES, "--precision", "fp32,fp16", "--out", out, "--iterations", "3",
                 "--warmup", "1", "--set", "bench.repeats=2", "--threads", "1", "-q")  # fmt: skip
    assert result.code == 0, result.text
    report = json.loads((out / "report.json").read_text())
    page = (out / "report.html").resolve().as_uri()

    shot = tmp_path / "report.png"
    run = chromium("--window-size=1280,3600", f"--screenshot={shot}", page)
    assert run.returncode == 0 and shot.is_file(), run.stderr[-2000:]
    image = Image.open(shot).convert("RGB")
    counts = {rgb: n for n, rgb in image.getcolors(maxcolors=1 << 24)}
    total = image.width * image.height
    assert len(counts) > 50 and counts.get((255, 255, 255), 0) < 0.97 * total  # not blank
    colours = colour_map(report)
    assert set(colours) >= {"onnx", "fp32", "fp16", "pytorch"} and len(set(colours.values())) == len(colours)
    for name, colour in colours.items():
        # the legend's and the tables' swatches are solid squares of the artifact's colour
        assert counts.get(_rgb(colour), 0) >= 200, f"{name}'s colour {colour} is not on the page"

    dom = chromium("--dump-dom", page).stdout
    legend = re.search(r'<div class="legend"[^>]*>(.*?)</div>', dom, re.S)
    assert legend, "no legend in the rendered page"
    labels = re.findall(r'data-artifact="([^"]+)"', legend.group(1))
    assert labels == [a["name"] for a in report["artifacts"]] + ["pytorch"]
    assert "onnxruntime-cpu" in legend.group(1) and "PyTorch eager" in legend.group(1)
    runtimes = {r["runtime"] for r in report["bench"]["results"] if r["artifact"] != "pytorch"}
    assert "onnxruntime-cpu" in runtimes and "Accuracy vs speed" in dom
    for runtime in runtimes:  # one latency-throughput plot per runtime (its title and its aria-label)
        assert dom.count(f"Latency vs throughput — {runtime}") == 2
    assert "max rel</abbr>" in dom and "within atol OR rtol" in dom  # explained on hover and in a footnote
    assert "{" not in re.sub(r"<style>.*?</style>", "", dom, flags=re.S)  # no dict syntax anywhere
