// go_amqp — the Go reference for bench/run_amqp.sh: Debian's amqp091-go
// (golang-github-rabbitmq-amqp091-go-dev), doing what examples/amqp_work_queue does so the two
// can be timed side by side on the same broker: publish N messages of B bytes with confirms, a
// window of W in flight (publish W, then take W confirmations), or consume N with a prefetch K
// and acknowledge them in groups of K/2 (multiple). Prints confirmed=N / consumed=N.
//
//   go_amqp URL publish QUEUE N B W TRANSIENT(0|1)
//   go_amqp URL consume QUEUE N K
package main

import (
	"fmt"
	"os"
	"strconv"

	amqp "github.com/rabbitmq/amqp091-go"
)

func die(f string, a ...interface{}) {
	fmt.Fprintf(os.Stderr, "go_amqp: "+f+"\n", a...)
	os.Exit(1)
}

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		die("bad number %q", s)
	}
	return n
}

func main() {
	if len(os.Args) < 5 {
		die("usage: go_amqp URL publish|consume QUEUE N ...")
	}
	url, mode, queue, n := os.Args[1], os.Args[2], os.Args[3], atoi(os.Args[4])
	conn, err := amqp.Dial(url)
	if err != nil {
		die("dial: %v", err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		die("channel: %v", err)
	}
	if _, err := ch.QueueDeclare(queue, true, false, false, false, nil); err != nil {
		die("declare: %v", err)
	}
	switch mode {
	case "publish":
		size, window := atoi(os.Args[5]), atoi(os.Args[6])
		mode := amqp.Persistent
		if os.Args[7] == "1" {
			mode = amqp.Transient
		}
		if err := ch.Confirm(false); err != nil {
			die("confirm: %v", err)
		}
		confirms := ch.NotifyPublish(make(chan amqp.Confirmation, window))
		body := make([]byte, size)
		done := 0
		for done < n {
			k := 0
			for k < window && done+k < n {
				err := ch.Publish("", queue, false, false, amqp.Publishing{
					DeliveryMode: mode, ContentType: "application/octet-stream", Body: body})
				if err != nil {
					die("publish: %v", err)
				}
				k++
			}
			for i := 0; i < k; i++ {
				c := <-confirms
				if !c.Ack {
					die("nack %d", c.DeliveryTag)
				}
			}
			done += k
		}
		fmt.Printf("confirmed=%d\n", done)
	case "consume":
		prefetch := atoi(os.Args[5])
		if err := ch.Qos(prefetch, 0, false); err != nil {
			die("qos: %v", err)
		}
		msgs, err := ch.Consume(queue, "", false, false, false, false, nil)
		if err != nil {
			die("consume: %v", err)
		}
		group := prefetch / 2
		if group < 1 {
			group = 1
		}
		got, pending := 0, 0
		for m := range msgs {
			got++
			pending++
			if pending >= group || got == n {
				if err := m.Ack(true); err != nil {
					die("ack: %v", err)
				}
				pending = 0
			}
			if got == n {
				break
			}
		}
		fmt.Printf("consumed=%d\n", got)
	default:
		die("unknown mode %s", mode)
	}
}
