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
//	select_ctx_case           select over a ready receive case (a
//	                          capacity-1 channel holding a value) and
//	                          <-ctx.Done() of a live context, then the value
//	                          goes back
//	select_ctx_pingpong       chan_pingpong_unbuffered with main's receive
//	                          a select over the pong channel and
//	                          <-ctx.Done() of a live context (it blocks)
//	go_spawn                  go a function that sends one value on a
//	                          capacity-1 channel, and receive it
//
// Build and run offline: GOFLAGS=-mod=mod GOPROXY=off go run .
package main

import (
	"context"
	"fmt"
	"goctx/bench/goharness"
	"os"
	"runtime"
)

func opPingpong() {
	ping, pong := make(chan int64), make(chan int64)
	go func() {
		for v := range ping {
			pong <- v + 1
		}
	}()
	goharness.Bench("chan_pingpong_unbuffered", func(n int) {
		for i := 0; i < n; i++ {
			ping <- int64(i)
			<-pong
		}
	})
	close(ping)
}

func opThroughput() {
	c := make(chan uint64, 128)
	goharness.Bench("chan_buffered_throughput", func(n int) {
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
	goharness.Bench("select_4", func(n int) {
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

func opSelectCtx() {
	c := make(chan int64, 1)
	c <- 1
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	goharness.Bench("select_ctx_case", func(n int) {
		for i := 0; i < n; i++ {
			select {
			case v := <-c:
				c <- v
			case <-ctx.Done():
				panic("select_ctx_case: context fired")
			}
		}
	})
}

func opSelectCtxPingpong() {
	ping, pong := make(chan int64), make(chan int64)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for v := range ping {
			pong <- v + 1
		}
	}()
	goharness.Bench("select_ctx_pingpong", func(n int) {
		for i := 0; i < n; i++ {
			ping <- int64(i)
			select {
			case <-pong:
			case <-ctx.Done():
				panic("select_ctx_pingpong: context fired")
			}
		}
	})
	close(ping)
}

func opSpawn() {
	c := make(chan int64, 1)
	goharness.Bench("go_spawn", func(n int) {
		for i := 0; i < n; i++ {
			go func() { c <- 1 }()
			<-c
		}
	})
}

func main() {
	goharness.Tag = "go-chan"
	fmt.Fprintf(os.Stderr, "go-chan: %s GOMAXPROCS=%d\n", runtime.Version(), runtime.GOMAXPROCS(0))
	opPingpong()
	opThroughput()
	opSelect4()
	opSelectCtx()
	opSelectCtxPingpong()
	opSpawn()
}
