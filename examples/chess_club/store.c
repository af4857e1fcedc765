/* store.c — key names and the Lua scripts of the chess club's Redis state (see store.h). A
 * script runs atomically on the server: the move-number check, the write, the counter and the
 * PUBLISH happen together or not at all, which is what makes a master's replay harmless. */
#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void club_key_simul(char out[CLUB_KEY_MAX], long id)
{
    snprintf(out, CLUB_KEY_MAX, "club:{%ld}", id);
}

void club_key_moves(char out[CLUB_KEY_MAX], long id, int board)
{
    snprintf(out, CLUB_KEY_MAX, "club:{%ld}:moves:%d", id, board);
}

void club_key_events(char out[CLUB_KEY_MAX], long id)
{
    snprintf(out, CLUB_KEY_MAX, "club:{%ld}:events", id);
}

long club_channel_id(const char *channel, size_t len)
{
    static const char pre[] = "club:{", post[] = "}:events";
    size_t np = sizeof pre - 1, nq = sizeof post - 1;
    if (len <= np + nq || len > np + nq + 18 || memcmp(channel, pre, np) != 0 ||
        memcmp(channel + len - nq, post, nq) != 0) {
        return -1;
    }
    long id = 0;
    for (size_t i = np; i < len - nq; i++) {
        if (channel[i] < '0' || channel[i] > '9') {
            return -1;
        }
        id = id * 10 + (channel[i] - '0');
    }
    return id;
}

const char club_script_move[] =
    "local b = ARGV[1]\n"
    "local n = tonumber(ARGV[2])\n"
    "local cur = tonumber(redis.call('HGET', KEYS[1], 'n:' .. b) or '-1')\n"
    "if cur < 0 then return redis.error_reply('NOSIMUL no board ' .. b) end\n"
    "if cur >= n then return 0 end\n"
    "if cur ~= n - 1 then\n"
    "  return redis.error_reply('GAP board ' .. b .. ' has ' .. cur .. ' moves, not ' .. (n - 1))\n"
    "end\n"
    "redis.call('RPUSH', KEYS[2], ARGV[3])\n"
    "redis.call('HSET', KEYS[1], 'n:' .. b, n, 'fen:' .. b, ARGV[4])\n"
    "if ARGV[5] ~= '' then redis.call('HSET', KEYS[1], 'result:' .. b, ARGV[5]) end\n"
    "redis.call('HINCRBY', KEYS[1], 'played', 1)\n"
    "redis.call('PUBLISH', KEYS[1] .. ':events', ARGV[6])\n"
    "return 1\n";

const char club_script_finish[] =
    "if redis.call('HGET', KEYS[1], 'state') == 'finished' then return 0 end\n"
    "redis.call('HSET', KEYS[1], 'state', 'finished')\n"
    "redis.call('PUBLISH', KEYS[1] .. ':events', ARGV[1])\n"
    "return 1\n";

const char club_start_fen[] = "rnbqkbnr/pppppppp/8/8/8/8/PPPPPPPP/RNBQKBNR w KQkq - 0 1";
