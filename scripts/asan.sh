#!/usr/bin/env bash
# The library's unit tests (every engine's own tests) under AddressSanitizer.
# Needs nightly with the sanitizer runtime (`rustup +nightly` ships it for
# x86_64-unknown-linux-gnu). `--target` keeps build scripts and proc macros
# unsanitized; a separate target dir keeps the normal build cache intact.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export RUSTFLAGS="-Zsanitizer=address"
export RUSTDOCFLAGS="-Zsanitizer=address"
export ASAN_OPTIONS="detect_leaks=1:detect_stack_use_after_return=0"
# ASan's redzones make every frame several times larger, so the tests that
# prove an engine fits a *given* small stack (256 KiB loops, depth 1000 on
# 2 MiB) cannot hold here; they run in the normal and release legs. Other
# test threads get a large stack for the same reason.
export RUST_MIN_STACK=$((64 << 20))
cargo +nightly test --target x86_64-unknown-linux-gnu --target-dir target/asan --lib "$@" -- \
    --skip deep_programs --skip small_stack --skip 256_kib --skip long_straight_line
