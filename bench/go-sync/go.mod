module goctx/bench/go-sync

go 1.21

require (
	goctx/bench/goharness v0.0.0
	golang.org/x/sync v0.1.0
)

// Debian's golang-golang-x-sync-dev, so the build needs no network
// (GOFLAGS=-mod=mod GOPROXY=off).
replace golang.org/x/sync => /usr/share/gocode/src/golang.org/x/sync

// The timing harness all Go peers share.
replace goctx/bench/goharness => ../goharness
