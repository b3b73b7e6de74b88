#!/bin/sh
# httpd.sh: the examples/httpd and examples/fetch demo, as CTest and
# `make demo` run them (both programs need a server, so neither can run on
# its own): start httpd on a free port, fetch three routes from it (one
# with a deadline shorter than the server's sleep), stop it with SIGTERM and
# check that it drained and exited 0 with no context left (GOCTX_LEAKS=1).
#
#   sh examples/httpd.sh BUILD/examples
set -u
bin=${1:?usage: httpd.sh DIR_OF_EXAMPLE_PROGRAMS}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/goctx-httpd.XXXXXX")
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
fail() { echo "httpd.sh: $*" >&2; cat "$tmp/out" "$tmp/err" >&2 2>/dev/null; exit 1; }

GOCTX_LEAKS=1 "$bin/httpd" -p 0 -d 2000 >"$tmp/out" 2>"$tmp/err" &
pid=$!
i=0
until grep -q '^listening on' "$tmp/out" 2>/dev/null; do
	i=$((i + 1)); [ $i -le 200 ] || fail "no 'listening on' line in 10 s"
	kill -0 "$pid" 2>/dev/null || fail "httpd exited early"
	sleep 0.05
done
url="http://$(sed -n 's/^listening on //p' "$tmp/out")"
echo "httpd: $(head -n1 "$tmp/out")"

echo "\$ fetch $url/hello"
out=$("$bin/fetch" -t 5000 "$url/hello") || fail "fetch /hello failed"
echo "$out"
[ "$out" = "hello, world" ] || fail "/hello said '$out'"

echo "\$ fetch -d 'echo me' $url/echo"
out=$("$bin/fetch" -t 5000 -d 'echo me' "$url/echo") || fail "fetch /echo failed"
echo "$out"
[ "$out" = "echo me" ] || fail "/echo said '$out'"

# The client's 200 ms cross the wire as grpc-timeout: the server's own
# request timeout (10 s) shrinks to it, and it answers 504 at the deadline.
echo "\$ fetch -t 200 $url/sleep?ms=5000"
if "$bin/fetch" -t 200 "$url/sleep?ms=5000" 2>"$tmp/ferr"; then fail "/sleep outlived its deadline"; fi
cat "$tmp/ferr"
grep -q -e 'context deadline exceeded' -e ' 504 ' "$tmp/ferr" || fail "no deadline message"

kill -TERM "$pid"
i=0
while kill -0 "$pid" 2>/dev/null; do
	i=$((i + 1)); [ $i -le 200 ] || fail "httpd still running 10 s after SIGTERM"
	sleep 0.05
done
wait "$pid"; rc=$?; pid=
tail -n1 "$tmp/out"
[ $rc -eq 0 ] || fail "httpd exited $rc"
[ ! -s "$tmp/err" ] || fail "httpd wrote to stderr (GOCTX_LEAKS report?)"
echo "httpd.sh: ok"
