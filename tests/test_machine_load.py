"""What a timed block really got: work done in a grandchild is the subject's own, not another process's."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from infercc.machine_load import CpuSample

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="needs Linux /proc")

# The torch.compile peer's shape: the isolation child only relays, its session child computes. Here the relay
# starts a grandchild that spins for 0.6 s of CPU, says "done" once it has reaped it, and waits to be released.
SPIN = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.6: pass\n"
RELAY = (
    "import subprocess, sys\n"
    "sys.stdin.readline()\n"
    f"subprocess.run([sys.executable, '-c', {SPIN!r}], check=True)\n"
    "print('done', flush=True)\n"
    "sys.stdin.readline()\n"
)


def test_a_grandchilds_work_counts_as_the_timed_process_own():
    relay = subprocess.Popen(
        [sys.executable, "-c", RELAY], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        sample = CpuSample.start(relay.pid)
        relay.stdin.write("go\n")
        relay.stdin.flush()
        assert relay.stdout.readline().strip() == "done"
        figures = sample.stop()  # the grandchild has exited and been reaped: its time must still count
        relay.stdin.write("quit\n")
        relay.stdin.flush()
    finally:
        relay.stdin.close()
        relay.wait(timeout=120)
    # before the fix only the relay's own CPU time counted (a few ms: it only waits) and the spinning grandchild
    # went into "other processes"; the foreign share itself is not asserted, since on a busy machine other
    # processes really do use the cores
    assert figures["cpu_s"] >= 0.55, figures
