#!/usr/bin/env python3
"""Matrix-vector speed of each ggml block format, ours (`llm bench quant`, linearGGML: the path
generation takes) against ggml's own CPU kernels (bench/ggml_vec_dot.c over the llama.cpp build
that scripts/fetch/llama-cpp.sh makes), one thread, one input row, the same shape, alternating
rounds, best of each. Prints one JSON object: {"rows": [[name, ours GB/s, ggml GB/s, who]], "notes"}
or {"skipped": why}.

    python3 bench/quant_kernels.py [--llm .build/release/llm] [--shape 640x2048] [--rounds 3]
"""
import argparse, json, os, subprocess, sys

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(here)
llama = os.path.join(root, ".cache", "llama.cpp")
p = argparse.ArgumentParser()
p.add_argument("--llm", default=os.path.join(root, ".build", "release", "llm"))
p.add_argument("--shape", default="640x2048", help="ROWSxCOLS (columns a multiple of 256 for the K formats)")
p.add_argument("--types", default="q8_0,q4_0,q4_1,q5_0,q5_1,q2_K,q3_K,q4_K,q5_K,q6_K")
p.add_argument("--rounds", type=int, default=3)
p.add_argument("--seconds", type=float, default=0.7)
args = p.parse_args()


def build_anchor():
    src, exe = os.path.join(here, "ggml_vec_dot.c"), os.path.join(llama, "ggml_vec_dot")
    lib = os.path.join(llama, "build", "bin")
    if not os.path.exists(os.path.join(lib, "libggml-cpu.so")):
        raise FileNotFoundError(f"{lib}/libggml-cpu.so is missing: run scripts/fetch/llama-cpp.sh")
    if not os.path.exists(exe) or os.path.getmtime(exe) < os.path.getmtime(src):
        subprocess.run(["cc", "-O2", src, "-I", os.path.join(llama, "src", "ggml", "include"), "-L", lib,
                        "-lggml-cpu", "-lggml-base", "-lggml", f"-Wl,-rpath,{lib}", "-lm", "-o", exe], check=True)
    return exe


def json_lines(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return [json.loads(l) for l in out.splitlines() if l.startswith("{")]


def main():
    exe = build_anchor()
    rows, cols = args.shape.split("x")
    types = args.types.split(",")
    best_o, best_r = {}, {}
    for _ in range(max(1, args.rounds)):
        for o in json_lines([args.llm, "bench", "quant", "--shape", args.shape, "--types", args.types, "--seconds", str(args.seconds),
                             "--threads", "1", "--json"]):
            best_o[o["type"].lower()] = max(best_o.get(o["type"].lower(), 0), o["ggml_gbs"])
        for r in json_lines([exe, rows, cols, str(args.seconds), *types]):
            best_r[r["type"].lower()] = max(best_r.get(r["type"].lower(), 0), r["gbs"])
    out = []
    for t in types:
        k = t.lower()
        if k in best_o and k in best_r:
            out.append([f"{t.upper()} matrix × vector {rows}×{cols}, 1 thread (GB/s of weights)", best_o[k], best_r[k], "ggml vec_dot (llama.cpp build)"])
    return {"rows": out, "notes": [f"block formats: ours through linearGGML (activations rounded as ggml rounds them), "
                                   f"ggml through from_float + vec_dot per row; best of {max(1, args.rounds)} alternating rounds"]}


try:
    print(json.dumps(main()))
except (OSError, subprocess.CalledProcessError) as e:
    print(json.dumps({"skipped": f"{e}"}))
