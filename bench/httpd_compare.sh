#!/usr/bin/env bash
# httpd_compare.sh: examples/httpd against bench/go-httpd (net/http with the
# same routes and per-request timeout), both under the same wrk run on this
# machine, one server after the other: requests per second and p99 latency.
#
#   bench/httpd_compare.sh BUILD/examples/httpd
#
# Knobs: WRK_SECONDS (5), WRK_THREADS (2), WRK_CONNS (32), WRK_PATH (/hello).
# Prints, besides a table, BENCH lines as the other programs do, per server
# (ns per request = 1e9 / rps, and the p99 in ns):
#   BENCH <server> httpd_wrk_request <ns> - -
#   BENCH <server> httpd_wrk_p99 <ns> - -
# Go: the first `go` on PATH, else the toolchain shared/bench/peers/run
# caches in ~/.cache/goctx-peers. Builds offline into a temporary folder.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
[ $# -eq 1 ] || { echo "usage: $0 PATH/TO/httpd" >&2; exit 2; }
HTTPD="$1"
SECS=${WRK_SECONDS:-5} THREADS=${WRK_THREADS:-2} CONNS=${WRK_CONNS:-32} WPATH=${WRK_PATH:-/hello}
command -v wrk >/dev/null 2>&1 || { echo "no wrk (make deps installs it)" >&2; exit 1; }
if ! command -v go >/dev/null 2>&1; then
    cached=$(ls -d "${XDG_CACHE_HOME:-$HOME/.cache}"/goctx-peers/go-1.*/usr/lib/go-1.*/bin 2>/dev/null | sort -V | tail -n1 || true)
    [ -n "$cached" ] && export PATH="$cached:$PATH"
fi
command -v go >/dev/null 2>&1 || { echo "no go toolchain (run shared/bench/peers/run go once, or apt-get install golang-go)" >&2; exit 1; }
TMP="$(mktemp -d "${TMPDIR:-/tmp}/httpdbench.XXXXXX")"
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$TMP"' EXIT
export GOFLAGS=-mod=mod GOPROXY=off GOSUMDB=off GOTOOLCHAIN=local GO111MODULE=on
(cd "$HERE/go-httpd" && go build -trimpath -o "$TMP/go-httpd" .) >&2

# run NAME PROGRAM: start it on a free port, wrk it, stop it; leaves
# $TMP/NAME.wrk.
run() {
    "$2" -p 0 >"$TMP/$1.out" 2>&1 &
    pid=$!
    for _ in $(seq 200); do grep -q '^listening on' "$TMP/$1.out" && break; sleep 0.05; done
    local addr; addr=$(sed -n 's/^listening on //p' "$TMP/$1.out")
    [ -n "$addr" ] || { echo "$1 did not start" >&2; cat "$TMP/$1.out" >&2; exit 1; }
    wrk -t"$THREADS" -c"$CONNS" -d"${SECS}s" --latency "http://$addr$WPATH" >"$TMP/$1.wrk"
    kill -TERM "$pid"; wait "$pid" || true; pid=
}
run goctx "$HTTPD"
run go "$TMP/go-httpd"

rps() { awk '/^Requests\/sec:/ { print $2 }' "$TMP/$1.wrk"; }
# wrk's p99 ("99%   1.23ms") in ns
p99() { awk '$1 == "99%" { v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v);
        m = (u == "us") ? 1e3 : (u == "ms") ? 1e6 : (u == "s") ? 1e9 : 1; printf "%.0f\n", v * m }' "$TMP/$1.wrk"; }
errs() { awk '/Socket errors|Non-2xx/ { $1 = $1; printf "%s; ", $0 }' "$TMP/$1.wrk"; }
for s in goctx go; do
    echo "BENCH $s httpd_wrk_request $(awk -v r="$(rps $s)" 'BEGIN { printf "%.2f", 1e9 / r }') - -"
    echo "BENCH $s httpd_wrk_p99 $(p99 $s) - -"
done
printf '%-8s %12s %12s  %s\n' server req/s p99_us errors
for s in goctx go; do
    printf '%-8s %12s %12s  %s\n' "$s" "$(rps $s)" "$(awk -v p="$(p99 $s)" 'BEGIN { printf "%.0f", p / 1e3 }')" "$(errs $s)"
done
awk -v a="$(rps goctx)" -v b="$(rps go)" -v pa="$(p99 goctx)" -v pb="$(p99 go)" \
    'BEGIN { printf "goctx/go req/s: %.2f   go/goctx p99: %.2f   (>= 1: goctx as good or better)\n", a / b, pb / pa }'
