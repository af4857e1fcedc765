#!/usr/bin/env python3
"""A raw client for tests/e2e/chess_simul_test.sh: speaks the chess simul's line protocol by hand
to a master started with `chess_simul --serve-only --boards 2`, and checks that it refuses bad
input with ERR replies while it plays on.

Board 0 misbehaves before the game starts (an unknown command, a move out of turn, a line over
the limit, an embedded NUL, a second HELLO), then plays correctly; strangers are turned away (bad
version, no such board, a board taken, no HELLO); board 1 answers the master's first move with
well-formed but illegal moves (a white pawn's, castling through its own pieces), which must get
ERR illegal-move while the game goes on. Both play legal replies (a small move generator below,
which also checks that every move of the master is legal) and must reach END. Prints
"ok <check>" per check, "error <check>: why" on failure; exit 1 if any failed.
Usage: chess_raw_client.py PORT MOVES

With --master it plays the other side instead: it listens (printing "listening on PORT"), takes
one opponent (`chess_simul --opponents-only --boards 1 --moves 2 ...`), sends it illegal and
out-of-turn moves, which must get ERR while the opponent plays on, then plays two moves and
checks that the opponent's replies are legal.
Usage: chess_raw_client.py --master
"""
import socket
import sys
import threading

# ---- just enough chess to find a legal reply: squares 0 (a1) .. 63 (h8), pieces as in FEN ----
KNIGHT = [(1, 2), (2, 1), (2, -1), (1, -2), (-1, -2), (-2, -1), (-2, 1), (-1, 2)]
KING = [(1, 0), (1, 1), (0, 1), (-1, 1), (-1, 0), (-1, -1), (0, -1), (1, -1)]
DIAG, LINE = KING[1::2], KING[0::2]


def start_board():
    return {"sq": list("RNBQKBNR" + "P" * 8 + "." * 32 + "p" * 8 + "rnbqkbnr"), "white": True,
            "ep": None}


def mine(piece, white):
    return piece != "." and piece.isupper() == white


def attacked(sq, b, by_white):
    f, r = sq % 8, sq // 8

    def at(df, dr):
        ff, rr = f + df, r + dr
        return b[rr * 8 + ff] if 0 <= ff < 8 and 0 <= rr < 8 else None

    def own(p):
        return p.upper() if by_white else p.lower()

    dr = -1 if by_white else 1
    if own("P") in (at(-1, dr), at(1, dr)):
        return True
    if any(at(*d) == own("N") for d in KNIGHT) or any(at(*d) == own("K") for d in KING):
        return True
    for dirs, pieces in ((DIAG, "BQ"), (LINE, "RQ")):
        for df, dr in dirs:
            k = 1
            while True:
                p = at(df * k, dr * k)
                if p is None:
                    break
                if p != ".":
                    if p in (own(x) for x in pieces):
                        return True
                    break
                k += 1
    return False


def make(pos, mv):
    """A new position after the UCI move mv (trusted to be pseudo-legal)."""
    b = list(pos["sq"])
    fr = ord(mv[0]) - 97 + (ord(mv[1]) - 49) * 8
    to = ord(mv[2]) - 97 + (ord(mv[3]) - 49) * 8
    piece = b[fr]
    if piece in "Pp" and to == pos["ep"] and b[to] == ".":
        b[to - 8 if piece == "P" else to + 8] = "."
    if piece in "Kk" and abs(to - fr) == 2:
        rook_from, rook_to = (fr + 3, fr + 1) if to > fr else (fr - 4, fr - 1)
        b[rook_to], b[rook_from] = b[rook_from], "."
    b[to] = (mv[4].upper() if pos["white"] else mv[4]) if len(mv) == 5 else piece
    b[fr] = "."
    ep = (fr + to) // 2 if piece in "Pp" and abs(to - fr) == 16 else None
    return {"sq": b, "white": not pos["white"], "ep": ep}


def name(fr, to, promo=""):
    return "%c%d%c%d%s" % (97 + fr % 8, fr // 8 + 1, 97 + to % 8, to // 8 + 1, promo)


def legal_moves(pos):
    """Every legal move but castling (a reply needs no castling; the master's castling moves
    are checked by make() + the king test in is_legal)."""
    b, white, out = pos["sq"], pos["white"], []
    for fr, piece in enumerate(b):
        if not mine(piece, white):
            continue
        f, r, kind = fr % 8, fr // 8, piece.upper()

        def to_sq(df, dr):
            ff, rr = f + df, r + dr
            return rr * 8 + ff if 0 <= ff < 8 and 0 <= rr < 8 else None

        if kind == "P":
            dr = 1 if white else -1
            last = 7 if white else 0
            one = to_sq(0, dr)
            targets = []
            if one is not None and b[one] == ".":
                targets.append(one)
                two = to_sq(0, 2 * dr)
                if r == (1 if white else 6) and b[two] == ".":
                    targets.append(two)
            for df in (-1, 1):
                t = to_sq(df, dr)
                if t is not None and ((b[t] != "." and not mine(b[t], white)) or t == pos["ep"]):
                    targets.append(t)
            for t in targets:
                out += [name(fr, t, p) for p in "qrbn"] if t // 8 == last else [name(fr, t)]
        elif kind in "NK":
            for d in KNIGHT if kind == "N" else KING:
                t = to_sq(*d)
                if t is not None and not mine(b[t], white):
                    out.append(name(fr, t))
        else:
            dirs = DIAG if kind == "B" else LINE if kind == "R" else KING
            for df, dr in dirs:
                k = 1
                while True:
                    t = to_sq(df * k, dr * k)
                    if t is None or mine(b[t], white):
                        break
                    out.append(name(fr, t))
                    if b[t] != ".":
                        break
                    k += 1
    return [mv for mv in out if is_legal(pos, mv)]


def is_legal(pos, mv):
    after = make(pos, mv)
    king = after["sq"].index("K" if pos["white"] else "k")
    return not attacked(king, after["sq"], not pos["white"])


def master_move_ok(pos, mv):
    """The master's move (white): legal, castling included (whether the king or rook moved
    before is not tracked: enough to catch a generator gone wrong, not a proof)."""
    if mv in legal_moves(pos):
        return True
    b = pos["sq"]
    castles = {"e1g1": (4, [5, 6], [4, 5, 6], 7), "e1c1": (4, [3, 2, 1], [4, 3, 2], 0)}
    if mv not in castles:
        return False
    king, empty, safe, rook = castles[mv]
    return (b[king] == "K" and b[rook] == "R" and all(b[s] == "." for s in empty)
            and not any(attacked(s, b, False) for s in safe))

PORT = int(sys.argv[1]) if sys.argv[1] != "--master" else 0
MOVES = int(sys.argv[2]) if sys.argv[1] != "--master" else 2
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


def result_of(pos):
    """The game's result if the side to move has no legal move, else None."""
    if legal_moves(pos) or (pos["white"] and any(master_move_ok(pos, c) for c in ("e1g1", "e1c1"))):
        return None
    king = pos["sq"].index("K" if pos["white"] else "k")
    if not attacked(king, pos["sq"], not pos["white"]):
        return "1/2-1/2"
    return "0-1" if pos["white"] else "1-0"


def play(conn, board, name, illegal_first=False):
    """Answers every move of the master until END: with a mate if it sees one, else the first
    legal reply; every reply must be ACKed. With illegal_first, move 1 is first answered with
    illegal moves. END must say the real result, or "*" after MOVES moves."""
    moves = last = 0
    pos = start_board()
    legal = True
    while True:
        msg = conn.line()
        if msg.startswith("MOVE "):
            n, mv = int(msg.split()[1]), msg.split()[2]
            legal = legal and master_move_ok(pos, mv)
            pos = make(pos, mv)
            last = n
            conn.send(b"ACK %d\n" % n)
            if illegal_first and n == 1:
                # A white pawn's move on black's turn, and castling through its own pieces.
                for bad in ("e2e5", "e8g8"):
                    conn.send(b"MOVE 1 %s\n" % bad.encode())
                    expect(conn, name + ": illegal move %s: ERR" % bad, "ERR illegal-move")
            replies = legal_moves(pos)
            if not replies:
                continue  # mated or stalemated: END follows
            mates = [r for r in replies if result_of(make(pos, r)) == "0-1"]
            reply = (mates or replies)[0]
            pos = make(pos, reply)
            conn.send(b"MOVE %d %s\n" % (n, reply.encode()))
            moves += 1
        elif msg.startswith("ACK "):
            continue
        elif msg.startswith("END "):
            result = result_of(pos)
            if result:
                report(name + ": END %s at move %d (the real result)" % (result, last),
                       msg == "END %d %s" % (last, result), "got %r" % msg)
            else:
                report(name + ": END after %d moves" % MOVES,
                       moves == MOVES and msg == "END %d *" % MOVES,
                       "%r after %d moves" % (msg, moves))
            report(name + ": the master's moves were legal", legal, "one was not")
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
    t = threading.Thread(target=play, args=(b1, 1, "board 1", True))
    t.start()
    play(b0, 0, "board 0 (after its errors)")
    t.join(60)
    b0.close()
    b1.close()
    sys.exit(1 if errors else 0)


def fake_master():
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    srv.settimeout(20)
    print("listening on %d" % srv.getsockname()[1], flush=True)
    s, _ = srv.accept()
    s.settimeout(20)
    conn = Conn.__new__(Conn)
    conn.s, conn.f = s, s.makefile("rb")
    expect(conn, "opponent: HELLO", "HELLO 1 0")
    conn.send(b"START 0 2\n")
    for bad, want in (("MOVE 1 e2e5", "ERR illegal-move"), ("MOVE 1 e7e5", "ERR illegal-move"),
                      ("MOVE 1 e1g1", "ERR illegal-move"), ("MOVE 2 e2e4", "ERR out-of-turn")):
        conn.send(bad.encode() + b"\n")
        expect(conn, "opponent: %s: %s" % (bad, want), want)
    pos = start_board()
    for n in (1, 2):
        mv = "e2e4" if n == 1 else legal_moves(pos)[0]
        pos = make(pos, mv)
        conn.send(b"MOVE %d %s\n" % (n, mv.encode()))
        expect(conn, "opponent: ACK %d" % n, "ACK %d" % n)
        reply = conn.line().split()
        ok = len(reply) == 3 and reply[:2] == ["MOVE", str(n)] and reply[2] in legal_moves(pos)
        report("opponent: a legal reply %d" % n, ok, "got %r" % reply)
        if not ok:
            break
        pos = make(pos, reply[2])
        conn.send(b"ACK %d\n" % n)
    conn.send(b"END 2 *\n")
    rest = conn.line()
    report("opponent: hangs up after END", rest == "", "got %r" % rest)
    conn.close()
    srv.close()
    sys.exit(1 if errors else 0)


if sys.argv[1] == "--master":
    fake_master()
else:
    main()
