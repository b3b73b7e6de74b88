module goctx/bench/go-chan

go 1.19
