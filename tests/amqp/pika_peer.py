#!/usr/bin/python3
# pika_peer.py — the other side of test_amqp_broker's interop case, written with pika (Debian's
# python3-pika; run it with /usr/bin/python3). The idea: each side checks what the other sent, byte
# for byte and property by property, so a codec mismatch fails whichever way it goes.
#   pika_peer.py consume PORT QUEUE N   expects simul's N messages (body i: i*10 bytes, letters
#                                       from 'a', message_id id-i, headers n=i, s=simul)
#   pika_peer.py publish PORT QUEUE N   publishes N messages (body i: i*10 bytes from 'A',
#                                       message_id pika-i, content_type text/x-pika, header n=i)
import sys

import pika


def main():
    mode, port, queue, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    params = pika.ConnectionParameters(host="127.0.0.1", port=port,
                                       credentials=pika.PlainCredentials("guest", "guest"),
                                       blocked_connection_timeout=30, socket_timeout=30)
    conn = pika.BlockingConnection(params)
    ch = conn.channel()
    if mode == "publish":
        ch.confirm_delivery()
        for i in range(n):
            body = bytes(ord("A") + (i + j) % 26 for j in range(i * 10))
            props = pika.BasicProperties(content_type="text/x-pika", message_id="pika-%d" % i,
                                         headers={"n": i}, delivery_mode=2)
            ch.basic_publish(exchange="", routing_key=queue, body=body, properties=props)
        conn.close()
        return 0
    got = 0
    for method, props, body in ch.consume(queue, inactivity_timeout=30):
        if method is None:
            print("pika_peer: timed out after %d messages" % got, file=sys.stderr)
            return 1
        i = got
        want = bytes(ord("a") + (i + j) % 26 for j in range(i * 10))
        if body != want:
            print("pika_peer: body %d differs" % i, file=sys.stderr)
            return 1
        if props.message_id != "id-%d" % i or props.content_type != "application/x-test":
            print("pika_peer: properties %d: %r" % (i, props), file=sys.stderr)
            return 1
        if props.headers != {"n": i, "s": b"simul"} and props.headers != {"n": i, "s": "simul"}:
            print("pika_peer: headers %d: %r" % (i, props.headers), file=sys.stderr)
            return 1
        if props.delivery_mode != 2:
            print("pika_peer: delivery_mode %d" % i, file=sys.stderr)
            return 1
        ch.basic_ack(method.delivery_tag)
        got += 1
        if got == n:
            break
    ch.cancel()
    conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
