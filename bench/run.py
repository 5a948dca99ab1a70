#!/usr/bin/env python3
"""`make bench`: our engine side by side with its anchors, in one run, as ratios.

Each pair runs back to back on the same machine with the same thread count (default 2):
  - sgemm through our BLAS wrapper (`llm bench gemm`) vs numpy's matmul, GFLOPS per shape;
  - forward + backward of one GPT-2-sized transformer block (`llm bench block`) vs PyTorch CPU.
Prints a Markdown table: work · ours · reference · ratio (ours / reference; > 1 means we are faster).
Run it on a quiet machine: nothing else should be compiling or computing.
"""
import argparse, json, os, subprocess, sys

p = argparse.ArgumentParser()
p.add_argument("--llm", default=".build/release/llm")
p.add_argument("--threads", type=int, default=2)
p.add_argument("--seconds", type=float, default=1.5, help="time per measurement")
p.add_argument("--rounds", type=int, default=5,
               help="ours and the reference alternate this many times; each keeps its best (the machine is shared and noisy)")
args = p.parse_args()
here = os.path.dirname(os.path.abspath(__file__))
T = str(args.threads)

# numpy's own OpenBLAS: pin its threads; drop core-type overrides meant for older OpenBLAS builds.
ref_env = dict(os.environ, OPENBLAS_NUM_THREADS=T, OMP_NUM_THREADS=T)
for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
    ref_env.pop(k, None)

def lines(cmd, env=None):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    return [json.loads(l) for l in out.splitlines() if l.startswith("{")]

def best_of_rounds(ours_cmd, ref_cmd, key):
    """Alternates ours and the reference `--rounds` times and keeps each one's best value per row."""
    best_o, best_r = None, None
    for _ in range(args.rounds):
        o, r = lines(ours_cmd), lines(ref_cmd, env=ref_env)
        best_o = o if best_o is None else [max(a, b, key=lambda x: x[key]) for a, b in zip(best_o, o)]
        best_r = r if best_r is None else [max(a, b, key=lambda x: x[key]) for a, b in zip(best_r, r)]
    return best_o, best_r

rows = []
shapes = "768x768x768,1024x3072x768,1024x768x3072,2048x2048x2048"
ours, ref = best_of_rounds(
    [args.llm, "bench", "gemm", "--json", "--threads", T, "--shapes", shapes, "--seconds", str(args.seconds)],
    [sys.executable, os.path.join(here, "numpy_gemm.py"), shapes, str(args.seconds)], "gflops")
numpy_version = ref[0]["numpy"]
for o, r in zip(ours, ref):
    rows.append((f"sgemm {o['shape']} (GFLOPS)", o["gflops"], r["gflops"], f"numpy {numpy_version}"))

B, Tc, C, H = 4, 256, 768, 12
ob, rb = best_of_rounds(
    [args.llm, "bench", "block", "--json", "--threads", T, "--batch", str(B), "--context", str(Tc),
     "--embedding", str(C), "--heads", str(H), "--seconds", str(2 * args.seconds)],
    [sys.executable, os.path.join(here, "torch_block.py"), str(B), str(Tc), str(C), str(H), T, str(2 * args.seconds)],
    "tokens_per_s")
ob, rb = ob[0], rb[0]
rows.append((f"block fwd+bwd B{B} T{Tc} C{C} nh{H} (tok/s)", ob["tokens_per_s"], rb["tokens_per_s"], f"torch {rb['torch']}"))

print(f"\nthreads: {args.threads}, best of {args.rounds} alternating rounds\n")
print("| work | ours | reference | ratio | reference is |")
print("|---|---:|---:|---:|---|")
for name, o, r, who in rows:
    print(f"| {name} | {o:.1f} | {r:.1f} | {o / r:.2f}x | {who} |")
