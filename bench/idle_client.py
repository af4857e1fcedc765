#!/usr/bin/env python3
"""bench/run_idle.sh's client: opens N TCP connections to an echo server, makes each echo one
64-byte message (so every server-side handler has run and read once), then holds them all open
and idle. Prints "held N" once all are echoed, then waits until stdin closes or SIGTERM.

Usage: idle_client.py --host H --port P --connections N"""
import argparse
import resource
import signal
import socket
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", required=True)
    ap.add_argument("--port", required=True, type=int)
    ap.add_argument("--connections", required=True, type=int)
    a = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < a.connections + 64 and soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    msg = bytes(range(64))
    socks = []
    for i in range(a.connections):
        s = socket.create_connection((a.host, a.port), timeout=30)
        s.sendall(msg)
        got = b""
        while len(got) < len(msg):
            part = s.recv(len(msg) - len(got))
            if not part:
                sys.exit(f"idle_client: connection {i} closed before its echo")
            got += part
        if got != msg:
            sys.exit(f"idle_client: connection {i}: echo differs")
        socks.append(s)
    print(f"held {len(socks)}", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    sys.stdin.read()  # until the script closes our stdin


if __name__ == "__main__":
    main()
