// Package goharness is the timing harness of goctx's Go benchmark peers
// (bench/go-NAME): the same knobs and output as bench/bench_util.h.
//
// BENCH_MIN_TIME_MS (default 500) is the minimum duration of one timed run,
// BENCH_RUNS (default 3) the timed runs per op (the best is kept), BENCH_OPS
// a comma-separated list of ops to run (default: all). Bench prints
// "BENCH <op> <ns/op> <bytes/op> <allocs/op>" on stdout and
// "<Tag>: <op> done in <s>" on stderr.
package goharness

import (
	"fmt"
	"math"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// Tag names the program in its progress lines on stderr.
var Tag = "go"

var (
	minTime = 500 * time.Millisecond
	nRuns   = 3
	only    map[string]bool
)

func init() {
	if v := os.Getenv("BENCH_MIN_TIME_MS"); v != "" {
		if ms, err := strconv.Atoi(v); err == nil && ms > 0 {
			minTime = time.Duration(ms) * time.Millisecond
		}
	}
	if v := os.Getenv("BENCH_RUNS"); v != "" {
		if r, err := strconv.Atoi(v); err == nil && r > 0 {
			nRuns = r
		}
	}
	if v := os.Getenv("BENCH_OPS"); v != "" {
		only = map[string]bool{}
		for _, s := range strings.Split(v, ",") {
			if s = strings.TrimSpace(s); s != "" {
				only[s] = true
			}
		}
	}
}

// Wanted reports whether op is to be run (BENCH_OPS).
func Wanted(op string) bool { return only == nil || only[op] }

type runResult struct {
	n             int
	d             time.Duration
	bytes, allocs uint64
}

func timedRun(body func(n int), n int) runResult {
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	t0 := time.Now()
	body(n)
	d := time.Since(t0)
	runtime.ReadMemStats(&m1)
	return runResult{n, d, m1.TotalAlloc - m0.TotalAlloc, m1.Mallocs - m0.Mallocs}
}

func num(x float64) string {
	s := strconv.FormatFloat(x, 'f', 2, 64)
	s = strings.TrimRight(s, "0")
	s = strings.TrimSuffix(s, ".")
	if s == "-0" || s == "" {
		s = "0"
	}
	return s
}

// Bench times body(n) (n iterations of the op): n grows until one run lasts
// the minimum time, then BENCH_RUNS-1 more runs of that n; the best ns/op
// and the mean bytes and allocations per op are printed.
func Bench(op string, body func(n int)) {
	if !Wanted(op) {
		return
	}
	start := time.Now()
	n := 1
	var r runResult
	for {
		r = timedRun(body, n)
		if r.d >= minTime {
			break
		}
		next := n * 100
		if r.d > 0 {
			next = int(float64(n) * 1.2 * float64(minTime) / float64(r.d))
		}
		if next > n*100 {
			next = n * 100
		}
		if next <= n {
			next = n + 1
		}
		n = next
	}
	runs := []runResult{r}
	for len(runs) < nRuns {
		runs = append(runs, timedRun(body, n))
	}
	best := math.Inf(1)
	var ops, bytes, allocs float64
	for _, x := range runs {
		if ns := float64(x.d.Nanoseconds()) / float64(x.n); ns < best {
			best = ns
		}
		ops += float64(x.n)
		bytes += float64(x.bytes)
		allocs += float64(x.allocs)
	}
	fmt.Printf("BENCH %s %.2f %s %s\n", op, best, num(bytes/ops), num(allocs/ops))
	fmt.Fprintf(os.Stderr, "%s: %-26s done in %.1fs\n", Tag, op, time.Since(start).Seconds())
}
