#!/usr/bin/env python3
"""`llm quantize` against llama.cpp's `llama-quantize` (scripts/fetch/llama-cpp.sh builds it) on a real model:

  1. SmolLM2-135M-Instruct (Q4_1 GGUF) dequantized to an F32 GGUF by `llm quantize --type f32`; both
     quantizers then start from that same file.
  2. For every type: `llm quantize --type T` and `llama-quantize --pure ... T` (the mixes q4_k_m and
     q5_k_m without --pure, so llama.cpp applies its per-tensor rules); every tensor's type and bytes
     must be identical (read with gguf-py). A difference exits with status 1.
  3. Speed: q4_k_m, ours vs llama-quantize, same thread count, best of --rounds alternating runs.
  4. llama.cpp runs our files: `llama-perplexity` on our q8_0, q4_0 and q4_k_m SmolLM2 files and on a
     q8_0 file of a GPT we trained (gpt2 architecture) agrees with `llm perplexity` on the same file
     (within 1 %).
  5. The mean KL divergence of our q4_0 SmolLM2 file from the F32 one: `llm perplexity --kl-base`
     against `llama-perplexity --kl-divergence` (which keeps the base's log-probabilities rounded to
     16 bits, so the two differ a little; within 3 %).

Prints one JSON object: {"rows": [[work, ours, reference, who], ...], "notes": [...]} for bench/run.py,
or {"skipped": why}. Run alone for a readable report:
    python3 bench/llama_quantize.py --llm .build/release/llm
"""
import argparse, json, os, re, subprocess, sys, time

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(here)
cache = os.path.join(root, ".cache")
p = argparse.ArgumentParser()
p.add_argument("--llm", default=os.path.join(root, ".build", "release", "llm"))
p.add_argument("--model", default=os.path.join(cache, "SmolLM2-135M-Instruct.Q4_1.gguf"))
p.add_argument("--threads", type=int, default=2)
p.add_argument("--rounds", type=int, default=3)
p.add_argument("--types", default="f32,f16,bf16,q8_0,q4_0,q4_1,q5_0,q5_1,q2_k,q3_k,q4_k,q5_k,q6_k,q4_k_m,q5_k_m")
p.add_argument("--text", default=os.path.join(cache, "corpus-heldout.txt"), help="text for the perplexity agreement")
p.add_argument("--chunks", type=int, default=8)
p.add_argument("--gpt-run", default=os.path.join(cache, "quantize", "gpt-run"),
               help="a GPT training run (trained here for 300 steps when missing)")
p.add_argument("--json", action="store_true")
args = p.parse_args()

BIN = os.path.join(cache, "llama.cpp", "build", "bin")
WORK = os.path.join(cache, "quantize")
T = str(args.threads)


def run(cmd, **kw):
    out = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if out.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({out.returncode}):\n{(out.stdout + out.stderr)[-3000:]}")
    return out


def timed(cmd):
    start = time.perf_counter()
    run(cmd)
    return time.perf_counter() - start


def tensors(path):
    from gguf import GGUFReader
    r = GGUFReader(path)
    return {t.name: (t.tensor_type.name, bytes(t.data.tobytes())) for t in r.tensors}


def llama_perplexity(model, ctx):
    out = run([os.path.join(BIN, "llama-perplexity"), "-m", model, "-f", args.text, "-c", str(ctx), "-t", T,
               "--chunks", str(args.chunks)])
    log = out.stdout + out.stderr
    m = re.search(r"Final estimate: PPL = ([0-9.]+)", log)
    if not m:
        sys.exit(f"could not read llama-perplexity's output:\n{log[-2000:]}")
    return float(m.group(1))


def our_perplexity(model, ctx):
    out = run([args.llm, "perplexity", "--model", model, "--file", args.text, "--context", str(ctx), "--chunks", str(args.chunks),
               "--threads", T, "--json"])
    return json.loads(out.stdout.strip().splitlines()[-1])["perplexity"]


def main():
    if not os.path.exists(os.path.join(BIN, "llama-quantize")):
        return {"skipped": f"{BIN}/llama-quantize is missing: run scripts/fetch/llama-cpp.sh"}
    os.makedirs(WORK, exist_ok=True)
    f32 = os.path.join(WORK, "smollm2-f32.gguf")
    run([args.llm, "quantize", "--model", args.model, "--type", "f32", "--output", f32, "--threads", T])
    rows, notes, mismatches = [], [], []
    identical = []
    for t in args.types.split(","):
        ours, theirs = os.path.join(WORK, f"ours-{t}.gguf"), os.path.join(WORK, f"llama-{t}.gguf")
        run([args.llm, "quantize", "--model", f32, "--type", t, "--output", ours, "--threads", T])
        pure = [] if t.endswith("_m") else ["--pure"]
        run([os.path.join(BIN, "llama-quantize"), *pure, f32, theirs, t.upper(), T])
        a, b = tensors(ours), tensors(theirs)
        bad = [n for n in b if n not in a or a[n] != b[n]]
        if set(a) != set(b) or bad:
            mismatches.append(f"{t}: {len(bad)} of {len(b)} tensors differ (first: {bad[:3]}), names equal: {set(a) == set(b)}")
        else:
            identical.append(f"{t} ({len(b)} tensors)")
        os.remove(theirs)
    notes.append("llm quantize vs llama-quantize on SmolLM2-135M (from one F32 GGUF): identical types and bytes for "
                 + ", ".join(identical) if identical else "no type matched llama-quantize")
    if mismatches:
        print(json.dumps({"rows": rows, "notes": notes + mismatches}))
        sys.exit("llm quantize differs from llama-quantize: " + "; ".join(mismatches))

    # Speed of a q4_k_m run, alternating.
    best_o, best_r = float("inf"), float("inf")
    out_o, out_r = os.path.join(WORK, "speed-ours.gguf"), os.path.join(WORK, "speed-llama.gguf")
    for _ in range(max(1, args.rounds)):
        best_o = min(best_o, timed([args.llm, "quantize", "--model", f32, "--type", "q4_k_m", "--output", out_o, "--threads", T]))
        best_r = min(best_r, timed([os.path.join(BIN, "llama-quantize"), f32, out_r, "Q4_K_M", T]))
    for f in (out_o, out_r):
        os.remove(f)
    # As a rate, so that > 1 means faster, like every other row.
    rows.append(["quantize SmolLM2-135M F32 → Q4_K_M (runs/min, with reading and writing)", 60 / best_o, 60 / best_r, "llama-quantize (llama.cpp build)"])

    # llama.cpp runs our files: perplexity agreement.
    agreement = []
    for t in ("q8_0", "q4_0", "q4_k_m"):
        path = os.path.join(WORK, f"ours-{t}.gguf")
        theirs, ours = llama_perplexity(path, 512), our_perplexity(path, 512)
        agreement.append((f"SmolLM2 {t}", ours, theirs))
    if not os.path.exists(os.path.join(args.gpt_run, "checkpoint", "config.json")):
        run([args.llm, "train", "--data", os.path.join(cache, "corpus.txt"), "--tokenizer", "train", "--vocab-size", "4096",
             "--config", "small", "--context", "128", "--batch", "16", "--lr", "3e-3", "--steps", "300", "--eval-every", "300",
             "--sample-every", "1000", "--seed", "1", "--out", args.gpt_run])
    gpt = os.path.join(WORK, "gpt-q8_0.gguf")
    run([args.llm, "quantize", "--model", args.gpt_run, "--type", "q8_0", "--output", gpt, "--threads", T])
    agreement.append(("our GPT (gpt2 architecture) q8_0", our_perplexity(gpt, 128), llama_perplexity(gpt, 128)))
    worst = 0.0
    for name, ours, theirs in agreement:
        diff = abs(ours / theirs - 1)
        worst = max(worst, diff)
        notes.append(f"perplexity of our {name} file: llm perplexity {ours:.4f}, llama-perplexity {theirs:.4f} ({100 * diff:.2f} %)")
    if worst > 0.01:
        print(json.dumps({"rows": rows, "notes": notes}))
        sys.exit(f"perplexity on our files differs from llama-perplexity's by {100 * worst:.2f} % (> 1 %)")

    # KL divergence from the F32 model, ours vs llama-perplexity's, on our q4_0 file.
    q4 = os.path.join(WORK, "ours-q4_0.gguf")
    base_logits = os.path.join(WORK, "kl-base-f32.bin")
    common = ["-f", args.text, "-c", "512", "-t", T, "--chunks", str(args.chunks), "--kl-divergence-base", base_logits]
    run([os.path.join(BIN, "llama-perplexity"), "-m", f32] + common)
    out = run([os.path.join(BIN, "llama-perplexity"), "-m", q4, "--kl-divergence"] + common)
    os.remove(base_logits)
    m = re.search(r"Mean +KLD: +([0-9.]+)", out.stdout + out.stderr)
    if not m:
        sys.exit(f"could not read llama-perplexity's KL divergence:\n{(out.stdout + out.stderr)[-2000:]}")
    theirs = float(m.group(1))
    ours = json.loads(run([args.llm, "perplexity", "--model", q4, "--kl-base", f32, "--file", args.text, "--context", "512",
                           "--chunks", str(args.chunks), "--threads", T, "--json"]).stdout.strip().splitlines()[-1])["kl_divergence"]
    diff = abs(ours / theirs - 1)
    notes.append(f"mean KL divergence of our SmolLM2 q4_0 file from F32: llm perplexity --kl-base {ours:.6f}, "
                 f"llama-perplexity --kl-divergence {theirs:.6f} ({100 * diff:.2f} %)")
    if diff > 0.03:
        print(json.dumps({"rows": rows, "notes": notes}))
        sys.exit(f"our KL divergence differs from llama-perplexity's by {100 * diff:.2f} % (> 3 %)")
    return {"rows": rows, "notes": notes}


result = main()
if args.json:
    print(json.dumps(result))
else:
    for r in result.get("rows", []):
        print(f"{r[0]}: ours {r[1]:.2f}, {r[3]} {r[2]:.2f}, ratio {r[1] / r[2]:.2f}x")
    for n in result.get("notes", [result.get("skipped", "")]):
        print(n)
