#!/bin/sh
# test_httpd.sh: examples/httpd and examples/fetch driven by real clients.
#
#   sh tests/io/test_httpd.sh BUILD_DIR
#
#  1. curl on every route; a /sleep that outlives the server's request
#     timeout is answered 504 at the deadline (long before the sleep would
#     end); a shorter grpc-timeout from the client shrinks the server's
#     deadline, a longer one does not stretch it.
#  2. fetch against httpd: its -t deadline crosses the process boundary.
#  3. Bad input over raw sockets (tests/io/httpd_raw.py): 400, 431, 413,
#     slowloris cut at the header deadline, idle close, resets.
#  4. A short wrk run during which SIGTERM is sent: the server exits 0
#     within its drain deadline, every request it read was answered, none
#     failed, and (where a private network namespace can be had, as root)
#     the kernel counted no connection aborted with a reset by a close.
# Each server runs with GOCTX_LEAKS=1 and must leave stderr empty. Every
# wait is bounded. Needs curl, wrk and python3 (make deps installs them); a
# missing one fails the test, naming it.
set -u
build=${1:?usage: test_httpd.sh BUILD_DIR}
here=$(cd "$(dirname "$0")" && pwd)
bin=$build/examples
tmp=$(mktemp -d "${TMPDIR:-/tmp}/goctx-test-httpd.XXXXXX")
pid=
cleanup() { [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
failures=0
fail() { echo "FAIL  $*"; failures=$((failures + 1)); }
ok() { echo "ok    $*"; }
die() { echo "test_httpd.sh: $*"; [ -f "$tmp/out" ] && cat "$tmp/out" "$tmp/err"; exit 1; }
for tool in curl wrk python3; do
	command -v $tool >/dev/null 2>&1 || die "$tool not found (make deps installs it)"
done

# start_httpd ARGS...: sets pid and url.
start_httpd() {
	: >"$tmp/out"; : >"$tmp/err"
	GOCTX_LEAKS=1 "$bin/httpd" -p 0 "$@" >"$tmp/out" 2>"$tmp/err" &
	pid=$!
	i=0
	until grep -q '^listening on' "$tmp/out" 2>/dev/null; do
		i=$((i + 1)); [ $i -le 400 ] || die "httpd printed no 'listening on' line in 20 s"
		kill -0 "$pid" 2>/dev/null || die "httpd exited at start"
		sleep 0.05
	done
	port=$(sed -n 's/^listening on 127\.0\.0\.1://p' "$tmp/out")
	url="http://127.0.0.1:$port"
}

# stop_httpd: SIGTERM, bounded wait, exit 0, a summary, nothing on stderr.
stop_httpd() {
	kill -TERM "$pid"
	i=0
	while kill -0 "$pid" 2>/dev/null; do
		i=$((i + 1)); [ $i -le 600 ] || die "httpd still running 30 s after SIGTERM"
		sleep 0.05
	done
	wait "$pid"; rc=$?; pid=
	summary=$(grep '^httpd: ' "$tmp/out" | tail -n1)
	echo "      $summary"
	[ $rc -eq 0 ] && ok "httpd exited 0 after SIGTERM" || fail "httpd exited $rc"
	[ -n "$summary" ] && ok "one-line summary" || fail "no summary line"
	if [ -s "$tmp/err" ]; then fail "httpd wrote to stderr:"; cat "$tmp/err"; else ok "stderr empty (GOCTX_LEAKS=1)"; fi
}

# expect NAME STATUS BODY_SUBSTRING CURL_ARGS...: status and body.
expect() {
	name=$1 want=$2 body=$3; shift 3
	got=$(curl -s -m 20 -o "$tmp/body" -w '%{http_code} %{time_total}' "$@")
	code=${got% *} secs=${got#* }
	if [ "$code" = "$want" ] && grep -q -- "$body" "$tmp/body"; then
		ok "$name: $code in ${secs}s"
	else
		fail "$name: wanted $want '$body', got $code '$(head -c 100 "$tmp/body")'"
	fi
}

# under SECONDS NAME: the last expect took less than SECONDS.
under() {
	if awk -v s="$secs" -v m="$1" 'BEGIN { exit !(s < m) }'; then ok "$2 (${secs}s < $1s)"; else fail "$2 took ${secs}s"; fi
}

echo "== curl and fetch (server request timeout 300 ms)"
start_httpd -t 300 -i 2000 -H 500 -d 2000
expect "GET /hello" 200 "hello, world" "$url/hello"
expect "POST /echo" 200 "posted body" --data-binary "posted body" "$url/echo"
expect "GET /sleep?ms=20" 200 "slept 20 ms" "$url/sleep?ms=20"
expect "GET /nope" 404 "not found" "$url/nope"
expect "POST /hello" 405 "GET only" -d x "$url/hello"
expect "GET /sleep (no ms)" 400 "" "$url/sleep"
# keep-alive: two requests on one connection
n=$(curl -s -m 20 -v "$url/hello" "$url/hello" 2>&1 | grep -c 'Re-using existing connection\|Reusing existing')
[ "$n" -ge 1 ] && ok "keep-alive: curl reused the connection" || fail "keep-alive: no connection reuse"
expect "server timeout: /sleep?ms=5000 answered 504" 504 "context deadline exceeded" "$url/sleep?ms=5000"
under 3 "504 at the 300 ms deadline, not after 5 s"
expect "grpc-timeout 100m shrinks the server's 300 ms" 504 "deadline" -H "grpc-timeout: 100m" "$url/sleep?ms=250"
expect "grpc-timeout 1S does not stretch 300 ms" 504 "deadline" -H "grpc-timeout: 1S" "$url/sleep?ms=800"
expect "grpc-timeout 100S, a short sleep" 200 "slept 100 ms" -H "grpc-timeout: 100S" "$url/sleep?ms=100"
stop_httpd

start_httpd -t 10000 -d 2000
expect "grpc-timeout 200m under a 10 s server timeout: 504" 504 "deadline" -H "grpc-timeout: 200m" "$url/sleep?ms=5000"
under 3 "the client's 200 ms, not the server's 10 s"
if out=$("$bin/fetch" -t 5000 "$url/hello" 2>/dev/null) && [ "$out" = "hello, world" ]; then
	ok "fetch /hello"; else fail "fetch /hello: '$out'"; fi
if out=$("$bin/fetch" -t 5000 -d "fetched" "$url/echo" 2>/dev/null) && [ "$out" = "fetched" ]; then
	ok "fetch -d /echo"; else fail "fetch -d /echo: '$out'"; fi
t0=$(date +%s)
if "$bin/fetch" -t 300 "$url/sleep?ms=8000" >/dev/null 2>"$tmp/ferr"; then
	fail "fetch -t 300 /sleep?ms=8000 succeeded"
elif grep -q -e 'context deadline exceeded' -e ' 504 ' "$tmp/ferr"; then
	ok "fetch -t 300: $(tr '\n' ' ' <"$tmp/ferr")"
else
	fail "fetch -t 300: $(cat "$tmp/ferr")"
fi
[ $(( $(date +%s) - t0 )) -lt 5 ] && ok "fetch's deadline crossed to the server (done long before 8 s)" || fail "fetch took too long"
if "$bin/fetch" -t 0 "$url/hello" >/dev/null 2>"$tmp/ferr"; then fail "fetch -t 0 succeeded"
else grep -q 'context deadline exceeded' "$tmp/ferr" && ok "fetch -t 0: $(cat "$tmp/ferr")" || fail "fetch -t 0: $(cat "$tmp/ferr")"; fi
stop_httpd

echo "== bad input over raw sockets"
start_httpd -t 2000 -i 500 -H 500 -d 2000
if python3 "$here/httpd_raw.py" "$port" 500 500; then ok "raw-socket cases"; else fail "raw-socket cases"; fi
stop_httpd

echo "== wrk for 4 s, SIGTERM after 1 s (drain deadline 2.5 s)"
sh "$here/httpd_load.sh" "$bin" "$tmp" || fail "load test"

[ $failures -eq 0 ] || { echo "test_httpd.sh: $failures failure(s)"; exit 1; }
echo "test_httpd.sh: all passed"
