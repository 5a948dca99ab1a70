"""PyTorch reference for `llm bench train` and `llm bench generate`: the same GPT-2 architecture
(Hugging Face GPT2LMHeadModel, SDPA attention, tied embeddings, fp32, CPU) at the same sizes and
thread count. Prints one JSON line.
  python3 bench/torch_gpt.py train CONFIG BATCH CONTEXT STEPS THREADS
  python3 bench/torch_gpt.py generate CONFIG PROMPT TOKENS THREADS"""
import json, resource, sys, time
import torch
from transformers import GPT2Config, GPT2LMHeadModel

PRESETS = {"gpt2": (768, 12, 12, 1024), "tiny": (256, 4, 4, 256), "small": (192, 4, 6, 128)}
mode, name = sys.argv[1], sys.argv[2]
emb, layers, heads, ctx = PRESETS[name]

def model(context):
    cfg = GPT2Config(vocab_size=50257, n_positions=max(ctx, context), n_embd=emb, n_layer=layers, n_head=heads,
                     resid_pdrop=0, embd_pdrop=0, attn_pdrop=0, activation_function="gelu_new")
    torch.manual_seed(0)
    cfg._attn_implementation = "sdpa"
    return GPT2LMHeadModel(cfg)

if mode == "train":
    batch, context, steps, threads = map(int, sys.argv[3:7])
    torch.set_num_threads(threads)
    m = model(context).train()
    opt = torch.optim.AdamW(m.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.1)
    def step():
        x = torch.randint(0, 50257, (batch, context)); y = torch.randint(0, 50257, (batch, context))
        logits = m(x).logits
        loss = torch.nn.functional.cross_entropy(logits.view(-1, logits.size(-1)), y.view(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        opt.step(); opt.zero_grad(set_to_none=True)
    step()
    best = float("inf")
    for _ in range(steps):
        t0 = time.perf_counter(); step(); best = min(best, time.perf_counter() - t0)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"tokens_per_s": batch * context / best, "peak_rss_mb": rss, "torch": torch.__version__}))
else:
    prompt, tokens, threads = map(int, sys.argv[3:6])
    torch.set_num_threads(threads)
    m = model(1).eval()
    ids = torch.tensor([[i * 37 % 50257 for i in range(prompt)]])
    with torch.no_grad():
        m.generate(ids, max_new_tokens=4, do_sample=False, pad_token_id=0)
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            out = m.generate(ids, max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False, use_cache=True, pad_token_id=0)
            best = min(best, time.perf_counter() - t0)
    print(json.dumps({"tokens_per_s": tokens / best, "torch": torch.__version__}))
