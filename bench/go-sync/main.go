// Go peer of bench/sync_bench.c: the same operations on Go's
// sync.WaitGroup, golang.org/x/sync/errgroup (Debian's
// golang-golang-x-sync-dev) and the context.AfterFunc merge recipe
// (ExampleAfterFunc_merge), measured the same way.
//
// Prints one line per operation on stdout:
//
//	BENCH <op> <ns_per_op> <bytes_per_op> <allocs_per_op>
//
// Knobs (environment): BENCH_MIN_TIME_MS (default 500), BENCH_RUNS (default
// 3), BENCH_OPS (comma-separated op names). The ops are described in
// sync_bench.c.
//
// Build and run offline: GOFLAGS=-mod=mod GOPROXY=off go run .
package main

import (
	"context"
	"fmt"
	"math"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
)

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

func wanted(op string) bool { return only == nil || only[op] }

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

func bench(op string, body func(n int)) {
	if !wanted(op) {
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
	fmt.Fprintf(os.Stderr, "go-sync: %-26s done in %.1fs\n", op, time.Since(start).Seconds())
}

const wakers = 4

func opWake() {
	if !wanted("waitgroup_wake_4") {
		return
	}
	var goWG [2]sync.WaitGroup
	var ack sync.WaitGroup
	var stop bool
	var mu sync.Mutex
	round := 0
	goWG[0].Add(1)
	var done sync.WaitGroup
	done.Add(wakers)
	for i := 0; i < wakers; i++ {
		go func() {
			defer done.Done()
			for r := 0; ; r++ {
				goWG[r%2].Wait()
				mu.Lock()
				s := stop
				mu.Unlock()
				ack.Done()
				if s {
					return
				}
			}
		}()
	}
	bench("waitgroup_wake_4", func(n int) {
		for i := 0; i < n; i++ {
			ack.Add(wakers)
			goWG[(round+1)%2].Add(1)
			goWG[round%2].Done()
			ack.Wait()
			round++
		}
	})
	mu.Lock()
	stop = true
	mu.Unlock()
	ack.Add(wakers)
	goWG[round%2].Done()
	ack.Wait()
	done.Wait()
}

// The merge recipe of context.AfterFunc's documentation.
func mergeCancel(ctx, cancelCtx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(ctx)
	stop := context.AfterFunc(cancelCtx, func() {
		cancel(context.Cause(cancelCtx))
	})
	return ctx, func() {
		stop()
		cancel(context.Canceled)
	}
}

func goWait(n, k int) {
	for i := 0; i < n; i++ {
		g, gctx := errgroup.WithContext(context.Background())
		for j := 0; j < k; j++ {
			g.Go(func() error { _ = gctx; return nil })
		}
		_ = g.Wait()
	}
}

func main() {
	fmt.Fprintf(os.Stderr, "go-sync: %s GOMAXPROCS=%d\n", runtime.Version(), runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	bench("waitgroup_add_done", func(n int) {
		for i := 0; i < n; i++ {
			wg.Add(1)
			wg.Done()
		}
	})
	bench("waitgroup_wait_zero", func(n int) {
		for i := 0; i < n; i++ {
			wg.Wait()
		}
	})
	opWake()
	bench("errgroup_go_wait_1", func(n int) { goWait(n, 1) })
	bench("errgroup_go_wait_100", func(n int) { goWait(n, 100) })
	request, rcancel := context.WithCancel(context.Background())
	shutdown, scancel := context.WithCancel(context.Background())
	bench("merge_create_cancel", func(n int) {
		for i := 0; i < n; i++ {
			_, cancel := mergeCancel(request, shutdown)
			cancel()
		}
	})
	rcancel()
	scancel()
}
