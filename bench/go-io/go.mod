module goctx/bench/go-io

go 1.19
