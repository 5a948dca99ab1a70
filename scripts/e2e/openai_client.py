#!/usr/bin/env python3
"""End to end: OpenAI's own Python client (the `openai` package) against a running `llm serve`,
then hostile requests over plain sockets. Run by the Swift test `ServeCommand` (Tests/CLITests),
which starts the server on the tiny Llama with an API key, --parallel 2 and --max-queue 4:

    python3 scripts/e2e/openai_client.py --url http://127.0.0.1:PORT --key KEY --greedy-prompt TEXT --greedy-text FILE

`--greedy-text` holds what `llm generate --temperature 0` wrote for the same prompt and length.
Prints one line per check and exits 1 at the first failure.
"""
import argparse, http.client, json, socket, sys, threading, time, urllib.parse, urllib.request

import openai
from openai import OpenAI

p = argparse.ArgumentParser()
p.add_argument("--url", required=True)
p.add_argument("--key", required=True)
p.add_argument("--greedy-prompt", required=True)
p.add_argument("--greedy-text", required=True)
p.add_argument("--greedy-tokens", type=int, default=12)
args = p.parse_args()

client = OpenAI(base_url=args.url + "/v1", api_key=args.key, max_retries=0, timeout=60)
host = urllib.parse.urlparse(args.url)


def check(condition, what):
    if not condition:
        print(f"FAIL {what}", flush=True)
        sys.exit(1)
    print(f"ok   {what}", flush=True)


# The model list.
models = client.models.list()
model = models.data[0].id
check(len(models.data) == 1 and models.data[0].object == "model", f"models.list: {model}")

# Chat, whole and streamed, the same greedy text; usage and finish_reason as OpenAI returns them.
messages = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Say hello."}]
whole = client.chat.completions.create(model=model, messages=messages, max_tokens=10, temperature=0)
text = whole.choices[0].message.content
check(whole.object == "chat.completion" and whole.choices[0].message.role == "assistant", "chat.completions.create")
check(whole.usage.completion_tokens <= 10 and whole.usage.total_tokens == whole.usage.prompt_tokens + whole.usage.completion_tokens, "chat usage")
check(whole.choices[0].finish_reason in ("stop", "length"), f"chat finish_reason {whole.choices[0].finish_reason}")
streamed, usage, finishes, roles = "", None, [], []
for chunk in client.chat.completions.create(model=model, messages=messages, max_tokens=10, temperature=0, stream=True,
                                            stream_options={"include_usage": True}):
    if chunk.usage:
        usage = chunk.usage
    for c in chunk.choices:
        streamed += c.delta.content or ""
        if c.delta.role:
            roles.append(c.delta.role)
        if c.finish_reason:
            finishes.append(c.finish_reason)
check(streamed == text, "chat stream text equals the whole answer")
check(roles == ["assistant"] and finishes == [whole.choices[0].finish_reason], "chat stream role and finish_reason")
check(usage is not None and usage.completion_tokens == whole.usage.completion_tokens, "stream_options.include_usage")

# Completions: text prompt and token-id prompt, greedy output equals `llm generate --temperature 0`.
expected = open(args.greedy_text, encoding="utf-8", newline="").read()
if expected.endswith("\n"):
    expected = expected[:-1]
done = client.completions.create(model=model, prompt=args.greedy_prompt, max_tokens=args.greedy_tokens, temperature=0)
check(done.choices[0].text == expected, f"greedy completion equals llm generate: {done.choices[0].text!r} vs {expected!r}")
req = urllib.request.Request(args.url + "/tokenize", data=json.dumps({"content": args.greedy_prompt}).encode(),
                             headers={"Authorization": "Bearer " + args.key, "Content-Type": "application/json"})
ids = json.loads(urllib.request.urlopen(req).read())["tokens"]
by_ids = client.completions.create(model=model, prompt=ids, max_tokens=args.greedy_tokens, temperature=0)
check(by_ids.choices[0].text == expected, "a prompt as token ids gives the same completion")
pieces = "".join(c.choices[0].text for c in client.completions.create(model=model, prompt=args.greedy_prompt, max_tokens=args.greedy_tokens,
                                                                       temperature=0, stream=True))
check(pieces == expected, "streamed completion equals the whole one")

# stop: the text before the first stop string, finish_reason stop.
letters = [i for i, ch in enumerate(expected) if ch.isascii() and ch.isalpha() and i >= 2]
if letters:
    stop = expected[letters[0]]
    cut = client.completions.create(model=model, prompt=args.greedy_prompt, max_tokens=args.greedy_tokens, temperature=0, stop=[stop, "zzzz"])
    check(cut.choices[0].text == expected[:expected.index(stop)] and cut.choices[0].finish_reason == "stop", f"stop {stop!r}")

# seed: the same seed, the same sample; n choices.
a = client.chat.completions.create(model=model, messages=messages, max_tokens=12, temperature=1.0, seed=1234, n=2)
b = client.chat.completions.create(model=model, messages=messages, max_tokens=12, temperature=1.0, seed=1234, n=2)
check([c.message.content for c in a.choices] == [c.message.content for c in b.choices] and len(a.choices) == 2, "seed reproducibility with n=2")

# logprobs: chat (logprobs + top_logprobs) and completions (logprobs=k).
lp = client.chat.completions.create(model=model, messages=messages, max_tokens=5, temperature=0, logprobs=True, top_logprobs=3)
content = lp.choices[0].logprobs.content
check(len(content) == lp.usage.completion_tokens and all(len(t.top_logprobs) == 3 and t.logprob <= 0 for t in content),
      "chat logprobs and top_logprobs")
check(all(t.top_logprobs[0].logprob >= t.logprob - 1e-5 for t in content), "greedy tokens are the most likely")
lpc = client.completions.create(model=model, prompt=args.greedy_prompt, max_tokens=4, temperature=0, logprobs=2)
check(len(lpc.choices[0].logprobs.tokens) == lpc.usage.completion_tokens and all(len(t) <= 2 for t in lpc.choices[0].logprobs.top_logprobs),
      "completion logprobs")

# Errors in OpenAI's shape, through the client's own exception types.
try:
    client.chat.completions.create(model=model, messages=messages, temperature=5)
    check(False, "temperature 5 refused")
except openai.BadRequestError as e:
    check(e.status_code == 400 and e.body.get("param") == "temperature", f"temperature 5 refused: {e.body.get('message')}")
try:
    OpenAI(base_url=args.url + "/v1", api_key="wrong", max_retries=0).models.list()
    check(False, "a wrong API key refused")
except openai.AuthenticationError as e:
    check(e.status_code == 401, "a wrong API key refused")


# Hostile requests over plain sockets; after each, a good request is answered.
def raw(method, path, body=b"", headers=None, read=True):
    conn = http.client.HTTPConnection(host.hostname, host.port, timeout=60)
    h = {"Authorization": "Bearer " + args.key, "Content-Type": "application/json"}
    h.update(headers or {})
    conn.request(method, path, body=body, headers=h)
    r = conn.getresponse()
    data = r.read() if read else b""
    conn.close()
    return r.status, data


def still_answers(after):
    s, data = raw("POST", "/v1/completions", json.dumps({"prompt": "Hi", "max_tokens": 2}).encode())
    check(s == 200 and json.loads(data)["choices"], f"answers after {after}")


for body, what in [(b"{\"messages\": [", "malformed JSON"), (b"{\"messages\": \"\xff\xfe\"}", "invalid UTF-8"),
                   (json.dumps({"messages": []}).encode(), "empty messages"),
                   (json.dumps({"messages": [{"role": "king", "content": "x"}]}).encode(), "an unknown role"),
                   (json.dumps({"messages": messages, "max_tokens": -5}).encode(), "negative max_tokens"),
                   (json.dumps({"messages": messages, "max_tokens": 10**12}).encode(), "huge max_tokens"),
                   (json.dumps({"messages": messages, "temperature": "hot"}).encode(), "a wrong type")]:
    s, data = raw("POST", "/v1/chat/completions", body)
    err = json.loads(data).get("error", {})
    check(s == 400 and {"message", "type", "param", "code"} <= set(err), f"{what}: 400 {err.get('message')}")
    still_answers(what)

# A 10 MB body: 413 (the server may close the connection before reading it all).
try:
    s, data = raw("POST", "/v1/chat/completions", b" " * (10 << 20))
    check(s == 413, f"a 10 MB body: {s}")
except (ConnectionError, BrokenPipeError, http.client.HTTPException) as e:
    check(True, f"a 10 MB body: connection closed ({type(e).__name__})")
still_answers("a 10 MB body")


# A client that disconnects mid-stream: its sequence is cancelled (running sequences drop to 0).
def metric(name):
    s, data = raw("GET", "/metrics")
    for line in data.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


sock = socket.create_connection((host.hostname, host.port))
# Greedy: the test model's greedy continuation runs the whole 200 tokens (sampled at temperature 1
# it sometimes ends after 2, before the disconnect is seen, and nothing is left to cancel).
body = json.dumps({"prompt": "Once upon a time", "max_tokens": 200, "temperature": 0, "stream": True}).encode()
sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + args.key.encode() +
             b"\r\nContent-Type: application/json\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
first = sock.recv(4096)
check(b"200" in first.split(b"\r\n")[0], "a stream starts")
sock.close()
deadline = time.time() + 10
while time.time() < deadline and metric("llm_running_sequences") != 0:
    time.sleep(0.05)
check(metric("llm_running_sequences") == 0, "a client that disconnects mid-stream is cancelled")
still_answers("a disconnect mid-stream")

# 200 requests at once on a queue of 4: each answered 200 or 503 with Retry-After, none lost.
results = []
lock = threading.Lock()


def one():
    conn = http.client.HTTPConnection(host.hostname, host.port, timeout=120)
    conn.request("POST", "/v1/completions", body=json.dumps({"prompt": "Hello", "max_tokens": 8}),
                 headers={"Authorization": "Bearer " + args.key, "Content-Type": "application/json"})
    r = conn.getresponse()
    r.read()
    with lock:
        results.append((r.status, r.getheader("Retry-After")))
    conn.close()


threads = [threading.Thread(target=one) for _ in range(200)]
for t in threads:
    t.start()
for t in threads:
    t.join()
statuses = sorted(set(s for s, _ in results))
check(len(results) == 200 and set(statuses) <= {200, 503} and all(r == "1" for s, r in results if s == 503),
      f"200 requests on a full queue: {sum(s == 200 for s, _ in results)} answered, {sum(s == 503 for s, _ in results)} told to retry")
still_answers("200 requests on a full queue")
print("all checks passed")
