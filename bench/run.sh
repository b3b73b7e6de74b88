#!/usr/bin/env bash
# One table for every benchmark op: goctx and its peers from the same run.
#
#   bench/run.sh BUILD_DIR        (make bench: BUILD_DIR is build/bench)
#
# Convention: BUILD_DIR/bench/goctx-bench runs the ops of SPEC.md (its peers
# are shared/bench/peers: Go's context and C++20 stop_token). Every other
# bench/NAME_bench.c is built as goctx-NAME-bench (bench/CMakeLists.txt);
# when a folder bench/go-NAME/ holds its Go peer (a main package printing the
# same BENCH lines), that peer is built and run too. So a new benchmark
# program and its peer are picked up by adding the two, nothing else.
#
# All goctx programs run first, then the Go peers of bench/go-*, then
# shared/bench/peers/run; then shared/bench/compare prints the one table
# (ratios peer/goctx: above 1, goctx is faster). BENCH_OPS, BENCH_MIN_TIME_MS
# and BENCH_RUNS reach every program. SHARED names the shared folder
# (default ../shared). The raw lines are kept in BUILD_DIR/bench-raw.txt.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
[ $# -eq 1 ] || { echo "usage: $0 BUILD_DIR" >&2; exit 2; }
BUILD="$(cd "$1" && pwd)"
SHARED="${SHARED:-../shared}"
TMP="$(mktemp -d "${TMPDIR:-/tmp}/goctx-bench.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT
: >"$TMP/ours.txt"
: >"$TMP/peers.txt"

echo "bench/run.sh: goctx-bench" >&2
"$BUILD/bench/goctx-bench" >>"$TMP/ours.txt"
names=()
for src in "$HERE"/*_bench.c; do
    [ -e "$src" ] || continue
    name="$(basename "$src" _bench.c)"
    prog="$BUILD/bench/goctx-$name-bench"
    [ -x "$prog" ] || { echo "bench/run.sh: $prog not built, skipped" >&2; continue; }
    echo "bench/run.sh: goctx-$name-bench" >&2
    "$prog" >>"$TMP/ours.txt"
    names+=("$name")
done

# Go: the first `go` on PATH, else the toolchain shared/bench/peers/run caches.
if ! command -v go >/dev/null 2>&1; then
    cached=$(ls -d "${XDG_CACHE_HOME:-$HOME/.cache}"/goctx-peers/go-1.*/usr/lib/go-1.*/bin 2>/dev/null | sort -V | tail -n1 || true)
    [ -n "$cached" ] && export PATH="$cached:$PATH"
fi
export GOFLAGS=-mod=mod GOPROXY=off GOSUMDB=off GOTOOLCHAIN=local GO111MODULE=on
# The shared peers first: on a machine without Go they fetch the toolchain.
echo "bench/run.sh: shared/bench/peers/run" >&2
"$SHARED/bench/peers/run" >>"$TMP/peers.txt" || echo "bench/run.sh: peers/run failed; the table covers what it printed" >&2
if ! command -v go >/dev/null 2>&1; then
    cached=$(ls -d "${XDG_CACHE_HOME:-$HOME/.cache}"/goctx-peers/go-1.*/usr/lib/go-1.*/bin 2>/dev/null | sort -V | tail -n1 || true)
    [ -n "$cached" ] && export PATH="$cached:$PATH"
fi
for name in ${names[@]+"${names[@]}"}; do
    peer="$HERE/go-$name"
    [ -f "$peer/go.mod" ] || continue
    if ! command -v go >/dev/null 2>&1; then
        echo "bench/run.sh: no go toolchain, bench/go-$name skipped" >&2
        continue
    fi
    echo "bench/run.sh: bench/go-$name" >&2
    (cd "$peer" && GOCACHE="${GOCACHE:-$TMP/gocache}" go build -trimpath -o "$TMP/go-$name" .) >&2
    "$TMP/go-$name" | sed -n 's/^BENCH /BENCH go /p' >>"$TMP/peers.txt"
done

cat "$TMP/ours.txt" "$TMP/peers.txt" >"$BUILD/bench-raw.txt"
"$SHARED/bench/compare" --peers "$TMP/peers.txt" -- cat "$TMP/ours.txt"
