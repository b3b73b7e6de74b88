#!/bin/sh
# ctest.sh NAME DIR COMMAND [ARG...]: run COMMAND (ctest, maybe under a
# prefix such as `setarch -R`) inside build dir DIR, with its output in
# DIR/test.log (printed in full if a test fails). Then print one summary
# line for configuration NAME and append it to SUMMARY (when set), for
# `make test` to print every configuration's at the end:
#   ctest.sh --print SUMMARY   prints the lines and the total
set -u
if [ "$1" = --print ]; then
  [ -f "$2" ] || exit 0
  echo
  echo "== make test: summary"
  cat "$2"
  awk '{ p += $2; s += $6 } END { printf "total: %d passed, 0 failed%s\n", p, s ? ", " s " skipped" : "" }' "$2"
  exit 0
fi
name=$1
dir=$2
shift 2
log=$dir/test.log
rm -f "$log"
echo "$name: running the tests in $dir (log: $log)"
here=$(cd "$(dirname "$0")" && pwd)
(cd "$dir" && sh "$here/quiet.sh" test.log "$@") || exit 1
# ctest's own closing lines: "100% tests passed, 0 tests failed out of 42",
# "Total Test time (real) =  61.23 sec"; skipped tests count as passed there.
total=$(sed -n 's/.*tests failed out of \([0-9]*\).*/\1/p' "$log" | tail -n 1)
secs=$(sed -n 's/^Total Test time (real) = *\([0-9.]*\) sec.*/\1/p' "$log" | tail -n 1)
skipped=$(grep -c '\*\*\*Skipped' "$log")
passed=$((${total:-0} - skipped))
line=$(printf '%-8s %4d passed, 0 failed, %d skipped, in %6.1f s   (%s)' \
  "$name" "$passed" "$skipped" "${secs:-0}" "$log")
echo "$line"
grep 'Skipped' "$log" | sed 's/^/  /' || true
[ -n "${SUMMARY:-}" ] && echo "$line" >>"$SUMMARY"
exit 0
