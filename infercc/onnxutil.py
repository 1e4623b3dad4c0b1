"""Small helpers over the onnx package: loading with clear errors, saving atomically, summaries."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from infercc.errors import StageError, UsageError
from infercc.fsutil import atomic_bundle, check_regular_file
from infercc.lazy import require

TWO_GB = 2 * 1024**3


MAX_PROTOBUF_BYTES = 2**31


def load_onnx(path: Path, with_data: bool = True) -> Any:
    onnx = require("onnx")
    path = Path(path)
    if not path.exists():
        raise UsageError(f"ONNX file {path} does not exist.")
    check_regular_file(path, "ONNX file", MAX_PROTOBUF_BYTES)
    if path.stat().st_size == 0:
        raise UsageError(
            f"ONNX file {path} is empty (0 bytes).", hint="Re-export the model or copy it again."
        )
    try:
        model = onnx.load(str(path), load_external_data=False)
        if with_data:
            _check_external_files(model, path)
            onnx.load_external_data_for_model(model, str(path.parent))
    except UsageError:
        raise
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise UsageError(
            f"{path} is not a readable ONNX file (truncated or corrupt): {first}",
            hint="Re-export the model, or check that the file was copied completely.",
        ) from exc
    if not model.ir_version and not model.graph.node and not model.opset_import:
        # protobuf parses many short byte strings as an empty message
        raise UsageError(
            f"{path} is not an ONNX model (no IR version, opset or nodes: truncated, or another kind of file).",
            hint="Re-export the model, or check that the file was copied completely.",
        )
    return model


def external_data_files(model: Any) -> list[str]:
    """The `location`s of a model's external-data tensors, each once, in order."""
    from onnx.external_data_helper import ExternalDataInfo, _get_all_tensors, uses_external_data

    found: dict[str, None] = {}
    for tensor in _get_all_tensors(model):
        if uses_external_data(tensor):
            found[ExternalDataInfo(tensor).location] = None
    return list(found)


def _check_external_files(model: Any, path: Path) -> None:
    """External data must be regular files beside the model: never a device, FIFO, or a path outside."""
    base = path.parent.resolve()
    for location in external_data_files(model):
        data = (path.parent / location).resolve()
        if not data.is_relative_to(base):
            raise UsageError(f"{path} keeps tensors in {location}, outside its folder; refusing to read it.")
        if not (path.parent / location).exists():
            raise UsageError(
                f"{path} keeps its weights in {location}, which is missing beside it.",
                hint="Copy the .data file together with the .onnx file.",
            )
        check_regular_file(path.parent / location, "ONNX external data file")


def check_onnx(path: Path | Any, user_input: bool = False, name: str | None = None) -> None:
    """onnx.checker on a path (works for models with external data) or a loaded model, with a readable failure.

    `user_input`: the model came from the user (--model x.onnx), so a bad graph is a usage error (exit 2).
    """
    onnx = require("onnx")
    target = str(path) if isinstance(path, str | Path) else path
    label = name or (Path(path).name if isinstance(path, str | Path) else "the model")
    try:
        onnx.checker.check_model(target)
    except Exception as exc:
        lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
        detail = " ".join(lines[:3])[:400] if lines else type(exc).__name__
        message = f"{label} is not a valid ONNX graph: {detail}"
        if user_input:
            raise UsageError(
                message, hint="Fix or re-export the model; `infercc inspect FILE` shows its graph."
            ) from exc
        raise StageError(message) from exc


def save_onnx(model: Any, final: Path, threshold_bytes: int = TWO_GB) -> None:
    """Save atomically; a model over `threshold_bytes` gets its weights in FINAL.data beside it (written
    first under temporary names, then both renamed, so `location` always names the final file)."""
    onnx = require("onnx")
    external = model.ByteSize() > threshold_bytes if _can_size(model) else True
    with atomic_bundle(final) as tmp:
        if not external:
            onnx.save(model, str(tmp))
            return
        onnx.save(
            model,
            str(tmp),
            save_as_external_data=True,
            all_tensors_to_one_file=True,
            location=f"{tmp.name}.data",
        )


def externalize_if_large(path: Path, threshold_bytes: int) -> None:
    """Move the weights of the ONNX file at `path` into `<path>.data` when the file exceeds the threshold
    (the TorchScript exporter only does so past 2 GB)."""
    if path.stat().st_size <= threshold_bytes:
        return
    onnx = require("onnx")
    model = onnx.load(str(path), load_external_data=True)
    onnx.save(
        model,
        str(path),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location=f"{path.name}.data",
    )


def _can_size(model: Any) -> bool:
    try:
        model.ByteSize()
        return True
    except Exception:
        return False


def io_dims(model: Any) -> dict[str, dict[str, Any]]:
    """{input/output name: {"dims": [int | str | None], "dtype": str, "io": "input"|"output"}}."""
    onnx = require("onnx")
    initializers = {i.name for i in model.graph.initializer}
    result = {}
    for io, values in (("input", model.graph.input), ("output", model.graph.output)):
        for value in values:
            if value.name in initializers:
                continue
            tensor = value.type.tensor_type
            dims: list[int | str | None] = []
            for d in tensor.shape.dim:
                if d.HasField("dim_value"):
                    dims.append(d.dim_value)
                elif d.HasField("dim_param"):
                    dims.append(d.dim_param)
                else:
                    dims.append(None)
            dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type).name if tensor.elem_type else "?"
            result[value.name] = {"dims": dims, "dtype": dtype, "io": io}
    return result


def op_counts(model: Any) -> dict[str, int]:
    counts: Counter[str] = Counter()

    def walk(graph: Any) -> None:
        for node in graph.node:
            counts[node.op_type] += 1
            for attr in node.attribute:
                if attr.g is not None and attr.g.node:
                    walk(attr.g)

    walk(model.graph)
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def parameter_count(model: Any) -> int:
    total = 0
    for init in model.graph.initializer:
        n = 1
        for d in init.dims:
            n *= d
        total += n
    return total


def opsets(model: Any) -> dict[str, int]:
    return {(o.domain or "ai.onnx"): o.version for o in model.opset_import}


def summary(path: Path) -> dict[str, Any]:
    """What `infercc inspect` shows for an ONNX file."""
    model = load_onnx(path, with_data=False)
    counts = op_counts(model)
    size = Path(path).stat().st_size
    data_file = Path(f"{path}.data")
    return {
        "path": str(path),
        "size_bytes": size + (data_file.stat().st_size if data_file.exists() else 0),
        "ir_version": model.ir_version,
        "opsets": opsets(model),
        "producer": f"{model.producer_name} {model.producer_version}".strip(),
        "io": io_dims(model),
        "nodes": sum(counts.values()),
        "op_counts": counts,
        "parameters": parameter_count(model),
    }
