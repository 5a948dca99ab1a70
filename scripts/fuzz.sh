#!/usr/bin/env bash
# make fuzz: every reader under libFuzzer, a bounded number of executions (and seconds) each.
#
#   FUZZ_RUNS=1000000 FUZZ_SECONDS=600 FUZZ_TARGETS="gguf safetensors" bash scripts/fuzz.sh
#
# Seeds come from our own writers (llm-fuzz seeds); the corpus grows in .build/fuzz/corpus/<target>
# and is kept between runs. A crash, hang (-timeout) or large allocation (-malloc_limit_mb) leaves
# the input in .build/fuzz/findings/<target>/; once fixed, commit it under Tests/Fuzz/<target>/,
# where `make test` replays it. The counts reached go to .build/fuzz/results.json.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${FUZZ_RUNS:-1000000}
SECONDS_EACH=${FUZZ_SECONDS:-1800}
FLAGS=(-c release -Xswiftc -target-cpu -Xswiftc native)
FUZZER=.build/fuzz/release/llm-fuzz

swift build "${FLAGS[@]}" --product llm-fuzz
# The libFuzzer build: coverage instrumentation on every module, libFuzzer's main, in its own folder.
swift build "${FLAGS[@]}" --product llm-fuzz --scratch-path .build/fuzz \
    -Xswiftc -sanitize=fuzzer -Xswiftc -DLIBFUZZER

rm -rf .build/fuzz/seeds
.build/release/llm-fuzz seeds .build/fuzz/seeds
# The slowest (a model load per input) first, so that two jobs finish together.
all=$(.build/release/llm-fuzz targets)
TARGETS=${FUZZ_TARGETS:-$(echo gguf adapter $(for t in $all; do [ "$t" = gguf ] || [ "$t" = adapter ] || echo $t; done))}

JOBS=${FUZZ_JOBS:-$(nproc)}
mkdir -p .build/fuzz/stats
rm -f .build/fuzz/stats/*

# One target: its corpus (seeds, committed findings, what earlier runs found), a bounded run.
fuzz_one() {
    local t=$1 corpus=.build/fuzz/corpus/$1 findings=.build/fuzz/findings/$1 log=.build/fuzz/$1.log
    mkdir -p "$corpus" "$findings"
    cp .build/fuzz/seeds/$t/* "$corpus/"
    if [ -d Tests/Fuzz/$t ]; then cp Tests/Fuzz/$t/* "$corpus/" 2>/dev/null || true; fi
    # The Swift runtime's backtracer would catch a trap first; libFuzzer must, to keep the input.
    SWIFT_BACKTRACE=enable=no LLM_FUZZ_TARGET=$t "$FUZZER" -runs="$RUNS" -max_total_time="$SECONDS_EACH" -timeout=10 \
        -rss_limit_mb=4096 -malloc_limit_mb=1024 -max_len=65536 -print_final_stats=1 \
        -artifact_prefix="$findings/" "$corpus" > "$log" 2>&1
    local rc=$?
    local runs secs found
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    secs=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    found=$(ls "$findings" | wc -l)
    echo "  $t: ${runs:-?} executions (${secs:-?}/s), exit $rc, $found finding(s) in $findings"
    printf '"%s": {"executions": %s, "per_second": %s, "exit": %s, "findings": %s}' \
        "$t" "${runs:-0}" "${secs:-0}" "$rc" "$found" > .build/fuzz/stats/$t.json
}

echo "fuzzing $(echo $TARGETS | wc -w) targets, $JOBS at a time: up to $RUNS executions or $SECONDS_EACH s each"
for t in $TARGETS; do
    while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do sleep 1; done
    fuzz_one "$t" &
done
wait

results=.build/fuzz/results.json
{ echo "{"; first=1
  for t in $TARGETS; do [ $first -eq 1 ] || echo ","; first=0; printf '  '; cat .build/fuzz/stats/$t.json; done
  printf '\n}\n'; } > "$results.tmp"
mv "$results.tmp" "$results"
echo "results in $results"
status=0
for t in $TARGETS; do
    if grep -q '"exit": [1-9]\|"findings": [1-9]' .build/fuzz/stats/$t.json; then status=1; echo "finding in $t: see .build/fuzz/$t.log"; fi
done
exit $status
