"""Data from user code: `module:fn` or `path/to/file.py:fn`, where fn() yields batches as dicts of arrays."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from infercc.data.base import DataFormat, Item, ModelInputs, register_format
from infercc.errors import UsageError
from infercc.fsutil import sha256_bytes
from infercc.models.boundary import refuse_file, refuse_module, user_code

if TYPE_CHECKING:
    from infercc.config import DataSource


@register_format
class CallableData(DataFormat):
    """`callable:` module:fn or file.py:fn; fn() yields batches as dicts of arrays."""

    kind = "callable"

    def items(self, source: DataSource, inputs: ModelInputs, role: str) -> tuple[list[Item], str]:
        return items(source.callable or "", source, role)

    def paths(self, source: DataSource, role: str) -> list[Path]:
        spec = source.callable or ""
        return [Path(spec.rsplit(":", 1)[0])] if ".py:" in spec else []


def resolve(spec: str) -> Callable[..., Any]:
    target, sep, fn_name = spec.rpartition(":")
    if not sep or not target or not fn_name:
        raise UsageError(
            f"Data source {spec!r}: expected module:fn or file.py:fn.", hint="For example mydata.py:batches."
        )
    try:
        if target.endswith(".py"):
            path = Path(target)
            if not path.is_file():
                raise UsageError(
                    f"Data source {spec}: {path} does not exist.",
                    hint="Check the path (relative to the current folder).",
                )
            refuse_file(path, spec, what="data source")
            name = f"infercc_data_{sha256_bytes(str(path.resolve()).encode())[:12]}"
            module_spec = importlib.util.spec_from_file_location(name, path)
            assert module_spec is not None and module_spec.loader is not None
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[name] = module
            with user_code(f"The data file {path}", "being imported", argv0=path):
                module_spec.loader.exec_module(module)
        else:
            refuse_module(target, spec, what="data source")
            with user_code(f"The data module {target}", "being imported", argv0=target):
                module = importlib.import_module(target)
    except UsageError:
        raise
    except Exception as exc:
        raise UsageError(
            f"Data source {spec}: importing {target} failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}",
            hint="Check that the module imports on its own.",
        ) from exc
    fn = getattr(module, fn_name, None)
    if not callable(fn):
        raise UsageError(
            f"Data source {spec}: {target} has no callable {fn_name}.",
            hint="Name a function that yields batches.",
        )
    return fn


def source_fingerprint(spec: str, fn: Callable[..., Any]) -> str:
    """The callable's module source: editing the data code invalidates the calibration."""
    try:
        text = inspect.getsource(sys.modules[fn.__module__])
    except (OSError, TypeError, KeyError):
        text = getattr(fn, "__qualname__", spec)
    return sha256_bytes(f"{spec}\n{text}".encode())


def items(spec: str, source: DataSource, role: str) -> tuple[list[Item], str]:
    """Calls fn() once and keeps up to `samples` batches (so they can be split and fingerprinted)."""
    fn = resolve(spec)
    fingerprint = source_fingerprint(spec, fn)
    try:
        with user_code(f"The data source {spec}", "producing batches"):
            produced = fn()
            batches = []
            for batch in produced:
                batches.append(batch)
                if len(batches) >= source.samples:
                    break
    except TypeError as exc:
        raise UsageError(
            f"Data source {spec}: calling it failed: {exc}.",
            hint="fn() takes no arguments and yields dicts of arrays.",
        ) from exc
    except UsageError:
        raise
    except Exception as exc:
        raise UsageError(
            f"Data source {spec} raised {type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}",
            hint="Run the function on its own to debug it.",
        ) from exc
    if not batches:
        raise UsageError(
            f"Data source {spec} yielded no batches for {role}.", hint="Yield at least one dict of arrays."
        )
    made = [Item(f"batch {i}", _const(b), f"{fingerprint}:{i}") for i, b in enumerate(batches)]
    return made, f"{len(made)} batches from {spec}"


def _const(batch: Any) -> Callable[[], list[Any]]:
    return lambda: [batch]
