#!/usr/bin/env python3
"""Reference side of the tokenizer benchmark: tiktoken (GPT-2) and Hugging Face `tokenizers`.

Prints one JSON object on stdout (progress goes to stderr):
  tiktoken_version, tokenizers_version, threads (2),
  encode_mb_per_s         tiktoken encode_ordinary, one call per document, one thread, best of 3
  batch_mb_per_s_1thread  encode_ordinary_batch(docs, num_threads=1), best of 3
  decode_mb_per_s         decode_bytes(ids of each document), best of 3, MB of decoded bytes
  tokens, sha256_ids      total GPT-2 token count, and sha256 of all ids of all documents
                          concatenated as little-endian uint32 (also written raw to --ids)
  documents, corpus_bytes how many documents the split gave and their total UTF-8 bytes
  hf_train_seconds        HF BPE training on --train, best of 2 (RAYON_NUM_THREADS=2)
  hf_bytes_per_token      the HF tokenizer's UTF-8 bytes per token on --heldout
MB = 1e6 bytes of UTF-8 (input bytes for encoding, output bytes for decoding).

Document rule (both sides must use it): scan the file's bytes left to right and cut just after
every non-overlapping "\\n\\n"; the separator stays at the end of its document, a final empty
piece is dropped. So "a\\n\\n\\nb\\n\\n" -> ["a\\n\\n", "\\nb\\n\\n"] and the documents concatenate
back to the exact file. The same rule splits --corpus, --train and --heldout.

HF tokenizer: models.BPE with a ByteLevel pre-tokenizer (add_prefix_space=False, use_regex=True,
i.e. GPT-2's split pattern) and ByteLevel decoder; BpeTrainer(vocab_size=--vocab, min_frequency=0
(no threshold: merge until the vocabulary is full), initial_alphabet=ByteLevel.alphabet() (256),
special_tokens=["<|endoftext|>"]), so the vocabulary holds 256 bytes + 1 special + the merges;
trained with train_from_iterator over the documents of --train.

Rerun from the repository root (scripts/fetch/corpus.sh makes the corpus files):
    python3 bench/tokenizer_reference.py --corpus .cache/corpus.txt --train .cache/corpus-5mb.txt \\
        --heldout .cache/corpus-heldout.txt --vocab 4096
"""
import os
os.environ["RAYON_NUM_THREADS"] = "2"      # must be set before tokenizers (Rust rayon) loads
THREADS = 2

import argparse  # noqa: E402
import array  # noqa: E402
import hashlib  # noqa: E402
import importlib  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
EOT = "<|endoftext|>"


def need(module, package):
    try:
        return importlib.import_module(module)
    except ImportError:
        subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", package], stdout=sys.stderr)
        return importlib.import_module(module)


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def documents(path):
    """The document rule above, on the file's text (cutting at "\\n\\n" is the same on bytes)."""
    text = open(path, "rb").read().decode("utf-8")
    docs, start = [], 0
    while (cut := text.find("\n\n", start)) != -1:
        docs.append(text[start:cut + 2])
        start = cut + 2
    if start < len(text):
        docs.append(text[start:])
    return docs


def best_of(runs, fn):
    best = float("inf")
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def gpt2_encoding(tiktoken):
    subprocess.check_call([os.path.join(ROOT, "scripts", "fetch", "gpt2-tiktoken.sh")], stdout=sys.stderr)
    ranks = tiktoken.load.load_tiktoken_bpe(os.path.join(ROOT, ".cache", "gpt2.tiktoken"))
    return tiktoken.Encoding("gpt2-from-file", pat_str=GPT2_PATTERN, mergeable_ranks=ranks,
                             special_tokens={EOT: 50256})


def bench_tiktoken(tiktoken, docs, ids_path):
    enc = gpt2_encoding(tiktoken)
    in_mb = sum(len(d.encode("utf-8")) for d in docs) / 1e6

    ids = [enc.encode_ordinary(d) for d in docs]                       # warm-up and reference ids
    encode_s = best_of(3, lambda: [enc.encode_ordinary(d) for d in docs])
    log(f"tiktoken encode: {in_mb / encode_s:.2f} MB/s")
    batch_s = best_of(3, lambda: enc.encode_ordinary_batch(docs, num_threads=1))
    log(f"tiktoken batch (1 thread): {in_mb / batch_s:.2f} MB/s")
    assert enc.encode_ordinary_batch(docs, num_threads=1) == ids

    decoded = [enc.decode_bytes(i) for i in ids]
    assert b"".join(decoded) == "".join(docs).encode("utf-8")
    out_mb = sum(len(b) for b in decoded) / 1e6
    decode_s = best_of(3, lambda: [enc.decode_bytes(i) for i in ids])
    log(f"tiktoken decode: {out_mb / decode_s:.2f} MB/s")

    flat = array.array("I", (t for i in ids for t in i))
    if sys.byteorder == "big":
        flat.byteswap()
    raw = flat.tobytes()                                                # little-endian uint32
    tmp = f"{ids_path}.tmp.{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(raw)
    os.replace(tmp, ids_path)
    return {
        "encode_mb_per_s": in_mb / encode_s,
        "batch_mb_per_s_1thread": in_mb / batch_s,
        "decode_mb_per_s": out_mb / decode_s,
        "tokens": len(raw) // 4,
        "sha256_ids": hashlib.sha256(raw).hexdigest(),
        "documents": len(docs),
        "corpus_bytes": round(in_mb * 1e6),
    }


def bench_hf(tokenizers, train_docs, heldout_docs, vocab):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    def train():
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab, min_frequency=0, show_progress=False,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                      special_tokens=[EOT])
        tok.train_from_iterator(train_docs, trainer=trainer)
        return tok

    best, tok = float("inf"), None
    for _ in range(2):
        t0 = time.perf_counter()
        tok = train()
        best = min(best, time.perf_counter() - t0)
    log(f"HF train: {best:.2f} s, vocabulary {tok.get_vocab_size()}")

    n_tokens = sum(len(e.ids) for e in tok.encode_batch(heldout_docs, add_special_tokens=False))
    n_bytes = sum(len(d.encode("utf-8")) for d in heldout_docs)
    log(f"HF held-out: {n_bytes / n_tokens:.3f} bytes/token")
    return {"hf_train_seconds": best, "hf_bytes_per_token": n_bytes / n_tokens}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--corpus", required=True)
    p.add_argument("--train", required=True)
    p.add_argument("--heldout", required=True)
    p.add_argument("--vocab", type=int, default=4096)
    p.add_argument("--ids", default=os.path.join(ROOT, ".cache", "corpus.tiktoken-ids.u32"))
    args = p.parse_args()

    need("regex", "regex")
    tiktoken = need("tiktoken", "tiktoken")
    import tiktoken.load  # noqa: F401
    tokenizers = need("tokenizers", "tokenizers")

    docs = documents(args.corpus)
    log(f"{len(docs)} documents")
    result = {"tiktoken_version": tiktoken.__version__, "tokenizers_version": tokenizers.__version__,
              "threads": THREADS}
    result.update(bench_tiktoken(tiktoken, docs, args.ids))
    result.update(bench_hf(tokenizers, documents(args.train), documents(args.heldout), args.vocab))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
