"""The line between infercc and the user's code (model files, factories, forward, data callables).

A config names code that runs, as a Makefile does; that code must not decide infercc's exit code or
read infercc's command line. SystemExit raised inside it becomes a usage error (exit 2) that says who
called it, and while a model file is imported `sys.argv` is just `[model file]`.
A spec that resolves into the Python standard library or into infercc itself is refused before anything
is imported: `subprocess:getoutput` names a shell, not a model.
"""

from __future__ import annotations

import contextlib
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path

from infercc.errors import UsageError

# infercc modules a config may name on purpose (the shipped examples)
ALLOWED_INFERCC_MODULES = frozenset({"infercc.models.examples"})


@contextlib.contextmanager
def user_code(who: str, doing: str, argv0: str | Path | None = None) -> Iterator[None]:
    """Run user code: SystemExit -> UsageError naming `who` and `doing`; optionally sys.argv = [argv0]."""
    saved_argv = sys.argv
    if argv0 is not None:
        sys.argv = [str(argv0)]
    try:
        yield
    except SystemExit as exc:
        raise UsageError(
            f"{who} called sys.exit({exc.code!r}) while {doing}.",
            hint="Model and data code must return or raise, not exit; a script's command-line handling "
            "belongs under `if __name__ == '__main__':`.",
        ) from None
    finally:
        sys.argv = saved_argv


def _stdlib_dirs() -> list[Path]:
    paths = sysconfig.get_paths()
    dirs = {Path(paths[k]).resolve() for k in ("stdlib", "platstdlib") if k in paths}
    return sorted(dirs)


def _infercc_dir() -> Path:
    return Path(__file__).resolve().parents[1]


def refuse_module(module: str, spec: str, what: str = "model source") -> None:
    """A module:function spec must name the user's code, not the standard library or infercc."""
    top = module.split(".")[0]
    if top in sys.stdlib_module_names or top in sys.builtin_module_names:
        raise UsageError(
            f"The {what} {spec} names {module!r}, a module of the Python standard library, not model code.",
            hint="Name a function in your own module or file: path/to/file.py:make_model.",
        )
    if top == "infercc" and module not in ALLOWED_INFERCC_MODULES:
        raise UsageError(
            f"The {what} {spec} names {module!r}, a part of infercc itself, not model code.",
            hint="Name a function in your own module or file: path/to/file.py:make_model.",
        )


def refuse_file(path: Path, spec: str, what: str = "model source") -> None:
    """A file.py:function spec must not resolve into the standard library or infercc's own package."""
    resolved = Path(path).resolve()
    for folder in _stdlib_dirs():
        site = "site-packages" in resolved.parts or "dist-packages" in resolved.parts
        if resolved.is_relative_to(folder) and not site:
            raise UsageError(
                f"The {what} {spec} is {resolved}, a file of the Python standard library, not model code.",
                hint="Name a function in your own file: path/to/file.py:make_model.",
            )
    package = _infercc_dir()
    if resolved.is_relative_to(package) and resolved != package / "models" / "examples.py":
        raise UsageError(
            f"The {what} {spec} is {resolved}, a file of infercc itself, not model code.",
            hint="Name a function in your own file: path/to/file.py:make_model.",
        )
