#!/usr/bin/env python3
"""What quantization costs in quality: perplexity on held-out text and the mean KL divergence from
the unquantized model's next-token distributions (as `llama-perplexity --kl-divergence` reports),
for every type × method of `llm quantize`, on two models:

  gpt      a GPT pretrained by `llm train` on the first 5 MB of the corpus (4 layers, 256 wide,
           context 128, 2000 steps of 16 × 128 tokens, about 20 minutes on 2 cores; trained here
           when missing, the command below);
  smollm2  SmolLM2-135M-Instruct (Q4_1 GGUF) dequantized to Float32 by `llm quantize --type f32`.

Each model's Float32 GGUF is the base. For each type: `llm quantize --method rtn|gptq|awq`
(gptq and awq calibrated on the start of the training text, --calibration-tokens tokens, 16,384
by default to keep the whole table near 90 minutes), then `llm perplexity --kl-base BASE --json`
on the held-out text (the last ~1 MB of the corpus, which the GPT never saw), in exact Float32
arithmetic on the dequantized weights (--arithmetic float32), so that the numbers are the cost of
the weights alone, not of the runtime's 8-bit activations. Results are kept in
.cache/quality/results-TOKENS.json, so a rerun only measures what is missing (--fresh to start
over). Prints Markdown tables and whether the goals hold: GPTQ and AWQ
below round-to-nearest's perplexity at q4_0, q4_k and q3_k, q8_0 within 0.5 % of Float32.

    python3 bench/quant_quality.py --llm .build/release/llm            (make quality)
    python3 bench/quant_quality.py --calibration-tokens 65536 --types q4_0,q4_k,q3_k   (the goal rows
        at llm quantize's default calibration size: about 4 minutes per GPTQ or AWQ run on SmolLM2)
"""
import argparse, json, os, re, subprocess, sys, time

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(here)
cache = os.path.join(root, ".cache")
WORK = os.path.join(cache, "quality")
p = argparse.ArgumentParser()
p.add_argument("--llm", default=os.path.join(root, ".build", "release", "llm"))
p.add_argument("--models", default="gpt,smollm2")
p.add_argument("--types", default="f16,bf16,q8_0,q6_k,q5_k_m,q5_k,q5_1,q5_0,q4_k_m,q4_k,q4_1,q4_0,q3_k,q2_k")
p.add_argument("--methods", default="rtn,gptq,awq")
p.add_argument("--calibration-tokens", type=int, default=16384)
p.add_argument("--threads", type=int, default=2)
p.add_argument("--arithmetic", default="float32",
               help="how the quantized files run: float32 (exact, on the dequantized weights: the weights' own cost) or "
                    "llama.cpp (8-bit activations as llama.cpp rounds them, which costs a little more on top)")
p.add_argument("--fresh", action="store_true", help="forget the kept results")
args = p.parse_args()
T = str(args.threads)
HELDOUT, TRAIN = os.path.join(cache, "corpus-heldout.txt"), os.path.join(cache, "corpus-5mb.txt")
RESULTS = os.path.join(WORK, f"results-{args.calibration_tokens}.json")
GPT_TRAIN = ["train", "--data", TRAIN, "--tokenizer", "train", "--vocab-size", "4096", "--config", "small",
             "--embedding", "256", "--heads", "8", "--context", "128", "--batch", "16", "--lr", "3e-3", "--min-lr", "3e-4",
             "--warmup", "50", "--steps", "2000", "--eval-every", "500", "--seed", "1"]
# Scored chunks: 8 × 512 tokens for SmolLM2 (2,040 scored), 32 × 128 for the GPT (2,016 scored).
MODELS = {
    "gpt": {"title": "GPT pretrained by llm train (4 layers, 256 wide, 4096-token BPE, 2000 steps)", "chunks": 32},
    "smollm2": {"title": "SmolLM2-135M-Instruct, dequantized to Float32", "chunks": 8},
}
FLOAT_TYPES = {"f32", "f16", "bf16"}


def run(cmd):
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({out.returncode}):\n{(out.stdout + out.stderr)[-3000:]}")
    return out


def base_model(name):
    """The model's Float32 GGUF, made when missing."""
    os.makedirs(WORK, exist_ok=True)
    path = os.path.join(WORK, f"{name}-f32.gguf")
    if os.path.exists(path):
        return path
    if name == "gpt":
        source = os.path.join(WORK, "gpt-run")
        if not os.path.exists(os.path.join(source, "checkpoint", "config.json")):
            print("training the GPT (about 20 minutes on 2 cores) ...", file=sys.stderr)
            run([args.llm] + GPT_TRAIN + ["--out", source, "--threads", T])
    else:
        source = os.path.join(cache, "SmolLM2-135M-Instruct.Q4_1.gguf")
        if not os.path.exists(source):
            run(["bash", os.path.join(root, "scripts", "fetch", "smollm2.sh")])
    run([args.llm, "quantize", "--model", source, "--type", "f32", "--output", path, "--threads", T])
    return path


def measure(name, base, qtype, method):
    out = os.path.join(WORK, f"{name}-{qtype}-{method}.gguf")
    cmd = [args.llm, "quantize", "--model", base, "--type", qtype, "--output", out, "--method", method, "--threads", T]
    if method != "rtn":
        cmd += ["--calibration", TRAIN, "--calibration-tokens", str(args.calibration_tokens)]
    start = time.perf_counter()
    q = run(cmd)
    seconds = time.perf_counter() - start
    bpw = float(re.search(r"\(([0-9.]+) bits per weight", q.stdout).group(1))
    r = json.loads(run([args.llm, "perplexity", "--model", out, "--kl-base", base, "--file", HELDOUT,
                        "--chunks", str(MODELS[name]["chunks"]), "--arithmetic", args.arithmetic, "--threads", T, "--json"]).stdout.strip().splitlines()[-1])
    os.remove(out)
    return {"perplexity": r["perplexity"], "kl": r["kl_divergence"], "same_top": r["same_top"],
            "base_perplexity": r["base_perplexity"], "bpw": bpw, "seconds": seconds, "scored": r["scored"]}


def main():
    results = {}
    if os.path.exists(RESULTS) and not args.fresh:
        results = json.load(open(RESULTS))
    if results.get("arithmetic") != args.arithmetic:
        results = {"arithmetic": args.arithmetic}
    types, methods = args.types.split(","), args.methods.split(",")
    for name in args.models.split(","):
        base = base_model(name)
        mine = results.setdefault(name, {})
        for t in types:
            for m in methods:
                if t in FLOAT_TYPES and m != "rtn":
                    continue
                key = f"{t}/{m}"
                if key in mine and (m == "rtn" or mine[key].get("calibration_tokens") == args.calibration_tokens):
                    continue
                r = measure(name, base, t, m)
                if m != "rtn":
                    r["calibration_tokens"] = args.calibration_tokens
                mine[key] = r
                print(f"{name} {key}: perplexity {r['perplexity']:.4f}, KL {r['kl']:.5f}, {r['bpw']:.2f} bpw, {r['seconds']:.0f} s",
                      file=sys.stderr)
                tmp = RESULTS + ".tmp"
                json.dump(results, open(tmp, "w"), indent=1)
                os.replace(tmp, RESULTS)
    report(results, types, methods)


def report(results, types, methods):
    failures = []
    print(f"Perplexity and KL divergence in {args.arithmetic} arithmetic.")
    for name in args.models.split(","):
        mine = results.get(name, {})
        any_r = next(iter(mine.values()), None)
        if any_r is None:
            continue
        f32 = any_r["base_perplexity"]
        print(f"\n**{MODELS[name]['title']}**: Float32 perplexity {f32:.3f}; {any_r['scored']} held-out tokens scored; "
              f"GPTQ and AWQ calibrated on {args.calibration_tokens:,} tokens of the training text.\n")
        head = "| type | bits/weight | " + " | ".join(f"{m.upper()} perplexity | {m.upper()} KL" for m in methods) + " |"
        print(head)
        print("|---|---:|" + "---:|---:|" * len(methods))
        for t in types:
            cells = []
            bpw = None
            for m in methods:
                r = mine.get(f"{t}/{m}")
                if r is None:
                    cells += ["", ""]
                    continue
                bpw = r["bpw"]
                cells += [f"{r['perplexity']:.3f}", f"{r['kl']:.4f}"]
            print(f"| {t} | {bpw:.2f} | " + " | ".join(cells) + " |" if bpw else f"| {t} | | " + " | ".join(cells) + " |")
        # Goals.
        for t in ("q4_0", "q4_k", "q3_k"):
            rtn = mine.get(f"{t}/rtn")
            for m in ("gptq", "awq"):
                r = mine.get(f"{t}/{m}")
                if rtn and r and not r["perplexity"] < rtn["perplexity"]:
                    failures.append(f"{name} {t}: {m} perplexity {r['perplexity']:.3f} is not below RTN's {rtn['perplexity']:.3f}")
        q8 = mine.get("q8_0/rtn")
        if q8 and abs(q8["perplexity"] / f32 - 1) > 0.005:
            failures.append(f"{name} q8_0: perplexity {q8['perplexity']:.4f} is more than 0.5 % from Float32's {f32:.4f}")
    print()
    for f in failures:
        print(f"goal missed: {f}")
    if not failures:
        print("goals hold: GPTQ and AWQ below RTN at q4_0, q4_k and q3_k on every model measured; q8_0 within 0.5 % of Float32")


if __name__ == "__main__":
    main()
