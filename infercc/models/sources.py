"""Turn a model spec into something the pipeline can compile.

Specs: path/to/file.py:factory, package.module:factory, model.pt / model.ts (TorchScript),
model.pt2 (torch.export), model.onnx (export skipped), torchvision:NAME, timm:NAME.
Hashing a source never imports torch, so an up-to-date re-run stays fast.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import re
import sys
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from pickle import UnpicklingError
from typing import Any

from infercc.config import ModelConfig
from infercc.errors import UsageError
from infercc.fsutil import check_regular_file, sha256_bytes, sha256_file, sha256_json
from infercc.lazy import require, version_of
from infercc.models.boundary import refuse_file, refuse_module, user_code


class SourceKind(StrEnum):
    file_factory = "file_factory"
    module_factory = "module_factory"
    torchscript = "torchscript"
    exported_program = "exported_program"
    onnx = "onnx"
    torchvision = "torchvision"
    timm = "timm"


@dataclass(frozen=True)
class ModelSource:
    kind: SourceKind
    spec: str
    path: Path | None = None  # file for file-based kinds
    target: str | None = None  # module name, factory name or hub model name
    factory: str | None = None

    @property
    def is_onnx(self) -> bool:
        return self.kind is SourceKind.onnx


MAX_ONNX_BYTES = 2**31  # protobuf's limit; larger models keep their weights in external data
MAX_PY_BYTES = 16 << 20
_TORCHSCRIPT_SUFFIXES = {".pt", ".pth", ".ts", ".jit", ".torchscript"}


def parse_source(spec: str) -> ModelSource:
    """Classify a spec without importing anything heavy. Missing files are errors here."""
    spec = spec.strip()
    if not spec:
        raise UsageError(
            "The model spec is empty.", hint="Pass --model path/to/file.py:factory or --model model.onnx."
        )
    for hub in ("torchvision", "timm"):
        if spec.startswith(f"{hub}:"):
            name = spec.split(":", 1)[1]
            if not name:
                raise UsageError(f"--model {spec}: give a model name after '{hub}:'.")
            return ModelSource(SourceKind(hub), spec, target=name)
    if ":" in spec and not Path(spec).exists():
        where, factory = spec.rsplit(":", 1)
        if not factory.isidentifier():
            raise UsageError(f"--model {spec}: {factory!r} is not a valid Python function name.")
        if where.endswith(".py") or "/" in where or "\\" in where:
            path = Path(where)
            if not path.is_file():
                raise UsageError(
                    f"Model file {path} does not exist.", hint="Check the path before ':' in --model."
                )
            refuse_file(path, spec)
            check_regular_file(path, "Model file", MAX_PY_BYTES)
            return ModelSource(SourceKind.file_factory, spec, path=path, factory=factory)
        refuse_module(where, spec)
        return ModelSource(SourceKind.module_factory, spec, target=where, factory=factory)
    path = Path(spec)
    if not path.exists():
        raise UsageError(
            f"Model {spec} does not exist.",
            hint="Use path/to/file.py:factory, package.module:factory, or a .onnx/.pt/.pt2 file.",
        )
    if path.is_dir():
        raise UsageError(f"Model {spec} is a folder; give a file or a file.py:factory spec.")
    suffix = path.suffix.lower()
    check_regular_file(path, "Model file", MAX_ONNX_BYTES if suffix == ".onnx" else None)
    if suffix == ".onnx":
        return ModelSource(SourceKind.onnx, spec, path=path)
    if suffix == ".pt2":
        return ModelSource(SourceKind.exported_program, spec, path=path)
    if suffix in _TORCHSCRIPT_SUFFIXES:
        return ModelSource(SourceKind.torchscript, spec, path=path)
    if suffix == ".py":
        raise UsageError(f"--model {spec}: name the factory function too, as {spec}:make_model.")
    raise UsageError(
        f"Cannot tell what kind of model {spec} is from its suffix {suffix!r}.",
        hint="Use .onnx, .pt, .pt2 or file.py:factory.",
    )


def source_fingerprint(source: ModelSource, config: ModelConfig) -> str:
    """sha256 over what defines the model: its file(s), factory, kwargs and weights. No torch import."""
    parts: dict[str, Any] = {"spec": source.spec, "kind": source.kind.value, "kwargs": config.kwargs}
    if source.path is not None:
        parts["file"] = sha256_file(source.path)
    if source.kind is SourceKind.module_factory and source.target:
        parts["module"] = _module_file_hash(source.target)
    if source.kind in (SourceKind.torchvision, SourceKind.timm):
        parts["version"] = version_of(source.kind.value)
    if config.weights is not None:
        weights = Path(config.weights)
        if not weights.exists():
            raise UsageError(
                f"Weights file {weights} does not exist.", hint="Check model.weights / --weights."
            )
        check_regular_file(weights, "Weights file")
        parts["weights"] = sha256_file(weights)
    return sha256_json(parts)


def _module_file_hash(module: str) -> str:
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError) as exc:
        raise UsageError(
            f"Cannot find Python module {module!r}: {exc}",
            hint="Check --model package.module:factory and that the package is installed.",
        ) from None
    if spec is None:
        raise UsageError(
            f"Cannot find Python module {module!r}.",
            hint="Check the module path in --model, or give a file instead: path/to/file.py:factory.",
        )
    origin = spec.origin
    if origin and Path(origin).is_file():
        top = module.split(".")[0]
        return sha256_bytes(Path(origin).read_bytes() + str(version_of(top)).encode())
    return sha256_bytes(module.encode())


@contextlib.contextmanager
def _on_sys_path(folder: Path):
    sys.path.insert(0, str(folder))
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(str(folder))


def load_module(source: ModelSource, config: ModelConfig) -> Any:
    """Build the nn.Module for a source (not for ONNX sources). Loads weights if configured."""
    torch = require("torch", "loading PyTorch models")
    with user_code(f"The model {source.spec}", "being built"):
        model = _build(source, config, torch)
    if not isinstance(model, torch.nn.Module):
        raise UsageError(
            f"--model {source.spec} returned a {type(model).__name__}, not a torch.nn.Module.",
            hint="The factory must return the model instance (e.g. `return MyNet()`).",
        )
    _check_parameter_memory(model, source)
    if config.weights is not None:
        _load_weights(model, Path(config.weights), config.allow_pickle, torch)
    try:
        return model.eval()
    except NotImplementedError:  # torch.export's unlifted modules have no train/eval switch
        return model


def _check_parameter_memory(model: Any, source: ModelSource) -> None:
    from infercc.resources import check_parameters_fit

    try:
        size = sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])
    except Exception:  # a module without the usual parameter API: nothing to measure
        return
    check_parameters_fit(size, source.spec)


def _build(source: ModelSource, config: ModelConfig, torch: Any) -> Any:
    if source.kind in (SourceKind.file_factory, SourceKind.module_factory):
        factory = _resolve_factory(source)
        try:
            with user_code(f"The model factory {source.spec}", "building the model"):
                return factory(**config.kwargs)
        except TypeError as exc:
            if "argument" in str(exc):
                raise UsageError(
                    f"Calling {source.spec} with kwargs {config.kwargs}: {exc}",
                    hint="Check model.kwargs / --model-arg.",
                ) from exc
            raise _factory_failed(source, exc) from exc
        except UsageError:
            raise
        except Exception as exc:
            raise _factory_failed(source, exc) from exc
    if source.kind is SourceKind.torchscript:
        return _load_torch_file(source.path, config.allow_pickle, torch)
    if source.kind is SourceKind.exported_program:
        try:
            return torch.export.load(str(source.path)).module()
        except Exception as exc:
            raise UsageError(
                f"Cannot load torch.export file {source.path}: {type(exc).__name__}: {exc}"
            ) from exc
    if source.kind is SourceKind.torchvision:
        tv = require("torchvision", f"--model {source.spec}")
        kwargs = {"weights": "DEFAULT", **config.kwargs}
        try:
            return tv.models.get_model(source.target, **kwargs)
        except ValueError as exc:
            raise UsageError(
                f"torchvision has no model {source.target!r}: {exc}",
                hint="See torchvision.models.list_models().",
            ) from exc
        except Exception as exc:
            raise _hub_failed(source, exc) from exc
    if source.kind is SourceKind.timm:
        timm = require("timm", f"--model {source.spec}")
        kwargs = {"pretrained": True, **config.kwargs}
        try:
            return timm.create_model(source.target, **kwargs)
        except RuntimeError as exc:
            if "Unknown model" in str(exc):
                raise UsageError(
                    f"timm has no model {source.target!r}.", hint="See timm.list_models()."
                ) from exc
            raise _hub_failed(source, exc) from exc
        except Exception as exc:
            raise _hub_failed(source, exc) from exc
    raise UsageError(f"{source.spec} is an ONNX file; it has no PyTorch module.")


def _factory_failed(source: ModelSource, exc: Exception) -> UsageError:
    return UsageError(
        f"The model factory {source.spec} raised {type(exc).__name__}: {exc}",
        hint="Fix the factory (run with -v for the traceback).",
    )


def _hub_failed(source: ModelSource, exc: Exception) -> UsageError:
    return UsageError(
        f"Could not create {source.spec}: {type(exc).__name__}: {str(exc)[:300]}",
        hint="Pretrained weights are downloaded from a hub: without network, pass --model-arg weights=null "
        "(torchvision) or pretrained=false (timm) and --weights FILE.",
    )


def _resolve_factory(source: ModelSource) -> Any:
    if source.kind is SourceKind.file_factory:
        assert source.path is not None
        path = source.path.resolve()
        module_name = f"infercc_user_{sha256_bytes(str(path).encode())[:12]}"
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise UsageError(f"Cannot import {path} as Python.")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            with _on_sys_path(path.parent), user_code(f"The model file {path}", "being imported", argv0=path):
                spec.loader.exec_module(module)
        except UsageError:
            sys.modules.pop(module_name, None)
            raise
        except Exception as exc:
            sys.modules.pop(module_name, None)
            raise UsageError(
                f"Importing {path} failed: {type(exc).__name__}: {exc}", hint="Run with -v for the traceback."
            ) from exc
    else:
        try:
            who = f"The model module {source.target}"
            with _on_sys_path(Path.cwd()), user_code(who, "being imported", argv0=source.target):
                module = importlib.import_module(source.target or "")
        except ModuleNotFoundError as exc:
            raise UsageError(
                f"Cannot import module {source.target!r}: {exc}", hint="Check --model package.module:factory."
            ) from exc
        except UsageError:
            raise
        except Exception as exc:
            raise UsageError(f"Importing {source.target} failed: {type(exc).__name__}: {exc}") from exc
    factory = getattr(module, source.factory or "", None)
    if factory is None:
        public = sorted(n for n in vars(module) if not n.startswith("_") and callable(getattr(module, n)))
        raise UsageError(
            f"{source.spec}: no function {source.factory!r} in {source.path or source.target}.",
            hint=f"Callables defined there: {', '.join(public[:12]) or 'none'}.",
        )
    if not callable(factory):
        raise UsageError(f"{source.spec}: {source.factory!r} is not callable.")
    return factory


def _load_torch_file(path: Path | None, allow_pickle: bool, torch: Any) -> Any:
    assert path is not None
    try:
        return torch.jit.load(str(path), map_location="cpu")
    except Exception:
        pass  # not TorchScript: try torch.load below, whose error is the one worth showing
    obj = _torch_load(path, allow_pickle, torch, what="model file")
    if isinstance(obj, dict):
        raise UsageError(
            f"{path} holds a state dict, not a model.",
            hint=f"Use --model file.py:factory --weights {path}.",
        )
    return obj


def _torch_load(path: Path, allow_pickle: bool, torch: Any, what: str) -> Any:
    try:
        return torch.load(str(path), map_location="cpu", weights_only=not allow_pickle)
    except Exception as exc:
        text = str(exc)
        if not allow_pickle and ("Weights only load failed" in text or "weights_only" in text):
            blocked = re.search(r"GLOBAL ([\w.]+)", text)
            what_for = f" to rebuild {blocked.group(1)}" if blocked else ""
            raise UsageError(
                f"{what} {path} needs full unpickling{what_for}, which weights_only=True refuses "
                "(unpickling can run arbitrary code from the file).",
                hint="If you trust the file, pass --allow-pickle (model.allow_pickle: true); better, save a state "
                "dict (torch.save(model.state_dict(), ...)) and load it with --weights.",
            ) from exc
        if (
            "PytorchStreamReader" in text
            or "zip archive" in text
            or isinstance(exc, EOFError | UnpicklingError)
        ):
            first = text.split(". This is an internal", 1)[0].splitlines()[0] if text else type(exc).__name__
            raise UsageError(
                f"{what} {path} is truncated or corrupt: {first}",
                hint="Copy or save the file again (torch.save), and check its size.",
            ) from exc
        hint = None
        if isinstance(exc, ModuleNotFoundError):
            hint = "The pickle refers to the model's Python module: run from the folder that holds it, or save a state dict."
        raise UsageError(
            f"Cannot read {what} {path}: {type(exc).__name__}: {text.splitlines()[0] if text else ''}",
            hint=hint,
        ) from exc


def _check_torch_file(path: Path) -> None:
    """torch.save writes a zip archive (or, in old files, a pickle): anything else is the wrong file, and
    torch.load would call it a pickle problem."""
    with path.open("rb") as f:
        head = f.read(512)
    if head.startswith(b"PK\x03\x04") or head[:1] == b"\x80":
        return
    kind = "an ONNX model" if path.suffix.lower() == ".onnx" else None
    if kind is None and head and all(32 <= b < 127 or b in (9, 10, 13) for b in head):
        kind = (
            "Python source"
            if path.suffix == ".py" or b"import " in head or b"def " in head
            else "a text file"
        )
    if kind is None:
        kind = "empty" if not head else "not a file written by torch.save"
    raise UsageError(
        f"Weights file {path} is {kind}, not a state dict saved with torch.save.",
        hint="--weights takes torch.save(model.state_dict(), PATH); the model's code goes to --model file.py:factory.",
    )


def _load_weights(model: Any, path: Path, allow_pickle: bool, torch: Any) -> None:
    if not path.is_file():
        raise UsageError(f"Weights file {path} does not exist.")
    _check_torch_file(path)
    state = _torch_load(path, allow_pickle, torch, what="weights file")
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise UsageError(f"Weights file {path} holds a {type(state).__name__}, not a state dict.")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        detail = _state_dict_mismatch(model.state_dict(), state)
        if not detail:
            lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
            detail = "; ".join(lines[1:4])[:400] or (lines[0] if lines else type(exc).__name__)
        raise UsageError(
            f"Weights file {path} does not match the model: {detail}",
            hint="Check that the weights were saved from the same architecture and factory kwargs.",
        ) from exc


def _state_dict_mismatch(expected: dict[str, Any], given: dict[str, Any]) -> str:
    """Missing / unexpected keys and shape differences, a few of each, in one line."""

    def some(keys: list[str]) -> str:
        shown = ", ".join(keys[:4])
        return shown + (f", ... ({len(keys) - 4} more)" if len(keys) > 4 else "")

    missing = [k for k in expected if k not in given]
    unexpected = [str(k) for k in given if k not in expected]
    shapes = [
        f"{k} is {'x'.join(map(str, given[k].shape))} in the file, {'x'.join(map(str, v.shape))} in the model"
        for k, v in expected.items()
        if k in given and hasattr(given[k], "shape") and tuple(given[k].shape) != tuple(v.shape)
    ]
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing key(s): {some(missing)}")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected key(s): {some(unexpected)}")
    if shapes:
        parts.append(f"{len(shapes)} shape mismatch(es): {some(shapes)}")
    return "; ".join(parts)
