#!/bin/sh
# tests/valgrind.sh TOOL BUILD_DIR: run every test program and example of
# BUILD_DIR (an uninstrumented build, e.g. build/plain) under valgrind's TOOL
# (memcheck, helgrind or drd) with tests/TOOL.supp (memcheck: tests/valgrind.supp).
# Any valgrind error, or a program failing, fails the run. One log per
# program in BUILD_DIR/valgrind-TOOL/NAME.log; a summary is printed at the end.
# Used by `make valgrind`, `make helgrind` and `make drd` (not part of
# `make test`: under valgrind the suite takes minutes).
#
# Environment: ONLY="test_cancel seed ..." runs just those programs;
# VALGRIND_ARGS adds options (e.g. --gen-suppressions=all to write a new
# suppression). A program's stdout/stderr go to BUILD_DIR/valgrind-TOOL/NAME.out.
set -u
tool=${1:?usage: valgrind.sh memcheck|helgrind|drd BUILD_DIR}
build=${2:?usage: valgrind.sh memcheck|helgrind|drd BUILD_DIR}
here=$(cd "$(dirname "$0")" && pwd)

case $tool in
memcheck)
	supp=$here/valgrind.supp
	opts="--leak-check=full --errors-for-leak-kinds=definite,indirect" ;;
helgrind)
	# Stack accesses are not race-checked, as DRD does by default
	# (--check-stack-var=no): a blocked send/receive/select keeps its waiter,
	# sudogs and receive buffer on its own stack and hands them to the
	# thread that completes it through goctx's futex/atomic protocol, which
	# helgrind cannot see; every later reuse of that stack would be reported.
	supp=$here/helgrind.supp
	opts="--check-stack-refs=no" ;;
drd)
	supp=$here/drd.supp
	opts="" ;;
*)	echo "valgrind.sh: unknown tool $tool" >&2; exit 2 ;;
esac
command -v valgrind >/dev/null 2>&1 || { echo "valgrind.sh: valgrind not found (apt-get install valgrind)" >&2; exit 2; }

# Smaller workloads under valgrind, through the knobs the programs read.
# test_limits builds N-node trees and N timers (1e6 by default): 20000 keeps
# every shape it checks while taking seconds, not many minutes.
export GOCTX_LIMITS_N=${GOCTX_LIMITS_N:-20000}

logs=$build/valgrind-$tool
mkdir -p "$logs"
progs=$(ls "$build"/tests/*/test_* "$build"/examples/* 2>/dev/null | while read -r p; do
	[ -f "$p" ] && [ -x "$p" ] && echo "$p"; done)
[ -n "$progs" ] || { echo "valgrind.sh: no programs under $build" >&2; exit 2; }

failed=""
nrun=0
start=$(date +%s)
for p in $progs; do
	name=$(basename "$p")
	if [ -n "${ONLY:-}" ]; then
		case " $ONLY " in *" $name "*) ;; *) continue ;; esac
	fi
	skip=""
	case $name in
	# test_seed re-executes its own binary (/proc/self/exe), which under
	# valgrind is the valgrind tool itself: even with --trace-children=yes
	# valgrind 3.19 cannot load it ("mmap(0x58000000) failed in UME"). The
	# same program, seed_main, runs under valgrind as the example `seed`.
	test_seed) skip="re-executes /proc/self/exe (the valgrind tool under valgrind); examples/seed covers it" ;;
	# In the fork child, timer.c's fork_child re-initialises the timer
	# queue's mutex, which the forking thread holds (fork_prepare); helgrind
	# and DRD keep the parent's lock state and then report the child's every
	# use of that mutex as a lock error and every access under it as a race.
	test_fork) if [ "$tool" != memcheck ]; then
		skip="$tool keeps the timer mutex held across timer.c's fork_child re-initialisation (false lock errors and races in the child)"
	fi ;;
	esac
	if [ -n "$skip" ]; then
		echo "SKIP $tool $name: $skip"
		continue
	fi
	log=$logs/$name.log
	t0=$(date +%s)
	# -s lists the suppressions used at the end of each log. test_limits
	# starts 512 waiting threads: more than valgrind's default of 500.
	# --fair-sched=yes: tests that busy-poll while another thread cancels
	# (test_cause's race rounds) otherwise wait out whole time slices
	# (DRD: test_cause 102s, 3s with it).
	valgrind --tool="$tool" --error-exitcode=1 --suppressions="$supp" $opts \
		-s --fair-sched=yes --num-callers=30 --max-threads=1024 ${VALGRIND_ARGS:-} \
		--log-file="$log" "$p" >"$logs/$name.out" 2>&1
	rc=$?
	t1=$(date +%s)
	nrun=$((nrun + 1))
	errs=$(sed -n 's/.*ERROR SUMMARY: \([0-9]*\) errors.*/\1/p' "$log" | head -n 1)
	if [ "$rc" -eq 0 ]; then
		echo "ok   $tool $name ($((t1 - t0))s, ${errs:-?} errors)"
	else
		echo "FAIL $tool $name (exit $rc, ${errs:-?} errors, $((t1 - t0))s): see $log and $logs/$name.out"
		failed="$failed $name"
	fi
done
echo "$tool: $nrun programs in $(( $(date +%s) - start ))s"
if [ -n "$failed" ]; then
	echo "$tool: FAILED:$failed"
	exit 1
fi
echo "$tool: all clean"
