#!/usr/bin/env python3
# ws_final_block_seeds.py — writes the seeds fin_* of fuzz/corpus/http_ws and http_ws_client:
# permessage-deflate messages whose deflate data ends with a final block (BFINAL=1, RFC 7692
# 7.2.3.4), made by zlib as a sender would (Z_FINISH, then a new stream primed with the history),
# with and without context takeover, many empty final blocks, and the hostile variants (a bomb
# across final-block streams, garbage after one, a cut message, an unstripped tail).
# Run from anywhere: python3 fuzz/ws_final_block_seeds.py
import os
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
SYNC, FINAL, BARE = 0, 1, 2


class Peer:
    """A sender's compressor: flushes with a sync flush or a final block, keeps its history."""

    def __init__(self, ctx):
        self.ctx, self.hist = ctx, b''
        self.c = zlib.compressobj(6, zlib.DEFLATED, -15)

    def part(self, data, how):
        out = self.c.compress(data)
        self.hist = (self.hist + data)[-32768:]
        if how == SYNC:
            return out + self.c.flush(zlib.Z_SYNC_FLUSH)
        out += self.c.flush(zlib.Z_FINISH)
        self.c = (zlib.compressobj(6, zlib.DEFLATED, -15, zdict=self.hist) if self.hist
                  else zlib.compressobj(6, zlib.DEFLATED, -15))
        return out + (b'\x00\x00\x00\xff\xff' if how == FINAL else b'')

    def end(self, payload):
        if payload.endswith(b'\x00\x00\xff\xff'):
            payload = payload[:-4]
        if not self.ctx:
            self.hist = b''
            self.c = zlib.compressobj(6, zlib.DEFLATED, -15)
        return payload

    def message(self, data, how):
        return self.end(self.part(data, how))


def frame(b0, payload, masked):
    n = len(payload)
    h = bytes([b0])
    m = 0x80 if masked else 0
    if n < 126:
        h += bytes([m | n])
    elif n < 65536:
        h += bytes([m | 126]) + struct.pack('>H', n)
    else:
        h += bytes([m | 127]) + struct.pack('>Q', n)
    if masked:
        key = b'\x09\x08\x07\x06'
        h += key
        payload = bytes(c ^ key[i % 4] for i, c in enumerate(payload))
    return h + payload


def frames(op, payload, masked, step=0):
    """A compressed message's frames: RSV1 on the first, cut every `step` bytes."""
    if not step or step >= len(payload):
        return frame(0xC0 | op, payload, masked)
    out = b''
    for off in range(0, len(payload), step):
        k = payload[off:off + step]
        b0 = (0x40 | op if off == 0 else 0) | (0x80 if off + step >= len(payload) else 0)
        out += frame(b0, k, masked)
    return out


def traffic(ctx, masked):
    """Good messages: the RFC's form, a back-reference across it, a bare final block, a sync
    flush, final blocks inside a message cut into 5-byte frames, an empty message, a close."""
    p = Peer(ctx)
    out = b''
    for text, how in ((b'the quick brown fox jumps over the lazy dog', FINAL),
                      (b'the quick brown fox jumps over the lazy dog again', FINAL),
                      (b'the lazy dog: a final block with nothing after it', BARE),
                      (b'a sync flush: the quick brown fox', SYNC)):
        out += frames(1, p.message(text, how), masked)
    pl = b''.join(p.part(t, FINAL) for t in (b'one: the quick fox; ', b'two: the quick fox; ',
                                             b'three: the quick fox \xc3\xa9'))
    out += frames(1, p.end(pl), masked, 5)
    out += frames(2, p.message(b'', FINAL), masked)
    out += frames(1, p.message(b'finally, the quick brown fox', SYNC), masked)
    return out + frame(0x88, b'\x03\xe8', masked)


def hostile(masked):
    """Each a good final-block message then a bad one (but fin_many_empty, whose 600 empty final
    blocks are valid, and cost what as many block headers do)."""
    good = frames(1, Peer(True).message(b'the quick brown fox', FINAL), masked)
    p = Peer(True)
    bomb = p.end(p.part(bytes(40), FINAL) + p.part(bytes(40), FINAL))
    cut = Peer(True).part(b'hello hello hello world', SYNC)[:-7]
    return {
        'fin_many_empty': good + frames(2, b'\x03\x00' * 600 + b'\x00', masked),
        'fin_bomb': frames(2, bomb, masked, 7),  # 80 bytes: over the small limit of 64
        'fin_garbage': good + frames(2, Peer(True).part(b'hello', BARE) + b'\xff\xff\xff', masked),
        'fin_cut': good + frames(2, cut, masked),
        'fin_unstripped': good + frames(2, Peer(True).part(b'hello', FINAL), masked),
        'fin_rsv1_cont': good + frame(0x41, Peer(True).message(b'hi', FINAL), masked)
                         + frame(0xC0, b'', masked),
    }


def write(corpus, name, data):
    path = os.path.join(HERE, 'corpus', corpus, name)
    with open(path, 'wb') as f:
        f.write(data)


# fuzz_http_ws: [flags][split][frames]; flags bit 0 client side (unmasked), bit 1 a 64-byte
# max_message, bit 2 permessage-deflate, bit 3 no context takeover.
for ctx in (True, False):
    for client in (False, True):
        flags = 4 | (0 if ctx else 8) | (1 if client else 0)
        name = 'fin_%s_%s' % ('ctx' if ctx else 'nctx', 'client' if client else 'server')
        write('http_ws', name, bytes([flags, 37]) + traffic(ctx, not client))
for name, data in hostile(True).items():
    flags = 4 | (2 if name == 'fin_bomb' else 0)
    write('http_ws', name, bytes([flags, 11]) + data)

# fuzz_http_ws_client: [chunk][answer and frames]; chunk's top bit offers permessage-deflate.
HEAD = (b'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n'
        b'Sec-WebSocket-Accept: @A@\r\nSec-WebSocket-Extensions: permessage-deflate%s\r\n\r\n')
write('http_ws_client', 'fin_ctx', bytes([0x80]) + HEAD % b'' + traffic(True, False))
write('http_ws_client', 'fin_ctx_chunked', bytes([0x80 | 3]) + HEAD % b'' + traffic(True, False))
write('http_ws_client', 'fin_nctx', bytes([0x80]) + HEAD % b'; server_no_context_takeover'
      + traffic(False, False))
for name, data in hostile(False).items():
    if name != 'fin_bomb':  # the client's limit is 4096: a bomb needs more than that
        write('http_ws_client', name, bytes([0x80]) + HEAD % b'' + data)
p = Peer(True)
bomb = p.end(p.part(bytes(3000), FINAL) + p.part(bytes(3000), FINAL))
write('http_ws_client', 'fin_bomb', bytes([0x80]) + HEAD % b'' + frames(2, bomb, False))
