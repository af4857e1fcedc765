module simulbench/go_tls_echo

go 1.19
