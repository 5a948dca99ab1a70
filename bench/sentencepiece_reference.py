#!/usr/bin/env python3
"""Times the `sentencepiece` library's encode on one text, single-threaded, for comparison with
SentencePieceTokenizer. Usage:
    python3 bench/sentencepiece_reference.py MODEL TEXT_FILE [REPEAT] [--json]
The text is the file repeated REPEAT times (default 4), encoded as one string; prints the best of
7 runs and an FNV-1a hash of the ids (to check both sides produced the same ids).
"""
import sys
import time

import sentencepiece as spm

model, path = [a for a in sys.argv[1:] if not a.startswith("--")][:2]
positional = [a for a in sys.argv[1:] if not a.startswith("--")]
repeat = int(positional[2]) if len(positional) > 2 else 4
text = open(path, encoding="utf-8", newline="").read() * repeat
sp = spm.SentencePieceProcessor(model_file=model, num_threads=1)
best = float("inf")
for _ in range(7):
    t0 = time.perf_counter()
    ids = sp.encode(text)
    best = min(best, time.perf_counter() - t0)
size = len(text.encode())
digest = 0xcbf29ce484222325
for i in ids:
    digest = ((digest ^ i) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
if "--json" in sys.argv:
    import json
    print(json.dumps({"version": spm.__version__, "bytes": size, "ids": len(ids), "seconds": best,
                      "mb_per_s": size / best / 1e6, "fnv1a": f"{digest:016x}"}))
else:
    print(f"sentencepiece {spm.__version__}: {size} bytes -> {len(ids)} ids in {best * 1000:.1f} ms: {size / best / 1e6:.2f} MB/s (ids FNV-1a {digest:016x})")
