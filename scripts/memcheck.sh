#!/usr/bin/env bash
# Runs every engine on every workload under valgrind memcheck and asserts
# 0 errors and 0 bytes definitely or indirectly lost.
# Usage: scripts/memcheck.sh [ENGINE...]   (default: every engine in `vm-perf list`)
#        MEMCHECK_WORKLOADS="sum fib" scripts/memcheck.sh   (a subset of workloads; CI's leg)
#
# Uses a release build (it keeps line tables for valgrind's reports). Each
# workload runs with its `// args:` header, every argument capped at 20 so a
# run takes seconds under valgrind while every loop still turns. Exits 1 if
# any run had an error or a leak; prints a summary table either way. A run
# the engine declines (`run` exits 1 saying it cannot give the exact value,
# or cannot compile the program) shows as n/a, and must still be clean.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
command -v valgrind >/dev/null || { echo "memcheck: valgrind is not installed" >&2; exit 2; }
# VM_PERF_BIN: check that binary instead (a nightly build, for the nightly
# engines: `cargo +nightly build --release --features nightly`).
if [ -n "${VM_PERF_BIN:-}" ]; then
    bin=$VM_PERF_BIN
else
    cargo build --release --quiet
    bin=target/release/vm-perf
fi
if [ $# -gt 0 ]; then engines=("$@"); else mapfile -t engines < <("$bin" list); fi
if [ -n "${MEMCHECK_WORKLOADS:-}" ]; then
    workloads=()
    for w in $MEMCHECK_WORKLOADS; do workloads+=("workloads/$w.vm"); done
else
    workloads=(workloads/*.vm)
fi
logs=$(mktemp -d)
failed=0
declined=0
runs=0
printf '%-30s' engine
for w in "${workloads[@]}"; do printf ' %-13s' "$(basename "$w" .vm)"; done
echo
for e in "${engines[@]}"; do
    printf '%-30s' "$e"
    for w in "${workloads[@]}"; do
        name=$(basename "$w" .vm)
        args=$(sed -n 's|^// args:||p' "$w" | head -1)
        small=()
        for a in $args; do small+=("$((a > 20 ? 20 : a))"); done
        log="$logs/$e-$name.log"
        set +e
        # JIT engines write code then run it: --smc-check makes valgrind see it.
        valgrind --tool=memcheck --suppressions="$root/scripts/memcheck.supp" --leak-check=full --show-leak-kinds=definite,indirect \
            --errors-for-leak-kinds=definite,indirect --error-exitcode=99 --smc-check=all-non-file \
            --log-file="$log" "$bin" run --engine "$e" "$w" "${small[@]}" >/dev/null 2>"$log.stderr"
        status=$?
        set -e
        runs=$((runs + 1))
        errors=$(grep -o 'ERROR SUMMARY: [0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
        if [ "$status" -eq 0 ] && [ "$errors" = 0 ]; then
            printf ' %-13s' ok
        elif [ "$status" -eq 1 ] && [ "$errors" = 0 ] &&
            grep -q "cannot give this program's exact value\|cannot compile this program" "$log.stderr"; then
            # The engine declined the program (LuaJIT past 2^53, Lua's
            # nesting limit), as `run` must: nothing of it ran to check.
            printf ' %-13s' n/a
            declined=$((declined + 1))
        else
            failed=$((failed + 1))
            printf ' %-13s' "FAIL($status/$errors)"
            cp "$log" "$root/target/memcheck-$e-$name.log"
        fi
    done
    echo
done
# Bytes lost over all runs (valgrind prints no LEAK SUMMARY when all was freed).
lost() { cat "$logs"/*.log | sed -n "s/.*$1 lost: \([0-9,]*\) bytes.*/\1/p" | tr -d , | awk '{s+=$1} END {print s+0}'; }
definite=$(lost definitely)
indirect=$(lost indirectly)
errors=$(cat "$logs"/*.log | sed -n 's/.*ERROR SUMMARY: \([0-9]*\) errors.*/\1/p' | awk '{s+=$1} END {print s+0}')
rm -rf "$logs"
echo "memcheck: $runs runs (${#engines[@]} engines), $declined declined by the engine, $failed failed; $errors errors, $definite bytes definitely and $indirect bytes indirectly lost in total"
if [ "$failed" -gt 0 ]; then
    echo "memcheck: FAILED (logs in target/memcheck-*.log)" >&2
    exit 1
fi
echo "memcheck: 0 errors, 0 bytes definitely or indirectly lost"
