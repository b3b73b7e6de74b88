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
	"goctx/bench/goharness"
	"io"
	"net"
	"os"
	"runtime"
	"syscall"
	"time"
)

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
	goharness.Bench("io_read_ready_bare", readBody(func(b []byte) (int, error) { return syscall.Read(rfd, b) }, w, rfd))
	syscall.Close(rfd)
	w.Close()

	// Through the poller, with a deadline.
	r, w2, err := os.Pipe()
	if err != nil {
		panic(err)
	}
	r.SetReadDeadline(time.Now().Add(time.Hour))
	goharness.Bench("io_read_ready_ctx", readBody(r.Read, w2, 0))
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
	if !goharness.Wanted("io_pingpong_socketpair") {
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
	goharness.Bench("io_pingpong_socketpair", func(n int) {
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
	goharness.Tag = "go-io"
	fmt.Fprintf(os.Stderr, "go-io: %s GOMAXPROCS=%d\n", runtime.Version(), runtime.GOMAXPROCS(0))
	opRead()
	opPingpong()
}
