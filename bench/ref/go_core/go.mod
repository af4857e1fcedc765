module simulbench/go_core

go 1.19
