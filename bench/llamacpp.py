#!/usr/bin/env python3
"""SmolLM2-135M-Instruct (Q4_1 GGUF) on our engine vs llama.cpp, same file, same thread count.

Alternates ours and llama.cpp `--rounds` times (default 3) and keeps each side's best:
  - speed: `llm bench llama --prompt-tokens 128 --gen-tokens 64 --json` vs
    `llama-bench -p 128 -n 64 -o json`: prompt processing (pp128) and generation (tg64) in tok/s,
    each side the mean of its own repetitions (5) after a warm-up; both start from an empty cache;
  - load and memory: one process that loads the model and greedily generates 8 tokens after
    "Hello": `llm generate` vs `llama-completion -c 512` (llama.cpp would otherwise size its KV
    cache for the model's whole 8192-token context). Peak RSS comes from wait4() on that very
    process; load time is what each one reports (our `load_s` from `llm bench llama`, llama.cpp's
    "load time" line); wall is the whole process, start to exit.
Prints a Markdown table (ours / llama.cpp; > 1 means we are faster), or with --json one object
{"rows": [[name, ours, reference, who], ...], "notes": [...]} for bench/run.py. When our side fails
(say `llm bench llama` does not exist yet) it says why and skips: exit status 0, {"skipped": why}.

llama.cpp is built by scripts/fetch/llama-cpp.sh and the model fetched by scripts/fetch/smollm2.sh
(`make bench` runs both). Run it on a quiet machine.
    python3 bench/llamacpp.py --llm .build/release/llm [--threads 2 --rounds 3]
"""
import argparse, json, os, re, subprocess, sys, tempfile, time

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(here)
p = argparse.ArgumentParser()
p.add_argument("--llm", default=os.path.join(root, ".build", "release", "llm"))
p.add_argument("--model", default=os.path.join(root, ".cache", "SmolLM2-135M-Instruct.Q4_1.gguf"))
p.add_argument("--llama-bin", default=os.path.join(root, ".cache", "llama.cpp", "build", "bin"))
p.add_argument("--label", default="SmolLM2-135M Q4_1", help="the model's name in the rows")
p.add_argument("--threads", type=int, default=2)
p.add_argument("--rounds", type=int, default=3)
p.add_argument("--prompt-tokens", type=int, default=128)
p.add_argument("--gen-tokens", type=int, default=64)
p.add_argument("--json", action="store_true")
args = p.parse_args()
T, P, N = str(args.threads), args.prompt_tokens, args.gen_tokens


class Skip(Exception):
    pass


def measured(cmd):
    """Runs cmd; returns (stdout, stderr, wall seconds, peak RSS MiB of that process alone)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(proc.pid, 0)    # this child's own rusage, not all children's
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0), err.seek(0)
        o, e = out.read(), err.read()
    if proc.returncode != 0:
        raise subprocess.CalledProcessError(proc.returncode, cmd, o, e)
    return o, e, wall, usage.ru_maxrss / 1024        # Linux: ru_maxrss in KiB


def ours_speed():
    cmd = [args.llm, "bench", "llama", "--model", args.model, "--prompt-tokens", str(P), "--gen-tokens", str(N),
           "--threads", T, "--json"]
    try:
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        o = json.loads([l for l in out.splitlines() if l.startswith("{")][-1])
        return {"pp": float(o["pp_tok_s"]), "tg": float(o["tg_tok_s"]), "load_s": float(o["load_s"])}
    except (OSError, subprocess.CalledProcessError, ValueError, KeyError, IndexError) as e:
        detail = getattr(e, "stderr", None) or str(e)
        raise Skip(f"our side failed: {' '.join(cmd)}: {detail.strip()[-400:]}")


def llama_speed():
    cmd = [os.path.join(args.llama_bin, "llama-bench"), "-m", args.model, "-p", str(P), "-n", str(N), "-t", T, "-o", "json"]
    tests = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    pp = next(t for t in tests if t["n_prompt"] == P and t["n_gen"] == 0)
    tg = next(t for t in tests if t["n_gen"] == N and t["n_prompt"] == 0)
    return {"pp": pp["avg_ts"], "tg": tg["avg_ts"], "commit": pp["build_commit"]}


def ours_load():
    cmd = [args.llm, "generate", "--model", args.model, "--prompt", "Hello", "--max-new-tokens", "8",
           "--temperature", "0", "--threads", T]
    try:
        _, _, wall, rss = measured(cmd)
    except (OSError, subprocess.CalledProcessError) as e:
        detail = getattr(e, "stderr", None) or str(e)
        raise Skip(f"our side failed: {' '.join(cmd)}: {detail.strip()[-400:]}")
    return {"wall_s": wall, "rss_mib": rss}


def llama_load():
    cmd = [os.path.join(args.llama_bin, "llama-completion"), "-m", args.model, "-p", "Hello", "-n", "8", "-t", T,
           "-c", "512", "--temp", "0", "-no-cnv"]
    _, err, wall, rss = measured(cmd)
    m = re.search(r"load time =\s*([0-9.]+) ms", err)
    return {"wall_s": wall, "rss_mib": rss, "load_s": float(m.group(1)) / 1000 if m else float("nan")}


def main():
    for path in (args.model, os.path.join(args.llama_bin, "llama-bench"), os.path.join(args.llama_bin, "llama-completion")):
        if not os.path.exists(path):
            raise Skip(f"{path} is missing: run scripts/fetch/smollm2.sh (or gemma3.sh) and scripts/fetch/llama-cpp.sh")
    best = {}

    def keep(side, key, value, better):
        k = (side, key)
        best[k] = value if k not in best else better(best[k], value)

    commit = "?"
    for _ in range(max(1, args.rounds)):
        o = ours_speed()
        r = llama_speed()
        commit = r["commit"]
        for key in ("pp", "tg"):
            keep("ours", key, o[key], max)
            keep("llama", key, r[key], max)
        keep("ours", "load_s", o["load_s"], min)
        o, r = ours_load(), llama_load()
        for key in ("wall_s", "rss_mib"):
            keep("ours", key, o[key], min)
            keep("llama", key, r[key], min)
        keep("llama", "load_s", r["load_s"], min)

    who = f"llama.cpp {commit}"
    L = args.label
    rows = [
        (f"{L} prompt pp{P} (tok/s)", best["ours", "pp"], best["llama", "pp"], who),
        (f"{L} generation tg{N} (tok/s)", best["ours", "tg"], best["llama", "tg"], who),
        (f"{L} model load (1/s, higher is faster)", 1 / best["ours", "load_s"], 1 / best["llama", "load_s"], who),
        (f"{L} load + 8 tokens, whole process (1/s)", 1 / best["ours", "wall_s"], 1 / best["llama", "wall_s"], who),
    ]
    notes = [
        f"{L}: load ours {best['ours', 'load_s']:.3f} s, llama.cpp {best['llama', 'load_s']:.3f} s; "
        f"load + 8 tokens ours {best['ours', 'wall_s']:.2f} s, llama.cpp {best['llama', 'wall_s']:.2f} s; "
        f"peak RSS ours {best['ours', 'rss_mib']:.0f} MiB, llama.cpp {best['llama', 'rss_mib']:.0f} MiB "
        f"(llama-completion -c 512; {os.path.getsize(args.model) / 2**20:.0f} MiB file; best of {max(1, args.rounds)} rounds)",
    ]
    return rows, notes


try:
    try:
        rows, notes = main()
    except subprocess.CalledProcessError as e:
        raise Skip(f"llama.cpp failed: {' '.join(e.cmd)}: {(e.stderr or '').strip()[-400:]}")
except Skip as e:
    print(f"llama.cpp comparison skipped: {e}", file=sys.stderr)
    if args.json:
        print(json.dumps({"skipped": str(e)}))
    sys.exit(0)

if args.json:
    print(json.dumps({"rows": rows, "notes": notes}))
else:
    print(f"\nthreads: {args.threads}, best of {args.rounds} alternating rounds, load average {os.getloadavg()[0]:.1f}\n")
    print("| work | ours | llama.cpp | ratio | reference is |")
    print("|---|---:|---:|---:|---|")
    for name, o, r, who in rows:
        print(f"| {name} | {o:.1f} | {r:.1f} | {o / r:.2f}x | {who} |")
    print()
    for line in notes:
        print(line)
