#!/usr/bin/env bash
# Runs one fuzz target for a while and turns every finding into a regression
# test. Usage: scripts/fuzz.sh text|ast SECONDS
#
# Needs `cargo +nightly` and cargo-fuzz (`cargo +nightly install cargo-fuzz`).
# FUZZ_FLAGS is passed to cargo fuzz build/run (e.g. `--no-default-features`
# to leave the Cranelift JIT out of a quick run).
# Runs at the lowest priority. Seeds the corpus from workloads/ (the text
# target) or from byte strings that embed each workload (the ast target; see
# fuzz/src/generate.rs). After a crash the run goes on with the time left,
# up to 5 findings. Each finding becomes tests/fuzz_regressions/TARGET-HASH.vm,
# which `cargo test --test regressions` replays through the same oracle
# (ast findings are stored as the printed program, raw bytes under
# fuzz/regressions/ast/). Prints the number of executions at the end.
set -euo pipefail
target=${1:?usage: scripts/fuzz.sh text|ast SECONDS}
seconds=${2:?usage: scripts/fuzz.sh text|ast SECONDS}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root/fuzz"
case $target in text | ast) ;; *) echo "unknown target $target (text or ast)" >&2; exit 2 ;; esac

corpus=corpus/$target
mkdir -p "$corpus" "artifacts/$target" regressions/"$target" "$root/tests/fuzz_regressions"
if [ "$target" = text ]; then
    cp "$root"/workloads/*.vm "$corpus"/
else
    # 4 argument bytes (value << 3 is a small positive value), the workload
    # tag (9), the workload's index.
    n=$(ls "$root"/workloads/*.vm | wc -l)
    for ((i = 0; i < n; i++)); do
        printf "\x28\x18\x10\x08\x09\\x$(printf %02x "$i")" >"$corpus/seed-workload-$i"
    done
fi

flags=(${FUZZ_FLAGS:-})
# ASan records the allocation and free stack of every block in a depot it
# never frees; with recursive compilers on random trees nearly every stack
# is new, so 30 frames (the default) cost ~8.5 KB of RSS per execution and a
# run hit libFuzzer's 2 GB limit after ~20 minutes. 8 frames cost ~1.5 KB
# (see fuzz/README.md for the measurement); reports still show the whole
# stack of the faulting access.
export ASAN_OPTIONS=${ASAN_OPTIONS:-malloc_context_size=8}
nice -n 19 cargo +nightly fuzz build "${flags[@]}" "$target" >/dev/null
deadline=$(($(date +%s) + seconds))
total=0
findings=0
log=$(mktemp)
while :; do
    left=$((deadline - $(date +%s)))
    [ "$left" -gt 0 ] || break
    before=$(ls "artifacts/$target" | sort)
    set +e
    nice -n 19 cargo +nightly fuzz run "${flags[@]}" "$target" "$corpus" -- \
        -max_total_time="$left" -timeout=20 -rss_limit_mb=4096 -print_final_stats=1 >"$log" 2>&1
    status=$?
    set -e
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    total=$((total + ${runs:-0}))
    tail -n 4 "$log" | sed 's/^/  /'
    after=$(ls "artifacts/$target" | sort)
    # slow-unit-* only says an input took over 10 s of wall time, which a
    # busy machine causes on its own (nice 19); a hang is a timeout-* here.
    new=$(comm -13 <(echo "$before") <(echo "$after") | grep -v '^slow-unit-' || true)
    if [ "$status" -eq 0 ] && [ -z "$new" ]; then break; fi
    if [ -z "$new" ]; then
        echo "fuzzer stopped with status $status and no artifact:" >&2
        tail -n 30 "$log" >&2
        break
    fi
    for a in $new; do
        findings=$((findings + 1))
        hash=$(sha1sum "artifacts/$target/$a" | cut -c1-12)
        cp "artifacts/$target/$a" "regressions/$target/$a"
        out="$root/tests/fuzz_regressions/$target-$hash.vm"
        if [ "$target" = text ]; then
            cp "artifacts/$target/$a" "$out"
        else
            VM_PERF_FUZZ_PRINT="$out" nice -n 19 cargo +nightly fuzz run "${flags[@]}" ast "artifacts/$target/$a" >/dev/null 2>&1 || true
        fi
        echo "FINDING $a -> ${out#"$root"/}"
        grep -m1 -E "panicked at|ERROR: libFuzzer|SUMMARY" "$log" | sed 's/^/  /' || true
    done
    [ "$findings" -lt 5 ] || break
done
rm -f "$log"
echo "fuzz $target: $total executions in $seconds s, $findings finding(s)"
