#!/usr/bin/env bash
# Prints one results-table row per fuzz/logs/<target>.log of a `scripts/fuzz --time` run:
# run time, executions, coverage (cov/ft), corpus size at the end, peak RSS, outcome.
cd "$(dirname "$0")"
for log in logs/*.log; do
    t=$(basename "$log" .log)
    case "$t" in *.cmin) continue ;; esac
    last=$(grep -E '^#[0-9]+\s+(NEW|REDUCE|pulse|DONE|INITED)' "$log" | tail -n 1)
    cov=$(sed -nE 's/.*cov: ([0-9]+) ft: ([0-9]+).*/\1 \/ \2/p' <<<"$last")
    corp=$(sed -nE 's/.*corp: ([0-9]+\/[0-9]+[a-zA-Z]*).*/\1/p' <<<"$last")
    secs=$(sed -nE 's/^Done [0-9]+ runs in ([0-9]+) second.*/\1/p' "$log")
    execs=$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+)/\1/p' "$log")
    rss=$(sed -nE 's/^stat::peak_rss_mb: *([0-9]+)/\1/p' "$log")
    if grep -qE '^==[0-9]+==ERROR|panicked at|SUMMARY: libFuzzer|deadly signal' "$log"; then
        outcome="FAILED: $(grep -m1 -oE 'ERROR: libFuzzer: [a-z-]+|panicked at [^ ]+|ERROR: AddressSanitizer: [a-z-]+' "$log")"
    elif [ -n "$secs" ]; then
        outcome="no crash, hang or OOM"
    else
        outcome="running or interrupted"
    fi
    echo "| \`$t\` | ${secs:-?} s | ${execs:-?} | ${cov:-?} | ${corp:-?} | ${rss:-?} MB | $outcome |"
done
