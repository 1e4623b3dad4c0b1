"""Turn a config file plus command-line flags into one validated CompileConfig (flags win)."""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field, fields
from enum import Enum
from pathlib import Path
from typing import Any

import yaml

from infercc.config import (
    CalibrationMethod,
    CompileConfig,
    Exporter,
    Int8Route,
    Precision,
    Reference,
    Simplifier,
    Target,
    load_yaml_document,
    parse_config,
    resolve_relative_paths,
)
from infercc.errors import UsageError
from infercc.pipeline.manifest import MANIFEST_NAME, load_manifest
from infercc.pipeline.plan import UNNAMED
from infercc.shapes import parse_named_shapes, split_specs


def fields_from_params(cls: Any, params: dict[str, Any]) -> Any:
    """A dataclass from the parameters typer parsed that name its fields (unset ones keep their defaults)."""
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in params.items() if k in names and v is not None})


@dataclass
class Flags:
    """The command-line values that override the config. Field names are the commands' parameter names, so a
    command's parsed parameters (typer's ctx.params) fill it; a command without an option leaves its default."""

    model: str | None = None
    model_arg: list[str] = field(default_factory=list)  # KEY=VALUE
    weights: Path | None = None
    allow_pickle: bool = False
    shape: list[str] = field(default_factory=list)
    min_shape: list[str] = field(default_factory=list)
    opt_shape: list[str] = field(default_factory=list)
    max_shape: list[str] = field(default_factory=list)
    dtype: list[str] = field(default_factory=list)  # NAME:int64
    val_range: list[str] = field(default_factory=list)  # NAME:[LOW,HIGH]
    dim_name: list[str] = field(default_factory=list)  # NAME:AXIS=LABEL
    out: Path | None = None
    exporter: Exporter | None = None
    opset: int | None = None
    simplifier: Simplifier | None = None
    precision: list[Precision] = field(default_factory=list)
    target: list[Target] = field(default_factory=list)
    calib: str | None = None
    eval_: str | None = None
    calib_method: CalibrationMethod | None = None
    workspace: int | None = None
    timing_cache: Path | None = None
    compute_capability: list[str] = field(default_factory=list)
    builder_optimization_level: int | None = None
    int8_route: Int8Route | None = None
    reference: Reference | None = None
    inputs: Path | None = None
    load_inputs: Path | None = None
    seed: int | None = None
    iterations: int | None = None
    warmup: int | None = None
    duration: float | None = None
    threads: int | None = None
    batch_sizes: list[int] = field(default_factory=list)
    no_bench: bool = False
    lock_wait: float | None = None
    set_: list[str] = field(default_factory=list)  # dotted.key=VALUE overrides (--set), applied last

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> Flags:
        """The fields among a command's parsed parameters (the others, such as --json, are not config)."""
        return fields_from_params(cls, params)


# flags that set one config key each
CONFIG_KEYS = {
    "out": "out",
    "weights": "model.weights",
    "exporter": "export.exporter",
    "opset": "export.opset",
    "simplifier": "simplify.tool",
    "precision": "precisions",
    "target": "targets",
    "calib_method": "quantize.method",
    "workspace": "build.workspace_mib",
    "timing_cache": "build.timing_cache",
    "compute_capability": "build.compute_capabilities",
    "builder_optimization_level": "build.optimization_level",
    "int8_route": "build.int8_route",
    "reference": "verify.reference",
    "seed": "verify.seed",
    "iterations": "bench.iterations",
    "warmup": "bench.warmup",
    "duration": "bench.duration_s",
    "threads": "bench.threads",
    "batch_sizes": "bench.batch_sizes",
}


def load_settings(config_path: Path | None, flags: Flags, notes: list[str] | None = None) -> CompileConfig:
    """`config_path` is a YAML file or an earlier run's output folder (its manifest's config is reused);
    without either, an existing --out folder's recorded config, else the built-in example. Flags win.
    What was chosen, when it is not obvious, is appended to `notes` for the CLI to print."""
    notes = notes if notes is not None else []
    positions, file_data = None, None
    folder = _recorded_folder(config_path, flags)
    if folder is not None:
        data, origin = recorded_config(folder), str(folder / MANIFEST_NAME)
        data["out"] = str(folder)  # the folder itself, whatever out it was first written with
        if config_path is None:
            notes.append(f"using the config recorded in {origin}")
    elif config_path is not None:
        data, positions = load_yaml_document(config_path)
        origin = str(config_path)
        resolve_relative_paths(data, config_path.parent)
        # a value still equal to the file's came from the file: its errors cite the file's line
        file_data = copy.deepcopy(data)
    elif flags.model is None:
        from infercc.models.examples import EFFICIENTNET_LITE0_CONFIG

        data = copy.deepcopy(EFFICIENTNET_LITE0_CONFIG)
        origin = "built-in example"
        notes.append(
            "no config, folder or --model given: using the built-in EfficientNet-Lite0 example"
            + (f" in {flags.out}" if flags.out else "")
        )
    else:
        data, origin = {}, "flags"
    apply_flags(data, flags)
    config = parse_config(data, origin, positions=positions, file_data=file_data)
    notes.extend(omitted_opt_notes(config))
    return config


def _recorded_folder(config_path: Path | None, flags: Flags) -> Path | None:
    """The output folder whose recorded config this run reuses, if any."""
    if config_path is not None and config_path.is_dir():
        if not (config_path / MANIFEST_NAME).is_file():
            raise UsageError(
                f"{config_path} is a folder without {MANIFEST_NAME}, so it holds no earlier run.",
                hint="Pass a YAML config file, or the --out folder of an earlier infercc run.",
            )
        return config_path
    recorded = flags.out is not None and (flags.out / MANIFEST_NAME).is_file()
    return flags.out if recorded and config_path is None and flags.model is None else None


def recorded_config(folder: Path) -> dict[str, Any]:
    """The config an earlier run recorded in FOLDER/manifest.json (a UsageError if there is none)."""
    if not (folder / MANIFEST_NAME).is_file():
        raise UsageError(
            f"{folder} holds no {MANIFEST_NAME}, so it is not the output folder of an earlier run.",
            hint="Give the --out folder of an earlier infercc run.",
        )
    manifest, damage = load_manifest(folder)
    if manifest is None or not manifest.config:
        raise UsageError(
            damage or f"{folder / MANIFEST_NAME} records no config.",
            hint="Run infercc compile with a config file or --model to write the folder again.",
        )
    return copy.deepcopy(manifest.config)


def omitted_opt_notes(config: CompileConfig) -> list[str]:
    """A dynamic input without an opt shape is optimised (and benched first) at its max shape: say so."""
    notes = []
    for name, spec in config.inputs.items():
        ranged = spec.min is not None and spec.max is not None and spec.min != spec.max
        if ranged and spec.opt is None and spec.shape is None:
            shown = "x".join(map(str, spec.max))
            notes.append(
                f"{name or 'the input'}: no --opt-shape given; optimising for the max shape {shown} "
                f"(pass --opt-shape {name + ':' if name else ''}DIMS to choose)"
            )
    return notes


def _set(data: dict[str, Any], dotted: str, value: Any) -> None:
    node = data
    parts = dotted.split(".")
    for part in parts[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[parts[-1]] = value


def apply_flags(data: dict[str, Any], flags: Flags) -> None:
    """Write the flags into the config data (before validation); --set comes last and wins."""
    _apply_model_flags(data, flags)
    _apply_input_flags(data, flags)
    for name, dotted in CONFIG_KEYS.items():
        value = getattr(flags, name)
        if value is not None and value != []:
            _set(data, dotted, _plain(value))
    if flags.calib:
        data["calibration"] = _calib_source(flags.calib, data.get("calibration"), "--calib")
    if flags.eval_:
        data["evaluation"] = _calib_source(flags.eval_, data.get("evaluation"), "--eval")
    verify_inputs = _verify_inputs(flags.inputs, flags.load_inputs)
    if verify_inputs is not None:
        _set(data, "verify.inputs", verify_inputs)
    if flags.no_bench:
        _set(data, "bench.enabled", False)
    if flags.lock_wait is not None:
        data["lock"] = "wait" if flags.lock_wait > 0 else "fail"
        data["lock_wait_s"] = flags.lock_wait
    for item in flags.set_:
        _apply_set(data, item)


def _plain(value: Any) -> Any:
    """A flag's value as config data: Enums by value, paths as text."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _apply_model_flags(data: dict[str, Any], flags: Flags) -> None:
    if flags.model is not None:
        model = data.get("model") if isinstance(data.get("model"), dict) else {}
        if model.get("source") != flags.model:
            # a different model: its factory kwargs and output names no longer apply
            model = {"source": flags.model}
            data["inputs"] = {} if not flags.shape and not flags.opt_shape else data.get("inputs", {})
        data["model"] = model
    for item in flags.model_arg:
        if "=" not in item:
            raise UsageError(
                f"--model-arg {item!r}: expected KEY=VALUE.", hint="For example --model-arg num_classes=10."
            )
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw else ""
        except yaml.YAMLError:
            value = raw
        _set(data, f"model.kwargs.{key.strip()}", value)
    if flags.allow_pickle:
        _set(data, "model.allow_pickle", True)


def _apply_input_flags(data: dict[str, Any], flags: Flags) -> None:
    def entry(name: str | None) -> dict[str, Any]:
        return data.setdefault("inputs", {}).setdefault(name or UNNAMED, {})

    for flag, key, values in (
        ("--shape", "shape", flags.shape),
        ("--min-shape", "min", flags.min_shape),
        ("--opt-shape", "opt", flags.opt_shape),
        ("--max-shape", "max", flags.max_shape),
    ):
        for name, dims in parse_named_shapes(values, flag).items():
            spec = entry(name)
            if key == "shape":  # a static --shape replaces any range from the config
                for k in ("min", "opt", "max"):
                    spec.pop(k, None)
            spec[key] = list(dims)
    for item in split_specs(flags.dtype):
        name, _, dtype = item.rpartition(":")
        entry(name)["dtype"] = dtype.strip().lower()
    for item in split_specs(flags.dim_name):
        name, axis, label = _parse_dim_name(item)
        entry(name).setdefault("dim_names", {})[axis] = label
    for item in split_specs(flags.val_range):
        name, low, high = _parse_range(item)
        spec = entry(name)
        spec["low"], spec["high"] = low, high


def _apply_set(data: dict[str, Any], item: str) -> None:
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise UsageError(
            f"--set {item!r}: expected dotted.key=VALUE.", hint="For example --set verify.samples=8."
        )
    try:
        value = yaml.safe_load(raw) if raw else None
    except yaml.YAMLError as exc:
        raise UsageError(f"--set {item!r}: the value is not valid YAML ({exc.__class__.__name__}).") from None
    _set(data, key.strip(), value)


def _verify_inputs(folder: Path | None, polygraphy_file: Path | None) -> str | None:
    if folder is not None and polygraphy_file is not None:
        raise UsageError("--inputs and --load-inputs both give verify inputs.", hint="Pass one of them.")
    if polygraphy_file is not None and polygraphy_file.suffix.lower() != ".json":
        raise UsageError(f"--load-inputs {polygraphy_file}: expected a Polygraphy .json inputs file.")
    chosen = folder or polygraphy_file
    return str(chosen) if chosen else None


def _parse_dim_name(spec: str) -> tuple[str, int, str]:
    match = re.fullmatch(r"\s*(?:(.+):)?\s*(\d+)\s*=\s*([A-Za-z_][A-Za-z0-9_]*)\s*", spec)
    if not match:
        raise UsageError(
            f"--dim-name {spec!r}: expected NAME:AXIS=LABEL, e.g. images:0=batch.",
            hint="LABEL is an identifier (letters, digits, _); AXIS counts from 0.",
        )
    return (match.group(1) or "").strip(), int(match.group(2)), match.group(3)


def _parse_range(spec: str) -> tuple[str, float, float]:
    name, _, rest = spec.rpartition(":") if spec.rstrip().endswith("]") else ("", "", spec)
    match = re.fullmatch(r"\s*\[?\s*(-?[\d.eE+-]+)\s*,\s*(-?[\d.eE+-]+)\s*\]?\s*", rest)
    if not match:
        raise UsageError(f"--val-range {spec!r}: expected NAME:[LOW,HIGH], e.g. input_ids:[0,30522].")
    try:
        low, high = float(match.group(1)), float(match.group(2))
    except ValueError:
        raise UsageError(f"--val-range {spec!r}: LOW and HIGH must be numbers.") from None
    return name.strip(), low, high


def _calib_source(spec: str, existing: Any, flag: str) -> dict[str, Any]:
    from infercc.data.sources import folder_kind

    keep = (
        {k: v for k, v in (existing or {}).items() if k in ("samples", "preprocess", "labels")}
        if isinstance(existing, dict)
        else {}
    )
    if spec == "synthetic":
        return {**keep, "synthetic": True}
    path = Path(spec)
    if path.is_dir():
        return {**keep, folder_kind(path): str(path)}
    if ":" in spec and not path.exists():
        return {**keep, "callable": spec}
    raise UsageError(
        f"{flag} {spec}: not a folder, a module:fn callable or 'synthetic'.",
        hint="Give a folder of .npy/.npz files or images, module:fn, or synthetic.",
    )
