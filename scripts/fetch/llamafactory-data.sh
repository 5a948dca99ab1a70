#!/usr/bin/env bash
# Fetch three small fine-tuning data sets from LLaMA-Factory into .cache/llamafactory/:
#   alpaca_en_demo.json  999 records (860 KB): a JSON array of {"instruction", "input", "output"}
#                        strings (input is "" in 587 of them; outputs contain "\n").
#   identity.json        91 records (20 KB), same keys, input always "": "who are you" style
#                        prompts (16 English, 75 Chinese) whose outputs hold the placeholders
#                        {{name}} and {{author}}, meant to be replaced before training.
#   dpo_en_demo.json     300 preference pairs (1.6 MB) in ShareGPT form: {"conversations":
#                        [{"from": "human"|"gpt"|"system", "value"}, ...], "chosen": {"from": "gpt",
#                        "value"}, "rejected": {...}}; 114 single-turn, 80 with a system turn,
#                        106 multi-turn.
# Both come from the sdist llamafactory==0.9.5 on PyPI (llamafactory-0.9.5/data/*.json); we
# download it with pip (--no-binary for that package only, so pip does not build anything but
# its metadata), extract the members and check each sha256. Idempotent: does nothing when
# every cached file have the right hash. Works from any directory:
#     scripts/fetch/llamafactory-data.sh
set -euo pipefail

SDIST=llamafactory==0.9.5
PREFIX=llamafactory-0.9.5/data
declare -A SHA256=(
    [alpaca_en_demo.json]=bcc37c64db1a739a0789a1b81f251146fcf4459f903474bc9e3c21bbb5628318
    [identity.json]=fd029da7dd3df283ed034c82375d16d125a7b07cf1cb0316d03fb8743057d5f2
    [dpo_en_demo.json]=b949be2421cfa62744afcf1b479f95b299d643d1a4c1c97d1341b314a1aa5cb3
)

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DIR="$ROOT/.cache/llamafactory"

sha_of() { sha256sum "$1" | cut -d' ' -f1; }

todo=()
for name in "${!SHA256[@]}"; do
    [[ -f "$DIR/$name" && "$(sha_of "$DIR/$name")" == "${SHA256[$name]}" ]] || todo+=("$name")
done
if (( ${#todo[@]} == 0 )); then
    exit 0
fi

mkdir -p "$DIR"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

pip download -q --no-deps --no-binary llamafactory "$SDIST" -d "$TMP" >&2
TGZ="$(ls "$TMP"/llamafactory-*.tar.gz)"
members=()
for name in "${todo[@]}"; do members+=("$PREFIX/$name"); done
tar -xzf "$TGZ" -C "$TMP" "${members[@]}"

for name in "${todo[@]}"; do
    GOT="$(sha_of "$TMP/$PREFIX/$name")"
    if [[ "$GOT" != "${SHA256[$name]}" ]]; then
        echo "error: $PREFIX/$name from $SDIST has sha256 $GOT, expected ${SHA256[$name]}" >&2
        exit 1
    fi
done
for name in "${todo[@]}"; do
    mv "$TMP/$PREFIX/$name" "$DIR/$name.tmp.$$"
    mv "$DIR/$name.tmp.$$" "$DIR/$name"
    echo "fetched $DIR/$name ($(du -k "$DIR/$name" | cut -f1) KiB, sha256 ${SHA256[$name]:0:16}...)"
done
