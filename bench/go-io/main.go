// Go peer of bench/io_bench.c: the same I/O operations, measured the same
// way, on Go's os.File and net.Conn (the runtime's poller and deadlines).
//
// Prints one line per operation on stdout:
//
//	BENCH <op> <ns_per_op> <bytes_per_op> <allocs_per_op>
//
// Knobs (environment): BENCH_MIN_TIME_MS (default 500), BENCH_RUNS (default
// 3), BENCH_OPS (comma-separated op names). The ops are described in
// io_bench.c; here:
//
//	io_read_ready_bare      syscall.Read of 1 byte from a pipe holding data
//	io_read_ready_ctx       (*os.File).Read of 1 byte from an os.Pipe (in the
//	                        runtime poller) with a read deadline set
//	io_pingpong_socketpair  64 bytes each way over a socket pair wrapped in
//	                        net.FileConn, two goroutines, each side setting
//	                        SetDeadline(now + 1 s) per request
//
// Build and run offline: GOFLAGS=-mod=mod GOPROXY=off go run .
package main

import (
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
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
	fmt.Fprintf(os.Stderr, "go-io: %-26s done in %.1fs\n", op, time.Since(start).Seconds())
}


const chunk = 4096

var fill = make([]byte, chunk)

func readBody(r func([]byte) (int, error), w *os.File, rfd int) func(n int) {
	return func(n int) {
		b := make([]byte, 1)
		for i := 0; i < n; i++ {
			if i%chunk == 0 {
				if _, err := w.Write(fill); err != nil {
					panic(err)
				}
			}
			if k, err := r(b); k != 1 || err != nil {
				panic(fmt.Sprint("read: ", k, err))
			}
		}
		left := (chunk - n%chunk) % chunk
		sink := make([]byte, chunk)
		for left > 0 {
			k, err := r(sink[:left])
			if err != nil {
				panic(err)
			}
			left -= k
		}
	}
}

func opRead() {
	// Bare: a pipe outside the poller (blocking descriptors).
	var p [2]int
	if err := syscall.Pipe(p[:]); err != nil {
		panic(err)
	}
	w := os.NewFile(uintptr(p[1]), "w")
	rfd := p[0]
	bench("io_read_ready_bare", readBody(func(b []byte) (int, error) { return syscall.Read(rfd, b) }, w, rfd))
	syscall.Close(rfd)
	w.Close()

	// Through the poller, with a deadline.
	r, w2, err := os.Pipe()
	if err != nil {
		panic(err)
	}
	r.SetReadDeadline(time.Now().Add(time.Hour))
	bench("io_read_ready_ctx", readBody(r.Read, w2, 0))
	r.Close()
	w2.Close()
}

func fileConn(fd int) net.Conn {
	f := os.NewFile(uintptr(fd), "sock")
	c, err := net.FileConn(f)
	if err != nil {
		panic(err)
	}
	f.Close()
	return c
}

func opPingpong() {
	if !wanted("io_pingpong_socketpair") {
		return
	}
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		panic(err)
	}
	a, b := fileConn(fds[0]), fileConn(fds[1])
	go func() {
		buf := make([]byte, 64)
		for {
			b.SetDeadline(time.Now().Add(time.Second))
			if _, err := io.ReadFull(b, buf); err != nil {
				return
			}
			if _, err := b.Write(buf); err != nil {
				return
			}
		}
	}()
	buf := make([]byte, 64)
	bench("io_pingpong_socketpair", func(n int) {
		for i := 0; i < n; i++ {
			a.SetDeadline(time.Now().Add(time.Second))
			if _, err := a.Write(buf); err != nil {
				panic(err)
			}
			if _, err := io.ReadFull(a, buf); err != nil {
				panic(err)
			}
		}
	})
	a.Close()
	b.Close()
}

func main() {
	fmt.Fprintf(os.Stderr, "go-io: %s GOMAXPROCS=%d\n", runtime.Version(), runtime.GOMAXPROCS(0))
	opRead()
	opPingpong()
}
