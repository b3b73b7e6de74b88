#!/bin/sh
# shutdown_sigterm.sh PROGRAM: the test of examples/shutdown. Runs it with
# --wait, sends it SIGTERM from outside once it says "ready" and a few jobs
# are in flight, and expects the clean shutdown: the signal's words, the
# drain, exit status 0. Every wait is bounded.
set -u
prog=$1
out=$(mktemp)
trap 'rm -f "$out"' EXIT
"$prog" --wait >"$out" 2>&1 &
pid=$!
i=0
until grep -q '^job 1: ' "$out"; do
  i=$((i + 1))
  if [ $i -gt 3000 ] || ! kill -0 "$pid" 2>/dev/null; then
    echo "shutdown never got going:"; cat "$out"; kill -9 "$pid" 2>/dev/null; exit 1
  fi
  sleep 0.01
done
kill -TERM "$pid"
wait "$pid"
rc=$?
cat "$out"
if [ "$rc" -ne 0 ]; then echo "exit status $rc"; exit 1; fi
grep -q '^signal: terminated signal received; no more jobs' "$out" || { echo "no signal line"; exit 1; }
grep -q '^drained' "$out" || { echo "no drain line"; exit 1; }
