"""PyTorch reference for `llm bench block`: forward + backward of one GPT-2 transformer block
(pre-LayerNorm, fused causal SDPA, GELU-tanh MLP), fp32 on CPU, the same sizes and thread count."""
import json, sys, time
import torch
import torch.nn as nn
import torch.nn.functional as F

batch, context, emb, heads, threads = (int(a) for a in sys.argv[1:6])
seconds = float(sys.argv[6])
torch.set_num_threads(threads)
torch.manual_seed(0)

class Block(nn.Module):
    def __init__(self, c, nh):
        super().__init__()
        self.nh = nh
        self.ln1, self.ln2 = nn.LayerNorm(c), nn.LayerNorm(c)
        self.qkv, self.proj = nn.Linear(c, 3 * c), nn.Linear(c, c)
        self.fc, self.fc_proj = nn.Linear(c, 4 * c), nn.Linear(4 * c, c)

    def forward(self, x):
        b, t, c = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(c, dim=2)
        q, k, v = (z.view(b, t, self.nh, c // self.nh).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(b, t, c)
        x = x + self.proj(y)
        return x + self.fc_proj(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))

block = Block(emb, heads)
x = torch.randn(batch, context, emb, requires_grad=True)
g = torch.randn(batch, context, emb)

def step():
    block.zero_grad(set_to_none=True); x.grad = None
    block(x).backward(g)

step()
best, end = float("inf"), time.perf_counter() + seconds
while time.perf_counter() < end:
    t0 = time.perf_counter(); step(); best = min(best, time.perf_counter() - t0)
print(json.dumps({"ms": best * 1000, "tokens_per_s": batch * context / best, "torch": torch.__version__}))
