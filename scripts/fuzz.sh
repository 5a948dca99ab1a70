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
SECONDS_EACH=${FUZZ_SECONDS:-900}
FLAGS=(-c release -Xswiftc -target-cpu -Xswiftc native)
FUZZER=.build/fuzz/release/llm-fuzz

swift build "${FLAGS[@]}" --product llm-fuzz
# The libFuzzer build: coverage instrumentation on every module, libFuzzer's main, in its own folder.
swift build "${FLAGS[@]}" --product llm-fuzz --scratch-path .build/fuzz \
    -Xswiftc -sanitize=fuzzer -Xswiftc -DLIBFUZZER

rm -rf .build/fuzz/seeds
.build/release/llm-fuzz seeds .build/fuzz/seeds
TARGETS=${FUZZ_TARGETS:-$(.build/release/llm-fuzz targets)}

results=.build/fuzz/results.json
echo "{" > "$results.tmp"
first=1
status=0
for t in $TARGETS; do
    corpus=.build/fuzz/corpus/$t findings=.build/fuzz/findings/$t
    mkdir -p "$corpus" "$findings"
    cp .build/fuzz/seeds/$t/* "$corpus/"
    [ -d Tests/Fuzz/$t ] && cp Tests/Fuzz/$t/* "$corpus/" 2>/dev/null || true
    log=.build/fuzz/$t.log
    echo "fuzzing $t: up to $RUNS executions or $SECONDS_EACH s"
    set +e
    SWIFT_BACKTRACE=enable=no LLM_FUZZ_TARGET=$t "$FUZZER" -runs="$RUNS" -max_total_time="$SECONDS_EACH" -timeout=10 \
        -rss_limit_mb=4096 -malloc_limit_mb=1024 -max_len=65536 -print_final_stats=1 \
        -artifact_prefix="$findings/" "$corpus" > "$log" 2>&1
    rc=$?
    set -e
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    secs=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    found=$(ls "$findings" | wc -l)
    echo "  $t: ${runs:-?} executions (${secs:-?}/s), exit $rc, $found finding(s) in $findings"
    if [ "$rc" -ne 0 ] || [ "$found" -ne 0 ]; then status=1; tail -30 "$log"; fi
    [ $first -eq 1 ] || echo "," >> "$results.tmp"
    first=0
    printf '  "%s": {"executions": %s, "per_second": %s, "exit": %s, "findings": %s}' \
        "$t" "${runs:-0}" "${secs:-0}" "$rc" "$found" >> "$results.tmp"
done
printf '\n}\n' >> "$results.tmp"
mv "$results.tmp" "$results"
echo "results in $results"
exit $status
