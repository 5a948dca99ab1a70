#!/usr/bin/env bash
# Fetch GPT-2's BPE ranks (gpt2.tiktoken: 50256 lines "<base64 token> <rank>") into .cache/.
#
# The file ships inside the openai-whisper source distribution on PyPI; we download that sdist with
# pip, pull out whisper/assets/gpt2.tiktoken and check its sha256. Idempotent: does nothing when the
# cached file already has the right hash. Works from any directory:
#     scripts/fetch/gpt2-tiktoken.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SHA256=306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930
WHISPER=openai-whisper==20250625
MEMBER=whisper/assets/gpt2.tiktoken

DEST="$ROOT/.cache/gpt2.tiktoken"

has_hash "$DEST" "$SHA256" && exit 0
mkdir -p "$ROOT/.cache"
make_tmp

pip download -q --no-deps --no-binary openai-whisper "$WHISPER" -d "$TMP" >&2
SDIST="$(ls "$TMP"/openai_whisper-*.tar.gz)"
# The sdist's top folder is openai_whisper-<version>/; match the member under any top folder.
tar -xzf "$SDIST" -C "$TMP" --wildcards "*/$MEMBER"
SRC="$(ls "$TMP"/*/"$MEMBER")"

check_hash "$SRC" "$SHA256" "$MEMBER from $WHISPER"
install_file "$SRC" "$DEST"
echo "fetched $DEST ($(wc -l < "$DEST") ranks, sha256 ${SHA256:0:16}...)"
