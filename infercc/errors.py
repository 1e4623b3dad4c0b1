"""User-facing error types and the exit codes they map to.

A user error prints one or two lines (what, where, what to do) and exits with its code.
Anything else is a bug: it keeps its traceback, shown with -v.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    VERIFY_FAILED = 1
    USAGE = 2
    MISSING_RUNTIME = 3
    STAGE_FAILED = 4
    INTERRUPTED = 130


class InferccError(Exception):
    """Base of every error a user can cause. `hint` says what to do about it."""

    exit_code: ExitCode = ExitCode.STAGE_FAILED

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


class UsageError(InferccError):
    """Bad flags, config, shapes, model spec or input data (exit 2)."""

    exit_code = ExitCode.USAGE


class MissingRuntimeError(InferccError):
    """A runtime, provider or package the user asked for is not installed (exit 3)."""

    exit_code = ExitCode.MISSING_RUNTIME


class StageError(InferccError):
    """A pipeline stage could not produce its artifact (exit 4)."""

    exit_code = ExitCode.STAGE_FAILED


class VerificationFailed(InferccError):
    """An artifact's outputs are outside tolerance (exit 1)."""

    exit_code = ExitCode.VERIFY_FAILED


class LockedError(InferccError):
    """Another infercc process holds the output folder (exit 2: nothing failed; wait, or use another --out)."""

    exit_code = ExitCode.USAGE
