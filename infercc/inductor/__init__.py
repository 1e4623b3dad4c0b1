"""The AOTInductor backend: torch.export with the declared dynamic ranges, `aoti_compile_and_package` into a
`.pt2` package, and runtimes that load packages in a child process (a crash there is a failed pair, not a
dead run). torch.compile is timed beside it as a peer (peer.py).

    api.py      what torch and the machine must provide (exit 3 with the fix when they do not)
    export.py   torch.export with Dim ranges; specialised dimensions; readable export failures
    package.py  compile a package, its sidecar (device, torch version, valid shapes), compatibility on load
    sessions.py the package session (loaded in a child by infercc.runtimes.isolation) and the peer session
    child.py    the peer's child process, with a timeout on every call (compiling is bounded)
    runtime.py  runtimes inductor-cpu / inductor-cuda
    peer.py     runtimes torch-compile-cpu / torch-compile-cuda
"""
