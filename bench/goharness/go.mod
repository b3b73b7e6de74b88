module goctx/bench/goharness

go 1.19
