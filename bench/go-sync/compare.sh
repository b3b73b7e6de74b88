#!/usr/bin/env bash
# Run goctx-sync-bench and its Go peer (this folder) one after the other and
# print, per op, both figures and the ratios ours/Go (below 1: goctx faster)
# and Go/ours (the issue's goal: at least 1).
# errgroup comes from Debian's golang-golang-x-sync-dev (see go.mod).
#
#   bench/go-sync/compare.sh BUILD/bench/goctx-sync-bench
#
# Go: the first `go` on PATH, else the toolchain that shared/bench/peers/run
# caches in ~/.cache/goctx-peers. Builds offline into a temporary folder.
# BENCH_MIN_TIME_MS, BENCH_RUNS and BENCH_OPS pass through to both programs.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
[ $# -eq 1 ] || { echo "usage: $0 PATH/TO/goctx-sync-bench" >&2; exit 2; }
C_BENCH="$1"
if ! command -v go >/dev/null 2>&1; then
    cached=$(ls -d "${XDG_CACHE_HOME:-$HOME/.cache}"/goctx-peers/go-1.*/usr/lib/go-1.*/bin 2>/dev/null | sort -V | tail -n1 || true)
    [ -n "$cached" ] && export PATH="$cached:$PATH"
fi
command -v go >/dev/null 2>&1 || { echo "no go toolchain (run shared/bench/peers/run go once, or apt-get install golang-go)" >&2; exit 1; }
TMP="$(mktemp -d "${TMPDIR:-/tmp}/syncbench.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT
export GOFLAGS=-mod=mod GOPROXY=off GOSUMDB=off GOTOOLCHAIN=local GO111MODULE=on
(cd "$HERE" && go build -trimpath -o "$TMP/go-sync" .) >&2
"$C_BENCH" >"$TMP/c.txt"
"$TMP/go-sync" >"$TMP/go.txt"
printf '%-26s %12s %12s %8s %8s\n' op goctx_ns go_ns ours/go go/ours
awk 'FNR == NR && $1 == "BENCH" { c[$2] = $3; next }
     $1 == "BENCH" && ($2 in c) { printf "%-26s %12.2f %12.2f %8.2f %8.2f\n", $2, c[$2], $3, ($3 > 0 ? c[$2] / $3 : 0), (c[$2] > 0 ? $3 / c[$2] : 0) }' \
    "$TMP/c.txt" "$TMP/go.txt"
