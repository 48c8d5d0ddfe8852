"""Every garbage collection of every Python process started with this on the path, timed.

    GC_TRACE_DIR=/tmp/gc PYTHONPATH=bench/gc_trace .venv/bin/python bench/ab_throughput.py \\
        --events 100000 --customers 10000 --rounds 1 t10k t100k 'REMARKET_GC_THRESHOLDS=[100000,20,10]'

Each process appends `<generation> <its CPU seconds so far> <ms> <objects collected>` to
`<dir>/gc-<pid>.log`, after a first line naming its command. A worker's collections after it is
ready are those after its third full one (startup's two, then the freeze at ready,
shell.heap): e.g. `awk '!/^#/ {if ($1 == 2) full++; else if (full >= 3) {n++; ms += $3}}
END {print n, ms}' <file>`. Unlike bench/trace it wraps nothing, so the worker's own speed is
not changed. A measuring aid, never used in production.
"""
import gc
import os
import sys
import time

if os.environ.get("GC_TRACE_DIR"):
    _log = open(os.path.join(os.environ["GC_TRACE_DIR"], f"gc-{os.getpid()}.log"), "a", buffering=1 << 16)
    _started = [0.0, False]

    def _timed(phase, info):
        if not _started[1]:
            _started[1] = True
            _log.write(f"# {' '.join(sys.argv)}\n")
        if phase == "start":
            _started[0] = time.perf_counter()
        else:
            _log.write(f"{info['generation']} {time.process_time():.3f} "
                       f"{(time.perf_counter() - _started[0]) * 1000:.3f} {info['collected']}\n")

    gc.callbacks.append(_timed)
    import atexit
    atexit.register(_log.flush)
