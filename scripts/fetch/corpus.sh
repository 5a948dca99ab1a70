#!/usr/bin/env bash
# Assemble a real-text corpus (~13.6 MB of UTF-8) from Debian packages into .cache/:
#   corpus.txt          fortune cookies (packages fortunes, fortunes-min: every data file in
#                       /usr/share/games/fortunes, no .dat indexes or .u8 links, "%" separator
#                       lines turned into blank lines), then Python 3.11's reST documentation
#                       sources (python3.11-doc: /usr/share/doc/python3.11/html/_sources/**.txt).
#                       Files in byte-sorted path order, each ending in "\n", joined by one "\n".
#   corpus-5mb.txt      the first 5,000,000 bytes, cut back to the last line end (training).
#   corpus-heldout.txt  the last ~1,000,000 bytes, starting at a line start (compression checks);
#                       it never overlaps corpus-5mb.txt.
# Missing packages are installed with apt-get. Files are written under temp names and renamed.
# Idempotent: does nothing when corpus.txt exists with at least 10 MB. Rerun from anywhere:
#     scripts/fetch/corpus.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CACHE="$ROOT/.cache"
FORTUNES=/usr/share/games/fortunes
PYDOC=/usr/share/doc/python3.11/html/_sources
MIN_BYTES=10000000

if [[ -f "$CACHE/corpus.txt" && $(stat -c %s "$CACHE/corpus.txt") -ge $MIN_BYTES \
      && -f "$CACHE/corpus-5mb.txt" && -f "$CACHE/corpus-heldout.txt" ]]; then
    exit 0
fi

missing=()
for pkg in fortunes fortunes-min python3.11-doc; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if (( ${#missing[@]} )); then
    echo "installing ${missing[*]}" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

mkdir -p "$CACHE"
{
    find "$FORTUNES" -maxdepth 1 -type f ! -name '*.dat' | LC_ALL=C sort
    find "$PYDOC" -type f -name '*.txt' | LC_ALL=C sort
} > "$CACHE/corpus-files.tmp.$$"

python3 - "$CACHE" "$CACHE/corpus-files.tmp.$$" "$MIN_BYTES" <<'EOF'
import os, sys

cache, listing, min_bytes = sys.argv[1], sys.argv[2], int(sys.argv[3])
parts = []
for path in open(listing).read().split("\n"):
    if not path:
        continue
    try:
        text = open(path, "rb").read().decode("utf-8")     # strict: invalid files are dropped
    except UnicodeDecodeError:
        print(f"skipping {path}: not valid UTF-8", file=sys.stderr)
        continue
    if path.startswith("/usr/share/games/fortunes/"):
        text = "\n".join("" if line == "%" else line for line in text.split("\n"))
    parts.append(text if text.endswith("\n") else text + "\n")
corpus = "\n".join(parts).encode("utf-8")
if len(corpus) < min_bytes:
    sys.exit(f"error: corpus is only {len(corpus)} bytes (< {min_bytes})")

train_end = corpus.rfind(b"\n", 0, 5_000_000) + 1
heldout_start = corpus.find(b"\n", len(corpus) - 1_000_000) + 1
assert train_end <= heldout_start

def write(name, data):
    data.decode("utf-8")                                    # every cut is at a "\n"
    tmp = os.path.join(cache, f"{name}.tmp.{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, os.path.join(cache, name))
    print(f"wrote .cache/{name}: {len(data):,} bytes")

write("corpus-5mb.txt", corpus[:train_end])
write("corpus-heldout.txt", corpus[heldout_start:])
write("corpus.txt", corpus)                                 # last: its presence means "done"
EOF
rm -f "$CACHE/corpus-files.tmp.$$"
