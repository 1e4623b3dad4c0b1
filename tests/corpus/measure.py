"""Run a command and write its peak RSS (KiB) to the file named by the first argument; exit with its code.

A child forked from the pytest worker would report the worker's own RSS (ru_maxrss survives fork and
exec), so tests start the command through this small launcher, whose own children start from its small
footprint and so measure only the command itself.
"""

import resource
import subprocess
import sys

if __name__ == "__main__":
    code = subprocess.call(sys.argv[2:])
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    with open(sys.argv[1], "w") as fh:
        fh.write(str(peak))
    sys.exit(code if code >= 0 else 128 - code)
