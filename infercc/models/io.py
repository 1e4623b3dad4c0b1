"""How model inputs are named and outputs flattened, shared by the exporter and the PyTorch runtime."""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np


def flatten_outputs(result: Any, names: list[str] | None = None) -> dict[str, Any]:
    """Flatten a forward() result (tensor, tuple/list, dict, dataclass-like) into {name: tensor}.

    The order is the one torch.onnx.export uses, so names line up with the ONNX graph outputs.
    """
    leaves: list[tuple[str, Any]] = []
    _collect(result, "output", leaves)
    if not leaves:
        from infercc.errors import UsageError

        shown = "None" if result is None else f"a {type(result).__name__} with no tensors in it"
        raise UsageError(
            f"The model's forward returned {shown}; infercc needs at least one output tensor.",
            hint="Return the output tensor(s) from forward() (a tensor, a tuple/list or a dict of tensors).",
        )
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


def input_copies(
    torch: Any, feeds: dict[str, np.ndarray], names: list[str], device: str = "cpu"
) -> list[Any]:
    """The feeds as tensors that share no memory with the arrays: a forward() that changes its inputs in place
    (x.mul_(3)) must not change the arrays the other runtimes then receive."""
    return [torch.from_numpy(np.array(feeds[n], copy=True)).to(device) for n in names]


def changed_inputs(args: list[Any], feeds: dict[str, np.ndarray], names: list[str]) -> list[str]:
    """The inputs whose tensors differ from their arrays after forward(): the model mutated them."""
    return [
        n
        for n, t in zip(names, args, strict=True)
        if np.ascontiguousarray(t.detach().cpu().numpy()).tobytes()
        != np.ascontiguousarray(feeds[n]).tobytes()
    ]


def mutation_note(names: list[str]) -> str:
    return (
        f"forward() changes its input{'s' if len(names) > 1 else ''} {', '.join(names)} in place; PyTorch is "
        "given copies, so every runtime still receives the original values"
    )


def forward_input_names(module: Any, declared: set[str] | frozenset[str] = frozenset()) -> list[str]:
    """Input names from forward()'s signature: the parameters without defaults, plus the optional ones the
    user declared a shape for, in signature order. Inputs are passed positionally, so a declared optional
    parameter needs every parameter before it declared too."""
    params = _forward_parameters(module)
    wanted = [name for name, required in params if required or name in declared]
    skipped_before = [name for name, _ in params[: len(wanted)] if name not in wanted]
    if wanted and skipped_before:
        from infercc.errors import UsageError

        last = wanted[-1]
        raise UsageError(
            f"Input {last} comes after {', '.join(skipped_before)} in forward(); inputs are passed by position.",
            hint=f"Declare a shape for {', '.join(skipped_before)} too, or wrap the model so {last} comes earlier.",
        )
    return wanted


def forward_parameter_count(module: Any) -> int:
    return len(_forward_parameters(module))


def _forward_parameters(module: Any) -> list[tuple[str, bool]]:
    """(name, required) of forward()'s parameters, in order, without *args/**kwargs."""
    forward = getattr(module, "forward", None)
    schema = getattr(forward, "schema", None)
    if schema is not None:  # TorchScript
        return [(a.name, not a.has_default_value()) for a in schema.arguments[1:]]
    try:
        sig = inspect.signature(forward)
    except (TypeError, ValueError):
        return []
    return [
        (p.name, p.default is inspect.Parameter.empty)
        for p in sig.parameters.values()
        if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
