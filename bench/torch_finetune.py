"""PyTorch reference for fine-tuning speed: SmolLM2-135M-Instruct from its GGUF file (dequantized
to float32 by transformers' GGUF loader into a plain LlamaForCausalLM with tied embeddings, SDPA
attention, CPU), trained either with LoRA adapters (peft) on every attention and MLP projection
or in full (all parameters), with AdamW (lr 1e-4, no weight decay) over the trainable parameters.
Input: one fixed batch of random token ids, labels = the same ids (the model shifts them).
With --objective dpo, --batch counts preference pairs: 2·batch rows of --length ids, the chosen
rows first, pair p's two rows sharing their first half (the prompt); the DPO loss (beta 0.1,
answer log-probabilities summed over the second halves) against reference log-probabilities
computed once, before timing, with the adapters switched off (LoRA) or by the starting weights.
`--warmup-steps` untimed steps, then `--steps` timed ones (forward, backward, step, zero_grad).
Prints one JSON line; peak_rss_mb is the process peak (ru_maxrss), so it also covers loading,
whose own peak is load_peak_rss_mb.
  python3 bench/torch_finetune.py --method lora|full [--objective sft|dpo] [--batch 8 --length 256 --rank 16 --alpha 32
                                  --steps 4 --warmup-steps 1 --threads 2 --seed 0 --gguf PATH]"""
import argparse, json, os, resource, sys, time, warnings
os.environ.setdefault("TQDM_DISABLE", "1")  # the GGUF dequantizer's progress bar
warnings.filterwarnings("ignore", category=FutureWarning)
import torch
import transformers
from transformers import LlamaForCausalLM

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]

def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # ru_maxrss is KiB on Linux

ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
ap.add_argument("--gguf", default=os.path.join(ROOT, ".cache", "SmolLM2-135M-Instruct.Q4_1.gguf"))
ap.add_argument("--method", choices=["lora", "full"], required=True)
ap.add_argument("--objective", choices=["sft", "dpo"], default="sft")
ap.add_argument("--batch", type=int, default=8)
ap.add_argument("--length", type=int, default=256)
ap.add_argument("--rank", type=int, default=16)
ap.add_argument("--alpha", type=float, default=32)
ap.add_argument("--steps", type=int, default=4)
ap.add_argument("--warmup-steps", type=int, default=1)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--seed", type=int, default=0)
args = ap.parse_args()
if args.steps < 1 or args.warmup_steps < 0:
    sys.exit("error: need --steps >= 1 and --warmup-steps >= 0")
if not os.path.isfile(args.gguf):
    sys.exit(f"error: {args.gguf} not found (scripts/fetch/smollm2.sh fetches the default)")

torch.set_num_threads(args.threads)
torch.manual_seed(args.seed)  # LoRA initialization and dropout masks
transformers.utils.logging.set_verbosity_error()
transformers.utils.logging.disable_progress_bar()

gguf = os.path.abspath(args.gguf)
model = LlamaForCausalLM.from_pretrained(os.path.dirname(gguf), gguf_file=os.path.basename(gguf),
                                         dtype=torch.float32)
assert model.lm_head.weight is model.model.embed_tokens.weight, "expected tied embeddings"
load_peak = peak_rss_mb()

peft_version = None
if args.method == "lora":
    import peft
    peft_version = peft.__version__
    config = peft.LoraConfig(r=args.rank, lora_alpha=args.alpha, lora_dropout=0.05,
                             target_modules=LORA_TARGETS, bias="none", task_type="CAUSAL_LM")
    model = peft.get_peft_model(model, config)
else:
    for p in model.parameters():
        p.requires_grad_(True)
model.train()

params = list(model.parameters())  # shared (tied) tensors are listed once
trainable = [p for p in params if p.requires_grad]
opt = torch.optim.AdamW(trainable, lr=1e-4, weight_decay=0.0)

gen = torch.Generator().manual_seed(args.seed)
ids = torch.randint(0, model.config.vocab_size, (args.batch, args.length), generator=gen)

rows = args.batch
if args.objective == "dpo":
    half = args.length // 2
    rejected = torch.randint(0, model.config.vocab_size, (args.batch, args.length), generator=gen)
    rejected[:, :half] = ids[:, :half]
    ids = torch.cat([ids, rejected])                      # (2B, T): chosen rows, then rejected
    answer = torch.zeros_like(ids, dtype=torch.bool)
    answer[:, half:] = True
    rows = 2 * args.batch

    def answer_logps():
        logits = model(input_ids=ids, use_cache=False).logits[:, :-1]
        lp = torch.log_softmax(logits, -1).gather(-1, ids[:, 1:, None]).squeeze(-1)
        return (lp * answer[:, 1:]).sum(-1)

    model.eval()
    with torch.no_grad():
        if args.method == "lora":
            with model.disable_adapter():
                reference = answer_logps()
        else:
            reference = answer_logps()
    model.train()


def loss_of_batch():
    if args.objective == "sft":
        return model(input_ids=ids, labels=ids, use_cache=False).loss
    pi = answer_logps()
    b = args.batch
    margin = (pi[:b] - reference[:b]) - (pi[b:] - reference[b:])
    return -torch.nn.functional.logsigmoid(0.1 * margin).mean()


def step():
    loss = loss_of_batch()
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    return loss.item()

for _ in range(args.warmup_steps):
    step()
t0 = time.perf_counter()
for _ in range(args.steps):
    loss = step()
seconds = time.perf_counter() - t0

print(json.dumps({
    "tokens_per_s": rows * args.length * args.steps / seconds,
    "steps_per_s": args.steps / seconds,
    "objective": args.objective,
    "seconds_per_step": seconds / args.steps,
    "peak_rss_mb": peak_rss_mb(),
    "load_peak_rss_mb": load_peak,
    "trainable": sum(p.numel() for p in trainable),
    "total": sum(p.numel() for p in params),
    "loss": loss,
    "method": args.method,
    "batch": args.batch, "length": args.length, "steps": args.steps, "threads": args.threads,
    "torch": torch.__version__,
    "peft": peft_version,
}))
