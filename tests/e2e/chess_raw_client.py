#!/usr/bin/env python3
"""A raw client for tests/e2e/chess_simul_test.sh: speaks the chess simul's line protocol by hand
to a master started with `chess_simul --serve-only --boards 2`, and checks that it refuses bad
input with ERR replies while it plays on.

Board 0 misbehaves before the game starts (an unknown command, a move out of turn, a line over
the limit, an embedded NUL, a second HELLO), then plays correctly; strangers are turned away (bad
version, no such board, a board taken, no HELLO); board 1 plays correctly from the start. Both
must reach END. Prints "ok <check>" per check, "error <check>: why" on failure; exit 1 if any
failed. Usage: chess_raw_client.py PORT MOVES
"""
import socket
import sys
import threading

PORT = int(sys.argv[1])
MOVES = int(sys.argv[2])
errors = []
lock = threading.Lock()


def report(name, ok, why=""):
    with lock:
        if ok:
            print("ok", name, flush=True)
        else:
            errors.append(name)
            print("error %s: %s" % (name, why), flush=True)


class Conn:
    def __init__(self):
        self.s = socket.create_connection(("127.0.0.1", PORT), timeout=20)
        self.f = self.s.makefile("rb")

    def send(self, data):
        self.s.sendall(data)

    def line(self):
        got = self.f.readline()
        return got.decode("ascii", "replace").rstrip("\n")

    def close(self):
        self.f.close()
        self.s.close()


def expect(conn, name, want):
    got = conn.line()
    report(name, got == want, "got %r, want %r" % (got, want))
    return got == want


def play(conn, board, name):
    """Answers every move of the master until END; every reply must be ACKed."""
    moves = 0
    while True:
        msg = conn.line()
        if msg.startswith("MOVE "):
            n = int(msg.split()[1])
            conn.send(b"ACK %d\n" % n)
            conn.send(b"MOVE %d e7e5\n" % n)
            moves += 1
        elif msg.startswith("ACK "):
            continue
        elif msg.startswith("END "):
            report(name + ": END after %d moves" % MOVES,
                   moves == MOVES and msg == "END %d *" % MOVES,
                   "%r after %d moves" % (msg, moves))
            return
        else:
            report(name + ": plays to the end", False, "unexpected %r at move %d" % (msg, moves))
            return


def main():
    b0 = Conn()
    b0.send(b"HELLO 1 0\n")
    expect(b0, "board 0 is taken: START", "START 0 %d" % MOVES)
    b0.send(b"BOGUS 1 2\n")
    expect(b0, "unknown command: ERR", "ERR unknown-command")
    b0.send(b"MOVE 1 e7e5\n")  # the master moves first: not our turn
    expect(b0, "out-of-turn move: ERR", "ERR out-of-turn")
    b0.send(b"MOVE 1 " + b"x" * 300 + b"\n")
    expect(b0, "over-long line: ERR", "ERR line-too-long")
    b0.send(b"ACK \x00\n")
    expect(b0, "embedded NUL: ERR", "ERR embedded-nul")
    b0.send(b"ACK 99999999999\n")
    expect(b0, "number out of range: ERR", "ERR number-out-of-range")
    b0.send(b"HELLO 1 0\n")
    expect(b0, "second HELLO: ERR", "ERR already-greeted")

    for hello, want, name in [(b"HELLO 2 1\n", "ERR unsupported-version", "bad version"),
                              (b"HELLO 1 7\n", "ERR no-such-board", "no such board"),
                              (b"HELLO 1 0\n", "ERR board-taken", "board taken"),
                              (b"ACK 1\n", "ERR hello-expected", "no HELLO")]:
        c = Conn()
        c.send(hello)
        expect(c, "stranger, %s: ERR" % name, want)
        rest = c.line()  # the master hangs up on it
        report("stranger, %s: disconnected" % name, rest == "", "got %r" % rest)
        c.close()

    b1 = Conn()
    b1.send(b"HELLO 1 1\n")
    expect(b1, "board 1 is taken: START", "START 1 %d" % MOVES)
    t = threading.Thread(target=play, args=(b1, 1, "board 1"))
    t.start()
    play(b0, 0, "board 0 (after its errors)")
    t.join(60)
    b0.close()
    b1.close()
    sys.exit(1 if errors else 0)


main()
