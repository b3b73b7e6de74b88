#!/bin/sh
# httpd_load.sh: part 4 of test_httpd.sh. wrk drives examples/httpd for 4 s
# (2 threads, 32 connections, /hello, /echo and /sleep?ms=20 mixed); SIGTERM
# goes to the server 1 s in. The server must be gone before wrk ends (1 s +
# the drain deadline, 2.5 s, < 4 s): wrk's exit would reset connections
# still open. Checks: exit 0 within the drain deadline, a summary with no request cut off, no client error, no 504, no
# reset by the peer; wrk received every answer the server wrote, none of
# them non-2xx. As root
# it reruns itself in a private network namespace (unshare -n, loopback
# only) and there also checks the kernel's TCPAbortOnClose/TCPAbortOnData
# counters: no connection was closed with a reset.
#
#   sh tests/io/httpd_load.sh BUILD/examples TMPDIR
set -u
bin=$1 tmp=$2
here=$(cd "$(dirname "$0")" && pwd)
if [ -z "${GOCTX_IN_NETNS:-}" ] && [ "$(id -u)" = 0 ] && command -v ip >/dev/null 2>&1 &&
   unshare -n true 2>/dev/null; then
	exec unshare -n env GOCTX_IN_NETNS=1 sh "$0" "$@"
fi
netns=${GOCTX_IN_NETNS:-}
[ -n "$netns" ] && { ip link set lo up || exit 1; }
failures=0
fail() { echo "FAIL  $*"; failures=$((failures + 1)); }
ok() { echo "ok    $*"; }

# TcpExt counter by name, from /proc/net/netstat (this namespace's).
tcpext() { awk -v k="$1" '$1 == "TcpExt:" { if (!h) { for (i = 2; i <= NF; i++) n[i] = $i; h = 1 } else for (i = 2; i <= NF; i++) if (n[i] == k) print $i }' /proc/net/netstat; }
aborts() { echo $(( $(tcpext TCPAbortOnClose) + $(tcpext TCPAbortOnData) )); }

cat >"$tmp/mix.lua" <<'LUA'
local n = 0
request = function()
  n = n + 1
  if n % 4 == 0 then return wrk.format("GET", "/sleep?ms=20") end
  if n % 4 == 1 then return wrk.format("POST", "/echo", nil, "ping") end
  return wrk.format("GET", "/hello")
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRK requests=%d connect=%d read=%d write=%d status=%d timeout=%d\n",
    summary.requests, e.connect, e.read, e.write, e.status, e.timeout))
end
LUA

GOCTX_LEAKS=1 "$bin/httpd" -p 0 -d 2500 >"$tmp/lout" 2>"$tmp/lerr" &
pid=$!
i=0
until grep -q '^listening on' "$tmp/lout" 2>/dev/null; do
	i=$((i + 1)); [ $i -le 400 ] || { echo "no listening line"; kill -KILL $pid; exit 1; }
	sleep 0.05
done
url="http://$(sed -n 's/^listening on //p' "$tmp/lout")"
before=$(aborts)
wrk -t2 -c32 -d4s --timeout 5s -s "$tmp/mix.lua" "$url/" >"$tmp/wrk" 2>&1 &
wpid=$!
sleep 1
kill -TERM $pid
i=0
while kill -0 $pid 2>/dev/null; do
	i=$((i + 1)); [ $i -le 200 ] || { fail "httpd still running 10 s after SIGTERM"; kill -KILL $pid; break; }
	sleep 0.05
done
wait $pid; rc=$?
i=0
while kill -0 $wpid 2>/dev/null; do
	i=$((i + 1)); [ $i -le 400 ] || { fail "wrk still running"; kill -KILL $wpid; break; }
	sleep 0.05
done
wait $wpid
after=$(aborts)
summary=$(grep '^httpd: ' "$tmp/lout" | tail -n1)
w=$(grep '^WRK ' "$tmp/wrk")
echo "      $summary"
echo "      $w"
get() { echo "$w" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
[ $rc -eq 0 ] && ok "httpd exited 0" || fail "httpd exited $rc"
case $summary in
*"deadline passed"*) fail "drain deadline passed" ;;
*"drained in "*) ok "drained within the drain deadline" ;;
*) fail "no summary" ;;
esac
echo "$summary" | grep -q ' 0 client errors, 0 timed out), 0 reset by peer, 0 cut at the header deadline, 0 refused, 0 cut at the drain deadline' \
	&& ok "every request read was answered in full" || fail "server counted failures"
[ -n "$w" ] || { fail "no wrk summary"; cat "$tmp/wrk"; }
[ "$(get requests)" -gt 100 ] 2>/dev/null && ok "wrk: $(get requests) answers" || fail "wrk: too few answers"
[ "$(get status)" = 0 ] && ok "wrk: no non-2xx answer" || fail "wrk: $(get status) non-2xx"
# Every answer the server wrote in full reached wrk whole. (wrk's connect,
# read and write error counts are not checked: after the server has stopped,
# each of wrk's reconnection attempts is refused and counted as one of them.)
served=$(echo "$summary" | sed -n 's/.* requests (\([0-9]*\) ok,.*/\1/p')
[ "$served" = "$(get requests)" ] && ok "wrk received every answer the server wrote ($served)" \
	|| fail "server wrote $served answers, wrk received $(get requests)"
[ "$(get timeout)" = 0 ] && ok "wrk: no timeout" || fail "wrk: $(get timeout) timeouts"
if [ -n "$netns" ]; then
	[ "$after" -eq "$before" ] && ok "kernel: no connection aborted with a reset (private netns)" \
		|| fail "kernel: $((after - before)) connections aborted with a reset"
else
	echo "      (not root: no private network namespace, reset counters not checked)"
fi
if [ -s "$tmp/lerr" ]; then fail "httpd stderr:"; cat "$tmp/lerr"; else ok "stderr empty (GOCTX_LEAKS=1)"; fi
[ $failures -eq 0 ]
