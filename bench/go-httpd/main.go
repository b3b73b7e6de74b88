// Go peer of examples/httpd.c: net/http with the same routes, limits and
// timeouts, for bench/httpd_compare.sh to put under the same wrk run.
//
//	go-httpd [-p PORT]      (first line on stdout: listening on 127.0.0.1:PORT)
//
//	GET  /hello        "hello, world"
//	GET  /sleep?ms=N   sleeps N ms unless the request's context ends first
//	                   (then 504 at the deadline)
//	POST /echo         the body back (at most 1 MiB)
//
// Per request: a 10 s timeout, shrunk by a shorter grpc-timeout header;
// ReadHeaderTimeout and IdleTimeout 5 s; headers at most 8 KiB. SIGINT or
// SIGTERM: Shutdown with a 5 s deadline, then exit 0.
//
// Build offline: GOFLAGS=-mod=mod GOPROXY=off go build .
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

const requestTimeout = 10 * time.Second

// grpcTimeout parses a grpc-timeout value as grpc-go does.
func grpcTimeout(s string) (time.Duration, bool) {
	if len(s) < 2 || len(s) > 9 {
		return 0, false
	}
	units := map[byte]time.Duration{'H': time.Hour, 'M': time.Minute, 'S': time.Second,
		'm': time.Millisecond, 'u': time.Microsecond, 'n': time.Nanosecond}
	d, ok := units[s[len(s)-1]]
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseUint(s[:len(s)-1], 10, 64)
	if err != nil {
		return 0, false
	}
	if d == time.Hour && v > uint64((1<<63-1)/int64(time.Hour)) {
		return 1<<63 - 1, true
	}
	return d * time.Duration(v), true
}

func withDeadline(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		timeout := requestTimeout
		if v := r.Header.Get("grpc-timeout"); v != "" {
			d, ok := grpcTimeout(v)
			if !ok {
				http.Error(w, "malformed grpc-timeout", http.StatusBadRequest)
				return
			}
			if d < timeout {
				timeout = d
			}
		}
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		defer cancel()
		h.ServeHTTP(w, r.WithContext(ctx))
	})
}

func text(w http.ResponseWriter, code int, s string) {
	w.Header().Set("Content-Type", "text/plain")
	w.Header().Set("Content-Length", strconv.Itoa(len(s)))
	w.WriteHeader(code)
	io.WriteString(w, s)
}

func main() {
	port := flag.Int("p", 8080, "port (0: a free one)")
	flag.Parse()
	mux := http.NewServeMux()
	mux.HandleFunc("/hello", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			text(w, http.StatusMethodNotAllowed, "GET only\n")
			return
		}
		text(w, http.StatusOK, "hello, world\n")
	})
	mux.HandleFunc("/sleep", func(w http.ResponseWriter, r *http.Request) {
		ms, err := strconv.ParseInt(r.URL.Query().Get("ms"), 10, 64)
		if err != nil || ms < 0 {
			text(w, http.StatusBadRequest, "/sleep?ms=N\n")
			return
		}
		t := time.NewTimer(time.Duration(ms) * time.Millisecond)
		defer t.Stop()
		select {
		case <-t.C:
			text(w, http.StatusOK, fmt.Sprintf("slept %d ms\n", ms))
		case <-r.Context().Done():
			text(w, http.StatusGatewayTimeout, "context deadline exceeded\n")
		}
	})
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost && r.Method != http.MethodPut {
			text(w, http.StatusMethodNotAllowed, "POST a body\n")
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
		if err != nil {
			text(w, http.StatusRequestEntityTooLarge, "body too large\n")
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body)
	})
	srv := &http.Server{
		Handler:           withDeadline(mux),
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       5 * time.Second,
		MaxHeaderBytes:    8 << 10,
	}
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", *port))
	if err != nil {
		fmt.Fprintln(os.Stderr, "go-httpd:", err)
		os.Exit(1)
	}
	fmt.Printf("listening on %s\n", l.Addr())
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	if err := srv.Serve(l); err != http.ErrServerClosed {
		fmt.Fprintln(os.Stderr, "go-httpd:", err)
		os.Exit(1)
	}
	<-drained // Serve returns as Shutdown begins; Shutdown returns once drained
	fmt.Println("go-httpd: stopped")
}
