module simulbench/go_amqp

go 1.19
