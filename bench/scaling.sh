#!/usr/bin/env bash
# Scaling run: goctx (goctx-scaling, bench/scaling.c) beside Go's context
# (bench/go-scaling), as pending timers and cancellation trees grow from 1k to
# 1M. Writes a data file and draws docs/scaling.png with gnuplot.
#
#   bench/scaling.sh [PATH/TO/goctx-scaling]
#
# Without an argument the C program is compiled here with gcc -O2 from src/
# and bench/scaling.c. Environment:
#   SCALE_SIZES        default 1000,10000,100000,1000000
#   SCALE_MIN_TIME_MS  per timed run of the timer series (default 200)
#   SCALE_OUT          directory for the data file (default build/scaling)
#   SCALE_PNG          the plot (default docs/scaling.png)
#   SCALE_GO=0         goctx only
#   SHARED             the shared folder (default ../shared), for peers/run
# Go: the newest Go cached by the shared peers' `run` script (fetched through
# it once when missing), else the system's `go`, else Debian's golang-go
# (installed when root). gnuplot: gnuplot-nox, installed when root.
# Takes about 2 minutes on 2 cores.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
OUT="${SCALE_OUT:-build/scaling}"
PNG="${SCALE_PNG:-docs/scaling.png}"
DATA="$OUT/scaling.dat"
mkdir -p "$OUT" "$(dirname "$PNG")"
TMP="$(mktemp -d "${TMPDIR:-/tmp}/goctx-scaling.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT

log() { echo "scaling: $*" >&2; }
is_root() { [ "$(id -u)" = 0 ]; }

# ---- the goctx program
BIN="${1:-}"
if [ -z "$BIN" ]; then
    log "compiling goctx-scaling (gcc -O2)"
    gcc -O2 -std=c11 -D_GNU_SOURCE -Iinclude -Isrc -Ibench -o "$TMP/goctx-scaling" \
        src/*.c bench/scaling.c -lpthread
    BIN="$TMP/goctx-scaling"
fi
[ -x "$BIN" ] || { log "no program at $BIN"; exit 1; }

# ---- the Go program
find_go() {
    local cache="${XDG_CACHE_HOME:-${HOME:-/nonexistent}/.cache}/goctx-peers" bin
    bin=$(ls -d "$cache"/go-1.*/usr/lib/go-1.*/bin 2>/dev/null | sort -V | tail -n1 || true)
    if [ -n "$bin" ] && [ -x "$bin/go" ]; then echo "$bin/go"; return 0; fi
    return 1
}
GO=""
if [ "${SCALE_GO:-1}" != 0 ]; then
    GO=$(find_go || true)
    PEERS_RUN="${SHARED:-../shared}/bench/peers/run"
    if [ -z "$GO" ] && [ -x "$PEERS_RUN" ]; then
        log "fetching the peers' Go toolchain through shared/bench/peers/run"
        BENCH_OPS=none-fetch-only "$PEERS_RUN" go >/dev/null || true
        GO=$(find_go || true)
    fi
    if [ -z "$GO" ]; then
        if command -v go >/dev/null 2>&1; then
            GO=$(command -v go)
        else
            GO=$(ls -d /usr/lib/go-1.*/bin/go /usr/lib/go/bin/go 2>/dev/null | sort -V | tail -n1 || true)
        fi
    fi
    if [ -z "$GO" ]; then
        if is_root; then
            log "installing Debian's golang-go"
            DEBIAN_FRONTEND=noninteractive apt-get install -y golang-go >&2 ||
                { apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y golang-go >&2; } || true
            GO=$(command -v go || true)
        else
            log "no Go toolchain; as root: apt-get install -y golang-go (goctx only this time)"
        fi
    fi
fi
if [ -n "$GO" ]; then
    export GOFLAGS=-mod=mod GOPROXY=off GOSUMDB=off GOTOOLCHAIN=local GO111MODULE=on
    [ -n "${HOME:-}" ] || export GOCACHE="$TMP/gocache" GOPATH="$TMP/gopath"
    log "building go-scaling with $("$GO" version)"
    (cd bench/go-scaling && "$GO" build -trimpath -o "$TMP/go-scaling" .) >&2 || { log "go build failed"; GO=""; }
fi

# ---- run
: >"$TMP/raw"
log "goctx: $BIN"
"$BIN" | sed -u 's/^SCALE /goctx /' | tee -a "$TMP/raw" >&2
if [ -n "$GO" ]; then
    log "go"
    "$TMP/go-scaling" | sed -u 's/^SCALE /go /' | tee -a "$TMP/raw" >&2
fi

# One row per N: ns for each implementation and series ("?" where missing).
SERIES="timer timer_rand fanout fanout_all tree10"
awk -v series="$SERIES" '
    { v[$1 " " $2 " " $3] = $4; ns[$3] = 1 }
    END {
        ns_count = split(series, s, " ")
        hdr = "# N"
        for (i = 1; i <= ns_count; i++) hdr = hdr " goctx_" s[i] " go_" s[i]
        print hdr
        n = 0
        for (k in ns) sizes[++n] = k + 0
        for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++)
            if (sizes[j] < sizes[i]) { t = sizes[i]; sizes[i] = sizes[j]; sizes[j] = t }
        for (i = 1; i <= n; i++) {
            line = sizes[i]
            for (j = 1; j <= ns_count; j++) for (m = 0; m < 2; m++) {
                key = (m ? "go" : "goctx") " " s[j] " " sizes[i]
                line = line " " ((key in v) ? v[key] : "?")
            }
            print line
        }
    }' "$TMP/raw" >"$DATA"
{
    echo "# goctx scaling run, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs"
    echo "# timer*: ns per with_timeout+cancel with N timers pending;"
    echo "# fanout: ns per node to cancel a root of N children; fanout_all: build+cancel+release per node;"
    echo "# tree10: ns per node to cancel the root of a 10-ary tree of N nodes"
    cat "$DATA"
} >"$TMP/dat" && mv "$TMP/dat" "$DATA"
log "data: $DATA"
cat "$DATA"

# ---- plot
if ! command -v gnuplot >/dev/null 2>&1; then
    if is_root; then
        log "installing gnuplot-nox"
        DEBIAN_FRONTEND=noninteractive apt-get install -y gnuplot-nox >&2 ||
            { apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y gnuplot-nox >&2; }
    else
        log "gnuplot missing; as root: apt-get install -y gnuplot-nox; then run this again"
        exit 1
    fi
fi
if gnuplot -e 'set terminal' 2>&1 | grep -q pngcairo; then
    TERM_LINE="set terminal pngcairo size 1400,520 font 'sans,10'"
else
    TERM_LINE="set terminal png size 1400,520"
fi
gnuplot <<EOF
$TERM_LINE
set output '$PNG'
set datafile missing '?'
set multiplot layout 1,2 title "goctx vs Go context ($(nproc) CPUs, $(date -u '+%Y-%m-%d'))"
set logscale x 10
set logscale y 10
set autoscale xfix
set offsets graph 0.04, graph 0.04, graph 0.08, graph 0.04
set grid
set key top left
set format x "10^{%T}"
set xlabel 'timers pending (N)'
set ylabel 'ns per with\_timeout + cancel'
set title 'Timers: cost as the queue grows'
plot '$DATA' using 1:2 with linespoints lw 2 pt 7 lc rgb '#1f77b4' title 'goctx, 1h', \
     '' using 1:4 with linespoints lw 2 pt 5 lc rgb '#17becf' title 'goctx, [1h,2h]', \
     '' using 1:3 with linespoints lw 2 pt 7 dt 2 lc rgb '#d62728' title 'Go, 1h', \
     '' using 1:5 with linespoints lw 2 pt 5 dt 2 lc rgb '#ff7f0e' title 'Go, [1h,2h]'
set xlabel 'contexts in the tree (N)'
set ylabel 'ns per node'
set title 'Cancel a tree: cost per node'
plot '$DATA' using 1:6 with linespoints lw 2 pt 7 lc rgb '#1f77b4' title 'goctx, cancel root of N children', \
     '' using 1:10 with linespoints lw 2 pt 5 lc rgb '#17becf' title 'goctx, cancel 10-ary tree', \
     '' using 1:8 with linespoints lw 2 pt 9 lc rgb '#2ca02c' title 'goctx, build+cancel+release fanout', \
     '' using 1:7 with linespoints lw 2 pt 7 dt 2 lc rgb '#d62728' title 'Go, cancel root of N children', \
     '' using 1:11 with linespoints lw 2 pt 5 dt 2 lc rgb '#ff7f0e' title 'Go, cancel 10-ary tree', \
     '' using 1:9 with linespoints lw 2 pt 9 dt 2 lc rgb '#9467bd' title 'Go, build+cancel+release fanout'
unset multiplot
EOF
log "plot: $PNG"
