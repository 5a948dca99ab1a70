#!/usr/bin/env python3
"""`make bench`: our engine side by side with its anchors, in one run, as ratios.

Each pair runs back to back on the same machine with the same thread count (default 2):
  - sgemm through our BLAS wrapper (`llm bench gemm`) vs numpy's matmul, GFLOPS per shape;
  - forward + backward of one GPT-2-sized transformer block (`llm bench block`) vs PyTorch CPU;
  - SmolLM2-135M-Instruct Q4_1 and Gemma 3 270M Q4_K_M GGUF: prompt / generation speed, load time,
    peak RSS vs llama.cpp (bench/llamacpp.py, which alternates the two itself);
  - batched decoding of 8 sequences in one forward pass per step vs one sequence (`llm bench batch`);
  - a forward pass recording what `llm explain` shows vs the plain pass (`llm bench explain`);
  - `llm serve` vs llama.cpp's `llama-server` under the same 8 streaming clients, our single-stream
    speed, and a bounded load test with 32 clients (bench/serve_bench.py over bench/serve_load.py);
  - data-parallel training under mpirun, 2 ranks × 1 thread vs 1 process × 2 threads (bench/mpi_train.py),
    and the all-reduce of GPT-2 124M's gradients (`llm bench allreduce`);
  - fine-tuning SmolLM2-135M, LoRA over the quantized base and full (`llm bench finetune`) vs PyTorch
    + peft (bench/torch_finetune.py), and peft / transformers loading our adapter and merged folder;
  - a DPO step on SmolLM2 with LoRA (`llm bench finetune --objective dpo`) vs the same loss in PyTorch + peft;
  - every ggml block format's matrix × vector product (`llm bench quant`) vs ggml's own kernels
    (bench/quant_kernels.py over bench/ggml_vec_dot.c), one thread;
  - SentencePiece encoding (`llm bench sentencepiece`) vs the sentencepiece library, one thread;
  - `llm quantize` vs `llama-quantize` (bench/llama_quantize.py): identical bytes for every type on
    SmolLM2, Q4_K_M speed, llama-perplexity on our files agreeing with `llm perplexity` (perplexity
    and KL divergence), and our Q4_K_M file run by both engines (speed, load, memory).
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
blas_kernels = ours[0].get("blas_kernels", "?")
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


# Tokenizer: GPT-2 encoding vs tiktoken (ids must be identical), BPE training vs HF tokenizers.
cache = os.path.join(os.path.dirname(here), ".cache")
corpus, train, held = (os.path.join(cache, f) for f in ("corpus.txt", "corpus-5mb.txt", "corpus-heldout.txt"))
ours_ids, ref_ids = os.path.join(cache, "corpus.llm-ids.u32"), os.path.join(cache, "corpus.tiktoken-ids.u32")
best_ot, best_rt = {}, {}
for _ in range(max(1, args.rounds // 2)):      # the reference side takes a while: fewer rounds
    ot = lines([args.llm, "bench", "tokenizer", "--corpus", corpus, "--train", train, "--heldout", held,
                "--vocab", "4096", "--threads", T, "--ids-out", ours_ids])[0]
    rt = lines([sys.executable, os.path.join(here, "tokenizer_reference.py"), "--corpus", corpus, "--train", train,
                "--heldout", held, "--vocab", "4096", "--ids", ref_ids], env=ref_env)[0]
    for k, v in ot.items():
        if isinstance(v, float):
            best_ot[k] = min(best_ot.get(k, v), v) if k == "train_seconds" else max(best_ot.get(k, v), v)
    for k, v in rt.items():
        if isinstance(v, float):
            best_rt[k] = min(best_rt.get(k, v), v) if k == "hf_train_seconds" else max(best_rt.get(k, v), v)
    tok_versions = f"tiktoken {rt['tiktoken_version']}"
    hf_version = f"tokenizers {rt['tokenizers_version']}"

with open(ours_ids, "rb") as f: a = f.read()
with open(ref_ids, "rb") as f: b = f.read()
if a == b:
    identical = f"identical ({len(a) // 4} ids)"
else:
    import array
    x, y = array.array("I", a), array.array("I", b)
    i = next((k for k in range(min(len(x), len(y))) if x[k] != y[k]), min(len(x), len(y)))
    import tiktoken
    from tiktoken.load import load_tiktoken_bpe
    ranks = load_tiktoken_bpe(os.path.join(cache, "gpt2.tiktoken"))
    inv = {v: k for k, v in ranks.items()}
    offset = sum(len(inv.get(t, b"")) for t in y[:i])
    text = open(corpus, "rb").read()
    identical = f"DIFFERENT at id {i}, byte offset {offset}: {text[max(0, offset - 40):offset + 40]!r}"
    print("tokenizer ids:", identical, file=sys.stderr)

# tiktoken's batch call queues one job per document; its plain loop is the faster single-thread anchor.
tik_single = max(best_rt["encode_mb_per_s"], best_rt["batch_mb_per_s_1thread"])
rows.append(("GPT-2 encode_ordinary, 1 thread (MB/s)", best_ot["encode_mb_per_s"], best_rt["encode_mb_per_s"], tok_versions))
rows.append((f"GPT-2 batch encode, {T} threads vs tiktoken 1 thread (MB/s)", best_ot["batch_mb_per_s"], tik_single, tok_versions))
rows.append(("GPT-2 decode (MB/s)", best_ot["decode_mb_per_s"], best_rt["decode_mb_per_s"], tok_versions))
rows.append(("BPE training, 5 MB to vocab 4096 (1/s, higher is faster)", 1 / best_ot["train_seconds"], 1 / best_rt["hf_train_seconds"], hf_version))

# GPT training (tiny B8 T256 and GPT-2 124M B4 T256) and 124M generation vs PyTorch (HF GPT2LMHeadModel).
gpt_rows = []
for name, b, t, steps in (("tiny", 8, 256, 4), ("gpt2", 4, 256, 2)):
    o, r = best_of_rounds([args.llm, "bench", "train", "--config", name, "--batch", str(b), "--context", str(t),
                           "--steps", str(steps), "--threads", T, "--json"],
                          [sys.executable, os.path.join(here, "torch_gpt.py"), "train", name, str(b), str(t), str(steps), T],
                          "tokens_per_s") if args.rounds else (None, None)
    o, r = o[0], r[0]
    rows.append((f"train {name} B{b} T{t}, AdamW fp32 (tok/s)", o["tokens_per_s"], r["tokens_per_s"], f"torch {r['torch']}"))
    gpt_rows.append(f"{name} B{b} T{t}: MFU {100 * o['mfu']:.1f} % of {o['peak_gflops']:.0f} GFLOPS (2048³ sgemm, measured); "
                    f"peak RSS ours {o['peak_rss_mb']:.0f} MiB, PyTorch {r['peak_rss_mb']:.0f} MiB")
o, r = best_of_rounds([args.llm, "bench", "generate", "--config", "gpt2", "--tokens", "100", "--threads", T, "--json"],
                      [sys.executable, os.path.join(here, "torch_gpt.py"), "generate", "gpt2", "16", "100", T], "tokens_per_s")
rows.append(("generate gpt2 124M, greedy, batch 1, KV cache (tok/s)", o[0]["tokens_per_s"], r[0]["tokens_per_s"], f"torch {r[0]['torch']}"))

# Batched decoding (the server's continuous batching): 8 sequences per forward pass vs 1, both ours.
smol = os.path.join(cache, "SmolLM2-135M-Instruct.Q4_1.gguf")
best_batch = None
for _ in range(max(1, min(3, args.rounds))):
    b = lines([args.llm, "bench", "batch", "--model", smol, "--sequences", "8", "--gen-tokens", "64", "--repetitions", "2",
               "--threads", T, "--json"])[0]
    best_batch = b if best_batch is None or b["batched_tok_s"] / b["single_tok_s"] > best_batch["batched_tok_s"] / best_batch["single_tok_s"] else best_batch
rows.append(("SmolLM2 Q4_1 decode, 8 sequences batched vs 1 (tok/s in all)", best_batch["batched_tok_s"], best_batch["single_tok_s"],
             "ours, 1 sequence (goal 2.5x)"))

# Looking inside (`llm explain`): a forward pass over 128 tokens recording every layer's attention
# weights, residual stream and contributions vs the same pass plain, both ours, in tokens per second
# (so the ratio is plain time / recorded time: 0.5x would be a recording twice as slow as the pass).
best_explain = None
for _ in range(max(1, min(3, args.rounds))):
    e = lines([args.llm, "bench", "explain", "--model", smol, "--tokens", "128", "--repetitions", "3", "--threads", T, "--json"])[0]
    best_explain = e if best_explain is None or e["plain_s"] / e["record_s"] > best_explain["plain_s"] / best_explain["record_s"] else best_explain
rows.append(("SmolLM2 Q4_1 forward, 128 tokens, recorded vs plain (tok/s)", 128 / best_explain["record_s"], 128 / best_explain["plain_s"],
             "ours, plain pass (goal ≥ 0.5x)"))
rows.append(("  the same, recorded + logit lens (30 head passes) vs plain (tok/s)", 128 / best_explain["record_lens_s"],
             128 / best_explain["plain_s"], "ours, plain pass"))

# Data-parallel training on this machine: mpirun -np 2 × 1 thread vs 1 process × 2 threads, the same
# model (GPT small), data and global batch (8 × 256); and the all-reduce of GPT-2 124M's gradients.
mpi_env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMPI_MCA_btl="self,vader",
               OMPI_MCA_rmaps_base_oversubscribe="1")
mpi = lines([sys.executable, os.path.join(here, "mpi_train.py"), "--llm", args.llm, "--data", os.path.join(cache, "corpus-heldout.txt"),
             "--config", "small", "--rounds", str(max(1, min(2, args.rounds)))])[0]
rows.append(("train GPT small B8 T256, mpirun 2 ranks × 1 thread vs 1 process × 2 threads (tok/s)", mpi["two_tok_s"], mpi["one_tok_s"],
             "ours, one process (goal ≥ 0.9x)"))
allreduce = lines(["mpirun", "-np", "2", args.llm, "bench", "allreduce", "--floats", "124439808", "--json"], env=mpi_env)[0]
mpi_note = (f"MPI: largest loss difference 2 ranks vs 1 process {mpi['largest_loss_difference']:.1e} (relative); peak RSS one process "
            f"{mpi['one_peak_rss_mib']:.0f} MiB, largest rank {mpi['mpirun_peak_rss_mib']:.0f} MiB; all-reduce of GPT-2 124M's gradients "
            f"(498 MB) on 2 ranks: {allreduce['seconds']:.3f} s ({allreduce['bus_gb_s']:.2f} GB/s bus bandwidth, shared memory)")

# Serving: llm serve and llama-server (--parallel 8, same llama.cpp sources) under the same streaming
# load (8 clients), our single-stream speed, and the bounded load test (32 clients sending for 90 s, so that
# the last responses are in within 2 minutes).
sv = lines([sys.executable, os.path.join(here, "serve_bench.py"), "--llm", args.llm, "--threads", T,
            "--rounds", str(max(1, min(2, args.rounds))), "--load-seconds", "90"])[0]
rows += [tuple(r) for r in sv.get("rows", [])]
serve_notes = sv.get("notes", [f"serving skipped: {sv.get('skipped')}"])

# Fine-tuning SmolLM2-135M-Instruct, batch 8 × 256 tokens, 2 threads: LoRA r16 on all seven projections
# over the frozen Q4_1 base (QLoRA: the base stays in its blocks) vs PyTorch + peft on the same weights
# dequantized into LlamaForCausalLM; and full fine-tuning vs PyTorch. Minutes per side: one round
# (two with --rounds >= 2), 3 timed steps after 1 untimed.
ft_notes = []
for method in ("lora", "full"):
    best_o = best_r = None
    for _ in range(max(1, min(2, args.rounds))):
        o = lines([args.llm, "bench", "finetune", "--model", smol, "--method", method, "--batch", "8", "--length", "256",
                   "--steps", "3", "--warmup-steps", "1", "--threads", T, "--json"])[0]
        r = lines([sys.executable, os.path.join(here, "torch_finetune.py"), "--gguf", smol, "--method", method, "--batch", "8",
                   "--length", "256", "--steps", "3", "--warmup-steps", "1", "--threads", T], env=ref_env)[0]
        best_o = o if best_o is None or o["tokens_per_s"] > best_o["tokens_per_s"] else best_o
        best_r = r if best_r is None or r["tokens_per_s"] > best_r["tokens_per_s"] else best_r
    label = "LoRA r16 (QLoRA on Q4_1)" if method == "lora" else "full"
    goal = "1.5x" if method == "lora" else "1.2x"
    rows.append((f"SmolLM2-135M fine-tune {label}, B8 T256 (tok/s)", best_o["tokens_per_s"], best_r["tokens_per_s"],
                 f"torch {best_r['torch']}" + (f" + peft {best_r['peft']}" if best_r.get("peft") else "") + f" (goal {goal})"))
    ft_notes.append(f"fine-tune {label}: peak RSS ours {best_o['peak_rss_mb']:.0f} MiB, PyTorch {best_r['peak_rss_mb']:.0f} MiB; "
                    f"trainable ours {best_o['trainable']:,} of {best_o['total']:,}, PyTorch {best_r['trainable']:,} of {best_r['total']:,}")
# DPO on SmolLM2-135M-Instruct, LoRA r16 over the Q4_1 base, 4 pairs of 256-token rows (chosen and
# rejected in one batch of 8), 2 threads: steps/s vs PyTorch + peft computing the same loss.
best_o = best_r = None
for _ in range(max(1, min(2, args.rounds))):
    o = lines([args.llm, "bench", "finetune", "--model", smol, "--objective", "dpo", "--method", "lora", "--batch", "4",
               "--length", "256", "--steps", "3", "--warmup-steps", "1", "--threads", T, "--json"])[0]
    r = lines([sys.executable, os.path.join(here, "torch_finetune.py"), "--gguf", smol, "--objective", "dpo", "--method", "lora",
               "--batch", "4", "--length", "256", "--steps", "3", "--warmup-steps", "1", "--threads", T], env=ref_env)[0]
    best_o = o if best_o is None or o["steps_per_s"] > best_o["steps_per_s"] else best_o
    best_r = r if best_r is None or r["steps_per_s"] > best_r["steps_per_s"] else best_r
# tok/s (8 rows × 256 per step) so the table's one decimal shows it; the ratio is that of steps/s.
rows.append(("SmolLM2-135M DPO step, LoRA r16 (QLoRA on Q4_1), 4 pairs T256 (tok/s)", best_o["tokens_per_s"], best_r["tokens_per_s"],
             f"torch {best_r['torch']} + peft {best_r['peft']} (goal 1.5x)"))
ft_notes.append(f"DPO LoRA: {best_o['steps_per_s']:.3f} steps/s ours ({best_o['seconds_per_step']:.2f} s/step), {best_r['steps_per_s']:.3f} PyTorch ({best_r['seconds_per_step']:.2f} s/step); "
                f"peak RSS ours {best_o['peak_rss_mb']:.0f} MiB, PyTorch {best_r['peak_rss_mb']:.0f} MiB")
# Memory with gradient checkpointing (--checkpoint-activations: each layer recomputed in the backward
# pass), ours only: what QLoRA needs when activations no longer dominate.
for method in ("lora", "full"):
    c = lines([args.llm, "bench", "finetune", "--model", smol, "--method", method, "--batch", "8", "--length", "256",
               "--steps", "1", "--warmup-steps", "1", "--threads", T, "--checkpoint-activations", "--json"])[0]
    ft_notes.append(f"fine-tune {method} with --checkpoint-activations: peak RSS ours {c['peak_rss_mb']:.0f} MiB, {c['tokens_per_s']:.1f} tok/s")
peft_check = lines([sys.executable, os.path.join(os.path.dirname(here), "scripts", "fixtures", "check_peft.py"), args.llm])[0]
ft_notes.append(f"peft loads our adapter: max |Δlogit| {peft_check['peft_max_diff']:.1e}; transformers loads `llm merge`'s folder: "
                f"{peft_check['merged_max_diff']:.1e}, same tokens: {peft_check['tokenizer_equal']}")

# SmolLM2-135M-Instruct (Q4_1 GGUF) vs llama.cpp built from source (scripts/fetch/llama-cpp.sh): speed, load, memory.
llama = lines([sys.executable, os.path.join(here, "llamacpp.py"), "--llm", args.llm, "--threads", T,
               "--rounds", str(max(1, min(3, args.rounds))), "--json"])[0]
llama_notes = llama.get("notes", [f"llama.cpp comparison skipped: {llama.get('skipped')}"])
rows += [tuple(r) for r in llama.get("rows", [])]
# Gemma 3 270M (Q4_K_M: Q8_0 / Q5_0 / Q4_K / Q6_K blocks, SentencePiece) the same way.
gemma = lines([sys.executable, os.path.join(here, "llamacpp.py"), "--llm", args.llm, "--threads", T,
               "--model", os.path.join(cache, "gemma-3-270m-q4_k_m.gguf"), "--label", "Gemma 3 270M Q4_K_M",
               "--rounds", str(max(1, min(3, args.rounds))), "--json"])[0]
llama_notes += gemma.get("notes", [f"Gemma 3 llama.cpp comparison skipped: {gemma.get('skipped')}"])
rows += [tuple(r) for r in gemma.get("rows", [])]
# SentencePiece encoding (the three test models of the sentencepiece sdist, one thread, botchan.txt × 4
# as one string) vs the sentencepiece library; both sides' ids are hashed and must agree.
sp_dir = os.path.join(cache, "sentencepiece")
subprocess.run(["bash", os.path.join(os.path.dirname(here), "scripts", "fetch", "sentencepiece-tests.sh")], check=True)
for name in ("botchan_en_bpe_1000", "botchan_en_unigram_1000", "kyoto_ja_unigram_8000"):
    model, text = os.path.join(sp_dir, name + ".model"), os.path.join(sp_dir, "botchan.txt")
    o_best, r_best = None, None
    for _ in range(max(1, min(3, args.rounds))):
        o = lines([args.llm, "bench", "sentencepiece", "--model", model, "--text", text, "--json"])[0]
        r = lines([sys.executable, os.path.join(here, "sentencepiece_reference.py"), model, text, "--json"], env=ref_env)[0]
        if o["fnv1a"] != r["fnv1a"] or o["ids"] != r["ids"]:
            sys.exit(f"SentencePiece {name}: our ids differ from the sentencepiece library's ({o['ids']} vs {r['ids']} ids)")
        o_best = o if o_best is None or o["mb_per_s"] > o_best["mb_per_s"] else o_best
        r_best = r if r_best is None or r["mb_per_s"] > r_best["mb_per_s"] else r_best
    rows.append((f"SentencePiece encode {name}, 1 thread (MB/s)", o_best["mb_per_s"], r_best["mb_per_s"], f"sentencepiece {r_best['version']}"))

# Every block format's matrix × vector product (generation's inner loop) vs ggml's own kernels.
quant = lines([sys.executable, os.path.join(here, "quant_kernels.py"), "--llm", args.llm, "--rounds", str(max(1, min(3, args.rounds)))])[0]
llama_notes += quant.get("notes", [f"block-format kernels vs ggml skipped: {quant.get('skipped')}"])
rows += [tuple(r) for r in quant.get("rows", [])]

# Quantization: our files byte for byte llama-quantize's (the script fails otherwise), its speed,
# and llama.cpp running the files we write.
qz = lines([sys.executable, os.path.join(here, "llama_quantize.py"), "--llm", args.llm, "--threads", T,
            "--rounds", str(max(1, min(3, args.rounds))), "--json"])[0]
llama_notes += qz.get("notes", [f"llama-quantize comparison skipped: {qz.get('skipped')}"])
rows += [tuple(r) for r in qz.get("rows", [])]
# The files we write run at the kernels' speed: SmolLM2 requantized to Q4_K_M by `llm quantize`,
# ours vs llama.cpp on that file.
ours_q4km = os.path.join(cache, "quantize", "ours-q4_k_m.gguf")
if os.path.exists(ours_q4km):
    written = lines([sys.executable, os.path.join(here, "llamacpp.py"), "--llm", args.llm, "--threads", T, "--model", ours_q4km,
                     "--label", "SmolLM2-135M Q4_K_M written by llm quantize", "--rounds", str(max(1, min(3, args.rounds))), "--json"])[0]
    llama_notes += written.get("notes", [f"our Q4_K_M file vs llama.cpp skipped: {written.get('skipped')}"])
    rows += [tuple(r) for r in written.get("rows", [])]

print(f"\nthreads: {args.threads}, best of {args.rounds} alternating rounds; our OpenBLAS kernels: {blas_kernels}\n")
print("| work | ours | reference | ratio | reference is |")
print("|---|---:|---:|---:|---|")
for name, o, r, who in rows:
    print(f"| {name} | {o:.1f} | {r:.1f} | {o / r:.2f}x | {who} |")

print("\n" + mpi_note)
for line in serve_notes:
    print(line)
print(f"\nGPT-2 ids on the {os.path.getsize(corpus) / 1e6:.1f} MB corpus vs tiktoken: {identical}")
print(f"BPE training: ours {best_ot['train_seconds']:.2f} s, HF tokenizers {best_rt['hf_train_seconds']:.2f} s")
print(f"compression on held-out text (bytes/token, same vocab size and pattern): ours {best_ot['bytes_per_token']:.4f}, "
      f"HF tokenizers {best_rt['hf_bytes_per_token']:.4f} ({100 * (best_ot['bytes_per_token'] / best_rt['hf_bytes_per_token'] - 1):+.2f} %)")
for line in gpt_rows + ft_notes + llama_notes:
    print(line)
