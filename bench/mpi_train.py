#!/usr/bin/env python3
"""Data-parallel training on one machine: `mpirun -np 2 llm train --threads 1 --batch B/2` against
`llm train --threads 2 --batch B`, the same model, data and global batch (so the same losses),
alternating; tokens per second from each run's log.jsonl (steps after the first few), peak memory
of each process from /usr/bin/time. Prints one JSON line.

    python3 bench/mpi_train.py --llm .build/release/llm --data .cache/corpus-5mb.txt
"""
import argparse, json, os, shutil, subprocess, tempfile

p = argparse.ArgumentParser()
p.add_argument("--llm", default=".build/release/llm")
p.add_argument("--data", required=True)
p.add_argument("--config", default="small")
p.add_argument("--batch", type=int, default=8, help="global batch (windows per step)")
p.add_argument("--context", type=int, default=256)
p.add_argument("--steps", type=int, default=16)
p.add_argument("--skip", type=int, default=4, help="first steps left out of the rate")
p.add_argument("--rounds", type=int, default=2)
p.add_argument("--shard-optimizer", action="store_true", help="the ranks shard AdamW's moments (ZeRO stage 1)")
args = p.parse_args()

env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMPI_MCA_btl="self,vader",
           OMPI_MCA_rmaps_base_oversubscribe="1")
work = tempfile.mkdtemp(prefix="llm-mpi-bench-")
# One token file for every run, so tokenizing is not timed and both read the same windows.
tokens = os.path.join(work, "data.tok")
subprocess.run([args.llm, "prepare", "--input", args.data, "--tokenizer", "gpt2", "--out", tokens], check=True, capture_output=True)


def run(ranks, name):
    out = os.path.join(work, name)
    shutil.rmtree(out, ignore_errors=True)
    train = [args.llm, "train", "--data", tokens, "--tokenizer", "gpt2", "--config", args.config, "--context", str(args.context),
             "--batch", str(args.batch // ranks), "--steps", str(args.steps), "--eval-every", "0", "--threads", str(2 // ranks),
             "--out", out] + (["--shard-optimizer"] if args.shard_optimizer and ranks > 1 else [])
    # Each rank's own peak resident memory (time wraps every rank, inside mpirun).
    timed_train = ["/usr/bin/time", "-f", "peak_rss_kib %M"] + train
    cmd = ["mpirun", "-np", str(ranks)] + timed_train if ranks > 1 else timed_train
    r = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
    rss = [int(l.split()[1]) / 1024 for l in r.stderr.splitlines() if l.startswith("peak_rss_kib ")]
    steps = [json.loads(l) for l in open(os.path.join(out, "log.jsonl"))]
    timed = steps[args.skip:]
    tok_s = sum(args.batch * args.context for _ in timed) / sum(s["seconds"] for s in timed)
    return tok_s, [s["loss"] for s in steps], rss


best = {}
for _ in range(args.rounds):
    for ranks in (1, 2):
        tok_s, losses, rss = run(ranks, f"r{ranks}")
        if ranks not in best or tok_s > best[ranks][0]:
            best[ranks] = (tok_s, losses, rss)
same = max(abs(a - b) / abs(a) for a, b in zip(best[1][1], best[2][1]))
print(json.dumps({"one_tok_s": best[1][0], "two_tok_s": best[2][0], "largest_loss_difference": same,
                  "one_peak_rss_mib": max(best[1][2]), "mpirun_peak_rss_mib": max(best[2][2]), "rank_peak_rss_mib": best[2][2]}))
shutil.rmtree(work, ignore_errors=True)
