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
	"goctx/bench/goharness"
	"os"
	"runtime"
	"sync"

	"golang.org/x/sync/errgroup"
)

const wakers = 4

func opWake() {
	if !goharness.Wanted("waitgroup_wake_4") {
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
	goharness.Bench("waitgroup_wake_4", func(n int) {
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
	goharness.Tag = "go-sync"
	fmt.Fprintf(os.Stderr, "go-sync: %s GOMAXPROCS=%d\n", runtime.Version(), runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	goharness.Bench("waitgroup_add_done", func(n int) {
		for i := 0; i < n; i++ {
			wg.Add(1)
			wg.Done()
		}
	})
	goharness.Bench("waitgroup_wait_zero", func(n int) {
		for i := 0; i < n; i++ {
			wg.Wait()
		}
	})
	opWake()
	goharness.Bench("errgroup_go_wait_1", func(n int) { goWait(n, 1) })
	goharness.Bench("errgroup_go_wait_100", func(n int) { goWait(n, 100) })
	request, rcancel := context.WithCancel(context.Background())
	shutdown, scancel := context.WithCancel(context.Background())
	goharness.Bench("merge_create_cancel", func(n int) {
		for i := 0; i < n; i++ {
			_, cancel := mergeCancel(request, shutdown)
			cancel()
		}
	})
	rcancel()
	scancel()
}
