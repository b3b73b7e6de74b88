module goctx/bench/go-io

go 1.19

require goctx/bench/goharness v0.0.0

// The timing harness all Go peers share.
replace goctx/bench/goharness => ../goharness
