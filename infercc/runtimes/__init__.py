"""Runtime adapters: one module per runtime, the same small interface (see base.Runtime)."""

from infercc.runtimes.base import REGISTRY, Runtime, RuntimeStatus, get_runtime, runtime_statuses

__all__ = ["REGISTRY", "Runtime", "RuntimeStatus", "get_runtime", "runtime_statuses"]
