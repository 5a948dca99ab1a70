#!/usr/bin/env python3
"""Serving side by side: `llm serve` and llama.cpp's `llama-server` (built from the same llama.cpp
sources as the rest of `make bench`) on SmolLM2-135M-Instruct Q4_1, both with 8 slots and the same
threads, under the same load from bench/serve_load.py: 8 concurrent streaming clients (each sending greedy
completions of up to 128 tokens back to back, its own prompt), and one client alone against our
server (our single-stream speed). Tokens/s is the steady-state rate: inside a window that starts
after `--warmup-seconds` and lasts `--measure-seconds`, while every client is busy (see
serve_load.py). The servers take turns, `--rounds` times; each keeps its best. Then, with
`--load-seconds`, the bounded load test: 32 clients on our server for at most that long.

Prints one JSON line: rows for bench/run.py's table and notes (time to first token, the load test).

    python3 bench/serve_bench.py --llm .build/release/llm --threads 2
"""
import argparse, json, os, socket, subprocess, sys, time, urllib.request

p = argparse.ArgumentParser()
p.add_argument("--llm", default=".build/release/llm")
p.add_argument("--threads", type=int, default=2)
p.add_argument("--rounds", type=int, default=2)
p.add_argument("--clients", type=int, default=8)
p.add_argument("--warmup-seconds", type=float, default=3, help="not counted at the start of each speed run")
p.add_argument("--measure-seconds", type=float, default=12, help="the window each speed run is measured in")
p.add_argument("--max-tokens", type=int, default=128)
p.add_argument("--stream-interval-ms", type=int, default=None, help="llm serve's --stream-interval-ms (default: its own)")
p.add_argument("--load-seconds", type=float, default=0, help="also run the bounded load test (32 clients) this long at most")
args = p.parse_args()
if args.warmup_seconds < 0 or args.measure_seconds <= 0:
    sys.exit("--warmup-seconds must be 0 or more and --measure-seconds more than 0")

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(here)
smol = os.path.join(root, ".cache", "SmolLM2-135M-Instruct.Q4_1.gguf")
llama_server = os.path.join(root, ".cache", "llama.cpp", "build", "bin", "llama-server")
T = str(args.threads)
slot_context = 1024


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_ready(url, process, seconds=300):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with status {process.returncode}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as r:
                if r.status == 200:
                    return
        except Exception:  # noqa: BLE001 (not up yet)
            pass
        time.sleep(0.2)
    raise RuntimeError("the server did not become ready")


def start(kind):
    port = free_port()
    if kind == "ours":
        cmd = [args.llm, "serve", "--model", smol, "--port", str(port), "--parallel", str(args.clients), "--context", str(slot_context),
               "--threads", T, "--quiet"]
        if args.stream_interval_ms is not None:
            cmd += ["--stream-interval-ms", str(args.stream_interval_ms)]
    else:
        cmd = [llama_server, "-m", smol, "--host", "127.0.0.1", "--port", str(port), "--parallel", str(args.clients),
               "--ctx-size", str(slot_context * args.clients), "--threads", T, "--threads-batch", T, "--no-webui", "--log-disable"]
    process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, process)
    return process, url


def load(url, pid, clients, requests=None, seconds=None, window=False):
    cmd = [sys.executable, os.path.join(here, "serve_load.py"), "--url", url, "--pid", str(pid), "--clients", str(clients),
           "--max-tokens", str(args.max_tokens)]
    if window:
        cmd += ["--warmup-seconds", str(args.warmup_seconds), "--measure-seconds", str(args.measure_seconds)]
    elif requests:
        cmd += ["--requests", str(requests), "--max-seconds", "0"]
    else:
        cmd += ["--max-seconds", str(seconds)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    out = json.loads(r.stdout.strip().splitlines()[-1])
    if r.returncode != 0:
        raise RuntimeError(f"load on {url} failed: {out}")
    return out


def stop(process):
    process.terminate()
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()


if not os.path.exists(smol):
    print(json.dumps({"skipped": f"{smol} is missing (scripts/fetch/smollm2.sh)"}))
    sys.exit(0)
have_reference = os.path.exists(llama_server)
best = {}
for _ in range(args.rounds):
    for kind in (["ours", "llama"] if have_reference else ["ours"]):
        process, url = start(kind)
        try:
            load(url, process.pid, 1, requests=1)                                # warm-up
            runs = {"many": load(url, process.pid, args.clients, window=True)}
            if kind == "ours":
                runs["one"] = load(url, process.pid, 1, window=True)
        finally:
            stop(process)
        for name, r in runs.items():
            key = (kind, name)
            if key not in best or r["tokens_per_second"] > best[key]["tokens_per_second"]:
                best[key] = r

ours_many, ours_one = best[("ours", "many")], best[("ours", "one")]
rows = [[f"serve SmolLM2 Q4_1: {args.clients} streaming clients vs 1, aggregate (tok/s)", ours_many["tokens_per_second"],
         ours_one["tokens_per_second"], "ours, one client (goal ≥ 2.5x)"]]
notes = [f"serving: {args.clients} clients sending completions of ≤ {args.max_tokens} tokens back to back, tokens/s in the window "
         f"{args.warmup_seconds:g}–{args.warmup_seconds + args.measure_seconds:g} s (whole runs with start and drain: ours {ours_many['whole_run_tokens_per_second']:.1f} "
         f"vs one client {ours_one['whole_run_tokens_per_second']:.1f}); llm serve p50/p95 time to first "
         f"token {ours_many['ttft_p50_s']:.3f} / {ours_many['ttft_p95_s']:.3f} s, one client alone {ours_one['ttft_p50_s']:.3f} s"]
if have_reference:
    ref = best[("llama", "many")]
    rows.append([f"serve SmolLM2 Q4_1: {args.clients} streaming clients, llm serve vs llama-server --parallel {args.clients} (tok/s)",
                 ours_many["tokens_per_second"], ref["tokens_per_second"], "llama-server (goal ≥ 1.0x)"])
    notes.append(f"llama-server p50/p95 time to first token {ref['ttft_p50_s']:.3f} / {ref['ttft_p95_s']:.3f} s "
                 f"(whole run {ref['whole_run_tokens_per_second']:.1f} tok/s)")
else:
    notes.append(f"llama-server missing ({llama_server}): scripts/fetch/llama-cpp.sh builds it")

if args.load_seconds > 0:
    process, url = start("ours")
    try:
        lt = load(url, process.pid, 32, seconds=args.load_seconds)
    finally:
        stop(process)
    notes.append(f"load test: 32 clients for {lt['seconds']:.0f} s on llm serve: {lt['requests']} responses, {lt['failed']} failed; "
                 f"{lt['tokens_per_second']:.1f} tok/s; time to first token p50 {lt['ttft_p50_s']:.2f} s, p95 {lt['ttft_p95_s']:.2f} s; "
                 f"RSS after warm-up {lt.get('rss_after_warmup_mib', 0):.0f} MiB, peak after {lt.get('rss_peak_after_warmup_mib', 0):.0f} MiB, "
                 f"end {lt.get('rss_end_mib', 0):.0f} MiB")
print(json.dumps({"rows": rows, "notes": notes}))
