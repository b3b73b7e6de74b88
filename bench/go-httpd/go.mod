module goctx/bench/go-httpd

go 1.19
