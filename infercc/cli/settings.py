"""Turn a config file plus command-line flags into one validated CompileConfig (flags win)."""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from infercc.config import CompileConfig, load_yaml_document, parse_config
from infercc.errors import UsageError
from infercc.pipeline.manifest import MANIFEST_NAME, load_manifest
from infercc.pipeline.plan import UNNAMED
from infercc.shapes import parse_named_shapes, split_specs


@dataclass
class Flags:
    model: str | None = None
    model_args: list[str] = field(default_factory=list)
    weights: Path | None = None
    allow_pickle: bool = False
    shape: list[str] = field(default_factory=list)
    min_shape: list[str] = field(default_factory=list)
    opt_shape: list[str] = field(default_factory=list)
    max_shape: list[str] = field(default_factory=list)
    dtypes: list[str] = field(default_factory=list)  # NAME:int64
    val_ranges: list[str] = field(default_factory=list)  # NAME:[LOW,HIGH]
    dim_names: list[str] = field(default_factory=list)  # NAME:AXIS=LABEL
    out: Path | None = None
    exporter: str | None = None
    opset: int | None = None
    simplifier: str | None = None
    precision: str | None = None
    calib: str | None = None
    target: str | None = None
    lock_wait: float | None = None
    eval: str | None = None
    sets: list[str] = field(default_factory=list)  # dotted.key=VALUE overrides (--set)
    extra: dict[str, Any] = field(default_factory=dict)  # dotted.key -> value, set by stage-specific commands


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
        _resolve_relative_paths(data, config_path.parent)
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
    _apply_flags(data, flags)
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


def _resolve_relative_paths(data: dict[str, Any], base: Path) -> None:
    """Paths in a config file are relative to the file, except `out` and the model spec (relative to cwd)."""
    for section, key in (
        ("calibration", "folder"),
        ("calibration", "images"),
        ("evaluation", "folder"),
        ("evaluation", "images"),
    ):
        value = (data.get(section) or {}).get(key) if isinstance(data.get(section), dict) else None
        if isinstance(value, str) and not Path(value).is_absolute() and (base / value).exists():
            data[section][key] = str(base / value)


def _set(data: dict[str, Any], dotted: str, value: Any) -> None:
    node = data
    parts = dotted.split(".")
    for part in parts[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[parts[-1]] = value


def _apply_flags(data: dict[str, Any], flags: Flags) -> None:
    if flags.model is not None:
        model = data.get("model") if isinstance(data.get("model"), dict) else {}
        if model.get("source") != flags.model:
            model = {
                "source": flags.model
            }  # a different model: its factory kwargs/output names no longer apply
            data["inputs"] = {} if not flags.shape and not flags.opt_shape else data.get("inputs", {})
        data["model"] = model
    for item in flags.model_args:
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
    if flags.weights is not None:
        _set(data, "model.weights", str(flags.weights))
    if flags.allow_pickle:
        _set(data, "model.allow_pickle", True)
    for flag, key, values in (
        ("--shape", "shape", flags.shape),
        ("--min-shape", "min", flags.min_shape),
        ("--opt-shape", "opt", flags.opt_shape),
        ("--max-shape", "max", flags.max_shape),
    ):
        for name, dims in parse_named_shapes(values, flag).items():
            inputs = data.setdefault("inputs", {})
            entry = inputs.setdefault(name if name is not None else UNNAMED, {})
            if key == "shape":  # a static --shape replaces any range from the config
                for k in ("min", "opt", "max"):
                    entry.pop(k, None)
            entry[key] = list(dims)
    for spec in split_specs(flags.dtypes):
        name, _, dtype = spec.rpartition(":")
        data.setdefault("inputs", {}).setdefault(name or UNNAMED, {})["dtype"] = dtype.strip().lower()
    for spec in split_specs(flags.dim_names):
        name, axis, label = _parse_dim_name(spec)
        entry = data.setdefault("inputs", {}).setdefault(name or UNNAMED, {})
        entry.setdefault("dim_names", {})[axis] = label
    for spec in split_specs(flags.val_ranges):
        name, low, high = _parse_range(spec)
        entry = data.setdefault("inputs", {}).setdefault(name or UNNAMED, {})
        entry["low"], entry["high"] = low, high
    simple = {
        "out": str(flags.out) if flags.out else None,
        "export.exporter": flags.exporter,
        "export.opset": flags.opset,
        "simplify.tool": flags.simplifier,
    }
    for dotted, value in simple.items():
        if value is not None:
            _set(data, dotted, value)
    if flags.precision:
        data["precisions"] = [p.strip().lower() for p in flags.precision.split(",") if p.strip()]
    if flags.target:
        data["targets"] = [t.strip().lower() for t in flags.target.split(",") if t.strip()]
    if flags.calib:
        data["calibration"] = _calib_source(flags.calib, data.get("calibration"))
    if flags.eval:
        data["evaluation"] = _calib_source(flags.eval, data.get("evaluation"))
    if flags.lock_wait is not None:
        data["lock"] = "wait" if flags.lock_wait > 0 else "fail"
        data["lock_wait_s"] = flags.lock_wait
    for dotted, value in flags.extra.items():
        if value is not None:
            _set(data, dotted, value)
    for item in flags.sets:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(
                f"--set {item!r}: expected dotted.key=VALUE.", hint="For example --set verify.samples=8."
            )
        try:
            value = yaml.safe_load(raw) if raw else None
        except yaml.YAMLError as exc:
            raise UsageError(
                f"--set {item!r}: the value is not valid YAML ({exc.__class__.__name__})."
            ) from None
        _set(data, key.strip(), value)


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


def _calib_source(spec: str, existing: Any) -> dict[str, Any]:
    keep = (
        {k: v for k, v in (existing or {}).items() if k in ("samples", "preprocess", "labels")}
        if isinstance(existing, dict)
        else {}
    )
    if spec == "synthetic":
        return {**keep, "synthetic": True}
    path = Path(spec)
    if path.is_dir():
        has_images = any(
            p.suffix.lower() in {".png", ".jpg", ".jpeg", ".bmp", ".webp"} for p in path.iterdir()
        )
        return {**keep, ("images" if has_images else "folder"): str(path)}
    if ":" in spec and not path.exists():
        return {**keep, "callable": spec}
    raise UsageError(
        f"--calib {spec}: not a folder, a module:fn callable or 'synthetic'.",
        hint="Give a folder of .npy/.npz files or images, module:fn, or synthetic.",
    )
