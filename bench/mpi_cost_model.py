#!/usr/bin/env python3
"""Time per data-parallel training step at many ranks, on paper: a ring all-reduce cost model fed
with figures measured on this machine. Prints README's table (Markdown).

A ring all-reduce of S bytes over N ranks sends each byte around the ring twice (reduce-scatter,
then all-gather), in 2(N-1) steps of S/N bytes:

    t_allreduce = 2(N-1)/N * S / B  +  2(N-1) * alpha        (B: bandwidth of one link, alpha: latency of one step)

Gradients go in buckets of `--bucket-floats` (each bucket is one all-reduce), so the latency term
is paid once per bucket. Compute per step is the measured tokens/s of one rank (this machine, 2
threads, GPT-2 124M) over the tokens each rank handles per step, scaled by 6 x parameters for
other sizes (the matrix work of a forward + backward pass; attention's share ignored).

    python3 bench/mpi_cost_model.py --tok-s 230 --bus-gb-s 2.2 --latency-us 1.2
"""
import argparse

p = argparse.ArgumentParser()
p.add_argument("--tok-s", type=float, required=True, help="training tokens/s of one rank on GPT-2 124M (measured)")
p.add_argument("--bus-gb-s", type=float, required=True, help="all-reduce bus bandwidth, GB/s (measured: llm bench allreduce)")
p.add_argument("--latency-us", type=float, required=True, help="one all-reduce step's latency, µs (measured: a 1-float all-reduce)")
p.add_argument("--tokens-per-rank", type=int, default=1024, help="tokens each rank handles per step (batch × context)")
p.add_argument("--bucket-floats", type=int, default=1 << 20)
p.add_argument("--ranks", default="8,64,512")
args = p.parse_args()

models = [("GPT-2 124M", 124_439_808), ("GPT-2 1.5B", 1_557_611_200)]
B = args.bus_gb_s * 1e9
alpha = args.latency_us * 1e-6
# Effective arithmetic rate of one rank, from the measured rate: 6 × params × tokens/s.
flops = 6 * models[0][1] * args.tok_s

print(f"Inputs: one rank computes {args.tok_s:.0f} tok/s on GPT-2 124M ({flops / 1e9:.0f} GFLOP/s effective), "
      f"bus bandwidth {args.bus_gb_s} GB/s, latency {args.latency_us} µs per ring step, {args.tokens_per_rank} tokens per rank per step, "
      f"buckets of {args.bucket_floats:,} floats.\n")
print("| model | ranks | compute (s) | all-reduce: bandwidth (s) | latency (s) | step, no overlap (s) | step, full overlap (s) | communication share | tokens/s, whole job |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for name, params in models:
    size = 4 * params                                   # float32 gradients
    buckets = -(-params // args.bucket_floats)
    compute = 6 * params * args.tokens_per_rank / flops
    for n in (int(x) for x in args.ranks.split(",")):
        bandwidth = 2 * (n - 1) / n * size / B
        latency = buckets * 2 * (n - 1) * alpha
        comm = bandwidth + latency
        serial, overlapped = compute + comm, max(compute, comm)
        print(f"| {name} | {n} | {compute:.2f} | {bandwidth:.2f} | {latency:.3f} | {serial:.2f} | {overlapped:.2f} | "
              f"{comm / serial:.0%} | {n * args.tokens_per_rank / serial:,.0f} |")

# Where communication overtakes compute: 8·P/B (bandwidth term, N large) against 6·P·T/F gives
# T = 4F / (3B) tokens per rank per step, whatever the model's size.
crossover = 4 * flops / (3 * B)
print(f"\nThe bandwidth term overtakes compute below {crossover:,.0f} tokens per rank per step (4F / 3B: the same for every "
      f"model size, since both grow with the parameter count); the latency term grows with ranks × buckets.")
