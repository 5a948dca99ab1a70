#!/usr/bin/env python3
"""Load on an OpenAI-compatible server over loopback: C clients, each sending streaming
completions one after another, until every client has sent R requests or the time is up. Every
response must arrive whole (a [DONE] after its tokens, the usage chunk, no error); a failed or
lost response is counted and makes the exit status 1. Reports time to first token (p50, p95),
aggregate generated tokens/s, and the server's resident memory (sampled from /proc every 0.5 s:
after warm-up and at its peak). Prints one JSON line. Uses only Python's standard library.

    python3 bench/serve_load.py --url http://127.0.0.1:8080 --pid PID --clients 8 --requests 3 --max-tokens 128
    python3 bench/serve_load.py --url ... --pid PID --clients 32 --max-seconds 120     # the bounded load test
    python3 bench/serve_load.py --url ... --clients 8 --warmup-seconds 3 --measure-seconds 12   # steady state

With --measure-seconds, the clients send back to back for warm-up + measure seconds and finish
what is in flight; tokens/s is then the steady-state rate inside the window [warm-up, warm-up +
measure] (each response's tokens spread evenly between its first token and its end, counted for
the part inside the window), so neither the start (every prompt at once) nor the drain at the end
(fewer clients left, each finishing its last response) is counted. Whole runs measure those too,
but how long the drain lasts depends on where each greedy continuation happens to stop.

Each client has its own prompt (a numbered line of text), so no two sequences share a prefix.
"""
import argparse, http.client, json, statistics, sys, threading, time, urllib.parse

p = argparse.ArgumentParser()
p.add_argument("--url", required=True)
p.add_argument("--pid", type=int, help="the server's process id, for its memory")
p.add_argument("--clients", type=int, default=8)
p.add_argument("--requests", type=int, default=0, help="requests per client (0: until --max-seconds)")
p.add_argument("--max-seconds", type=float, default=120)
p.add_argument("--warmup-seconds", type=float, default=0, help="with --measure-seconds: not counted at the start")
p.add_argument("--measure-seconds", type=float, default=0, help="steady-state tokens/s inside this window (see above)")
p.add_argument("--max-tokens", type=int, default=128)
p.add_argument("--prompt-words", type=int, default=24)
p.add_argument("--key", default=None)
p.add_argument("--model", default="model")
args = p.parse_args()
if args.warmup_seconds < 0 or args.measure_seconds < 0:
    sys.exit("--warmup-seconds and --measure-seconds must be 0 or more")
if args.measure_seconds > 0:
    args.requests, args.max_seconds = 0, args.warmup_seconds + args.measure_seconds
if args.requests <= 0 and args.max_seconds <= 0:
    sys.exit("give --requests, --max-seconds or --measure-seconds")

u = urllib.parse.urlparse(args.url)
WORDS = ("the river carried small boats past the old mill while children counted them from the bridge "
         "and the baker sang about bread rain and the long road home").split()


def prompt(client, n):
    words = [WORDS[(client * 7 + n * 3 + i) % len(WORDS)] for i in range(args.prompt_words)]
    return f"Story {client}.{n}: " + " ".join(words)


lock = threading.Lock()
ttfts, failures, done_requests, tokens = [], [], 0, 0
spans = []          # (first token time, end time, generated tokens) of each response
stop_at = time.time() + (args.max_seconds if args.max_seconds > 0 else 1e9)


def one_request(client, n):
    """One streamed completion; returns (ttft seconds, generated tokens) or raises."""
    body = json.dumps({"model": args.model, "prompt": prompt(client, n), "max_tokens": args.max_tokens, "temperature": 0,
                       "stream": True, "stream_options": {"include_usage": True}})
    headers = {"Content-Type": "application/json"}
    if args.key:
        headers["Authorization"] = "Bearer " + args.key
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=600)
    started = time.time()
    conn.request("POST", "/v1/completions", body=body, headers=headers)
    r = conn.getresponse()
    if r.status != 200:
        raise RuntimeError(f"HTTP {r.status}: {r.read()[:200]!r}")
    first, chunks, usage, finished, buffer = None, 0, None, False, b""
    while True:
        data = r.read1(65536) if hasattr(r, "read1") else r.read(4096)
        if not data:
            break
        buffer += data
        while b"\n\n" in buffer:
            event, buffer = buffer.split(b"\n\n", 1)
            line = event.strip()
            if not line.startswith(b"data: "):
                continue
            payload = line[6:]
            if payload == b"[DONE]":
                finished = True
                continue
            obj = json.loads(payload)
            if "error" in obj:
                raise RuntimeError(f"error event: {obj['error']}")
            if obj.get("usage"):
                usage = obj["usage"]
            for c in obj.get("choices", []):
                if c.get("text"):
                    chunks += 1
                    if first is None:
                        first = time.time()
    conn.close()
    if not finished:
        raise RuntimeError("the stream ended without [DONE]")
    generated = usage["completion_tokens"] if usage else chunks
    if generated == 0:
        raise RuntimeError("no tokens")
    end = time.time()
    return (first or end) - started, generated, (first or end, end)


def client_loop(client):
    global done_requests, tokens
    n = 0
    while (args.requests <= 0 or n < args.requests) and time.time() < stop_at:
        try:
            ttft, generated, (first, end) = one_request(client, n)
            with lock:
                ttfts.append(ttft); done_requests += 1; tokens += generated; spans.append((first, end, generated))
        except Exception as e:  # noqa: BLE001 (every failure is counted and reported)
            with lock:
                failures.append(f"client {client} request {n}: {e}")
        n += 1


def rss_mib(pid):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


samples = []
sampling = True


def sampler():
    while sampling:
        if args.pid:
            m = rss_mib(args.pid)
            if m is not None:
                samples.append((time.time(), m))
        time.sleep(0.5)


threading.Thread(target=sampler, daemon=True).start()
t0 = time.time()
threads = [threading.Thread(target=client_loop, args=(c,)) for c in range(args.clients)]
for t in threads:
    t.start()
for t in threads:
    t.join()
wall = time.time() - t0
sampling = False

out = {"clients": args.clients, "requests": done_requests, "failed": len(failures), "seconds": wall,
       "generated_tokens": tokens, "tokens_per_second": tokens / wall if wall > 0 else 0}
if args.measure_seconds > 0:
    lo, hi = t0 + args.warmup_seconds, t0 + args.warmup_seconds + args.measure_seconds
    inside = 0.0
    for first, end, generated in spans:
        if end <= first:
            inside += generated if lo <= end <= hi else 0
        else:
            inside += generated * max(0.0, min(end, hi) - max(first, lo)) / (end - first)
    out["whole_run_tokens_per_second"] = out["tokens_per_second"]
    out["tokens_per_second"] = inside / args.measure_seconds
    out["window_s"] = [args.warmup_seconds, args.warmup_seconds + args.measure_seconds]
if ttfts:
    s = sorted(ttfts)
    out["ttft_p50_s"] = statistics.median(s)
    out["ttft_p95_s"] = s[min(len(s) - 1, int(round(0.95 * (len(s) - 1))))]
if samples:
    # Warm-up: the first quarter of the run (caches and buffers grow to their working size).
    warm = [m for t, m in samples if t - t0 >= wall / 4] or [samples[-1][1]]
    out["rss_after_warmup_mib"] = warm[0]
    out["rss_peak_after_warmup_mib"] = max(warm)
    out["rss_end_mib"] = samples[-1][1]
if failures:
    out["first_failures"] = failures[:5]
print(json.dumps(out))
sys.exit(1 if failures else 0)
