"""The package's shape, checked from its source: no import cycle between modules (imports inside functions
count), every registered runtime and every planned stage conforms to its protocol, no function over 80 lines."""

from __future__ import annotations

import ast
import graphlib
import inspect
from pathlib import Path

import pytest

import infercc
from infercc.runtimes.base import (
    Capability,
    Device,
    Runtime,
    RuntimeStatus,
    get_runtime,
    runtime_class,
    runtime_names,
)

PACKAGE = Path(infercc.__file__).parent
MAX_FUNCTION_LINES = 80


# --- the import graph -------------------------------------------------------------------------------------


def module_names(root: Path) -> dict[str, Path]:
    """Dotted name -> file of every module under the package folder `root` (a package is its __init__)."""
    modules = {}
    for path in sorted(root.rglob("*.py")):
        parts = [root.name, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _type_checking_only(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement, at any depth (functions, methods, try blocks), except the bodies of
    `if TYPE_CHECKING:`, which never run."""
    found: list[ast.Import | ast.ImportFrom] = []
    pending: list[ast.AST] = [tree]
    while pending:
        node = pending.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        if isinstance(node, ast.If) and _type_checking_only(node):
            pending.extend(node.orelse)
            continue
        pending.extend(ast.iter_child_nodes(node))
    return found


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's modules that module `name` imports: `import a.b`, `from a import b` (b a submodule, else
    a itself), relative forms resolved."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in _import_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
            continue
        base = node.module or ""
        if node.level:
            anchor = package.split(".")
            anchor = anchor[: len(anchor) - (node.level - 1)]
            base = ".".join([*anchor, *([base] if base else [])])
        for alias in node.names:
            submodule = f"{base}.{alias.name}"
            targets.add(submodule if submodule in modules else base)
    return {t for t in targets if t in modules and t != name}


def import_graph(root: Path) -> dict[str, set[str]]:
    modules = module_names(root)
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Cycles of the graph, one per edge that closes one: each found cycle's closing edge is dropped and the
    search repeats, so every cycle group is reported."""
    graph = {node: set(edges) for node, edges in graph.items()}
    cycles = []
    while True:
        try:
            graphlib.TopologicalSorter(graph).prepare()
        except graphlib.CycleError as exc:
            cycle = exc.args[1][::-1]  # graphlib lists it backwards: [a, b, ..., a] where a imports b
            cycles.append(cycle)
            assert cycle[1] in graph[cycle[0]], cycle
            graph[cycle[0]].remove(cycle[1])
            continue
        return cycles


def test_the_cycle_finder_sees_function_level_and_package_init_cycles(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from pkg import b\n")
    (pkg / "b.py").write_text("import pkg.a\n")
    (pkg / "sub" / "__init__.py").write_text("from pkg.sub import inner\n")
    (pkg / "sub" / "inner.py").write_text("from . import helper\nfrom pkg.sub import thing\n")
    (pkg / "sub" / "helper.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import a\n"
    )
    cycles = import_cycles(import_graph(pkg))
    assert sorted(sorted(set(c)) for c in cycles) == [["pkg.a", "pkg.b"], ["pkg.sub", "pkg.sub.inner"]]
    assert import_graph(pkg)["pkg.sub.inner"] == {"pkg.sub.helper", "pkg.sub"}


def test_no_import_cycle_between_modules() -> None:
    cycles = import_cycles(import_graph(PACKAGE))
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


# --- function length -------------------------------------------------------------------------------------------


def _functions(node: ast.AST, prefix: str) -> list[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    """(qualified name, node) of every function and method below `node`, nested ones included."""
    found = []
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
            found.append((f"{prefix}.{child.name}", child))
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            found += _functions(child, f"{prefix}.{child.name}")
        else:
            found += _functions(child, prefix)
    return found


def long_functions(root: Path, limit: int) -> list[str]:
    """'module.Class.method (file:line): N lines' for every function longer than `limit` lines, from its
    `def` line to its last line."""
    found = []
    for name, path in module_names(root).items():
        for qualified, node in _functions(ast.parse(path.read_text(encoding="utf-8")), name):
            lines = (node.end_lineno or node.lineno) - node.lineno + 1
            if lines > limit:
                found.append(f"{qualified} ({path.relative_to(root.parent)}:{node.lineno}): {lines} lines")
    return sorted(found)


def test_the_length_check_counts_a_function_from_def_to_its_last_line(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    body = "\n".join(f"    x{i} = {i}" for i in range(80))
    (pkg / "__init__.py").write_text(
        f"def long():\n{body}\n\n\nclass A:\n    def short(self):\n        pass\n"
    )
    (pkg / "mod.py").write_text(f"class B:\n    def method(self):\n{body.replace('    ', '        ')}\n")
    assert long_functions(pkg, 80) == [
        "pkg.long (pkg/__init__.py:1): 81 lines",
        "pkg.mod.B.method (pkg/mod.py:2): 81 lines",
    ]


def test_no_function_over_80_lines() -> None:
    found = long_functions(PACKAGE, MAX_FUNCTION_LINES)
    assert not found, "\n".join(found)


# --- protocols -----------------------------------------------------------------------------------------------

# what the constructors of runtimes that run no file (PyTorch, the torch.compile peer) need besides it
NON_FILE_OPTIONS = {"input_names": ["x"], "source": "tests/zoo/cnn.py:small_cnn", "model": {}}


@pytest.mark.parametrize("name", runtime_names())
def test_every_registered_runtime_imports_and_conforms(name: str, tmp_path: Path) -> None:
    cls = runtime_class(name)
    assert cls.name == name
    assert isinstance(cls.device, Device)
    assert all(isinstance(c, Capability) for c in cls.capabilities)
    assert cls.artifact_kinds and all(isinstance(k, str) for k in cls.artifact_kinds)
    status = cls.status()
    assert isinstance(status, RuntimeStatus) and status.name == name
    parameters = inspect.signature(cls).parameters
    assert not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()), (
        "options are explicit"
    )
    required = [p for p, v in parameters.items() if v.default is inspect.Parameter.empty and p != "artifact"]
    runtime = cls(tmp_path / "model", **{p: NON_FILE_OPTIONS[p] for p in required})  # loads nothing yet
    assert isinstance(runtime, Runtime)
    assert runtime.notes == [] and runtime.timing


def test_an_option_a_runtime_does_not_take_is_refused(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="cuda_graf"):
        get_runtime("onnxruntime-cuda", tmp_path / "model.onnx", cuda_graf=True)


def stage_classes() -> list[type]:
    """Every class in infercc.stages whose name ends in Stage (or a skipped stage)."""
    import importlib
    import pkgutil

    import infercc.stages

    found = []
    for info in pkgutil.iter_modules(infercc.stages.__path__):
        module = importlib.import_module(f"infercc.stages.{info.name}")
        found += [
            cls
            for cls in vars(module).values()
            if inspect.isclass(cls)
            and cls.__module__ == module.__name__
            and cls.__name__.endswith(("Stage", "Build", "Inductor"))
        ]
    return found


def test_every_stage_class_and_every_planned_stage_conforms(tmp_path: Path) -> None:
    from infercc.config import CompileConfig
    from infercc.pipeline.plan import Goal, make_context, plan
    from infercc.pipeline.stage import QuietEvents, Stage
    from tests.conftest import zoo

    classes = stage_classes()
    assert len(classes) >= 12
    for cls in classes:
        assert isinstance(cls.version, str) and cls.version, cls
        assert all(callable(getattr(cls, m, None)) for m in ("settings", "tools", "run")), cls
    config = CompileConfig.model_validate(
        {
            "model": {"source": zoo("cnn.py:small_cnn")},
            "inputs": {"x": {"min": "1x3x32x32", "opt": "2x3x32x32", "max": "4x3x32x32"}},
            "precisions": ["fp32", "fp16", "bf16", "int8"],
            "calibration": {"synthetic": True},
            "targets": ["onnxruntime", "tensorrt", "inductor"],
            "out": str(tmp_path / "out"),
        }
    )
    stages = plan(make_context(config, QuietEvents()), Goal.bench, explicit_targets=True)
    assert len(stages) >= 8
    for stage in stages:
        assert isinstance(stage, Stage), stage
        assert type(stage) in classes or type(stage).__module__ == "infercc.pipeline.stage", stage
        assert isinstance(stage.name, str) and isinstance(stage.needs, tuple), stage


def test_every_data_source_key_has_one_registered_format() -> None:
    from infercc.config import DataSource
    from infercc.data.base import FORMATS, DataFormat, register_format

    keys = {"folder", "images", "callable", "synthetic"}
    assert keys <= set(DataSource.model_fields)
    assert set(FORMATS) == keys
    for kind, fmt in FORMATS.items():
        assert isinstance(fmt, DataFormat) and fmt.kind == kind
    with pytest.raises(ValueError, match="'folder' is registered twice"):
        register_format(type("Again", (DataFormat,), {"kind": "folder"}))
