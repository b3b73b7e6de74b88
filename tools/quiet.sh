#!/bin/sh
# quiet.sh LOG COMMAND [ARG...]: run one build step with its output appended
# to LOG instead of the terminal, so that `make demo` and `make test` show
# what matters. When COMMAND fails, LOG is printed in full and its status is
# returned. V=1 in the environment shows the output as it comes, too.
set -u
log=$1
shift
mkdir -p "$(dirname "$log")"
if [ "${V:-0}" = 1 ]; then
  rcfile=$log.rc
  { "$@" 2>&1; echo $? >"$rcfile"; } | tee -a "$log"
  rc=$(cat "$rcfile")
  rm -f "$rcfile"
else
  "$@" >>"$log" 2>&1
  rc=$?
fi
if [ "$rc" != 0 ]; then
  [ "${V:-0}" = 1 ] || cat "$log"
  echo "FAILED (exit $rc): $*" >&2
  echo "FAILED: the full log is $log" >&2
fi
exit "$rc"
