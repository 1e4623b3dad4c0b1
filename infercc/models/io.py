"""How model inputs are named and outputs flattened, shared by the exporter and the PyTorch runtime."""

from __future__ import annotations

import inspect
from typing import Any


def flatten_outputs(result: Any, names: list[str] | None = None) -> dict[str, Any]:
    """Flatten a forward() result (tensor, tuple/list, dict, dataclass-like) into {name: tensor}.

    The order is the one torch.onnx.export uses, so names line up with the ONNX graph outputs.
    """
    leaves: list[tuple[str, Any]] = []
    _collect(result, "output", leaves)
    if len(leaves) == 1 and leaves[0][0].startswith("output"):
        leaves = [("output", leaves[0][1])]
    if names:
        if len(names) != len(leaves):
            from infercc.errors import UsageError

            raise UsageError(
                f"model.output_names has {len(names)} names but the model returns {len(leaves)} tensors "
                f"({', '.join(n for n, _ in leaves)})."
            )
        return dict(zip(names, (t for _, t in leaves), strict=True))
    return dict(leaves)


def _collect(value: Any, prefix: str, out: list[tuple[str, Any]]) -> None:
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        out.append((prefix, value))
    elif isinstance(value, dict) or (hasattr(value, "keys") and hasattr(value, "__getitem__")):
        for key in value:
            _collect(value[key], str(key), out)
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _collect(item, f"{prefix}_{i}", out)
    elif value is None:
        return
    else:
        from infercc.errors import UsageError

        raise UsageError(
            f"The model returns a {type(value).__name__}; infercc handles tensors, tuples, lists and dicts."
        )


def forward_input_names(module: Any) -> list[str]:
    """Input names from forward()'s signature: the parameters without defaults, in order."""
    forward = getattr(module, "forward", None)
    schema = getattr(forward, "schema", None)
    if schema is not None:  # TorchScript
        return [a.name for a in schema.arguments[1:] if not a.has_default_value()]
    try:
        sig = inspect.signature(forward)
    except (TypeError, ValueError):
        return []
    names = []
    for param in sig.parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        if param.default is inspect.Parameter.empty:
            names.append(param.name)
    return names
