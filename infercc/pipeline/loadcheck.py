"""The load gate: every ONNX artifact a stage writes must load and run one inference on each of its target
runtimes that can run here before the stage succeeds.

A stage checks its own artifact on the runtime it measures with (parity and accuracy run on ONNX Runtime
CPU); a graph that ONNX Runtime accepts can still be refused by OpenVINO, or crash ONNX Runtime's CUDA
provider. Finding that in verify, after the artifact was recorded as done and its successors were built on it,
is late; finding it in bench or in deployment is later. The runner therefore loads each written artifact on the
runtimes verify will use for it (verify.runtimes, else every registered runtime of its kind, where installed),
in a child process each (infercc.runtimes.isolation), and fails the stage naming the runtime and the reason.
A runtime that lacks an op the graph uses is not a broken artifact but a model beyond that runtime: that is
recorded (meta "load_checks") and left to verify, which fails the pair naming the op.

AOTInductor packages are load-checked by their own stage on their device; a package that cannot load there is
kept, marked "built, not loadable on this machine" and never selected (docs/inductor.md), so they are not
gated here. TensorRT engines are gated where TensorRT runs: the runtime is simply unavailable elsewhere.
"""

from __future__ import annotations

import re
from typing import Any

from infercc.errors import StageError
from infercc.pipeline.manifest import companion_paths
from infercc.pipeline.stage import NewArtifact, RunContext, StageOutput

GATED_KINDS = ("onnx", "onnx-bf16", "engine")


def target_runtimes(ctx: RunContext, artifact: NewArtifact) -> list[str]:
    """The runtimes verify will run `artifact` on here: configured or registered, installed, and accepting
    its kind (and, for a graph fused into ONNX Runtime's own ops, only ONNX Runtime)."""
    from infercc.runtimes.base import candidate_runtimes, probe, runs_artifact

    names = []
    for name in candidate_runtimes(ctx.config.verify.runtimes):
        cls, why_not = probe(name)
        if cls is not None and not why_not and runs_artifact(name, cls, artifact):
            names.append(name)
    return names


def gate(ctx: RunContext, output: StageOutput) -> StageOutput:
    """Load-check every gated artifact of `output`; record each artifact's checks in its meta ("load_checks"),
    or raise StageError (exit 4) naming each runtime that failed, after removing the stage's files (none of them
    is recorded)."""
    from infercc.runtimes.isolation import load_check

    feeds = _opt_feeds(ctx)
    failed: list[str] = []
    for artifact in output.artifacts:
        if artifact.kind not in GATED_KINDS:
            continue
        runtimes = target_runtimes(ctx, artifact)
        results = load_check(ctx.path(artifact.filename), runtimes, feeds, threads=ctx.config.bench.threads)
        artifact.meta["load_checks"] = [r.to_dict() for r in results]
        failed += [r.reason for r in results if not r.ok and not r.skipped and not capability_gap(r.reason)]
    if failed:
        for artifact in output.artifacts:
            for name in (artifact.filename, *companion_paths(artifact.filename)):
                ctx.path(name).unlink(missing_ok=True)
        raise StageError(
            "; ".join(failed),
            hint="The artifact was written but does not load or run there, so it was removed. Leave that runtime "
            "out (verify.runtimes), or try another opset or precision.",
        )
    return output


# A runtime that names an op it does not implement (infercc's explainers for ONNX Runtime and OpenVINO): the model
# itself is beyond that runtime, whichever stage wrote it. Left to verify, which fails that pair naming the op.
_CAPABILITY_GAP = re.compile(r"cannot run op |has no op ")


def capability_gap(reason: str) -> bool:
    return bool(_CAPABILITY_GAP.search(reason))


def _opt_feeds(ctx: RunContext) -> dict[str, Any] | None:
    """The reference's opt inputs (export writes them first); None (load only) before there is a reference."""
    from infercc.stages.export import REFERENCE_FILE, load_reference

    path = ctx.path(REFERENCE_FILE)
    if not path.is_file():
        return None
    points = load_reference(path)
    return points.get("opt", next(iter(points.values())))[0]
