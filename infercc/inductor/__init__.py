"""The AOTInductor backend: torch.export with the declared dynamic ranges, `aoti_compile_and_package` into a
`.pt2` package, and runtimes that load packages in a child process (a crash there is a failed pair, not a
dead run). torch.compile is timed beside it as a peer (peer.py).

    api.py      what torch and the machine must provide (exit 3 with the fix when they do not)
    export.py   torch.export with Dim ranges; specialised dimensions; readable export failures
    package.py  compile a package, its sidecar (device, torch version, valid shapes), compatibility on load
    child.py    the child process that loads a package or compiles the peer, and talks over a pipe
    runtime.py  runtimes inductor-cpu / inductor-cuda
    peer.py     runtimes torch-compile-cpu / torch-compile-cuda
"""
