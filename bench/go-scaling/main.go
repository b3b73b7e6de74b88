// go-scaling: the Go side of goctx's scaling run (bench/scaling.c is the C
// side; bench/scaling.sh runs both and draws docs/scaling.png). The same
// series, measured the same way, on Go's own context package.
//
// Prints lines `SCALE <series> <N> <ns>` on stdout:
//
//	timer       ns per WithTimeout(root, 1h) + cancel, while N other contexts
//	            with 1h timeouts (children of Background) are pending
//	timer_rand  the same, every timeout drawn from [1h, 2h]
//	fanout      ns per node to cancel a root with N WithCancel children
//	fanout_all  ns per node for building the N children, cancelling the root
//	            and calling the children's cancel funcs
//	tree10      ns per node to cancel the root of a complete 10-ary tree of
//	            N WithCancel contexts
//
// Knobs: SCALE_SIZES, SCALE_MIN_TIME_MS (default 200), SCALE_SERIES, as the
// C program.
package main

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

var (
	minTime = 200 * time.Millisecond
	series  map[string]bool
)

func wanted(s string) bool { return series == nil || series[s] }

func emit(s string, n int, ns float64) {
	fmt.Printf("SCALE %s %d %.2f\n", s, n, ns)
	os.Stdout.Sync()
}

func reps(n int) int {
	r := 1000000 / n
	if r < 3 {
		r = 3
	}
	if r > 50 {
		r = 50
	}
	return r
}

func scaleTimer(pending int, randDurs bool) {
	name := "timer"
	if randDurs {
		name = "timer_rand"
	}
	if !wanted(name) {
		return
	}
	bg := context.Background()
	rng := rand.New(rand.NewSource(1))
	randHour := func() time.Duration { return time.Hour + time.Duration(rng.Int63n(int64(time.Hour))) }
	others := make([]context.CancelFunc, pending)
	for i := range others {
		d := time.Hour
		if randDurs {
			d = randHour()
		}
		_, others[i] = context.WithTimeout(bg, d)
	}
	durs := make([]time.Duration, 4096)
	for i := range durs {
		durs[i] = randHour()
	}
	root, rc := context.WithCancel(bg)
	run := func(n int) time.Duration {
		runtime.GC()
		t0 := time.Now()
		if randDurs {
			for i := 0; i < n; i++ {
				_, cancel := context.WithTimeout(root, durs[i&4095])
				cancel()
			}
		} else {
			for i := 0; i < n; i++ {
				_, cancel := context.WithTimeout(root, time.Hour)
				cancel()
			}
		}
		return time.Since(t0)
	}
	n := 1000
	var d time.Duration
	for {
		d = run(n)
		if d >= minTime {
			break
		}
		next := n * 100
		if d > 0 {
			next = int(float64(n) * 1.2 * float64(minTime) / float64(d))
		}
		if next > n*100 {
			next = n * 100
		}
		if next <= n {
			next = n + 1
		}
		n = next
	}
	best := d
	for r := 1; r < 3; r++ {
		if d = run(n); d < best {
			best = d
		}
	}
	emit(name, pending, float64(best.Nanoseconds())/float64(n))
	rc()
	for _, c := range others {
		c()
	}
}

func scaleFanout(n int) {
	if !wanted("fanout") && !wanted("fanout_all") {
		return
	}
	bg := context.Background()
	cancels := make([]context.CancelFunc, n)
	best, bestAll := time.Duration(1<<62), time.Duration(1<<62)
	for r := reps(n); r > 0; r-- {
		runtime.GC()
		t0 := time.Now()
		root, rc := context.WithCancel(bg)
		for j := range cancels {
			_, cancels[j] = context.WithCancel(root)
		}
		t1 := time.Now()
		rc()
		c := time.Since(t1)
		for _, f := range cancels {
			f()
		}
		all := time.Since(t0)
		if c < best {
			best = c
		}
		if all < bestAll {
			bestAll = all
		}
	}
	if wanted("fanout") {
		emit("fanout", n, float64(best.Nanoseconds())/float64(n))
	}
	if wanted("fanout_all") {
		emit("fanout_all", n, float64(bestAll.Nanoseconds())/float64(n))
	}
}

func scaleTree10(n int) {
	if !wanted("tree10") {
		return
	}
	bg := context.Background()
	ctxs := make([]context.Context, n)
	cancels := make([]context.CancelFunc, n)
	best := time.Duration(1 << 62)
	for r := reps(n); r > 0; r-- {
		for i := 0; i < n; i++ {
			parent := bg
			if i > 0 {
				parent = ctxs[(i-1)/10]
			}
			ctxs[i], cancels[i] = context.WithCancel(parent)
		}
		runtime.GC()
		t0 := time.Now()
		cancels[0]()
		c := time.Since(t0)
		for i := n - 1; i > 0; i-- {
			cancels[i]()
		}
		if c < best {
			best = c
		}
	}
	emit("tree10", n, float64(best.Nanoseconds())/float64(n))
}

func main() {
	if v := os.Getenv("SCALE_MIN_TIME_MS"); v != "" {
		if ms, err := strconv.Atoi(v); err == nil && ms > 0 {
			minTime = time.Duration(ms) * time.Millisecond
		}
	}
	if v := os.Getenv("SCALE_SERIES"); v != "" {
		series = map[string]bool{}
		for _, s := range strings.Split(v, ",") {
			series[strings.TrimSpace(s)] = true
		}
	}
	sizes := os.Getenv("SCALE_SIZES")
	if sizes == "" {
		sizes = "1000,10000,100000,1000000"
	}
	fmt.Fprintf(os.Stderr, "go-scaling: %s GOMAXPROCS=%d\n", runtime.Version(), runtime.GOMAXPROCS(0))
	for _, s := range strings.Split(sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n <= 0 {
			fmt.Fprintf(os.Stderr, "go-scaling: bad SCALE_SIZES=%s\n", sizes)
			os.Exit(2)
		}
		t0 := time.Now()
		scaleTimer(n, false)
		scaleTimer(n, true)
		scaleFanout(n)
		scaleTree10(n)
		fmt.Fprintf(os.Stderr, "go-scaling: N=%d done in %.1fs\n", n, time.Since(t0).Seconds())
	}
}
