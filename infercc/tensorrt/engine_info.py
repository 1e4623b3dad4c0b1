"""What `infercc inspect ENGINE` shows: an engine's sidecar, and its layers from the engine inspector when the
engine loads here. Returns plain data; infercc.inspection draws it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from infercc.config import Flavour
from infercc.errors import InferccError
from infercc.runtimes.base import TensorSpec
from infercc.tensorrt.flavours import select_flavour
from infercc.tensorrt.runtime import TensorRTRuntime, gpu_visible


def inspect_engine(path: Path) -> dict[str, Any]:
    """Engine summary for `infercc inspect`: from the engine inspector when the engine loads here, else
    from the network recorded in the sidecar at build time. `listing_source` says which."""
    from infercc.tensorrt.profiles import describe_profiles, profiles_from_json
    from infercc.tensorrt.sidecar import load_sidecar, version_problem

    path = Path(path)
    side = load_sidecar(path)
    built = side.get("flavour", {})
    try:
        flavour = select_flavour(
            Flavour.tensorrt if built.get("family", "").startswith("trt") else Flavour.tensorrt_rtx
        )
    except InferccError:
        flavour = None
    problem = version_problem(side, flavour)
    network = side.get("network", {})
    profiles = profiles_from_json(side.get("profiles", []))
    info: dict[str, Any] = {
        "path": str(path),
        "size_bytes": path.stat().st_size,
        "precision": side.get("precision"),
        "flavour": built,
        "targets": side.get("targets", {}),
        "profiles": side.get("profiles", []),
        "profiles_text": describe_profiles(profiles),
        "source": side.get("source", {}),
        "built": side.get("built"),
        "build_s": side.get("build_s"),
        "settings": side.get("settings", {}),
        "header": side.get("header", {}),
        "inputs": network.get("inputs", []),
        "outputs": network.get("outputs", []),
        "layers": [
            {k: layer.get(k) for k in ("name", "type", "precision")} for layer in network.get("layers", [])
        ],
        "listing_source": "sidecar: the network as parsed at build time (before TensorRT's layer fusion)",
        "loadable_here": problem is None,
        "problem": problem,
        "notes": side.get("notes", []),
        "rebuild": side.get("rebuild"),
    }
    if problem is None:
        try:
            from_engine = _inspect_loaded(path)
        except InferccError as exc:
            info["loadable_here"] = False
            info["problem"] = exc.message
        else:
            if from_engine is not None:
                info.update(from_engine)
    return info


def _inspect_loaded(path: Path) -> dict[str, Any] | None:
    """Layers and I/O from the engine inspector; None when no GPU is visible (nothing to try)."""
    if not gpu_visible():
        return None
    with TensorRTRuntime(path) as rt:
        trt, engine = rt._trt, rt.engine
        inspector = engine.create_engine_inspector()
        data = json.loads(inspector.get_engine_information(trt.LayerInformationFormat.JSON))
        layers = []
        for layer in data.get("Layers", []):
            if isinstance(layer, str):  # LAYER_NAMES_ONLY verbosity
                layers.append({"name": layer, "type": "?", "precision": "?"})
                continue
            outs = layer.get("Outputs") or []
            fmt = outs[0].get("Format/Datatype", "?") if outs and isinstance(outs[0], dict) else "?"
            layers.append({"name": layer.get("Name"), "type": layer.get("LayerType"), "precision": fmt})
        inputs, outputs = rt.io_spec()

        def tensor(t: TensorSpec) -> dict[str, Any]:
            return {"name": t.name, "dtype": t.dtype, "shape": [-1 if d is None else d for d in t.shape]}

        return {
            "inputs": [tensor(t) for t in inputs],
            "outputs": [tensor(t) for t in outputs],
            "layers": layers,
            "listing_source": "engine inspector (the built engine's layers and kernels)",
        }
