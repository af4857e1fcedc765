module simulbench/go_http_client

go 1.19
