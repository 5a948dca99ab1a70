#!/usr/bin/env bash
# Fetch the test models of the `sentencepiece` library into .cache/sentencepiece/, for the
# SentencePiece parity tests (Tests/TokenizationTests/SentencePieceTests.swift):
#   botchan_en_bpe_1000.model       BPE, 1,000 pieces, English (nmt_nfkc normalizer)
#   botchan_en_unigram_1000.model   Unigram, 1,000 pieces, English
#   kyoto_ja_unigram_8000.model     Unigram, 8,000 pieces, Japanese
#   botchan.txt                     the English text they were trained on (for benchmarks)
# They come from the PyPI sdist sentencepiece==0.2.3 (test/*), downloaded with pip and checked
# against its sha256, then each member against its own. Apache License 2.0 (the sdist's PKG-INFO).
# Idempotent: does nothing when every file already has its hash. Files are written under temp
# names and renamed. Works from any directory:
#     scripts/fetch/sentencepiece-tests.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SDIST=sentencepiece==0.2.3
SDIST_SHA256=21618ad31f0453a1ebf5ec58defed99758d54af0b670546ecac639ddd8b86fbd
FILES=(
    "botchan_en_bpe_1000.model c8636a43e913dad9d5eb5d2eee2077706a55589fd2d6caf1e7ee4a7d03e4360a"
    "botchan_en_unigram_1000.model f8c7e5e0fa9e948783d20ea9dccf0e2611f567bc1a4e468a658becd5015f458e"
    "kyoto_ja_unigram_8000.model e39551e7ab937745b25edf55a7399d3c78948fda1dabca6b1781df2fcec67f65"
    "botchan.txt 464bd5300c24fce16fcc4555d4231a57632caae4d0090ad6aa92854a3b227ba7"
)

DIR="$ROOT/.cache/sentencepiece"

all_there=1
for entry in "${FILES[@]}"; do
    read -r name sha <<<"$entry"
    has_hash "$DIR/$name" "$sha" || all_there=0
done
[[ $all_there == 1 ]] && exit 0

mkdir -p "$DIR"
make_tmp

# --no-binary for this package only: pip still prepares the sdist's metadata, and with :all: it
# would build its build tools (cmake, ninja) from source first, minutes on 2 cores.
pip download -q --no-deps --no-binary sentencepiece "$SDIST" -d "$TMP" >&2
TARBALL="$(ls "$TMP"/sentencepiece-*.tar.gz)"
check_hash "$TARBALL" "$SDIST_SHA256" "$(basename "$TARBALL") ($SDIST)"
for entry in "${FILES[@]}"; do
    read -r name sha <<<"$entry"
    tar -xzf "$TARBALL" -C "$TMP" "sentencepiece-0.2.3/test/$name"
    check_hash "$TMP/sentencepiece-0.2.3/test/$name" "$sha" "test/$name from $SDIST"
    install_file "$TMP/sentencepiece-0.2.3/test/$name" "$DIR/$name"
done
echo "fetched ${#FILES[@]} files of $SDIST into $DIR"
