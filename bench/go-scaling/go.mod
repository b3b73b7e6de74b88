module goctx/bench/go-scaling

go 1.19
