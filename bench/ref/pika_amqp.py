#!/usr/bin/python3
# pika_amqp.py — the Python reference for bench/run_amqp.sh (Debian's python3-pika, run with
# /usr/bin/python3): the same work as examples/amqp_work_queue. pika's BlockingConnection waits
# for each publish's confirm before the next (its API has no window), which is the usual way
# Python services publish with confirms; consume takes a prefetch and acks in groups (multiple).
#   pika_amqp.py URL publish QUEUE N B W TRANSIENT(0|1)     (W is ignored: one at a time)
#   pika_amqp.py URL consume QUEUE N K
import sys

import pika


def main():
    url, mode, queue, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    conn = pika.BlockingConnection(pika.URLParameters(url))
    ch = conn.channel()
    ch.queue_declare(queue, durable=True)
    if mode == "publish":
        size, transient = int(sys.argv[5]), sys.argv[7] == "1"
        ch.confirm_delivery()
        body = bytes(size)
        props = pika.BasicProperties(delivery_mode=1 if transient else 2,
                                     content_type="application/octet-stream")
        for _ in range(n):
            ch.basic_publish("", queue, body, props)
        print("confirmed=%d" % n)
    else:
        prefetch = int(sys.argv[5])
        group = max(prefetch // 2, 1)
        ch.basic_qos(prefetch_count=prefetch)
        got = pending = 0
        for method, _props, _body in ch.consume(queue):
            got += 1
            pending += 1
            if pending >= group or got == n:
                ch.basic_ack(method.delivery_tag, multiple=True)
                pending = 0
            if got == n:
                break
        ch.cancel()
        print("consumed=%d" % got)
    conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
