// Go peer of bench/chan_bench.c: the same channel operations, measured the
// same way, on Go's channels and goroutines.
//
// Prints one line per operation on stdout:
//
//	BENCH <op> <ns_per_op> <bytes_per_op> <allocs_per_op>
//
// Knobs (environment): BENCH_MIN_TIME_MS (default 500), BENCH_RUNS (default
// 3), BENCH_OPS (comma-separated op names). The ops are described in
// chan_bench.c; here:
//
//	chan_pingpong_unbuffered  a partner goroutine answers each ping on an
//	                          unbuffered channel with a pong on another
//	chan_buffered_throughput  a producer goroutine (started inside the run)
//	                          sends n items on a capacity-128 channel, main
//	                          receives them; ns per item
//	select_4                  select over 4 receive cases, all ready
//	                          (capacity-1 channels holding a value), then
//	                          the value goes back to the channel that fired
//	go_spawn                  go a function that sends one value on a
//	                          capacity-1 channel, and receive it
//
// Build and run offline: GOFLAGS=-mod=mod GOPROXY=off go run .
package main

import (
	"fmt"
	"math"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
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
	fmt.Fprintf(os.Stderr, "go-chan: %-26s done in %.1fs\n", op, time.Since(start).Seconds())
}

func opPingpong() {
	ping, pong := make(chan int64), make(chan int64)
	go func() {
		for v := range ping {
			pong <- v + 1
		}
	}()
	bench("chan_pingpong_unbuffered", func(n int) {
		for i := 0; i < n; i++ {
			ping <- int64(i)
			<-pong
		}
	})
	close(ping)
}

func opThroughput() {
	c := make(chan uint64, 128)
	bench("chan_buffered_throughput", func(n int) {
		go func() {
			for i := 0; i < n; i++ {
				c <- uint64(i)
			}
		}()
		var sum uint64
		for i := 0; i < n; i++ {
			sum += <-c
		}
		if n > 0 && sum != uint64(n)*uint64(n-1)/2 {
			panic("lost items")
		}
	})
}

func opSelect4() {
	var ch [4]chan int64
	for i := range ch {
		ch[i] = make(chan int64, 1)
		ch[i] <- int64(i)
	}
	bench("select_4", func(n int) {
		for i := 0; i < n; i++ {
			select {
			case v := <-ch[0]:
				ch[0] <- v
			case v := <-ch[1]:
				ch[1] <- v
			case v := <-ch[2]:
				ch[2] <- v
			case v := <-ch[3]:
				ch[3] <- v
			}
		}
	})
}

func opSpawn() {
	c := make(chan int64, 1)
	bench("go_spawn", func(n int) {
		for i := 0; i < n; i++ {
			go func() { c <- 1 }()
			<-c
		}
	})
}

func main() {
	fmt.Fprintf(os.Stderr, "go-chan: %s GOMAXPROCS=%d\n", runtime.Version(), runtime.GOMAXPROCS(0))
	opPingpong()
	opThroughput()
	opSelect4()
	opSpawn()
}
