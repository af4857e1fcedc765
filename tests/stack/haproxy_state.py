#!/usr/bin/python3
"""haproxy_state.py SOCKET BACKEND SERVER — prints the server's operational state from HAProxy's
stats socket (`show servers state`): 0 stopped (DOWN), 1 starting, 2 running (UP), 3 stopping.
Prints "none" if the socket does not answer or the server is not listed."""
import socket
import sys

sock, backend, server = sys.argv[1:4]
try:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(sock)
    s.sendall(b"show servers state " + backend.encode() + b"\n")
    data = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        data += b
    s.close()
except OSError:
    print("none")
    sys.exit(0)
# "# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state ..."
for line in data.decode().splitlines():
    f = line.split()
    if len(f) > 5 and not line.startswith("#") and f[1] == backend and f[3] == server:
        print(f[5])
        sys.exit(0)
print("none")
