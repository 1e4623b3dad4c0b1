"""Entry point of a job's child process: `python -m infercc.matrix.child PARENT_PID compile CONFIG ...`.

It asks the kernel to kill it when its parent dies (Linux PR_SET_PDEATHSIG), so a worker killed mid-job
(a lost Ray worker, an OOM kill) takes its job with it and the retried job finds the --out lock free.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int) -> None:
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            return
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(128 + signal.SIGKILL)


def main() -> None:
    parent, argv = int(sys.argv[1]), sys.argv[2:]
    _die_with_parent(parent)
    from infercc.cli import main as cli_main

    cli_main(argv)


if __name__ == "__main__":
    main()
