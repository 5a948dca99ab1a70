"""numpy's matmul (its bundled OpenBLAS) at the shapes `llm bench gemm` uses: best GFLOPS per shape.
Threads come from OPENBLAS_NUM_THREADS, set by bench/run.py before numpy loads."""
import json, sys, time
import numpy as np

def best_time(fn, seconds):
    fn()
    best, end = float("inf"), time.perf_counter() + seconds
    while time.perf_counter() < end:
        t0 = time.perf_counter(); fn(); best = min(best, time.perf_counter() - t0)
    return best

shapes, seconds = sys.argv[1], float(sys.argv[2])
rng = np.random.default_rng(0)
for spec in shapes.split(","):
    m, k, n = map(int, spec.split("x"))
    a = rng.standard_normal((m, k), dtype=np.float32); b = rng.standard_normal((k, n), dtype=np.float32)
    t = best_time(lambda: a @ b, seconds)
    print(json.dumps({"shape": spec, "gflops": 2 * m * k * n / t / 1e9, "numpy": np.__version__}))
