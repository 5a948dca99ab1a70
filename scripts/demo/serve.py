#!/usr/bin/env python3
"""`make demo`'s serving step: `llm serve` starts on a free port with SmolLM2, two chat requests go
to it at once over OpenAI's HTTP API (one streamed, token by token; one whole), the server's access
log is shown, and SIGTERM stops it. Only Python's standard library.

    python3 scripts/demo/serve.py --llm .build/release/llm --model .cache/SmolLM2-135M-Instruct.Q4_1.gguf
"""
import argparse, json, re, subprocess, sys, threading, urllib.request

p = argparse.ArgumentParser()
p.add_argument("--llm", default=".build/release/llm")
p.add_argument("--model", required=True)
args = p.parse_args()

server = subprocess.Popen([args.llm, "serve", "--model", args.model, "--port", "0", "--parallel", "2", "--context", "1024"],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
url = None
for line in server.stdout:
    print("  server: " + line.rstrip())
    m = re.search(r"listening on (http://[0-9.]+:[0-9]+)", line)
    if m:
        url = m.group(1)
        break
if url is None:
    sys.exit("the server did not start")
log = []
threading.Thread(target=lambda: [log.append(l.rstrip()) for l in server.stdout], daemon=True).start()


def post(body):
    return urllib.request.urlopen(urllib.request.Request(url + "/v1/chat/completions", data=json.dumps(body).encode(),
                                                         headers={"Content-Type": "application/json"}), timeout=300)


whole = {}


def ask_whole():
    r = json.loads(post({"messages": [{"role": "user", "content": "Name three colors of the rainbow."}],
                         "max_tokens": 40, "temperature": 0}).read())
    whole["text"] = r["choices"][0]["message"]["content"]
    whole["usage"] = r["usage"]


t = threading.Thread(target=ask_whole)
t.start()
print("  streamed reply to \"Give me one tip for writing clear code.\": ", end="", flush=True)
with post({"messages": [{"role": "user", "content": "Give me one tip for writing clear code."}], "max_tokens": 40, "temperature": 0,
           "stream": True}) as r:
    for raw in r:
        line = raw.decode().strip()
        if line.startswith("data: ") and line != "data: [DONE]":
            for c in json.loads(line[6:])["choices"]:
                print(c["delta"].get("content") or "", end="", flush=True)
print()
t.join()
print(f"  whole reply to \"Name three colors of the rainbow.\": {whole['text']!r} ({whole['usage']['completion_tokens']} tokens)")
server.terminate()
server.wait(timeout=60)
for line in log:
    print("  server: " + line)
